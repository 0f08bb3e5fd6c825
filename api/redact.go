package api

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// Redact returns a deep copy of cg fit to send to a client: without any of
// the secrets WalkSecrets visits (an environment variable keeps its name, a
// registry its server and username, a share its names), and with each
// secret volume as "secret": {} (its key names go too), as ACI returns them
// (aci-api.md §1.5). cg is not modified. Redact(nil) is nil.
func Redact(cg *ContainerGroup) *ContainerGroup {
	out := Clone(cg)
	if out == nil {
		return nil
	}
	p := &out.Properties
	_ = WalkSecrets(p, func(string, string) (string, error) { return "", nil })
	for i := range p.Volumes {
		if p.Volumes[i].Secret != nil {
			p.Volumes[i].Secret = map[string]string{}
		}
	}
	return out
}

// WalkSecrets calls f on every non-empty secret string of p and puts what f
// returns in its place; it stops at f's first error. It is the one list of
// what is secret in a container group, which Redact blanks and the store
// and the runtime seal at rest:
//
//   - environmentVariables[].secureValue, of containers and init containers
//   - imageRegistryCredentials[].password
//   - volumes[].azureFile.storageAccountKey
//   - volumes[].secret values (the base64 contents of the files)
//
// where names the field for error messages, e.g.
// "containers[app].environmentVariables[TOKEN].secureValue"; it never holds
// a secret. p is modified in place: walk a Clone to keep the original.
func WalkSecrets(p *ContainerGroupProperties, f func(where, value string) (string, error)) error {
	visit := func(where string, v *string) error {
		if *v == "" {
			return nil
		}
		nv, err := f(where, *v)
		if err != nil {
			return err
		}
		*v = nv
		return nil
	}
	env := func(kind, name string, vars []EnvironmentVariable) error {
		for i := range vars {
			if err := visit(fmt.Sprintf("%s[%s].environmentVariables[%s].secureValue", kind, name, vars[i].Name), &vars[i].SecureValue); err != nil {
				return err
			}
		}
		return nil
	}
	for i := range p.Containers {
		if err := env("containers", p.Containers[i].Name, p.Containers[i].Properties.EnvironmentVariables); err != nil {
			return err
		}
	}
	for i := range p.InitContainers {
		if err := env("initContainers", p.InitContainers[i].Name, p.InitContainers[i].Properties.EnvironmentVariables); err != nil {
			return err
		}
	}
	for i := range p.ImageRegistryCredentials {
		c := &p.ImageRegistryCredentials[i]
		if err := visit(fmt.Sprintf("imageRegistryCredentials[%s].password", c.Server), &c.Password); err != nil {
			return err
		}
	}
	for i := range p.Volumes {
		v := &p.Volumes[i]
		if v.AzureFile != nil {
			if err := visit(fmt.Sprintf("volumes[%s].azureFile.storageAccountKey", v.Name), &v.AzureFile.StorageAccountKey); err != nil {
				return err
			}
		}
		for _, k := range slices.Sorted(maps.Keys(v.Secret)) {
			val := v.Secret[k]
			if err := visit(fmt.Sprintf("volumes[%s].secret[%s]", v.Name, k), &val); err != nil {
				return err
			}
			v.Secret[k] = val
		}
	}
	return nil
}

// StripInstanceView removes the group's and every container's instanceView
// from cg in place, as ACI does in list results, and returns cg. Apply it to
// the copy Redact returns, not to a stored group.
func StripInstanceView(cg *ContainerGroup) *ContainerGroup {
	if cg == nil {
		return nil
	}
	p := &cg.Properties
	p.InstanceView = nil
	for i := range p.Containers {
		p.Containers[i].Properties.InstanceView = nil
	}
	for i := range p.InitContainers {
		p.InitContainers[i].Properties.InstanceView = nil
	}
	return cg
}

// MarshalJSON encodes a volume as ARM does. It differs from the default
// only for a secret volume with no keys, which is encoded as "secret": {}
// (the form redacted reads take) rather than dropped by omitempty, so the
// volume keeps its kind on the wire and in storage.
func (v Volume) MarshalJSON() ([]byte, error) {
	type plain Volume // no methods: no recursion
	out := struct {
		plain
		Secret *map[string]string `json:"secret,omitempty"` // shadows plain.Secret
	}{plain: plain(v)}
	if v.Secret != nil {
		out.Secret = &v.Secret
	}
	return json.Marshal(out)
}

