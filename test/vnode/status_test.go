package vnode

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/testenv"
	"github.com/skiff-sh/skiff/internal/virtualnode"
)

// testCrashRestarts: a container that keeps exiting shows its restarts,
// its last exit code and reason, and `kubectl logs --previous`, all read
// through the kube-apiserver.
func testCrashRestarts(t *testing.T, e *env) {
	e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: crasher
  namespace: default
spec:
  nodeName: %s
  restartPolicy: Always
  containers:
  - name: app
    image: %s
    command: ["sh", "-c", "echo attempt-at-$(date +%%s%%N); sleep 1; exit 3"]
`, nodeName, e.image))
	var last *podJSON
	e.waitFor(t, 90*time.Second, "two restarts", func() (bool, string) {
		p, err := e.pod(t, "default", "crasher")
		if err != nil || len(p.Status.ContainerStatuses) != 1 {
			return false, fmt.Sprint(err)
		}
		last = p
		b, _ := json.Marshal(p.Status)
		return p.Status.ContainerStatuses[0].RestartCount >= 2, string(b)
	})
	cs := last.Status.ContainerStatuses[0]
	var lastState struct {
		Terminated *struct {
			ExitCode int    `json:"exitCode"`
			Reason   string `json:"reason"`
		} `json:"terminated"`
	}
	if err := json.Unmarshal(cs.LastState, &lastState); err != nil || lastState.Terminated == nil ||
		lastState.Terminated.ExitCode != 3 || lastState.Terminated.Reason != "Error" {
		t.Errorf("lastState = %s, want terminated with exit code 3, reason Error", cs.LastState)
	}
	if last.Status.Phase != "Running" && last.Status.Phase != "Pending" {
		t.Errorf("phase of a restarting pod = %s", last.Status.Phase)
	}
	// kubectl get pods shows the restarts column.
	out := e.cp.Kubectl(t, "get", "pod", "crasher", "--no-headers")
	if f := strings.Fields(out); len(f) < 4 || f[3] == "0" {
		t.Errorf("kubectl get pod: %q, want a RESTARTS count above 0", out)
	}
	// The previous run's log, through the kubelet API.
	e.waitFor(t, 20*time.Second, "kubectl logs --previous", func() (bool, string) {
		out, err := e.cp.KubectlErr("logs", "crasher", "--previous")
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(out, "attempt-at-"), out
	})
	e.cp.Kubectl(t, "delete", "pod", "crasher", "--wait=true", "--timeout=60s")
}

// testSlowPullStaysPending: while the image is still downloading the pod
// is Pending, its container waiting, and it is not Ready; it turns Running
// only once the container runs. The registry is reached through a proxy
// that holds every blob for a few seconds.
func testSlowPullStaysPending(t *testing.T, e *env) {
	const hold = 8 * time.Second
	target, _ := url.Parse("http://" + e.reg.Addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	var held atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
			held.Add(1)
			select {
			case <-time.After(hold):
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)
	// A new image (its own config blob), so nothing of it is cached.
	img := testenv.BusyboxImage(t, testenv.ImageOptions{Cmd: []string{"sleep", "3600"}, Env: []string{"SLOW=1"}})
	testenv.Push(t, e.reg, "vnode/slow:1", img)
	image := strings.TrimPrefix(slow.URL, "http://") + "/vnode/slow:1"

	start := time.Now()
	e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: slowpull
  namespace: default
spec:
  nodeName: %s
  containers:
  - name: app
    image: %s
`, nodeName, image))
	sawPending := 0
	for time.Since(start) < hold-2*time.Second {
		p, err := e.pod(t, "default", "slowpull")
		if err == nil {
			b, _ := json.Marshal(p.Status)
			if p.Status.Phase != "Pending" {
				t.Fatalf("%s after create, while the image downloads: phase %s: %s", time.Since(start), p.Status.Phase, b)
			}
			for _, cs := range p.Status.ContainerStatuses {
				if cs.Ready || jsonHas(cs.State, "running") {
					t.Fatalf("container reported running while its image downloads: %s", b)
				}
			}
			for _, c := range p.Status.Conditions {
				if c.Type == "Ready" && c.Status == "True" {
					t.Fatalf("pod Ready while its image downloads: %s", b)
				}
			}
			sawPending++
		}
		time.Sleep(300 * time.Millisecond)
	}
	if sawPending < 3 || held.Load() == 0 {
		t.Fatalf("observed Pending %d times; blobs held %d", sawPending, held.Load())
	}
	e.waitFor(t, 30*time.Second, "a Pulling event on the pod", func() (bool, string) {
		ev := e.events(t, "default", "slowpull")
		return strings.Contains(ev, "Pulling"), ev
	})
	p := e.waitPhase(t, "default", "slowpull", "Running", 90*time.Second)
	if d := time.Since(start); d < hold {
		t.Errorf("Running after %s, before the held blob could arrive (%s)", d, hold)
	}
	if len(p.Status.ContainerStatuses) != 1 || !jsonHas(p.Status.ContainerStatuses[0].State, "running") {
		t.Errorf("Running pod's container: %+v", p.Status.ContainerStatuses)
	}
	e.cp.Kubectl(t, "delete", "pod", "slowpull", "--wait=true", "--timeout=60s")
}

