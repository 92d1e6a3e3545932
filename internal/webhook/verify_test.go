package webhook

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestVerify(t *testing.T) {
	body := fixture(t, "github/push.json")
	good := hexHMAC(testSecret, body)
	other := hexHMAC([]byte("another-apps-secret"), body)
	tampered := bytes.Replace(body, []byte(`"refs/heads/main"`), []byte(`"refs/heads/prod"`), 1)
	if bytes.Equal(tampered, body) {
		t.Fatal("tampering did not change the body")
	}

	tests := []struct {
		name   string
		p      Provider
		secret []byte
		h      http.Header
		body   []byte
		want   error // nil: accepted
		also   error // second sentinel the error must wrap
	}{
		{"github ok", GitHub, testSecret, hdr("X-Hub-Signature-256", "sha256="+good), body, nil, nil},
		{"github upper-case hex ok", GitHub, testSecret, hdr("X-Hub-Signature-256", "sha256="+strings.ToUpper(good)), body, nil, nil},
		{"github tampered body", GitHub, testSecret, hdr("X-Hub-Signature-256", "sha256="+good), tampered, ErrSignature, ErrSignatureMismatch},
		{"github wrong secret", GitHub, testSecret, hdr("X-Hub-Signature-256", "sha256="+other), body, ErrSignature, ErrSignatureMismatch},
		{"github missing header", GitHub, testSecret, hdr(), body, ErrSignature, ErrSignatureMissing},
		{"github empty header", GitHub, testSecret, hdr("X-Hub-Signature-256", ""), body, ErrSignature, ErrSignatureMissing},
		{"github only sha1 header", GitHub, testSecret, hdr("X-Hub-Signature", "sha1=0123456789abcdef0123456789abcdef01234567"), body, ErrSignature, ErrSignatureMissing},
		{"github duplicate header", GitHub, testSecret, hdr("X-Hub-Signature-256", "sha256="+good, "X-Hub-Signature-256", "sha256="+good), body, ErrSignature, ErrSignatureMalformed},
		{"github no prefix", GitHub, testSecret, hdr("X-Hub-Signature-256", good), body, ErrSignature, ErrSignatureMalformed},
		{"github sha1 prefix", GitHub, testSecret, hdr("X-Hub-Signature-256", "sha1="+good), body, ErrSignature, ErrSignatureMalformed},
		{"github upper-case prefix", GitHub, testSecret, hdr("X-Hub-Signature-256", "SHA256="+good), body, ErrSignature, ErrSignatureMalformed},
		{"github odd-length hex", GitHub, testSecret, hdr("X-Hub-Signature-256", "sha256="+good[:63]), body, ErrSignature, ErrSignatureMalformed},
		{"github non-hex", GitHub, testSecret, hdr("X-Hub-Signature-256", "sha256="+strings.Repeat("zz", 32)), body, ErrSignature, ErrSignatureMalformed},
		{"github truncated hex", GitHub, testSecret, hdr("X-Hub-Signature-256", "sha256="+good[:40]), body, ErrSignature, ErrSignatureMalformed},
		{"github trailing garbage", GitHub, testSecret, hdr("X-Hub-Signature-256", "sha256="+good+"00"), body, ErrSignature, ErrSignatureMalformed},
		{"github signature of empty key", GitHub, nil, hdr("X-Hub-Signature-256", "sha256="+hexHMAC(nil, body)), body, ErrNoSecret, nil},
		{"github empty secret", GitHub, []byte{}, hdr("X-Hub-Signature-256", "sha256="+good), body, ErrNoSecret, nil},
		{"github header of another provider", GitHub, testSecret, hdr("X-Gitea-Signature", good), body, ErrSignature, ErrSignatureMissing},

		{"gitea ok", Gitea, testSecret, hdr("X-Gitea-Signature", good), body, nil, nil},
		{"gitea tampered", Gitea, testSecret, hdr("X-Gitea-Signature", good), tampered, ErrSignature, ErrSignatureMismatch},
		{"gitea wrong secret", Gitea, testSecret, hdr("X-Gitea-Signature", other), body, ErrSignature, ErrSignatureMismatch},
		{"gitea with sha256 prefix", Gitea, testSecret, hdr("X-Gitea-Signature", "sha256="+good), body, ErrSignature, ErrSignatureMalformed},
		{"gitea odd-length", Gitea, testSecret, hdr("X-Gitea-Signature", good+"a"), body, ErrSignature, ErrSignatureMalformed},
		{"gitea missing", Gitea, testSecret, hdr("X-Hub-Signature-256", "sha256="+good), body, ErrSignature, ErrSignatureMissing},
		{"gitea duplicate", Gitea, testSecret, hdr("X-Gitea-Signature", good, "X-Gitea-Signature", other), body, ErrSignature, ErrSignatureMalformed},

		{"bitbucket ok", Bitbucket, testSecret, hdr("X-Hub-Signature", "sha256="+good), body, nil, nil},
		{"bitbucket tampered", Bitbucket, testSecret, hdr("X-Hub-Signature", "sha256="+good), tampered, ErrSignature, ErrSignatureMismatch},
		{"bitbucket wrong secret", Bitbucket, testSecret, hdr("X-Hub-Signature", "sha256="+other), body, ErrSignature, ErrSignatureMismatch},
		{"bitbucket sha1 prefix", Bitbucket, testSecret, hdr("X-Hub-Signature", "sha1="+good), body, ErrSignature, ErrSignatureMalformed},
		{"bitbucket unsigned webhook", Bitbucket, testSecret, hdr("X-Event-Key", "repo:push"), body, ErrSignature, ErrSignatureMissing},
		{"bitbucket github's header", Bitbucket, testSecret, hdr("X-Hub-Signature-256", "sha256="+good), body, ErrSignature, ErrSignatureMissing},

		{"gitlab ok", GitLab, testSecret, hdr("X-Gitlab-Token", string(testSecret)), body, nil, nil},
		{"gitlab ok whatever the body", GitLab, testSecret, hdr("X-Gitlab-Token", string(testSecret)), tampered, nil, nil},
		{"gitlab wrong token", GitLab, testSecret, hdr("X-Gitlab-Token", "whsec_guess"), body, ErrSignature, ErrSignatureMismatch},
		{"gitlab prefix of secret", GitLab, testSecret, hdr("X-Gitlab-Token", string(testSecret[:len(testSecret)-1])), body, ErrSignature, ErrSignatureMismatch},
		{"gitlab secret plus suffix", GitLab, testSecret, hdr("X-Gitlab-Token", string(testSecret)+"x"), body, ErrSignature, ErrSignatureMismatch},
		{"gitlab missing", GitLab, testSecret, hdr("X-Gitlab-Event", "Push Hook"), body, ErrSignature, ErrSignatureMissing},
		{"gitlab empty token", GitLab, testSecret, hdr("X-Gitlab-Token", ""), body, ErrSignature, ErrSignatureMissing},
		{"gitlab duplicate", GitLab, testSecret, hdr("X-Gitlab-Token", string(testSecret), "X-Gitlab-Token", "x"), body, ErrSignature, ErrSignatureMalformed},
		{"gitlab empty secret and empty token", GitLab, nil, hdr("X-Gitlab-Token", ""), body, ErrNoSecret, nil},

		{"oversize body", GitHub, testSecret, hdr("X-Hub-Signature-256", "sha256="+good), make([]byte, MaxBodySize+1), ErrTooLarge, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.p, tt.secret, tt.h, tt.body)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v; want success", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v; want %v", err, tt.want)
			}
			if tt.also != nil && !errors.Is(err, tt.also) {
				t.Fatalf("Verify = %v; want it to wrap %v too", err, tt.also)
			}
			if tt.want != ErrSignature && errors.Is(err, ErrSignature) {
				t.Fatalf("Verify = %v; must not be ErrSignature", err)
			}
			// Nothing secret in error text, which ends up in logs.
			for _, s := range []string{good, string(testSecret)} {
				if strings.Contains(strings.ToLower(err.Error()), s) {
					t.Fatalf("error %q reveals a secret value", err)
				}
			}
		})
	}
}

