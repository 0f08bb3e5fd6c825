package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// TestSkiffRun: `skiff run -f` runs a group from a YAML file in the
// foreground through an embedded server, prints its log, exits with the
// group, and deletes it; a group the API refuses is refused the same way,
// with the API's message and a non-zero exit.
func TestSkiffRun(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	tar := busyboxTar(t)
	write := func(name, yaml string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dataDir := filepath.Join(dir, "data")
	// A bridge and range of its own (no other test's), gone at the end: a
	// bridge left with a range another test uses would take its routes.
	const bridge, subnet = "skrun0", "10.219.0.0/16"
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
	run := func(file string, extra ...string) (string, error) {
		args := append([]string{"run", "-f", file, "--data-dir", dataDir, "--bridge", bridge, "--subnet", subnet}, extra...)
		out, err := exec.Command(skiffBin, args...).CombinedOutput()
		return string(out), err
	}

	ok := write("hello.yaml", `name: hello
properties:
  osType: Linux
  restartPolicy: Never
  containers:
  - name: app
    properties:
      image: busybox:local
      command: ["sh", "-c", "echo hello from skiff run; sleep 1"]
      resources: {requests: {cpu: 0.5, memoryInGB: 0.5}}
`)
	out, err := run(ok, "--import", tar)
	if err != nil {
		t.Fatalf("skiff run: %v\n%s", err, out)
	}
	for _, want := range []string{"imported ", "created container group hello", "[app] hello from skiff run", "group hello is Succeeded", "deleting container group hello"} {
		if !strings.Contains(out, want) {
			t.Errorf("skiff run output lacks %q:\n%s", want, out)
		}
	}
	// Deleted: the runtime holds no group, and a second run creates it
	// afresh (it is not "attached").
	if ents, _ := os.ReadDir(filepath.Join(dataDir, "runtime", "groups")); len(ents) != 0 {
		t.Errorf("runtime groups left after skiff run: %v", ents)
	}
	if out, err := run(ok); err != nil || !strings.Contains(out, "created container group hello") {
		t.Errorf("second skiff run: %v\n%s", err, out)
	}

	// The API's validation: a memory request over the maximum is refused
	// before anything runs.
	bad := write("bad.yaml", `name: bad
properties:
  osType: Linux
  containers:
  - name: app
    properties:
      image: busybox:local
      resources: {requests: {cpu: 0.5, memoryInGB: 100000}}
`)
	out, err = run(bad)
	if err == nil {
		t.Fatalf("skiff run of an invalid group succeeded:\n%s", out)
	}
	if !strings.Contains(out, "ResourceRequestsExceedMaximum") || strings.Contains(out, "created container group") {
		t.Errorf("skiff run of an invalid group: want the API's error and nothing created:\n%s", out)
	}
}
