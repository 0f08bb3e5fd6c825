package volume_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/volume"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// syncBuffer collects log output from concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	m      *volume.Manager
	cfg    volume.Config
	root   string
	shares string
	logs   *syncBuffer
}

// setup makes a Manager on fresh directories on the real disk. Cleanup
// unmounts anything left below them and fails the test if something was.
func setup(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("these tests mount tmpfs and must run as root")
	}
	base := t.TempDir()
	root, err := filepath.EvalSymlinks(base)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{root: filepath.Join(root, "volumes"), shares: filepath.Join(root, "shares"), logs: &syncBuffer{}}
	e.cfg = volume.Config{
		Root:       e.root,
		SharesRoot: e.shares,
		Logger:     slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	e.m, err = volume.New(e.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(root))
		if err != nil {
			t.Errorf("mountinfo: %v", err)
			return
		}
		for i := len(mounts) - 1; i >= 0; i-- {
			t.Errorf("mount leaked: %s", mounts[i].Mountpoint)
			_ = unix.Unmount(mounts[i].Mountpoint, unix.MNT_DETACH)
		}
	})
	return e
}

func randomSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "TOPSECRET-" + hex.EncodeToString(b)
}

func assertNoMounts(t *testing.T, root string) {
	t.Helper()
	n, err := volume.CountMounts(root)
	if err != nil {
		t.Fatalf("CountMounts: %v", err)
	}
	if n != 0 {
		t.Fatalf("CountMounts(%s) = %d, want 0", root, n)
	}
}

func assertGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still exists (err %v)", path, err)
	}
}

func TestEmptyDir(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	srcs, err := e.m.Prepare(ctx, "g1", []api.Volume{{Name: "scratch", EmptyDir: &api.EmptyDirVolume{}}})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	src := srcs["scratch"]
	if want := filepath.Join(e.root, "g1", "emptydir", "scratch"); src.Path != want || src.ReadOnly {
		t.Fatalf("source = %+v, want path %s, read-write", src, want)
	}
	fi, err := os.Stat(src.Path)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o777 {
		t.Fatalf("emptyDir: stat %v, err %v; want a 0777 directory", fi, err)
	}
	if err := os.WriteFile(filepath.Join(src.Path, "f"), []byte("data"), 0o644); err != nil {
		t.Fatalf("emptyDir not writable: %v", err)
	}
	if err := e.m.Release(ctx, "g1"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	assertGone(t, src.Path)
	assertGone(t, filepath.Join(e.root, "g1"))
}

func TestSecret(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	val1, val2 := randomSecret(t), randomSecret(t)+"\nline2\x00\xff"
	enc1, enc2 := base64.StdEncoding.EncodeToString([]byte(val1)), base64.StdEncoding.EncodeToString([]byte(val2))
	srcs, err := e.m.Prepare(ctx, "g1", []api.Volume{{Name: "creds", Secret: map[string]string{
		"password":    enc1,
		"config.json": enc2,
		"empty":       "",
	}}})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	src := srcs["creds"]
	if want := filepath.Join(e.root, "g1", "secret", "creds"); src.Path != want || !src.ReadOnly {
		t.Fatalf("source = %+v, want path %s, read-only", src, want)
	}
	for key, want := range map[string]string{"password": val1, "config.json": val2, "empty": ""} {
		p := filepath.Join(src.Path, key)
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Fatalf("secret file %s = %q, %v; want the decoded value", key, got, err)
		}
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != 0o444 {
			t.Errorf("secret file %s mode %v, want 0444", key, fi.Mode().Perm())
		}
	}

	// A read-only tmpfs is mounted there.
	mounts, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(src.Path))
	if err != nil || len(mounts) != 1 {
		t.Fatalf("no mount at %s (%v)", src.Path, err)
	}
	if mounts[0].FSType != "tmpfs" || !hasOpt(mounts[0].Options, "ro") {
		t.Fatalf("mount at %s: fstype %s options %s; want read-only tmpfs", src.Path, mounts[0].FSType, mounts[0].Options)
	}
	if err := os.WriteFile(filepath.Join(src.Path, "new"), []byte("x"), 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("creating a file in the secret volume: err %v, want EROFS", err)
	}
	if f, err := os.OpenFile(filepath.Join(src.Path, "password"), os.O_WRONLY, 0); err == nil {
		f.Close()
		t.Fatal("secret file could be opened for writing")
	}

	// The values are nowhere on disk: walk Root without entering mounts.
	assertNotOnDisk(t, e.root, val1, enc1, val2[:20])
	if logs := e.logs.String(); strings.Contains(logs, val1) || strings.Contains(logs, enc1) || strings.Contains(logs, enc2) {
		t.Fatalf("secret value in logs:\n%s", logs)
	}

	// A fresh Manager (as after a restart) releases what the first made.
	m2, err := volume.New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := volume.CountMounts(e.root); n != 1 {
		t.Fatalf("CountMounts before release = %d, want 1", n)
	}
	if err := m2.Release(ctx, "g1"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	assertNoMounts(t, e.root)
	assertGone(t, filepath.Join(e.root, "g1"))
	assertNotOnDisk(t, e.root, val1, enc1, val2[:20])
}

