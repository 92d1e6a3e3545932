package certs_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testZone is the zone the test DNS server is authoritative for; every name
// under it (and any other name) resolves to 127.0.0.1.
const testZone = "example.test."

const tsigKey = "berth-test."

// dnsServer is a tiny authoritative DNS server for Pebble and the rfc2136
// provider: A queries answer 127.0.0.1 for any name, TXT queries answer what
// RFC 2136 updates (TSIG hmac-sha256 verified) put there, SOA answers for
// testZone.
type dnsServer struct {
	Addr   string
	Secret string // base64 TSIG secret for tsigKey

	mu      sync.Mutex
	txt     map[string][]string // lowercase FQDN → values
	updates int                 // accepted updates
	refused int                 // updates refused for their signature
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	s := &dnsServer{Secret: base64.StdEncoding.EncodeToString(secret), txt: map[string][]string{}}
	// Pebble asks over TCP, lego over UDP: serve both on one port.
	pc, l := listenUDPAndTCP(t)
	s.Addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc}, {Listener: l}} {
		srv.Handler = s
		srv.TsigSecret = map[string]string{tsigKey: s.Secret}
		srv.MsgAcceptFunc = acceptUpdates
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		served := make(chan error, 1)
		go func() { served <- srv.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-served:
			t.Fatalf("dns server: %v", err)
		}
		t.Cleanup(func() {
			_ = srv.Shutdown()
			<-served
		})
	}
	return s
}

// listenUDPAndTCP finds a port free for both protocols.
func listenUDPAndTCP(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l
		}
		pc.Close()
	}
	t.Fatal("no port free for both UDP and TCP")
	return nil, nil
}

// acceptUpdates is dns.DefaultMsgAcceptFunc, except that it lets RFC 2136
// UPDATE messages (with records in the authority section) through.
func acceptUpdates(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return dns.MsgIgnore
	}
	if opcode := int(dh.Bits>>11) & 0xF; opcode != dns.OpcodeQuery && opcode != dns.OpcodeUpdate {
		return dns.MsgRejectNotImplemented
	}
	if dh.Qdcount != 1 {
		return dns.MsgReject
	}
	return dns.MsgAccept
}

func (s *dnsServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg).SetReply(r)
	m.Authoritative = true
	if sig := r.IsTsig(); sig != nil {
		if w.TsigStatus() != nil {
			s.mu.Lock()
			s.refused++
			s.mu.Unlock()
			m.Rcode = dns.RcodeNotAuth
			_ = w.WriteMsg(m)
			return
		}
		m.SetTsig(sig.Hdr.Name, sig.Algorithm, 300, time.Now().Unix())
	}
	switch r.Opcode {
	case dns.OpcodeUpdate:
		m.Rcode = s.update(r)
	case dns.OpcodeQuery:
		s.answer(m, r.Question[0])
	}
	_ = w.WriteMsg(m)
}

