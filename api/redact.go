package api

import (
	"encoding/json"
	"maps"
	"slices"
)

// Redact returns a deep copy of cg fit to send to a client: without
// environment variables' secureValue (the variable keeps its name),
// registry passwords, storage account keys and secret volume contents (the
// volume stays, as "secret": {}), as ACI returns them (aci-api.md §1.5).
// cg is not modified. Redact(nil) is nil.
func Redact(cg *ContainerGroup) *ContainerGroup {
	out := Clone(cg)
	if out == nil {
		return nil
	}
	p := &out.Properties
	for i := range p.Containers {
		redactEnv(p.Containers[i].Properties.EnvironmentVariables)
	}
	for i := range p.InitContainers {
		redactEnv(p.InitContainers[i].Properties.EnvironmentVariables)
	}
	for i := range p.ImageRegistryCredentials {
		p.ImageRegistryCredentials[i].Password = ""
	}
	for i := range p.Volumes {
		v := &p.Volumes[i]
		if v.AzureFile != nil {
			v.AzureFile.StorageAccountKey = ""
		}
		if v.Secret != nil {
			v.Secret = map[string]string{}
		}
	}
	return out
}

func redactEnv(env []EnvironmentVariable) {
	for i := range env {
		env[i].SecureValue = ""
	}
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
	c.SecurityContext = cloneSecurityContext(c.SecurityContext)
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
