package testenv

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"
)

// HostListener listens on the host's TCP address addr (port 0 picks one)
// until the test ends, and answers every connection with the line "host"
// once it has read a line (or waited 3 s). It returns the port. Network
// tests use it as the host service a group must not reach.
func HostListener(t testing.TB, addr string) int {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			_, _ = bufio.NewReader(c).ReadString('\n')
			fmt.Fprintln(c, "host")
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}
