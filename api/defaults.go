package api

import (
	"strings"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// FQDNSuffix is the DNS zone of the names Skiff gives groups with a
// dnsNameLabel: <label>.<location>.skiff.local, in the shape of ACI's
// <label>.<region>.azurecontainer.io. "local" is reserved for mDNS and
// skiff.local is not a public zone, so the name never leaks to the Internet;
// serving it is the host's business.
const FQDNSuffix = "skiff.local"

// providerNamespace is the resource provider of container groups.
const providerNamespace = "Microsoft.ContainerInstance"

// SetDefaults fills in what ACI fills in on PUT, so that reads echo it:
//   - type = Microsoft.ContainerInstance/containerGroups, location in ARM's
//     normal form (lowercase, no spaces: "West US" becomes "westus");
//   - restartPolicy Always, osType Linux, sku Standard (also for
//     NotSpecified);
//   - protocol TCP on every container and ipAddress port;
//   - the enum values above and ipAddress.type in their canonical case;
//   - empty, non-nil command, ports, environmentVariables and
//     initContainers, so they are echoed as [] like ACI does;
//   - ipAddress.fqdn = <dnsNameLabel>.<location>.skiff.local when a label
//     is set (see FQDNSuffix), and no fqdn otherwise.
//
// Values SetDefaults does not recognise are left for ValidateContainerGroup
// to reject. A nil cg is ignored.
func SetDefaults(cg *ContainerGroup) {
	if cg == nil {
		return
	}
	cg.Type = ResourceType
	cg.Location = NormalizeLocation(cg.Location)
	p := &cg.Properties
	p.RestartPolicy = canonOr(p.RestartPolicy, RestartAlways, RestartAlways, RestartOnFailure, RestartNever)
	p.OSType = canonOr(p.OSType, "Linux", "Linux", "Windows")
	if strings.EqualFold(p.SKU, "NotSpecified") {
		p.SKU = ""
	}
	p.SKU = canonOr(p.SKU, "Standard", "Standard", "Dedicated", "Confidential")
	if p.InitContainers == nil {
		p.InitContainers = []InitContainer{}
	}
	for i := range p.Containers {
		cp := &p.Containers[i].Properties
		if cp.Command == nil {
			cp.Command = []string{}
		}
		if cp.Ports == nil {
			cp.Ports = []ContainerPort{}
		}
		if cp.EnvironmentVariables == nil {
			cp.EnvironmentVariables = []EnvironmentVariable{}
		}
		for j := range cp.Ports {
			cp.Ports[j].Protocol = canonOr(cp.Ports[j].Protocol, ProtocolTCP, ProtocolTCP, ProtocolUDP)
		}
	}
	for i := range p.InitContainers {
		cp := &p.InitContainers[i].Properties
		if cp.Command == nil {
			cp.Command = []string{}
		}
		if cp.EnvironmentVariables == nil {
			cp.EnvironmentVariables = []EnvironmentVariable{}
		}
	}
	if ip := p.IPAddress; ip != nil {
		ip.Type = canonOr(ip.Type, "", "Public", "Private")
		if ip.Ports == nil {
			ip.Ports = []Port{}
		}
		for j := range ip.Ports {
			ip.Ports[j].Protocol = canonOr(ip.Ports[j].Protocol, ProtocolTCP, ProtocolTCP, ProtocolUDP)
		}
		ip.FQDN, ip.PrivateIP = "", ""
		if ip.DNSNameLabel != "" {
			ip.FQDN = ip.DNSNameLabel + "." + FQDNSuffix
			if cg.Location != "" {
				ip.FQDN = ip.DNSNameLabel + "." + cg.Location + "." + FQDNSuffix
			}
		}
	}
}

// canonOr returns def for an empty v, the canonical spelling of v when it
// is one of allowed (case-insensitively), and v unchanged otherwise.
func canonOr(v, def string, allowed ...string) string {
	if v == "" {
		return def
	}
	if c := canon(v, allowed...); c != "" {
		return c
	}
	return v
}

// NormalizeLocation returns loc as ARM echoes it: lowercase, without spaces
// ("West US" becomes "westus").
func NormalizeLocation(loc string) string {
	return strings.ToLower(strings.Join(strings.Fields(loc), ""))
}

// ResourceGroupID returns the ARM ID of a resource group.
func ResourceGroupID(sub, rg string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + rg
}

// ResourceID returns the ARM ID of a container group:
// /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups/{name}.
func ResourceID(sub, rg, name string) string {
	return ResourceGroupID(sub, rg) + "/providers/" + ResourceType + "/" + name
}

// ParseResourceID splits a container group ID made by ResourceID. The fixed
// segments match case-insensitively, as ARM's do. Anything else is an error
// of code InvalidResourceId, class errdefs.ErrInvalidArgument.
func ParseResourceID(id string) (sub, rg, name string, err error) {
	parts := strings.Split(id, "/")
	// "", subscriptions, {sub}, resourceGroups, {rg}, providers,
	// Microsoft.ContainerInstance, containerGroups, {name}
	fixed := map[int]string{1: "subscriptions", 3: "resourceGroups", 5: "providers", 6: providerNamespace, 7: "containerGroups"}
	ok := len(parts) == 9 && parts[0] == ""
	for i := 1; ok && i < len(parts); i++ {
		if want, isFixed := fixed[i]; isFixed {
			ok = strings.EqualFold(parts[i], want)
		} else {
			ok = parts[i] != ""
		}
	}
	if !ok {
		return "", "", "", errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidResourceId",
			"The resource id '%s' is invalid. It must be of the form '/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/%s/{containerGroupName}'.",
			id, ResourceType)
	}
	return parts[2], parts[4], parts[8], nil
}
