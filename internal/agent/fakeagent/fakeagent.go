// Package fakeagent is a host agent without a runtime, for the tests of
// the control plane (server, controller, CLI): it takes the groups placed
// on its host from the store like the real agent (package agent) and
// writes observed state back, but runs nothing. A fake because those tests
// are about the API and the lifecycle, and their requests name arbitrary
// images on arbitrary registries that a real runtime would pull from the
// network. The real agent is tested with real containers in test/e2e.
//
// A group "runs" at once: it is observed Running with a private IP, every
// container Running and ready after the Pulling, Pulled and Started
// events the runtime writes, unless Fail says otherwise. Stop, start and
// restart are observed at once; a delete removes the record, unless
// FailDelete says otherwise. Hold keeps the agent from working a group at
// all. Like the real agent, Start works every group the store holds once,
// so what a killed server left half done is finished.
//
// The streams behave like a container's, with nothing inside: a
// container's log is what Print wrote to it, and a follow ends with the
// run; exec echoes its command, reads its terminal until ^D and exits with
// ExitCode's code. The image cache holds what AddImage, Pull and Import put
// there: a pull fetches nothing, an import reads only a docker archive's
// manifest.json.
package fakeagent

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
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

// The addresses every group is observed with.
const (
	GroupIP  = "10.0.0.2"
	PublicIP = "127.0.0.1"
)

// Agent is the fake agent. Set the hooks before writing the groups (or
// starting the sessions) they are about: the agent reads them from its
// own goroutines.
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
	Hold func(*store.ContainerGroup) bool
	// ExitCode, if set, is the exit code of an exec of command (else 0).
	ExitCode func(command []string) int
	// Clock, if set, is the time the agent stamps on what it observes
	// (else the time now), so that a test can expect its events.
	Clock func() time.Time

	mu     sync.Mutex
	groups map[string]*run // by runtime id: the current run of each group worked
	images []hostapi.Image
	logs   map[string]string // by runtime id and container: what Print wrote
	// printed is closed, and replaced, whenever Print writes.
	printed chan struct{}
	// removedShares are RemoveShare's calls.
	removedShares []string
}

// A run is a group's life from one observation to the next.
type run struct {
	running bool
	// ended is closed when a running group's run ends (stopped, restarted,
	// recreated, failed or deleted).
	ended chan struct{}
}

var _ hostapi.Host = (*Agent)(nil)

