// Package virtualnode is the virtual-kubelet provider of `skiff
// virtual-node`: it runs the pods Kubernetes schedules to the virtual node
// as Skiff container groups, through the Skiff HTTP API, and reports their
// status back from what that API says.
package virtualnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	vkerrdefs "github.com/virtual-kubelet/virtual-kubelet/errdefs"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"

	authv1 "k8s.io/api/authentication/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Node labels and defaults.
const (
	DefaultNodeName = "skiff-virtual-node"
	DefaultTaint    = "virtual-kubelet.io/provider=skiff:NoSchedule"
	// KubeletVersion is what the node reports as its kubelet version.
	KubeletVersion = "v1.35.4-skiff"
)

// Config configures a Provider.
type Config struct {
	// Client talks to the Skiff server.
	Client *client.Client
	// ResourceGroup holds the groups of this node; Region is their location.
	ResourceGroup string
	Region        string
	// NodeName is the Kubernetes node; OS is "Linux" or "Windows".
	NodeName string
	OS       string
	// InternalIP is the node's address (hostIP of its pods); KubeletPort is
	// where its kubelet API listens.
	InternalIP  string
	KubeletPort int32
	// Capacity is the node's capacity and allocatable.
	Capacity corev1.ResourceList
	// Taints are put on the node.
	Taints []corev1.Taint
	// ClusterDNS (nameserver addresses) and ClusterDomain (e.g.
	// cluster.local) give ClusterFirst pods the cluster's DNS, as the
	// kubelet's --cluster-dns and --cluster-domain do. Empty ClusterDNS
	// leaves such pods on Skiff's default resolvers.
	ClusterDNS    []string
	ClusterDomain string
	// Pods, Secrets, ConfigMaps are listers of the cluster (from nodeutil).
	Pods       corev1listers.PodLister
	Secrets    corev1listers.SecretLister
	ConfigMaps corev1listers.ConfigMapLister
	// Kube, when set, requests service-account tokens for projected volumes.
	Kube kubernetes.Interface
	// Events mirrors Skiff events and refusals on pods; may be nil.
	Events record.EventRecorder
	// SyncInterval is how often group states are read (default 2s);
	// HealthInterval how often the Skiff API is checked (default 5s);
	// CleanupInterval how often orphaned groups are removed (default 1m).
	SyncInterval    time.Duration
	HealthInterval  time.Duration
	CleanupInterval time.Duration
	// Logger defaults to a discarding logger.
	Logger *slog.Logger
	// Principal names whom Client signs in as (e.g. "service principal
	// APP-ID"), for the node's messages; empty: "the node's credentials".
	Principal string
}

// tracked is what the provider knows of one pod.
type tracked struct {
	pod      *corev1.Pod // last status reported, on the pod spec
	group    string
	failed   bool // refused: status is final, no group exists
	deleting bool
	// changing is set while a group this node created or updated has not
	// settled (Ready, or ended): the passes a create or update wakes read
	// only these, the periodic ones every pod's.
	changing bool
	seen     map[string]bool // Skiff events already mirrored
	started  metav1.Time
	// Image pulls that failed are retried with a growing back-off, as the
	// kubelet does: pullTries so far, and when the last one was made.
	pullTries int
	lastPull  time.Time
}

