package virtualnode

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1listers "k8s.io/client-go/listers/core/v1"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Tags written on every container group the virtual node creates.
const (
	TagNamespace = "k8s-namespace"
	TagPod       = "k8s-pod"
	TagUID       = "k8s-uid"
	TagNode      = "k8s-node"
	TagCreated   = "k8s-created"
)

// Defaults of a container that asks for no resources (ACI's defaults).
const (
	DefaultCPU      = 1.0
	DefaultMemoryGB = 1.5
)

var invalidNameChars = regexp.MustCompile(`[^a-z0-9-]+`)

// GroupName returns the container group name of pod namespace/name: a
// readable prefix ("<namespace>-<name>", cut to 50 characters) and 12 hex
// digits of a SHA-256 of "namespace/name". The hash keeps apart pods whose
// joined names are equal (pod "c" in namespace "a-b" and pod "b-c" in "a");
// the name is at most 63 lowercase letters, digits and '-', as ACI wants.
func GroupName(namespace, name string) string {
	base := invalidNameChars.ReplaceAllString(strings.ToLower(namespace+"-"+name), "-")
	for strings.Contains(base, "--") {
		base = strings.ReplaceAll(base, "--", "-")
	}
	base = strings.Trim(base, "-")
	if len(base) > 50 {
		base = strings.TrimRight(base[:50], "-")
	}
	sum := sha256.Sum256([]byte(namespace + "/" + name))
	h := hex.EncodeToString(sum[:])[:12]
	if base == "" {
		return "pod-" + h
	}
	return base + "-" + h
}

// UnsupportedError says that a pod uses a field Skiff cannot run. Field is
// the field's path in the pod spec.
type UnsupportedError struct {
	Field  string
	Reason string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("%s is not supported on a Skiff virtual node: %s", e.Field, e.Reason)
}