// Start starts the fake agent on st until ctx ends. Before it returns, it
// works every group the store holds once, as the real agent's resync does.
func Start(ctx context.Context, st store.Store) *Agent {
	a := &Agent{st: st, groups: map[string]*run{}, logs: map[string]string{}, printed: make(chan struct{})}
	changes := st.Watch(ctx) // before the listing: nothing written after it is missed
	cgs, _ := store.AllContainerGroups(ctx, st)
	for _, cg := range cgs {
		a.reconcile(ctx, store.GroupChange(cg.Subscription, cg.ResourceGroup, cg.Resource.Name))
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

func (a *Agent) now() time.Time {
	if a.Clock != nil {
		return a.Clock().UTC()
	}
	return time.Now().UTC()
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
		a.forget(cg.RuntimeID)
		return
	}
	now := a.now()
	obs := store.Observed{Generation: cg.Generation, ActionSeq: cg.Action.Seq, State: string(lifecycle.GroupRunning),
		IP: GroupIP, PublicIP: PublicIP, UpdatedAt: now}
	if cg.Action.Kind == store.ActionStop {
		obs.State = string(lifecycle.GroupStopped)
	}
	if a.Fail != nil {
		if e := a.Fail(cg); e != nil {
			obs.State, obs.Error = string(lifecycle.GroupFailed), e
		}
	}
	running := obs.State == string(lifecycle.GroupRunning)
	ts := now.Format(time.RFC3339)
	for _, c := range cg.Resource.Properties.Containers {
		view := api.ContainerInstanceView{Events: []api.Event{}}
		if running {
			// The events and the state the runtime writes for a container it started.
			event := func(name, msg string) api.Event {
				return api.Event{Count: 1, FirstTimestamp: ts, LastTimestamp: ts, Name: name, Message: msg, Type: api.EventNormal}
			}
			view.CurrentState = &api.ContainerState{State: string(lifecycle.ContainerRunning), StartTime: now.Format(time.RFC3339Nano)}
			view.Events = []api.Event{
				event("Pulling", fmt.Sprintf("pulling image %q", c.Properties.Image)),
				event("Pulled", fmt.Sprintf("Successfully pulled image %q", c.Properties.Image)),
				event("Started", "Started container"),
			}
		} else {
			view.CurrentState = &api.ContainerState{State: string(lifecycle.ContainerTerminated), DetailStatus: "Completed"}
		}
		view.Ready = &running
		obs.Containers = append(obs.Containers, store.ObservedContainer{Name: c.Name, View: view})
	}
	old := cg.Observed
	if old != nil && old.Generation == obs.Generation && old.ActionSeq == obs.ActionSeq && old.State == obs.State {
		a.mu.Lock()
		if a.groups[cg.RuntimeID] == nil { // observed before this agent started
			a.groups[cg.RuntimeID] = newRun(old.State == string(lifecycle.GroupRunning))
		}
		a.mu.Unlock()
		return
	}
	a.mu.Lock()
	if r := a.groups[cg.RuntimeID]; r != nil {
		r.end()
	}
	a.groups[cg.RuntimeID] = newRun(running)
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

func newRun(running bool) *run {
	r := &run{running: running}
	if running {
		r.ended = make(chan struct{})
	}
	return r
}

func (r *run) end() {
	if r.ended != nil {
		close(r.ended)
		r.ended = nil
	}
}

// forget drops a removed group's run and logs.
func (a *Agent) forget(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r := a.groups[id]; r != nil {
		r.end()
	}
	delete(a.groups, id)
	for k := range a.logs {
		if strings.HasPrefix(k, id+"/") {
			delete(a.logs, k)
		}
	}
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
		obs.DeleteError, obs.UpdatedAt = e, a.now()
		cur.Observed = &obs
		return nil
	})
}

func (a *Agent) running(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.groups[id]
	switch {
	case !ok:
		return fmt.Errorf("container group %q: %w", id, errdefs.ErrNotFound)
	case !r.running:
		return fmt.Errorf("container group %q is not running: %w", id, errdefs.ErrConflict)
	}
	return nil
}

// Print appends text to the log of a container of group sub/rg/name, as
// if the container had written it; a following reader gets it at once.
func (a *Agent) Print(sub, rg, name, container, text string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.logs[store.RuntimeID(sub, rg, name)+"/"+container] += text
	close(a.printed)
	a.printed = make(chan struct{})
}

// Logs writes what Print wrote to the container (the last o.Tail lines);
// with o.Follow it goes on writing what is printed until the group's run
// ends or ctx ends. A group that ran and stopped still has its log.
func (a *Agent) Logs(ctx context.Context, id, container string, o hostapi.LogOptions, w io.Writer) error {
	key := id + "/" + container
	a.mu.Lock()
	r, ok := a.groups[id]
	if !ok {
		a.mu.Unlock()
		return fmt.Errorf("container group %q: %w", id, errdefs.ErrNotFound)
	}
	text, ended, printed := a.logs[key], r.ended, a.printed
	a.mu.Unlock()
	if _, err := io.WriteString(w, tail(text, o.Tail)); err != nil || !o.Follow || ended == nil {
		return err
	}
	for sent := len(text); ; {
		var last bool
		select {
		case <-ctx.Done():
			return nil
		case <-ended:
			last = true
		case <-printed:
		}
		a.mu.Lock()
		text, printed = a.logs[key], a.printed
		a.mu.Unlock()
		if len(text) > sent {
			if _, err := io.WriteString(w, text[sent:]); err != nil {
				return err
			}
			sent = len(text)
		}
		if last {
			return nil
		}
	}
}

