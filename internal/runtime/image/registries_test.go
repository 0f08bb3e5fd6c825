package image_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/image"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// faultProxy is a FAULT INJECTOR: a reverse proxy in front of a real
// docker-registry whose hook may answer a request itself (returning true)
// instead of forwarding it.
type faultProxy struct {
	Addr  string
	proxy *httputil.ReverseProxy
	mu    sync.Mutex
	seen  []string // "METHOD path range"
}

func startFaultProxy(t *testing.T, backend string, hook func(fp *faultProxy, w http.ResponseWriter, r *http.Request) bool) *faultProxy {
	t.Helper()
	target, _ := url.Parse("http://" + backend)
	fp := &faultProxy{proxy: httputil.NewSingleHostReverseProxy(target)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fp.mu.Lock()
		fp.seen = append(fp.seen, r.Method+" "+r.URL.Path+" "+r.Header.Get("Range"))
		fp.mu.Unlock()
		if hook != nil && hook(fp, w, r) {
			return
		}
		fp.proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	fp.Addr = l.Addr().String()
	return fp
}

func (fp *faultProxy) requests() []string {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return append([]string(nil), fp.seen...)
}

// downAddr is a loopback address nothing listens on.
func downAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func randomString(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPullShortNameThroughMirrors: "busybox" means docker.io/library/busybox
// :latest; it is served by the second mirror after the first (down) one
// fails fast, the origin is disabled (no traffic leaves the host), and the
// record keeps the name as written.
func TestPullShortNameThroughMirrors(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	src := testenv.BusyboxImage(t, testenv.ImageOptions{})
	testenv.Push(t, reg, "library/busybox:latest", src)
	testenv.Push(t, reg, "library/busybox:1", src)

	s := newStore(t, image.Options{PullRetries: -1})
	var regs image.Registries
	if err := regs.AddMirrorFlag("docker.io=http://" + downAddr(t)); err != nil {
		t.Fatal(err)
	}
	if err := regs.AddMirrorFlag("docker.io=http://" + reg.Addr); err != nil {
		t.Fatal(err)
	}
	m := regs.Mirrors["index.docker.io"]
	m.DisableOrigin = true
	regs.Mirrors["index.docker.io"] = m
	if err := s.SetRegistries(regs); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	img, err := s.Pull(context.Background(), "busybox", nil, nil)
	if err != nil {
		t.Fatalf("Pull busybox: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a down mirror should fall through quickly; pull took %s", d)
	}
	if img.Name != "busybox" || img.Ref != "index.docker.io/library/busybox:latest" || img.Digest != mustDigest(t, src) {
		t.Errorf("got name %q ref %q digest %s", img.Name, img.Ref, img.Digest)
	}
	if _, err := s.Pull(context.Background(), "library/busybox:1", nil, nil); err != nil {
		t.Fatalf("Pull library/busybox:1: %v", err)
	}
	for _, ref := range []string{"busybox", "docker.io/library/busybox:latest", "busybox:1"} {
		if _, err := s.Get(ref); err != nil {
			t.Errorf("Get(%q): %v", ref, err)
		}
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Name)
	}
	if strings.Join(names, ",") != "library/busybox:1,busybox" && strings.Join(names, ",") != "busybox,library/busybox:1" {
		t.Errorf("List names = %v", names)
	}
	// An image no mirror has fails as not found, without the origin.
	if _, err := s.Pull(context.Background(), "nosuchimage", nil, nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Pull nosuchimage: %v, want ErrNotFound", err)
	}
}

// TestPullBackOffOn429: a fault injector answers the first two manifest
// requests with 429; the pull reports two back-offs and then succeeds.
func TestPullBackOffOn429(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	ref := testenv.Push(t, reg, "app:v1", testenv.BusyboxImage(t, testenv.ImageOptions{}))
	var mu sync.Mutex
	n429 := 0
	fp := startFaultProxy(t, reg.Addr, func(_ *faultProxy, w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if strings.Contains(r.URL.Path, "/manifests/") && n429 < 2 {
			n429++
			w.Header().Set("Retry-After", "0")
			http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, http.StatusTooManyRequests)
			return true
		}
		return false
	})
	ref = strings.Replace(ref, reg.Addr, fp.Addr, 1)
	s := newStore(t, image.Options{PullBackoff: 50 * time.Millisecond})
	var statuses []string
	img, err := s.Pull(context.Background(), ref, nil, func(p image.Progress) {
		if p.Status == image.ProgressBackOff {
			statuses = append(statuses, "backoff")
		} else if p.Status == image.ProgressDone && (len(statuses) == 0 || statuses[len(statuses)-1] != "done") {
			statuses = append(statuses, "done")
		}
	})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if got := strings.Join(statuses, ","); got != "backoff,backoff,done" {
		t.Errorf("progress = %s, want backoff,backoff,done", got)
	}
	if img.Name != ref {
		t.Errorf("name %q", img.Name)
	}

	// With the registry always answering 503, the pull fails unavailable
	// after its retries.
	fp2 := startFaultProxy(t, reg.Addr, func(_ *faultProxy, w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	})
	backoffs := 0
	_, err = s.Pull(context.Background(), fp2.Addr+"/app:v2", nil, func(p image.Progress) {
		if p.Status == image.ProgressBackOff {
			backoffs++
		}
	})
	if !errors.Is(err, errdefs.ErrUnavailable) || backoffs != 3 {
		t.Errorf("always 503: err %v, %d backoffs; want ErrUnavailable after 3", err, backoffs)
	}
}