// pullBackOff is the wait before retry n of a failed pull: 10s doubling
// up to 5 minutes.
func pullBackOff(n int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < n && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// Provider implements nodeutil.Provider, node.PodNotifier and
// node.NodeProvider on top of the Skiff API.
type Provider struct {
	cfg Config
	log *slog.Logger
	m   *mapper

	mu     sync.Mutex
	pods   map[string]*tracked // key ns/name
	notify func(*corev1.Pod)
	kick   chan struct{}

	nodeMu     sync.Mutex
	node       *corev1.Node
	nodeNotify func(*corev1.Node)
	healthy    *bool
}

// New returns a provider. It starts nothing; Run does.
func New(cfg Config) (*Provider, error) {
	if cfg.Client == nil {
		return nil, fmt.Errorf("virtualnode: no Skiff client: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.ResourceGroup == "" {
		return nil, fmt.Errorf("virtualnode: no resource group: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.NodeName == "" {
		cfg.NodeName = DefaultNodeName
	}
	if cfg.OS == "" {
		cfg.OS = "Linux"
	}
	if cfg.Region == "" {
		cfg.Region = "local"
	}
	if cfg.KubeletPort == 0 {
		cfg.KubeletPort = 10250
	}
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = 2 * time.Second
	}
	if cfg.HealthInterval == 0 {
		cfg.HealthInterval = 5 * time.Second
	}
	if cfg.CleanupInterval == 0 {
		cfg.CleanupInterval = time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Provider{cfg: cfg, log: log, pods: map[string]*tracked{}, kick: make(chan struct{}, 1)}
	p.m = &mapper{secrets: cfg.Secrets, configMaps: cfg.ConfigMaps, osType: cfg.OS, region: cfg.Region, node: cfg.NodeName,
		clusterDNS: cfg.ClusterDNS, clusterDomain: cfg.ClusterDomain}
	if cfg.Kube != nil {
		p.m.token = p.serviceAccountToken
	}
	return p, nil
}

func key(ns, name string) string { return ns + "/" + name }

// DefaultCapacity is cpu 10000, memory 4Ti, pods 5000.
func DefaultCapacity() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("10000"),
		corev1.ResourceMemory: resource.MustParse("4Ti"),
		corev1.ResourcePods:   resource.MustParse("5000"),
	}
}

// ConfigureNode fills in the node the virtual node registers: labels,
// taints, capacity, addresses, kubelet endpoint and a Ready condition that
// stays False until the Skiff API answers.
func (p *Provider) ConfigureNode(n *corev1.Node) {
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	os := map[string]string{"linux": "linux", "windows": "windows"}[lower(p.cfg.OS)]
	n.Labels["type"] = "virtual-kubelet"
	n.Labels["kubernetes.io/role"] = "agent"
	n.Labels["kubernetes.io/hostname"] = p.cfg.NodeName
	n.Labels["kubernetes.io/os"] = os
	n.Labels["beta.kubernetes.io/os"] = os
	n.Labels["node.kubernetes.io/exclude-from-external-load-balancers"] = "true"
	n.Spec.Taints = append([]corev1.Taint{}, p.cfg.Taints...)
	capacity := p.cfg.Capacity
	if capacity == nil {
		capacity = DefaultCapacity()
	}
	n.Status.Capacity = capacity.DeepCopy()
	n.Status.Allocatable = capacity.DeepCopy()
	n.Status.NodeInfo.OperatingSystem = os
	n.Status.NodeInfo.Architecture = "amd64"
	n.Status.NodeInfo.KubeletVersion = KubeletVersion
	n.Status.NodeInfo.ContainerRuntimeVersion = "skiff://" + p.cfg.Client.Endpoint()
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = p.cfg.KubeletPort
	// Only the InternalIP: the API server prefers a Hostname address, and
	// the node's name does not resolve to the kubelet API.
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: p.cfg.InternalIP}}
	if p.cfg.InternalIP == "" {
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: p.cfg.NodeName}}
	}
	now := metav1.Now()
	n.Status.Conditions = []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "SkiffNotChecked", Message: "the Skiff API has not been checked yet", LastHeartbeatTime: now, LastTransitionTime: now},
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", LastHeartbeatTime: now, LastTransitionTime: now},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", LastHeartbeatTime: now, LastTransitionTime: now},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", LastHeartbeatTime: now, LastTransitionTime: now},
		{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse, Reason: "RouteCreated", LastHeartbeatTime: now, LastTransitionTime: now},
	}
	n.Status.Phase = corev1.NodeRunning
	p.nodeMu.Lock()
	p.node = n.DeepCopy()
	p.nodeMu.Unlock()
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// Run checks the Skiff API, refreshes pod states and removes orphaned
// groups until ctx ends.
func (p *Provider) Run(ctx context.Context) {
	go p.healthLoop(ctx)
	go p.syncLoop(ctx)
}

// ---- node.NodeProvider ----

// Ping reports the process alive; Skiff's health is reported through the
// Ready condition (NotifyNodeStatus) so the node turns NotReady with a
// reason, while its lease keeps saying the virtual node itself runs.
func (p *Provider) Ping(ctx context.Context) error { return ctx.Err() }

// NotifyNodeStatus registers cb for node status changes.
func (p *Provider) NotifyNodeStatus(_ context.Context, cb func(*corev1.Node)) {
	p.nodeMu.Lock()
	p.nodeNotify = cb
	p.nodeMu.Unlock()
}

// Healthy checks the Skiff API once: GET /healthz, then the resource
// group (which also checks the credentials), then that the node's
// principal may do what it needs there (CheckAccess).
func (p *Provider) Healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.cfg.Client.Healthz(ctx); err != nil {
		return err
	}
	_, err := p.cfg.Client.GetResourceGroup(ctx, p.cfg.ResourceGroup)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		// The node's resource group is created on first use.
		_, err = p.cfg.Client.CreateResourceGroup(ctx, p.cfg.ResourceGroup,
			api.ResourceGroup{Location: p.cfg.Region, Tags: map[string]string{TagNode: p.cfg.NodeName}})
		if err == nil {
			p.log.Info("created resource group", "resourceGroup", p.cfg.ResourceGroup)
		}
	}
	if err != nil {
		return err
	}
	return p.CheckAccess(ctx)
}

