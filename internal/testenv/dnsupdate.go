package testenv

import (
	"crypto/rand"
	"encoding/base64"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DNSUpdateKey is the TSIG key name DNSUpdate accepts updates signed with.
const DNSUpdateKey = "berth-test."

// DNSUpdateServer is a tiny authoritative DNS server for Pebble and the
// rfc2136 DNS-01 provider (see DNSUpdate).
type DNSUpdateServer struct {
	Addr   string // 127.0.0.1:port, UDP and TCP
	Zone   string // FQDN of the zone it is authoritative for
	Secret string // base64 TSIG hmac-sha256 secret of DNSUpdateKey

	mu      sync.Mutex
	txt     map[string][]string // lowercase FQDN → values
	updates int                 // accepted updates
	refused int                 // messages refused for their signature
}

// DNSUpdate runs a DNS server for zone (e.g. "example.test.") until the test
// ends: A queries answer 127.0.0.1 for any name, TXT queries answer what
// TSIG-signed RFC 2136 updates put there, SOA answers for the zone.
func DNSUpdate(t testing.TB, zone string) *DNSUpdateServer {
	t.Helper()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	s := &DNSUpdateServer{Zone: dns.Fqdn(zone), Secret: base64.StdEncoding.EncodeToString(secret), txt: map[string][]string{}}
	// Pebble asks over TCP, lego over UDP: serve both on one port.
	var pc net.PacketConn
	var l net.Listener
	for range 20 {
		p, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", p.LocalAddr().String()); err == nil {
			pc = p
			break
		}
		p.Close()
	}
	if pc == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	s.Addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc}, {Listener: l}} {
		srv.Handler = s
		srv.TsigSecret = map[string]string{DNSUpdateKey: s.Secret}
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

// ServeDNS implements dns.Handler.
func (s *DNSUpdateServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
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

func (s *DNSUpdateServer) update(r *dns.Msg) int {
	if r.IsTsig() == nil {
		return dns.RcodeRefused
	}
	if !strings.EqualFold(r.Question[0].Name, s.Zone) {
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

func (s *DNSUpdateServer) answer(m *dns.Msg, q dns.Question) {
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 1}
	}
	soa := &dns.SOA{
		Hdr: dns.RR_Header{Name: s.Zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 1},
		Ns:  "ns." + s.Zone, Mbox: "hostmaster." + s.Zone,
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
		if strings.EqualFold(q.Name, s.Zone) {
			m.Answer = append(m.Answer, soa)
			return
		}
	}
	if len(m.Answer) == 0 && dns.IsSubDomain(s.Zone, strings.ToLower(q.Name)) {
		m.Ns = append(m.Ns, soa)
	}
}

// Counts says how many RFC 2136 updates the server accepted, and how many
// messages it refused for a bad TSIG signature.
func (s *DNSUpdateServer) Counts() (updates, refused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updates, s.refused
}

// Records returns a copy of the TXT records, by lowercase FQDN.
func (s *DNSUpdateServer) Records() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]string{}
	for k, v := range s.txt {
		out[k] = append([]string(nil), v...)
	}
	return out
}
