// Command udpecho answers every UDP datagram with "echo:" and the datagram.
// Busybox has no UDP server, so tests build this (static, CGO_ENABLED=0)
// into an image layer to check published UDP ports.
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: udpecho PORT")
		os.Exit(2)
	}
	pc, err := net.ListenPacket("udp", ":"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			continue
		}
		fmt.Printf("got %q\n", buf[:n])
		_, _ = pc.WriteTo(append([]byte("echo:"), buf[:n]...), addr)
	}
}