func (p *Provider) healthLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.HealthInterval)
	defer t.Stop()
	for {
		err := p.Healthy(ctx)
		if ctx.Err() != nil {
			return
		}
		p.setReady(err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Reasons of the node's Ready condition when it is False.
const (
	ReasonSkiffUnavailable     = "SkiffUnavailable"
	ReasonAuthenticationFailed = "SkiffAuthenticationFailed"
	ReasonAuthorizationFailed  = "SkiffAuthorizationFailed"
)

// setReady sets the node's Ready condition from a health check's result;
// a change of state or of reason is logged once, recorded as an event on
// the node and sent to the node controller.
func (p *Provider) setReady(err error) {
	status, reason, msg := corev1.ConditionTrue, "KubeletReady", "the Skiff API at "+p.cfg.Client.Endpoint()+" answers"
	if err != nil {
		status, reason, msg = corev1.ConditionFalse, ReasonSkiffUnavailable, err.Error()
		switch {
		case errdefs.Is(err, errdefs.ErrForbidden):
			reason = ReasonAuthorizationFailed
		case errdefs.Is(err, errdefs.ErrUnauthorized):
			reason = ReasonAuthenticationFailed
		}
	}
	p.nodeMu.Lock()
	defer p.nodeMu.Unlock()
	if p.node == nil {
		return
	}
	var c *corev1.NodeCondition
	for i := range p.node.Status.Conditions {
		if p.node.Status.Conditions[i].Type == corev1.NodeReady {
			c = &p.node.Status.Conditions[i]
		}
	}
	if c == nil {
		return
	}
	changed := p.healthy == nil || c.Status != status || c.Reason != reason
	if !changed && c.Message == msg {
		return
	}
	ok := err == nil
	p.healthy = &ok
	now := metav1.Now()
	c.LastHeartbeatTime = now
	if c.Status != status {
		c.LastTransitionTime = now
	}
	c.Status, c.Reason, c.Message = status, reason, msg
	ref := &corev1.ObjectReference{Kind: "Node", Name: p.cfg.NodeName, UID: types.UID(p.cfg.NodeName)}
	switch {
	case !changed: // the same failure, told differently: no new log line
	case ok:
		p.log.Info("Skiff API answers; node Ready")
		p.event(ref, corev1.EventTypeNormal, "NodeReady", "Node %s is ready: %s", p.cfg.NodeName, msg)
	case reason == ReasonAuthorizationFailed:
		p.log.Warn("the node's principal may not do what it needs; node NotReady until it may", "resourceGroup", p.cfg.ResourceGroup, "err", err)
		p.event(ref, corev1.EventTypeWarning, reason, "%s", msg)
	default:
		p.log.Warn("Skiff API does not answer; node NotReady", "err", err)
		p.event(ref, corev1.EventTypeWarning, reason, "%s", msg)
	}
	if p.nodeNotify != nil {
		p.nodeNotify(p.node.DeepCopy())
	}
}

// ---- pods ----

// NotifyPods registers cb, called with a pod whenever its status changes.
func (p *Provider) NotifyPods(_ context.Context, cb func(*corev1.Pod)) {
	p.mu.Lock()
	p.notify = cb
	p.mu.Unlock()
}

// originalPod is the pod as Kubernetes stores it (before env resolution).
func (p *Provider) originalPod(ns, name string) *corev1.Pod {
	if p.cfg.Pods == nil {
		return nil
	}
	pod, err := p.cfg.Pods.Pods(ns).Get(name)
	if err != nil {
		return nil
	}
	return pod
}

// CreatePod creates the pod's container group. It does not wait for the
// group to run: its status is reported as Skiff sees it. A pod that uses a
// field Skiff cannot run fails at once with an event naming the field.
func (p *Provider) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	k := key(pod.Namespace, pod.Name)
	now := metav1.Now()
	created := now.UTC().Format(time.RFC3339)
	g, err := p.groupFor(pod, created)
	if g == nil || err != nil {
		return err
	}
	// A group left by an earlier pod of the same namespace and name
	// (another UID: that pod is gone) goes first. A group of any other pod,
	// or not the virtual node's, is never deleted or overwritten.
	if old, err := p.getGroup(ctx, g.Name); err == nil && old.Tags[TagUID] != string(pod.UID) {
		if !p.leftoverOf(old, pod) {
			p.refuse(pod, fmt.Sprintf("the container group name %s is taken by a container group that is not this pod's", g.Name))
			return nil
		}
		if err := p.deleteGroup(ctx, g.Name, true, nil); err != nil {
			return err
		}
	}
	if _, _, err := p.cfg.Client.CreateOrUpdateContainerGroup(ctx, p.cfg.ResourceGroup, g.Name, g); err != nil {
		var ae *client.APIError
		if errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest {
			p.refuse(pod, refusal(pod, ae))
			return nil
		}
		return fmt.Errorf("create container group %s: %w", g.Name, err)
	}
	p.mu.Lock()
	t := &tracked{pod: pod.DeepCopy(), group: g.Name, seen: map[string]bool{}, started: now, changing: true}
	t.pod.Status = corev1.PodStatus{Phase: corev1.PodPending, HostIP: p.cfg.InternalIP, StartTime: &now,
		Conditions: conditions(nil, map[corev1.PodConditionType]bool{corev1.PodScheduled: true})}
	p.pods[k] = t
	p.mu.Unlock()
	p.log.Info("created container group", "pod", k, "group", g.Name)
	p.wake()
	return nil
}

// groupFor maps pod to its container group. A pod that uses a field Skiff
// cannot run is refused (failed with an event) and gets no group: nil, nil.
func (p *Provider) groupFor(pod *corev1.Pod, created string) (*api.ContainerGroup, error) {
	g, err := p.m.podToGroup(pod, p.originalPod(pod.Namespace, pod.Name), created)
	var ue *UnsupportedError
	if errors.As(err, &ue) {
		p.refuse(pod, err.Error())
		return nil, nil
	}
	if err != nil {
		return nil, vkerrdefs.AsInvalidInput(err)
	}
	return g, nil
}

// leftoverOf reports whether g is a group this node made for an earlier
// pod of pod's namespace and name that no longer exists (Kubernetes names
// are unique, so another UID under the same name is a pod that is gone;
// the lister, when there is one, must not know it either).
func (p *Provider) leftoverOf(g *api.ContainerGroup, pod *corev1.Pod) bool {
	if g.Tags[TagNode] != p.cfg.NodeName || g.Tags[TagNamespace] != pod.Namespace || g.Tags[TagPod] != pod.Name {
		return false
	}
	if p.cfg.Pods != nil {
		all, err := p.cfg.Pods.List(labels.Everything())
		if err != nil {
			return false
		}
		for _, other := range all {
			if string(other.UID) == g.Tags[TagUID] {
				return false
			}
		}
	}
	return true
}

// refusal is the failure message of a pod whose group Skiff refused with
// a 400. A securityContext the server's policy does not allow is named by
// its field in the pod spec.
func refusal(pod *corev1.Pod, ae *client.APIError) string {
	if field := policyField(pod, ae.Code); field != "" {
		return fmt.Sprintf("%s is not allowed by the Skiff server: %s", field, ae.Message)
	}
	return "Skiff refused the container group: " + ae.Error()
}

// refuse fails a pod the virtual node cannot run.
func (p *Provider) refuse(pod *corev1.Pod, msg string) {
	p.log.Warn("refused pod", "pod", key(pod.Namespace, pod.Name), "reason", msg)
	cp := pod.DeepCopy()
	cp.Status = failedStatus(pod, p.cfg.InternalIP, ReasonUnsupported, msg)
	p.mu.Lock()
	p.pods[key(pod.Namespace, pod.Name)] = &tracked{pod: cp, failed: true, seen: map[string]bool{}}
	cb := p.notify
	p.mu.Unlock()
	if p.cfg.Events != nil {
		p.cfg.Events.Event(pod, corev1.EventTypeWarning, ReasonUnsupported, msg)
	}
	if cb != nil {
		cb(cp.DeepCopy())
	}
}

func (p *Provider) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// UpdatePod takes a pod's updates. Labels, annotations and tolerations
// mean nothing to the group; a changed image (kubectl set image) makes
// Skiff recreate the group with it.
func (p *Provider) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	t := p.pods[key(pod.Namespace, pod.Name)]
	if t == nil {
		p.mu.Unlock()
		return nil
	}
	changed := !t.failed && !t.deleting && !sameImages(&t.pod.Spec, &pod.Spec)
	t.changing = t.changing || changed
	st := t.pod.Status
	t.pod = pod.DeepCopy()
	t.pod.Status = st
	name, started := t.group, t.started
	p.mu.Unlock()
	if !changed {
		return nil
	}
	// A new image (kubectl set image): Skiff recreates the group with it,
	// as a kubelet restarts the changed container.
	g, err := p.groupFor(pod, started.UTC().Format(time.RFC3339))
	if g == nil || err != nil {
		return err
	}
	cur, err := p.getGroup(ctx, name)
	if err != nil {
		return fmt.Errorf("update container group %s: %w", name, err)
	}
	if cur.Tags[TagUID] != string(pod.UID) {
		p.log.Warn("not updating a container group of another pod", "pod", key(pod.Namespace, pod.Name), "group", name, "groupUID", cur.Tags[TagUID])
		return nil
	}
	if _, _, err := p.cfg.Client.CreateOrUpdateContainerGroup(ctx, p.cfg.ResourceGroup, name, g); err != nil {
		return fmt.Errorf("update container group %s: %w", name, err)
	}
	p.log.Info("updated container group with new images", "pod", key(pod.Namespace, pod.Name), "group", name)
	p.wake()
	return nil
}