func TestVerifyUnknownProvider(t *testing.T) {
	err := Verify("sourcehut", testSecret, hdr(), []byte("{}"))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "provider" {
		t.Fatalf("Verify(sourcehut) = %v; want a FieldError on provider", err)
	}
}

// The signature covers the exact bytes: re-encoding the JSON (same
// document, different whitespace) must fail.
func TestVerifyRawBytes(t *testing.T) {
	body := fixture(t, "gitea/push.json")
	sig := hexHMAC(testSecret, body)
	var buf bytes.Buffer
	buf.Write(bytes.TrimSpace(body))
	if err := Verify(Gitea, testSecret, hdr("X-Gitea-Signature", sig), buf.Bytes()); !errors.Is(err, ErrSignatureMismatch) {
		t.Fatalf("Verify of trimmed body = %v; want mismatch", err)
	}
}

func TestReadBody(t *testing.T) {
	b, err := ReadBody(bytes.NewReader(make([]byte, MaxBodySize)))
	if err != nil || len(b) != MaxBodySize {
		t.Fatalf("ReadBody(limit) = %d bytes, %v; want %d bytes", len(b), err, MaxBodySize)
	}
	if _, err := ReadBody(bytes.NewReader(make([]byte, MaxBodySize+1))); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ReadBody(limit+1) = %v; want ErrTooLarge", err)
	}
	if !strings.Contains(ErrTooLarge.Error(), "25 MiB") {
		t.Fatalf("ErrTooLarge = %q; want it to name the limit", ErrTooLarge)
	}
}
