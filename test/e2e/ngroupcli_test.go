package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestProfileAndNGroupCommands: the skiff commands of profiles and
// NGroups, as a user types them. profile create takes container create's
// flags (a second create is revision 2); ngroup create returns once its
// members run, scale and update likewise; bad input is one line and a
// non-zero exit.
func TestProfileAndNGroupCommands(t *testing.T) {
	s := startServer(t)
	s.mustSkiff("image", "import", busyboxTar(t))
	s.mustSkiff("group", "create", "-n", "cli", "-l", "local")
	rev := func(out string) int {
		var p struct{ Properties struct{ Revision int } }
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return p.Properties.Revision
	}
	create := func(word string) int {
		return rev(s.mustSkiff("container", "profile", "create", "-g", "cli", "-n", "app", "--image", "busybox:local",
			"--command-line", "sh -c 'echo "+word+"; exec sleep 3600'", "--ip-address", "Private", "--cpu", "0.1", "--memory", "0.1", "-o", "json"))
	}
	if r := create("one"); r != 1 {
		t.Fatalf("first profile create: revision %d", r)
	}
	if r := create("two"); r != 2 {
		t.Fatalf("second profile create: revision %d", r)
	}
	if out := s.mustSkiff("container", "profile", "show", "-g", "cli", "-n", "app", "--revision", "1", "-o", "json"); rev(out) != 1 || !strings.Contains(out, "echo one") {
		t.Errorf("profile show --revision 1: %s", out)
	}
	if out := s.mustSkiff("container", "profile", "list-revisions", "-g", "cli", "-n", "app", "--query", "[].properties.revision", "-o", "tsv"); strings.Fields(out)[0] != "2" || len(strings.Fields(out)) != 2 {
		t.Errorf("list-revisions: %q", out)
	}

	members := func() []string {
		out := s.mustSkiff("container", "list", "-g", "cli", "--query", `[?tags."skiff.ngroup"=='webs' && provisioningState!='Deleting'].name`, "-o", "tsv")
		return strings.Fields(out)
	}
	out := s.mustSkiff("container", "ngroup", "create", "-g", "cli", "-n", "webs", "--profile", "app", "--revision", "1", "--count", "2", "--prefix", "w-", "-o", "json")
	if !strings.Contains(out, `"provisioningState": "Succeeded"`) && !strings.Contains(out, `"provisioningState":"Succeeded"`) {
		t.Errorf("ngroup create did not wait for Succeeded: %s", out)
	}
	if ms := members(); len(ms) != 2 || !strings.HasPrefix(ms[0], "w-") {
		t.Fatalf("members after create: %v", ms)
	}
	for _, m := range members() {
		if logs := s.mustSkiff("container", "logs", "-g", "cli", "-n", m); strings.TrimSpace(logs) != "one" {
			t.Errorf("member %s logs %q, want one (revision 1)", m, logs)
		}
	}
	s.mustSkiff("container", "ngroup", "scale", "-g", "cli", "-n", "webs", "--count", "1")
	if ms := members(); len(ms) != 1 {
		t.Errorf("members after scale 1: %v", ms)
	}
	if _, stderr, code := s.skiff("container", "ngroup", "scale", "-g", "cli", "-n", "webs", "--count", "500"); code == 0 || !strings.Contains(stderr, "InvalidDesiredCount") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("scale 500: exit %d, %q; want one line with InvalidDesiredCount", code, stderr)
	}
	if _, stderr, code := s.skiff("container", "ngroup", "create", "-g", "cli", "-n", "x", "--profile", "nope"); code == 0 || !strings.Contains(stderr, "ContainerGroupProfileNotFound") {
		t.Errorf("ngroup create with an unknown profile: exit %d, %q", code, stderr)
	}
	if out := s.mustSkiff("container", "ngroup", "list", "-g", "cli", "--query", "[].name", "-o", "tsv"); strings.TrimSpace(out) != "webs" {
		t.Errorf("ngroup list: %q", out)
	}
	s.mustSkiff("container", "ngroup", "delete", "-g", "cli", "-n", "webs", "--yes")
	if ms := members(); len(ms) != 0 {
		t.Errorf("members after delete: %v", ms)
	}
	if _, _, code := s.skiff("container", "ngroup", "show", "-g", "cli", "-n", "webs"); code != 3 {
		t.Errorf("show after delete: exit %d, want 3 (not found)", code)
	}
}