// TestPullResumesCutLayer: a fault injector cuts the first download of the
// big layer after 300 KiB; the pull resumes with a Range request and stores
// the layer intact.
func TestPullResumesCutLayer(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	payload := randomString(t, 2<<20)
	src := testenv.BusyboxImage(t, testenv.ImageOptions{Layers: []testenv.LayerSpec{{Files: map[string]string{"/data/blob": payload}}}})
	ref := testenv.Push(t, reg, "big:v1", src)
	digests := layerDigests(t, src)
	big := digests[len(digests)-1].String()
	var once sync.Once
	fp := startFaultProxy(t, reg.Addr, func(_ *faultProxy, w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+big) || r.Header.Get("Range") != "" {
			return false
		}
		cut := false
		once.Do(func() { cut = true })
		if !cut {
			return false
		}
		resp, err := http.Get("http://" + reg.Addr + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return true
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Length", resp.Header.Get("Content-Length"))
		w.WriteHeader(http.StatusOK)
		io.CopyN(w, resp.Body, 300<<10)
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return true
	})
	ref = strings.Replace(ref, reg.Addr, fp.Addr, 1)
	s := newStore(t, image.Options{PullRetries: -1})
	resumed := false
	img, err := s.Pull(context.Background(), ref, nil, func(p image.Progress) {
		if p.Status == image.ProgressResumed && p.Layer == big {
			resumed = true
		}
	})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if !resumed {
		t.Error("no resumed progress report")
	}
	var ranged []string
	for _, r := range fp.requests() {
		if strings.Contains(r, big) && strings.HasSuffix(r, "-") {
			ranged = append(ranged, r)
		}
	}
	if len(ranged) != 1 || !strings.Contains(ranged[0], "bytes=") || strings.Contains(ranged[0], "bytes=0-") {
		t.Errorf("want one Range request resuming mid-layer, got %v (all: %v)", ranged, fp.requests())
	}
	if got := readFile(t, filepath.Join(img.Layers[len(img.Layers)-1], "data/blob")); got != payload {
		t.Errorf("resumed layer content differs (%d bytes, want %d)", len(got), len(payload))
	}
}

