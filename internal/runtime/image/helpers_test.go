package image_test

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skiff-sh/skiff/internal/runtime/image"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// newStore opens a store in a temp dir, with no docker config file.
func newStore(t *testing.T, opts image.Options) *image.Store {
	t.Helper()
	if opts.DockerConfigPath == "" {
		opts.DockerConfigPath = filepath.Join(t.TempDir(), "no-docker-config.json")
	}
	s, err := image.NewStore(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	return s
}

// blobCounter is a reverse proxy in front of a registry that counts blob
// GETs per digest and can slow blob responses down.
type blobCounter struct {
	Addr  string
	mu    sync.Mutex
	gets  map[string]int
	delay time.Duration
}

var blobPath = regexp.MustCompile(`^/v2/.+/blobs/(sha256:[0-9a-f]{64})$`)

func startBlobCounter(t *testing.T, reg *testenv.Registry, delay time.Duration) *blobCounter {
	t.Helper()
	target, _ := url.Parse("http://" + reg.Addr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	c := &blobCounter{gets: map[string]int{}, delay: delay}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := blobPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet {
			c.mu.Lock()
			c.gets[m[1]]++
			c.mu.Unlock()
			time.Sleep(c.delay)
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	c.Addr = l.Addr().String()
	return c
}

func (c *blobCounter) count(h v1.Hash) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gets[h.String()]
}

// layerDigests returns the compressed digests of img's layers.
func layerDigests(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Hash
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func mustDigest(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func mustID(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

func mustNotExist(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("%s should not exist (lstat err=%v)", p, err)
	}
}
