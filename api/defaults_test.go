package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSetDefaults(t *testing.T) {
	cg := &ContainerGroup{
		Name:     "web",
		Location: "West US",
		Type:     "microsoft.containerinstance/containergroups",
		Properties: ContainerGroupProperties{
			RestartPolicy: "onfailure",
			SKU:           "NotSpecified",
			Containers: []Container{{Name: "a", Properties: ContainerProperties{
				Image:     "busybox",
				Ports:     []ContainerPort{{Port: 80}, {Port: 53, Protocol: "udp"}},
				Resources: ResourceRequirements{Requests: ResourceRequests{CPU: 1, MemoryInGB: 1}},
			}}},
			InitContainers: []InitContainer{{Name: "i", Properties: InitContainerProperties{Image: "busybox"}}},
			IPAddress: &IPAddress{Type: "public", DNSNameLabel: "myapp", FQDN: "spoofed.example",
				Ports: []Port{{Port: 80}, {Port: 53, Protocol: "Udp"}}},
		},
	}
	SetDefaults(cg)
	p := cg.Properties
	c := p.Containers[0].Properties
	ic := p.InitContainers[0].Properties
	checks := []struct {
		what      string
		got, want any
	}{
		{"type", cg.Type, ResourceType},
		{"location", cg.Location, "westus"},
		{"restartPolicy", p.RestartPolicy, RestartOnFailure},
		{"osType", p.OSType, "Linux"},
		{"sku", p.SKU, "Standard"},
		{"port 0 protocol", c.Ports[0].Protocol, ProtocolTCP},
		{"port 1 protocol", c.Ports[1].Protocol, ProtocolUDP},
		{"ip port 0 protocol", p.IPAddress.Ports[0].Protocol, ProtocolTCP},
		{"ip port 1 protocol", p.IPAddress.Ports[1].Protocol, ProtocolUDP},
		{"ip type", p.IPAddress.Type, "Public"},
		{"fqdn", p.IPAddress.FQDN, "myapp.westus.skiff.local"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.what, ck.got, ck.want)
		}
	}
	// ACI echoes empty arrays as [].
	b, err := json.Marshal(cg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"command":[]`, `"environmentVariables":[]`, `"sku":"Standard"`} {
		if n := strings.Count(string(b), want); n < 1 {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	if c.Command == nil || c.EnvironmentVariables == nil || ic.Command == nil || ic.EnvironmentVariables == nil {
		t.Errorf("nil slices left: %+v %+v", c, ic)
	}
	if err := ValidateContainerGroup(cg); err != nil {
		t.Fatalf("defaulted group is invalid: %v", err)
	}
}

func TestSetDefaultsEmptyArrays(t *testing.T) {
	cg := &ContainerGroup{Properties: ContainerGroupProperties{Containers: []Container{{Name: "a"}}}}
	SetDefaults(cg)
	b, err := json.Marshal(cg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"initContainers":[]`, `"ports":[]`, `"command":[]`, `"environmentVariables":[]`,
		`"restartPolicy":"Always"`, `"osType":"Linux"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	SetDefaults(nil) // must not panic
}

func TestSetDefaultsFQDN(t *testing.T) {
	cg := &ContainerGroup{Properties: ContainerGroupProperties{IPAddress: &IPAddress{Type: "Public", FQDN: "old.example"}}}
	SetDefaults(cg)
	if cg.Properties.IPAddress.FQDN != "" {
		t.Errorf("fqdn without label = %q", cg.Properties.IPAddress.FQDN)
	}
	cg.Properties.IPAddress.DNSNameLabel = "label"
	SetDefaults(cg)
	if got := cg.Properties.IPAddress.FQDN; got != "label.skiff.local" {
		t.Errorf("fqdn without location = %q", got)
	}
}

func TestSetDefaultsLeavesUnknownValues(t *testing.T) {
	cg := &ContainerGroup{Location: "x", Properties: ContainerGroupProperties{RestartPolicy: "Sometimes", OSType: "Plan9",
		Containers: []Container{{Name: "a", Properties: ContainerProperties{Image: "busybox",
			Resources: ResourceRequirements{Requests: ResourceRequests{CPU: 1, MemoryInGB: 1}}}}}}}
	SetDefaults(cg)
	if cg.Properties.RestartPolicy != "Sometimes" || cg.Properties.OSType != "Plan9" {
		t.Fatalf("unknown values rewritten: %+v", cg.Properties)
	}
	checkErr(t, ValidateContainerGroup(cg), "InvalidOsType", nil, "")
}

func TestResourceID(t *testing.T) {
	id := ResourceID("sub-1", "my.rg(1)", "web")
	want := "/subscriptions/sub-1/resourceGroups/my.rg(1)/providers/Microsoft.ContainerInstance/containerGroups/web"
	if id != want {
		t.Fatalf("ResourceID = %s", id)
	}
	sub, rg, name, err := ParseResourceID(id)
	if err != nil || sub != "sub-1" || rg != "my.rg(1)" || name != "web" {
		t.Fatalf("ParseResourceID = %q %q %q %v", sub, rg, name, err)
	}
	sub, rg, name, err = ParseResourceID(strings.ToLower(want))
	if err != nil || sub != "sub-1" || rg != "my.rg(1)" || name != "web" {
		t.Fatalf("lowercase: %q %q %q %v", sub, rg, name, err)
	}
	if got := ResourceGroupID("s", "rg"); got != "/subscriptions/s/resourceGroups/rg" {
		t.Fatalf("ResourceGroupID = %s", got)
	}
	for _, bad := range []string{
		"",
		"/subscriptions/s/resourceGroups/rg",
		"subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web",
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web/",
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/containerGroups/web",
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/virtualMachines/web",
		"/subscriptions//resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web",
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web/containers/c",
	} {
		_, _, _, err := ParseResourceID(bad)
		checkErr(t, err, "InvalidResourceId", nil, "")
	}
}
