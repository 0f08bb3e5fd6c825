// Package vnode tests `skiff virtual-node` against a real Kubernetes control
// plane (internal/testenv/k8s) and a real `skiff server` running real
// containers: what a cluster user sees through kubectl.
package vnode

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/testenv"
	k8senv "github.com/skiff-sh/skiff/internal/testenv/k8s"
	"github.com/skiff-sh/skiff/internal/virtualnode"
)

// skiffBin is the binary built once for the whole package.
var skiffBin string

func TestMain(m *testing.M) { os.Exit(testenv.RunWithSkiff(m, &skiffBin)) }

const (
	nodeName      = "skiff-virtual-node"
	resourceGroup = "vnode-test"
)

// startSkiff starts a `skiff server` on the package's container network
// (skvn0, vnodeSubnet).
func startSkiff(t testing.TB, extra ...string) *testenv.SkiffServer {
	t.Helper()
	return startSkiffOn(t, "skvn0", vnodeSubnet, extra...)
}

// startSkiffOn starts a `skiff server` whose containers use bridge and
// subnet, and removes its resource groups and the bridge when t ends. With
// SKIFF_TEST_MODE=cluster (testenv.ModeEnv) it is a cluster instead: etcd,
// a server with --agent=false and one `skiff agent` on bridge and subnet;
// the virtual node speaks to the server either way.
func startSkiffOn(t testing.TB, bridge, subnet string, extra ...string) *testenv.SkiffServer {
	t.Helper()
	return testenv.StartSkiffServer(t, testenv.SkiffServerOptions{Binary: skiffBin, Bridge: bridge, Subnet: subnet, RemoveBridge: true,
		StopGrace: 2 * time.Second, Flags: extra, Cluster: testenv.ClusterMode(t)})
}

// vnodeProc is a running `skiff virtual-node`.
type vnodeProc struct {
	cmd *exec.Cmd
	log string
}

// vnodeSubnet is the Skiff server's container network: pod IPs come from it.
const vnodeSubnet = "10.216.0.0/16"

// env is a control plane, a Skiff server, a registry with a busybox image
// and a registered, Ready virtual node.
type env struct {
	cp      *k8senv.ControlPlane
	skiff   *testenv.SkiffServer
	reg     *testenv.Registry
	image   string
	kubelet string // port of the kubelet API
	vn      *vnodeProc
	dir     string
	// principal, when set, is the AZURE_* environment the virtual node
	// signs in with, over the server's TLSEndpoint, instead of the admin
	// token.
	principal []string
}

func setup(t testing.TB) *env {
	t.Helper()
	// The registry doubles as the host's docker.io mirror, so pods can use
	// short names such as "busybox".
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := testenv.BusyboxImage(t, testenv.ImageOptions{Cmd: []string{"sleep", "3600"}})
	e := &env{reg: reg, dir: t.TempDir()}
	e.image = testenv.Push(t, reg, "vnode/busybox:1", img)
	testenv.Push(t, reg, "library/busybox:latest", img)
	e.skiff = startSkiff(t, "--registry-mirror", "docker.io=http://"+reg.Addr)
	e.cp = k8senv.Start(t)
	_, port, _ := net.SplitHostPort(testenv.FreeLoopbackAddr(t, "127.0.0.1"))
	e.kubelet = port
	e.startVirtualNode(t, true)
	e.waitNodeReady(t)
	return e
}

