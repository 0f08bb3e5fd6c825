package runtime_test

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// A gitRepo volume whose repository is bigger than the host's limit fails
// its group, with an event and error that say so; nothing is left.
func TestGitRepoTooLargeFailsGroup(t *testing.T) {
	e := newEnvWith(t, func(o *runtime.HostOptions) { o.GitRepoMaxBytes = 1 << 20 })
	served := t.TempDir()
	work := t.TempDir()
	big := make([]byte, 3<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "blob.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-C", work, "init", "-q", "-b", "main"}, {"-C", work, "add", "."},
		{"-C", work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "big"},
		{"clone", "-q", "--bare", work, filepath.Join(served, "big.git")},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	srv := testenv.ServeGit(t, served)

	spec := group("bigrepo", container("app", e.image, "sleep", "3600"))
	spec.Properties.Volumes = []api.Volume{{Name: "src", GitRepo: &api.GitRepoVolume{Repository: srv.URL + "/big.git"}}}
	spec.Properties.Containers[0].Properties.VolumeMounts = []api.VolumeMount{{Name: "src", MountPath: "/src"}}
	e.create("bigrepo", spec)
	st := e.waitState("bigrepo", api.GroupFailed, 60*time.Second)
	want := "larger than the limit of 1 MiB"
	if st.Error == nil || st.Error.Code != runtime.CodeVolumeFailed || !strings.Contains(st.Error.Message, want) {
		t.Errorf("group error %+v, want %s saying %q", st.Error, runtime.CodeVolumeFailed, want)
	}
	found := false
	for _, ev := range st.Events {
		found = found || (ev.Name == "Failed" && strings.Contains(ev.Message, want))
	}
	if !found {
		t.Errorf("no Failed event saying %q: %s", want, dump(st.Events))
	}
	if st.Containers[0].CurrentState.State == api.ContainerRunning {
		t.Errorf("the container runs without its volume")
	}
}
