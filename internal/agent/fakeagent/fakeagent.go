// Package fakeagent is a host agent without a runtime, for the tests of
// the control plane (server, controller, CLI): it takes the groups placed
// on its host from the store like the real agent (package agent) and
// writes observed state back, but runs nothing. A fake because those tests
// are about the API and the lifecycle, and their requests name arbitrary
// images on arbitrary registries that a real runtime would pull from the
// network. The real agent is tested with real containers in test/e2e.
//
// A group "runs" at once: it is observed Running with a private IP and
// every container Running and ready, unless Fail says otherwise. Stop,
// start and restart are observed at once; a delete removes the record,
// unless FailDelete says otherwise. Hold keeps the agent from working a
// group at all. Like the real agent, Start works every group the store
// holds once, so what a killed server left half done is finished. Logs
// print one line per container; exec echoes its command.
package fakeagent

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
	"github.com/skiff-sh/skiff/internal/lifecycle"
	"github.com/skiff-sh/skiff/internal/store"
)

// Name is the fake host's name.
const Name = "local"

// Agent is the fake agent.
type Agent struct {
	st store.Store
	// Fail, if set, decides that a group fails to start, and why.
	Fail func(*store.ContainerGroup) *api.ErrorBody
	// FailDelete, if set, decides that removing a Deleting group fails,
	// and why: the record stays Deleting with Observed.DeleteError, as the
	// real agent leaves it, until Kick tries again.
	FailDelete func(*store.ContainerGroup) *api.ErrorBody
	// Hold, if set, keeps the agent from working a group while it returns
	// true: a create never finishes (the group stays Pending or Creating),
	// an action is never observed, a delete never ends. Kick works it again.
	// It sees the record, so a test can hold one kind of work only.
	// Set the hooks before writing the groups they are about: the agent
	// reads them from its own goroutine.
	Hold func(*store.ContainerGroup) bool

	mu     sync.Mutex
	groups map[string]bool // runtime ids "running"
	images []hostapi.Image
}

var _ hostapi.Host = (*Agent)(nil)

// Start starts the fake agent on st until ctx ends. Before it returns, it
// works every group the store holds once, as the real agent's resync does.
func Start(ctx context.Context, st store.Store) *Agent {
	a := &Agent{st: st, groups: map[string]bool{}}
	changes := st.Watch(ctx) // before the listing: nothing written after it is missed
	subs, _ := st.ListSubscriptions(ctx)
	for _, s := range subs {
		cgs, _ := st.ListContainerGroups(ctx, s.ID, "")
		for _, cg := range cgs {
			a.reconcile(ctx, store.GroupChange(cg.Subscription, cg.ResourceGroup, cg.Resource.Name))
		}
	}
	go func() {
		for c := range changes {
			if c.Kind == store.ContainerGroupChange {
				a.reconcile(context.WithoutCancel(ctx), c)
			}
		}
	}()
	return a
}

// Kick works a group again (after Fail or Hold changed their minds).
func (a *Agent) Kick(ctx context.Context, sub, rg, name string) {
	a.reconcile(ctx, store.GroupChange(sub, rg, name))
}

func (a *Agent) reconcile(ctx context.Context, k store.Change) {
	cg, err := a.st.GetContainerGroup(ctx, k.Subscription, k.ResourceGroup, k.Name)
	if err != nil || cg.Host != Name {
		return
	}
	if a.Hold != nil && a.Hold(cg) {
		return
	}
	if lifecycle.Provisioning(cg.Resource.Properties.ProvisioningState) == lifecycle.Deleting {
		if a.FailDelete != nil {
			if e := a.FailDelete(cg); e != nil {
				a.observeDeleteError(ctx, cg, e)
				return
			}
		}
		gen := cg.Generation
		_ = a.st.DeleteContainerGroupIf(ctx, cg.Subscription, cg.ResourceGroup, cg.Resource.Name, func(cur *store.ContainerGroup) error {
			if cur.Generation != gen {
				return errdefs.ErrConflict
			}
			return nil
		})
		a.mu.Lock()
		delete(a.groups, cg.RuntimeID)
		a.mu.Unlock()
		return
	}
	obs := store.Observed{Generation: cg.Generation, ActionSeq: cg.Action.Seq, State: string(lifecycle.GroupRunning),
		IP: "10.0.0.2", PublicIP: "127.0.0.1", UpdatedAt: time.Now().UTC()}
	if cg.Action.Kind == store.ActionStop {
		obs.State = string(lifecycle.GroupStopped)
	}
	if a.Fail != nil {
		if e := a.Fail(cg); e != nil {
			obs.State, obs.Error = string(lifecycle.GroupFailed), e
		}
	}
	running := obs.State == string(lifecycle.GroupRunning)
	for _, c := range cg.Resource.Properties.Containers {
		state := api.ContainerState{State: string(lifecycle.ContainerRunning), DetailStatus: ""}
		if !running {
			state = api.ContainerState{State: string(lifecycle.ContainerTerminated), DetailStatus: "Completed"}
		}
		ready := running
		obs.Containers = append(obs.Containers, store.ObservedContainer{Name: c.Name, View: api.ContainerInstanceView{
			CurrentState: &state, Ready: &ready, Events: []api.Event{}}})
	}
	old := cg.Observed
	if old != nil && old.Generation == obs.Generation && old.ActionSeq == obs.ActionSeq && old.State == obs.State {
		return
	}
	a.mu.Lock()
	a.groups[cg.RuntimeID] = running
	a.mu.Unlock()
	gen := cg.Generation
	_, _ = a.st.UpdateContainerGroup(ctx, cg.Subscription, cg.ResourceGroup, cg.Resource.Name, func(cur *store.ContainerGroup) error {
		if cur.Generation != gen {
			return errdefs.ErrConflict
		}
		cur.Observed = &obs
		return nil
	})
}

