package network

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// PortRange is an inclusive range of port numbers. The zero value means any
// port (1-65535).
type PortRange struct{ Min, Max int32 }

// ParsePortRange reads "LOW-HIGH" (or a single port). An empty string is the
// zero range: any port.
func ParsePortRange(s string) (PortRange, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return PortRange{}, nil
	}
	lo, hi, found := strings.Cut(s, "-")
	if !found {
		hi = lo
	}
	min, err1 := strconv.ParseInt(strings.TrimSpace(lo), 10, 32)
	max, err2 := strconv.ParseInt(strings.TrimSpace(hi), 10, 32)
	if err1 != nil || err2 != nil || min < 1 || max > 65535 || min > max {
		return PortRange{}, fmt.Errorf("port range %q: want LOW-HIGH within 1-65535: %w", s, errdefs.ErrInvalidArgument)
	}
	return PortRange{Min: int32(min), Max: int32(max)}, nil
}

// Contains reports whether port is in the range (any port for the zero range).
func (r PortRange) Contains(port int32) bool {
	if r == (PortRange{}) {
		return port >= 1 && port <= 65535
	}
	return port >= r.Min && port <= r.Max
}

func (r PortRange) String() string {
	if r == (PortRange{}) {
		return "1-65535"
	}
	return fmt.Sprintf("%d-%d", r.Min, r.Max)
}

// ARM codes of the errors CheckPorts returns. A port in use is the code the
// server gives for a port another group publishes.
const (
	CodePortInUse      = "PortAlreadyInUse"
	CodePortNotAllowed = "PortNotAllowed"
)

// CheckPorts refuses ports a group may not publish on the public address:
// outside Config.PublishedPorts (errdefs.ErrInvalidArgument), one of
// Config.ReservedPorts (the server's own), or one a host process listens on
// now (both errdefs.ErrConflict). The probe binds the port on the public
// address with the protocol it would be published with, so a host service
// on that address or on the wildcard address is found. It does not know the
// ports other groups publish (DNAT rules, no sockets): Setup and the server
// check those.
func (m *Manager) CheckPorts(ports []api.Port) error {
	ports, err := normalizePorts(ports)
	if err != nil {
		return err
	}
	for _, p := range ports {
		if !m.cfg.PublishedPorts.Contains(p.Port) {
			return errdefs.WithCode(errdefs.ErrInvalidArgument, CodePortNotAllowed,
				"Port %s/%d cannot be published: this server publishes ports %s only.", p.Protocol, p.Port, m.cfg.PublishedPorts)
		}
		for _, r := range m.cfg.ReservedPorts {
			if r.Port == p.Port && strings.EqualFold(protocolOr(r.Protocol), p.Protocol) {
				return errdefs.WithCode(errdefs.ErrConflict, CodePortInUse,
					"Port %s/%d is used by the Skiff server itself and cannot be published.", p.Protocol, p.Port)
			}
		}
		if err := probe(m.cfg.PublicAddress, p); err != nil {
			return err
		}
	}
	return nil
}

func protocolOr(p string) string {
	if p == "" {
		return api.ProtocolTCP
	}
	return p
}

// probe binds addr:port for the port's protocol and lets go at once. A bind
// refused with EADDRINUSE means a host process has the port.
func probe(addr string, p api.Port) error {
	hostPort := net.JoinHostPort(addr, strconv.Itoa(int(p.Port)))
	var err error
	if p.Protocol == api.ProtocolUDP {
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp4", hostPort); err == nil {
			return pc.Close()
		}
	} else {
		var ln net.Listener
		if ln, err = net.Listen("tcp4", hostPort); err == nil {
			return ln.Close()
		}
	}
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		return nil // not a host address: no host process can listen there
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return errdefs.WithCode(errdefs.ErrConflict, CodePortInUse,
			"Port %s/%d is already in use on the host address %s.", p.Protocol, p.Port, addr)
	}
	return fmt.Errorf("network: probe %s/%s: %v: %w", strings.ToLower(p.Protocol), hostPort, err, errdefs.ErrUnavailable)
}