// testGracePeriod: deleting a pod gives its containers the pod's grace
// period between SIGTERM and SIGKILL (the server's own default is 2s here),
// and `kubectl delete --grace-period` overrides it.
func testGracePeriod(t *testing.T, e *env) {
	pod := func(name string, grace int) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
spec:
  nodeName: %s
  terminationGracePeriodSeconds: %d
  containers:
  - name: app
    image: %s
    command: ["sh", "-c", "trap 'echo got-term' TERM; while true; do sleep 1; done"]
`, name, nodeName, grace, e.image)
	}
	e.apply(t, pod("grace6", 6)+"---\n"+pod("grace30", 30))
	e.waitPhase(t, "default", "grace6", "Running", 90*time.Second)
	e.waitPhase(t, "default", "grace30", "Running", 90*time.Second)

	timeDelete := func(args ...string) time.Duration {
		start := time.Now()
		e.cp.Kubectl(t, append([]string{"delete", "pod", "--wait=true", "--timeout=90s"}, args...)...)
		return time.Since(start)
	}
	// The container ignores SIGTERM: the group goes only after the grace.
	if d := timeDelete("grace6"); d < 5500*time.Millisecond || d > 20*time.Second {
		t.Errorf("delete of a pod with terminationGracePeriodSeconds 6 took %s, want about 6s", d)
	}
	if _, code := e.getGroup("default", "grace6"); code != 404 {
		t.Errorf("group of grace6 still there: %d", code)
	}
	// The deletion was confirmed once the containers stopped: from then on
	// the node's pod lists never show the pod.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		for _, path := range []string{"/runningpods/", "/pods"} {
			if out, err := e.kubeletGet(path); err != nil || strings.Contains(out, `"grace6"`) {
				t.Fatalf("the node's %s after the graceful delete: err %v, lists grace6: %v", path, err, err == nil)
			}
		}
	}
	if d := timeDelete("grace30", "--grace-period=3"); d < 2500*time.Millisecond || d > 15*time.Second {
		t.Errorf("delete --grace-period=3 took %s, want about 3s", d)
	}

	// A forced delete is gone from the API server at once; from then on the
	// node's own pod lists never show it, though its container ignores
	// SIGTERM and takes the server's grace to stop.
	e.apply(t, pod("forced", 30))
	e.waitPhase(t, "default", "forced", "Running", 90*time.Second)
	for _, path := range []string{"/runningpods/", "/pods"} {
		if out, err := e.kubeletGet(path); err != nil || !strings.Contains(out, `"forced"`) {
			t.Fatalf("node's %s before the delete: %v, has forced: %v", path, err, strings.Contains(out, `"forced"`))
		}
	}
	e.cp.Kubectl(t, "delete", "pod", "forced", "--force", "--grace-period=0")
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		for _, path := range []string{"/runningpods/", "/pods"} {
			if out, err := e.kubeletGet(path); err == nil && strings.Contains(out, `"forced"`) {
				t.Fatalf("the node's %s still lists the force-deleted pod", path)
			}
		}
	}
}

// testLogsOptionsAndAttach: kubectl logs --tail, --timestamps and --since,
// and kubectl attach, through the API server to the virtual node.
func testLogsOptionsAndAttach(t *testing.T, e *env) {
	e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: ticker
  namespace: default
spec:
  nodeName: %s
  containers:
  - name: app
    image: %s
    command: ["sh", "-c", "echo first; i=0; while true; do i=$((i+1)); echo tick-$i; sleep 1; done"]
`, nodeName, e.image))
	e.waitPhase(t, "default", "ticker", "Running", 90*time.Second)
	e.waitFor(t, 20*time.Second, "five ticks", func() (bool, string) {
		out, _ := e.cp.KubectlErr("logs", "ticker")
		return strings.Contains(out, "tick-5"), out
	})
	tail := strings.TrimSpace(e.cp.Kubectl(t, "logs", "ticker", "--tail=2"))
	if lines := strings.Split(tail, "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "tick-") || !strings.HasPrefix(lines[1], "tick-") {
		t.Errorf("logs --tail=2 = %q", tail)
	}
	ts := strings.TrimSpace(e.cp.Kubectl(t, "logs", "ticker", "--timestamps", "--tail=1"))
	if f := strings.Fields(ts); len(f) != 2 || !strings.HasPrefix(f[1], "tick-") {
		t.Errorf("logs --timestamps = %q", ts)
	} else if at, err := time.Parse(time.RFC3339Nano, f[0]); err != nil || time.Since(at) > time.Minute || time.Since(at) < 0 {
		t.Errorf("logs --timestamps: %q is not a recent RFC 3339 time (%v)", f[0], err)
	}
	time.Sleep(3 * time.Second)
	since := e.cp.Kubectl(t, "logs", "ticker", "--since=2s")
	if strings.Contains(since, "first") || !strings.Contains(since, "tick-") {
		t.Errorf("logs --since=2s = %q, want recent ticks only", since)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "kubectl", "--kubeconfig", e.cp.Kubeconfig, "attach", "ticker", "-c", "app").Output()
	if ctx.Err() == nil || !strings.Contains(string(out), "tick-") || strings.Contains(string(out), "first") {
		t.Errorf("kubectl attach ended early (%v) or did not stream new output: %q", ctx.Err(), out)
	}
	e.cp.Kubectl(t, "delete", "pod", "ticker", "--wait=true", "--timeout=60s")
}

