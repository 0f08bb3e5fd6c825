// Package k8senv runs a real Kubernetes control plane for tests: etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler, as separate
// processes on 127.0.0.1, with no kubelet. Pods get created, defaulted and
// scheduled, but nothing runs them unless the test provides a node agent
// (such as Skiff's virtual node).
//
// The binaries come from hack/build-k8s.sh, which builds them once per machine
// into ${SKIFF_K8S_CACHE:-/var/cache/skiff/k8s}/v1.37.2/bin; SKIFF_K8S_BIN
// overrides that directory. The package uses only the standard library and
// drives the cluster with kubectl, so it adds nothing to the root go.mod.
package k8senv

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/testenv/freeport"
)

// Version is the Kubernetes version of the control plane binaries.
const Version = "v1.37.2"

// ServiceClusterIPRange is the service CIDR of the test cluster. No test
// routes traffic to it; ClusterIPs are only bookkeeping here.
const ServiceClusterIPRange = "10.96.0.0/16"

// ServiceAccountIssuer is the issuer of the cluster's service account tokens.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// startTimeout bounds how long Start waits for the cluster to be usable.
const startTimeout = 2 * time.Minute

// kubectlTimeout bounds one kubectl invocation.
const kubectlTimeout = 2 * time.Minute

// ControlPlane is a running test cluster. Its processes are stopped, and its
// files removed, when the test that started it ends.
type ControlPlane struct {
	// Kubeconfig is the path of an admin kubeconfig file (static token in
	// group system:masters, CA data embedded).
	Kubeconfig string
	// Server is the API server URL, https://127.0.0.1:<port>.
	Server string
	// Token is the admin bearer token (user "admin", group system:masters).
	Token string
	// CAFile is the cluster CA certificate (PEM). It signed the API server's
	// serving certificate and its kubelet client certificate; the API server
	// trusts client certificates it signed; kube-controller-manager signs
	// approved CertificateSigningRequests with it.
	CAFile string
	// CAKeyFile is the cluster CA's private key (PEM), so that tests can
	// issue their own client or serving certificates.
	CAKeyFile string
	// KubeletClientCertFile and KubeletClientKeyFile are the client
	// certificate the API server presents to kubelets (logs, exec, port
	// forward): CN kube-apiserver-kubelet-client, O system:masters, signed by
	// CAFile.
	KubeletClientCertFile string
	KubeletClientKeyFile  string
	// Dir is the cluster's scratch directory: etcd data, keys and one log
	// file per process (<name>.log).
	Dir string

	kubectl string
}

// BinDir returns the directory Start takes the binaries from: $SKIFF_K8S_BIN,
// or else the cache dir that hack/build-k8s.sh fills.
func BinDir() string {
	if d := os.Getenv("SKIFF_K8S_BIN"); d != "" {
		return d
	}
	cache := os.Getenv("SKIFF_K8S_CACHE")
	if cache == "" {
		cache = "/var/cache/skiff/k8s"
	}
	return filepath.Join(cache, Version, "bin")
}

