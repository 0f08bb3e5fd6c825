package image_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/image"
	"github.com/skiff-sh/skiff/internal/testenv"
)

func TestPullAnonymous(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	src := testenv.BusyboxImage(t, testenv.ImageOptions{
		Entrypoint:   []string{"/bin/sh", "-c"},
		Cmd:          []string{"httpd -f -p 8080"},
		Env:          []string{"GREETING=hello"},
		WorkingDir:   "/home/app",
		User:         "1000:1000",
		ExposedPorts: []string{"8080/tcp", "53/udp"},
		Layers:       []testenv.LayerSpec{{Files: map[string]string{"/srv/index.html": "hi\n"}}},
	})
	ref := testenv.Push(t, reg, "app:v1", src)

	s := newStore(t, image.Options{})
	var mu sync.Mutex
	var done []string
	img, err := s.Pull(context.Background(), ref, nil, func(p image.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Status == image.ProgressDone {
			done = append(done, p.Layer)
		}
	})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if img.Ref != ref || img.Digest != mustDigest(t, src) || img.ID != mustID(t, src) {
		t.Errorf("got ref %s digest %s id %s; want %s %s %s", img.Ref, img.Digest, img.ID, ref, mustDigest(t, src), mustID(t, src))
	}
	want := image.ImageConfig{
		Entrypoint:   []string{"/bin/sh", "-c"},
		Cmd:          []string{"httpd -f -p 8080"},
		Env:          []string{testenv.DefaultPath, "GREETING=hello"},
		WorkingDir:   "/home/app",
		User:         "1000:1000",
		ExposedPorts: []string{"53/udp", "8080/tcp"},
	}
	if !reflect.DeepEqual(img.Config, want) {
		t.Errorf("config = %+v, want %+v", img.Config, want)
	}
	if len(img.Layers) != 2 {
		t.Fatalf("layers = %v, want 2", img.Layers)
	}
	if fi, err := os.Stat(filepath.Join(img.Layers[0], "bin/busybox")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bottom layer lacks an executable bin/busybox: %v", err)
	}
	if l, err := os.Readlink(filepath.Join(img.Layers[0], "bin/sh")); err != nil || l != "busybox" {
		t.Errorf("bin/sh -> %q (%v), want busybox", l, err)
	}
	if got := readFile(t, filepath.Join(img.Layers[1], "srv/index.html")); got != "hi\n" {
		t.Errorf("top layer srv/index.html = %q", got)
	}
	if img.Size < 1<<20 {
		t.Errorf("size %d, want at least busybox's", img.Size)
	}
	if len(done) != 2 {
		t.Errorf("progress reported %d layers done, want 2", len(done))
	}

	// Local lookups.
	for _, q := range []string{ref, img.Digest, img.ID, reg.Addr + "/app@" + img.Digest} {
		got, err := s.Get(q)
		if err != nil {
			t.Errorf("Get(%s): %v", q, err)
			continue
		}
		if !reflect.DeepEqual(got, img) {
			t.Errorf("Get(%s) = %+v, want %+v", q, got, img)
		}
	}
	if _, err := s.Get(reg.Addr + "/app:v2"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get of an absent tag: %v, want ErrNotFound", err)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Ref != ref || list[0].ID != img.ID || list[0].Digest != img.Digest {
		t.Errorf("List = %+v, %v", list, err)
	}

	// localhost registries are plain http too.
	port := reg.Addr[strings.LastIndex(reg.Addr, ":")+1:]
	if got, err := s.Pull(context.Background(), "localhost:"+port+"/app:v1", nil, nil); err != nil || got.Digest != img.Digest {
		t.Errorf("Pull via localhost: %+v %v", got, err)
	}

	// Pulling again fetches nothing new and reports every layer as present.
	var statuses []image.ProgressStatus
	if _, err := s.Pull(context.Background(), ref, nil, func(p image.Progress) { statuses = append(statuses, p.Status) }); err != nil {
		t.Fatalf("second Pull: %v", err)
	}
	if !reflect.DeepEqual(statuses, []image.ProgressStatus{image.ProgressExists, image.ProgressExists}) {
		t.Errorf("second pull progress = %v, want two %q", statuses, image.ProgressExists)
	}
}