// tail returns the last n lines of s (all of s when n < 0).
func tail(s string, n int) string {
	if n < 0 {
		return s
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines[max(0, len(lines)-n):], "")
}

// eot is ^D, which a terminal reads as the end of input.
const eot = 0x04

// Exec writes the command line to stdout, reads stdin until ^D or its end
// (as a shell on a terminal would), and exits with ExitCode's code.
func (a *Agent) Exec(ctx context.Context, id, _ string, o hostapi.ExecOptions) (int, error) {
	if err := a.running(id); err != nil {
		return -1, err
	}
	if o.Stdout != nil {
		fmt.Fprintln(o.Stdout, strings.Join(o.Command, " "))
	}
	if o.Stdin != nil {
		read := make(chan struct{})
		go func() {
			defer close(read)
			buf := make([]byte, 4096)
			for {
				n, err := o.Stdin.Read(buf)
				if bytes.IndexByte(buf[:n], eot) >= 0 || err != nil {
					return
				}
			}
		}()
		select {
		case <-read:
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}
	if a.ExitCode != nil {
		return a.ExitCode(o.Command), nil
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

// RemoveShare notes the share's removal (RemovedShares): the fake host
// keeps no data.
func (a *Agent) RemoveShare(_ context.Context, account, dir string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.removedShares = append(a.removedShares, account+"/"+dir)
	return nil
}

// RemovedShares lists the shares RemoveShare was asked to remove, as
// "account/dir", in order.
func (a *Agent) RemovedShares() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.removedShares...)
}

// GroupCount counts the groups "running" or stopped here.
func (a *Agent) GroupCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.groups)
}

// Images is an in-memory cache of what AddImage, Pull and Import put there.
func (a *Agent) Images() hostapi.Images { return (*images)(a) }

// AddImage puts an image in the cache.
func (a *Agent) AddImage(img hostapi.Image) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for n, old := range a.images {
		if old.Name == img.Name {
			a.images[n] = img
			return
		}
	}
	a.images = append(a.images, img)
}

// Digest is the digest the fake gives the image pulled as ref: the
// sha256 of the reference, since it pulls no manifest.
func Digest(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return "sha256:" + hex.EncodeToString(sum[:])
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

// Pull caches ref with the digest Digest gives it, fetching nothing.
func (i *images) Pull(_ context.Context, ref string, _ []api.ImageRegistryCredential, _ func(hostapi.ImageProgress)) (*hostapi.Image, error) {
	img := hostapi.Image{Name: ref, Ref: ref, Digest: Digest(ref)}
	(*Agent)(i).AddImage(img)
	return &img, nil
}

// Import caches the tags of a docker archive (the RepoTags of its
// manifest.json), each with the digest of its config blob; it reads no
// layer.
func (i *images) Import(_ context.Context, tarPath string) ([]hostapi.Image, error) {
	f, err := os.Open(tarPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("import: not a tarball: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		if files[path.Clean(h.Name)], err = io.ReadAll(tr); err != nil {
			return nil, fmt.Errorf("import: %v: %w", err, errdefs.ErrInvalidArgument)
		}
	}
	var manifest []struct {
		Config   string
		RepoTags []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		return nil, fmt.Errorf("import: not a docker archive (manifest.json): %v: %w", err, errdefs.ErrInvalidArgument)
	}
	var out []hostapi.Image
	for _, m := range manifest {
		sum := sha256.Sum256(files[path.Clean(m.Config)])
		for _, tag := range m.RepoTags {
			img := hostapi.Image{Name: tag, Ref: tag, Digest: "sha256:" + hex.EncodeToString(sum[:])}
			(*Agent)(i).AddImage(img)
			out = append(out, img)
		}
	}
	return out, nil
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
