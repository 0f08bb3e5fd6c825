package vnode

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

const testCA = "-----BEGIN CERTIFICATE-----\nMIIBdGVzdA==\n-----END CERTIFICATE-----\n"

// checkPrincipalDeployment checks a rendered Deployment that signs in as a
// service principal: every AZURE_* from Secret secret (envFrom), no
// SKIFF_TOKEN, and SKIFF_CA_FILE inside the mount of a volume whose source
// is ca (a ConfigMap's or a Secret's name, by isSecret).
func checkPrincipalDeployment(t *testing.T, r *rendered, secret, ca string, caIsSecret bool) corev1.Container {
	t.Helper()
	var dep appsv1.Deployment
	r.get(t, "Deployment", &dep)
	c := dep.Spec.Template.Spec.Containers[0]
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != secret {
		t.Errorf("envFrom %+v, want the Secret %s", c.EnvFrom, secret)
	}
	if slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "SKIFF_TOKEN" }) {
		t.Errorf("SKIFF_TOKEN is set beside the service principal: %+v", c.Env)
	}
	caFile, _ := setting(c, "", "SKIFF_CA_FILE")
	var mount string
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(caFile, m.MountPath+"/") {
			mount = m.Name
		}
	}
	i := slices.IndexFunc(dep.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == mount })
	if caFile == "" || i < 0 {
		t.Fatalf("SKIFF_CA_FILE %q is not in a mounted volume: %+v %+v", caFile, c.VolumeMounts, dep.Spec.Template.Spec.Volumes)
	}
	v := dep.Spec.Template.Spec.Volumes[i]
	if caIsSecret && (v.Secret == nil || v.Secret.SecretName != ca) || !caIsSecret && (v.ConfigMap == nil || v.ConfigMap.Name != ca) {
		t.Errorf("the CA volume is %+v, want %s (secret %v)", v, ca, caIsSecret)
	}
	return c
}

// checkPrincipalSecret checks that the rendered Secret holds what
// create-for-rbac printed under the seeds' AZURE_* names, and the
// ConfigMap the CA.
func checkPrincipalSecret(t *testing.T, r *rendered, want map[string]string) (secret, caMap string) {
	t.Helper()
	var s corev1.Secret
	r.get(t, "Secret", &s)
	for k, v := range want {
		got := string(s.Data[k])
		if got == "" {
			got = s.StringData[k]
		}
		if got != v {
			t.Errorf("Secret %s: %s = %q, want %q", s.Name, k, got, v)
		}
	}
	if len(s.Data)+len(s.StringData) != len(want) {
		t.Errorf("Secret %s holds %d keys, want %d (no token)", s.Name, len(s.Data)+len(s.StringData), len(want))
	}
	if strings.Contains(r.docs["Deployment"], want["AZURE_CLIENT_KEY"]) {
		t.Errorf("the Deployment carries the secret in clear")
	}
	var cm corev1.ConfigMap
	r.get(t, "ConfigMap", &cm)
	if len(cm.Data) != 1 || strings.TrimSpace(cm.Data["ca.crt"]) != strings.TrimSpace(testCA) {
		t.Errorf("ConfigMap %s: %q, want the CA", cm.Name, cm.Data)
	}
	return s.Name, cm.Name
}

// The chart and `skiff virtual-node manifest` take the seeds' service
// principal and the Skiff server's CA: the chart's values and the
// manifest's flags (or AZURE_*/SKIFF_CA_FILE) fill a Secret and a
// ConfigMap that the Deployment reads; an existing Secret and CA Secret
// work too, and a missing password is named.
func TestDeployWithServicePrincipal(t *testing.T) {
	want := map[string]string{"AZURE_CLIENT_ID": "app-1", "AZURE_CLIENT_KEY": `s3cr"et`, "AZURE_TENANT_ID": "tenant-1", "AZURE_SUBSCRIPTION_ID": "sub-1"}
	const endpoint = "https://skiff.example:7443"

	t.Run("helm", func(t *testing.T) {
		h := newHelm(t)
		values := []string{"--set", "endpoint=" + endpoint, "--set-string", "servicePrincipal.appId=app-1",
			"--set-string", `servicePrincipal.password=s3cr"et`, "--set-string", "servicePrincipal.tenant=tenant-1",
			"--set-string", "servicePrincipal.subscriptionId=sub-1", "--set-string", "ca.pem=" + testCA}
		mustContain(t, "helm lint", h.must(t, append([]string{"lint", "--strict", chartPath}, values...)...), "0 chart(s) failed")
		r := parseRendered(t, h.must(t, append([]string{"template", "v", chartPath}, values...)...))
		secret, caMap := checkPrincipalSecret(t, r, want)
		dryRunArgs(t, checkPrincipalDeployment(t, r, secret, caMap, false), "")

		// The user's own Secret (with the AZURE_* keys) and CA Secret.
		r = parseRendered(t, h.must(t, "template", "v", chartPath, "--set", "endpoint="+endpoint, "--set", "existingSecret=my-sp",
			"--set", "servicePrincipal.enabled=true", "--set", "ca.existingSecret=skiff-ca"))
		if r.has("Secret") || r.has("ConfigMap") {
			t.Errorf("rendered %v with existing Secrets", r.kinds())
		}
		checkPrincipalDeployment(t, r, "my-sp", "skiff-ca", true)

		if out, err := h.run("template", "v", chartPath, "--set", "endpoint="+endpoint, "--set", "servicePrincipal.appId=a", "--set", "servicePrincipal.tenant=t"); err == nil ||
			!strings.Contains(err.Error(), "servicePrincipal.password is required") {
			t.Errorf("no password: %v\n%s", err, out)
		}
	})

	t.Run("manifest", func(t *testing.T) {
		caFile := writeTemp(t, testCA)
		cmd := exec.Command(skiffBin, "virtual-node", "manifest", "--endpoint", endpoint, "--client-id", "app-1", "--tenant", "tenant-1", "--ca-file", caFile)
		cmd.Env = append(os.Environ(), "AZURE_CLIENT_KEY="+want["AZURE_CLIENT_KEY"], "AZURE_SUBSCRIPTION_ID=sub-1", "SKIFF_TOKEN=not-used")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("manifest: %v: %s", err, out)
		}
		if strings.Contains(string(out), "not-used") {
			t.Error("the manifest carries the token beside the service principal")
		}
		r := parseRendered(t, string(out))
		secret, caMap := checkPrincipalSecret(t, r, want)
		dryRunArgs(t, checkPrincipalDeployment(t, r, secret, caMap, false), "")
	})
}
