package cli_test

import (
	"net/http"
	"testing"
)

// TestDeleteGracePeriod: --grace-period N asks the server for N seconds
// between SIGTERM and SIGKILL (0: kill at once); without it the server's
// --stop-grace applies, and a negative one is a usage error.
func TestDeleteGracePeriod(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addContainerGroup("rg", twoContainers)
	h.ok("container", "delete", "-g", "rg", "-n", "pair", "--yes", "--grace-period", "0")
	if q := h.rec.last(http.MethodDelete, "/containerGroups/pair").Query; q.Get("gracePeriodSeconds") != "0" {
		t.Errorf("delete --grace-period 0 sent %v, want gracePeriodSeconds=0", q)
	}
	h.addContainerGroup("rg", twoContainers)
	h.ok("container", "delete", "-g", "rg", "-n", "pair", "--yes")
	if q := h.rec.last(http.MethodDelete, "/containerGroups/pair").Query; q.Has("gracePeriodSeconds") {
		t.Errorf("delete without --grace-period sent %v", q)
	}
	h.fails(2, "--grace-period must be 0 or more seconds", "container", "delete", "-g", "rg", "-n", "pair", "--yes", "--grace-period", "-1")
}
