package build

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestMask(t *testing.T) {
	pem := "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----"
	m := NewMask("hunter2", "", "hunter2-long", pem)
	tests := []struct{ in, want string }{
		{"password=hunter2", "password=****"},
		{"token hunter2-long here", "token **** here"}, // the longer secret whole, not "****-long"
		{"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "****"},   // one line of a multi-line secret
		{"nothing to hide", "nothing to hide"},
	}
	for _, tt := range tests {
		if got := m.Apply(tt.in); got != tt.want {
			t.Errorf("Apply(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
	if got := (Mask{}).Apply("hunter2"); got != "hunter2" {
		t.Errorf("the zero Mask changed %q", got)
	}
}

// classicFailure is what the classic builder (Engine 20.10) sends for a
// failing RUN step, chunked as it arrives.
const classicFailure = `{"stream":"Step 1/3 : FROM berth-fixture/debian:bookworm"}
{"stream":"\n"}
{"stream":" ---\u003e a3761510cb33\n"}
{"stream":"Step 2/3 : RUN echo preparing \u0026\u0026 echo tok=s3cr"}
{"stream":"et \u0026\u0026 exit 3\n"}
{"stream":" ---\u003e Running in 5d0f2b4c1e6a\n"}
{"stream":"preparing\n\u001b[91mtok="}
{"stream":"s3cret\n\u001b[0m"}
{"stream":"Downloading 10%\rDownloading 100%\r\n"}
{"errorDetail":{"code":3,"message":"The command '/bin/sh -c echo preparing \u0026\u0026 echo tok=s3cret \u0026\u0026 exit 3' returned a non-zero code: 3"},"error":"The command '/bin/sh -c echo preparing \u0026\u0026 echo tok=s3cret \u0026\u0026 exit 3' returned a non-zero code: 3"}
`

func TestStreamFailure(t *testing.T) {
	var lines []string
	s := &stream{mask: NewMask("s3cret"), logf: func(l string) { lines = append(lines, l) }}
	err := s.read(strings.NewReader(classicFailure))
	var be *Error
	if !errors.As(err, &be) {
		t.Fatalf("error %v (%T); want *Error", err, err)
	}
	want := []string{
		"Step 1/3 : FROM berth-fixture/debian:bookworm",
		" ---> a3761510cb33",
		"Step 2/3 : RUN echo preparing && echo tok=**** && exit 3",
		" ---> Running in 5d0f2b4c1e6a",
		"preparing",
		"tok=****",
		"Downloading 100%",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("lines:\n%q\nwant:\n%q", lines, want)
	}
	if be.Step != "Step 2/3 : RUN echo preparing && echo tok=**** && exit 3" {
		t.Errorf("step %q", be.Step)
	}
	if !slices.Equal(be.Output, []string{"preparing", "tok=****", "Downloading 100%"}) {
		t.Errorf("step output %q", be.Output)
	}
	if be.MissingBase != "" {
		t.Errorf("a failing RUN reported as a missing base image %q", be.MissingBase)
	}
	msg := be.Error()
	if strings.Contains(msg, "s3cret") {
		t.Errorf("error shows the secret: %s", msg)
	}
	for _, w := range []string{"Step 2/3 : RUN", "returned a non-zero code: 3", "last output of the step:\n  preparing"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not say %q", msg, w)
		}
	}
}

func TestStreamMissingBase(t *testing.T) {
	const in = `{"stream":"Step 1/2 : FROM --platform=linux/amd64 berth-fixture/nope:v0"}
{"stream":"\n"}
{"errorDetail":{"message":"pull access denied"},"error":"pull access denied"}
`
	s := &stream{}
	var be *Error
	if err := s.read(strings.NewReader(in)); !errors.As(err, &be) {
		t.Fatalf("error %v; want *Error", err)
	}
	if be.MissingBase != "berth-fixture/nope:v0" {
		t.Errorf("missing base %q", be.MissingBase)
	}
	if !strings.Contains(be.Error(), `base image "berth-fixture/nope:v0" is not on this Docker Engine`) {
		t.Errorf("error %q does not name the missing base image", be)
	}
}

func TestStreamSuccess(t *testing.T) {
	const in = `{"stream":"Step 1/1 : FROM berth-fixture/debian:bookworm\n"}
{"status":"Pulling from berth-fixture/debian","id":"bookworm"}
{"status":"Downloading","progressDetail":{"current":10,"total":100},"progress":"[=>   ]","id":"abc"}
{"aux":{"ID":"sha256:0123"}}
{"stream":"Successfully built 0123\n"}
`
	var lines []string
	s := &stream{logf: func(l string) { lines = append(lines, l) }}
	if err := s.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	if s.imageID != "sha256:0123" {
		t.Errorf("image id %q", s.imageID)
	}
	want := []string{"Step 1/1 : FROM berth-fixture/debian:bookworm", "bookworm: Pulling from berth-fixture/debian", "Successfully built 0123"}
	if !slices.Equal(lines, want) {
		t.Errorf("lines %q; want %q", lines, want)
	}
	if !slices.Equal(s.tail, want) {
		t.Errorf("tail %q; want %q", s.tail, want)
	}
}

func TestStreamBroken(t *testing.T) {
	s := &stream{}
	err := s.read(strings.NewReader(`{"stream":"Step 1/1 : FROM x\n"}` + "\n{\"stream\":"))
	var be *Error
	if err == nil || errors.As(err, &be) {
		t.Fatalf("error %v; want a broken-stream error, not a build failure", err)
	}
}
