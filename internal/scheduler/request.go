package scheduler

import (
	"math"
	"strings"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/store"
)

// Request is what a container group asks of a host.
type Request struct {
	// Key is the group's store identity, "sub/rg/name" lower-cased (KeyOf).
	Key string
	// ResourceGroup is "sub/rg" lower-cased: groups of one resource group
	// are spread over the hosts.
	ResourceGroup string
	// CPU (cores) and MemoryGB are the group's total requests.
	CPU, MemoryGB float64
	// Ports are the ports the group publishes on its host's public
	// address ("" protocol is TCP). A host publishes each protocol and
	// port for one group only.
	Ports []api.Port
	// OSType is "Linux" or "Windows" ("" is Linux).
	OSType string
	// Zones, if any, are the availability zones the group may run in.
	Zones []string
	// Shares are the persistent file shares the group mounts, each named
	// "storageAccountName/shareName" lower-cased (ShareOf), as storage
	// accounts and shares are named: the groups of one share go to the
	// host that holds its directory.
	Shares []string
	// RefusedBy are the hosts that refused the group's public ports when
	// the group was accepted (a host process listens on one, or the host
	// publishes other ports only): no group of theirs is in the way, the
	// host is.
	RefusedBy []string
}

// KeyOf is the Request.Key of a group.
func KeyOf(sub, rg, name string) string {
	return strings.ToLower(sub + "/" + rg + "/" + name)
}

// ShareOf names an azureFile volume's share as Request.Shares does:
// account names are the same in any case (Azure's are DNS names), and
// share names are lower-case.
func ShareOf(v *api.AzureFileVolume) string {
	return strings.ToLower(v.StorageAccountName + "/" + v.ShareName)
}

// RequestOf is what cg asks of a host.
//
// CPU and memory are the sums of the app containers' requests; limits
// above them are not reserved (as Kubernetes reserves requests). Init
// containers run before the app containers, one at a time, so Kubernetes
// reserves max(largest init container, sum of app containers); ACI's init
// containers have no resources of their own (api.InitContainerProperties),
// so the sum of the app containers is that maximum and init containers add
// nothing.
//
// Ports are those published on the host's address: none for a Private
// group (api.IPAddress.Published).
func RequestOf(cg *store.ContainerGroup) Request {
	p := &cg.Resource.Properties
	r := Request{
		Key:           KeyOf(cg.Subscription, cg.ResourceGroup, cg.Resource.Name),
		ResourceGroup: strings.ToLower(cg.Subscription + "/" + cg.ResourceGroup),
		OSType:        p.OSType,
		Zones:         cg.Resource.Zones,
	}
	for _, c := range p.Containers {
		r.CPU += c.Properties.Resources.Requests.CPU
		r.MemoryGB += c.Properties.Resources.Requests.MemoryInGB
	}
	if p.IPAddress.Published() {
		r.RefusedBy = cg.PortsRefusedBy
		r.Ports = make([]api.Port, 0, len(p.IPAddress.Ports))
		for _, port := range p.IPAddress.Ports {
			r.Ports = append(r.Ports, api.Port{Protocol: protocolName(portKeyOf(port)), Port: port.Port})
		}
	}
	for i := range p.Volumes {
		if af := p.Volumes[i].AzureFile; af != nil {
			r.Shares = append(r.Shares, ShareOf(af))
		}
	}
	return r
}

// prepared is a Request in the scheduler's units, computed once per call.
type prepared struct {
	key, rg  string
	cpu, mem int64 // millicores, thousandths of a GB
	os       string
	zones    []string
	ports    []uint64
	shares   []string
	refused  []string // lower-cased host names
	osText   string   // the osType as a reason names it
}

func prepare(r Request) prepared {
	p := prepared{
		key:    strings.ToLower(r.Key),
		rg:     strings.ToLower(r.ResourceGroup),
		cpu:    milli(r.CPU),
		mem:    milli(r.MemoryGB),
		os:     osOf(r.OSType),
		osText: osText(r.OSType),
		shares: r.Shares,
	}
	if len(r.Zones) > 0 {
		p.zones = make([]string, len(r.Zones))
		for i, z := range r.Zones {
			p.zones[i] = strings.ToLower(z)
		}
	}
	for _, h := range r.RefusedBy {
		p.refused = append(p.refused, strings.ToLower(h))
	}
	if len(r.Ports) > 0 {
		p.ports = make([]uint64, len(r.Ports))
		for i, port := range r.Ports {
			p.ports[i] = portKeyOf(port)
		}
	}
	return p
}

// milli converts cores or GB to thousandths, so that sums of assignments
// and their removals are exact. A negative or NaN amount is 0.
func milli(x float64) int64 {
	switch {
	case !(x > 0):
		return 0
	case x > 1e12:
		return 1e15
	}
	return int64(math.Round(x * 1000))
}

func unmilli(m int64) float64 { return float64(m) / 1000 }

// osOf is the canonical (lower-case) osType, "" being Linux.
func osOf(os string) string {
	if os == "" {
		return "linux"
	}
	return strings.ToLower(os)
}

// osText is the osType as a reason names it.
func osText(os string) string {
	switch osOf(os) {
	case "linux":
		return "Linux"
	case "windows":
		return "Windows"
	}
	return os
}

// portKeyOf packs a protocol and port; every protocol but UDP is TCP (the
// API's default, and the only other one it accepts).
func portKeyOf(p api.Port) uint64 {
	k := uint64(uint32(p.Port))
	if strings.EqualFold(p.Protocol, api.ProtocolUDP) {
		k |= 1 << 32
	}
	return k
}

func protocolName(k uint64) string {
	if k>>32 == 1 {
		return api.ProtocolUDP
	}
	return api.ProtocolTCP
}