func unsupported(field, format string, a ...any) error {
	return &UnsupportedError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// mapper turns pods into container group specs. Listers may be nil; the
// values that need them are then left out.
type mapper struct {
	secrets    corev1listers.SecretLister
	configMaps corev1listers.ConfigMapLister
	// token returns a service-account token for a projected volume source.
	token  func(pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection) (string, error)
	osType string
	region string
	node   string
	// clusterDNS and clusterDomain are the kubelet's --cluster-dns and
	// --cluster-domain: with clusterDNS set, ClusterFirst pods resolve
	// through the cluster's DNS service.
	clusterDNS    []string
	clusterDomain string
}

// podToGroup maps pod (env already resolved by the pod controller) to a
// container group. orig, when not nil, is the pod as stored in Kubernetes:
// it tells which env values came from Secrets.
func (m *mapper) podToGroup(pod, orig *corev1.Pod, created string) (*api.ContainerGroup, error) {
	spec := &pod.Spec
	if err := checkPodSpec(spec); err != nil {
		return nil, err
	}
	g := &api.ContainerGroup{
		Name:     GroupName(pod.Namespace, pod.Name),
		Location: m.region,
		Tags: map[string]string{
			TagNamespace: pod.Namespace,
			TagPod:       pod.Name,
			TagUID:       string(pod.UID),
			TagNode:      m.node,
			TagCreated:   created,
		},
	}
	p := &g.Properties
	p.OSType = m.osType
	p.RestartPolicy = string(spec.RestartPolicy)
	if p.RestartPolicy == "" {
		p.RestartPolicy = api.RestartAlways
	}
	p.Containers = []api.Container{}
	p.InitContainers = []api.InitContainer{}
	for _, a := range spec.HostAliases {
		p.HostAliases = append(p.HostAliases, api.HostAlias{IP: a.IP, Hostnames: a.Hostnames})
	}

	vols, err := m.volumes(pod)
	if err != nil {
		return nil, err
	}
	p.Volumes = vols

	var published []api.Port
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		field := fmt.Sprintf("spec.initContainers[%d]", i)
		if err := checkContainer(field, c, true); err != nil {
			return nil, err
		}
		cmd, err := command(field, c)
		if err != nil {
			return nil, err
		}
		p.InitContainers = append(p.InitContainers, api.InitContainer{Name: c.Name, Properties: api.InitContainerProperties{
			Image:                c.Image,
			Command:              cmd,
			EnvironmentVariables: m.env(c, findContainer(orig, c.Name, true), pod.Namespace),
			VolumeMounts:         mounts(c),
			SecurityContext:      securityContext(spec.SecurityContext, c.SecurityContext),
		}})
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		field := fmt.Sprintf("spec.containers[%d]", i)
		if err := checkContainer(field, c, false); err != nil {
			return nil, err
		}
		cmd, err := command(field, c)
		if err != nil {
			return nil, err
		}
		res, err := resources(field, c)
		if err != nil {
			return nil, err
		}
		props := api.ContainerProperties{
			Image:                c.Image,
			Command:              cmd,
			Ports:                []api.ContainerPort{},
			EnvironmentVariables: m.env(c, findContainer(orig, c.Name, false), pod.Namespace),
			Resources:            res,
			VolumeMounts:         mounts(c),
			SecurityContext:      securityContext(spec.SecurityContext, c.SecurityContext),
		}
		for j, pt := range c.Ports {
			proto := string(pt.Protocol)
			if proto == "" {
				proto = api.ProtocolTCP
			}
			if proto != api.ProtocolTCP && proto != api.ProtocolUDP {
				return nil, unsupported(fmt.Sprintf("%s.ports[%d].protocol", field, j), "only TCP and UDP")
			}
			props.Ports = append(props.Ports, api.ContainerPort{Protocol: proto, Port: pt.ContainerPort})
			if pt.HostPort != 0 {
				if pt.HostPort != pt.ContainerPort {
					return nil, unsupported(fmt.Sprintf("%s.ports[%d].hostPort", field, j),
						"Skiff publishes a port on the host under its own number; hostPort must equal containerPort (%d)", pt.ContainerPort)
				}
				published = append(published, api.Port{Protocol: proto, Port: pt.ContainerPort})
			}
		}
		if props.LivenessProbe, err = probe(field+".livenessProbe", c.LivenessProbe, c); err != nil {
			return nil, err
		}
		if props.StartupProbe, err = probe(field+".startupProbe", c.StartupProbe, c); err != nil {
			return nil, err
		}
		if props.Lifecycle, err = lifecycleHooks(field+".lifecycle", c); err != nil {
			return nil, err
		}
		if props.ReadinessProbe, err = probe(field+".readinessProbe", c.ReadinessProbe, c); err != nil {
			return nil, err
		}
		p.Containers = append(p.Containers, api.Container{Name: c.Name, Properties: props})
	}
	// Every pod gets its own address (the group's, on Skiff's container
	// network) as its podIP. Ports with a hostPort are also published on
	// Skiff's public address, as a kubelet does on the node's.
	if len(published) > 0 {
		p.IPAddress = &api.IPAddress{Type: api.IPAddressPublic, Ports: published}
	} else {
		p.IPAddress = &api.IPAddress{Type: api.IPAddressPrivate, Ports: privatePorts(p.Containers)}
	}
	if creds, err := m.registryCredentials(pod); err != nil {
		return nil, err
	} else if len(creds) > 0 {
		p.ImageRegistryCredentials = creds
	}
	d, err := m.dnsConfig(pod)
	if err != nil {
		return nil, err
	}
	p.DNSConfig = d
	return g, nil
}

