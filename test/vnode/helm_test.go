package vnode

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/internal/testenv"
	k8senv "github.com/skiff-sh/skiff/internal/testenv/k8s"
)

// helmVersion is the helm that hack/build-helm.sh builds from tools/helm.
const helmVersion = "v3.22.0"

// saDir is where a kubelet mounts a pod's service-account token and CA.
const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// chartPath is the chart under test, from this package's directory.
var chartPath = filepath.Join("..", "..", "deploy", "helm", "skiff-virtual-node")

// helmCmd runs a real helm binary with its own config, cache and data dirs.
type helmCmd struct {
	bin string
	env []string
}

// newHelm returns helm from $SKIFF_HELM, else builds it with
// hack/build-helm.sh (once per machine; the binary is cached).
func newHelm(t *testing.T) *helmCmd {
	t.Helper()
	bin := os.Getenv("SKIFF_HELM")
	if bin == "" {
		script, err := filepath.Abs(filepath.Join("..", "..", "hack", "build-helm.sh"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("SKIFF_HELM is unset: running %s (a few minutes the first time on a machine)", script)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, script)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("hack/build-helm.sh: %v: %s", err, stderr.String())
		}
		bin = strings.TrimSpace(string(out))
	}
	home := t.TempDir()
	h := &helmCmd{bin: bin, env: append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-cluster"),
	)}
	v, err := h.run("version", "--template", "{{.Version}}")
	if err != nil {
		t.Fatalf("SKIFF_HELM=%s does not run: %v", bin, err)
	}
	if strings.TrimSpace(v) != helmVersion {
		t.Fatalf("%s reports version %q, want %s (run hack/build-helm.sh)", bin, v, helmVersion)
	}
	return h
}

// run runs helm and returns its stdout; the error includes stderr.
func (h *helmCmd) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = h.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (h *helmCmd) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := h.run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// setArgs turns values into --set flags, in a stable order.
func setArgs(values map[string]string) []string {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var args []string
	for _, k := range keys {
		args = append(args, "--set-string", k+"="+values[k])
	}
	return args
}

// rendered is a chart's objects as `helm template` prints them.
type rendered struct {
	docs map[string]string // kind -> YAML document (one object of each kind)
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

func parseRendered(t *testing.T, out string) *rendered {
	t.Helper()
	r := &rendered{docs: map[string]string{}}
	for _, doc := range docSep.Split(out, -1) {
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if meta.Kind == "" {
			continue
		}
		if _, dup := r.docs[meta.Kind]; dup {
			t.Fatalf("two objects of kind %s rendered", meta.Kind)
		}
		r.docs[meta.Kind] = doc
	}
	return r
}

func (r *rendered) has(kind string) bool { _, ok := r.docs[kind]; return ok }

func (r *rendered) get(t *testing.T, kind string, into any) {
	t.Helper()
	doc, ok := r.docs[kind]
	if !ok {
		t.Fatalf("no %s rendered; kinds: %v", kind, r.kinds())
	}
	if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
		t.Fatalf("%s: %v\n%s", kind, err, doc)
	}
}