// observeDeleteError records a failed removal as the real agent does: the
// last observed state with DeleteError set.
func (a *Agent) observeDeleteError(ctx context.Context, cg *store.ContainerGroup, e *api.ErrorBody) {
	if old := cg.Observed; old != nil && old.DeleteError != nil && old.DeleteError.Code == e.Code && old.DeleteError.Message == e.Message {
		return // written already: writing again would wake every watcher for nothing
	}
	gen := cg.Generation
	_, _ = a.st.UpdateContainerGroup(ctx, cg.Subscription, cg.ResourceGroup, cg.Resource.Name, func(cur *store.ContainerGroup) error {
		if cur.Generation != gen {
			return errdefs.ErrConflict
		}
		obs := store.Observed{}
		if cur.Observed != nil {
			obs = *cur.Observed
		}
		obs.DeleteError, obs.UpdatedAt = e, time.Now().UTC()
		cur.Observed = &obs
		return nil
	})
}

func (a *Agent) running(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	run, ok := a.groups[id]
	switch {
	case !ok:
		return fmt.Errorf("container group %q: %w", id, errdefs.ErrNotFound)
	case !run:
		return fmt.Errorf("container group %q is not running: %w", id, errdefs.ErrConflict)
	}
	return nil
}

// Logs writes one line naming the container.
func (a *Agent) Logs(_ context.Context, id, container string, _ hostapi.LogOptions, w io.Writer) error {
	if err := a.running(id); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "log of %s\n", container)
	return err
}

// Exec echoes the command to stdout and exits 0.
func (a *Agent) Exec(_ context.Context, id, _ string, o hostapi.ExecOptions) (int, error) {
	if err := a.running(id); err != nil {
		return -1, err
	}
	if o.Stdout != nil {
		fmt.Fprintln(o.Stdout, strings.Join(o.Command, " "))
	}
	return 0, nil
}

// Stats reports one idle sample per container.
func (a *Agent) Stats(_ context.Context, id string) (*hostapi.GroupStats, error) {
	if err := a.running(id); err != nil {
		return nil, err
	}
	return &hostapi.GroupStats{ID: id, Containers: []hostapi.ContainerStats{}}, nil
}

// CheckPorts accepts every port.
func (a *Agent) CheckPorts([]api.Port) error { return nil }

// GroupCount counts the groups "running" or stopped here.
func (a *Agent) GroupCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.groups)
}

// Images is an in-memory cache: it holds what AddImage put there, and
// pulls and imports nothing.
func (a *Agent) Images() hostapi.Images { return (*images)(a) }

// AddImage puts an image in the cache.
func (a *Agent) AddImage(img hostapi.Image) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.images = append(a.images, img)
}

type images Agent

func (i *images) List() ([]hostapi.ImageSummary, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	var out []hostapi.ImageSummary
	for _, img := range i.images {
		out = append(out, hostapi.ImageSummary{Name: img.Name, Ref: img.Ref, Digest: img.Digest, Size: img.Size, Private: img.Private})
	}
	return out, nil
}

func (*images) Pull(_ context.Context, ref string, _ []api.ImageRegistryCredential, _ func(hostapi.ImageProgress)) (*hostapi.Image, error) {
	return nil, fmt.Errorf("pull %s: the fake agent pulls nothing: %w", ref, errdefs.ErrUnavailable)
}

func (*images) Import(context.Context, string) ([]hostapi.Image, error) {
	return nil, fmt.Errorf("the fake agent imports nothing: %w", errdefs.ErrInvalidArgument)
}

func (i *images) Get(ref string) (*hostapi.Image, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, img := range i.images {
		if img.Name == ref || img.Ref == ref {
			return &img, nil
		}
	}
	return nil, fmt.Errorf("image %s: %w", ref, errdefs.ErrNotFound)
}

func (i *images) Remove(ref string) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	for n, img := range i.images {
		if img.Name == ref || img.Ref == ref {
			i.images = append(i.images[:n], i.images[n+1:]...)
			return nil
		}
	}
	return fmt.Errorf("image %s: %w", ref, errdefs.ErrNotFound)
}