// dnsConfig builds the group's resolv.conf as the kubelet does: for
// ClusterFirst (the default) with a cluster DNS configured, its nameservers,
// the search path <ns>.svc.<domain> svc.<domain> <domain> and ndots:5, with
// the pod's dnsConfig appended; for None, the pod's dnsConfig alone.
// Otherwise the pod's dnsConfig when it names a nameserver, else Skiff's
// default (the host's resolvers).
func (m *mapper) dnsConfig(pod *corev1.Pod) (*api.DNSConfig, error) {
	spec := &pod.Spec
	var servers, searches []string
	opts := map[string]string{}
	var order []string
	addOpt := func(name, val string) {
		if _, ok := opts[name]; !ok {
			order = append(order, name)
		}
		opts[name] = val
	}
	policy := spec.DNSPolicy
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	if policy == corev1.DNSClusterFirstWithHostNet && !spec.HostNetwork {
		policy = corev1.DNSClusterFirst
	}
	if policy == corev1.DNSClusterFirst && len(m.clusterDNS) > 0 {
		servers = append(servers, m.clusterDNS...)
		if m.clusterDomain != "" {
			searches = append(searches, pod.Namespace+".svc."+m.clusterDomain, "svc."+m.clusterDomain, m.clusterDomain)
		}
		addOpt("ndots", "5")
	}
	if dc := spec.DNSConfig; dc != nil {
		servers = append(servers, dc.Nameservers...)
		searches = append(searches, dc.Searches...)
		for _, o := range dc.Options {
			v := ""
			if o.Value != nil {
				v = *o.Value
			}
			addOpt(o.Name, v)
		}
	}
	if len(servers) == 0 {
		if policy == corev1.DNSNone {
			return nil, unsupported("spec.dnsConfig", "dnsPolicy None needs at least one nameserver")
		}
		return nil, nil
	}
	// The resolver's limits, as the kubelet applies them.
	if len(servers) > 3 {
		servers = servers[:3]
	}
	if len(searches) > 32 {
		searches = searches[:32]
	}
	var o []string
	for _, name := range order {
		if v := opts[name]; v != "" {
			o = append(o, name+":"+v)
		} else {
			o = append(o, name)
		}
	}
	return &api.DNSConfig{NameServers: servers, SearchDomains: strings.Join(searches, " "), Options: strings.Join(o, " ")}, nil
}

func checkPodSpec(s *corev1.PodSpec) error {
	switch {
	case s.HostNetwork:
		return unsupported("spec.hostNetwork", "container groups have their own network")
	case s.HostPID:
		return unsupported("spec.hostPID", "container groups have their own process namespace")
	case s.HostIPC:
		return unsupported("spec.hostIPC", "container groups have their own IPC namespace")
	case s.ShareProcessNamespace != nil && *s.ShareProcessNamespace:
		return unsupported("spec.shareProcessNamespace", "not available in container groups")
	case len(s.EphemeralContainers) > 0:
		return unsupported("spec.ephemeralContainers", "not available in container groups")
	case s.RuntimeClassName != nil && *s.RuntimeClassName != "":
		return unsupported("spec.runtimeClassName", "Skiff picks the runtime")
	}
	if sc := s.SecurityContext; sc != nil {
		if err := checkSeccomp("spec.securityContext.seccompProfile", sc.SeccompProfile); err != nil {
			return err
		}
	}
	return nil
}

// checkSeccomp refuses the seccomp profiles a container group cannot take:
// Localhost (a file on a node Skiff does not have) and Unconfined (no
// filter at all). RuntimeDefault is Skiff's default profile.
func checkSeccomp(field string, p *corev1.SeccompProfile) error {
	if p == nil {
		return nil
	}
	switch p.Type {
	case corev1.SeccompProfileTypeRuntimeDefault:
		return nil
	case corev1.SeccompProfileTypeLocalhost:
		return unsupported(field, "Localhost profiles are files on a node; Skiff runs every container with its default seccomp profile")
	default:
		return unsupported(field, "%s: Skiff runs every container with its default seccomp profile", p.Type)
	}
}

