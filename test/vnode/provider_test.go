package vnode

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	vkapi "github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/testenv"
	"github.com/skiff-sh/skiff/internal/virtualnode"
)

// notified collects the pods a provider pushes through NotifyPods.
type notified struct {
	mu   sync.Mutex
	last map[string]*corev1.Pod
}

func (n *notified) cb(p *corev1.Pod) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.last[p.Name] = p
}

func (n *notified) get(name string) *corev1.Pod {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.last[name]
}

type attachIO struct {
	stdin io.Reader
	out   *bytes.Buffer
}

func (a attachIO) Stdin() io.Reader              { return a.stdin }
func (a attachIO) Stdout() io.WriteCloser        { return nopWC{a.out} }
func (a attachIO) Stderr() io.WriteCloser        { return nil }
func (a attachIO) TTY() bool                     { return false }
func (a attachIO) Resize() <-chan vkapi.TermSize { return nil }

type nopWC struct{ io.Writer }

func (nopWC) Close() error { return nil }

// TestProviderAgainstSkiff drives the provider directly against a real
// Skiff server (no Kubernetes): pods become groups, statuses are pushed and
// never ahead of Skiff, logs and exec go through the Skiff API, refused
// pods fail fast, deletion removes the group, and the node's Ready
// condition follows the Skiff API's health.
func TestProviderAgainstSkiff(t *testing.T) {
	s := startSkiff(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	image := testenv.Push(t, reg, "vnode/busybox:1", testenv.BusyboxImage(t, testenv.ImageOptions{Cmd: []string{"sleep", "3600"}}))

	c := s.Client
	p, err := virtualnode.New(virtualnode.Config{Client: c, ResourceGroup: resourceGroup, NodeName: nodeName, InternalIP: "127.0.0.1", SyncInterval: 300 * time.Millisecond, HealthInterval: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var node corev1.Node
	p.ConfigureNode(&node)
	if node.Labels["type"] != "virtual-kubelet" || node.Labels["kubernetes.io/os"] != "linux" || node.Status.Capacity.Cpu().String() != "10k" {
		t.Fatalf("node: %+v %+v", node.Labels, node.Status.Capacity)
	}
	nodeCh := make(chan *corev1.Node, 10)
	p.NotifyNodeStatus(context.Background(), func(n *corev1.Node) { nodeCh <- n })
	n := &notified{last: map[string]*corev1.Pod{}}
	p.NotifyPods(context.Background(), n.cb)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.Run(ctx)

	select {
	case nd := <-nodeCh:
		if c := readyCond(nd); c.Status != corev1.ConditionTrue {
			t.Fatalf("node Ready = %+v", c)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no node status after the first health check")
	}

	mk := func(name string, c corev1.Container) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name)},
			Spec: corev1.PodSpec{NodeName: nodeName, RestartPolicy: corev1.RestartPolicyAlways, Containers: []corev1.Container{c}}}
	}
	_, subnet, _ := net.ParseCIDR(vnodeSubnet) // the pod IP is the group's own address
	web := mk("web", corev1.Container{Name: "httpd", Image: image,
		Command: []string{"sh", "-c", "echo started-web; mkdir -p /www && echo hi-web > /www/index.html && exec httpd -f -p 18081 -h /www"},
		Ports:   []corev1.ContainerPort{{ContainerPort: 18081, HostPort: 18081}}})
	if err := p.CreatePod(ctx, web); err != nil {
		t.Fatal(err)
	}
	// The first status is Pending: the group exists but is not yet running.
	got, err := p.GetPod(ctx, "default", "web")
	if err != nil || got.Status.Phase != corev1.PodPending {
		t.Fatalf("right after create: %v %+v", err, got)
	}
	waitPod(t, n, "web", 60*time.Second, func(p *corev1.Pod) bool {
		ip := net.ParseIP(p.Status.PodIP)
		return p.Status.Phase == corev1.PodRunning && ip != nil && subnet.Contains(ip) && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
	})
	resp, err := http.Get("http://127.0.0.1:18081/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "hi-web") {
		t.Fatalf("port answered %q", body)
	}

	// Logs.
	rc, err := p.GetContainerLogs(ctx, "default", "web", "httpd", vkapi.ContainerLogOpts{Tail: 10})
	if err != nil {
		t.Fatal(err)
	}
	logs, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(logs), "started-web") {
		t.Fatalf("logs = %q", logs)
	}
	// Exec, with an exit code.
	var out bytes.Buffer
	if err := p.RunInContainer(ctx, "default", "web", "httpd", []string{"sh", "-c", "cat /www/index.html"}, attachIO{out: &out}); err != nil {
		t.Fatalf("exec: %v", err)
	}
	if !strings.Contains(out.String(), "hi-web") {
		t.Fatalf("exec output %q", out.String())
	}
	if err := p.RunInContainer(ctx, "default", "web", "httpd", []string{"sh", "-c", "exit 7"}, attachIO{out: &out}); err == nil || !strings.Contains(err.Error(), "exit code 7") {
		t.Fatalf("exec exit 7: %v", err)
	}

	// A crashing container shows its restarts and last exit code.
	crash := mk("crash", corev1.Container{Name: "app", Image: image, Command: []string{"sh", "-c", "sleep 1; exit 2"}})
	if err := p.CreatePod(ctx, crash); err != nil {
		t.Fatal(err)
	}
	waitPod(t, n, "crash", 60*time.Second, func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].RestartCount >= 1 && cs[0].LastTerminationState.Terminated != nil &&
			cs[0].LastTerminationState.Terminated.ExitCode == 2 && cs[0].LastTerminationState.Terminated.Reason == "Error"
	})

	// A pod with an unsupported field fails at once, naming the field.
	bad := mk("bad", corev1.Container{Name: "app", Image: image, Command: []string{"sleep", "1"}, WorkingDir: "/tmp"})
	if err := p.CreatePod(ctx, bad); err != nil {
		t.Fatal(err)
	}
	waitPod(t, n, "bad", 5*time.Second, func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodFailed && strings.Contains(p.Status.Message, "spec.containers[0].workingDir")
	})

	// Delete removes the group and reports the pod terminated.
	for _, pod := range []*corev1.Pod{web, crash, bad} {
		if err := p.DeletePod(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"web", "crash"} {
		if _, err := s.Client.GetContainerGroup(ctx, resourceGroup, virtualnode.GroupName("default", name)); testenv.StatusOf(err) != 404 {
			t.Errorf("group of %s after DeletePod: %d", name, testenv.StatusOf(err))
		}
	}
	waitPod(t, n, "web", 5*time.Second, func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded && p.Status.ContainerStatuses[0].State.Terminated != nil
	})
	if pods, err := p.GetPods(ctx); err != nil || len(pods) != 0 {
		t.Errorf("GetPods after delete: %v %d", err, len(pods))
	}

	// A provider whose Skiff API does not answer keeps the node NotReady, with a reason.
	dead, _ := client.New(client.Options{Endpoint: "http://" + testenv.FreeLoopbackAddr(t, "127.0.0.1"), Token: "x"})
	p2, _ := virtualnode.New(virtualnode.Config{Client: dead, ResourceGroup: resourceGroup, HealthInterval: 200 * time.Millisecond})
	var n2 corev1.Node
	p2.ConfigureNode(&n2)
	ch2 := make(chan *corev1.Node, 10)
	p2.NotifyNodeStatus(ctx, func(n *corev1.Node) { ch2 <- n })
	p2.Run(ctx)
	select {
	case nd := <-ch2:
		if c := readyCond(nd); c.Status != corev1.ConditionFalse || c.Reason != "SkiffUnavailable" || !strings.Contains(c.Message, "not running") {
			t.Fatalf("node Ready with Skiff down = %+v", c)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no NotReady status")
	}
}

func readyCond(n *corev1.Node) corev1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c
		}
	}
	return corev1.NodeCondition{}
}

func waitPod(t *testing.T, n *notified, name string, timeout time.Duration, ok func(*corev1.Pod) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p := n.get(name); p != nil && ok(p) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p := n.get(name)
	if p == nil {
		t.Fatalf("no status pushed for %s", name)
	}
	t.Fatalf("pod %s: last pushed status %+v", name, p.Status)
}
