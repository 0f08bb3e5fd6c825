package server

import (
	"strings"
	"testing"
)

// A body shaped as 2026-07-01 works; a property of that schema that Skiff
// does not honour is refused with 400, a code and a message naming it, and
// nothing is created.
func TestAPIVersion20260701AndUnhonouredProperties(t *testing.T) {
	e := newTestEnv(t, nil)
	const v = "?api-version=2026-07-01"
	container := `{"name":"app","properties":{"image":"busybox","resources":{"requests":{"cpu":0.5,"memoryInGB":0.5}}%s}}`
	body := func(props, containerExtra, top string) string {
		return `{"location":"local"` + top + `,"properties":{"osType":"Linux","containers":[` +
			strings.Replace(container, "%s", containerExtra, 1) + `]` + props + `}}`
	}
	if code, _, data := e.do(t, "PUT", e.cgPath("new")+v, body(`,"priority":"Regular"`, "", `,"identity":{"type":"None"}`)); code != 201 && code != 200 {
		t.Fatalf("PUT with 2026-07-01: %d %s", code, data)
	}
	if code, _, data := e.do(t, "GET", e.cgPath("new")+v, nil); code != 200 || !strings.Contains(string(data), `"name":"new"`) {
		t.Fatalf("GET with 2026-07-01: %d %s", code, data)
	}
	for _, tc := range []struct {
		name, props, container, top, code, path string
	}{
		{"gpu", "", `,"resources":{"requests":{"cpu":0.5,"memoryInGB":0.5,"gpu":{"count":1,"sku":"V100"}}}`, "", "GpuNotSupported", "properties.containers[0].properties.resources.requests.gpu"},
		{"gpu limit", "", `,"resources":{"requests":{"cpu":0.5,"memoryInGB":0.5},"limits":{"gpu":{"count":1,"sku":"K80"}}}`, "", "GpuNotSupported", "resources.limits.gpu"},
		{"identity", "", "", `,"identity":{"type":"SystemAssigned"}`, "IdentityNotSupported", "'identity'"},
		{"subnetIds", `,"subnetIds":[{"id":"/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/s"}]`, "", "", "SubnetIdsNotSupported", "properties.subnetIds"},
		{"confidential", `,"confidentialComputeProperties":{"ccePolicy":"abc"}`, "", "", "ConfidentialComputePropertiesNotSupported", "properties.confidentialComputeProperties"},
		{"spot", `,"priority":"Spot"`, "", "", "PriorityNotSupported", "properties.priority"},
		{"encryption", `,"encryptionProperties":{"vaultBaseUrl":"https://v","keyName":"k","keyVersion":"1"}`, "", "", "EncryptionPropertiesNotSupported", "properties.encryptionProperties"},
		{"diagnostics", `,"diagnostics":{"logAnalytics":{"workspaceId":"w","workspaceKey":"k"}}`, "", "", "DiagnosticsNotSupported", "properties.diagnostics"},
		{"extensions", `,"extensions":[{"name":"kube-proxy","properties":{"extensionType":"kube-proxy","version":"1.0"}}]`, "", "", "ExtensionsNotSupported", "properties.extensions"},
		{"secretReferences", `,"secretReferences":[{"name":"s","identity":"i","secretReferenceUri":"https://v/secrets/s"}]`, "", "", "SecretReferencesNotSupported", "properties.secretReferences"},
		{"profile", `,"containerGroupProfile":{"id":"/subscriptions/x/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroupProfiles/p","revision":1}`, "", "", "InvalidContainerGroupProfileReference", "another subscription"},
		{"init configMap", `,"initContainers":[{"name":"init","properties":{"image":"busybox","configMap":{"keyValuePairs":{"k":"v"}}}}]`, "", "", "ConfigMapNotSupported", "properties.initContainers[0].properties.configMap"},
		{"configMap key", "", `,"configMap":{"keyValuePairs":{"../k":"v"}}`, "", "InvalidConfigMap", "'../k'"},
		{"configMap shadowed", `,"volumes":[{"name":"v","emptyDir":{}}]`, `,"configMap":{"keyValuePairs":{"k":"v"}},"volumeMounts":[{"name":"v","mountPath":"/mnt/configmap/app"}]`, "", "InvalidVolumeMount", "/mnt/configmap/app"},
		{"registry identity", `,"imageRegistryCredentials":[{"server":"r.example","identity":"/subscriptions/x/id"}]`, "", "", "IdentityNotSupported", "imageRegistryCredentials[0].identity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, arm, data := e.do(t, "PUT", e.cgPath("refused")+v, body(tc.props, tc.container, tc.top))
			if code != 400 || arm != tc.code || !strings.Contains(string(data), tc.path) {
				t.Errorf("PUT: %d %s %s; want 400 %s naming %s", code, arm, data, tc.code, tc.path)
			}
			if code, _, _ := e.do(t, "GET", e.cgPath("refused")+v, nil); code != 404 {
				t.Errorf("a refused PUT created the group: GET %d", code)
			}
		})
	}
	// Empty and null values say nothing, and are accepted.
	if code, _, data := e.do(t, "PUT", e.cgPath("empty")+v, body(`,"subnetIds":[],"extensions":null,"diagnostics":{}`, "", "")); code != 201 && code != 200 {
		t.Errorf("PUT with empty unhonoured properties: %d %s", code, data)
	}
}
