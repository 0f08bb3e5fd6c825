package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
)

// TestConfigMapChangesInPlace: a container's config map is files at
// /mnt/configmap/<container>/<key>, as ACI mounts it. Creating the group
// again with other values (a PUT, as `az container create` on an existing
// group is) changes the files inside the running container, which is not
// restarted: its restart count stays 0, its start time and the files it
// wrote stay. A key left out goes. The map is shown by a read (it is no secret),
// the files outlive a restart of the server, and a container given a
// config map it did not have gets it (the group is created again, as it
// needs a new mount).
func TestConfigMapChangesInPlace(t *testing.T) {
	s := startServer(t)
	s.mustSkiff("image", "import", busyboxTar(t))
	s.mustSkiff("group", "create", "-n", "cm", "-l", "local")
	create := func(name string, kv ...string) {
		t.Helper()
		args := []string{"container", "create", "-g", "cm", "-n", name, "--image", "busybox:local",
			"--command-line", "sh -c 'echo started; exec sleep 3600'"}
		if len(kv) > 0 {
			args = append(append(args, "--config-map"), kv...)
		}
		s.mustSkiff(args...)
	}
	cat := func(name, key string) (string, int) {
		t.Helper()
		out, _, code := s.skiff("container", "exec", "-g", "cm", "-n", name, "--exec-command", `["cat","`+api.ConfigMapDir+`/`+name+`/`+key+`"]`)
		return out, code
	}
	state := func(name string) (int32, string) {
		t.Helper()
		g, err := s.Client.GetContainerGroup(t.Context(), "cm", name)
		if err != nil {
			t.Fatal(err)
		}
		iv := g.Properties.Containers[0].Properties.InstanceView
		if iv == nil || iv.CurrentState == nil {
			t.Fatalf("%s has no instance view: %+v", name, g.Properties)
		}
		return iv.RestartCount, iv.CurrentState.StartTime
	}

	create("app", "greeting=hello", "mode=fast")
	if out, code := cat("app", "greeting"); code != 0 || out != "hello" {
		t.Fatalf("cat greeting: exit %d, %q; want hello", code, out)
	}
	if out, code := cat("app", "mode"); code != 0 || out != "fast" {
		t.Fatalf("cat mode: exit %d, %q; want fast", code, out)
	}
	// A file the running container wrote: a container created again
	// would start from its image without it.
	s.mustSkiff("container", "exec", "-g", "cm", "-n", "app", "--exec-command", `["sh","-c","echo mine > /tmp/marker"]`)
	restarts, started := state("app")

	create("app", "greeting=bonjour")
	if out, code := cat("app", "greeting"); code != 0 || out != "bonjour" {
		t.Errorf("after the update, cat greeting: exit %d, %q; want bonjour", code, out)
	}
	if out, code := cat("app", "mode"); code == 0 {
		t.Errorf("the key left out of the update is still a file: %q", out)
	}
	if r, st := state("app"); r != restarts || r != 0 || st != started {
		t.Errorf("the update restarted the container: restartCount %d→%d, startTime %s→%s", restarts, r, started, st)
	}
	if out, _, code := s.skiff("container", "exec", "-g", "cm", "-n", "app", "--exec-command", `["cat","/tmp/marker"]`); code != 0 || out != "mine\n" {
		t.Errorf("the file the container wrote before the update: exit %d, %q", code, out)
	}
	if logs := s.mustSkiff("container", "logs", "-g", "cm", "-n", "app"); strings.Count(logs, "started") != 1 {
		t.Errorf("logs %q: the command ran more than once", logs)
	}
	if v := strings.TrimSpace(s.mustSkiff("container", "show", "-g", "cm", "-n", "app",
		"--query", "containers[0].configMap.keyValuePairs.greeting", "-o", "tsv")); v != "bonjour" {
		t.Errorf("show's config map: %q, want bonjour", v)
	}

	s.Stop(syscall.SIGTERM)
	s.Start()
	s.waitRunning("cm", "app")
	if out, code := cat("app", "greeting"); code != 0 || out != "bonjour" {
		t.Errorf("after a restart of the server, cat greeting: exit %d, %q; want bonjour", code, out)
	}

	// A config map for a container that had none: created again, with it.
	create("plain")
	if _, code := cat("plain", "k"); code == 0 {
		t.Fatalf("a container without a config map has its file")
	}
	create("plain", "k=v")
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, code := cat("plain", "k")
		if code == 0 && out == "v" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a config map given to a container without one: cat exit %d, %q", code, out)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Bad keys are refused, and nothing changes.
	if _, errOut, code := s.skiff("container", "create", "-g", "cm", "-n", "app", "--image", "busybox:local",
		"--command-line", "sh -c 'echo started; exec sleep 3600'", "--config-map", "a/b=c"); code == 0 || !strings.Contains(errOut, "InvalidConfigMap") {
		t.Errorf("a key with '/': exit %d, %q", code, errOut)
	}
	if out, code := cat("app", "greeting"); code != 0 || out != "bonjour" {
		t.Errorf("after a refused update, cat greeting: exit %d, %q", code, out)
	}
}
