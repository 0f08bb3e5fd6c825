package k8senv_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	k8senv "github.com/skiff-sh/skiff/internal/testenv/k8s"
)

// pod is the part of a Pod object the test looks at.
type pod struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		Phase      string `json:"phase"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
			Reason string `json:"reason"`
		} `json:"conditions"`
	} `json:"status"`
}

func (p pod) condition(typ string) (status, reason string) {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status, c.Reason
		}
	}
	return "", ""
}

func getPods(t *testing.T, cp *k8senv.ControlPlane, args ...string) []pod {
	t.Helper()
	out := cp.Kubectl(t, append([]string{"get", "pods", "-o", "json"}, args...)...)
	var list struct {
		Items []pod `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("decode pod list: %v\n%s", err, out)
	}
	return list.Items
}

// eventually polls cond every 200ms until it returns "" (done) or the
// timeout passes, then fails with cond's last explanation.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %s", what, timeout, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      nodeSelector:
        skiff.test/no-such-node: "true"
      containers:
      - name: web
        image: busybox
        command: ["sleep", "3600"]
`

const node = `apiVersion: v1
kind: Node
metadata:
  name: fake-node-1
  labels:
    kubernetes.io/hostname: fake-node-1
    kubernetes.io/os: linux
spec: {}
`

// nodeStatus is what a kubelet (or virtual kubelet) would report: Ready, with
// room for pods.
const nodeStatus = `{"status":{
  "capacity":{"cpu":"4","memory":"8Gi","pods":"110"},
  "allocatable":{"cpu":"4","memory":"8Gi","pods":"110"},
  "conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"fake node for tests",
                 "lastHeartbeatTime":"%[1]s","lastTransitionTime":"%[1]s"}]}}`

const loosePod = `apiVersion: v1
kind: Pod
metadata:
  name: loose
  namespace: default
spec:
  containers:
  - name: c
    image: busybox
    command: ["sleep", "3600"]