func checkContainer(field string, c *corev1.Container, init bool) error {
	switch {
	case c.WorkingDir != "":
		return unsupported(field+".workingDir", "the ACI container model has no working directory; use the image's WORKDIR or `sh -c 'cd DIR && ...'`")
	case len(c.VolumeDevices) > 0:
		return unsupported(field+".volumeDevices", "no block devices")
	case len(c.EnvFrom) > 0:
		return unsupported(field+".envFrom", "it was not resolved by the pod controller")
	}
	if init {
		switch {
		case len(c.Ports) > 0:
			return unsupported(field+".ports", "init containers have no ports")
		case c.LivenessProbe != nil || c.ReadinessProbe != nil || c.StartupProbe != nil:
			return unsupported(field+".probes", "init containers have no probes")
		case c.RestartPolicy != nil:
			return unsupported(field+".restartPolicy", "sidecar init containers are not available in container groups")
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if err := checkSeccomp(field+".securityContext.seccompProfile", sc.SeccompProfile); err != nil {
			return err
		}
		if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
			return unsupported(field+".securityContext.procMount", "Skiff always masks /proc")
		}
	}
	for i, m := range c.VolumeMounts {
		if m.SubPath != "" || m.SubPathExpr != "" {
			return unsupported(fmt.Sprintf("%s.volumeMounts[%d].subPath", field, i), "volumes are mounted whole")
		}
	}
	return nil
}

// command is the container's argv: command and args together, since the
// ACI model has a single command.
func command(field string, c *corev1.Container) ([]string, error) {
	if len(c.Command) == 0 && len(c.Args) > 0 {
		return nil, unsupported(field+".args", "args without command would replace the image's ENTRYPOINT, which a container group cannot keep; give the full command")
	}
	out := append([]string{}, c.Command...)
	return append(out, c.Args...), nil
}

func findContainer(pod *corev1.Pod, name string, init bool) *corev1.Container {
	if pod == nil {
		return nil
	}
	cs := pod.Spec.Containers
	if init {
		cs = pod.Spec.InitContainers
	}
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// env maps resolved env to ACI variables; values that orig takes from a
// Secret are sent as secureValue.
func (m *mapper) env(c, orig *corev1.Container, ns string) []api.EnvironmentVariable {
	secret := map[string]bool{}
	if orig != nil {
		for _, e := range orig.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				secret[e.Name] = true
			}
		}
		for _, ef := range orig.EnvFrom {
			if ef.SecretRef == nil || m.secrets == nil {
				continue
			}
			s, err := m.secrets.Secrets(ns).Get(ef.SecretRef.Name)
			if err != nil {
				continue
			}
			for k := range s.Data {
				secret[ef.Prefix+k] = true
			}
			for k := range s.StringData {
				secret[ef.Prefix+k] = true
			}
		}
	}
	out := []api.EnvironmentVariable{}
	for _, e := range c.Env {
		if secret[e.Name] {
			out = append(out, api.EnvironmentVariable{Name: e.Name, SecureValue: e.Value})
		} else {
			out = append(out, api.EnvironmentVariable{Name: e.Name, Value: e.Value})
		}
	}
	return out
}

func mounts(c *corev1.Container) []api.VolumeMount {
	var out []api.VolumeMount
	for _, m := range c.VolumeMounts {
		out = append(out, api.VolumeMount{Name: m.Name, MountPath: m.MountPath, ReadOnly: m.ReadOnly})
	}
	return out
}

func resources(field string, c *corev1.Container) (api.ResourceRequirements, error) {
	cpu := func(q resource.Quantity) float64 { return math.Max(0.01, math.Ceil(float64(q.MilliValue())/10)/100) }
	mem := func(q resource.Quantity) float64 { return math.Max(0.1, math.Ceil(float64(q.Value())/1e8)/10) }
	var r api.ResourceRequirements
	r.Requests.CPU, r.Requests.MemoryInGB = DefaultCPU, DefaultMemoryGB
	lim := c.Resources.Limits
	req := c.Resources.Requests
	if q, ok := req[corev1.ResourceCPU]; ok {
		r.Requests.CPU = cpu(q)
	} else if q, ok := lim[corev1.ResourceCPU]; ok {
		r.Requests.CPU = cpu(q)
	}
	if q, ok := req[corev1.ResourceMemory]; ok {
		r.Requests.MemoryInGB = mem(q)
	} else if q, ok := lim[corev1.ResourceMemory]; ok {
		r.Requests.MemoryInGB = mem(q)
	}
	if len(lim) > 0 {
		r.Limits = &api.ResourceLimits{}
		if q, ok := lim[corev1.ResourceCPU]; ok {
			r.Limits.CPU = cpu(q)
		}
		if q, ok := lim[corev1.ResourceMemory]; ok {
			r.Limits.MemoryInGB = mem(q)
		}
	}
	for name := range lim {
		if name != corev1.ResourceCPU && name != corev1.ResourceMemory && name != corev1.ResourceEphemeralStorage {
			return r, unsupported(field+".resources.limits."+string(name), "only cpu and memory")
		}
	}
	return r, nil
}