func TestPullBasicAuth(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{Username: "alice", Password: "s3cret"})
	ref := testenv.Push(t, reg, "private/app:v1", testenv.BusyboxImage(t, testenv.ImageOptions{}))
	ctx := context.Background()

	t.Run("credentials argument", func(t *testing.T) {
		s := newStore(t, image.Options{})
		creds := []api.ImageRegistryCredential{
			{Server: "other.example.com", Username: "x", Password: "y"},
			{Server: reg.Addr, Username: "alice", Password: "s3cret"},
		}
		if _, err := s.Pull(ctx, ref, creds, nil); err != nil {
			t.Fatalf("Pull with credentials: %v", err)
		}
	})
	t.Run("server with scheme", func(t *testing.T) {
		s := newStore(t, image.Options{})
		creds := []api.ImageRegistryCredential{{Server: "http://" + reg.Addr + "/", Username: "alice", Password: "s3cret"}}
		if _, err := s.Pull(ctx, ref, creds, nil); err != nil {
			t.Fatalf("Pull with credentials: %v", err)
		}
	})
	t.Run("docker config file", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "config.json")
		auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Addr, auth)), 0o600); err != nil {
			t.Fatal(err)
		}
		s := newStore(t, image.Options{DockerConfigPath: cfg})
		if _, err := s.Pull(ctx, ref, nil, nil); err != nil {
			t.Fatalf("Pull with docker config credentials: %v", err)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		s := newStore(t, image.Options{})
		_, err := s.Pull(ctx, ref, nil, nil)
		if !errors.Is(err, errdefs.ErrUnauthorized) {
			t.Fatalf("Pull without credentials: %v, want ErrUnauthorized", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		s := newStore(t, image.Options{})
		creds := []api.ImageRegistryCredential{{Server: reg.Addr, Username: "alice", Password: "wrong"}}
		_, err := s.Pull(ctx, ref, creds, nil)
		if !errors.Is(err, errdefs.ErrUnauthorized) {
			t.Fatalf("Pull with a wrong password: %v, want ErrUnauthorized", err)
		}
		if !strings.Contains(err.Error(), ref) {
			t.Errorf("error %q does not name the image", err)
		}
		if _, err := s.Get(ref); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("failed pull left an image: %v", err)
		}
	})
}

// TestPullTokenAuth runs the real registry with `auth: token`; the token
// server is testenv's small JWT issuer (a real token service cannot run
// here), and go-containerregistry does the bearer exchange.
func TestPullTokenAuth(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{Username: "bob", Password: "tok3n", TokenAuth: true})
	ref := testenv.Push(t, reg, "team/app:v1", testenv.BusyboxImage(t, testenv.ImageOptions{}))
	s := newStore(t, image.Options{})
	ctx := context.Background()

	if _, err := s.Pull(ctx, ref, []api.ImageRegistryCredential{{Server: reg.Addr, Username: "bob", Password: "tok3n"}}, nil); err != nil {
		t.Fatalf("Pull with token auth: %v", err)
	}
	_, err := s.Pull(ctx, ref, []api.ImageRegistryCredential{{Server: reg.Addr, Username: "bob", Password: "nope"}}, nil)
	if !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Fatalf("Pull with a wrong password: %v, want ErrUnauthorized", err)
	}
	_, err = s.Pull(ctx, ref, nil, nil)
	if !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Fatalf("anonymous Pull: %v, want ErrUnauthorized", err)
	}
}

func TestPullErrors(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	testenv.Push(t, reg, "app:v1", testenv.BusyboxImage(t, testenv.ImageOptions{}))
	s := newStore(t, image.Options{})
	ctx := context.Background()

	for _, ref := range []string{reg.Addr + "/app:missing", reg.Addr + "/nosuchrepo:v1",
		reg.Addr + "/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"} {
		_, err := s.Pull(ctx, ref, nil, nil)
		if !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Pull(%s): %v, want ErrNotFound", ref, err)
		} else if !strings.Contains(err.Error(), ref) {
			t.Errorf("error %q does not name the image", err)
		}
	}

	if _, err := s.Pull(ctx, "UPPER/Case::x", nil, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad reference: %v, want ErrInvalidArgument", err)
	}

	// Nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	start := time.Now()
	_, err = s.Pull(ctx, dead+"/app:v1", nil, nil)
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Pull from a closed port: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Pull from a closed port took %s", d)
	}

	// A registry that accepts connections and never answers.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		hang.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	quick := newStore(t, image.Options{ResponseTimeout: 500 * time.Millisecond})
	start = time.Now()
	_, err = quick.Pull(ctx, hang.Addr().String()+"/app:v1", nil, nil)
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Pull from a silent registry: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Pull from a silent registry took %s", d)
	}

	// A cancelled context stops a pull.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Pull(cctx, reg.Addr+"/app:v1", nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Pull with a cancelled context: %v", err)
	}
}

func TestPullMultiArch(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	ref := testenv.PushIndex(t, reg, "multi:v1", map[string]v1.Image{
		"linux/arm64": testenv.BusyboxImage(t, testenv.ImageOptions{Env: []string{"ARCH=arm64"}}),
		"linux/amd64": testenv.BusyboxImage(t, testenv.ImageOptions{Env: []string{"ARCH=amd64"}}),
	})
	ctx := context.Background()

	s := newStore(t, image.Options{Platform: "linux/amd64"})
	img, err := s.Pull(ctx, ref, nil, nil)
	if err != nil {
		t.Fatalf("Pull index: %v", err)
	}
	if !contains(img.Config.Env, "ARCH=amd64") {
		t.Errorf("pulled env %v, want the amd64 image", img.Config.Env)
	}
	if img.IndexDigest == "" || img.IndexDigest == img.Digest {
		t.Errorf("IndexDigest %q, Digest %q", img.IndexDigest, img.Digest)
	}
	if got, err := s.Get(reg.Addr + "/multi@" + img.IndexDigest); err != nil || got.Digest != img.Digest {
		t.Errorf("Get by index digest: %v %v", got, err)
	}
	// Pull the index by digest, too.
	byDigest := reg.Addr + "/multi@" + img.IndexDigest
	img2, err := s.Pull(ctx, byDigest, nil, nil)
	if err != nil || img2.Digest != img.Digest || img2.Ref != byDigest {
		t.Fatalf("Pull index by digest: %+v %v", img2, err)
	}

	arm := newStore(t, image.Options{Platform: "linux/arm64"})
	img, err = arm.Pull(ctx, ref, nil, nil)
	if err != nil || !contains(img.Config.Env, "ARCH=arm64") {
		t.Errorf("arm64 store pulled %+v, %v", img, err)
	}
	s390 := newStore(t, image.Options{Platform: "linux/s390x"})
	if _, err := s390.Pull(ctx, ref, nil, nil); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "linux/amd64") {
		t.Errorf("Pull of an index without the platform: %v, want ErrNotFound listing the platforms", err)
	}
}