// sameImages reports whether two pod specs run the same images.
func sameImages(a, b *corev1.PodSpec) bool {
	imgs := func(s *corev1.PodSpec) string {
		var out []string
		for _, c := range s.InitContainers {
			out = append(out, "i:"+c.Name+"="+c.Image)
		}
		for _, c := range s.Containers {
			out = append(out, c.Name+"="+c.Image)
		}
		return strings.Join(out, "\n")
	}
	return imgs(a) == imgs(b)
}

// DeletePod stops and deletes the pod's group, then reports the pod
// terminated. The containers get the pod's grace period (see gracePeriod).
func (p *Provider) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	k := key(pod.Namespace, pod.Name)
	p.mu.Lock()
	t := p.pods[k]
	if t != nil && t.deleting {
		p.mu.Unlock()
		return nil
	}
	if t != nil {
		t.deleting = true
	}
	p.mu.Unlock()
	name := GroupName(pod.Namespace, pod.Name)
	if t != nil && t.group != "" {
		name = t.group
	}
	if t == nil || !t.failed {
		if err := p.deletePodGroup(ctx, pod, name); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			p.mu.Lock()
			if t != nil {
				t.deleting = false
			}
			p.mu.Unlock()
			return err
		}
	}
	p.mu.Lock()
	delete(p.pods, k)
	cb := p.notify
	p.mu.Unlock()
	last := pod.DeepCopy()
	if t != nil {
		last.Status = *t.pod.Status.DeepCopy()
	}
	last.Status = terminatedStatus(last, "Terminated", "the container group was deleted")
	p.log.Info("deleted container group", "pod", k, "group", name)
	if cb != nil {
		cb(last)
	}
	if p.cfg.Kube != nil && pod.DeletionTimestamp != nil {
		// The containers are gone: finish the deletion now, as a kubelet
		// does, instead of letting the pod sit in Terminating for the rest
		// of its grace period.
		go p.forgetPod(pod)
	}
	return nil
}