`

func TestControlPlane(t *testing.T) {
	start := time.Now()
	cp := k8senv.Start(t)
	t.Logf("control plane up in %v at %s", time.Since(start).Round(time.Millisecond), cp.Server)

	for _, f := range []string{cp.Kubeconfig, cp.CAFile, cp.CAKeyFile, cp.KubeletClientCertFile, cp.KubeletClientKeyFile} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("ControlPlane file: %v", err)
		}
	}

	if out := cp.Kubectl(t, "get", "--raw", "/readyz"); strings.TrimSpace(out) != "ok" {
		t.Fatalf("/readyz = %q, want ok", out)
	}
	var version struct {
		GitVersion string `json:"gitVersion"`
	}
	if err := json.Unmarshal([]byte(cp.Kubectl(t, "get", "--raw", "/version")), &version); err != nil {
		t.Fatalf("decode /version: %v", err)
	}
	if version.GitVersion != k8senv.Version {
		t.Errorf("server gitVersion = %q, want %q", version.GitVersion, k8senv.Version)
	}
	// The admin token is a cluster admin.
	if out := cp.Kubectl(t, "auth", "can-i", "*", "*", "--all-namespaces"); strings.TrimSpace(out) != "yes" {
		t.Errorf("kubectl auth can-i '*' '*' = %q, want yes", out)
	}

	// kube-controller-manager: Deployment -> ReplicaSet -> 2 Pods, which
	// stay Pending because no node matches their nodeSelector.
	cp.Apply(t, deployment)
	eventually(t, 30*time.Second, "deployment web has 2 unschedulable Pending pods", func() string {
		pods := getPods(t, cp, "-l", "app=web")
		if len(pods) != 2 {
			return fmt.Sprintf("%d pods", len(pods))
		}
		for _, p := range pods {
			if p.Status.Phase != "Pending" || p.Spec.NodeName != "" {
				return fmt.Sprintf("pod %s phase %q node %q", p.Metadata.Name, p.Status.Phase, p.Spec.NodeName)
			}
			// The scheduler looked at it and found no node.
			if st, reason := p.condition("PodScheduled"); st != "False" || reason != "Unschedulable" {
				return fmt.Sprintf("pod %s PodScheduled=%q reason %q", p.Metadata.Name, st, reason)
			}
		}
		return ""
	})
	if out := cp.Kubectl(t, "get", "replicasets", "-l", "app=web", "-o", "name"); strings.Count(out, "replicaset.apps/web-") != 1 {
		t.Errorf("want one ReplicaSet for deployment web, got %q", out)
	}

	// kube-scheduler: a Ready node appears; a pod with no nodeSelector is
	// bound to it, the deployment's pods are still not.
	cp.Apply(t, node)
	now := time.Now().UTC().Format(time.RFC3339)
	cp.Kubectl(t, "patch", "node", "fake-node-1", "--subresource=status", "--type=merge", "-p", fmt.Sprintf(nodeStatus, now))
	cp.Apply(t, loosePod)
	eventually(t, 30*time.Second, "pod loose is bound to fake-node-1", func() string {
		pods := getPods(t, cp, "--field-selector=metadata.name=loose")
		if len(pods) != 1 {
			return fmt.Sprintf("%d pods", len(pods))
		}
		p := pods[0]
		if p.Spec.NodeName != "fake-node-1" {
			taints := cp.Kubectl(t, "get", "node", "fake-node-1", "-o", "jsonpath={.spec.taints}")
			return fmt.Sprintf("nodeName %q (node taints: %s)", p.Spec.NodeName, taints)
		}
		if st, _ := p.condition("PodScheduled"); st != "True" {
			return fmt.Sprintf("PodScheduled=%q", st)
		}
		return ""
	})
	// Nothing runs it: there is no kubelet.
	if p := getPods(t, cp, "--field-selector=metadata.name=loose")[0]; p.Status.Phase != "Pending" {
		t.Errorf("pod loose phase = %q, want Pending (no kubelet)", p.Status.Phase)
	}
	for _, p := range getPods(t, cp, "-l", "app=web") {
		if p.Spec.NodeName != "" {
			t.Errorf("pod %s with a nodeSelector matching no node was bound to %q", p.Metadata.Name, p.Spec.NodeName)
		}
	}

	checkCSRSigning(t, cp)
}

// checkCSRSigning submits a kubelet serving CSR for fake-node-1, approves it
// as an admin would, and checks kube-controller-manager signs it with the
// cluster CA (CAFile).
func checkCSRSigning(t *testing.T, cp *k8senv.ControlPlane) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: "system:node:fake-node-1", Organization: []string{"system:nodes"}},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})
	cp.Apply(t, fmt.Sprintf(`apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata:
  name: fake-node-1-serving
spec:
  request: %s
  signerName: kubernetes.io/kubelet-serving
  usages: [digital signature, server auth]
`, base64.StdEncoding.EncodeToString(csrPEM)))
	cp.Kubectl(t, "certificate", "approve", "fake-node-1-serving")
	var certPEM []byte
	eventually(t, 30*time.Second, "CSR fake-node-1-serving is signed", func() string {
		out := cp.Kubectl(t, "get", "csr", "fake-node-1-serving", "-o", "jsonpath={.status.certificate}")
		if strings.TrimSpace(out) == "" {
			return "no status.certificate yet"
		}
		if certPEM, err = base64.StdEncoding.DecodeString(strings.TrimSpace(out)); err != nil {
			return fmt.Sprintf("decode status.certificate: %v", err)
		}
		return ""
	})
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatalf("status.certificate is not PEM: %q", certPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(cp.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("signed kubelet serving cert does not verify against CAFile: %v", err)
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("signed cert: %v", err)
	}
}

// TestStartFailsWithoutBinaries checks the failure message points at the
// build script. It runs Start against an empty bin dir in a fake testing.TB.
func TestStartFailsWithoutBinaries(t *testing.T) {
	t.Setenv("SKIFF_K8S_BIN", t.TempDir())
	ft := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = recover() }()
		k8senv.Start(ft)
	}()
	<-done
	if !strings.Contains(ft.msg, "hack/build-k8s.sh") {
		t.Fatalf("Start with no binaries: message %q does not mention hack/build-k8s.sh", ft.msg)
	}
}

// fatalTB records the first Fatalf and stops the calling goroutine.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f.msg)
}
