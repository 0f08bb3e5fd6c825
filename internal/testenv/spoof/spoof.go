// Package spoof crafts Ethernet frames the way a hostile container with
// CAP_NET_RAW can (an AF_PACKET socket): TCP SYNs and UDP datagrams from any
// source address to any destination through any next-hop MAC, and
// gratuitous ARP. Tests use it to show that the network guard drops them.
// It is written by hand because it needs nothing but a few header layouts;
// a packet library (gopacket) would pull in libpcap for no gain.
package spoof

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

const (
	etherIPv4 = 0x0800
	etherARP  = 0x0806
)

// Link is an AF_PACKET socket bound to one interface of the namespace it
// was opened in.
type Link struct {
	fd      int
	ifindex int
	// MAC is the interface's own address.
	MAC net.HardwareAddr
}

// Open opens a raw socket on the interface name (in the calling thread's
// network namespace).
func Open(name string) (*Link, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind AF_PACKET to %s: %w", name, err)
	}
	return &Link{fd: fd, ifindex: ifc.Index, MAC: ifc.HardwareAddr}, nil
}

// Close closes the socket.
func (l *Link) Close() error { return unix.Close(l.fd) }

// Send writes one frame.
func (l *Link) Send(frame []byte) error {
	var addr [8]byte
	copy(addr[:], frame[0:6])
	return unix.Sendto(l.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: l.ifindex, Halen: 6, Addr: addr})
}

// Wait reads frames until match accepts one (true) or timeout passes (false).
func (l *Link) Wait(timeout time.Duration, match func(frame []byte) bool) (bool, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65536)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(l.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return false, err
		}
		n, _, err := unix.Recvfrom(l.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, err
		}
		if match(buf[:n]) {
			return true, nil
		}
	}
}

// Packet describes an IPv4 packet to craft.
type Packet struct {
	SrcMAC, DstMAC   net.HardwareAddr // SrcMAC defaults to the link's own
	Src, Dst         net.IP
	SrcPort, DstPort uint16 // SrcPort defaults to a random high port
	Payload          []byte // UDP only
}

// SYN builds a TCP SYN frame.
func (l *Link) SYN(p Packet) []byte {
	l.defaults(&p)
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], p.SrcPort)
	binary.BigEndian.PutUint16(tcp[2:], p.DstPort)
	binary.BigEndian.PutUint32(tcp[4:], rand.Uint32())
	tcp[12] = 5 << 4 // data offset
	tcp[13] = 0x02   // SYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	binary.BigEndian.PutUint16(tcp[16:], l4Checksum(p.Src, p.Dst, unix.IPPROTO_TCP, tcp))
	return ether(p.DstMAC, p.SrcMAC, etherIPv4, ipv4(p.Src, p.Dst, unix.IPPROTO_TCP, tcp))
}

// UDP builds a UDP datagram frame.
func (l *Link) UDP(p Packet) []byte {
	l.defaults(&p)
	udp := make([]byte, 8+len(p.Payload))
	binary.BigEndian.PutUint16(udp[0:], p.SrcPort)
	binary.BigEndian.PutUint16(udp[2:], p.DstPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], p.Payload)
	binary.BigEndian.PutUint16(udp[6:], l4Checksum(p.Src, p.Dst, unix.IPPROTO_UDP, udp))
	return ether(p.DstMAC, p.SrcMAC, etherIPv4, ipv4(p.Src, p.Dst, unix.IPPROTO_UDP, udp))
}