// deletePodGroup deletes pod's group, named name (or found by its tags),
// with the pod's grace period, only if its UID tag is the pod's: a group
// of another pod is left alone.
func (p *Provider) deletePodGroup(ctx context.Context, pod *corev1.Pod, name string) error {
	g, err := p.getGroup(ctx, name)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		g, err = p.findGroup(ctx, pod.Namespace, pod.Name, string(pod.UID))
	}
	if err != nil {
		return err
	}
	if g.Tags[TagUID] != string(pod.UID) {
		p.log.Warn("not deleting a container group of another pod", "pod", key(pod.Namespace, pod.Name), "group", g.Name, "groupUID", g.Tags[TagUID])
		return nil
	}
	return p.deleteGroup(ctx, g.Name, true, gracePeriod(pod))
}

// findGroup finds the group of pod ns/name with uid among this node's
// groups by its tags, whatever its name (groups named before GroupName
// hashed were "<namespace>-<pod>").
func (p *Provider) findGroup(ctx context.Context, ns, name, uid string) (*api.ContainerGroup, error) {
	groups, err := p.listGroups(ctx)
	if err != nil {
		return nil, err
	}
	for i := range groups {
		g := &groups[i]
		if g.Tags[TagNamespace] == ns && g.Tags[TagPod] == name && g.Tags[TagUID] == uid {
			return p.getGroup(ctx, g.Name)
		}
	}
	return nil, fmt.Errorf("container group of pod %s: %w", key(ns, name), errdefs.ErrNotFound)
}

// forgetPod deletes a pod whose group is gone from Kubernetes, with no
// further grace.
func (p *Provider) forgetPod(pod *corev1.Pod) {
	time.Sleep(500 * time.Millisecond) // let the final status land first
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zero := int64(0)
	uid := pod.UID
	err := p.cfg.Kube.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		p.log.Warn("could not finish the deletion of a pod", "pod", key(pod.Namespace, pod.Name), "err", err)
	}
}

// gracePeriod is the time a deleted pod's containers get between SIGTERM
// and SIGKILL, as the kubelet takes it: the deletion's grace period, else
// the spec's terminationGracePeriodSeconds. Nil leaves it to the server.
func gracePeriod(pod *corev1.Pod) *int64 {
	if pod.DeletionGracePeriodSeconds != nil {
		return pod.DeletionGracePeriodSeconds
	}
	return pod.Spec.TerminationGracePeriodSeconds
}

