package e2e

import (
	"encoding/json"
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

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// startImageServer is startServer with a registries.yaml written into
// the data dir before the server starts, and the debug log (it records
// pulls).
func startImageServer(t *testing.T, registriesYAML string, extra ...string) *server {
	t.Helper()
	dir := t.TempDir()
	if registriesYAML != "" {
		if err := os.WriteFile(filepath.Join(dir, "registries.yaml"), []byte(registriesYAML), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return newServer(t, testenv.SkiffServerOptions{DataDir: dir, LogLevel: "debug", Flags: extra})
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// hubMirror makes the docker.io mirror config: the origin is disabled so no
// test ever reaches Docker Hub.
const hubNoOrigin = "mirrors:\n  docker.io:\n    disable_origin: true\n"

type cachedImg struct {
	Image     string `json:"image"`
	Digest    string `json:"digest"`
	Reference string `json:"reference"`
}

// cachedImages lists the image cache with the fields of Skiff's entries
// (api.CachedImage has ACI's only).
func (s *server) cachedImages() []cachedImg {
	s.t.Helper()
	raw, err := s.Client.List(s.t.Context(), client.LocationPath(s.Subscription, "local")+"/cachedImages", nil)
	if err != nil {
		s.t.Fatalf("cachedImages: %v", err)
	}
	out := make([]cachedImg, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			s.t.Fatal(err)
		}
	}
	return out
}

type groupEvent struct {
	Name    string `json:"name"`
	Message string `json:"message"`
}

// groupState returns the first container's state and events.
func (s *server) groupState(rg, name string) (string, []groupEvent, []byte) {
	s.t.Helper()
	body := s.send("GET", "/subscriptions/"+s.Subscription+"/resourceGroups/"+rg+"/providers/Microsoft.ContainerInstance/containerGroups/"+name, nil).Body
	var cg struct {
		Properties struct {
			Containers []struct {
				Properties struct {
					InstanceView struct {
						CurrentState struct{ State string } `json:"currentState"`
						Events       []groupEvent           `json:"events"`
					} `json:"instanceView"`
				} `json:"properties"`
			} `json:"containers"`
		} `json:"properties"`
	}
	json.Unmarshal(body, &cg)
	if len(cg.Properties.Containers) == 0 {
		return "", nil, body
	}
	iv := cg.Properties.Containers[0].Properties.InstanceView
	return iv.CurrentState.State, iv.Events, body
}

func (s *server) waitRunning(rg, name string) []groupEvent {
	s.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		state, events, body := s.groupState(rg, name)
		if state == "Running" {
			return events
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s/%s never ran: %s\nserver log: %s", rg, name, body, s.LogTail(20))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func eventNames(evs []groupEvent) string {
	var n []string
	for _, e := range evs {
		n = append(n, e.Name)
	}
	return strings.Join(n, ",")
}

// TestImagesShortNameThroughMirror: a CLI-created group uses the short name
// `busybox`, served by the second of two mirrors (the first is down), with
// the origin disabled; events, cachedImages and `skiff image list` show the
// name as written plus the digest; `skiff image rm` refuses the image in
// use (409) and `skiff image pull` streams per-layer progress.
func TestImagesShortNameThroughMirror(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := testenv.BusyboxImage(t, testenv.ImageOptions{})
	testenv.Push(t, reg, "library/busybox:latest", img)
	testenv.Push(t, reg, "library/busybox:1.36", testenv.BusyboxImage(t, testenv.ImageOptions{Layers: []testenv.LayerSpec{{Files: map[string]string{"/v": "1.36"}}}}))
	d, _ := img.Digest()
	s := startImageServer(t, hubNoOrigin,
		"--registry-mirror", "docker.io=http://"+deadAddr(t), "--registry-mirror", "docker.io=http://"+reg.Addr)

	s.mustSkiff("group", "create", "--name", "rg", "--location", "local")
	start := time.Now()
	s.mustSkiff("container", "create", "-g", "rg", "-n", "short", "--image", "busybox", "--command-line", "sleep 3600")
	events := s.waitRunning("rg", "short")
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("the down mirror should fall through quickly; start took %s", d)
	}
	var pulled string
	for _, e := range events {
		if e.Name == "Pulled" {
			pulled = e.Message
		}
	}
	if !strings.Contains(pulled, `"busybox"`) || !strings.Contains(pulled, d.String()) {
		t.Errorf("Pulled event %q should name \"busybox\" and %s (events %s)", pulled, d, eventNames(events))
	}
	imgs := s.cachedImages()
	if len(imgs) != 1 || imgs[0].Image != "busybox" || imgs[0].Digest != d.String() || imgs[0].Reference != "index.docker.io/library/busybox:latest" {
		t.Errorf("cachedImages = %+v", imgs)
	}
	if out := s.mustSkiff("image", "list", "-o", "json"); !strings.Contains(out, `"busybox"`) || !strings.Contains(out, d.String()) {
		t.Errorf("image list: %s", out)
	}
	out, errOut, code := s.skiff("image", "rm", "busybox")
	if code == 0 || !strings.Contains(errOut+out, "ImageInUse") {
		t.Errorf("image rm of an image in use: exit %d, %s %s", code, out, errOut)
	}
	if err := s.Client.RemoveImage(t.Context(), "local", "busybox"); testenv.StatusOf(err) != http.StatusConflict {
		t.Errorf("DELETE image in use: %v, want 409", err)
	}

	// Pre-pull with progress (stderr is not a terminal: a line per state).
	out, errOut, code = s.skiff("image", "pull", "library/busybox:1.36")
	if code != 0 || !strings.Contains(out, "library/busybox:1.36") || !strings.Contains(out, "sha256:") {
		t.Fatalf("image pull: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, ": already present") || !strings.Contains(errOut, ": done") {
		t.Errorf("image pull progress lacks per-layer lines:\n%s", errOut)
	}
	s.mustSkiff("image", "rm", "library/busybox:1.36")
	for _, c := range s.cachedImages() {
		if c.Image == "library/busybox:1.36" {
			t.Errorf("removed image still listed")
		}
	}
}

// TestImagesBackOffThenPulled: a FAULT INJECTOR (a reverse proxy in front
// of the real registry) answers the first two manifest requests with 429;
// the group's events show BackOff, then Pulled.
func TestImagesBackOffThenPulled(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	testenv.Push(t, reg, "library/busybox:latest", testenv.BusyboxImage(t, testenv.ImageOptions{}))
	target, _ := url.Parse("http://" + reg.Addr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	n := 0
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inject := strings.Contains(r.URL.Path, "/manifests/") && n < 2
		if inject {
			n++
		}
		mu.Unlock()
		if inject {
			http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"injected"}]}`, http.StatusTooManyRequests)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	s := startImageServer(t, hubNoOrigin, "--registry-mirror", "docker.io=http://"+l.Addr().String())
	s.mustSkiff("group", "create", "--name", "rg", "--location", "local")
	s.mustSkiff("container", "create", "-g", "rg", "-n", "retry", "--image", "busybox", "--command-line", "sleep 3600")
	events := eventNames(s.waitRunning("rg", "retry"))
	if !strings.Contains(events, "Pulling,BackOff,BackOff,Pulled") {
		t.Errorf("events %s, want Pulling,BackOff,BackOff,Pulled", events)
	}
}

// TestImagesPrivateMirrorCredentials: a mirror with htpasswd auth is used
// with credentials from registries.yaml; the password appears in no API
// read and not in the server log.
func TestImagesPrivateMirrorCredentials(t *testing.T) {
	const user, pass = "skiffmirror", "Mirr0r-S3cret-xyz"
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{Username: user, Password: pass})
	testenv.Push(t, reg, "library/busybox:latest", testenv.BusyboxImage(t, testenv.ImageOptions{}))
	yml := "mirrors:\n  docker.io:\n    endpoint: [\"http://" + reg.Addr + "\"]\n    disable_origin: true\n" +
		"configs:\n  \"" + reg.Addr + "\":\n    auth:\n      username: " + user + "\n      password: " + pass + "\n"
	s := startImageServer(t, yml)
	s.mustSkiff("group", "create", "--name", "rg", "--location", "local")
	s.mustSkiff("container", "create", "-g", "rg", "-n", "priv", "--image", "busybox:latest", "--command-line", "sleep 3600")
	s.waitRunning("rg", "priv")

	var reads []string
	for _, p := range []string{
		"/subscriptions/" + s.Subscription + "/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/priv",
		"/subscriptions/" + s.Subscription + "/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups",
		"/subscriptions/" + s.Subscription + "/providers/Microsoft.ContainerInstance/locations/local/cachedImages",
	} {
		reads = append(reads, string(s.send("GET", p, nil).Body))
	}
	reads = append(reads, s.mustSkiff("container", "show", "-g", "rg", "-n", "priv"), s.mustSkiff("image", "list"))
	// A failing pull's error names the mirror but not the password.
	out, errOut, _ := s.skiff("image", "pull", "busybox:nosuchtag")
	reads = append(reads, out, errOut)
	for _, r := range reads {
		if strings.Contains(r, pass) {
			t.Errorf("the registry password is in an API read:\n%s", r)
		}
	}
	if !strings.Contains(reads[2], `"busybox:latest"`) {
		t.Errorf("cachedImages: %s", reads[2])
	}
	logged := s.Log()
	if !strings.Contains(logged, "image pulled") {
		t.Errorf("the debug log should record the pull:\n%s", logged)
	}
	if strings.Contains(logged, pass) {
		t.Errorf("the registry password is in the server log")
	}
}

// TestImagesGCKeepsImagesInUse: with thresholds forced to 0 % GC runs on
// every check; images no group uses disappear and the one in use stays.
func TestImagesGCKeepsImagesInUse(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	var refs []string
	for _, tag := range []string{"a", "b", "c"} {
		refs = append(refs, testenv.Push(t, reg, "gc:"+tag, testenv.BusyboxImage(t, testenv.ImageOptions{
			Layers: []testenv.LayerSpec{{Files: map[string]string{"/tag": tag}}}})))
	}
	s := startImageServer(t, "", "--image-gc-high-threshold", "0", "--image-gc-low-threshold", "0", "--image-gc-interval", "500ms")
	s.mustSkiff("group", "create", "--name", "rg", "--location", "local")
	s.mustSkiff("container", "create", "-g", "rg", "-n", "keep", "--image", refs[0], "--command-line", "sleep 3600")
	s.waitRunning("rg", "keep")
	for _, r := range refs[1:] {
		s.mustSkiff("image", "pull", "-q", r)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		imgs := s.cachedImages()
		if len(imgs) == 1 && imgs[0].Image == refs[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GC left %+v, want only %s", imgs, refs[0])
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // several more GC rounds
	if imgs := s.cachedImages(); len(imgs) != 1 || imgs[0].Image != refs[0] {
		t.Errorf("after more GC rounds: %+v", imgs)
	}
	if !strings.Contains(s.Log(), "image gc: image removed") {
		t.Errorf("server log does not record the GC")
	}
	if state, _, _ := s.groupState("rg", "keep"); state != "Running" {
		t.Errorf("the group using the kept image is %q", state)
	}
}
