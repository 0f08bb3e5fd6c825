package vnode

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/testenv"
	k8senv "github.com/skiff-sh/skiff/internal/testenv/k8s"
)

// TestVirtualNode runs the scenarios that share one cluster, Skiff server
// and virtual node, in order.
func TestVirtualNode(t *testing.T) {
	e := setup(t)

	t.Run("NodeRegistration", func(t *testing.T) {
		out := e.cp.Kubectl(t, "get", "node", nodeName, "-o", "json")
		var n struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				Taints []struct{ Key, Value, Effect string } `json:"taints"`
			} `json:"spec"`
			Status struct {
				Capacity    map[string]string `json:"capacity"`
				Allocatable map[string]string `json:"allocatable"`
				Addresses   []struct{ Type, Address string }
			} `json:"status"`
		}
		if err := json.Unmarshal([]byte(out), &n); err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{"type": "virtual-kubelet", "kubernetes.io/role": "agent", "kubernetes.io/os": "linux", "kubernetes.io/hostname": nodeName} {
			if n.Metadata.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, n.Metadata.Labels[k], v)
			}
		}
		if len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != "virtual-kubelet.io/provider" || n.Spec.Taints[0].Value != "skiff" || n.Spec.Taints[0].Effect != "NoSchedule" {
			t.Errorf("taints = %+v", n.Spec.Taints)
		}
		for k, v := range map[string]string{"cpu": "10k", "memory": "4Ti", "pods": "5k"} {
			if n.Status.Capacity[k] != v || n.Status.Allocatable[k] != v {
				t.Errorf("capacity/allocatable %s = %q/%q, want %q", k, n.Status.Capacity[k], n.Status.Allocatable[k], v)
			}
		}
		lease := e.cp.Kubectl(t, "get", "lease", "-n", "kube-node-lease", nodeName, "-o", "jsonpath={.spec.holderIdentity}")
		if strings.TrimSpace(lease) != nodeName {
			t.Errorf("lease holder = %q", lease)
		}
	})

	t.Run("PodWithNodeNameRuns", func(t *testing.T) {
		// Seed 004's web pod: nodeName, env vars, a port.
		e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  labels:
    app: todoapp
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 3
  containers:
  - name: web
    image: %s
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-skiff db=$DB > /www/index.html && exec httpd -f -p $PORT -h /www"]
    ports:
    - containerPort: 18080
    env:
    - name: DB
      value: COSMOS_DB_CONN_STR
    - name: PORT
      value: "18080"
`, nodeName, e.image))
		p := e.waitPhase(t, "default", "web", "Running", 90*time.Second)
		_, subnet, _ := net.ParseCIDR(vnodeSubnet)
		podIP := net.ParseIP(p.Status.PodIP)
		if podIP == nil || !subnet.Contains(podIP) || p.Status.HostIP != "127.0.0.1" {
			t.Fatalf("podIP/hostIP = %q/%q, want the group's own address in %s and the node's 127.0.0.1", p.Status.PodIP, p.Status.HostIP, vnodeSubnet)
		}
		if len(p.Status.ContainerStatuses) != 1 || !jsonHas(p.Status.ContainerStatuses[0].State, "running") {
			t.Errorf("container statuses = %+v", p.Status.ContainerStatuses)
		}
		wide := e.cp.Kubectl(t, "get", "pod", "web", "-o", "wide")
		mustContain(t, "kubectl get pods -o wide", wide, "Running", p.Status.PodIP, nodeName)
		// Skiff shows the same address for the group, as ACI did in the seed.
		g, code := e.getGroup("default", "web")
		if code != 200 || g.Properties.IPAddress == nil || g.Properties.IPAddress.IP != p.Status.PodIP {
			t.Errorf("group ipAddress = %+v, want ip %s", g.Properties.IPAddress, p.Status.PodIP)
		}
		if g.Tags["k8s-namespace"] != "default" || g.Tags["k8s-pod"] != "web" || g.Tags["k8s-uid"] != p.Metadata.UID {
			t.Errorf("group tags %v (pod uid %s)", g.Tags, p.Metadata.UID)
		}
		// Its port answers on the pod IP, with the env vars applied.
		url := "http://" + net.JoinHostPort(p.Status.PodIP, "18080") + "/"
		e.waitFor(t, 30*time.Second, url, func() (bool, string) {
			body, err := httpGet(url)
			if err != nil {
				return false, err.Error()
			}
			return strings.Contains(body, "hello-from-skiff db=COSMOS_DB_CONN_STR"), body
		})
		// Without a hostPort nothing is published on the host's address.
		if _, err := httpGet("http://127.0.0.1:18080/"); err == nil {
			t.Errorf("a pod without hostPort answers on 127.0.0.1:18080")
		}
		// kubectl port-forward reaches it through the kubelet API.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		pf := exec.CommandContext(ctx, "kubectl", "--kubeconfig", e.cp.Kubeconfig, "port-forward", "pod/web", "18090:18080")
		pfOut := filepath.Join(t.TempDir(), "port-forward.out")
		f, err := os.Create(pfOut)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		pf.Stdout, pf.Stderr = f, f
		if err := pf.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); pf.Wait() }()
		e.waitFor(t, 30*time.Second, "kubectl port-forward 18090:18080", func() (bool, string) {
			body, err := httpGet("http://127.0.0.1:18090/")
			if err != nil {
				out, _ := os.ReadFile(pfOut)
				return false, err.Error() + "; kubectl: " + string(out)
			}
			return strings.Contains(body, "hello-from-skiff"), body
		})
	})

	t.Run("HostPortPublished", func(t *testing.T) {
		e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: hostport
  namespace: default
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 3
  containers:
  - name: httpd
    image: %s
    command: ["sh", "-c", "mkdir -p /www && echo published > /www/index.html && exec httpd -f -p 18081 -h /www"]
    ports:
    - containerPort: 18081
      hostPort: 18081
`, nodeName, e.image))
		p := e.waitPhase(t, "default", "hostport", "Running", 90*time.Second)
		_, subnet, _ := net.ParseCIDR(vnodeSubnet)
		if ip := net.ParseIP(p.Status.PodIP); ip == nil || !subnet.Contains(ip) {
			t.Errorf("podIP = %q, want the group's own address", p.Status.PodIP)
		}
		for _, url := range []string{"http://127.0.0.1:18081/", "http://" + net.JoinHostPort(p.Status.PodIP, "18081") + "/"} {
			e.waitFor(t, 30*time.Second, url, func() (bool, string) {
				body, err := httpGet(url)
				if err != nil {
					return false, err.Error()
				}
				return strings.Contains(body, "published"), body
			})
		}
	})

	t.Run("ShortNameThroughMirror", func(t *testing.T) {
		// "busybox" means docker.io/library/busybox:latest; the server's
		// mirror (the test registry) serves it, as on an air-gapped host.
		e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: short
  namespace: default
spec:
  nodeName: %s
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
`, nodeName))
		p := e.waitPhase(t, "default", "short", "Running", 90*time.Second)
		if len(p.Status.ContainerStatuses) != 1 || !jsonHas(p.Status.ContainerStatuses[0].State, "running") {
			t.Errorf("container statuses = %+v", p.Status.ContainerStatuses)
		}
		e.cp.Kubectl(t, "delete", "pod", "short", "--wait=true", "--timeout=60s")
	})

	t.Run("ScheduledPodToleratingTheTaint", func(t *testing.T) {
		e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: scheduled
  namespace: default
spec:
  tolerations:
  - key: virtual-kubelet.io/provider
    operator: Equal
    value: skiff
    effect: NoSchedule
  containers:
  - name: app
    image: %s
    command: ["sleep", "3600"]
`, e.image))
		p := e.waitPhase(t, "default", "scheduled", "Running", 90*time.Second)
		if p.Spec.NodeName != nodeName {
			t.Fatalf("scheduled to %q", p.Spec.NodeName)
		}
		if _, code := e.getGroup("default", "scheduled"); code != 200 {
			t.Fatalf("no container group for the scheduled pod: %d", code)
		}
	})

	t.Run("ConfigAndLogsAndExec", func(t *testing.T) {
		e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  namespace: default
data:
  color: blue
  app.conf: "mode=fast"
---
apiVersion: v1
kind: Secret
metadata:
  name: app-secret
  namespace: default
stringData:
  password: s3cret-pw
---
apiVersion: v1
kind: Pod
metadata:
  name: cfg
  namespace: default
spec:
  nodeName: %s
  initContainers:
  - name: first
    image: %s
    command: ["sh", "-c", "echo init-ran > /work/order"]
    volumeMounts:
    - name: work
      mountPath: /work
  containers:
  - name: app
    image: %s
    command: ["sh", "-c", "echo log-line-1; cat /work/order; echo color=$COLOR; sleep 3600"]
    env:
    - name: COLOR
      valueFrom:
        configMapKeyRef:
          name: app-config
          key: color
    - name: PASSWORD
      valueFrom:
        secretKeyRef:
          name: app-secret
          key: password
    volumeMounts:
    - name: work
      mountPath: /work
    - name: conf
      mountPath: /etc/app
    - name: sec
      mountPath: /etc/sec
  volumes:
  - name: work
    emptyDir: {}
  - name: conf
    configMap:
      name: app-config
  - name: sec
    secret:
      secretName: app-secret
`, nodeName, e.image, e.image))
		e.waitPhase(t, "default", "cfg", "Running", 90*time.Second)

		// The Secret-derived variable went to Skiff as a secureValue (reads
		// never return it), the ConfigMap one as a plain value.
		g, code := e.getGroup("default", "cfg")
		if code != 200 || len(g.Properties.Containers) != 1 {
			t.Fatalf("group: %d %+v", code, g)
		}
		for _, ev := range g.Properties.Containers[0].Properties.EnvironmentVariables {
			switch ev.Name {
			case "COLOR":
				if ev.Value != "blue" {
					t.Errorf("COLOR = %+v", ev)
				}
			case "PASSWORD":
				if ev.Value != "" {
					t.Errorf("PASSWORD was sent as a plain value: %+v", ev)
				}
			}
		}

		var logs string
		e.waitFor(t, 30*time.Second, "kubectl logs", func() (bool, string) {
			out, err := e.cp.KubectlErr("logs", "cfg", "-c", "app")
			logs = out
			if err != nil {
				return false, err.Error()
			}
			return strings.Contains(out, "color=blue"), out
		})
		// Init container ran first and shared the emptyDir.
		mustContain(t, "kubectl logs", logs, "log-line-1", "init-ran", "color=blue")

		out := e.cp.Kubectl(t, "exec", "cfg", "-c", "app", "--", "sh", "-c", "echo pw=$PASSWORD; cat /etc/app/app.conf; echo; cat /etc/sec/password")
		mustContain(t, "kubectl exec", out, "pw=s3cret-pw", "mode=fast", "s3cret-pw")

		// exec with stdin.
		cmd := exec.Command("kubectl", "--kubeconfig", e.cp.Kubeconfig, "exec", "-i", "cfg", "-c", "app", "--", "sh", "-c", "read line; echo got=$line")
		cmd.Stdin = strings.NewReader("hello-stdin\n")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "got=hello-stdin") {
			t.Errorf("kubectl exec -i: %v: %s", err, out)
		}
		// logs -f streams, and keeps streaming until stopped.
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		follow := exec.CommandContext(ctx, "kubectl", "--kubeconfig", e.cp.Kubeconfig, "logs", "-f", "cfg", "-c", "app")
		fout, _ := follow.Output()
		if ctx.Err() == nil || !strings.Contains(string(fout), "color=blue") {
			t.Errorf("kubectl logs -f ended early (%v) or missed lines: %q", ctx.Err(), fout)
		}

		if _, err := e.cp.KubectlErr("exec", "cfg", "-c", "app", "--", "sh", "-c", "exit 3"); err == nil {
			t.Errorf("kubectl exec of a command exiting 3 succeeded")
		}
	})

	// A pod the virtual node or Skiff's policy cannot run fails at once with
	// an UnsupportedPodSpec event naming the field, never hangs in Pending,
	// and no group is created for it.
	refused := func(t *testing.T, name, extra, field, eventWord string) {
		t.Helper()
		e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
spec:
  nodeName: %s
  restartPolicy: Always
  containers:
  - name: app
    image: %s
    command: ["sleep", "3600"]
%s`, name, nodeName, e.image, extra))
		p := e.waitPhase(t, "default", name, "Failed", 30*time.Second)
		mustContain(t, "status message", p.Status.Message, field)
		e.waitFor(t, 15*time.Second, "UnsupportedPodSpec event", func() (bool, string) {
			ev := e.events(t, "default", name)
			return strings.Contains(ev, "UnsupportedPodSpec") && strings.Contains(ev, eventWord), ev
		})
		if _, code := e.getGroup("default", name); code != 404 {
			t.Errorf("a group was created for a refused pod: %d", code)
		}
	}

	t.Run("UnsupportedFieldFailsFast", func(t *testing.T) {
		refused(t, "grpcprobe", `    livenessProbe:
      grpc:
        port: 80
`, "spec.containers[0].livenessProbe.grpc", "grpc")
	})

	// Skiff's policy (no --allow-privileged) refuses the group.
	t.Run("PrivilegedPodFails", func(t *testing.T) {
		refused(t, "privileged", `    securityContext:
      privileged: true
`, "spec.containers[0].securityContext.privileged", "securityContext.privileged")
	})

	t.Run("MissingImageShowsPullError", func(t *testing.T) {
		e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: noimage
  namespace: default
spec:
  nodeName: %s
  containers:
  - name: app
    image: %s
`, nodeName, strings.Replace(e.image, "vnode/busybox:1", "vnode/does-not-exist:1", 1)))
		e.waitFor(t, 60*time.Second, "ErrImagePull", func() (bool, string) {
			p, err := e.pod(t, "default", "noimage")
			if err != nil {
				return false, err.Error()
			}
			b, _ := json.Marshal(p.Status)
			return p.Status.Phase == "Pending" && (strings.Contains(string(b), "ErrImagePull") || strings.Contains(string(b), "ImagePullBackOff")), string(b)
		})
		e.waitFor(t, 30*time.Second, "a pull event", func() (bool, string) {
			ev := e.events(t, "default", "noimage")
			return strings.Contains(ev, "Warning"), ev
		})
		p, _ := e.pod(t, "default", "noimage")
		if p.Status.Phase != "Pending" {
			t.Errorf("phase = %s, want Pending", p.Status.Phase)
		}
		// Once the image exists, the retried pull succeeds and the pod runs.
		testenv.Push(t, e.reg, "vnode/does-not-exist:1", testenv.BusyboxImage(t, testenv.ImageOptions{Cmd: []string{"sleep", "3600"}}))
		e.waitPhase(t, "default", "noimage", "Running", 90*time.Second)
	})

	t.Run("DeleteRemovesGroup", func(t *testing.T) {
		start := time.Now()
		e.cp.Kubectl(t, "delete", "pod", "web", "hostport", "--wait=true", "--timeout=60s")
		for _, name := range []string{"web", "hostport"} {
			if _, code := e.getGroup("default", name); code != 404 {
				t.Fatalf("group of the deleted pod %s still exists: %d", name, code)
			}
		}
		// httpd, as PID 1, ignores SIGTERM, so each group goes after its 3s
		// grace; the provider then reports the pod terminated at once.
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("delete took %s", d)
		}
		// The published port is free again.
		if _, err := httpGet("http://127.0.0.1:18081/"); err == nil {
			t.Errorf("port 18081 still answers after delete")
		}
	})

	t.Run("CrashingContainerShowsRestarts", func(t *testing.T) { testCrashRestarts(t, e) })
	t.Run("SlowPullStaysPending", func(t *testing.T) { testSlowPullStaysPending(t, e) })
	t.Run("DeleteHonoursGracePeriod", func(t *testing.T) { testGracePeriod(t, e) })
	t.Run("LogsOptionsAndAttach", func(t *testing.T) { testLogsOptionsAndAttach(t, e) })
	t.Run("StatsSummaryAndMetrics", func(t *testing.T) { testStats(t, e) })
	t.Run("SkiffDownAtStart", func(t *testing.T) { testSkiffDownAtStart(t, e) })
	t.Run("ProbesAndPullSecrets", func(t *testing.T) { testProbesAndPullSecrets(t, e) })
	t.Run("StartupAndTCPSocketProbes", func(t *testing.T) { testStartupAndTCPSocketProbes(t, e) })
	t.Run("SetImage", func(t *testing.T) { testSetImage(t, e) })

	t.Run("DeploymentScale", func(t *testing.T) {
		e.apply(t, fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: fleet
  namespace: default
spec:
  replicas: 20
  selector:
    matchLabels:
      app: fleet
  template:
    metadata:
      labels:
        app: fleet
    spec:
      nodeSelector:
        type: virtual-kubelet
      tolerations:
      - key: virtual-kubelet.io/provider
        operator: Exists
      terminationGracePeriodSeconds: 5
      containers:
      - name: app
        image: %s
        command: ["sleep", "3600"]
        resources:
          requests:
            cpu: 10m
            memory: 16Mi
`, e.image))
		ready := func(want int) func() (bool, string) {
			return func() (bool, string) {
				out, err := e.cp.KubectlErr("get", "deployment", "fleet", "-o", "jsonpath={.status.readyReplicas}/{.status.replicas}")
				if err != nil {
					return false, err.Error()
				}
				return strings.TrimSpace(out) == fmt.Sprintf("%d/%d", want, want), out
			}
		}
		countGroups := func() int {
			list, _ := e.skiff.Client.ListContainerGroups(t.Context(), resourceGroup)
			n := 0
			for _, g := range list {
				if strings.HasPrefix(g.Tags["k8s-pod"], "fleet-") {
					n++
				}
			}
			return n
		}
		start := time.Now()
		e.waitFor(t, 180*time.Second, "20 ready replicas", ready(20))
		t.Logf("20 replicas Ready in %s", time.Since(start))
		if n := countGroups(); n != 20 {
			t.Fatalf("%d container groups for 20 replicas", n)
		}
		e.cp.Kubectl(t, "scale", "deployment", "fleet", "--replicas=0")
		e.waitFor(t, 120*time.Second, "no fleet pods and no fleet groups", func() (bool, string) {
			out, _ := e.cp.KubectlErr("get", "pods", "-l", "app=fleet", "-o", "name")
			n := countGroups()
			return strings.TrimSpace(out) == "" && n == 0, fmt.Sprintf("pods %q groups %d", out, n)
		})
		e.cp.Kubectl(t, "scale", "deployment", "fleet", "--replicas=20")
		e.waitFor(t, 180*time.Second, "20 ready replicas again", ready(20))
		e.cp.Kubectl(t, "delete", "deployment", "fleet", "--wait=true")
	})

	t.Run("RestartRestartsNoPod", func(t *testing.T) {
		before, err := e.pod(t, "default", "scheduled")
		if err != nil {
			t.Fatal(err)
		}
		// kill -9, then start again (the serving certificate is requested anew).
		e.vn.cmd.Process.Kill()
		e.vn.cmd.Wait()
		// A pod deleted while the virtual node is down leaves an orphan group.
		e.cp.Kubectl(t, "delete", "pod", "cfg", "--wait=false")
		e.startVirtualNode(t, true)
		e.waitNodeReady(t)
		e.waitFor(t, 60*time.Second, "orphan group of cfg removed", func() (bool, string) {
			_, code := e.getGroup("default", "cfg")
			return code == 404, fmt.Sprint(code)
		})
		e.waitFor(t, 60*time.Second, "pod cfg gone", func() (bool, string) {
			_, err := e.pod(t, "default", "cfg")
			return err != nil, "still there"
		})
		time.Sleep(3 * time.Second)
		after, err := e.pod(t, "default", "scheduled")
		if err != nil {
			t.Fatal(err)
		}
		if after.Status.Phase != "Running" || after.Metadata.UID != before.Metadata.UID {
			t.Fatalf("after restart: %+v", after.Status)
		}
		if string(before.Status.ContainerStatuses[0].State) != string(after.Status.ContainerStatuses[0].State) ||
			after.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Errorf("container restarted: before %s after %s (restarts %d)", before.Status.ContainerStatuses[0].State,
				after.Status.ContainerStatuses[0].State, after.Status.ContainerStatuses[0].RestartCount)
		}
	})
}

// TestManifestApplies checks that `skiff virtual-node manifest` prints
// objects the API server accepts.
func TestManifestApplies(t *testing.T) {
	cp := k8senv.Start(t)
	cmd := exec.Command(skiffBin, "virtual-node", "manifest", "--endpoint", "http://skiff.example:7700", "--taint", "azure.com/aci:NoSchedule")
	cmd.Env = append(os.Environ(), "SKIFF_TOKEN=tok-123")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("manifest: %v: %s", err, out)
	}
	mustContain(t, "manifest", string(out), "kind: Deployment", "kind: ServiceAccount", "kind: ClusterRole", "kind: ClusterRoleBinding", "tok-123", "--taint=azure.com/aci:NoSchedule")
	applied, err := cp.KubectlErr("apply", "--dry-run=server", "-f", writeTemp(t, string(out)))
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server: %v: %s", err, applied)
	}
	mustContain(t, "apply", applied, "deployment.apps/skiff-virtual-node created", "clusterrole.rbac.authorization.k8s.io/skiff-virtual-node created")
}

func writeTemp(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