// deleteGroup deletes a group and, with wait, waits until it is gone. A
// non-nil grace (seconds) is the containers' grace period.
func (p *Provider) deleteGroup(ctx context.Context, name string, wait bool, grace *int64) error {
	var o client.DeleteOptions
	if grace != nil {
		d := time.Duration(*grace) * time.Second
		o.GracePeriod = &d
	}
	poller, err := p.cfg.Client.DeleteContainerGroup(ctx, p.cfg.ResourceGroup, name, o)
	if err != nil || !wait {
		return err
	}
	return poller.Wait(ctx, nil)
}

// GetPod returns the pod if the virtual node runs it.
func (p *Provider) GetPod(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	p.mu.Lock()
	t := p.pods[key(ns, name)]
	p.mu.Unlock()
	if t != nil {
		return t.pod.DeepCopy(), nil
	}
	// Not created by this process: adopt the group of an earlier run.
	orig := p.originalPod(ns, name)
	if orig == nil {
		return nil, vkerrdefs.NotFoundf("pod %s/%s is not on this node", ns, name)
	}
	g, err := p.getGroup(ctx, GroupName(ns, name))
	if errdefs.Is(err, errdefs.ErrNotFound) {
		g, err = p.findGroup(ctx, ns, name, string(orig.UID))
	}
	if err != nil {
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return nil, vkerrdefs.NotFoundf("pod %s/%s is not on this node", ns, name)
		}
		return nil, err
	}
	if g.Tags[TagNamespace] != ns || g.Tags[TagPod] != name || string(orig.UID) != g.Tags[TagUID] {
		return nil, vkerrdefs.NotFoundf("pod %s/%s is not on this node", ns, name)
	}
	t = p.adopt(orig, g)
	return t.pod.DeepCopy(), nil
}

func (p *Provider) adopt(orig *corev1.Pod, g *api.ContainerGroup) *tracked {
	started := parseTime(g.Tags[TagCreated])
	if started.IsZero() {
		started = orig.CreationTimestamp
	}
	t := &tracked{pod: orig.DeepCopy(), group: g.Name, seen: map[string]bool{}, started: started}
	// Events already on the group were mirrored by the previous run.
	for _, ev := range groupEvents(g) {
		t.seen[eventKey(ev)] = true
	}
	t.pod.Status = groupStatus(orig, g, p.cfg.InternalIP, started, &orig.Status)
	p.mu.Lock()
	if cur := p.pods[key(orig.Namespace, orig.Name)]; cur != nil {
		p.mu.Unlock()
		return cur
	}
	p.pods[key(orig.Namespace, orig.Name)] = t
	p.mu.Unlock()
	p.log.Info("adopted container group", "pod", key(orig.Namespace, orig.Name), "group", g.Name)
	return t
}

func (p *Provider) getGroup(ctx context.Context, name string) (*api.ContainerGroup, error) {
	return p.cfg.Client.GetContainerGroup(ctx, p.cfg.ResourceGroup, name)
}

// GetPodStatus returns the pod's last known status.
func (p *Provider) GetPodStatus(ctx context.Context, ns, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, ns, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

// GetPods lists the pods whose groups this node runs, from the groups'
// tags (so a restarted process sees the groups of the previous one). A pod
// whose deletion Kubernetes has confirmed (it is gone from the API server,
// or its name is another pod's now) is not listed, even while its group's
// containers are still stopping (a delete with --force --grace-period 0):
// the node lists only pods that exist. Orphaned groups are Cleanup's.
func (p *Provider) GetPods(ctx context.Context) ([]*corev1.Pod, error) {
	groups, err := p.listGroups(ctx)
	if err != nil {
		return nil, err
	}
	var out []*corev1.Pod
	for _, g := range groups {
		if p.cfg.Pods != nil {
			if orig := p.originalPod(g.Tags[TagNamespace], g.Tags[TagPod]); orig == nil || string(orig.UID) != g.Tags[TagUID] {
				continue
			}
		}
		p.mu.Lock()
		t := p.pods[key(g.Tags[TagNamespace], g.Tags[TagPod])]
		p.mu.Unlock()
		if t != nil {
			out = append(out, t.pod.DeepCopy())
			continue
		}
		out = append(out, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
			Namespace: g.Tags[TagNamespace], Name: g.Tags[TagPod], UID: types.UID(g.Tags[TagUID])}})
	}
	return out, nil
}

