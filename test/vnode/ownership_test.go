package vnode

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/testenv"
	"github.com/skiff-sh/skiff/internal/virtualnode"
)

// TestProviderGroupOwnership drives the provider against a real Skiff
// server (no Kubernetes: the pod lister is client-go's own cache, filled
// by the test). Pods whose joined names collide get groups of their own;
// a group whose pod-UID tag is not the pod's is never deleted or
// overwritten, neither by DeletePod, CreatePod nor the orphan clean-up;
// a real orphan is cleaned up; a privileged pod fails at once, naming the
// field.
func TestProviderGroupOwnership(t *testing.T) {
	s := startSkiff(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	image := testenv.Push(t, reg, "vnode/busybox:own", testenv.BusyboxImage(t, testenv.ImageOptions{Cmd: []string{"sleep", "3600"}}))
	c := s.Client
	pods := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	p, err := virtualnode.New(virtualnode.Config{Client: c, ResourceGroup: resourceGroup, NodeName: nodeName, InternalIP: "127.0.0.1",
		Pods: corev1listers.NewPodLister(pods), SyncInterval: 300 * time.Millisecond, HealthInterval: 300 * time.Millisecond,
		CleanupInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	n := &notified{last: map[string]*corev1.Pod{}}
	p.NotifyPods(context.Background(), n.cb)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := p.Healthy(ctx); err != nil { // creates the resource group
		t.Fatal(err)
	}

	mk := func(ns, name, uid string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)},
			Spec: corev1.PodSpec{NodeName: nodeName, RestartPolicy: corev1.RestartPolicyAlways,
				Containers: []corev1.Container{{Name: "app", Image: image, Command: []string{"sleep", "3600"}}}}}
	}
	uidOf := func(name string) (string, int) {
		g, err := s.Client.GetContainerGroup(ctx, resourceGroup, name)
		if err != nil {
			return "", testenv.StatusOf(err)
		}
		return g.Tags[virtualnode.TagUID], 200
	}

	// Pod c in namespace a-b and pod b-c in namespace a: two groups.
	abc, abc2 := mk("a-b", "c", "uid-abc"), mk("a", "b-c", "uid-abc2")
	for _, pod := range []*corev1.Pod{abc, abc2} {
		if err := p.CreatePod(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	ga, gb := virtualnode.GroupName("a-b", "c"), virtualnode.GroupName("a", "b-c")
	if ga == gb {
		t.Fatalf("both pods map to %s", ga)
	}
	if uid, code := uidOf(ga); code != 200 || uid != "uid-abc" {
		t.Errorf("group of a-b/c: %d uid %q", code, uid)
	}
	if uid, code := uidOf(gb); code != 200 || uid != "uid-abc2" {
		t.Errorf("group of a/b-c: %d uid %q", code, uid)
	}
	if err := p.DeletePod(ctx, abc); err != nil {
		t.Fatal(err)
	}
	if _, code := uidOf(ga); code != 404 {
		t.Errorf("group of a-b/c after its DeletePod: %d", code)
	}
	if uid, code := uidOf(gb); code != 200 || uid != "uid-abc2" {
		t.Errorf("deleting a-b/c touched a/b-c's group: %d uid %q", code, uid)
	}

	// A group under a pod's name whose UID tag is another, live pod's.
	victim := virtualnode.GroupName("default", "victim")
	foreign := &api.ContainerGroup{Location: "local",
		Tags: map[string]string{virtualnode.TagNode: nodeName, virtualnode.TagNamespace: "default", virtualnode.TagPod: "victim", virtualnode.TagUID: "uid-live"}}
	foreign.Properties.OSType = "Linux"
	foreign.Properties.Containers = []api.Container{{Name: "app", Properties: api.ContainerProperties{Image: image, Command: []string{"sleep", "3600"},
		Resources: api.ResourceRequirements{Requests: api.ResourceRequests{CPU: 0.5, MemoryInGB: 0.5}}}}}
	paths, err := c.In(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(ctx, http.MethodPut, paths.ContainerGroup(resourceGroup, victim), nil, foreign); err != nil {
		t.Fatal(err)
	}
	if err := pods.Add(mk("default", "victim", "uid-live")); err != nil {
		t.Fatal(err)
	}
	if err := p.DeletePod(ctx, mk("default", "victim", "uid-stale")); err != nil {
		t.Fatal(err)
	}
	if uid, code := uidOf(victim); code != 200 || uid != "uid-live" {
		t.Errorf("DeletePod of another UID removed or changed the group: %d uid %q", code, uid)
	}
	impostor := mk("default", "victim", "uid-impostor")
	if err := p.CreatePod(ctx, impostor); err != nil {
		t.Fatal(err)
	}
	if uid, code := uidOf(victim); code != 200 || uid != "uid-live" {
		t.Errorf("CreatePod of another UID replaced the group: %d uid %q", code, uid)
	}
	waitPod(t, n, "victim", 5*time.Second, func(p *corev1.Pod) bool {
		return p.UID == "uid-impostor" && p.Status.Phase == corev1.PodFailed && strings.Contains(p.Status.Message, victim)
	})

	// An orphan (its pod is gone) is cleaned up; the live pod's group and a
	// pod this provider runs but the lister does not show yet are kept.
	orphan := virtualnode.GroupName("default", "gone")
	foreign.Tags = map[string]string{virtualnode.TagNode: nodeName, virtualnode.TagNamespace: "default", virtualnode.TagPod: "gone", virtualnode.TagUID: "uid-gone"}
	if _, err := c.Call(ctx, http.MethodPut, paths.ContainerGroup(resourceGroup, orphan), nil, foreign); err != nil {
		t.Fatal(err)
	}
	if err := p.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, code := uidOf(orphan)
		if code == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the orphaned group was not removed: %d", code)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if uid, code := uidOf(victim); code != 200 || uid != "uid-live" {
		t.Errorf("Cleanup removed the live pod's group: %d %q", code, uid)
	}
	if uid, code := uidOf(gb); code != 200 || uid != "uid-abc2" {
		t.Errorf("Cleanup removed the group of a pod the provider runs: %d %q", code, uid)
	}

	// A privileged pod: Skiff's policy refuses it, the pod fails at once.
	yes := true
	priv := mk("default", "priv", "uid-priv")
	priv.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &yes}
	if err := p.CreatePod(ctx, priv); err != nil {
		t.Fatal(err)
	}
	waitPod(t, n, "priv", 5*time.Second, func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodFailed && p.Status.Reason == virtualnode.ReasonUnsupported &&
			strings.Contains(p.Status.Message, "spec.containers[0].securityContext.privileged")
	})
	if _, code := uidOf(virtualnode.GroupName("default", "priv")); code != 404 {
		t.Errorf("a group exists for the refused privileged pod: %d", code)
	}
}