// Start starts etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler, and returns once the API server is ready, both controllers
// hold their leader leases, and the `default` ServiceAccount and the
// kube-root-ca.crt ConfigMap exist in namespace default. It fails the test if
// the binaries are missing (run hack/build-k8s.sh) or the cluster does not
// come up. Everything is stopped in t.Cleanup.
//
// The child processes are killed if the OS thread that started them exits
// (Pdeathsig), so call Start from a goroutine that is not locked to a thread
// it will later terminate (runtime.LockOSThread without Unlock).
func Start(t testing.TB) *ControlPlane {
	t.Helper()
	binDir := BinDir()
	bins := map[string]string{}
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		p := filepath.Join(binDir, name)
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			t.Fatalf("k8senv: %s is missing: run ./hack/build-k8s.sh (make test does) to build the Kubernetes %s control plane into %s, or point SKIFF_K8S_BIN at a directory holding etcd, kube-apiserver, kube-controller-manager and kube-scheduler", p, Version, binDir)
		}
		bins[name] = p
	}
	kubectl := filepath.Join(binDir, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		kubectl, err = exec.LookPath("kubectl")
		if err != nil {
			t.Fatalf("k8senv: no kubectl in %s or on PATH: run ./hack/build-k8s.sh, which builds one when none is installed", binDir)
		}
	}

	dir := t.TempDir()
	cp := &ControlPlane{Dir: dir, kubectl: kubectl}
	var procs []*proc
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range procs {
				t.Logf("k8senv: %s log tail (%s):\n%s", p.name, p.logPath, p.logTail(30))
			}
		}
		for i := len(procs) - 1; i >= 0; i-- {
			if err := procs[i].stop(10 * time.Second); err != nil {
				t.Errorf("k8senv: %v", err)
			}
		}
	})
	start := func(name string, args ...string) {
		t.Helper()
		p, err := startProc(dir, name, bins[name], args...)
		if err != nil {
			t.Fatalf("k8senv: %v", err)
		}
		procs = append(procs, p)
	}

	files, err := writeClusterFiles(dir)
	if err != nil {
		t.Fatalf("k8senv: %v", err)
	}
	cp.Token = files.token
	cp.CAFile = files.caCert
	cp.CAKeyFile = files.caKey
	cp.KubeletClientCertFile = files.kubeletClientCert
	cp.KubeletClientKeyFile = files.kubeletClientKey

	ports, err := freeport.N(3)
	if err != nil {
		t.Fatalf("k8senv: %v", err)
	}
	etcdClient := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	etcdPeer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	cp.Server = "https://127.0.0.1:" + strconv.Itoa(ports[2])

	cp.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := writeKubeconfig(cp.Kubeconfig, cp.Server, files.caPEM, cp.Token); err != nil {
		t.Fatalf("k8senv: %v", err)
	}

	etcdArgs := []string{
		"--name=default",
		"--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + etcdClient,
		"--advertise-client-urls=" + etcdClient,
		"--listen-peer-urls=" + etcdPeer,
		"--initial-advertise-peer-urls=" + etcdPeer,
		"--initial-cluster=default=" + etcdPeer,
		"--log-level=warn",
	}
	if helpMentions(bins["etcd"], "--unsafe-no-fsync") {
		etcdArgs = append(etcdArgs, "--unsafe-no-fsync")
	}
	start("etcd", etcdArgs...)

	start("kube-apiserver",
		"--etcd-servers="+etcdClient,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// The endpoint reconciler refuses a loopback advertise address; the
		// `kubernetes` Service then has no endpoints, which no test uses.
		"--endpoint-reconciler-type=none",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file="+files.servingCert,
		"--tls-private-key-file="+files.servingKey,
		"--client-ca-file="+files.caCert,
		"--token-auth-file="+files.tokenFile,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--service-cluster-ip-range="+ServiceClusterIPRange,
		"--service-account-issuer="+ServiceAccountIssuer,
		"--service-account-key-file="+files.saPub,
		"--service-account-signing-key-file="+files.saKey,
		"--kubelet-client-certificate="+files.kubeletClientCert,
		"--kubelet-client-key="+files.kubeletClientKey,
		"--profiling=false",
	)

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	client := cp.httpClient(files.caPEM)
	wait := func(what, path string) {
		t.Helper()
		if err := cp.waitOK(ctx, client, path, procs); err != nil {
			t.Fatalf("k8senv: waiting for %s: %v", what, err)
		}
	}
	wait("kube-apiserver /readyz", "/readyz")

	start("kube-controller-manager",
		"--kubeconfig="+cp.Kubeconfig,
		"--secure-port=0",
		"--service-account-private-key-file="+files.saKey,
		"--root-ca-file="+files.caCert,
		"--cluster-signing-cert-file="+files.caCert,
		"--cluster-signing-key-file="+files.caKey,
		"--use-service-account-credentials=true",
		"--controllers=*",
		"--profiling=false",
	)
	start("kube-scheduler",
		"--kubeconfig="+cp.Kubeconfig,
		"--secure-port=0",
		"--profiling=false",
	)
	wait("the kube-controller-manager leader lease", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager")
	wait("the kube-scheduler leader lease", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler")
	wait("ServiceAccount default/default", "/api/v1/namespaces/default/serviceaccounts/default")
	wait("ConfigMap default/kube-root-ca.crt", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
	return cp
}

// Kubectl runs kubectl against the cluster with the admin kubeconfig and
// returns its stdout. It fails the test on error, so call it from the test's
// goroutine only; elsewhere use KubectlErr.
func (c *ControlPlane) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.KubectlErr(args...)
	if err != nil {
		t.Fatalf("k8senv: %v", err)
	}
	return out
}

// KubectlErr runs kubectl against the cluster with the admin kubeconfig and
// returns its stdout. The error includes kubectl's stderr.
func (c *ControlPlane) KubectlErr(args ...string) (string, error) {
	return c.run(nil, args...)
}

// Apply runs `kubectl apply -f -` with manifest (YAML or JSON, one or more
// documents) on stdin and fails the test on error.
func (c *ControlPlane) Apply(t testing.TB, manifest string) {
	t.Helper()
	if _, err := c.run(strings.NewReader(manifest), "apply", "-f", "-"); err != nil {
		t.Fatalf("k8senv: %v", err)
	}
}

func (c *ControlPlane) run(stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	// --cache-dir keeps kubectl's discovery and HTTP caches in the cluster's
	// scratch dir instead of ~/.kube/cache.
	full := append([]string{"--kubeconfig=" + c.Kubeconfig, "--cache-dir=" + filepath.Join(c.Dir, "kubectl-cache")}, args...)
	cmd := exec.CommandContext(ctx, c.kubectl, full...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (c *ControlPlane) httpClient(caPEM []byte) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
}

// waitOK polls GET path on the API server until it answers 200, a process
// exits, or ctx ends.
func (c *ControlPlane) waitOK(ctx context.Context, client *http.Client, path string, procs []*proc) error {
	var last string
	for {
		for _, p := range procs {
			if err := p.exited(); err != nil {
				return err
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.Token)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("GET %s: %w (last answer: %s)", path, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// clusterFiles are the keys, certificates and token file of a test cluster.
type clusterFiles struct {
	caPEM                               []byte
	caCert, caKey                       string
	servingCert, servingKey             string
	kubeletClientCert, kubeletClientKey string
	saKey, saPub                        string
	token, tokenFile                    string
}

func writeClusterFiles(dir string) (*clusterFiles, error) {
	pki := filepath.Join(dir, "pki")
	if err := os.Mkdir(pki, 0o700); err != nil {
		return nil, err
	}
	f := &clusterFiles{
		caCert:            filepath.Join(pki, "ca.crt"),
		caKey:             filepath.Join(pki, "ca.key"),
		servingCert:       filepath.Join(pki, "apiserver.crt"),
		servingKey:        filepath.Join(pki, "apiserver.key"),
		kubeletClientCert: filepath.Join(pki, "apiserver-kubelet-client.crt"),
		kubeletClientKey:  filepath.Join(pki, "apiserver-kubelet-client.key"),
		saKey:             filepath.Join(pki, "sa.key"),
		saPub:             filepath.Join(pki, "sa.pub"),
		tokenFile:         filepath.Join(pki, "tokens.csv"),
	}
	ca, err := newCA()
	if err != nil {
		return nil, err
	}
	if err := writeCertPEM(f.caCert, ca.cert.Raw); err != nil {
		return nil, err
	}
	if err := writeKeyPEM(f.caKey, ca.key); err != nil {
		return nil, err
	}
	if f.caPEM, err = os.ReadFile(f.caCert); err != nil {
		return nil, err
	}

	// The first address of the service range is the `kubernetes` Service's
	// ClusterIP; include it as real clusters do.
	der, key, err := ca.issue(pkix.Name{CommonName: "kube-apiserver"},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		[]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, net.IPv4(10, 96, 0, 1)},
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
	if err != nil {
		return nil, err
	}
	if err := writeCertPEM(f.servingCert, der); err != nil {
		return nil, err
	}
	if err := writeKeyPEM(f.servingKey, key); err != nil {
		return nil, err
	}

	der, key, err = ca.issue(pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
		nil, nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	if err != nil {
		return nil, err
	}
	if err := writeCertPEM(f.kubeletClientCert, der); err != nil {
		return nil, err
	}
	if err := writeKeyPEM(f.kubeletClientKey, key); err != nil {
		return nil, err
	}

	// The service account signing key: a plain key pair, no certificate.
	sa, err := newCA()
	if err != nil {
		return nil, err
	}
	if err := writeKeyPEM(f.saKey, sa.key); err != nil {
		return nil, err
	}
	if err := writePublicKeyPEM(f.saPub, sa.key.Public()); err != nil {
		return nil, err
	}

	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	f.token = hex.EncodeToString(tok)
	// token,user,uid,"group1,group2"
	if err := os.WriteFile(f.tokenFile, []byte(f.token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return nil, err
	}
	return f, nil
}

func writeKubeconfig(path, server string, caPEM []byte, token string) error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: skiff-test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: skiff-test
  context:
    cluster: skiff-test
    user: admin
    namespace: default
current-context: skiff-test
`, server, base64.StdEncoding.EncodeToString(caPEM), token)
	return os.WriteFile(path, []byte(cfg), 0o600)
}

// helpMentions reports whether `bin --help` mentions flag.
func helpMentions(bin, flag string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return false
	}
	return bytes.Contains(out, []byte(flag))
}
