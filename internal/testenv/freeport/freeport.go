// Package freeport hands out TCP ports for the servers the tests start
// (skiff server and agent, etcd, kube-apiserver).
//
// A port found by listening on :0 and closing the listener is free only
// until the kernel hands it to the next :0 listener: a test that picked a
// port for its server and then started etcd (which picked its own ports
// the same way) saw etcd take the server's port ("bind: address already
// in use"). The ports here come from below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range, 32768-60999 on Debian), so no :0 listener
// and no outgoing connection can be given one, and no port is handed out
// twice in a process. The start of the walk depends on the process id, so
// two test binaries in a row do not walk the same ports.
package freeport

import (
	"fmt"
	"net"
	"os"
	"sync"
)

// The range: above the fixed ports the tests publish (up to 21000 and a
// few) and below the ephemeral range.
const (
	low  = 25000
	high = 32000
)

var (
	mu   sync.Mutex
	next = low + (os.Getpid()*97)%(high-low)
	used = map[int]bool{}
)

// Take returns a port that is free on ip (127.0.0.1, or another loopback
// address for a second host) and was not returned before in this process.
func Take(ip string) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	for range high - low {
		port := next
		next++
		if next >= high {
			next = low
		}
		if used[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		if err != nil {
			continue
		}
		l.Close()
		used[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("freeport: no free port on %s in %d-%d", ip, low, high)
}

// Addr is Take as host:port.
func Addr(ip string) (string, error) {
	port, err := Take(ip)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(ip, fmt.Sprint(port)), nil
}

// N returns n distinct ports free on 127.0.0.1.
func N(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		p, err := Take("127.0.0.1")
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	return ports, nil
}
