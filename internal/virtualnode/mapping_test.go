package virtualnode

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-sh/skiff/api"
)

func TestGroupName(t *testing.T) {
	// A readable prefix and a hash; the same pod always gets the same name.
	if got := GroupName("default", "web"); !strings.HasPrefix(got, "default-web-") || len(got) != len("default-web-")+12 || got != GroupName("default", "web") {
		t.Errorf("GroupName = %q", got)
	}
	// Pod c in namespace a-b and pod b-c in namespace a join to the same
	// "a-b-c"; their groups must differ, or deleting one deletes the other.
	if x, y := GroupName("a-b", "c"), GroupName("a", "b-c"); x == y {
		t.Errorf("a-b/c and a/b-c both map to %q", x)
	}
	long := GroupName("a-very-long-namespace-name-for-testing", "and-a-very-long-pod-name-that-goes-on-and-on-0123456789")
	if len(long) > 63 || !strings.HasPrefix(long, "a-very-long-namespace") {
		t.Errorf("long name %q (%d)", long, len(long))
	}
	// Dotted names are made valid and kept apart from look-alikes by a hash.
	a, b := GroupName("default", "web.v1"), GroupName("default", "web-v1")
	if a == b || strings.Contains(a, ".") {
		t.Errorf("web.v1 → %q, web-v1 → %q", a, b)
	}
	max := GroupName(strings.Repeat("n", 63), strings.Repeat("p", 253))
	if len(max) > 63 {
		t.Errorf("longest names: %q (%d)", max, len(max))
	}
	for _, n := range []string{long, a, b, max, GroupName("a-b", "c"), GroupName("a", "b-c")} {
		if err := api.ValidateName(api.KindContainerGroup, n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
}

func pod(c corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u1"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{c}, RestartPolicy: corev1.RestartPolicyOnFailure},
	}
}

func TestPodToGroup(t *testing.T) {
	m := &mapper{osType: "Linux", region: "local", node: "n"}
	c := corev1.Container{
		Name: "app", Image: "img", Command: []string{"sh", "-c"}, Args: []string{"echo hi"},
		Env:   []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "PW", Value: "secret"}},
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {ContainerPort: 53, Protocol: corev1.ProtocolUDP, HostPort: 53}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
		},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ok", Port: intstr.FromString("http")}}},
	}
	orig := pod(c)
	orig.Spec.Containers[0].Env = append([]corev1.EnvVar(nil), c.Env...)
	orig.Spec.Containers[0].Env[1] = corev1.EnvVar{Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}}}
	g, err := m.podToGroup(pod(c), orig, "2026-01-01T00:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	p := g.Properties
	if g.Name != GroupName("ns", "p") || g.Tags[TagUID] != "u1" || g.Tags[TagNamespace] != "ns" || g.Tags[TagPod] != "p" || p.RestartPolicy != "OnFailure" {
		t.Errorf("group %+v", g)
	}
	cp := p.Containers[0].Properties
	if strings.Join(cp.Command, "|") != "sh|-c|echo hi" {
		t.Errorf("command %q", cp.Command)
	}
	if cp.EnvironmentVariables[0].Value != "1" || cp.EnvironmentVariables[1].SecureValue != "secret" || cp.EnvironmentVariables[1].Value != "" {
		t.Errorf("env %+v", cp.EnvironmentVariables)
	}
	if cp.Resources.Requests.CPU != 0.25 || cp.Resources.Requests.MemoryInGB != 0.3 || cp.Resources.Limits.MemoryInGB != 1.1 {
		t.Errorf("resources %+v %+v", cp.Resources.Requests, cp.Resources.Limits)
	}
	if cp.ReadinessProbe == nil || cp.ReadinessProbe.HTTPGet.Port != 8080 {
		t.Errorf("readiness %+v", cp.ReadinessProbe)
	}
	if p.IPAddress == nil || len(p.IPAddress.Ports) != 1 || p.IPAddress.Ports[0].Port != 53 || p.IPAddress.Ports[0].Protocol != "UDP" {
		t.Errorf("published %+v", p.IPAddress)
	}

	// Defaults when no resources are asked for.
	g, err = m.podToGroup(pod(corev1.Container{Name: "app", Image: "img"}), nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if r := g.Properties.Containers[0].Properties.Resources; r.Requests.CPU != DefaultCPU || r.Requests.MemoryInGB != DefaultMemoryGB {
		t.Errorf("defaults %+v", r)
	}
	// Without hostPorts the pod gets a Private address listing its ports.
	if ip := g.Properties.IPAddress; ip == nil || ip.Type != "Private" || len(ip.Ports) != 0 {
		t.Errorf("no ports: ip %+v, want Private with no ports", ip)
	}
	two := pod(corev1.Container{Name: "app", Image: "img", Ports: []corev1.ContainerPort{{ContainerPort: 80}, {ContainerPort: 81}}})
	two.Spec.Containers = append(two.Spec.Containers, corev1.Container{Name: "side", Image: "img", Ports: []corev1.ContainerPort{{ContainerPort: 9000}}})
	g, err = m.podToGroup(two, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if ip := g.Properties.IPAddress; ip == nil || ip.Type != "Private" || len(ip.Ports) != 3 || ip.Ports[2].Port != 9000 {
		t.Errorf("ports: ip %+v, want Private 80, 81, 9000", ip)
	}
	if err := api.ValidateContainerGroup(g); err != nil {
		t.Errorf("the Private group does not validate: %v", err)
	}
}

// tcpSocket probes (by number or port name) and startup probes map to the
// group's, as kubelet runs them.
func TestPodToGroupTCPSocketAndStartupProbes(t *testing.T) {
	m := &mapper{osType: "Linux"}
	c := corev1.Container{Name: "a", Image: "i", Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 8080}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("web")}}, PeriodSeconds: 2},
		StartupProbe:   &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(8080)}}, FailureThreshold: 30}}
	g, err := m.podToGroup(pod(c), nil, "")
	if err != nil {
		t.Fatal(err)
	}
	cp := g.Properties.Containers[0].Properties
	if r := cp.ReadinessProbe; r == nil || r.TCPSocket == nil || r.TCPSocket.Port != 8080 || r.PeriodSeconds != 2 {
		t.Errorf("readiness probe %+v", r)
	}
	if sp := cp.StartupProbe; sp == nil || sp.TCPSocket == nil || sp.TCPSocket.Port != 8080 || sp.FailureThreshold != 30 {
		t.Errorf("startup probe %+v", sp)
	}
	g.Location = "local"
	if err := api.ValidateContainerGroup(g); err != nil {
		t.Errorf("the group does not validate: %v", err)
	}
	lc := pod(corev1.Container{Name: "a", Image: "i", Lifecycle: &corev1.Lifecycle{
		PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"touch", "/tmp/up"}}},
		PreStop:   &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/drain", Port: intstr.FromInt(8080)}}}})
	if g, err = m.podToGroup(lc, nil, ""); err != nil {
		t.Fatal(err)
	}
	if l := g.Properties.Containers[0].Properties.Lifecycle; l == nil || l.PostStart == nil || l.PostStart.Exec == nil || l.PreStop == nil ||
		l.PreStop.HTTPGet == nil || l.PreStop.HTTPGet.Port != 8080 || l.PreStop.HTTPGet.Path != "/drain" {
		t.Errorf("lifecycle %+v", l)
	}
	hp := pod(corev1.Container{Name: "a", Image: "i"})
	hp.Spec.HostAliases = []corev1.HostAlias{{IP: "10.1.2.3", Hostnames: []string{"db", "db.internal"}}}
	if g, err = m.podToGroup(hp, nil, ""); err != nil {
		t.Fatal(err)
	}
	if ha := g.Properties.HostAliases; len(ha) != 1 || ha[0].IP != "10.1.2.3" || len(ha[0].Hostnames) != 2 {
		t.Errorf("hostAliases %+v", ha)
	}
	g.Location = "local"
	if err := api.ValidateContainerGroup(g); err != nil {
		t.Errorf("the group does not validate: %v", err)
	}
}