func (r *rendered) kinds() []string {
	var ks []string
	for k := range r.docs {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// argv is the container's command line: command then args.
func argv(c corev1.Container) []string { return append(slices.Clone(c.Command), c.Args...) }

// setting is what the container sets for one `skiff virtual-node` option:
// the value of --flag=value, else of the plain env var (which the command
// reads as the flag's default); ok is false when it sets neither.
func setting(c corev1.Container, flag, envName string) (string, bool) {
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v, true
		}
	}
	for _, e := range c.Env {
		if envName != "" && e.Name == envName && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}

// ruleSet flattens RBAC rules into "group/resource:verb" entries.
func ruleSet(rules []rbacv1.PolicyRule) []string {
	var s []string
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					s = append(s, g+"/"+res+":"+v)
				}
			}
		}
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// dryRunArgs runs the image's command line with the skiff binary under test
// and no cluster: cobra parses every flag and the command checks the taint,
// capacity and node IP before it looks for a cluster, so an unknown flag or a
// bad value fails differently from the expected "not in a cluster".
func dryRunArgs(t *testing.T, c corev1.Container, token string) {
	t.Helper()
	line := argv(c)
	if len(line) < 2 || filepath.Base(line[0]) != "skiff" || line[1] != "virtual-node" {
		t.Fatalf("the container runs %q, want skiff virtual-node ...", line)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			env = append(env, e.Name+"="+token)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP":
			env = append(env, e.Name+"=127.0.0.1")
		default:
			t.Fatalf("env %s: unexpected source %+v", e.Name, e.ValueFrom)
		}
	}
	cmd := exec.Command(skiffBin, line[1:]...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not in a cluster") {
		t.Fatalf("skiff %s (no cluster): err %v, want the in-cluster config error; output:\n%s", strings.Join(line[1:], " "), err, out)
	}
}

