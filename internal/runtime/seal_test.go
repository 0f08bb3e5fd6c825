package runtime_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// TestSecretsNeverReachADisk: a group's secure environment value, secret
// volume contents and registry password are in no file of the data dir,
// nor of the runtime's tmpfs, while the container sees them; after a
// runtime restart and after a host reboot (the tmpfs and every process
// gone) the group runs again from its sealed record.
func TestSecretsNeverReachADisk(t *testing.T) {
	e := newEnv(t)
	const (
		envSecret  = "zz-secure-env-7731"
		fileSecret = "zz-secret-file-4242"
		regSecret  = "zz-registry-pw-3131"
	)
	fileB64 := base64.StdEncoding.EncodeToString([]byte(fileSecret))
	needles := []string{envSecret, fileSecret, fileB64, regSecret}
	priv := testenv.StartRegistry(t, testenv.RegistryOptions{Username: "alice", Password: regSecret})
	img := testenv.Push(t, priv, "private/app:v1", testenv.BusyboxImage(t, testenv.ImageOptions{}))

	spec := group("vault", container("app", img, "sleep", "3600"))
	c := &spec.Properties.Containers[0].Properties
	c.EnvironmentVariables = []api.EnvironmentVariable{{Name: "TOKEN", SecureValue: envSecret}, {Name: "MODE", Value: "plain"}}
	c.VolumeMounts = []api.VolumeMount{{Name: "creds", MountPath: "/creds", ReadOnly: true}}
	spec.Properties.Volumes = []api.Volume{{Name: "creds", Secret: map[string]string{"token": fileB64}}}
	spec.Properties.ImageRegistryCredentials = []api.ImageRegistryCredential{{Server: priv.Addr, Username: "alice", Password: regSecret}}
	e.create("vault", spec)
	running := func(s *runtime.GroupStatus) bool {
		return s.State == api.GroupRunning && s.Container("app").CurrentState.State == api.ContainerRunning && s.Container("app").Pid > 0
	}
	pid := e.waitFor("vault", 60*time.Second, "the container running", running).Container("app").Pid

	_, _, _, _, rtDir := runtime.HostLayout(e.dataDir)
	runDir := runtime.RunDir(rtDir)
	check := func(when string) {
		t.Helper()
		out, code := e.exec("vault", "app", "sh", "-c", `echo "$TOKEN $MODE"; cat /creds/token`)
		if want := envSecret + " plain\n" + fileSecret; code != 0 || out != want {
			t.Fatalf("%s: the container sees %q (exit %d), want %q", when, out, code, want)
		}
		if found := testenv.FindPlain(t, needles, e.dataDir, runDir); len(found) > 0 {
			t.Fatalf("%s: plain secrets in files:\n%s", when, strings.Join(found, "\n"))
		}
		var st unix.Statfs_t
		if err := unix.Statfs(runDir, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
			t.Fatalf("%s: run dir %s is not on a tmpfs (%v)", when, runDir, err)
		}
		fi, err := os.Stat(runDir)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s: run dir mode %v, %v; want 0700", when, fi.Mode(), err)
		}
		if _, err := os.Stat(filepath.Join(runtime.BundlesDir(rtDir), "vault_app", "config.json.sealed")); err != nil {
			t.Fatalf("%s: the bundle has no sealed spec: %v", when, err)
		}
	}
	check("running")

	// A runtime restart re-attaches: same process, same values.
	e.host.Close()
	e.open()
	st := e.waitFor("vault", 30*time.Second, "the container running", running)
	if got := st.Container("app").Pid; got != pid {
		t.Fatalf("after a runtime restart the container's pid is %d, was %d", got, pid)
	}
	check("after a runtime restart")

	// A host reboot: the shim and the container are gone without a trace,
	// and so is the tmpfs with the bundle and runc's state.
	e.host.Close()
	var run struct {
		ShimPid int `json:"shimPid"`
	}
	data, err := os.ReadFile(filepath.Join(rtDir, "groups", "vault", "containers", "app", "run.json"))
	if err == nil {
		err = json.Unmarshal(data, &run)
	}
	if err != nil || run.ShimPid == 0 {
		t.Fatalf("run.json: %v %s", err, data)
	}
	for _, p := range []int{run.ShimPid, pid} { // the shim first: no exit record
		if err := syscall.Kill(p, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", p, err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("container %d did not die", pid)
		}
	}
	if err := os.RemoveAll(runDir); err != nil {
		t.Fatal(err)
	}
	e.open()
	st = e.waitFor("vault", 60*time.Second, "the group running again", func(s *runtime.GroupStatus) bool {
		c := s.Container("app")
		return s.State == api.GroupRunning && c.CurrentState.State == api.ContainerRunning && c.Pid > 0 && c.Pid != pid
	})
	check("after a host reboot")
}