func TestPodToGroupUnsupported(t *testing.T) {
	m := &mapper{osType: "Linux"}
	for field, c := range map[string]corev1.Container{
		"spec.containers[0].args":                          {Name: "a", Image: "i", Args: []string{"x"}},
		"spec.containers[0].lifecycle.preStop.sleep":       {Name: "a", Image: "i", Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}}},
		"spec.containers[0].livenessProbe.grpc":            {Name: "a", Image: "i", LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 80}}}},
		"spec.containers[0].readinessProbe.tcpSocket.host": {Name: "a", Image: "i", ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(80), Host: "10.0.0.1"}}}},
		"spec.containers[0].startupProbe":                  {Name: "a", Image: "i", StartupProbe: &corev1.Probe{}},
		"spec.containers[0].workingDir":                    {Name: "a", Image: "i", WorkingDir: "/x"},
		"spec.containers[0].ports[0].hostPort":             {Name: "a", Image: "i", Ports: []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}},
		"spec.containers[0].securityContext.seccompProfile": {Name: "a", Image: "i", SecurityContext: &corev1.SecurityContext{
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr("my.json")}}},
		"spec.containers[0].securityContext.procMount": {Name: "a", Image: "i", SecurityContext: &corev1.SecurityContext{ProcMount: ptr(corev1.UnmaskedProcMount)}},
	} {
		_, err := m.podToGroup(pod(c), nil, "")
		var ue *UnsupportedError
		if !errors.As(err, &ue) || ue.Field != field {
			t.Errorf("%s: err = %v", field, err)
		}
	}
	p := pod(corev1.Container{Name: "a", Image: "i"})
	p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
	_, err := m.podToGroup(p, nil, "")
	if err == nil || !strings.Contains(err.Error(), "spec.volumes[0].hostPath") {
		t.Errorf("hostPath: %v", err)
	}
	p = pod(corev1.Container{Name: "a", Image: "i"})
	p.Spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}
	var ue *UnsupportedError
	if _, err := m.podToGroup(p, nil, ""); !errors.As(err, &ue) || ue.Field != "spec.securityContext.seccompProfile" {
		t.Errorf("pod seccomp Unconfined: %v", err)
	}
	p.Spec.SecurityContext.SeccompProfile.Type = corev1.SeccompProfileTypeRuntimeDefault
	if _, err := m.podToGroup(p, nil, ""); err != nil {
		t.Errorf("pod seccomp RuntimeDefault: %v", err)
	}
}