// TestHelmChart proves deploy/helm/skiff-virtual-node with a real helm:
// lint, what `helm template` renders, and install, upgrade and uninstall
// against a real kube-apiserver, where the Deployment's command line, run as
// a kubelet would run it (as the chart's ServiceAccount, with the token from
// the chart's Secret), registers the virtual node.
func TestHelmChart(t *testing.T) {
	h := newHelm(t)
	const (
		token    = `tok-123 "quoted": #not-a-comment`
		endpoint = "http://skiff.example:7700"
		rg       = "k8s-pods"
		region   = "westeurope"
		sub      = "sub-0001"
		node     = "helm-vnode"
		taint    = "azure.com/aci:NoSchedule"
	)
	values := map[string]string{
		"endpoint": endpoint, "token": token, "resourceGroup": rg, "region": region,
		"subscription": sub, "nodeName": node, "taint": taint,
	}

	t.Run("lint", func(t *testing.T) {
		out := h.must(t, "lint", "--strict", chartPath)
		mustContain(t, "helm lint", out, "1 chart(s) linted, 0 chart(s) failed")
		out = h.must(t, append([]string{"lint", "--strict", chartPath}, setArgs(values)...)...)
		mustContain(t, "helm lint with values", out, "0 chart(s) failed")
		// The values schema catches a malformed taint before anything is installed.
		out, err := h.run("lint", chartPath, "--set", "taint=azure.com/aci")
		if err == nil {
			t.Fatalf("helm lint accepted taint azure.com/aci (no effect):\n%s", out)
		}
		mustContain(t, "helm lint bad taint", out+err.Error(), "/taint")
	})

	t.Run("template", func(t *testing.T) {
		out := h.must(t, append([]string{"template", "vnode", chartPath, "-n", "skiff-system"}, setArgs(values)...)...)
		r := parseRendered(t, out)
		for _, k := range []string{"Secret", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"} {
			if !r.has(k) {
				t.Fatalf("no %s rendered; kinds: %v", k, r.kinds())
			}
		}
		var (
			secret corev1.Secret
			sa     corev1.ServiceAccount
			cr     rbacv1.ClusterRole
			crb    rbacv1.ClusterRoleBinding
			dep    appsv1.Deployment
		)
		r.get(t, "Secret", &secret)
		r.get(t, "ServiceAccount", &sa)
		r.get(t, "ClusterRole", &cr)
		r.get(t, "ClusterRoleBinding", &crb)
		r.get(t, "Deployment", &dep)

		// The token is in the Secret, and only there.
		got := string(secret.Data["token"])
		if got == "" {
			got = secret.StringData["token"]
		}
		if got != token {
			t.Fatalf("Secret %s holds token %q, want %q", secret.Name, got, token)
		}
		if secret.Namespace != "skiff-system" || sa.Namespace != "skiff-system" || dep.Namespace != "skiff-system" {
			t.Fatalf("namespaced objects not in the release namespace: secret %q, sa %q, deployment %q", secret.Namespace, sa.Namespace, dep.Namespace)
		}
		if strings.Contains(r.docs["Deployment"], "tok-123") || strings.Contains(r.docs["Deployment"], base64.StdEncoding.EncodeToString([]byte(token))) {
			t.Fatalf("the Deployment carries the token in clear:\n%s", r.docs["Deployment"])
		}
		if n := len(dep.Spec.Template.Spec.Containers); n != 1 {
			t.Fatalf("%d containers, want 1", n)
		}
		c := dep.Spec.Template.Spec.Containers[0]
		var ref *corev1.SecretKeySelector
		for _, e := range c.Env {
			if e.Value == token {
				t.Fatalf("env %s holds the token in clear", e.Name)
			}
			if e.Name == "SKIFF_TOKEN" && e.ValueFrom != nil {
				ref = e.ValueFrom.SecretKeyRef
			}
		}
		if ref == nil || ref.Name != secret.Name || secret.Data[ref.Key] == nil && secret.StringData[ref.Key] == "" {
			t.Fatalf("SKIFF_TOKEN is not a secretKeyRef to Secret %s: %+v", secret.Name, c.Env)
		}

		// What the user set reaches the command line (or its env).
		for _, s := range []struct{ flag, env, want string }{
			{"--endpoint", "SKIFF_ENDPOINT", endpoint},
			{"--subscription", "SKIFF_SUBSCRIPTION", sub},
			{"--resource-group", "ACI_RESOURCE_GROUP", rg},
			{"--region", "ACI_REGION", region},
			{"--node-name", "SKIFF_NODE_NAME", node},
			{"--taint", "", taint},
		} {
			if v, ok := setting(c, s.flag, s.env); !ok || v != s.want {
				t.Errorf("%s/$%s = %q (set %v), want %q; argv %q env %+v", s.flag, s.env, v, ok, s.want, argv(c), c.Env)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		dryRunArgs(t, c, token)

		// RBAC: the pod runs as the ServiceAccount the binding grants the
		// ClusterRole to, and the role allows what `skiff virtual-node
		// manifest` allows.
		if dep.Spec.Template.Spec.ServiceAccountName != sa.Name {
			t.Fatalf("the pod runs as ServiceAccount %q, the chart creates %q", dep.Spec.Template.Spec.ServiceAccountName, sa.Name)
		}
		if crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != cr.Name {
			t.Fatalf("ClusterRoleBinding refers to %s %q, want ClusterRole %q", crb.RoleRef.Kind, crb.RoleRef.Name, cr.Name)
		}
		if len(crb.Subjects) != 1 || crb.Subjects[0].Kind != "ServiceAccount" || crb.Subjects[0].Name != sa.Name || crb.Subjects[0].Namespace != "skiff-system" {
			t.Fatalf("ClusterRoleBinding subjects %+v, want ServiceAccount skiff-system/%s", crb.Subjects, sa.Name)
		}
		mcmd := exec.Command(skiffBin, "virtual-node", "manifest", "--endpoint", endpoint)
		mout, err := mcmd.Output()
		if err != nil {
			t.Fatalf("skiff virtual-node manifest: %v", err)
		}
		var mcr rbacv1.ClusterRole
		parseRendered(t, string(mout)).get(t, "ClusterRole", &mcr)
		if want, got := ruleSet(mcr.Rules), ruleSet(cr.Rules); !slices.Equal(want, got) {
			t.Fatalf("chart ClusterRole grants\n%q\nskiff virtual-node manifest grants\n%q", got, want)
		}
	})

	t.Run("template variants", func(t *testing.T) {
		base := []string{"template", "v", chartPath, "--set", "endpoint=" + endpoint}
		// Missing values fail with a message that says which.
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"template", "v", chartPath, "--set", "token=x"}, "endpoint is required"},
			{base, "token (or existingSecret) is required"},
			{append(slices.Clone(base), "--set", "token=x", "--set", "servingCert=bogus"), "servingCert"},
			{append(slices.Clone(base), "--set", "token=x", "--set", "servingCert=files"), "tls.secretName is required"},
			{append(slices.Clone(base), "--set", "token=x", "--set", "nodeName=Not_A_Name"), "/nodeName"},
		} {
			out, err := h.run(tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm %q: err %v, want one mentioning %q; output:\n%s", tc.args, err, tc.want, out)
			}
		}

		// An existing Secret: the chart makes none and reads the named key.
		out := h.must(t, append(slices.Clone(base), "--set", "existingSecret=my-skiff", "--set", "existingSecretKey=admin-token")...)
		r := parseRendered(t, out)
		if r.has("Secret") {
			t.Fatalf("a Secret is rendered although existingSecret is set:\n%s", r.docs["Secret"])
		}
		var dep appsv1.Deployment
		r.get(t, "Deployment", &dep)
		c := dep.Spec.Template.Spec.Containers[0]
		i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "SKIFF_TOKEN" })
		if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.SecretKeyRef == nil ||
			c.Env[i].ValueFrom.SecretKeyRef.Name != "my-skiff" || c.Env[i].ValueFrom.SecretKeyRef.Key != "admin-token" {
			t.Fatalf("SKIFF_TOKEN does not come from my-skiff/admin-token: %+v", c.Env)
		}

		// Each serving-certificate mode, no taint, custom capacity and
		// image: the command still parses, with the files mounted where the
		// flags point.
		for _, mode := range []string{"csr", "self-signed", "files"} {
			out := h.must(t, append(slices.Clone(base), "--set", "token=x", "--set", "servingCert="+mode,
				"--set", "tls.secretName=vnode-tls", "--set", "taint=", "--set", "capacity.cpu=64",
				"--set", "capacity.memory=256Gi", "--set", "capacity.pods=300", "--set", "kubeletPort=10255",
				"--set", "image.repository=registry.example/skiff", "--set", "image.tag=v9",
				"--set", "resources.requests.cpu=100m")...)
			var dep appsv1.Deployment
			parseRendered(t, out).get(t, "Deployment", &dep)
			c := dep.Spec.Template.Spec.Containers[0]
			for flag, want := range map[string]string{"--serving-cert": mode, "--taint": "", "--cpu": "64", "--memory": "256Gi", "--pods": "300", "--kubelet-port": "10255"} {
				if v, ok := setting(c, flag, ""); !ok || v != want {
					t.Errorf("%s: %s=%q (set %v), want %q", mode, flag, v, ok, want)
				}
			}
			if c.Image != "registry.example/skiff:v9" || c.Resources.Requests.Cpu().String() != "100m" {
				t.Errorf("%s: image %q, requests %v", mode, c.Image, c.Resources.Requests)
			}
			if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 10255 {
				t.Errorf("%s: ports %+v, want 10255", mode, c.Ports)
			}
			if mode == "files" {
				cert, _ := setting(c, "--tls-cert-file", "")
				key, _ := setting(c, "--tls-key-file", "")
				vols := dep.Spec.Template.Spec.Volumes
				if len(c.VolumeMounts) != 1 || len(vols) != 1 || vols[0].Secret == nil || vols[0].Secret.SecretName != "vnode-tls" ||
					filepath.Dir(cert) != c.VolumeMounts[0].MountPath || filepath.Dir(key) != c.VolumeMounts[0].MountPath {
					t.Errorf("files: cert %q key %q not from Secret vnode-tls: mounts %+v volumes %+v", cert, key, c.VolumeMounts, vols)
				}
			}
			dryRunArgs(t, c, "x")
		}
	})

	t.Run("install upgrade uninstall", func(t *testing.T) {
		testHelmLifecycle(t, h)
	})
}