// listGroups lists the groups of this node (list views carry no instance view).
func (p *Provider) listGroups(ctx context.Context) ([]api.ContainerGroup, error) {
	all, err := p.cfg.Client.ListContainerGroups(ctx, p.cfg.ResourceGroup)
	if err != nil {
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	var out []api.ContainerGroup
	for _, g := range all {
		if g.Tags[TagNode] == p.cfg.NodeName && g.Tags[TagPod] != "" {
			out = append(out, g)
		}
	}
	return out, nil
}

// ---- status sync ----

// syncLoop reads the groups of every pod each SyncInterval, and those of
// the pods whose groups are changing at once when a create or an update
// wakes it: a rollout of n pods reads each changing group, not all n, on
// every create.
func (p *Provider) syncLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.SyncInterval)
	defer t.Stop()
	lastCleanup := time.Time{}
	all := true
	for {
		p.syncAll(ctx, all)
		if time.Since(lastCleanup) >= p.cfg.CleanupInterval {
			lastCleanup = time.Now()
			if err := p.Cleanup(ctx); err != nil && ctx.Err() == nil {
				p.log.Warn("cleanup of orphaned groups failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			all = true
		case <-p.kick:
			all = false
		}
	}
}

// syncAll syncs every pod's status, or (all false) those whose groups are
// changing.
func (p *Provider) syncAll(ctx context.Context, all bool) {
	p.mu.Lock()
	var list []*tracked
	for _, t := range p.pods {
		if !t.failed && !t.deleting && (all || t.changing) {
			list = append(list, t)
		}
	}
	p.mu.Unlock()
	if len(list) == 0 {
		return
	}
	// One list of the groups with their instance views (Skiff's
	// $expand=instanceView), read after the pods were taken: a pod's group
	// not in it is gone.
	groups, err := p.cfg.Client.ListContainerGroupsWithInstanceView(ctx, p.cfg.ResourceGroup)
	if err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
		return // Skiff unreachable: keep the last status; the node says NotReady
	}
	byName := make(map[string]*api.ContainerGroup, len(groups))
	for i := range groups {
		byName[strings.ToLower(groups[i].Name)] = &groups[i]
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, t := range list {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p.syncOne(ctx, t, byName[strings.ToLower(t.group)])
		}()
	}
	wg.Wait()
}

func groupEvents(g *api.ContainerGroup) []api.Event {
	var out []api.Event
	if g.Properties.InstanceView != nil {
		out = append(out, g.Properties.InstanceView.Events...)
	}
	for _, c := range g.Properties.InitContainers {
		if c.Properties.InstanceView != nil {
			out = append(out, c.Properties.InstanceView.Events...)
		}
	}
	for _, c := range g.Properties.Containers {
		if c.Properties.InstanceView != nil {
			out = append(out, c.Properties.InstanceView.Events...)
		}
	}
	return out
}

func eventKey(e api.Event) string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%d", e.Name, e.Message, e.FirstTimestamp, e.Count)
}

// syncOne makes t's status what its group g (nil: gone) shows.
func (p *Provider) syncOne(ctx context.Context, t *tracked, g *api.ContainerGroup) {
	if g != nil && g.Properties.InstanceView == nil {
		// A server that lists without instance views: read the group.
		got, err := p.getGroup(ctx, t.group)
		switch {
		case errdefs.Is(err, errdefs.ErrNotFound):
			g = nil
		case err != nil:
			return // Skiff unreachable: keep the last status
		default:
			g = got
		}
	}
	p.mu.Lock()
	pod := t.pod.DeepCopy()
	p.mu.Unlock()
	var st corev1.PodStatus
	switch {
	case g == nil:
		// The group went away behind our back: say so, never pretend.
		st = terminatedStatus(pod, ReasonGroupGone, "the container group "+t.group+" no longer exists in Skiff")
		st.Phase = corev1.PodFailed
		st.Reason, st.Message = ReasonGroupGone, "the container group "+t.group+" no longer exists in Skiff"
	default:
		if g.Tags[TagUID] != string(pod.UID) {
			return
		}
		st = groupStatus(pod, g, p.cfg.InternalIP, t.started, &pod.Status)
		p.retryPull(ctx, t, g, &st)
		if p.cfg.Events != nil {
			for _, ev := range groupEvents(g) {
				k := eventKey(ev)
				if t.seen[k] {
					continue
				}
				t.seen[k] = true
				typ := corev1.EventTypeNormal
				if ev.Type == api.EventWarning {
					typ = corev1.EventTypeWarning
				}
				p.cfg.Events.Event(pod, typ, ev.Name, ev.Message)
			}
		}
	}
	if settled(&st) {
		p.mu.Lock()
		t.changing = false
		p.mu.Unlock()
	}
	if statusEqual(&pod.Status, &st) {
		return
	}
	p.mu.Lock()
	if p.pods[key(pod.Namespace, pod.Name)] != t || t.deleting {
		p.mu.Unlock()
		return
	}
	t.pod.Status = st
	out := t.pod.DeepCopy()
	cb := p.notify
	p.mu.Unlock()
	if cb != nil {
		cb(out)
	}
}

