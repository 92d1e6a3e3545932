// Package mail sends Berth's few emails (invitations) through an SMTP server
// named by a URL: smtp://[user:password@]host[:port] (STARTTLS when the
// server offers it; 587 by default) or smtps://… (TLS from the start; 465).
// A password is sent only over TLS, or to the machine itself.
package mail

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"net/url"
	"strings"
	"time"
)

// Config names the SMTP server and the sender.
type Config struct {
	URL  string // secret: it may hold a password; never logged
	From string // "Berth <berth@example.com>"
	// RootCAs verifies the server's certificate (nil: the system's).
	RootCAs *x509.CertPool
}

// Sender sends mail through one SMTP server.
type Sender struct {
	addr        string // host:port
	host        string
	implicitTLS bool
	user, pass  string
	from        *mail.Address
	roots       *x509.CertPool
}

// New checks the configuration. Errors name the setting, never the URL
// (it may hold a password).
func New(c Config) (*Sender, error) {
	u, err := url.Parse(c.URL)
	if err != nil || u.Host == "" || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Path != "" && u.Path != "/" {
		return nil, errors.New("smtp-url: must be smtp://[user:password@]host[:port] or smtps://…")
	}
	s := &Sender{host: u.Hostname(), implicitTLS: u.Scheme == "smtps", roots: c.RootCAs}
	port := u.Port()
	if port == "" {
		port = map[bool]string{true: "465", false: "587"}[s.implicitTLS]
	}
	s.addr = net.JoinHostPort(s.host, port)
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
	}
	if s.from, err = mail.ParseAddress(c.From); err != nil {
		return nil, fmt.Errorf("smtp-from: %q is not an address like Berth <berth@example.com>", c.From)
	}
	return s, nil
}

// Send delivers one plain-text message to one address.
func (s *Sender) Send(ctx context.Context, to, subject, body string) error {
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		return fmt.Errorf("recipient: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	tlsConfig := &tls.Config{ServerName: s.host, RootCAs: s.roots, MinVersion: tls.VersionTLS12}
	var conn net.Conn
	d := &net.Dialer{}
	if s.implicitTLS {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tlsConfig}).DialContext(ctx, "tcp", s.addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", s.addr)
	}
	if err != nil {
		return fmt.Errorf("smtp server %s: %w", s.addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return fmt.Errorf("smtp server %s: %w", s.addr, err)
	}
	defer c.Close()
	if !s.implicitTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsConfig); err != nil {
				return fmt.Errorf("smtp server %s: STARTTLS: %w", s.addr, err)
			}
		}
	}
	if s.user != "" {
		// PlainAuth itself refuses to send the password unencrypted to
		// anything but localhost.
		if err := c.Auth(smtp.PlainAuth("", s.user, s.pass, s.host)); err != nil {
			return fmt.Errorf("smtp server %s: authentication as %s: %w", s.addr, s.user, err)
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return fmt.Errorf("smtp server %s: sender %s: %w", s.addr, s.from.Address, err)
	}
	if err := c.Rcpt(rcpt.Address); err != nil {
		return fmt.Errorf("smtp server %s: recipient %s: %w", s.addr, rcpt.Address, err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp server %s: %w", s.addr, err)
	}
	if _, err := w.Write(message(s.from, rcpt, subject, body)); err != nil {
		return fmt.Errorf("smtp server %s: %w", s.addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp server %s: the message was refused: %w", s.addr, err)
	}
	return c.Quit()
}

// message renders the headers and the body with CRLF line ends. The subject
// is Q-encoded and stripped of line breaks, so no value can add a header.
func message(from, to *mail.Address, subject, body string) []byte {
	id := make([]byte, 12)
	rand.Read(id)
	domain := from.Address[strings.LastIndex(from.Address, "@")+1:]
	subject = strings.NewReplacer("\r", " ", "\n", " ").Replace(subject)
	var b strings.Builder
	for _, h := range [][2]string{
		{"From", from.String()},
		{"To", to.String()},
		{"Subject", mime.QEncoding.Encode("utf-8", subject)},
		{"Date", time.Now().Format(time.RFC1123Z)},
		{"Message-ID", "<" + hex.EncodeToString(id) + "@" + domain + ">"},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Transfer-Encoding", "8bit"},
	} {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("\r\n")
	// Lines starting with "." are escaped by net/smtp's data writer.
	for _, l := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		b.WriteString(l + "\r\n")
	}
	return []byte(b.String())
}