func probe(field string, p *corev1.Probe, c *corev1.Container) (*api.Probe, error) {
	if p == nil {
		return nil, nil
	}
	out := &api.Probe{
		InitialDelaySeconds: p.InitialDelaySeconds,
		PeriodSeconds:       p.PeriodSeconds,
		FailureThreshold:    p.FailureThreshold,
		SuccessThreshold:    p.SuccessThreshold,
		TimeoutSeconds:      p.TimeoutSeconds,
	}
	switch {
	case p.Exec != nil:
		out.Exec = &api.ExecAction{Command: p.Exec.Command}
	case p.HTTPGet != nil:
		h := p.HTTPGet
		port, err := resolvePort(field+".httpGet.port", h.Port.IntValue(), h.Port.String(), h.Port.Type == intstr.String, c)
		if err != nil {
			return nil, err
		}
		if h.Host != "" {
			return nil, unsupported(field+".httpGet.host", "probes go to the group's own address")
		}
		out.HTTPGet = &api.HTTPGetAction{Path: h.Path, Port: port, Scheme: string(h.Scheme)}
		for _, hd := range h.HTTPHeaders {
			out.HTTPGet.HTTPHeaders = append(out.HTTPGet.HTTPHeaders, api.HTTPHeader{Name: hd.Name, Value: hd.Value})
		}
	case p.TCPSocket != nil:
		t := p.TCPSocket
		port, err := resolvePort(field+".tcpSocket.port", t.Port.IntValue(), t.Port.String(), t.Port.Type == intstr.String, c)
		if err != nil {
			return nil, err
		}
		if t.Host != "" {
			return nil, unsupported(field+".tcpSocket.host", "probes go to the group's own address")
		}
		out.TCPSocket = &api.TCPSocketAction{Port: port}
	case p.GRPC != nil:
		return nil, unsupported(field+".grpc", "probes are exec, httpGet or tcpSocket")
	default:
		return nil, unsupported(field, "a probe needs exec, httpGet or tcpSocket")
	}
	return out, nil
}

// lifecycleHooks maps a container's postStart and preStop hooks (exec and
// httpGet, as probes are).
func lifecycleHooks(field string, c *corev1.Container) (*api.Lifecycle, error) {
	l := c.Lifecycle
	if l == nil || (l.PostStart == nil && l.PreStop == nil) {
		return nil, nil
	}
	hook := func(f string, h *corev1.LifecycleHandler) (*api.LifecycleHandler, error) {
		if h == nil {
			return nil, nil
		}
		switch {
		case h.TCPSocket != nil:
			return nil, unsupported(f+".tcpSocket", "a hook is exec or httpGet (Kubernetes deprecated tcpSocket hooks)")
		case h.Sleep != nil:
			return nil, unsupported(f+".sleep", "a hook is exec or httpGet; use exec with `sleep`")
		}
		p, err := probe(f, &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: h.Exec, HTTPGet: h.HTTPGet}}, c)
		if err != nil {
			return nil, err
		}
		return &api.LifecycleHandler{Exec: p.Exec, HTTPGet: p.HTTPGet}, nil
	}
	post, err := hook(field+".postStart", l.PostStart)
	if err != nil {
		return nil, err
	}
	pre, err := hook(field+".preStop", l.PreStop)
	if err != nil {
		return nil, err
	}
	return &api.Lifecycle{PostStart: post, PreStop: pre}, nil
}