// testHelmLifecycle installs the chart into a real control plane, runs the
// Deployment's command line as its pod would run, upgrades, and uninstalls.
func testHelmLifecycle(t *testing.T, h *helmCmd) {
	// Its own bridge and subnet, away from the package's other tests' network.
	// No container runs on it: the virtual node only checks its health and
	// creates its resource group.
	sk := startSkiffOn(t, "skvh0", "10.218.0.0/16")
	cp := k8senv.Start(t)
	const (
		ns      = "skiff-helm"
		release = "vnode"
		rg      = "k8s-pods"
		node1   = "helm-vnode-a"
		node2   = "helm-vnode-b"
	)
	token, endpoint := sk.Token, sk.Endpoint
	_, kport, _ := net.SplitHostPort(testenv.FreeLoopbackAddr(t, "127.0.0.1"))
	hk := &helmCmd{bin: h.bin, env: append(slices.Clone(h.env), "KUBECONFIG="+cp.Kubeconfig)}
	t.Cleanup(func() {
		hk.run("uninstall", release, "-n", ns, "--wait", "--timeout", "60s")
		cp.KubectlErr("delete", "node", node1, node2, "--ignore-not-found")
		cp.KubectlErr("delete", "namespace", ns, "--ignore-not-found", "--wait=false")
	})

	install := append([]string{"install", release, chartPath, "-n", ns, "--create-namespace", "--set", "kubeletPort=" + kport},
		setArgs(map[string]string{"endpoint": endpoint, "token": token, "nodeName": node1,
			"taint": "azure.com/aci:NoSchedule", "resourceGroup": rg})...)
	out := hk.must(t, install...)
	mustContain(t, "helm install", out, "STATUS: deployed", "REVISION: 1")

	var sa corev1.ServiceAccount
	parseRendered(t, hk.must(t, "get", "manifest", release, "-n", ns)).get(t, "ServiceAccount", &sa)
	name := sa.Name // every object of the release is named alike
	for _, obj := range []string{"secret/" + name, "serviceaccount/" + name, "deployment/" + name} {
		cp.Kubectl(t, "get", "-n", ns, obj)
	}
	cp.Kubectl(t, "get", "clusterrole/"+name, "clusterrolebinding/"+name)

	// The Secret decodes to the token; the Deployment has it only by reference.
	b64 := cp.Kubectl(t, "get", "secret", name, "-n", ns, "-o", "jsonpath={.data.token}")
	if dec, err := base64.StdEncoding.DecodeString(b64); err != nil || string(dec) != token {
		t.Fatalf("Secret %s token decodes to %q (%v), want %q", name, dec, err, token)
	}
	dep := getDeployment(t, cp, ns, name)
	c := dep.Spec.Template.Spec.Containers[0]
	if v, _ := setting(c, "--node-name", "SKIFF_NODE_NAME"); v != node1 {
		t.Fatalf("installed Deployment: node name %q, want %q; args %q", v, node1, c.Args)
	}

	// The binding gives the ServiceAccount every permission the virtual node
	// needs, and no more than that (it cannot create pods).
	as := "--as=system:serviceaccount:" + ns + ":" + name
	for _, check := range [][]string{
		{"create", "nodes"}, {"patch", "nodes", "--subresource=status"}, {"update", "pods", "--subresource=status"},
		{"delete", "pods"}, {"watch", "secrets"}, {"create", "serviceaccounts", "--subresource=token"}, {"create", "events"},
		{"update", "leases.coordination.k8s.io", "-n", "kube-node-lease"},
		{"create", "certificatesigningrequests.certificates.k8s.io"},
		{"create", "tokenreviews.authentication.k8s.io"}, {"create", "subjectaccessreviews.authorization.k8s.io"},
	} {
		if out, err := cp.KubectlErr(append([]string{"auth", "can-i", as}, check...)...); err != nil || strings.TrimSpace(out) != "yes" {
			t.Errorf("ServiceAccount %s cannot %v: %q %v", name, check, out, err)
		}
	}
	if out, _ := cp.KubectlErr("auth", "can-i", as, "create", "pods"); strings.TrimSpace(out) != "no" {
		t.Errorf("ServiceAccount %s can create pods: %q", name, out)
	}

	// Run the pod's command line as the kubelet would: the node registers
	// and turns Ready (the token from the Secret opens the Skiff API), and
	// the pods' resource group appears in Skiff.
	runAsPod(t, cp, ns, dep, node1)
	if _, err := sk.Client.GetResourceGroup(t.Context(), rg); err != nil {
		t.Fatalf("Skiff has no resource group %s (GET: %v)", rg, err)
	}

	// Upgrade to another node name: a new revision and command line.
	out = hk.must(t, "upgrade", release, chartPath, "-n", ns, "--reuse-values", "--set", "nodeName="+node2)
	mustContain(t, "helm upgrade", out, "STATUS: deployed", "REVISION: 2")
	dep = getDeployment(t, cp, ns, name)
	c = dep.Spec.Template.Spec.Containers[0]
	if v, _ := setting(c, "--node-name", "SKIFF_NODE_NAME"); v != node2 {
		t.Fatalf("upgraded Deployment: node name %q, want %q; args %q", v, node2, c.Args)
	}
	if v, _ := setting(c, "--endpoint", "SKIFF_ENDPOINT"); v != endpoint {
		t.Fatalf("--reuse-values lost the endpoint: %q", v)
	}
	runAsPod(t, cp, ns, dep, node2)

	// Uninstall removes every object of the release.
	out = hk.must(t, "uninstall", release, "-n", ns, "--wait", "--timeout", "60s")
	mustContain(t, "helm uninstall", out, "uninstalled")
	deadline := time.Now().Add(60 * time.Second)
	for {
		var named []string
		for _, obj := range []string{"secret/" + name, "serviceaccount/" + name, "deployment.apps/" + name, "clusterrole/" + name, "clusterrolebinding/" + name} {
			if _, err := cp.KubectlErr("get", "-n", ns, obj, "-o", "name"); err == nil {
				named = append(named, obj)
			}
		}
		if len(named) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after helm uninstall these remain: %q", named)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if out := hk.must(t, "list", "-n", ns, "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("helm list after uninstall: %q", out)
	}
}

