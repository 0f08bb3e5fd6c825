// Package dnsserver answers DNS for the zone of the names Skiff gives
// container groups with a dnsNameLabel (ipAddress.fqdn), over UDP and TCP
// on one address, with github.com/miekg/dns. What a name resolves to comes
// from a Resolver (the API server, which reads the store), so every server
// of a cluster answers alike.
package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// TTL is the time to live of every answer: short, as a group's address
// goes when it is deleted and a label may be taken again.
const TTL = 5

// Resolver finds the addresses of a name in the zone: found is false when
// no group has that name (NXDOMAIN); found with no addresses is a group
// that has none yet (an empty answer).
type Resolver interface {
	ResolveFQDN(ctx context.Context, fqdn string) (addrs []net.IP, found bool, err error)
}

// Server is a running DNS server.
type Server struct {
	zone string // lower case, fully qualified ("skiff.local.")
	res  Resolver
	log  *slog.Logger
	udp  *dns.Server
	tcp  *dns.Server
	addr string
}

// Start listens on addr (host:port; port 0 picks one, the same for UDP and
// TCP) and answers for zone until Close.
func Start(addr, zone string, res Resolver, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	zone = dns.Fqdn(strings.ToLower(strings.Trim(zone, ".")))
	if _, ok := dns.IsDomainName(zone); !ok || zone == "." {
		return nil, fmt.Errorf("dns zone %q is not a domain name", zone)
	}
	s := &Server{zone: zone, res: res, log: log}
	pc, ln, err := listen(addr)
	if err != nil {
		return nil, err
	}
	s.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	s.udp = &dns.Server{PacketConn: pc, Handler: h}
	s.tcp = &dns.Server{Listener: ln, Handler: h, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		go func() {
			if err := srv.ActivateAndServe(); err != nil && !errors.Is(err, net.ErrClosed) {
				log.Error("dns server stopped", "addr", s.addr, "err", err)
			}
		}()
	}
	return s, nil
}

// listen binds UDP and TCP on the same address; with port 0 the port UDP
// got is the one TCP takes.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: listen on %s (udp): %w", addr, err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return nil, nil, fmt.Errorf("dns: listen on %s (tcp): %w", addr, err)
	}
	return pc, ln, nil
}

// Addr is the address the server answers on (UDP and TCP).
func (s *Server) Addr() string { return s.addr }

// Close stops the server.
func (s *Server) Close() error {
	return errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = false
	defer func() {
		if err := w.WriteMsg(m); err != nil {
			s.log.Debug("dns: write answer", "err", err)
		}
	}()
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		m.Rcode = dns.RcodeNotImplemented
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if q.Qclass != dns.ClassINET || !dns.IsSubDomain(s.zone, name) {
		m.Authoritative = false
		m.Rcode = dns.RcodeRefused // not our zone, and no recursion
		return
	}
	if name == s.zone {
		switch q.Qtype {
		case dns.TypeSOA, dns.TypeANY:
			m.Answer = append(m.Answer, s.soa())
		default:
			m.Ns = append(m.Ns, s.soa())
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, found, err := s.res.ResolveFQDN(ctx, strings.TrimSuffix(name, "."))
	switch {
	case err != nil:
		s.log.Warn("dns: resolve", "name", name, "err", err)
		m.Rcode = dns.RcodeServerFailure
		return
	case !found:
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, s.soa())
		return
	}
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: TTL}
	for _, ip := range addrs {
		switch {
		case ip.To4() != nil && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY):
			h := hdr
			h.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: h, A: ip.To4()})
		case ip.To4() == nil && (q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY):
			h := hdr
			h.Rrtype = dns.TypeAAAA
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: h, AAAA: ip})
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = append(m.Ns, s.soa()) // the name is there, without this type
	}
}

// soa is the zone's start of authority, also sent with negative answers
// (its minimum is how long they may be cached).
func (s *Server) soa() dns.RR {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: s.zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: TTL},
		Ns:  "ns." + s.zone, Mbox: "hostmaster." + s.zone,
		Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: TTL,
	}
}