func resolvePort(field string, n int, s string, named bool, c *corev1.Container) (int32, error) {
	if !named {
		return int32(n), nil
	}
	for _, p := range c.Ports {
		if p.Name == s {
			return p.ContainerPort, nil
		}
	}
	if v, err := strconv.Atoi(s); err == nil {
		return int32(v), nil
	}
	return 0, unsupported(field, "container %q has no port named %q", c.Name, s)
}

// policyField names the pod-spec field that made Skiff refuse the pod's
// group with ARM code code (api.CodePrivilegedNotAllowed,
// api.CodeCapabilityNotAllowed): the first container, init containers
// first as the server checks them, whose securityContext the default
// policy refuses with that code. "" when none does.
func policyField(pod *corev1.Pod, code string) string {
	check := func(field string, c *corev1.Container) string {
		err := api.CheckSecurityContext(field, securityContext(nil, c.SecurityContext), api.SecurityPolicy{})
		if err == nil || errdefs.CodeOf(err) != code {
			return ""
		}
		switch code {
		case api.CodePrivilegedNotAllowed:
			return field + ".securityContext.privileged"
		case api.CodeCapabilityNotAllowed:
			return field + ".securityContext.capabilities.add"
		case api.CodeSeccompProfileNotAllowed:
			return field + ".securityContext.seccompProfile"
		}
		return ""
	}
	for i := range pod.Spec.InitContainers {
		if f := check(fmt.Sprintf("spec.initContainers[%d]", i), &pod.Spec.InitContainers[i]); f != "" {
			return f
		}
	}
	for i := range pod.Spec.Containers {
		if f := check(fmt.Sprintf("spec.containers[%d]", i), &pod.Spec.Containers[i]); f != "" {
			return f
		}
	}
	return ""
}

func securityContext(pod *corev1.PodSecurityContext, c *corev1.SecurityContext) *api.SecurityContext {
	var out api.SecurityContext
	set := false
	if pod != nil {
		if pod.RunAsUser != nil {
			out.RunAsUser, set = pod.RunAsUser, true
		}
		if pod.RunAsGroup != nil {
			out.RunAsGroup, set = pod.RunAsGroup, true
		}
	}
	if c != nil {
		if c.RunAsUser != nil {
			out.RunAsUser, set = c.RunAsUser, true
		}
		if c.RunAsGroup != nil {
			out.RunAsGroup, set = c.RunAsGroup, true
		}
		if c.Privileged != nil {
			out.Privileged, set = c.Privileged, true
		}
		if c.AllowPrivilegeEscalation != nil {
			out.AllowPrivilegeEscalation, set = c.AllowPrivilegeEscalation, true
		}
		if c.Capabilities != nil {
			caps := &api.Capabilities{}
			for _, a := range c.Capabilities.Add {
				caps.Add = append(caps.Add, string(a))
			}
			for _, d := range c.Capabilities.Drop {
				caps.Drop = append(caps.Drop, string(d))
			}
			out.Capabilities, set = caps, true
		}
	}
	if !set {
		return nil
	}
	return &out
}