// TestPullPrivateMirrorServerCredentials: a mirror with htpasswd auth is
// used with credentials from the host's configuration; they never appear
// in the log, errors or records.
func TestPullPrivateMirrorServerCredentials(t *testing.T) {
	testenv.RequireRoot(t)
	const user, pass = "mirroruser", "s3cr3t-Pa55w0rd"
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{Username: user, Password: pass})
	testenv.Push(t, reg, "library/alpine:3", testenv.BusyboxImage(t, testenv.ImageOptions{}))
	var logBuf bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: &logBuf, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	root := t.TempDir()
	s, err := image.NewStore(root, image.Options{Logger: log, DockerConfigPath: filepath.Join(t.TempDir(), "none.json"), PullRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "registries.yaml")
	yml := "mirrors:\n  docker.io:\n    endpoint: [\"http://" + reg.Addr + "\"]\n    disable_origin: true\n"
	if err := os.WriteFile(cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	regs, err := image.LoadRegistries(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetRegistries(regs); err != nil {
		t.Fatal(err)
	}
	// Without credentials: unauthorized.
	_, err = s.Pull(context.Background(), "alpine:3", nil, nil)
	if !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Fatalf("Pull without credentials: %v, want ErrUnauthorized", err)
	}
	// Wrong ones: unauthorized, and the error does not echo them.
	yml2 := yml + "configs:\n  \"" + reg.Addr + "\":\n    auth: {username: " + user + ", password: wrong-" + pass + "}\n"
	os.WriteFile(cfgPath, []byte(yml2), 0o600)
	regs, err = image.LoadRegistries(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s.SetRegistries(regs)
	_, err = s.Pull(context.Background(), "alpine:3", nil, nil)
	if !errors.Is(err, errdefs.ErrUnauthorized) || strings.Contains(err.Error(), pass) {
		t.Fatalf("Pull with wrong credentials: %v", err)
	}
	yml3 := yml + "configs:\n  \"" + reg.Addr + "\":\n    auth: {username: " + user + ", password: " + pass + "}\n"
	os.WriteFile(cfgPath, []byte(yml3), 0o600)
	regs, err = image.LoadRegistries(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s.SetRegistries(regs)
	img, err := s.Pull(context.Background(), "alpine:3", nil, nil)
	if err != nil {
		t.Fatalf("Pull with server-side credentials: %v", err)
	}
	if img.Name != "alpine:3" {
		t.Errorf("name %q", img.Name)
	}
	logMu.Lock()
	logged := logBuf.String()
	logMu.Unlock()
	if !strings.Contains(logged, "image pulled") {
		t.Errorf("log lacks the pull: %s", logged)
	}
	if strings.Contains(logged, pass) {
		t.Errorf("the password is in the log:\n%s", logged)
	}
	// Nor in the store's files.
	filepath.WalkDir(filepath.Join(root, "images"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(readFile(t, p), pass) {
			t.Errorf("password stored in %s", p)
		}
		return nil
	})
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestApplyGCPolicy: on a 64 MiB tmpfs holding the store, three 8 MiB
// images push usage over the high threshold; GC removes the oldest unused
// images until usage is under the low threshold and keeps the image in use.
func TestApplyGCPolicy(t *testing.T) {
	testenv.RequireRoot(t)
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=64m,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	var refs []string
	for _, tag := range []string{"a", "b", "c"} {
		img := testenv.BusyboxImage(t, testenv.ImageOptions{Layers: []testenv.LayerSpec{{Files: map[string]string{"/data/" + tag: randomString(t, 8<<20)}}}})
		refs = append(refs, testenv.Push(t, reg, "gc:"+tag, img))
	}
	s, err := image.NewStore(filepath.Join(root, "images"), image.Options{DockerConfigPath: filepath.Join(t.TempDir(), "none.json")})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		if _, err := s.Pull(context.Background(), r, nil, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // distinct StoredAt
	}
	used, err := image.DiskUsage(root)
	if err != nil {
		t.Fatal(err)
	}
	// Below the high threshold: nothing happens.
	res, err := s.ApplyGCPolicy(context.Background(), image.GCPolicy{HighPercent: int(used) + 5, LowPercent: 1}, nil)
	if err != nil || res.Triggered || len(res.Removed) != 0 {
		t.Fatalf("below threshold: %+v, %v", res, err)
	}
	// Each unique layer is ~8 MiB of 64 (12.5 %): low = used-20 needs two
	// images gone; the oldest (a) is in use, so b and c go.
	low := int(used) - 20
	res, err = s.ApplyGCPolicy(context.Background(), image.GCPolicy{HighPercent: int(used) - 1, LowPercent: low}, inUseList(refs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Triggered || res.UsedAfter > float64(low) {
		t.Errorf("GC did not reach the low watermark: %+v (low %d)", res, low)
	}
	if strings.Join(res.Removed, ",") != refs[1]+","+refs[2] {
		t.Errorf("removed %v, want %s then %s", res.Removed, refs[1], refs[2])
	}
	img, err := s.Get(refs[0])
	if err != nil {
		t.Fatalf("image in use was removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(img.Layers[len(img.Layers)-1], "data/a")); err != nil {
		t.Errorf("in-use layer gone: %v", err)
	}
	// Nothing unused left: even a threshold of 0 keeps the image in use.
	res, err = s.ApplyGCPolicy(context.Background(), image.GCPolicy{HighPercent: 0, LowPercent: 0}, inUseList(refs[0]))
	if err != nil || len(res.Removed) != 0 {
		t.Errorf("forced GC: %+v, %v", res, err)
	}
	if _, err := s.Get(refs[0]); err != nil {
		t.Errorf("image in use removed by forced GC: %v", err)
	}
}

// TestRegistriesConfig: the file and the flags merge; bad values are
// refused as invalid arguments.
func TestRegistriesConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "registries.yaml")
	os.WriteFile(p, []byte("mirrors:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:5000\"]\nconfigs:\n  \"127.0.0.1:5000\":\n    plain_http: true\n"), 0o600)
	r, err := image.LoadRegistries(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddMirrorFlag("docker.io=https://mirror.example"); err != nil {
		t.Fatal(err)
	}
	if m := r.Mirrors["index.docker.io"]; len(r.Mirrors) != 1 || strings.Join(m.Endpoints, ",") != "http://127.0.0.1:5000,https://mirror.example" {
		t.Errorf("merged mirrors: %+v", r.Mirrors)
	}
	for _, bad := range []string{"docker.io", "=http://x", "docker.io=ftp://x", "docker.io=http://x/some/path"} {
		if err := r.AddMirrorFlag(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("AddMirrorFlag(%q): %v, want ErrInvalidArgument", bad, err)
		}
	}
	os.WriteFile(p, []byte("mirrors:\n  docker.io:\n    endpoints: [x]\n"), 0o600)
	if _, err := image.LoadRegistries(p); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("unknown field: %v, want ErrInvalidArgument", err)
	}
	if r, err := image.LoadRegistries(filepath.Join(t.TempDir(), "none.yaml")); err != nil || len(r.Mirrors) != 0 {
		t.Errorf("missing file: %+v %v", r, err)
	}
	s := newStore(t, image.Options{})
	if err := s.SetRegistries(image.Registries{Mirrors: map[string]image.Mirror{"docker.io": {DisableOrigin: true}}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("disable_origin without endpoints: %v", err)
	}
}