// startVirtualNode starts the virtual node; with approve, the test approves
// its serving-certificate request as a cluster admin would.
func (e *env) startVirtualNode(t testing.TB, approve bool) {
	t.Helper()
	dir := e.dir
	if d := os.Getenv("SKIFF_VNODE_LOG_DIR"); d != "" {
		dir = d // kept after the test, for debugging
	}
	logPath := filepath.Join(dir, fmt.Sprintf("vnode-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	endpoint, auth := e.skiff.Endpoint, []string{"SKIFF_TOKEN=" + e.skiff.Token}
	if e.principal != nil {
		endpoint, auth = e.skiff.TLSEndpoint, append([]string{"SKIFF_CA_FILE=" + e.skiff.CAFile}, e.principal...)
	}
	cmd := exec.Command(skiffBin, "virtual-node",
		"--kubeconfig", e.cp.Kubeconfig,
		"--endpoint", endpoint,
		"--node-ip", "127.0.0.1",
		"--kubelet-port", e.kubelet,
		"--client-ca-file", e.cp.CAFile,
		"--serving-cert", "csr",
		"--sync-interval", "1s",
		"--log-level", "debug")
	cmd.Env = append(append(os.Environ(), auth...), "ACI_RESOURCE_GROUP="+resourceGroup, "ACI_REGION=local")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &vnodeProc{cmd: cmd, log: logPath}
	e.vn = p
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Signal(syscall.SIGTERM)
			p.cmd.Wait()
		}
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("virtual-node log:\n%s", tail(string(data), 300))
		}
	})
	if approve {
		e.approveCSR(t)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (e *env) approveCSR(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, err := e.cp.KubectlErr("get", "csr", "-o", `jsonpath={range .items[?(@.spec.signerName=="kubernetes.io/kubelet-serving")]}{.metadata.name}{" "}{.status.certificate}{"\n"}{end}`)
		if err == nil {
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Fields(line)
				if len(f) == 1 {
					e.cp.Kubectl(t, "certificate", "approve", f[0])
					return
				}
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	data, _ := os.ReadFile(e.vn.log)
	t.Fatalf("the virtual node made no serving CertificateSigningRequest; log:\n%s", tail(string(data), 40))
}

func (e *env) waitNodeReady(t testing.TB) {
	t.Helper()
	e.waitFor(t, 90*time.Second, "node Ready", func() (bool, string) {
		out, err := e.cp.KubectlErr("get", "node", nodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return err == nil && strings.TrimSpace(out) == "True", out
	})
}

// waitFor polls cond until it holds or the timeout passes.
func (e *env) waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
}

func (e *env) apply(t testing.TB, yaml string) {
	t.Helper()
	e.cp.Apply(t, yaml)
}

// podJSON is the part of a pod the tests read.
type podJSON struct {
	Metadata struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		Phase             string `json:"phase"`
		Reason            string `json:"reason"`
		Message           string `json:"message"`
		PodIP             string `json:"podIP"`
		HostIP            string `json:"hostIP"`
		ContainerStatuses []struct {
			Name         string          `json:"name"`
			Ready        bool            `json:"ready"`
			RestartCount int             `json:"restartCount"`
			State        json.RawMessage `json:"state"`
			LastState    json.RawMessage `json:"lastState"`
		} `json:"containerStatuses"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
	} `json:"status"`
}

func (e *env) pod(t testing.TB, ns, name string) (*podJSON, error) {
	out, err := e.cp.KubectlErr("get", "pod", "-n", ns, name, "-o", "json")
	if err != nil {
		return nil, err
	}
	var p podJSON
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func (e *env) waitPhase(t testing.TB, ns, name, phase string, timeout time.Duration) *podJSON {
	t.Helper()
	var p *podJSON
	e.waitFor(t, timeout, "pod "+ns+"/"+name+" "+phase, func() (bool, string) {
		var err error
		p, err = e.pod(t, ns, name)
		if err != nil {
			return false, err.Error()
		}
		b, _ := json.Marshal(p.Status)
		return p.Status.Phase == phase, string(b)
	})
	return p
}

func (e *env) events(t *testing.T, ns, name string) string {
	t.Helper()
	out, _ := e.cp.KubectlErr("get", "events", "-n", ns, "--field-selector", "involvedObject.name="+name,
		"-o", `jsonpath={range .items[*]}{.type} {.reason}: {.message}{"\n"}{end}`)
	return out
}

// getGroup reads the group of a pod, and the status of the read: 200, or
// the ARM error's (the group is empty then).
func (e *env) getGroup(ns, pod string) (*api.ContainerGroup, int) {
	g, err := e.skiff.Client.GetContainerGroup(context.Background(), resourceGroup, virtualnode.GroupName(ns, pod))
	if err != nil {
		return &api.ContainerGroup{}, testenv.StatusOf(err)
	}
	return g, 200
}

func jsonHas(raw json.RawMessage, key string) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil && m[key] != nil
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Fatalf("%s: %q does not contain %q", what, s, sub)
		}
	}
}

// httpGet returns the body of url, with a short timeout.
func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