// testSkiffDownAtStart: a virtual node started while its Skiff server does
// not answer registers NotReady with a reason (and does not crash), and
// turns Ready once the server answers.
func testSkiffDownAtStart(t *testing.T, e *env) {
	const node = "skiff-down-node"
	addr := testenv.FreeLoopbackAddr(t, "127.0.0.1") // nothing listens here yet
	_, kport, _ := net.SplitHostPort(testenv.FreeLoopbackAddr(t, "127.0.0.1"))
	logPath := filepath.Join(t.TempDir(), "vnode.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(skiffBin, "virtual-node", "--kubeconfig", e.cp.Kubeconfig, "--endpoint", "http://"+addr,
		"--node-name", node, "--node-ip", "127.0.0.1", "--kubelet-port", kport, "--serving-cert", "self-signed",
		"--client-ca-file", e.cp.CAFile, "--subscription", e.skiff.Subscription, "--sync-interval", "1s")
	cmd.Env = append(os.Environ(), "SKIFF_TOKEN="+e.skiff.Token, "ACI_RESOURCE_GROUP=down-rg", "ACI_REGION=local")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			<-exited
		}
		e.cp.KubectlErr("delete", "node", node)
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("virtual-node log:\n%s", tail(string(data), 80))
		}
	}()
	readyCond := func() (status, reason, message string) {
		out, err := e.cp.KubectlErr("get", "node", node, "-o",
			`jsonpath={range .status.conditions[?(@.type=="Ready")]}{.status}|{.reason}|{.message}{end}`)
		if err != nil {
			return "", "", err.Error()
		}
		f := strings.SplitN(strings.TrimSpace(out), "|", 3)
		for len(f) < 3 {
			f = append(f, "")
		}
		return f[0], f[1], f[2]
	}
	e.waitFor(t, 60*time.Second, "node registered NotReady with a reason", func() (bool, string) {
		select {
		case err := <-exited:
			data, _ := os.ReadFile(logPath)
			t.Fatalf("virtual-node exited while Skiff was down: %v\n%s", err, tail(string(data), 40))
		default:
		}
		st, reason, msg := readyCond()
		return st == "False" && reason == "SkiffUnavailable" && msg != "", st + " " + reason + " " + msg
	})
	// Still alive a few seconds later.
	select {
	case err := <-exited:
		t.Fatalf("virtual-node exited while Skiff was down: %v", err)
	case <-time.After(3 * time.Second):
	}
	// The server comes up at that address (a proxy to the real one).
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(e.skiff.Endpoint)
	srv := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target)}
	go srv.Serve(l)
	defer srv.Close()
	e.waitFor(t, 60*time.Second, "node Ready once Skiff answers", func() (bool, string) {
		st, reason, msg := readyCond()
		return st == "True", st + " " + reason + " " + msg
	})
}

