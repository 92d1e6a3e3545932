package probe

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("ok"))
		case "/redirect":
			http.Redirect(w, r, "http://example.invalid/", http.StatusFound)
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
		case "/fail":
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte("database\ndown " + strings.Repeat("x", 500)))
		case "/slow":
			time.Sleep(500 * time.Millisecond)
		}
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"2xx", []string{"http", srv.URL + "/ok"}, 0, nil},
		{"3xx is an answer and is not followed", []string{"http", srv.URL + "/redirect"}, 0, nil},
		{"expected status", []string{"http", srv.URL + "/teapot", "--expect", "418"}, 0, nil},
		{"flags before target", []string{"http", "--expect", "418", srv.URL + "/teapot"}, 0, nil},
		{"unexpected status", []string{"http", srv.URL + "/ok", "--expect", "204"}, 1, []string{"status 200 (want 204): ok"}},
		{"4xx", []string{"http", srv.URL + "/teapot"}, 1, []string{"GET " + srv.URL + "/teapot: status 418"}},
		{"5xx with body excerpt", []string{"http", srv.URL + "/fail"}, 1, []string{"status 500: database down xxx"}},
		{"timeout", []string{"http", srv.URL + "/slow", "--timeout", "100ms"}, 1, []string{"GET " + srv.URL + "/slow:", "Timeout"}},
		{"refused", []string{"http", closed.URL}, 1, []string{"GET " + closed.URL + ": dial tcp", "refused"}},
		{"no target", []string{"http"}, 1, []string{"want exactly one target"}},
		{"bad flag", []string{"http", srv.URL, "--nope"}, 1, []string{"flag provided but not defined"}},
		{"unknown check", []string{"grpc", "x"}, 1, []string{`unknown check "grpc"`}},
		{"usage", nil, 1, []string{"usage:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if code := run(tt.args, &out); code != tt.code {
				t.Errorf("exit code %d, want %d (output %q)", code, tt.code, out.String())
			}
			got := out.String()
			if tt.code == 0 && got != "" {
				t.Errorf("healthy probe printed %q", got)
			}
			if tt.code != 0 {
				if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
					t.Errorf("output %q: want exactly one line", got)
				}
				if len(got) > 400 {
					t.Errorf("output is %d bytes, want a short line", len(got))
				}
			}
			for _, c := range tt.contains {
				if !strings.Contains(got, c) {
					t.Errorf("output %q does not contain %q", got, c)
				}
			}
		})
	}
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var out bytes.Buffer
	if code := run([]string{"tcp", addr}, &out); code != 0 {
		t.Fatalf("open port: exit %d, output %q", code, out.String())
	}
	ln.Close()
	out.Reset()
	if code := run([]string{"tcp", addr, "--timeout", "1s"}, &out); code != 1 {
		t.Fatalf("closed port: exit %d, want 1", code)
	}
	if got := out.String(); !strings.Contains(got, "dial tcp "+addr) || !strings.Contains(got, "refused") {
		t.Errorf("closed port: output %q", got)
	}
}
