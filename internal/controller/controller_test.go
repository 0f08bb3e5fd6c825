package controller_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/agent/fakeagent"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/lifecycle"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
)

const sub = "00000000-0000-0000-0000-0000000000c1"

// env is a real bbolt store in a temporary directory, with a subscription
// and a resource group "rg". The controller and the fake agent are started
// on it by start, so that a test can write state with nothing running, as
// a killed server leaves it.
type env struct {
	t      *testing.T
	path   string
	sealer *seal.Sealer
	st     store.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	sealer, err := seal.LoadOrCreateKey(filepath.Join(dir, seal.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, path: filepath.Join(dir, "skiff.db"), sealer: sealer}
	e.reopen()
	if err := e.st.PutSubscription(t.Context(), store.Subscription{ID: sub, DisplayName: "test", State: "Enabled"}); err != nil {
		t.Fatal(err)
	}
	e.resourceGroup("rg")
	return e
}

// reopen closes the store file and opens it again, as a restarted server
// does: what is in the file is all that is left.
func (e *env) reopen() {
	e.t.Helper()
	if e.st != nil {
		if err := e.st.Close(); err != nil {
			e.t.Fatal(err)
		}
	}
	st, err := store.OpenBolt(e.path, store.BoltOptions{Sealer: e.sealer})
	if err != nil {
		e.t.Fatal(err)
	}
	e.st = st
	e.t.Cleanup(func() { st.Close() })
}

func (e *env) resourceGroup(name string) {
	e.t.Helper()
	if _, err := e.st.PutResourceGroup(e.t.Context(), store.ResourceGroup{Subscription: sub, Name: name, Location: "local"}); err != nil {
		e.t.Fatal(err)
	}
}

// start starts the controller and the fake agent until ctx ends, and
// returns the agent (set its hooks before writing a group they are about).
func (e *env) start(ctx context.Context) *fakeagent.Agent {
	e.t.Helper()
	a := fakeagent.Start(ctx, e.st)
	e.startController(ctx)
	return a
}

func (e *env) startController(ctx context.Context) {
	e.t.Helper()
	if err := controller.New(controller.Config{Store: e.st, Host: fakeagent.Name}).Start(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// put writes a group's desired state as the server's PUT does (Pending,
// keeping what the controller and the agent wrote) and begins its create
// or update operation, waiting for the generation it wrote.
func (e *env) put(rg, name, image string) (*store.ContainerGroup, *store.Operation) {
	e.t.Helper()
	return e.putWith(rg, name, image, nil)
}

// putWith is put of a spec that edit changed first.
func (e *env) putWith(rg, name, image string, edit func(*api.ContainerGroup)) (*store.ContainerGroup, *store.Operation) {
	e.t.Helper()
	ctx := e.t.Context()
	spec := api.ContainerGroup{Name: name, Location: "local", Properties: api.ContainerGroupProperties{OSType: "Linux",
		Containers: []api.Container{{Name: "app", Properties: api.ContainerProperties{Image: image}}}}}
	if edit != nil {
		edit(&spec)
	}
	cg, created, err := e.st.CreateOrUpdateContainerGroup(ctx, sub, rg, name, func(old *store.ContainerGroup) (*store.ContainerGroup, error) {
		now := time.Now().UTC() // as the server's PUT (the store keeps the first CreatedAt)
		rec := &store.ContainerGroup{Subscription: sub, ResourceGroup: rg, RuntimeID: store.RuntimeID(sub, rg, name), Resource: spec,
			CreatedAt: now, UpdatedAt: now}
		rec.Resource.Properties.ProvisioningState = string(lifecycle.Pending)
		from := lifecycle.None
		if old != nil {
			from = lifecycle.Provisioning(old.Resource.Properties.ProvisioningState)
			rec.Host, rec.Action, rec.Observed = old.Host, old.Action, old.Observed
		}
		return rec, lifecycle.Transition(from, lifecycle.Pending, lifecycle.Server)
	})
	if err != nil {
		e.t.Fatalf("put %s/%s: %v", rg, name, err)
	}
	kind := controller.KindUpdate
	if created {
		kind = controller.KindCreate
	}
	return cg, e.begin(kind, api.ResourceID(sub, rg, name), cg.Generation)
}

// remove asks for a group's delete as the server's DELETE does, and
// begins its operation.
func (e *env) remove(rg, name string) *store.Operation {
	e.t.Helper()
	cg, err := controller.MarkDeleting(e.t.Context(), e.st, sub, rg, name, nil)
	if err != nil {
		e.t.Fatalf("delete %s/%s: %v", rg, name, err)
	}
	return e.begin(controller.KindDelete, api.ResourceID(sub, rg, name), cg.Generation)
}

// removeResourceGroup asks for a resource group's delete as the server's
// DELETE does, and begins its operation.
func (e *env) removeResourceGroup(rg string) *store.Operation {
	e.t.Helper()
	if _, err := controller.MarkResourceGroupDeleting(e.t.Context(), e.st, sub, rg); err != nil {
		e.t.Fatalf("delete resource group %s: %v", rg, err)
	}
	return e.begin(controller.KindResourceGroupDelete, controller.ResourceGroupID(sub, rg), 0)
}

// act asks for a start or restart as the server's POST does, and begins
// its operation.
func (e *env) act(rg, name, action, kind string) *store.Operation {
	e.t.Helper()
	seq, err := controller.RequestAction(e.t.Context(), e.st, sub, rg, name, action)
	if err != nil {
		e.t.Fatalf("%s %s/%s: %v", action, rg, name, err)
	}
	return e.begin(kind, api.ResourceID(sub, rg, name), seq)
}

func (e *env) begin(kind, resourceID string, target int64) *store.Operation {
	e.t.Helper()
	op, err := controller.Begin(e.t.Context(), e.st, sub, "local", kind, resourceID, target)
	if err != nil {
		e.t.Fatal(err)
	}
	return op
}

// group is the stored group, or nil once it is gone.
func (e *env) group(rg, name string) *store.ContainerGroup {
	e.t.Helper()
	cg, err := e.st.GetContainerGroup(e.t.Context(), sub, rg, name)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return cg
}

func (e *env) op(id string) *store.Operation {
	e.t.Helper()
	op, err := e.st.GetOperation(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return op
}

// waitFor polls the store (the test may; the code under test may not)
// until cond holds, for up to 10 s; cond says what it still waits for.
func (e *env) waitFor(cond func() (ok bool, waiting string)) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, waiting := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("after 10 s, still waiting for %s", waiting)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ended waits for the operation to end and returns it.
func (e *env) ended(op *store.Operation) *store.Operation {
	e.t.Helper()
	var cur *store.Operation
	e.waitFor(func() (bool, string) {
		cur = e.op(op.ID)
		return cur.Status != api.OperationInProgress, fmt.Sprintf("the %s operation on %s to end", op.Kind, op.ResourceID)
	})
	if cur.EndTime.IsZero() {
		e.t.Errorf("%s operation ended %s without an end time", op.Kind, cur.Status)
	}
	return cur
}

// wantEnded waits for the operation to end with status and, for a
// failure, the error code.
func (e *env) wantEnded(op *store.Operation, status, code string) *store.Operation {
	e.t.Helper()
	cur := e.ended(op)
	got := ""
	if cur.Error != nil {
		got = cur.Error.Code
	}
	if cur.Status != status || got != code {
		e.t.Errorf("%s operation on %s: %s %+v, want %s with code %q", op.Kind, op.ResourceID, cur.Status, cur.Error, status, code)
	}
	return cur
}

func (e *env) waitGone(rg, name string) {
	e.t.Helper()
	e.waitFor(func() (bool, string) { return e.group(rg, name) == nil, rg + "/" + name + " to be removed" })
}

func provisioning(cg *store.ContainerGroup) lifecycle.Provisioning {
	return lifecycle.Provisioning(cg.Resource.Properties.ProvisioningState)
}

// holdCreates keeps the agent from working the named groups, except their
// deletes, until the returned switch is off.
func holdCreates(a *fakeagent.Agent, names ...string) *atomic.Bool {
	on := &atomic.Bool{}
	on.Store(true)
	a.Hold = func(cg *store.ContainerGroup) bool {
		return on.Load() && slices.Contains(names, cg.Resource.Name) && provisioning(cg) != lifecycle.Deleting
	}
	return on
}

// failDeletes makes the agent's removals fail, as a busy mount makes the
// runtime's, until the returned switch is off.
func failDeletes(a *fakeagent.Agent) *atomic.Bool {
	failing := &atomic.Bool{}
	failing.Store(true)
	a.FailDelete = func(*store.ContainerGroup) *api.ErrorBody {
		if failing.Load() {
			return &api.ErrorBody{Code: "ContainerGroupDeletionFailed", Message: "device or resource busy"}
		}
		return nil
	}
	return failing
}

// A PUT goes Pending → Creating (placed on the host) → Succeeded once the
// agent runs it, and its operation ends Succeeded.
func TestCreate(t *testing.T) {
	e := newEnv(t)
	a := e.start(t.Context())
	held := holdCreates(a, "web")

	cg, op := e.put("rg", "web", "nginx")
	if provisioning(cg) != lifecycle.Pending || cg.Host != "" {
		t.Fatalf("written: %s on %q, want Pending and not placed", provisioning(cg), cg.Host)
	}
	e.waitFor(func() (bool, string) {
		cg = e.group("rg", "web")
		return provisioning(cg) == lifecycle.Creating && cg.Host == fakeagent.Name, "web placed and Creating"
	})
	if got := e.op(op.ID).Status; got != api.OperationInProgress {
		t.Fatalf("create operation %s while the agent has not run the group", got)
	}

	held.Store(false)
	a.Kick(t.Context(), sub, "rg", "web")
	e.wantEnded(op, api.OperationSucceeded, "")
	cg = e.group("rg", "web")
	if provisioning(cg) != lifecycle.Succeeded || cg.Host != fakeagent.Name || cg.Error != nil {
		t.Errorf("after the create: %s on %q (error %+v), want Succeeded on %q", provisioning(cg), cg.Host, cg.Error, fakeagent.Name)
	}
	if cg.Observed == nil || cg.Observed.State != string(lifecycle.GroupRunning) || cg.Observed.Generation != cg.Generation {
		t.Errorf("observed %+v, want Running at generation %d", cg.Observed, cg.Generation)
	}
}

// A group that fails to start is Failed with the error's code, and so is
// its operation; a PUT that fixes the containers makes it Succeeded.
func TestCreateFails(t *testing.T) {
	e := newEnv(t)
	a := e.start(t.Context())
	a.Fail = func(cg *store.ContainerGroup) *api.ErrorBody {
		if cg.Resource.Properties.Containers[0].Properties.Image == "no-such-image" {
			return &api.ErrorBody{Code: "InaccessibleImage", Message: "The image 'no-such-image' is not accessible."}
		}
		return nil
	}

	_, op := e.put("rg", "web", "no-such-image")
	e.wantEnded(op, api.OperationFailed, "InaccessibleImage")
	cg := e.group("rg", "web")
	if provisioning(cg) != lifecycle.Failed || cg.Error == nil || cg.Error.Code != "InaccessibleImage" {
		t.Fatalf("failed group: %s %+v, want Failed with code InaccessibleImage", provisioning(cg), cg.Error)
	}

	cg, op = e.put("rg", "web", "nginx")
	if provisioning(cg) != lifecycle.Pending {
		t.Errorf("a PUT with other containers wrote %s, want Pending", provisioning(cg))
	}
	e.wantEnded(op, api.OperationSucceeded, "")
	cg = e.group("rg", "web")
	if provisioning(cg) != lifecycle.Succeeded || cg.Error != nil {
		t.Errorf("fixed group: %s %+v, want Succeeded and no error", provisioning(cg), cg.Error)
	}
}

// A delete removes the record and its operation ends Succeeded; a create
// still under way ends Canceled.
func TestDelete(t *testing.T) {
	e := newEnv(t)
	a := e.start(t.Context())
	holdCreates(a, "slow")

	_, op := e.put("rg", "web", "nginx")
	e.wantEnded(op, api.OperationSucceeded, "")
	del := e.remove("rg", "web")
	e.wantEnded(del, api.OperationSucceeded, "")
	if cg := e.group("rg", "web"); cg != nil {
		t.Errorf("deleted group still stored: %s", provisioning(cg))
	}

	_, create := e.put("rg", "slow", "nginx")
	e.waitFor(func() (bool, string) {
		return provisioning(e.group("rg", "slow")) == lifecycle.Creating, "slow to be Creating"
	})
	del = e.remove("rg", "slow")
	e.wantEnded(del, api.OperationSucceeded, "")
	e.wantEnded(create, api.OperationCanceled, "OperationCanceled")
	if cg := e.group("rg", "slow"); cg != nil {
		t.Errorf("deleted group still stored: %s", provisioning(cg))
	}
}

// A delete the host fails: the operation fails with the host's error, the
// group stays Deleting and refuses a stop, start or restart (409); the
// host's next try removes it.
func TestDeleteFails(t *testing.T) {
	e := newEnv(t)
	a := e.start(t.Context())
	failing := failDeletes(a)

	_, op := e.put("rg", "web", "nginx")
	e.wantEnded(op, api.OperationSucceeded, "")
	del := e.remove("rg", "web")
	e.wantEnded(del, api.OperationFailed, "ContainerGroupDeletionFailed")
	cg := e.group("rg", "web")
	if cg == nil || provisioning(cg) != lifecycle.Deleting {
		t.Fatalf("group whose delete failed: %v, want still stored and Deleting", cg)
	}

	for _, action := range []string{store.ActionStart, store.ActionRestart} {
		_, err := controller.RequestAction(t.Context(), e.st, sub, "rg", "web", action)
		if !errdefs.Is(err, errdefs.ErrConflict) || errdefs.CodeOf(err) != "ContainerGroupTransitioning" {
			t.Errorf("%s of a Deleting group: %v (code %q), want 409 ContainerGroupTransitioning", action, err, errdefs.CodeOf(err))
		}
	}
	if err := controller.Stop(t.Context(), e.st, sub, "rg", "web"); !errdefs.Is(err, errdefs.ErrConflict) || errdefs.CodeOf(err) != "ContainerGroupTransitioning" {
		t.Errorf("stop of a Deleting group: %v (code %q), want 409 ContainerGroupTransitioning", err, errdefs.CodeOf(err))
	}

	failing.Store(false)
	a.Kick(t.Context(), sub, "rg", "web")
	e.waitGone("rg", "web")
}

// A group deleted before the controller placed it (no agent holds it) is
// removed by the controller, with no agent running at all.
func TestDeleteNeverPlaced(t *testing.T) {
	e := newEnv(t)
	_, create := e.put("rg", "orphan", "nginx")
	del := e.remove("rg", "orphan")

	e.startController(t.Context())
	e.wantEnded(del, api.OperationSucceeded, "")
	e.wantEnded(create, api.OperationCanceled, "OperationCanceled")
	if cg := e.group("rg", "orphan"); cg != nil {
		t.Errorf("never-placed group still stored: %s on %q", provisioning(cg), cg.Host)
	}
}

// A resource group's delete removes each of its groups (running or still
// creating), then the resource group, and its operation ends Succeeded; a
// create under way ends Canceled; other resource groups are left alone.
func TestResourceGroupDelete(t *testing.T) {
	e := newEnv(t)
	e.resourceGroup("doomed")
	a := e.start(t.Context())
	holdCreates(a, "slow")

	for _, name := range []string{"a", "b"} {
		_, op := e.put("doomed", name, "nginx")
		e.wantEnded(op, api.OperationSucceeded, "")
	}
	_, slow := e.put("doomed", "slow", "nginx")
	_, keep := e.put("rg", "keep", "nginx")
	e.wantEnded(keep, api.OperationSucceeded, "")

	op := e.removeResourceGroup("doomed")
	e.wantEnded(op, api.OperationSucceeded, "")
	if _, err := e.st.GetResourceGroup(t.Context(), sub, "doomed"); !errdefs.Is(err, errdefs.ErrNotFound) {
		t.Errorf("deleted resource group: %v, want not found", err)
	}
	if cgs, _ := e.st.ListContainerGroups(t.Context(), sub, "doomed"); len(cgs) != 0 {
		t.Errorf("deleted resource group still holds %d groups", len(cgs))
	}
	e.wantEnded(slow, api.OperationCanceled, "OperationCanceled")
	if cg := e.group("rg", "keep"); cg == nil || provisioning(cg) != lifecycle.Succeeded {
		t.Errorf("a group of another resource group: %v, want left Succeeded", cg)
	}
}

// A resource group whose group the host cannot remove: the operation fails
// with ResourceGroupDeletionFailed, the resource group stays Deleting and
// takes no new group (409 ResourceGroupBeingDeleted); the host's next try
// finishes the delete.
func TestResourceGroupDeleteFails(t *testing.T) {
	e := newEnv(t)
	e.resourceGroup("doomed")
	a := e.start(t.Context())
	failing := failDeletes(a)
	_, op := e.put("doomed", "web", "nginx")
	e.wantEnded(op, api.OperationSucceeded, "")

	op = e.removeResourceGroup("doomed")
	e.wantEnded(op, api.OperationFailed, "ResourceGroupDeletionFailed")
	rg, err := e.st.GetResourceGroup(t.Context(), sub, "doomed")
	if err != nil || rg.ProvisioningState != store.ResourceGroupDeleting {
		t.Fatalf("resource group whose delete failed: %+v %v, want still Deleting", rg, err)
	}
	_, _, err = e.st.CreateOrUpdateContainerGroup(t.Context(), sub, "doomed", "late", func(*store.ContainerGroup) (*store.ContainerGroup, error) {
		return &store.ContainerGroup{Subscription: sub, ResourceGroup: "doomed", Resource: api.ContainerGroup{Name: "late"}}, nil
	})
	if !errdefs.Is(err, errdefs.ErrConflict) || errdefs.CodeOf(err) != "ResourceGroupBeingDeleted" {
		t.Errorf("a new group in a Deleting resource group: %v (code %q), want 409 ResourceGroupBeingDeleted", err, errdefs.CodeOf(err))
	}

	failing.Store(false)
	a.Kick(t.Context(), sub, "doomed", "web")
	e.waitFor(func() (bool, string) {
		_, err := e.st.GetResourceGroup(t.Context(), sub, "doomed")
		return errdefs.Is(err, errdefs.ErrNotFound), "the resource group to be removed"
	})
}

// Stop returns once the agent stopped the group; a start or restart
// operation ends Succeeded once the agent carried it out, and not before.
func TestActions(t *testing.T) {
	e := newEnv(t)
	var holdActions atomic.Bool
	a := e.start(t.Context())
	a.Hold = func(cg *store.ContainerGroup) bool {
		return holdActions.Load() && cg.Observed != nil && cg.Action.Seq > cg.Observed.ActionSeq
	}
	_, op := e.put("rg", "web", "nginx")
	e.wantEnded(op, api.OperationSucceeded, "")

	if err := controller.Stop(t.Context(), e.st, sub, "rg", "web"); err != nil {
		t.Fatal(err)
	}
	// Synchronous, as ACI's stop: no wait here.
	if cg := e.group("rg", "web"); cg.Observed == nil || cg.Observed.ActionSeq != 1 || cg.Observed.State != string(lifecycle.GroupStopped) {
		t.Fatalf("right after the stop: observed %+v, want Stopped at action 1", cg.Observed)
	}

	holdActions.Store(true)
	start := e.act("rg", "web", store.ActionStart, controller.KindStart)
	if start.Target != 2 {
		t.Errorf("start operation waits for action %d, want 2", start.Target)
	}
	if got := e.op(start.ID).Status; got != api.OperationInProgress {
		t.Fatalf("start operation %s before the agent started the group", got)
	}
	holdActions.Store(false)
	a.Kick(t.Context(), sub, "rg", "web")
	e.wantEnded(start, api.OperationSucceeded, "")
	if cg := e.group("rg", "web"); cg.Observed.State != string(lifecycle.GroupRunning) {
		t.Errorf("after the start: %s, want Running", cg.Observed.State)
	}

	restart := e.act("rg", "web", store.ActionRestart, controller.KindRestart)
	e.wantEnded(restart, api.OperationSucceeded, "")
	if cg := e.group("rg", "web"); cg.Observed.ActionSeq != 3 || cg.Observed.State != string(lifecycle.GroupRunning) {
		t.Errorf("after the restart: observed %s at action %d, want Running at 3", cg.Observed.State, cg.Observed.ActionSeq)
	}
}

// TestResume: a server killed with every kind of operation under way,
// with groups and a resource group being deleted, leaves them in its store
// file; a fresh controller and agent on that file finish them all.
func TestResume(t *testing.T) {
	e := newEnv(t)
	e.resourceGroup("doomed")
	e.resourceGroup("doomed-quietly")
	e.resourceGroup("gone")

	// The first life: groups running, one stopped.
	life, kill := context.WithCancel(t.Context())
	e.start(life)
	for _, g := range [][2]string{{"rg", "updated"}, {"rg", "deleted"}, {"rg", "deleting"}, {"rg", "started"}, {"rg", "restarted"},
		{"rg", "settled"}, {"rg", "removed"}, {"rg", "recreated"}, {"doomed", "d1"}, {"doomed", "d2"}, {"doomed-quietly", "q1"}} {
		_, op := e.put(g[0], g[1], "nginx")
		e.wantEnded(op, api.OperationSucceeded, "")
	}
	if err := controller.Stop(t.Context(), e.st, sub, "rg", "started"); err != nil {
		t.Fatal(err)
	}
	kill()
	e.reopen() // nothing of the first life runs on this store

	// What the server accepted in its last moments, none of it acted on.
	ops := map[string]*store.Operation{}
	_, ops["create"] = e.put("rg", "created", "nginx")
	_, ops["update"] = e.put("rg", "updated", "nginx:2")
	ops["delete"] = e.remove("rg", "deleted")
	_, ops["create never placed"] = e.put("rg", "never-placed", "nginx")
	ops["delete never placed"] = e.remove("rg", "never-placed")
	ops["start"] = e.act("rg", "started", store.ActionStart, controller.KindStart)
	ops["restart"] = e.act("rg", "restarted", store.ActionRestart, controller.KindRestart)
	if _, err := controller.MarkDeleting(t.Context(), e.st, sub, "rg", "deleting", nil); err != nil {
		t.Fatal(err) // killed before the operation was written
	}
	ops["resource group delete"] = e.removeResourceGroup("doomed")
	if _, err := controller.MarkDeleting(t.Context(), e.st, sub, "doomed", "d1", nil); err != nil {
		t.Fatal(err) // the controller had begun on its groups
	}
	if _, err := controller.MarkResourceGroupDeleting(t.Context(), e.st, sub, "doomed-quietly"); err != nil {
		t.Fatal(err) // killed before the operation was written
	}
	// Killed after the work was done, before its operation ended.
	ops["create, done"] = e.begin(controller.KindCreate, api.ResourceID(sub, "rg", "settled"), e.group("rg", "settled").Generation)
	ops["delete, done"] = e.remove("rg", "removed")
	if err := e.st.DeleteContainerGroup(t.Context(), sub, "rg", "removed"); err != nil {
		t.Fatal(err)
	}
	// An update, then a delete the agent carried out, then a create of
	// the same name (generation 1 again): the update's version is gone.
	_, ops["update, deleted, created again"] = e.put("rg", "recreated", "nginx:2")
	if err := e.st.DeleteContainerGroup(t.Context(), sub, "rg", "recreated"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond) // a later CreatedAt than the update's operation
	_, ops["create again"] = e.put("rg", "recreated", "nginx")
	ops["resource group delete, done"] = e.removeResourceGroup("gone")
	if err := e.st.DeleteResourceGroup(t.Context(), sub, "gone"); err != nil {
		t.Fatal(err)
	}

	e.reopen() // the restart
	e.start(t.Context())
	e.waitFor(func() (bool, string) {
		left, err := e.st.ListOperations(t.Context(), api.OperationInProgress)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) > 0 {
			return false, fmt.Sprintf("%d operations still InProgress, the first a %s on %s", len(left), left[0].Kind, left[0].ResourceID)
		}
		return true, ""
	})
	for what, op := range ops {
		want, code := api.OperationSucceeded, ""
		if what == "create never placed" || what == "update, deleted, created again" {
			want, code = api.OperationCanceled, "OperationCanceled"
		}
		if got := e.op(op.ID); got.Status != want || (got.Error == nil) != (code == "") || (got.Error != nil && got.Error.Code != code) {
			t.Errorf("%s after the restart: %s %+v, want %s %q", what, got.Status, got.Error, want, code)
		}
	}

	for _, name := range []string{"created", "updated", "started", "restarted"} {
		cg := e.group("rg", name)
		if cg == nil || provisioning(cg) != lifecycle.Succeeded || cg.Observed == nil || cg.Observed.State != string(lifecycle.GroupRunning) {
			t.Errorf("%s after the restart: %+v, want Succeeded and Running", name, cg)
		}
	}
	if cg := e.group("rg", "updated"); cg.Generation != 2 || cg.Observed.Generation != 2 {
		t.Errorf("updated runs generation %d of %d, want 2", cg.Observed.Generation, cg.Generation)
	}
	if cg := e.group("rg", "restarted"); cg.Observed.ActionSeq != 1 {
		t.Errorf("restarted: action %d observed, want 1", cg.Observed.ActionSeq)
	}
	e.waitGone("rg", "deleting") // no operation to wait on
	for _, name := range []string{"deleted", "never-placed"} {
		if cg := e.group("rg", name); cg != nil {
			t.Errorf("%s still stored after the restart: %s", name, provisioning(cg))
		}
	}
	for _, rg := range []string{"doomed", "doomed-quietly"} {
		e.waitFor(func() (bool, string) {
			_, err := e.st.GetResourceGroup(t.Context(), sub, rg)
			return errdefs.Is(err, errdefs.ErrNotFound), "resource group " + rg + " to be removed"
		})
	}
}
