// Command spoofer is a test program placed in container images: it sends
// the crafted frames of package spoof from inside a container (CAP_NET_RAW
// is in the default set) and reports whether an answer came.
//
//	spoofer syn  -via MAC [-src IP] -dst IP:PORT   exit 0 if any TCP answer (SYN-ACK or RST) came
//	spoofer udp  -via MAC -src IP -dst IP:PORT -msg TEXT
//	spoofer garp -ip IP                           gratuitous ARP: IP is at this container's MAC
//	spoofer sniff-arp -ip IP -mac MAC             exit 0 if an ARP from IP at MAC arrives
//
// -via is the next hop's MAC (the frame's destination); -src defaults to
// eth0's own address.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/skiff-sh/skiff/internal/testenv/spoof"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: spoofer syn|udp|garp|sniff-arp [flags]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	iface := fs.String("i", "eth0", "interface")
	via := fs.String("via", "", "destination MAC of the frame")
	src := fs.String("src", "", "source IPv4 address (default: the interface's)")
	dst := fs.String("dst", "", "destination IP:PORT")
	msg := fs.String("msg", "spoofed", "UDP payload")
	ipFlag := fs.String("ip", "", "address for garp and sniff-arp")
	macFlag := fs.String("mac", "", "sender MAC for sniff-arp")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for an answer")
	_ = fs.Parse(os.Args[2:])

	l, err := spoof.Open(*iface)
	if err != nil {
		fail(err.Error())
	}
	defer l.Close()
	switch os.Args[1] {
	case "syn", "udp":
		p := spoof.Packet{DstMAC: mustMAC(*via), Src: srcIP(*iface, *src)}
		host, port, err := net.SplitHostPort(*dst)
		if err != nil {
			fail(err.Error())
		}
		n, _ := strconv.Atoi(port)
		p.Dst, p.DstPort = mustIP(host), uint16(n)
		p.SrcPort = uint16(40000 + os.Getpid()%20000)
		if os.Args[1] == "udp" {
			p.Payload = []byte(*msg)
			if err := l.Send(l.UDP(p)); err != nil {
				fail(err.Error())
			}
			fmt.Println("sent")
			return
		}
		for range 3 { // a few tries: the first may wait for nothing but ARP
			if err := l.Send(l.SYN(p)); err != nil {
				fail(err.Error())
			}
			ok, err := l.Wait(*timeout/3, spoof.IsTCPAnswer(p))
			if err != nil {
				fail(err.Error())
			}
			if ok {
				fmt.Println("answered")
				return
			}
		}
		fmt.Println("no answer")
		os.Exit(1)
	case "garp":
		if err := l.Send(l.GratuitousARP(mustIP(*ipFlag), nil)); err != nil {
			fail(err.Error())
		}
		fmt.Println("sent")
	case "sniff-arp":
		fmt.Println("listening")
		ok, err := l.Wait(*timeout, spoof.IsARPFrom(mustIP(*ipFlag), mustMAC(*macFlag)))
		if err != nil {
			fail(err.Error())
		}
		if !ok {
			fmt.Println("nothing")
			os.Exit(1)
		}
		fmt.Println("seen")
	default:
		fail("unknown command " + os.Args[1])
	}
}

func srcIP(iface, s string) net.IP {
	if s != "" {
		return mustIP(s)
	}
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		fail(err.Error())
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.To4()
		}
	}
	fail("no IPv4 address on " + iface)
	return nil
}

func mustIP(s string) net.IP {
	ip := net.ParseIP(s).To4()
	if ip == nil {
		fail("not an IPv4 address: " + s)
	}
	return ip
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		fail(err.Error())
	}
	return m
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "spoofer:", msg)
	os.Exit(2)
}