func (s *dnsServer) update(r *dns.Msg) int {
	if r.IsTsig() == nil {
		return dns.RcodeRefused
	}
	if !strings.EqualFold(r.Question[0].Name, testZone) {
		return dns.RcodeNotAuth
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range r.Ns {
		h := rr.Header()
		if h.Rrtype != dns.TypeTXT {
			return dns.RcodeRefused
		}
		name := strings.ToLower(h.Name)
		switch h.Class {
		case dns.ClassANY: // delete the RRset
			delete(s.txt, name)
		case dns.ClassNONE: // delete one RR
			if txt, ok := rr.(*dns.TXT); ok {
				v := strings.Join(txt.Txt, "")
				kept := s.txt[name][:0]
				for _, have := range s.txt[name] {
					if have != v {
						kept = append(kept, have)
					}
				}
				if len(kept) == 0 {
					delete(s.txt, name)
				} else {
					s.txt[name] = kept
				}
			}
		case dns.ClassINET: // add an RR
			if txt, ok := rr.(*dns.TXT); ok {
				s.txt[name] = append(s.txt[name], strings.Join(txt.Txt, ""))
			}
		}
	}
	s.updates++
	return dns.RcodeSuccess
}

func (s *dnsServer) answer(m *dns.Msg, q dns.Question) {
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 1}
	}
	soa := &dns.SOA{
		Hdr: dns.RR_Header{Name: testZone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 1},
		Ns:  "ns." + testZone, Mbox: "hostmaster." + testZone,
		Serial: 1, Refresh: 60, Retry: 60, Expire: 600, Minttl: 1,
	}
	switch q.Qtype {
	case dns.TypeA:
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.IPv4(127, 0, 0, 1)})
	case dns.TypeTXT:
		s.mu.Lock()
		for _, v := range s.txt[strings.ToLower(q.Name)] {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: []string{v}})
		}
		s.mu.Unlock()
	case dns.TypeSOA:
		if strings.EqualFold(q.Name, testZone) {
			m.Answer = append(m.Answer, soa)
			return
		}
	}
	if len(m.Answer) == 0 && dns.IsSubDomain(testZone, strings.ToLower(q.Name)) {
		m.Ns = append(m.Ns, soa)
	}
}

// records returns a copy of the TXT records.
func (s *dnsServer) records() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]string{}
	for k, v := range s.txt {
		out[k] = append([]string(nil), v...)
	}
	return out
}

func (s *dnsServer) counts() (updates, refused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updates, s.refused
}

// challengeServer is the HTTP server Pebble validates HTTP-01 against: it
// answers what solvers presented. A token presented with hang set blocks its
// request until the test ends.
type challengeServer struct {
	Port int

	mu      sync.Mutex
	answers map[string]string // token → body
	hang    map[string]bool
	release chan struct{}
}

func startChallengeServer(t *testing.T) *challengeServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &challengeServer{
		Port:    l.Addr().(*net.TCPAddr).Port,
		answers: map[string]string{},
		hang:    map[string]bool{},
		release: make(chan struct{}),
	}
	srv := &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() { _ = srv.Serve(l); close(served) }()
	t.Cleanup(func() {
		close(c.release)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	})
	return c
}

func (c *challengeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/")
	c.mu.Lock()
	body, found := c.answers[token]
	hang := c.hang[token]
	c.mu.Unlock()
	if hang {
		select {
		case <-c.release:
		case <-r.Context().Done():
		}
		return
	}
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write([]byte(body))
}

func (c *challengeServer) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.answers) + len(c.hang)
}

// solver is an HTTPSolver publishing to a challengeServer. answer, when
// set, rewrites the key authorization it serves; onPresent runs after each
// Present.
type solver struct {
	srv       *challengeServer
	answer    func(keyAuth string) string
	hang      bool
	onPresent func()
	fail      error

	mu        sync.Mutex
	presented []string
}

func (s *solver) Present(ctx context.Context, domain, token, keyAuth string) error {
	if s.fail != nil {
		return s.fail
	}
	body := keyAuth
	if s.answer != nil {
		body = s.answer(keyAuth)
	}
	s.srv.mu.Lock()
	if s.hang {
		s.srv.hang[token] = true
	} else {
		s.srv.answers[token] = body
	}
	s.srv.mu.Unlock()
	s.mu.Lock()
	s.presented = append(s.presented, domain)
	s.mu.Unlock()
	if s.onPresent != nil {
		s.onPresent()
	}
	return nil
}

func (s *solver) CleanUp(ctx context.Context, domain, token, keyAuth string) error {
	if err := ctx.Err(); err != nil {
		return err // the bridge must hand CleanUp a live context
	}
	s.srv.mu.Lock()
	delete(s.srv.answers, token)
	delete(s.srv.hang, token)
	s.srv.mu.Unlock()
	return nil
}

func (s *solver) domains() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.presented...)
}
