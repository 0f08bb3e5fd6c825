package testenv

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// WaitHTTP polls url until it answers 200 and returns the body; it fails
// the test after timeout, with the host's network state. Each attempt is
// short, so a connection whose first packets met a port mapping still
// being set up does not use up the whole wait.
func WaitHTTP(t testing.TB, url string, timeout time.Duration) string {
	t.Helper()
	hc := &http.Client{Timeout: 3 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return string(b)
			}
			err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered 200: %v\n%s", url, err, NetDiagnostics())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// NetDiagnostics is what the host's network looks like, for a test that
// could not reach a published port: the NAT rules, the nftables guards,
// the neighbours and addresses.
func NetDiagnostics() string {
	var b strings.Builder
	for _, c := range [][]string{{"iptables-save", "-t", "nat"}, {"nft", "list", "ruleset"}, {"ip", "neigh"}, {"ip", "-br", "addr"}} {
		out, err := exec.Command(c[0], c[1:]...).CombinedOutput()
		fmt.Fprintf(&b, "$ %s (%v)\n%s\n", strings.Join(c, " "), err, out)
	}
	return b.String()
}
