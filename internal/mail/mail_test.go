package mail

import (
	"context"
	"strings"
	"testing"

	"github.com/berthpaas/berth/internal/testenv"
)

func TestSendToARealSMTPServer(t *testing.T) {
	srv := testenv.SMTP(t)
	s, err := New(Config{URL: "smtp://" + srv.Addr, From: "Berth <berth@example.test>"})
	if err != nil {
		t.Fatal(err)
	}
	body := "Hello,\n.a line starting with a dot\nhttps://berth.example.test/invitations/accept?token=abc\n"
	if err := s.Send(context.Background(), "grace@example.test", "Join Acme\r\nBcc: eve@example.test on Berth", body); err != nil {
		t.Fatal(err)
	}
	box := srv.Mailbox()
	for _, want := range []string{`From: "Berth" <berth@example.test>`, "To: <grace@example.test>", "Subject: Join Acme  Bcc: eve@example.test on Berth",
		"\n.a line starting with a dot\n", "accept?token=abc"} {
		if !strings.Contains(box, want) {
			t.Errorf("mailbox lacks %q:\n%s", want, box)
		}
	}
	if strings.Contains(box, "\nBcc:") {
		t.Error("a line break in the subject added a header")
	}
}

func TestConfigErrorsNeverShowThePassword(t *testing.T) {
	for _, c := range []Config{
		{URL: "http://user:hunter2@mail.example.com", From: "b@example.com"},
		{URL: "smtp://user:hunter2@", From: "b@example.com"},
		{URL: "smtp://user:hunter2@mail.example.com/path", From: "b@example.com"},
	} {
		_, err := New(c)
		if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "smtp-url") {
			t.Errorf("%q: %v", c.URL, err)
		}
	}
	if _, err := New(Config{URL: "smtp://mail.example.com", From: "not an address"}); err == nil || !strings.Contains(err.Error(), "smtp-from") {
		t.Errorf("bad from: %v", err)
	}
	if _, err := New(Config{URL: "smtps://u:p@mail.example.com", From: "b@example.com"}); err != nil {
		t.Errorf("smtps URL: %v", err)
	}
}

func TestUnreachableServer(t *testing.T) {
	s, err := New(Config{URL: "smtp://127.0.0.1:1", From: "b@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), "g@example.com", "x", "y"); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("send to a closed port: %v", err)
	}
}
