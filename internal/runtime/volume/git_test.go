package volume_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/volume"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// bareRepo makes root/name, a bare repository with one commit of files.
func bareRepo(t *testing.T, root, name string, files map[string][]byte) {
	t.Helper()
	work := t.TempDir()
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=Test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git(work, "init", "-q", "-b", "main")
	for f, data := range files {
		if err := os.WriteFile(filepath.Join(work, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(work, "add", ".")
	git(work, "commit", "-q", "-m", "files")
	git(root, "clone", "-q", "--bare", work, filepath.Join(root, name))
}

// A gitRepo volume clones only from http, https and git URLs: a local path,
// file://, ssh (URL or scp-like), git's transport helpers and anything that
// reads as an option are refused before anything is made for the group,
// and git never runs for them (the ext:: command would leave a file).
func TestGitRepoOnlyRemoteURLs(t *testing.T) {
	e := setup(t)
	f := newGitFixture(t)
	marker := filepath.Join(t.TempDir(), "pwned")
	for _, repo := range []string{
		f.repo,
		"file://" + f.repo,
		"FILE://" + f.repo,
		"ssh://git@127.0.0.1/repo.git",
		"git@127.0.0.1:repo.git",
		"ext::sh -c touch% " + marker,
		"ext::touch " + marker,
		"fd::3",
		"--upload-pack=touch " + marker,
		"-u touch " + marker,
		"HTTP://127.0.0.1/repo.git",
		"http:///repo.git",
		"https://127.0.0.1/repo.git\n--upload-pack=x",
		"./repo.git",
	} {
		_, err := e.m.Prepare(context.Background(), "g1", []api.Volume{{Name: "src", GitRepo: &api.GitRepoVolume{Repository: repo}}})
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("repository %q: err = %v, want ErrInvalidArgument", repo, err)
			continue
		}
		if !strings.Contains(err.Error(), `volume "src"`) {
			t.Errorf("repository %q: error %q does not name the volume", repo, err)
		}
		assertGone(t, filepath.Join(e.root, "g1"))
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("a refused repository ran a command (%s exists)", marker)
	}
	if n := f.srv.Requests(); n != 0 {
		t.Errorf("the git server got %d requests for refused repositories", n)
	}
}

// A repository bigger than GitMaxBytes is aborted with a message that says
// so; one within it clones.
func TestGitRepoSizeLimit(t *testing.T) {
	e := setup(t)
	root := t.TempDir()
	big := make([]byte, 3<<20) // random: git cannot compress it
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	bareRepo(t, root, "big.git", map[string][]byte{"blob.bin": big})
	srv := testenv.ServeGit(t, root)

	cfg := e.cfg
	cfg.GitMaxBytes = 1 << 20
	m, err := volume.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vols := []api.Volume{
		{Name: "scratch", EmptyDir: &api.EmptyDirVolume{}},
		{Name: "src", GitRepo: &api.GitRepoVolume{Repository: srv.URL + "/big.git", Directory: "."}},
	}
	_, err = m.Prepare(context.Background(), "g1", vols)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "larger than the limit of 1 MiB") {
		t.Fatalf("err = %v, want ErrInvalidArgument saying the repository is larger than 1 MiB", err)
	}
	t.Logf("error: %v", err)
	assertGone(t, filepath.Join(e.root, "g1"))
	assertNoMounts(t, e.root)

	cfg.GitMaxBytes = 16 << 20
	if m, err = volume.New(cfg); err != nil {
		t.Fatal(err)
	}
	srcs, err := m.Prepare(context.Background(), "g2", vols)
	if err != nil {
		t.Fatalf("a 3 MiB repository with a 16 MiB limit: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(srcs["src"].Path, "blob.bin")); err != nil || fi.Size() != int64(len(big)) {
		t.Errorf("blob.bin: %v, %v", fi, err)
	}
	if err := m.Release(context.Background(), "g2"); err != nil {
		t.Fatal(err)
	}
}

// The host's git configuration and credentials play no part in a clone: a
// ~/.gitconfig (and an XDG one, and config in the environment) that
// rewrites the URL to another repository and names a credential helper
// changes nothing, and a server asking for credentials gets none.
func TestGitRepoIgnoresHostGitConfig(t *testing.T) {
	e := setup(t)
	f := newGitFixture(t)
	evilRoot := t.TempDir()
	bareRepo(t, evilRoot, "evil.git", map[string][]byte{"hello.txt": []byte("evil\n")})
	evil := testenv.ServeGit(t, evilRoot)

	var asked []string
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok {
			asked = append(asked, u+":"+p)
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
		http.Error(w, "who are you", http.StatusUnauthorized)
	}))
	t.Cleanup(auth.Close)

	home := t.TempDir()
	marker := filepath.Join(home, "helper-ran")
	config := `[url "` + evil.URL + `/evil.git"]
	insteadOf = ` + f.url + `
[credential]
	helper = "!f() { touch ` + marker + `; echo username=host-user; echo password=host-secret; }; f"
[protocol "file"]
	allow = always
`
	for _, p := range []string{filepath.Join(home, ".gitconfig"), filepath.Join(home, "xdg", "git", "config")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "xdg"))
	t.Setenv("GIT_CONFIG_GLOBAL", filepath.Join(home, ".gitconfig"))
	t.Setenv("GIT_CONFIG_COUNT", "1")
	t.Setenv("GIT_CONFIG_KEY_0", "url."+evil.URL+"/evil.git.insteadOf")
	t.Setenv("GIT_CONFIG_VALUE_0", f.url)
	// The host's own git does follow it: the test would prove nothing
	// otherwise.
	if out, err := exec.Command("git", "config", "--get-regexp", "^url\\.").CombinedOutput(); err != nil || !strings.Contains(string(out), "evil.git") {
		t.Fatalf("the host git config is not in effect for the host's git: %v %s", err, out)
	}

	srcs, err := e.m.Prepare(context.Background(), "g1", []api.Volume{{Name: "src", GitRepo: &api.GitRepoVolume{Repository: f.url, Directory: "."}}})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if got := readFile(t, filepath.Join(srcs["src"].Path, "hello.txt")); got != "v2\n" {
		t.Errorf("hello.txt = %q: the host's url.insteadOf was followed", got)
	}
	if n := evil.Requests(); n != 0 {
		t.Errorf("the rewritten URL's server got %d requests", n)
	}
	if err := e.m.Release(context.Background(), "g1"); err != nil {
		t.Fatal(err)
	}

	_, err = e.m.Prepare(context.Background(), "g2", []api.Volume{{Name: "src", GitRepo: &api.GitRepoVolume{Repository: auth.URL + "/private.git"}}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("clone from a server asking for credentials: err = %v, want ErrInvalidArgument", err)
	}
	t.Logf("error: %v", err)
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the host's credential helper ran")
	}
	if len(asked) > 0 {
		t.Errorf("credentials were sent: %q", asked)
	}
	assertGone(t, filepath.Join(e.root, "g2"))
}