// testProbesAndPullSecrets: a readiness probe (httpGet on a named port)
// keeps the pod unready until it passes; a failing exec liveness probe
// restarts the container; an image from a registry with a password runs
// only with the pod's imagePullSecrets, and the password never comes back
// from Skiff.
func testProbesAndPullSecrets(t *testing.T, e *env) {
	e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: probed
  namespace: default
spec:
  nodeName: %s
  containers:
  - name: app
    image: %s
    command: ["sh", "-c", "sleep 6; mkdir -p /w && echo ok > /w/healthz && exec httpd -f -p 18095 -h /w"]
    ports:
    - name: http
      containerPort: 18095
    readinessProbe:
      httpGet:
        path: /healthz
        port: http
      periodSeconds: 1
  - name: dying
    image: %s
    command: ["sh", "-c", "touch /tmp/alive; sleep 3600"]
    livenessProbe:
      exec:
        command: ["sh", "-c", "rm /tmp/alive"]
      periodSeconds: 1
      failureThreshold: 2
`, nodeName, e.image, e.image))
	start := time.Now()
	e.waitPhase(t, "default", "probed", "Running", 90*time.Second)
	ready := func() (bool, string) {
		p, err := e.pod(t, "default", "probed")
		if err != nil {
			return false, err.Error()
		}
		b, _ := json.Marshal(p.Status)
		for _, c := range p.Status.Conditions {
			if c.Type == "Ready" {
				return c.Status == "True", string(b)
			}
		}
		return false, string(b)
	}
	if ok, st := ready(); ok && time.Since(start) < 5*time.Second {
		t.Fatalf("Ready before the readiness probe could pass: %s", st)
	}
	e.waitFor(t, 60*time.Second, "the app container ready once /healthz answers", func() (bool, string) {
		p, err := e.pod(t, "default", "probed")
		if err != nil {
			return false, err.Error()
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == "app" {
				b, _ := json.Marshal(cs)
				return cs.Ready, string(b)
			}
		}
		return false, "no app status"
	})
	// The liveness probe deletes its own file, so it fails from the
	// second try on: the container is restarted, again and again.
	e.waitFor(t, 90*time.Second, "restarts of the container failing its liveness probe", func() (bool, string) {
		p, err := e.pod(t, "default", "probed")
		if err != nil {
			return false, err.Error()
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == "dying" {
				b, _ := json.Marshal(cs)
				return cs.RestartCount >= 1, string(b)
			}
		}
		return false, "no dying status"
	})
	e.waitFor(t, 30*time.Second, "an Unhealthy event", func() (bool, string) {
		ev := e.events(t, "default", "probed")
		return strings.Contains(ev, "Unhealthy") || strings.Contains(ev, "Killing"), ev
	})
	e.cp.Kubectl(t, "delete", "pod", "probed", "--wait=true", "--timeout=60s", "--grace-period=1")

	// A registry with a password.
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{Username: "puller", Password: "pull-s3cret"})
	img := testenv.BusyboxImage(t, testenv.ImageOptions{Cmd: []string{"sleep", "3600"}, Env: []string{"PRIVATE=1"}})
	image := testenv.Push(t, reg, "private/app:1", img)
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{reg.Addr: map[string]string{"username": "puller", "password": "pull-s3cret"}}})
	e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: regcred
  namespace: default
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '%s'
---
apiVersion: v1
kind: Pod
metadata:
  name: private
  namespace: default
spec:
  nodeName: %s
  imagePullSecrets:
  - name: regcred
  containers:
  - name: app
    image: %s
---
apiVersion: v1
kind: Pod
metadata:
  name: nocred
  namespace: default
spec:
  nodeName: %s
  containers:
  - name: app
    image: %s
`, cfg, nodeName, image, nodeName, image))
	e.waitPhase(t, "default", "private", "Running", 90*time.Second)
	e.waitFor(t, 60*time.Second, "nocred fails to pull", func() (bool, string) {
		p, err := e.pod(t, "default", "nocred")
		if err != nil {
			return false, err.Error()
		}
		b, _ := json.Marshal(p.Status)
		return p.Status.Phase == "Pending" && (strings.Contains(string(b), "ErrImagePull") || strings.Contains(string(b), "ImagePullBackOff")), string(b)
	})
	// The read as the server sent it, every field included.
	var raw json.RawMessage
	if _, err := e.skiff.Client.GetContainerGroup(client.WithRawJSON(t.Context(), &raw), resourceGroup, virtualnode.GroupName("default", "private")); err != nil {
		t.Fatalf("GET group: %v", err)
	}
	if strings.Contains(string(raw), "pull-s3cret") || !strings.Contains(string(raw), "puller") {
		t.Errorf("group read: the password shows, or the credential is missing: %s", raw)
	}
	e.cp.Kubectl(t, "delete", "pod", "private", "nocred", "--wait=true", "--timeout=60s")
}