// Clone returns a deep copy of cg: nothing in the copy shares memory with
// cg, and nil and empty slices and maps stay as they were. Clone(nil) is nil.
func Clone(cg *ContainerGroup) *ContainerGroup {
	if cg == nil {
		return nil
	}
	out := *cg
	out.Tags = maps.Clone(cg.Tags)
	out.Zones = slices.Clone(cg.Zones)
	p := &out.Properties
	src := &cg.Properties
	p.Containers = slices.Clone(src.Containers)
	for i := range p.Containers {
		cloneContainer(&p.Containers[i].Properties)
	}
	p.InitContainers = slices.Clone(src.InitContainers)
	for i := range p.InitContainers {
		c := &p.InitContainers[i].Properties
		c.Command = slices.Clone(c.Command)
		c.EnvironmentVariables = slices.Clone(c.EnvironmentVariables)
		c.VolumeMounts = slices.Clone(c.VolumeMounts)
		c.SecurityContext = cloneSecurityContext(c.SecurityContext)
		c.InstanceView = cloneContainerInstanceView(c.InstanceView)
	}
	p.ImageRegistryCredentials = slices.Clone(src.ImageRegistryCredentials)
	if src.IPAddress != nil {
		ip := *src.IPAddress
		ip.Ports = slices.Clone(ip.Ports)
		p.IPAddress = &ip
	}
	p.Volumes = slices.Clone(src.Volumes)
	for i := range p.Volumes {
		v := &p.Volumes[i]
		v.AzureFile = clonePtr(v.AzureFile)
		v.EmptyDir = clonePtr(v.EmptyDir)
		v.Secret = maps.Clone(v.Secret)
		v.GitRepo = clonePtr(v.GitRepo)
	}
	if src.InstanceView != nil {
		iv := *src.InstanceView
		iv.Events = slices.Clone(iv.Events)
		p.InstanceView = &iv
	}
	if src.DNSConfig != nil {
		d := *src.DNSConfig
		d.NameServers = slices.Clone(d.NameServers)
		p.DNSConfig = &d
	}
	p.HostAliases = slices.Clone(src.HostAliases)
	for i := range p.HostAliases {
		p.HostAliases[i].Hostnames = slices.Clone(p.HostAliases[i].Hostnames)
	}
	if src.ContainerGroupProfile != nil {
		ref := *src.ContainerGroupProfile
		ref.Revision = clonePtr(ref.Revision)
		p.ContainerGroupProfile = &ref
	}
	p.StandbyPoolProfile = clonePtr(src.StandbyPoolProfile)
	return &out
}

func cloneContainer(c *ContainerProperties) {
	c.Command = slices.Clone(c.Command)
	c.Ports = slices.Clone(c.Ports)
	c.EnvironmentVariables = slices.Clone(c.EnvironmentVariables)
	c.Resources.Limits = clonePtr(c.Resources.Limits)
	c.VolumeMounts = slices.Clone(c.VolumeMounts)
	c.LivenessProbe = cloneProbe(c.LivenessProbe)
	c.ReadinessProbe = cloneProbe(c.ReadinessProbe)
	c.StartupProbe = cloneProbe(c.StartupProbe)
	if l := c.Lifecycle; l != nil {
		hook := func(h *LifecycleHandler) *LifecycleHandler {
			if h == nil {
				return nil
			}
			p := cloneProbe(&Probe{Exec: h.Exec, HTTPGet: h.HTTPGet})
			return &LifecycleHandler{Exec: p.Exec, HTTPGet: p.HTTPGet}
		}
		c.Lifecycle = &Lifecycle{PostStart: hook(l.PostStart), PreStop: hook(l.PreStop)}
	}
	c.SecurityContext = cloneSecurityContext(c.SecurityContext)
	if c.ConfigMap != nil {
		c.ConfigMap = &ConfigMap{KeyValuePairs: maps.Clone(c.ConfigMap.KeyValuePairs)}
	}
	c.InstanceView = cloneContainerInstanceView(c.InstanceView)
}

// clonePtr copies the value p points to; its fields must hold no pointers,
// slices or maps.
func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func cloneProbe(p *Probe) *Probe {
	if p == nil {
		return nil
	}
	out := *p
	if p.Exec != nil {
		out.Exec = &ExecAction{Command: slices.Clone(p.Exec.Command)}
	}
	if p.HTTPGet != nil {
		h := *p.HTTPGet
		h.HTTPHeaders = slices.Clone(h.HTTPHeaders)
		out.HTTPGet = &h
	}
	out.TCPSocket = clonePtr(p.TCPSocket)
	return &out
}

func cloneSecurityContext(s *SecurityContext) *SecurityContext {
	if s == nil {
		return nil
	}
	out := *s
	out.Privileged = clonePtr(s.Privileged)
	out.AllowPrivilegeEscalation = clonePtr(s.AllowPrivilegeEscalation)
	out.RunAsUser = clonePtr(s.RunAsUser)
	out.RunAsGroup = clonePtr(s.RunAsGroup)
	if s.Capabilities != nil {
		out.Capabilities = &Capabilities{Add: slices.Clone(s.Capabilities.Add), Drop: slices.Clone(s.Capabilities.Drop)}
	}
	return &out
}

func cloneContainerInstanceView(iv *ContainerInstanceView) *ContainerInstanceView {
	if iv == nil {
		return nil
	}
	out := *iv
	out.CurrentState = cloneContainerState(iv.CurrentState)
	out.PreviousState = cloneContainerState(iv.PreviousState)
	out.Events = slices.Clone(iv.Events)
	out.Ready = clonePtr(iv.Ready)
	return &out
}

func cloneContainerState(s *ContainerState) *ContainerState {
	if s == nil {
		return nil
	}
	out := *s
	out.ExitCode = clonePtr(s.ExitCode)
	return &out
}
