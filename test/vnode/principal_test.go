package vnode

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/testenv"
	k8senv "github.com/skiff-sh/skiff/internal/testenv/k8s"
	"github.com/skiff-sh/skiff/internal/virtualnode"
)

// The seeds' connector: a principal made by `skiff ad sp create-for-rbac
// --scopes RG`, its AZURE_* given to the node, over HTTPS. As a Reader of
// the resource group the node is NotReady, its Ready condition and an
// event naming the permission it lacks; once the principal is a
// Contributor there, the node turns Ready by itself and runs a pod.
func TestVirtualNodeServicePrincipal(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := testenv.BusyboxImage(t, testenv.ImageOptions{Cmd: []string{"sleep", "3600"}})
	e := &env{reg: reg, dir: t.TempDir()}
	e.image = testenv.Push(t, reg, "vnode/busybox:1", img)
	e.skiff = testenv.StartSkiffServer(t, testenv.SkiffServerOptions{Binary: skiffBin, Bridge: "skvn0", Subnet: vnodeSubnet,
		RemoveBridge: true, StopGrace: 2 * time.Second, TLS: true,
		Flags: []string{"--registry-mirror", "docker.io=http://" + reg.Addr}})
	rg, err := e.skiff.Client.CreateResourceGroup(t.Context(), resourceGroup, api.ResourceGroup{Location: "local"})
	if err != nil {
		t.Fatal(err)
	}
	skiff := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(skiffBin, args...)
		cmd.Env = append(os.Environ(), "SKIFF_ENDPOINT="+e.skiff.TLSEndpoint, "SKIFF_CA_FILE="+e.skiff.CAFile,
			"SKIFF_TOKEN="+e.skiff.Token, "SKIFF_CONFIG_DIR="+t.TempDir())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("skiff %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	var sp struct{ AppID, Password, Tenant string }
	if err := json.Unmarshal([]byte(skiff("ad", "sp", "create-for-rbac", "-n", "vnode-sp", "--role", "reader", "--scopes", rg.ID)), &sp); err != nil {
		t.Fatal(err)
	}
	e.principal = []string{"AZURE_CLIENT_ID=" + sp.AppID, "AZURE_CLIENT_KEY=" + sp.Password,
		"AZURE_TENANT_ID=" + sp.Tenant, "AZURE_SUBSCRIPTION_ID=" + e.skiff.Subscription}
	e.cp = k8senv.Start(t)
	_, e.kubelet, _ = net.SplitHostPort(testenv.FreeLoopbackAddr(t, "127.0.0.1"))
	e.startVirtualNode(t, true)

	// A Reader: NotReady, and it says why.
	const write = "Microsoft.ContainerInstance/containerGroups/write"
	var cond struct{ Status, Reason, Message string }
	e.waitFor(t, 60*time.Second, "node NotReady for want of "+write, func() (bool, string) {
		out, err := e.cp.KubectlErr("get", "node", nodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")]}`)
		if err != nil || json.Unmarshal([]byte(out), &cond) != nil {
			return false, out
		}
		return cond.Status == "False" && cond.Reason == "SkiffAuthorizationFailed", out
	})
	mustContain(t, "the Ready condition's message", cond.Message, write, sp.AppID, resourceGroup)
	e.waitFor(t, 10*time.Second, "a warning event on the node", func() (bool, string) {
		out, _ := e.cp.KubectlErr("get", "events", "-n", "default", "--field-selector", "involvedObject.kind=Node,involvedObject.name="+nodeName,
			"-o", `jsonpath={range .items[*]}{.type} {.reason}: {.message}{"\n"}{end}`)
		return strings.Contains(out, "Warning SkiffAuthorizationFailed: ") && strings.Contains(out, write), out
	})
	if log, _ := os.ReadFile(e.vn.log); strings.Count(string(log), "may not do what it needs") != 1 || strings.Contains(string(log), sp.Password) {
		t.Errorf("want one log line of the refusal and no secret; log:\n%s", tail(string(log), 40))
	}
	if e.vn.cmd.ProcessState != nil {
		t.Fatalf("the virtual node exited: %v", e.vn.cmd.ProcessState)
	}

	// Granted: Ready without a restart, and a pod runs in the group.
	skiff("role", "assignment", "create", "--assignee", sp.AppID, "--role", "Contributor", "--scope", rg.ID)
	e.waitNodeReady(t)
	e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: seed
  namespace: default
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 1
  tolerations:
  - operator: Exists
  containers:
  - name: seed
    image: %s
    command: ["sh", "-c", "echo hello-from-the-principal && exec sleep 3600"]
`, nodeName, e.image))
	e.waitPhase(t, "default", "seed", "Running", 60*time.Second)
	e.waitFor(t, 15*time.Second, "the pod's log", func() (bool, string) {
		out, err := e.cp.KubectlErr("logs", "seed")
		return err == nil && strings.Contains(out, "hello-from-the-principal"), out
	})
	if g, code := e.getGroup("default", "seed"); code != 200 || g.Tags[virtualnode.TagNode] != nodeName {
		t.Errorf("the pod's container group: %d %+v", code, g.Tags)
	}
}