func getDeployment(t *testing.T, cp *k8senv.ControlPlane, ns, name string) *appsv1.Deployment {
	t.Helper()
	out := cp.Kubectl(t, "get", "deployment", name, "-n", ns, "-o", "json")
	var dep appsv1.Deployment
	if err := json.Unmarshal([]byte(out), &dep); err != nil {
		t.Fatal(err)
	}
	if len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("Deployment %s has %d containers", name, len(dep.Spec.Template.Spec.Containers))
	}
	return &dep
}

// runAsPod does for the Deployment's one container what a kubelet would: it
// mounts the ServiceAccount's token and the cluster CA where the flags
// expect them, resolves the env (the token from the Secret, the pod IP), and
// runs the command with the skiff binary under test as the ServiceAccount.
// The node must register with the chart's name and taint, after the test
// approves its serving-certificate request as a cluster admin would, and turn
// Ready, which takes a Skiff API that answers to the token.
func runAsPod(t *testing.T, cp *k8senv.ControlPlane, ns string, dep *appsv1.Deployment, node string) {
	t.Helper()
	spec := dep.Spec.Template.Spec
	c := spec.Containers[0]
	dir := t.TempDir()

	// The projected service-account volume: token, ca.crt, namespace.
	saToken := strings.TrimSpace(cp.Kubectl(t, "create", "token", spec.ServiceAccountName, "-n", ns, "--duration", "1h"))
	var ca string
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := cp.KubectlErr("get", "configmap", "kube-root-ca.crt", "-n", ns, "-o", `jsonpath={.data.ca\.crt}`)
		if err == nil && strings.Contains(out, "BEGIN CERTIFICATE") {
			ca = out
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no kube-root-ca.crt ConfigMap in %s: %v", ns, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	sa := filepath.Join(dir, "serviceaccount")
	if err := os.MkdirAll(sa, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, data := range map[string]string{"token": saToken, "ca.crt": ca, "namespace": ns} {
		if err := os.WriteFile(filepath.Join(sa, f), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// In a pod the in-cluster config reads that volume; here a kubeconfig
	// with the same token and CA points at the test API server.
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: %q, certificate-authority: %q}
users:
- name: sa
  user: {tokenFile: %q}
contexts:
- name: c
  context: {cluster: c, user: sa}
current-context: c
`, cp.Server, filepath.Join(sa, "ca.crt"), filepath.Join(sa, "token"))
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}

	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "KUBECONFIG=" + kubeconfig}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			b64 := cp.Kubectl(t, "get", "secret", ref.Name, "-n", ns, "-o", "jsonpath={.data."+ref.Key+"}")
			v, err := base64.StdEncoding.DecodeString(b64)
			if err != nil || len(v) == 0 {
				t.Fatalf("env %s: Secret %s key %s: %q %v", e.Name, ref.Name, ref.Key, b64, err)
			}
			env = append(env, e.Name+"="+string(v))
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP":
			env = append(env, e.Name+"=127.0.0.1")
		default:
			t.Fatalf("env %s: unexpected source %+v", e.Name, e.ValueFrom)
		}
	}
	line := argv(c)
	if len(line) < 2 || filepath.Base(line[0]) != "skiff" || line[1] != "virtual-node" {
		t.Fatalf("the container runs %q, want skiff virtual-node ...", line)
	}
	args := slices.Clone(line[1:])
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, saDir, sa)
	}
	logPath := filepath.Join(dir, "vnode.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(skiffBin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	defer stop()
	fail := func(format string, a ...any) {
		t.Helper()
		data, _ := os.ReadFile(logPath)
		t.Fatalf("%s\nskiff %s\nlog:\n%s", fmt.Sprintf(format, a...), strings.Join(args, " "), tail(string(data), 40))
	}

	user := "system:serviceaccount:" + ns + ":" + spec.ServiceAccountName
	approved := false
	deadline = time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			fail("skiff virtual-node exited: %v", err)
		default:
		}
		if !approved {
			out, _ := cp.KubectlErr("get", "csr", "-o", `jsonpath={range .items[?(@.spec.signerName=="kubernetes.io/kubelet-serving")]}{.metadata.name}{" "}{.spec.username}{" "}{.status.conditions[*].type}{"\n"}{end}`)
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Fields(l)
				if len(f) == 2 && f[1] == user {
					cp.Kubectl(t, "certificate", "approve", f[0])
					approved = true
				}
			}
		}
		out, err := cp.KubectlErr("get", "node", node, "-o", "json")
		if err == nil {
			var n corev1.Node
			if err := json.Unmarshal([]byte(out), &n); err != nil {
				t.Fatal(err)
			}
			// The chart's one taint; Kubernetes' own (node.kubernetes.io/not-ready
			// while the node lease is young) come and go and are not the chart's.
			var own []corev1.Taint
			for _, tn := range n.Spec.Taints {
				if !strings.HasPrefix(tn.Key, "node.kubernetes.io/") {
					own = append(own, tn)
				}
			}
			if len(own) != 1 || own[0].Key != "azure.com/aci" || own[0].Effect != corev1.TaintEffectNoSchedule {
				fail("node %s taints %+v, want azure.com/aci:NoSchedule", node, n.Spec.Taints)
			}
			if n.Labels["type"] != "virtual-kubelet" {
				fail("node %s labels %v", node, n.Labels)
			}
			ready := ""
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady {
					ready = string(cond.Status) + " " + cond.Reason + ": " + cond.Message
				}
			}
			if approved && strings.HasPrefix(ready, "True") {
				return
			}
			if time.Now().After(deadline) {
				fail("node %s registered but not Ready within 90s (CSR by %s approved: %v): %s", node, user, approved, ready)
			}
			time.Sleep(300 * time.Millisecond)
			continue
		}
		if time.Now().After(deadline) {
			fail("node %s did not register within 90s (CSR by %s approved: %v)", node, user, approved)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