// settled reports whether a pod's status says its group has nothing more
// to do for now: Ready, or ended.
func settled(st *corev1.PodStatus) bool {
	if st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed {
		return true
	}
	for _, c := range st.Conditions {
		if c.Type == corev1.PodReady {
			return st.Phase == corev1.PodRunning && c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// statusEqual compares statuses without condition heartbeat noise.
func statusEqual(a, b *corev1.PodStatus) bool {
	return reflect.DeepEqual(a.Phase, b.Phase) && a.PodIP == b.PodIP && a.Message == b.Message &&
		reflect.DeepEqual(a.ContainerStatuses, b.ContainerStatuses) &&
		reflect.DeepEqual(a.InitContainerStatuses, b.InitContainerStatuses) &&
		condStatuses(a) == condStatuses(b)
}

func condStatuses(s *corev1.PodStatus) string {
	out := ""
	for _, c := range s.Conditions {
		out += string(c.Type) + "=" + string(c.Status) + ";"
	}
	return out
}

// Cleanup deletes the groups of this node whose pod no longer exists in
// Kubernetes (or exists with another UID).
func (p *Provider) Cleanup(ctx context.Context) error {
	if p.cfg.Pods == nil {
		return nil
	}
	groups, err := p.listGroups(ctx)
	if err != nil {
		return err
	}
	all, err := p.cfg.Pods.List(labels.Everything())
	if err != nil {
		return err
	}
	uids := map[string]bool{}
	for _, pod := range all {
		uids[string(pod.UID)] = true
	}
	for _, g := range groups {
		if uids[g.Tags[TagUID]] || p.tracks(g.Tags[TagNamespace], g.Tags[TagPod], g.Tags[TagUID]) {
			continue
		}
		// Read it again: by now the name may hold the group of a new pod.
		cur, err := p.getGroup(ctx, g.Name)
		if errdefs.Is(err, errdefs.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if cur.Tags[TagUID] != g.Tags[TagUID] || p.tracks(cur.Tags[TagNamespace], cur.Tags[TagPod], cur.Tags[TagUID]) {
			continue
		}
		p.log.Info("deleting orphaned container group", "group", g.Name, "pod", key(g.Tags[TagNamespace], g.Tags[TagPod]))
		if err := p.deleteGroup(ctx, g.Name, false, nil); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			return err
		}
	}
	return nil
}

// tracks reports whether this process runs pod ns/name with uid (a pod
// the lister may not show yet).
func (p *Provider) tracks(ns, name, uid string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.pods[key(ns, name)]
	return t != nil && t.pod != nil && string(t.pod.UID) == uid
}

// serviceAccountToken requests a bound token for a projected volume.
func (p *Provider) serviceAccountToken(pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection) (string, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		Audiences:         nil,
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := p.cfg.Kube.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("request a token of service account %s/%s: %w", pod.Namespace, sa, err)
	}
	return tr.Status.Token, nil
}

// retryPull restarts a group whose image pull failed once its back-off
// has passed; meanwhile its containers wait with reason ImagePullBackOff.
func (p *Provider) retryPull(ctx context.Context, t *tracked, g *api.ContainerGroup, st *corev1.PodStatus) {
	failed := false
	for _, cs := range append(append([]corev1.ContainerStatus{}, st.InitContainerStatuses...), st.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil && w.Reason == "ErrImagePull" {
			failed = true
		}
	}
	if !failed || !strings.EqualFold(g.Properties.ProvisioningState, "Failed") {
		if !failed {
			t.pullTries = 0
		}
		return
	}
	if t.lastPull.IsZero() {
		t.lastPull = time.Now()
	}
	wait := pullBackOff(t.pullTries + 1)
	if time.Since(t.lastPull) < wait {
		if t.pullTries > 0 {
			for _, list := range [][]corev1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses} {
				for i := range list {
					if w := list[i].State.Waiting; w != nil && w.Reason == "ErrImagePull" {
						w.Reason = "ImagePullBackOff"
						w.Message = fmt.Sprintf("Back-off pulling image %q: %s", list[i].Image, w.Message)
					}
				}
			}
		}
		return
	}
	t.pullTries++
	t.lastPull = time.Now()
	if _, err := p.cfg.Client.RestartContainerGroup(ctx, p.cfg.ResourceGroup, g.Name); err != nil {
		p.log.Warn("retrying a failed image pull", "group", g.Name, "err", err)
		return
	}
	p.log.Info("retrying a failed image pull", "group", g.Name, "try", t.pullTries)
}
