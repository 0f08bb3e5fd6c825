// Package hostaddr finds the host's primary address: the one `skiff
// server` publishes ports on and `skiff virtual-node` registers as the
// node's InternalIP when none is given.
package hostaddr

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// PrimaryAddress is the IPv4 address of the interface holding the default
// route, or 127.0.0.1.
func PrimaryAddress() string {
	data, err := os.ReadFile("/proc/net/route")
	if err == nil {
		var iface string
		for i, line := range strings.Split(string(data), "\n") {
			var name, dest string
			if i == 0 || len(line) == 0 {
				continue
			}
			fmt.Sscanf(line, "%s %s", &name, &dest)
			if dest == "00000000" {
				iface = name
				break
			}
		}
		if ifc, err := net.InterfaceByName(iface); err == nil {
			addrs, _ := ifc.Addrs()
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
					return ipn.IP.String()
				}
			}
		}
	}
	return "127.0.0.1"
}
