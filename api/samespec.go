package api

import (
	"encoding/json"
	"reflect"
)

// SameContainers reports whether two specs run the same containers: they
// differ at most in read-only fields (provisioningState, instanceView,
// the fqdn) and in where the spec came from (the profile and standby pool
// references). A PUT that keeps the containers leaves a running group
// alone, and a group handed over from a standby pool runs on as it is.
func SameContainers(a, b *ContainerGroupProperties) bool {
	norm := func(p *ContainerGroupProperties) []byte {
		c := *p
		c.ProvisioningState, c.InstanceView = "", nil
		c.ContainerGroupProfile, c.StandbyPoolProfile, c.IsCreatedFromStandbyPool = nil, nil, false
		if c.IPAddress != nil {
			ip := *c.IPAddress
			ip.FQDN = ""
			c.IPAddress = &ip
		}
		data, _ := json.Marshal(c)
		return data
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// Images lists the images a group's containers and init containers name,
// as written.
func (p *ContainerGroupProperties) Images() []string {
	var out []string
	for _, c := range p.InitContainers {
		out = append(out, c.Properties.Image)
	}
	for _, c := range p.Containers {
		out = append(out, c.Properties.Image)
	}
	return out
}

// SameContainersButConfigMaps reports whether two specs run the same
// containers once their config maps are left out: then a change is made
// in place, without a restart.
func SameContainersButConfigMaps(a, b *ContainerGroupProperties) bool {
	strip := func(p *ContainerGroupProperties) *ContainerGroupProperties {
		c := *p
		c.Containers = make([]Container, len(p.Containers))
		for i, ct := range p.Containers {
			ct.Properties.ConfigMap = nil
			c.Containers[i] = ct
		}
		return &c
	}
	return SameContainers(strip(a), strip(b))
}