func TestPullByDigestAndOCI(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	src := testenv.BusyboxImage(t, testenv.ImageOptions{OCI: true, Cmd: []string{"echo", "oci"}})
	testenv.Push(t, reg, "oci:v1", src)
	ref := reg.Addr + "/oci@" + mustDigest(t, src)
	s := newStore(t, image.Options{})
	img, err := s.Pull(context.Background(), ref, nil, nil)
	if err != nil {
		t.Fatalf("Pull by digest: %v", err)
	}
	if img.Ref != ref || img.Digest != mustDigest(t, src) || !reflect.DeepEqual(img.Config.Cmd, []string{"echo", "oci"}) {
		t.Errorf("got %+v", img)
	}
	if _, err := s.Get(ref); err != nil {
		t.Errorf("Get by digest: %v", err)
	}
	if _, err := s.Get(reg.Addr + "/oci:v1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("the tag was never pulled, Get: %v", err)
	}
}

// TestPullDedupe counts blob downloads through a proxy in front of the
// registry: concurrent pulls share downloads, and a layer stored once is
// never fetched again.
func TestPullDedupe(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	one := testenv.BusyboxImage(t, testenv.ImageOptions{Layers: []testenv.LayerSpec{{Files: map[string]string{"one": "1"}}}})
	two := testenv.BusyboxImage(t, testenv.ImageOptions{Layers: []testenv.LayerSpec{{Files: map[string]string{"two": "2"}}}})
	three := testenv.BusyboxImage(t, testenv.ImageOptions{Layers: []testenv.LayerSpec{{Files: map[string]string{"three": "3"}}}})
	testenv.Push(t, reg, "one:v1", one)
	testenv.Push(t, reg, "two:v1", two)
	testenv.Push(t, reg, "three:v1", three)
	proxy := startBlobCounter(t, reg, 300*time.Millisecond)

	s := newStore(t, image.Options{})
	ctx := context.Background()
	refs := []string{proxy.Addr + "/one:v1", proxy.Addr + "/one:v1", proxy.Addr + "/two:v1", proxy.Addr + "/one:v1"}
	var wg sync.WaitGroup
	errs := make([]error, len(refs))
	imgs := make([]*image.Image, len(refs))
	for i, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			imgs[i], errs[i] = s.Pull(ctx, ref, nil, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Pull %s: %v", refs[i], err)
		}
	}
	oneL, twoL, threeL := layerDigests(t, one), layerDigests(t, two), layerDigests(t, three)
	if oneL[0] != twoL[0] || oneL[0] != threeL[0] {
		t.Fatal("test images do not share their base layer")
	}
	for _, d := range []v1.Hash{oneL[0], oneL[1], twoL[1]} {
		if n := proxy.count(d); n != 1 {
			t.Errorf("layer %s fetched %d times, want 1", d, n)
		}
	}
	if imgs[0].Layers[0] != imgs[2].Layers[0] {
		t.Errorf("images share a base layer but got dirs %s and %s", imgs[0].Layers[0], imgs[2].Layers[0])
	}

	// A later image on the same base fetches only its own layer.
	var statuses []image.ProgressStatus
	if _, err := s.Pull(ctx, proxy.Addr+"/three:v1", nil, func(p image.Progress) {
		if p.Status != image.ProgressDownloading {
			statuses = append(statuses, p.Status)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if n := proxy.count(threeL[0]); n != 1 {
		t.Errorf("shared base layer fetched %d times in all, want 1", n)
	}
	if n := proxy.count(threeL[1]); n != 1 {
		t.Errorf("new layer fetched %d times, want 1", n)
	}
	if !reflect.DeepEqual(statuses, []image.ProgressStatus{image.ProgressExists, image.ProgressDone}) &&
		!reflect.DeepEqual(statuses, []image.ProgressStatus{image.ProgressDone, image.ProgressExists}) {
		t.Errorf("progress %v, want one layer existing and one done", statuses)
	}
	// No leftovers of the work.
	entries, err := os.ReadDir(filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(imgs[0].Layers[0])))), "tmp"))
	if err != nil || len(entries) != 0 {
		t.Errorf("tmp holds %v (%v)", entries, err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