// volumes maps the pod's volumes. Secret, ConfigMap, projected and
// downward-API volumes become ACI secret volumes (file name → base64).
func (m *mapper) volumes(pod *corev1.Pod) ([]api.Volume, error) {
	var out []api.Volume
	for i, v := range pod.Spec.Volumes {
		field := fmt.Sprintf("spec.volumes[%d]", i)
		switch {
		case v.EmptyDir != nil:
			if v.EmptyDir.Medium == corev1.StorageMediumHugePages {
				return nil, unsupported(field+".emptyDir.medium", "no huge pages")
			}
			// Skiff's emptyDir extensions carry medium and sizeLimit as
			// the kubelet honours them (a hard limit here).
			ed := &api.EmptyDirVolume{}
			if v.EmptyDir.Medium == corev1.StorageMediumMemory {
				ed.Medium = api.EmptyDirMediumMemory
			}
			if q := v.EmptyDir.SizeLimit; q != nil && !q.IsZero() {
				ed.SizeLimit = q.String()
			}
			out = append(out, api.Volume{Name: v.Name, EmptyDir: ed})
		case v.Secret != nil:
			files, err := m.secretFiles(field+".secret", pod.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional)
			if err != nil {
				return nil, err
			}
			out = append(out, api.Volume{Name: v.Name, Secret: encode(files)})
		case v.ConfigMap != nil:
			files, err := m.configMapFiles(field+".configMap", pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional)
			if err != nil {
				return nil, err
			}
			out = append(out, api.Volume{Name: v.Name, Secret: encode(files)})
		case v.DownwardAPI != nil:
			files, err := downwardFiles(field+".downwardAPI", pod, v.DownwardAPI.Items)
			if err != nil {
				return nil, err
			}
			out = append(out, api.Volume{Name: v.Name, Secret: encode(files)})
		case v.Projected != nil:
			files := map[string]string{}
			for j, src := range v.Projected.Sources {
				sf := fmt.Sprintf("%s.projected.sources[%d]", field, j)
				var part map[string]string
				var err error
				switch {
				case src.Secret != nil:
					part, err = m.secretFiles(sf+".secret", pod.Namespace, src.Secret.Name, src.Secret.Items, src.Secret.Optional)
				case src.ConfigMap != nil:
					part, err = m.configMapFiles(sf+".configMap", pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional)
				case src.DownwardAPI != nil:
					part, err = downwardFiles(sf+".downwardAPI", pod, src.DownwardAPI.Items)
				case src.ServiceAccountToken != nil:
					if m.token == nil {
						err = unsupported(sf+".serviceAccountToken", "the virtual node has no Kubernetes client to request a token")
						break
					}
					var tok string
					tok, err = m.token(pod, src.ServiceAccountToken)
					part = map[string]string{src.ServiceAccountToken.Path: tok}
				default:
					err = unsupported(sf, "only secret, configMap, downwardAPI and serviceAccountToken sources")
				}
				if err != nil {
					return nil, err
				}
				for k, val := range part {
					files[k] = val
				}
			}
			if err := checkPaths(field+".projected", files); err != nil {
				return nil, err
			}
			out = append(out, api.Volume{Name: v.Name, Secret: encode(files)})
		default:
			kind := "this volume type"
			if b, err := json.Marshal(v.VolumeSource); err == nil {
				var keys map[string]json.RawMessage
				if json.Unmarshal(b, &keys) == nil {
					for k := range keys {
						kind = k
					}
				}
			}
			return nil, unsupported(field+"."+kind, "volumes are emptyDir, secret, configMap, projected and downwardAPI")
		}
	}
	for i, v := range out {
		if v.Secret != nil {
			if err := checkPaths(fmt.Sprintf("spec.volumes[%d]", i), v.Secret); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func checkPaths(field string, files map[string]string) error {
	for k := range files {
		if strings.Contains(k, "/") {
			return unsupported(field+".items", "file %q is in a subdirectory; container-group secret volumes are flat", k)
		}
	}
	return nil
}

func encode(files map[string]string) map[string]string {
	out := make(map[string]string, len(files))
	for k, v := range files {
		out[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	return out
}

func pick(field string, data map[string]string, items []corev1.KeyToPath) (map[string]string, error) {
	if len(items) == 0 {
		return data, nil
	}
	out := map[string]string{}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return nil, unsupported(field+".items", "key %q is missing", it.Key)
		}
		out[it.Path] = v
	}
	return out, nil
}

func (m *mapper) secretFiles(field, ns, name string, items []corev1.KeyToPath, optional *bool) (map[string]string, error) {
	if m.secrets == nil {
		return nil, unsupported(field, "the virtual node cannot read Secrets")
	}
	s, err := m.secrets.Secrets(ns).Get(name)
	if err != nil {
		if optional != nil && *optional {
			return map[string]string{}, nil
		}
		return nil, fmt.Errorf("%s: secret %s/%s: %w", field, ns, name, err)
	}
	data := map[string]string{}
	for k, v := range s.Data {
		data[k] = string(v)
	}
	for k, v := range s.StringData {
		data[k] = v
	}
	return pick(field, data, items)
}

func (m *mapper) configMapFiles(field, ns, name string, items []corev1.KeyToPath, optional *bool) (map[string]string, error) {
	if m.configMaps == nil {
		return nil, unsupported(field, "the virtual node cannot read ConfigMaps")
	}
	c, err := m.configMaps.ConfigMaps(ns).Get(name)
	if err != nil {
		if optional != nil && *optional {
			return map[string]string{}, nil
		}
		return nil, fmt.Errorf("%s: configmap %s/%s: %w", field, ns, name, err)
	}
	data := map[string]string{}
	for k, v := range c.Data {
		data[k] = v
	}
	for k, v := range c.BinaryData {
		data[k] = string(v)
	}
	return pick(field, data, items)
}

func downwardFiles(field string, pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile) (map[string]string, error) {
	out := map[string]string{}
	for i, it := range items {
		if it.FieldRef == nil {
			return nil, unsupported(fmt.Sprintf("%s.items[%d].resourceFieldRef", field, i), "only fieldRef")
		}
		var v string
		switch it.FieldRef.FieldPath {
		case "metadata.name":
			v = pod.Name
		case "metadata.namespace":
			v = pod.Namespace
		case "metadata.uid":
			v = string(pod.UID)
		case "metadata.labels":
			v = formatMap(pod.Labels)
		case "metadata.annotations":
			v = formatMap(pod.Annotations)
		case "spec.nodeName":
			v = pod.Spec.NodeName
		case "spec.serviceAccountName":
			v = pod.Spec.ServiceAccountName
		default:
			return nil, unsupported(fmt.Sprintf("%s.items[%d].fieldRef", field, i), "field %q", it.FieldRef.FieldPath)
		}
		out[it.Path] = v
	}
	return out, nil
}

func formatMap(m map[string]string) string {
	var lines []string
	for k, v := range m {
		lines = append(lines, fmt.Sprintf("%s=%q", k, v))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// registryCredentials reads the pod's imagePullSecrets.
func (m *mapper) registryCredentials(pod *corev1.Pod) ([]api.ImageRegistryCredential, error) {
	var out []api.ImageRegistryCredential
	for i, ref := range pod.Spec.ImagePullSecrets {
		field := fmt.Sprintf("spec.imagePullSecrets[%d]", i)
		if m.secrets == nil {
			return nil, unsupported(field, "the virtual node cannot read Secrets")
		}
		s, err := m.secrets.Secrets(pod.Namespace).Get(ref.Name)
		if err != nil {
			continue // kubelet ignores a missing pull secret too
		}
		var auths map[string]struct {
			Username string `json:"username"`
			Password string `json:"password"`
			Auth     string `json:"auth"`
		}
		if b, ok := s.Data[corev1.DockerConfigJsonKey]; ok {
			var cfg struct {
				Auths json.RawMessage `json:"auths"`
			}
			if err := json.Unmarshal(b, &cfg); err == nil {
				_ = json.Unmarshal(cfg.Auths, &auths)
			}
		} else if b, ok := s.Data[corev1.DockerConfigKey]; ok {
			_ = json.Unmarshal(b, &auths)
		}
		for server, a := range auths {
			user, pass := a.Username, a.Password
			if a.Auth != "" && user == "" {
				if dec, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
					user, pass, _ = strings.Cut(string(dec), ":")
				}
			}
			server = strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")
			server = strings.TrimSuffix(server, "/")
			out = append(out, api.ImageRegistryCredential{Server: server, Username: user, Password: pass})
		}
	}
	return out, nil
}

// privatePorts lists the containers' ports once each, for a Private
// address.
func privatePorts(cs []api.Container) []api.Port {
	out := []api.Port{}
	seen := map[api.Port]bool{}
	for _, c := range cs {
		for _, pt := range c.Properties.Ports {
			k := api.Port{Protocol: pt.Protocol, Port: pt.Port}
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}