// TestPolicyField: a 400 of the server's securityContext policy is traced
// back to the pod field that asked for it.
func TestPolicyField(t *testing.T) {
	yes := true
	p := pod(corev1.Container{Name: "a", Image: "i"})
	p.Spec.Containers = append(p.Spec.Containers,
		corev1.Container{Name: "b", Image: "i", SecurityContext: &corev1.SecurityContext{Privileged: &yes}},
		corev1.Container{Name: "c", Image: "i", SecurityContext: &corev1.SecurityContext{
			Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE", "SYS_ADMIN"}}}})
	for code, want := range map[string]string{
		api.CodePrivilegedNotAllowed: "spec.containers[1].securityContext.privileged",
		api.CodeCapabilityNotAllowed: "spec.containers[2].securityContext.capabilities.add",
		"InvalidContainerImage":      "",
	} {
		if got := policyField(p, code); got != want {
			t.Errorf("%s: field %q, want %q", code, got, want)
		}
	}
	// Adding a default capability only is not what the server refused.
	p.Spec.Containers[2].SecurityContext.Capabilities.Add = []corev1.Capability{"NET_BIND_SERVICE"}
	if got := policyField(p, api.CodeCapabilityNotAllowed); got != "" {
		t.Errorf("default capability named as refused: %q", got)
	}
}

func TestGroupStatusNeverAhead(t *testing.T) {
	p := pod(corev1.Container{Name: "app", Image: "img"})
	g := &api.ContainerGroup{Name: "ns-p"}
	g.Properties.ProvisioningState = "Creating"
	g.Properties.Containers = []api.Container{{Name: "app"}}
	g.Properties.InstanceView = &api.GroupInstanceView{State: api.GroupPending}
	g.Properties.Containers[0].Properties.InstanceView = &api.ContainerInstanceView{CurrentState: &api.ContainerState{State: api.ContainerWaiting, DetailStatus: "Waiting"}}
	st := groupStatus(p, g, "10.0.0.1", metav1.Now(), nil)
	if st.Phase != corev1.PodPending || st.ContainerStatuses[0].State.Waiting == nil || st.ContainerStatuses[0].State.Waiting.Reason != ReasonCreating || st.ContainerStatuses[0].Ready {
		t.Fatalf("creating: %+v", st)
	}
	// Pull failure: Pending with the kubelet's reason.
	g.Properties.Containers[0].Properties.InstanceView.CurrentState = &api.ContainerState{State: api.ContainerWaiting, DetailStatus: "ErrImagePull"}
	g.Properties.Containers[0].Properties.InstanceView.Events = []api.Event{{Type: api.EventWarning, Name: "Failed", Message: "manifest unknown"}}
	st = groupStatus(p, g, "", metav1.Now(), nil)
	if st.Phase != corev1.PodPending || st.ContainerStatuses[0].State.Waiting.Reason != "ErrImagePull" || st.ContainerStatuses[0].State.Waiting.Message != "manifest unknown" {
		t.Fatalf("pull error: %+v", st.ContainerStatuses[0].State)
	}
	// Running.
	g.Properties.InstanceView.State = api.GroupRunning
	g.Properties.IPAddress = &api.IPAddress{IP: "127.0.0.1", PrivateIP: "10.1.0.7"}
	g.Properties.Containers[0].Properties.InstanceView = &api.ContainerInstanceView{
		CurrentState:  &api.ContainerState{State: api.ContainerRunning, StartTime: "2026-01-01T00:00:00Z"},
		PreviousState: &api.ContainerState{State: api.ContainerTerminated, ExitCode: ptr(int32(137)), DetailStatus: "OOMKilled"},
		RestartCount:  2,
	}
	st = groupStatus(p, g, "", metav1.Now(), nil)
	cs := st.ContainerStatuses[0]
	if st.Phase != corev1.PodRunning || st.PodIP != "10.1.0.7" || !cs.Ready || cs.RestartCount != 2 ||
		cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.Reason != "OOMKilled" {
		t.Fatalf("running: %+v", st)
	}
	for _, c := range st.Conditions {
		if c.Status != corev1.ConditionTrue {
			t.Errorf("condition %s = %s", c.Type, c.Status)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestPodDNS(t *testing.T) {
	five := "2"
	cases := []struct {
		name    string
		m       mapper
		policy  corev1.DNSPolicy
		cfg     *corev1.PodDNSConfig
		want    *api.DNSConfig
		wantErr string
	}{
		{name: "no cluster DNS: Skiff's default", policy: corev1.DNSClusterFirst},
		{name: "ClusterFirst", m: mapper{clusterDNS: []string{"10.96.0.10"}, clusterDomain: "cluster.local"},
			want: &api.DNSConfig{NameServers: []string{"10.96.0.10"}, SearchDomains: "ns.svc.cluster.local svc.cluster.local cluster.local", Options: "ndots:5"}},
		{name: "ClusterFirst plus the pod's", m: mapper{clusterDNS: []string{"10.96.0.10"}, clusterDomain: "k.local"},
			policy: corev1.DNSClusterFirst,
			cfg:    &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: []string{"corp"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &five}, {Name: "edns0"}}},
			want:   &api.DNSConfig{NameServers: []string{"10.96.0.10", "1.1.1.1"}, SearchDomains: "ns.svc.k.local svc.k.local k.local corp", Options: "ndots:2 edns0"}},
		{name: "Default policy ignores the cluster", m: mapper{clusterDNS: []string{"10.96.0.10"}}, policy: corev1.DNSDefault},
		{name: "None", m: mapper{clusterDNS: []string{"10.96.0.10"}}, policy: corev1.DNSNone,
			cfg:  &corev1.PodDNSConfig{Nameservers: []string{"9.9.9.9"}},
			want: &api.DNSConfig{NameServers: []string{"9.9.9.9"}}},
		{name: "None without nameservers", policy: corev1.DNSNone, wantErr: "spec.dnsConfig"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := pod(corev1.Container{Name: "a", Image: "i"})
			p.Spec.DNSPolicy, p.Spec.DNSConfig = tc.policy, tc.cfg
			got, err := tc.m.dnsConfig(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