// testSetImage: `kubectl set image` on a running pod runs the new image.
func testSetImage(t *testing.T, e *env) {
	img2 := testenv.BusyboxImage(t, testenv.ImageOptions{Cmd: []string{"sleep", "3600"}, Env: []string{"IMAGE_MARK=two"}})
	image2 := testenv.Push(t, e.reg, "vnode/busybox:2", img2)
	e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: imgswap
  namespace: default
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: %s
    command: ["sleep", "3600"]
`, nodeName, e.image))
	e.waitPhase(t, "default", "imgswap", "Running", 90*time.Second)
	if out := e.cp.Kubectl(t, "exec", "imgswap", "--", "env"); strings.Contains(out, "IMAGE_MARK") {
		t.Fatalf("the first image already has IMAGE_MARK: %s", out)
	}
	e.cp.Kubectl(t, "set", "image", "pod/imgswap", "app="+image2)
	e.waitFor(t, 90*time.Second, "the new image running", func() (bool, string) {
		out, err := e.cp.KubectlErr("exec", "imgswap", "--", "env")
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(out, "IMAGE_MARK=two"), out
	})
	e.waitFor(t, 30*time.Second, "status shows the new image, Running", func() (bool, string) {
		out, _ := e.cp.KubectlErr("get", "pod", "imgswap", "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].image}")
		return strings.TrimSpace(out) == "Running "+image2, out
	})
	e.cp.Kubectl(t, "delete", "pod", "imgswap", "--wait=true", "--timeout=60s")
}

// testStartupAndTCPSocketProbes: a startup probe and a tcpSocket
// readiness probe (on a named port) run as kubelet runs them: the pod is
// not Ready while the startup probe fails, the liveness probe waits for it
// (the container is not restarted), and the pod is Ready once the port
// takes connections. Its postStart hook runs (its preStop hook is mapped
// too; the runtime's tests show it runs before SIGTERM). The pod's
// hostAliases are lines of /etc/hosts.
func testStartupAndTCPSocketProbes(t *testing.T, e *env) {
	e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: startup
  namespace: default
spec:
  nodeName: %s
  containers:
  - name: app
    image: %s
    command: ["sh", "-c", "sleep 5; mkdir -p /w && exec httpd -f -p 18096 -h /w"]
    ports:
    - name: http
      containerPort: 18096
    startupProbe:
      tcpSocket:
        port: http
      periodSeconds: 1
      failureThreshold: 30
    livenessProbe:
      tcpSocket:
        port: 18096
      periodSeconds: 1
      failureThreshold: 1
    readinessProbe:
      tcpSocket:
        port: http
      periodSeconds: 1
    lifecycle:
      postStart:
        exec:
          command: ["sh", "-c", "echo hooked > /tmp/poststart"]
      preStop:
        exec:
          command: ["sh", "-c", "kill -TERM 1"]
  hostAliases:
  - ip: 10.1.2.3
    hostnames: ["db", "db.internal"]
`, nodeName, e.image))
	start := time.Now()
	e.waitPhase(t, "default", "startup", "Running", 90*time.Second)
	if out := e.cp.Kubectl(t, "exec", "startup", "-c", "app", "--", "cat", "/etc/hosts"); !strings.Contains(out, "10.1.2.3\tdb\tdb.internal\n") {
		t.Errorf("/etc/hosts lacks the pod's hostAliases:\n%s", out)
	}
	app := func() (ready bool, restarts int, st string) {
		p, err := e.pod(t, "default", "startup")
		if err != nil {
			return false, 0, err.Error()
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == "app" {
				b, _ := json.Marshal(cs)
				return cs.Ready, cs.RestartCount, string(b)
			}
		}
		return false, 0, "no app status"
	}
	if ready, _, st := app(); ready && time.Since(start) < 4*time.Second {
		t.Fatalf("Ready before the port could take connections: %s", st)
	}
	e.waitFor(t, 60*time.Second, "ready once the port takes connections", func() (bool, string) {
		ready, _, st := app()
		return ready, st
	})
	if _, restarts, st := app(); restarts != 0 {
		t.Errorf("restarted: the liveness probe ran before the startup probe passed: %s", st)
	}
	if out := e.cp.Kubectl(t, "exec", "startup", "-c", "app", "--", "cat", "/tmp/poststart"); strings.TrimSpace(out) != "hooked" {
		t.Errorf("the postStart hook's file: %q", out)
	}
	e.cp.Kubectl(t, "delete", "pod", "startup", "--wait=true", "--timeout=60s", "--grace-period=1")
}