// GratuitousARP builds a broadcast ARP reply announcing that ip is at mac
// (the link's own MAC when nil), as `arping -U` does.
func (l *Link) GratuitousARP(ip net.IP, mac net.HardwareAddr) []byte {
	if mac == nil {
		mac = l.MAC
	}
	arp := make([]byte, 28)
	binary.BigEndian.PutUint16(arp[0:], 1) // Ethernet
	binary.BigEndian.PutUint16(arp[2:], etherIPv4)
	arp[4], arp[5] = 6, 4
	binary.BigEndian.PutUint16(arp[6:], 2) // reply
	copy(arp[8:], mac)
	copy(arp[14:], ip.To4())
	copy(arp[18:], net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(arp[24:], ip.To4())
	return ether(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, mac, etherARP, arp)
}

func (l *Link) defaults(p *Packet) {
	if p.SrcMAC == nil {
		p.SrcMAC = l.MAC
	}
	if p.SrcPort == 0 {
		p.SrcPort = uint16(40000 + rand.IntN(20000))
	}
}

// IsTCPAnswer matches a TCP segment from dst:dport to src:sport of p (a
// SYN-ACK or a RST: any answer at all).
func IsTCPAnswer(p Packet) func([]byte) bool {
	return func(f []byte) bool {
		ip, proto, l4, ok := parseIPv4(f)
		if !ok || proto != unix.IPPROTO_TCP || len(l4) < 20 {
			return false
		}
		return ip.src.Equal(p.Dst) && ip.dst.Equal(p.Src) &&
			binary.BigEndian.Uint16(l4[0:]) == p.DstPort && binary.BigEndian.Uint16(l4[2:]) == p.SrcPort
	}
}

// IsARPFrom matches an ARP packet whose sender is ip at mac.
func IsARPFrom(ip net.IP, mac net.HardwareAddr) func([]byte) bool {
	return func(f []byte) bool {
		if len(f) < 14+28 || binary.BigEndian.Uint16(f[12:]) != etherARP {
			return false
		}
		a := f[14:]
		return net.HardwareAddr(a[8:14]).String() == mac.String() && net.IP(a[14:18]).Equal(ip.To4())
	}
}

// IsUDPFrom matches a UDP datagram from src carrying payload.
func IsUDPFrom(src net.IP, payload []byte) func([]byte) bool {
	return func(f []byte) bool {
		ip, proto, l4, ok := parseIPv4(f)
		return ok && proto == unix.IPPROTO_UDP && ip.src.Equal(src) && len(l4) >= 8 && string(l4[8:]) == string(payload)
	}
}

type ipAddrs struct{ src, dst net.IP }

func parseIPv4(f []byte) (ipAddrs, byte, []byte, bool) {
	if len(f) < 14+20 || binary.BigEndian.Uint16(f[12:]) != etherIPv4 {
		return ipAddrs{}, 0, nil, false
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ihl < 20 || len(ip) < ihl {
		return ipAddrs{}, 0, nil, false
	}
	return ipAddrs{src: net.IP(ip[12:16]), dst: net.IP(ip[16:20])}, ip[9], ip[ihl:], true
}

func ether(dst, src net.HardwareAddr, typ uint16, payload []byte) []byte {
	f := make([]byte, 14, 14+len(payload))
	copy(f[0:], dst)
	copy(f[6:], src)
	binary.BigEndian.PutUint16(f[12:], typ)
	return append(f, payload...)
}

func ipv4(src, dst net.IP, proto byte, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(h[4:], uint16(rand.Uint32()))
	h[6] = 0x40 // don't fragment
	h[8] = 64
	h[9] = proto
	copy(h[12:], src.To4())
	copy(h[16:], dst.To4())
	binary.BigEndian.PutUint16(h[10:], checksum(h, 0))
	return append(h, payload...)
}

func l4Checksum(src, dst net.IP, proto byte, seg []byte) uint16 {
	var sum uint32
	pseudo := make([]byte, 12)
	copy(pseudo[0:], src.To4())
	copy(pseudo[4:], dst.To4())
	pseudo[9] = proto
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(seg)))
	for i := 0; i < 12; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(pseudo[i:]))
	}
	return checksum(seg, sum)
}

func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = (sum >> 16) + (sum & 0xffff)
	}
	return ^uint16(sum)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