func hasOpt(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// assertNotOnDisk fails if a file below root, outside any mount, contains
// one of the needles.
func assertNotOnDisk(t *testing.T, root string, needles ...string) {
	t.Helper()
	rootDev := devOf(t, root)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if devOf(t, p) != rootDev {
				return filepath.SkipDir // a mount (the tmpfs), not the disk
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(data, []byte(n)) {
				t.Errorf("secret found on disk in %s", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
}

func devOf(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	return st.Dev
}

func TestSecretBadBase64(t *testing.T) {
	e := setup(t)
	secret := "SUPERSECRET" + randomSecret(t) + "!!"
	_, err := e.m.Prepare(context.Background(), "g1", []api.Volume{
		{Name: "ok", EmptyDir: &api.EmptyDirVolume{}},
		{Name: "creds", Secret: map[string]string{"good": "aGVsbG8=", "token": secret}},
	})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("err = %v, want ErrInvalidArgument", err)
	}
	if !strings.Contains(err.Error(), `"token"`) || !strings.Contains(err.Error(), `"creds"`) {
		t.Fatalf("error %q does not name the volume and key", err)
	}
	if strings.Contains(err.Error(), "SUPERSECRET") || strings.Contains(e.logs.String(), "SUPERSECRET") {
		t.Fatalf("error or logs contain the value: %q", err)
	}
	assertGone(t, filepath.Join(e.root, "g1"))
	assertNoMounts(t, e.root)
}

// gitFixture is a bare repository with main (v1 then v2 of hello.txt, tag
// v1 on the first commit) and a branch "feature", served over HTTP on
// 127.0.0.1 by git http-backend.
type gitFixture struct {
	repo   string // path of the bare repository, ending in repo.git
	url    string // its http:// URL
	srv    *testenv.GitServer
	first  string // sha of the first commit
	second string
}

func newGitFixture(t *testing.T) gitFixture {
	t.Helper()
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=Test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(work, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	git("init", "-q", "-b", "main")
	write("hello.txt", "v1\n")
	git("add", "hello.txt")
	git("commit", "-q", "-m", "first")
	git("tag", "v1")
	f := gitFixture{repo: filepath.Join(dir, "repo.git"), first: git("rev-parse", "HEAD")}
	write("hello.txt", "v2\n")
	git("commit", "-q", "-am", "second")
	f.second = git("rev-parse", "HEAD")
	git("checkout", "-q", "-b", "feature")
	write("feature.txt", "feature\n")
	git("add", "feature.txt")
	git("commit", "-q", "-m", "feature")
	git("checkout", "-q", "main")
	git("clone", "-q", "--bare", work, f.repo)
	f.srv = testenv.ServeGit(t, dir)
	f.url = f.srv.URL + "/repo.git"
	return f
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func TestGitRepo(t *testing.T) {
	e := setup(t)
	f := newGitFixture(t)
	ctx := context.Background()
	srcs, err := e.m.Prepare(ctx, "g1", []api.Volume{
		{Name: "default", GitRepo: &api.GitRepoVolume{Repository: f.url}},
		{Name: "url", GitRepo: &api.GitRepoVolume{Repository: f.url, Directory: "."}},
		{Name: "commit", GitRepo: &api.GitRepoVolume{Repository: f.url, Directory: "app", Revision: f.first}},
		{Name: "tag", GitRepo: &api.GitRepoVolume{Repository: f.url, Directory: "a/b", Revision: "v1"}},
		{Name: "branch", GitRepo: &api.GitRepoVolume{Repository: f.url, Directory: ".", Revision: "feature"}},
	})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	for name, src := range srcs {
		if want := filepath.Join(e.root, "g1", "gitrepo", name); src.Path != want || src.ReadOnly {
			t.Fatalf("volume %s: source %+v, want %s read-write", name, src, want)
		}
	}
	checks := []struct{ file, want string }{
		{filepath.Join(srcs["default"].Path, "repo", "hello.txt"), "v2\n"}, // basename of repo.git, default branch
		{filepath.Join(srcs["url"].Path, "hello.txt"), "v2\n"},
		{filepath.Join(srcs["commit"].Path, "app", "hello.txt"), "v1\n"},
		{filepath.Join(srcs["tag"].Path, "a", "b", "hello.txt"), "v1\n"},
		{filepath.Join(srcs["branch"].Path, "feature.txt"), "feature\n"},
	}
	for _, c := range checks {
		if got := readFile(t, c.file); got != c.want {
			t.Errorf("%s = %q, want %q", c.file, got, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(srcs["default"].Path, "repo", "feature.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("default branch clone has the feature branch's file (err %v)", err)
	}
	if err := e.m.Release(ctx, "g1"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	assertGone(t, filepath.Join(e.root, "g1"))
}

func TestGitRepoErrors(t *testing.T) {
	e := setup(t)
	f := newGitFixture(t)
	ctx := context.Background()
	secret := randomSecret(t)
	cases := []struct {
		name     string
		git      api.GitRepoVolume
		contains []string
		absent   string
	}{
		{"missing", api.GitRepoVolume{Repository: f.srv.URL + "/nope.git"}, []string{"nope.git", "not found"}, ""},
		{"badrev", api.GitRepoVolume{Repository: f.url, Revision: "no-such-branch"}, []string{`"no-such-branch"`, "not found"}, ""},
		{"creds", api.GitRepoVolume{Repository: "https://alice:" + secret + "@127.0.0.1:1/repo.git"}, []string{"REDACTED", "127.0.0.1:1"}, secret},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Volumes made before the failing clone are rolled back.
			_, err := e.m.Prepare(ctx, "g-"+c.name, []api.Volume{
				{Name: "scratch", EmptyDir: &api.EmptyDirVolume{}},
				{Name: "creds", Secret: map[string]string{"k": "aGVsbG8="}},
				{Name: "src", GitRepo: &c.git},
			})
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want ErrInvalidArgument", err)
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			for _, s := range append(c.contains, `volume "src"`) {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not contain %q", msg, s)
				}
			}
			if c.absent != "" && (strings.Contains(msg, c.absent) || strings.Contains(e.logs.String(), c.absent)) {
				t.Errorf("error or logs contain the credential: %q", msg)
			}
			assertGone(t, filepath.Join(e.root, "g-"+c.name))
			assertNoMounts(t, e.root)
		})
	}
}

// TestGitRepoTimeout clones from a loopback server that accepts and never
// answers: the clone is killed after GitTimeout and the group rolled back.
func TestGitRepoTimeout(t *testing.T) {
	e := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	cfg := e.cfg
	cfg.GitTimeout = 500 * time.Millisecond
	m, err := volume.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vols := []api.Volume{
		{Name: "creds", Secret: map[string]string{"k": "aGVsbG8="}},
		{Name: "src", GitRepo: &api.GitRepoVolume{Repository: "http://" + ln.Addr().String() + "/repo.git"}},
	}
	start := time.Now()
	_, err = m.Prepare(context.Background(), "g1", vols)
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v, want ErrUnavailable (timed out)", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("Prepare took %s with a 500ms git timeout", d)
	}
	assertGone(t, filepath.Join(e.root, "g1"))
	assertNoMounts(t, e.root)

	// The caller's own deadline is reported as such.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = e.m.Prepare(ctx, "g2", vols)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	assertGone(t, filepath.Join(e.root, "g2"))
	assertNoMounts(t, e.root)
}

func TestAzureFileShare(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	share := func(ro bool) []api.Volume {
		return []api.Volume{{Name: "data", AzureFile: &api.AzureFileVolume{
			StorageAccountName: "acct1", ShareName: "share1", ReadOnly: ro, StorageAccountKey: "ACCOUNTKEYSECRET",
		}}}
	}
	a, err := e.m.Prepare(ctx, "groupa", share(false))
	if err != nil {
		t.Fatalf("Prepare A: %v", err)
	}
	want := filepath.Join(e.shares, "acct1", "share1")
	if a["data"].Path != want || a["data"].ReadOnly {
		t.Fatalf("source %+v, want %s read-write", a["data"], want)
	}
	if err := os.WriteFile(filepath.Join(want, "persist.txt"), []byte("from A"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Release(ctx, "groupa"); err != nil {
		t.Fatalf("Release A: %v", err)
	}
	b, err := e.m.Prepare(ctx, "groupb", share(true))
	if err != nil {
		t.Fatalf("Prepare B: %v", err)
	}
	if b["data"].Path != want || !b["data"].ReadOnly {
		t.Fatalf("source %+v, want %s read-only", b["data"], want)
	}
	if got := readFile(t, filepath.Join(b["data"].Path, "persist.txt")); got != "from A" {
		t.Fatalf("group B reads %q from the share, want %q", got, "from A")
	}
	if err := e.m.Release(ctx, "groupb"); err != nil {
		t.Fatalf("Release B: %v", err)
	}
	if got := readFile(t, filepath.Join(want, "persist.txt")); got != "from A" {
		t.Fatalf("share data after releases = %q", got)
	}
	if strings.Contains(e.logs.String(), "ACCOUNTKEYSECRET") {
		t.Fatal("storage account key logged")
	}
}

// A deleted share's directory goes with its data, from the host's shares
// only: a link in its place is removed, never followed; other shares stay.
func TestRemoveShare(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	vols := func(share string) []api.Volume {
		return []api.Volume{{Name: "data", AzureFile: &api.AzureFileVolume{StorageAccountName: "acct1", ShareName: share}}}
	}
	for i, share := range []string{"data.1", "data.2"} {
		src, err := e.m.Prepare(ctx, fmt.Sprintf("group%d", i), vols(share))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src["data"].Path, "f"), []byte(share), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := e.m.Release(ctx, fmt.Sprintf("group%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(e.shares, "acct1", "link.3")); err != nil {
		t.Fatal(err)
	}
	dirs, err := e.m.ShareDirs()
	if err != nil || len(dirs) != 2 || dirs[0] != (volume.ShareDir{Account: "acct1", Dir: "data.1"}) || dirs[1].Dir != "data.2" {
		t.Fatalf("ShareDirs = %+v, %v", dirs, err)
	}
	if err := e.m.RemoveShare("acct1", "data.1"); err != nil {
		t.Fatal(err)
	}
	assertGone(t, filepath.Join(e.shares, "acct1", "data.1"))
	if got := readFile(t, filepath.Join(e.shares, "acct1", "data.2", "f")); got != "data.2" {
		t.Fatalf("the other share holds %q", got)
	}
	if err := e.m.RemoveShare("acct1", "link.3"); err != nil {
		t.Fatal(err)
	}
	assertGone(t, filepath.Join(e.shares, "acct1", "link.3"))
	if got := readFile(t, filepath.Join(outside, "keep")); got != "x" {
		t.Fatal("RemoveShare followed a link")
	}
	for _, bad := range [][2]string{{"..", "x"}, {"acct1", ".."}, {"acct1", "a/b"}, {"", "x"}} {
		if err := e.m.RemoveShare(bad[0], bad[1]); !errdefs.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("RemoveShare(%q, %q) = %v, want ErrInvalidArgument", bad[0], bad[1], err)
		}
	}
	if err := e.m.RemoveShare("acct1", "absent.9"); err != nil {
		t.Fatalf("removing an absent share: %v", err)
	}
}

func TestReleaseIdempotent(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	if err := e.m.Release(ctx, "never-prepared"); err != nil {
		t.Fatalf("Release of unknown group: %v", err)
	}
	vols := []api.Volume{
		{Name: "s", Secret: map[string]string{"k": "aGVsbG8="}},
		{Name: "t", Secret: map[string]string{"k": "aGVsbG8="}},
		{Name: "e", EmptyDir: &api.EmptyDirVolume{}},
	}
	if _, err := e.m.Prepare(ctx, "g1", vols); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if _, err := e.m.Prepare(ctx, "g1", vols); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second Prepare: err %v, want ErrAlreadyExists", err)
	}
	if n, _ := volume.CountMounts(e.root); n != 2 {
		t.Fatalf("CountMounts = %d, want 2", n)
	}
	// A busy mount (open directory as cwd would be; here an open file) is
	// still released.
	fh, err := os.Open(filepath.Join(e.root, "g1", "secret", "s", "k"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	for i := 0; i < 2; i++ {
		if err := e.m.Release(ctx, "g1"); err != nil {
			t.Fatalf("Release #%d: %v", i+1, err)
		}
		assertNoMounts(t, e.root)
		assertGone(t, filepath.Join(e.root, "g1"))
	}
	// The group can be prepared again after release.
	if _, err := e.m.Prepare(ctx, "g1", vols); err != nil {
		t.Fatalf("Prepare after Release: %v", err)
	}
	if err := e.m.Release(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	assertNoMounts(t, e.root)
}

func TestValidation(t *testing.T) {
	e := setup(t)
	ed := &api.EmptyDirVolume{}
	cases := []struct {
		name  string
		group string
		vols  []api.Volume
		want  string // substring of the error
	}{
		{"traversal name", "g", []api.Volume{{Name: "../x", EmptyDir: ed}}, `"../x"`},
		{"slash name", "g", []api.Volume{{Name: "a/b", EmptyDir: ed}}, `"a/b"`},
		{"empty name", "g", []api.Volume{{Name: "", EmptyDir: ed}}, "volume name"},
		{"traversal group", "..", []api.Volume{{Name: "v", EmptyDir: ed}}, "group ID"},
		{"duplicate", "g", []api.Volume{{Name: "v", EmptyDir: ed}, {Name: "v", EmptyDir: ed}}, `volume "v": name is used by more than one`},
		{"no source", "g", []api.Volume{{Name: "v"}}, `volume "v": must set exactly one`},
		{"two sources", "g", []api.Volume{{Name: "v", EmptyDir: ed, Secret: map[string]string{}}}, `volume "v": must set exactly one`},
		{"secret key slash", "g", []api.Volume{{Name: "v", Secret: map[string]string{"a/b": "aGk="}}}, `"a/b"`},
		{"secret key dotdot", "g", []api.Volume{{Name: "v", Secret: map[string]string{"..": "aGk="}}}, `".."`},
		{"share traversal", "g", []api.Volume{{Name: "v", AzureFile: &api.AzureFileVolume{StorageAccountName: "acct", ShareName: "../x"}}}, `"../x"`},
		{"account traversal", "g", []api.Volume{{Name: "v", AzureFile: &api.AzureFileVolume{StorageAccountName: "..", ShareName: "s"}}}, "storageAccountName"},
		{"git no repo", "g", []api.Volume{{Name: "v", GitRepo: &api.GitRepoVolume{}}}, "repository is required"},
		{"git option repo", "g", []api.Volume{{Name: "v", GitRepo: &api.GitRepoVolume{Repository: "--upload-pack=touch /tmp/pwned"}}}, "must not start with '-'"},
		{"git option rev", "g", []api.Volume{{Name: "v", GitRepo: &api.GitRepoVolume{Repository: "https://example.com/r.git", Revision: "--output=/x"}}}, "must not start with '-'"},
		{"git dir traversal", "g", []api.Volume{{Name: "v", GitRepo: &api.GitRepoVolume{Repository: "https://example.com/r.git", Directory: "../x"}}}, `"../x"`},
		{"git dir absolute", "g", []api.Volume{{Name: "v", GitRepo: &api.GitRepoVolume{Repository: "https://example.com/r.git", Directory: "/etc"}}}, `"/etc"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.m.Prepare(context.Background(), c.group, c.vols)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
	entries, err := os.ReadDir(e.root)
	if err != nil || len(entries) != 0 {
		t.Fatalf("rejected specs left %d entries under Root (%v)", len(entries), err)
	}
	if entries, _ := os.ReadDir(e.shares); len(entries) != 0 {
		t.Fatalf("rejected specs created shares: %v", entries)
	}
	if _, err := os.Stat("/tmp/pwned"); err == nil {
		t.Fatal("repository option was executed")
	}
}

func TestNewRejectsOverlap(t *testing.T) {
	dir := t.TempDir()
	for _, cfg := range []volume.Config{
		{Root: dir, SharesRoot: filepath.Join(dir, "shares")},
		{Root: filepath.Join(dir, "v"), SharesRoot: dir},
		{Root: "", SharesRoot: dir},
	} {
		if _, err := volume.New(cfg); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("New(%+v): err %v, want ErrInvalidArgument", cfg, err)
		}
	}
}
