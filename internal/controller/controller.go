// Package controller reconciles the desired container groups in the store
// with the host runtime, and reports the runtime's progress back as
// provisioning states and long-running operation results.
//
// Provisioning states of a container group (ARM's, as ACI uses them), and
// who moves them:
//
//	           server (CAS)      controller        controller
//	PUT ──────────▶ Pending ──────▶ Creating ──────▶ Succeeded   (group Running, or ran to completion)
//	                   │               │
//	                   └───────────────┴───────────▶ Failed      (image, volume or network failure; reason in error)
//
//	DELETE ───────▶ Deleting ─────▶ runtime group removed ─────▶ (record removed)
//	   server (CAS), from any state      controller                 controller (CAS: only the same Deleting record)
//
// A resource group:
//
//	DELETE ───────▶ Deleting ─────▶ each group Deleting, then removed ─────▶ (resource group removed)
//	   server                          controller                               controller
//
// The rules that keep a PUT racing a DELETE (or a crash) from leaving half a
// group behind:
//   - The server writes a group only with the store's compare-and-swap
//     (CreateOrUpdateContainerGroup): a PUT on a Deleting group is refused
//     (409 ContainerGroupTransitioning), and so is any PUT into a Deleting
//     resource group (409 ResourceGroupBeingDeleted).
//   - Only the controller removes records, and only a Deleting one, after
//     the runtime removed its containers.
//   - Everything the controller does to one group runs under that group's
//     lock, and Apply and Delete re-read the record under it: a create that
//     finds the record Deleting (or gone) creates nothing, and a delete that
//     finds it recreated leaves it alone.
//   - Runtime ids derive from the ARM identity (RuntimeID), so a retried or
//     resumed create never makes a second group.
//
// Resume, at start, finishes what a killed server left: it removes runtime
// groups without a record, creates accepted groups the runtime lacks,
// resumes every Deleting group and resource group and ends the operations
// that waited on them.
package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/store"
)

// Provisioning states.
const (
	Pending   = "Pending"
	Creating  = "Creating"
	Succeeded = "Succeeded"
	Failed    = "Failed"
	Deleting  = "Deleting"
)

// Runtime is what the controller needs of the host runtime.
type Runtime interface {
	Create(ctx context.Context, id string, spec runtime.GroupSpec) error
	Status(id string) (*runtime.GroupStatus, error)
	Stop(ctx context.Context, id string) error
	Start(ctx context.Context, id string) error
	Restart(ctx context.Context, id string) error
	// Delete stops and removes a group; grace < 0 is the host's default.
	Delete(ctx context.Context, id string, grace time.Duration) error
	List() []string
}

// Controller drives the runtime from the store.
type Controller struct {
	store store.Store
	rt    Runtime
	log   *slog.Logger

	mu sync.Mutex
	// byRuntimeID maps runtime ids to store keys.
	byRuntimeID map[string]key
	// waiting holds operations that end when their group settles.
	waiting map[string][]string // runtime id → operation ids
	// locks serialise operations on one group.
	locks map[string]*sync.Mutex
	// opMu serialises the ends of operations.
	opMu sync.Mutex
}

type key struct{ sub, rg, name string }

// RuntimeID is the host runtime's id of a container group: stable, derived
// from its ARM identity, so a retried or recovered create never makes a
// second group.
func RuntimeID(sub, rg, name string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(sub + "/" + rg + "/" + name)))
	return "cg-" + hex.EncodeToString(sum[:10])
}

// New returns a controller. Call Resume once the runtime is open.
func New(st store.Store, rt Runtime, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Controller{store: st, rt: rt, log: log, byRuntimeID: map[string]key{}, waiting: map[string][]string{}, locks: map[string]*sync.Mutex{}}
}

func (c *Controller) lock(id string) func() {
	c.mu.Lock()
	l, ok := c.locks[id]
	if !ok {
		l = &sync.Mutex{}
		c.locks[id] = l
	}
	c.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Resume reconciles after a start: every stored group exists in the
// runtime, runtime groups without a record are removed, deletes of groups
// and resource groups that were in flight are finished, and unfinished
// operations are picked up again.
func (c *Controller) Resume(ctx context.Context) error {
	ops, err := c.store.ListOperations(ctx, api.OperationInProgress)
	if err != nil {
		return err
	}
	deleteOps := map[string][]string{} // runtime id → delete operations
	rgDeleteOps := map[rgKey][]string{}
	var others []store.Operation
	for _, op := range ops {
		switch op.Kind {
		case KindResourceGroupDelete:
			sub, rg, ok := parseResourceGroupID(op.ResourceID)
			if !ok {
				c.EndOperation(ctx, op.ID, &api.ErrorBody{Code: "InvalidOperation", Message: "unknown resource " + op.ResourceID})
				continue
			}
			k := rgKey{strings.ToLower(sub), strings.ToLower(rg)}
			rgDeleteOps[k] = append(rgDeleteOps[k], op.ID)
		case KindDelete:
			if sub, rg, name, err := api.ParseResourceID(op.ResourceID); err == nil {
				id := RuntimeID(sub, rg, name)
				deleteOps[id] = append(deleteOps[id], op.ID)
			}
		default:
			others = append(others, op)
		}
	}
	subs, err := c.store.ListSubscriptions(ctx)
	if err != nil {
		return err
	}
	type groupDelete struct {
		cg  store.ContainerGroup
		ops []string
	}
	type rgDelete struct {
		sub, name string
		ops       []string
	}
	var groupDeletes []groupDelete
	var rgDeletes []rgDelete
	known := map[string]bool{}
	settling := map[string]bool{} // groups neither Deleting nor in a Deleting resource group
	for _, s := range subs {
		rgs, err := c.store.ListResourceGroups(ctx, s.ID)
		if err != nil {
			return err
		}
		deletingRG := map[string]bool{}
		for _, rg := range rgs {
			k := rgKey{strings.ToLower(s.ID), strings.ToLower(rg.Name)}
			if rg.ProvisioningState == store.ResourceGroupDeleting || len(rgDeleteOps[k]) > 0 {
				deletingRG[k.rg] = true
				rgDeletes = append(rgDeletes, rgDelete{s.ID, rg.Name, rgDeleteOps[k]})
				delete(rgDeleteOps, k)
			}
		}
		cgs, err := c.store.ListContainerGroups(ctx, s.ID, "")
		if err != nil {
			return err
		}
		for _, cg := range cgs {
			known[cg.RuntimeID] = true
			c.track(cg.RuntimeID, key{cg.Subscription, cg.ResourceGroup, cg.Resource.Name})
			if cg.Resource.Properties.ProvisioningState == Deleting {
				groupDeletes = append(groupDeletes, groupDelete{cg, deleteOps[cg.RuntimeID]})
				delete(deleteOps, cg.RuntimeID)
				continue
			}
			if deletingRG[strings.ToLower(cg.ResourceGroup)] {
				continue // the resource group's delete takes it
			}
			settling[cg.RuntimeID] = true
			if _, err := c.rt.Status(cg.RuntimeID); errdefs.Is(err, errdefs.ErrNotFound) && cg.Resource.Properties.ProvisioningState != Failed {
				c.log.Info("creating accepted group missing from the runtime", "group", cg.Resource.Name)
				if err := c.createInRuntime(ctx, &cg); err != nil {
					c.fail(ctx, cg.RuntimeID, err)
				}
			}
		}
	}
	for _, id := range c.rt.List() {
		if !known[id] {
			c.log.Info("removing runtime group without a record", "id", id)
			if err := c.rt.Delete(ctx, id, -1); err != nil {
				c.log.Warn("remove orphan group", "id", id, "err", err)
			}
		}
	}
	// Deletes whose group is gone, or was created again after it, are done;
	// so are resource group deletes whose resource group is gone.
	for _, ids := range deleteOps {
		for _, op := range ids {
			c.EndOperation(ctx, op, nil)
		}
	}
	for _, ids := range rgDeleteOps {
		for _, op := range ids {
			c.EndOperation(ctx, op, nil)
		}
	}
	// Creates, updates, starts and restarts end when their group settles;
	// those a delete overtook are canceled.
	for _, op := range others {
		sub, rg, name, err := api.ParseResourceID(op.ResourceID)
		if err != nil {
			continue
		}
		id := RuntimeID(sub, rg, name)
		if !settling[id] {
			c.cancelOperation(ctx, op.ID, name)
			continue
		}
		c.wait(id, op.ID)
	}
	// Changes the runtime made while no controller listened (before this
	// start, or lost with a killed server) are caught up here.
	for id := range settling {
		c.OnChange(id)
	}
	bg := context.WithoutCancel(ctx)
	for _, d := range groupDeletes {
		c.log.Info("resuming the delete of a container group", "group", d.cg.Resource.Name, "operations", len(d.ops))
		go c.deleteGroup(bg, key{d.cg.Subscription, d.cg.ResourceGroup, d.cg.Resource.Name}, d.ops, -1)
	}
	for _, d := range rgDeletes {
		c.log.Info("resuming the delete of a resource group", "resourceGroup", d.name, "operations", len(d.ops))
		go c.DeleteResourceGroup(bg, d.sub, d.name, d.ops...)
	}
	return nil
}

type rgKey struct{ sub, rg string }

// Operation kinds (store.Operation.Kind).
const (
	KindCreate              = "create"
	KindUpdate              = "update"
	KindDelete              = "delete"
	KindStart               = "start"
	KindRestart             = "restart"
	KindResourceGroupDelete = "resourceGroup-delete"
)

// ResourceGroupID is the ARM id of a resource group.
func ResourceGroupID(sub, rg string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + rg
}

func parseResourceGroupID(id string) (sub, rg string, ok bool) {
	parts := strings.Split(strings.Trim(id, "/"), "/")
	if len(parts) != 4 || !strings.EqualFold(parts[0], "subscriptions") || !strings.EqualFold(parts[2], "resourceGroups") {
		return "", "", false
	}
	return parts[1], parts[3], true
}

func (c *Controller) track(id string, k key) {
	c.mu.Lock()
	c.byRuntimeID[id] = k
	c.mu.Unlock()
}

func (c *Controller) wait(id, opID string) {
	if opID == "" {
		return
	}
	c.mu.Lock()
	c.waiting[id] = append(c.waiting[id], opID)
	c.mu.Unlock()
}

// Apply makes the runtime run the group as it is stored now (a create, or
// an update of a group that must be recreated), and ends opID when it
// settles. cg names the group; its spec is read again under the group's
// lock, so a later PUT's spec wins, and a group a DELETE overtook (Deleting
// or already gone) is not created: opID ends Canceled.
func (c *Controller) Apply(ctx context.Context, cg *store.ContainerGroup, opID string, recreate bool) error {
	defer c.lock(cg.RuntimeID)()
	cur, err := c.store.GetContainerGroup(ctx, cg.Subscription, cg.ResourceGroup, cg.Resource.Name)
	if errdefs.Is(err, errdefs.ErrNotFound) || (err == nil && cur.Resource.Properties.ProvisioningState == Deleting) {
		c.cancelOperation(ctx, opID, cg.Resource.Name)
		return nil
	}
	if err != nil {
		c.EndOperation(ctx, opID, &api.ErrorBody{Code: "ContainerGroupDeploymentFailed", Message: err.Error()})
		return err
	}
	c.track(cur.RuntimeID, key{cur.Subscription, cur.ResourceGroup, cur.Resource.Name})
	c.wait(cur.RuntimeID, opID)
	if recreate {
		if err := c.rt.Delete(ctx, cur.RuntimeID, -1); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			c.fail(ctx, cur.RuntimeID, err)
			return err
		}
	}
	if err := c.createInRuntime(ctx, cur); err != nil {
		c.fail(ctx, cur.RuntimeID, err)
		return err
	}
	return nil
}

func (c *Controller) createInRuntime(ctx context.Context, cg *store.ContainerGroup) error {
	spec := runtime.GroupSpec{Name: cg.Resource.Name, Properties: cg.Resource.Properties, Tenant: cg.Subscription}
	spec.Properties.InstanceView = nil
	if err := c.rt.Create(ctx, cg.RuntimeID, spec); err != nil && !errdefs.Is(err, errdefs.ErrAlreadyExists) {
		return err
	}
	c.setProvisioning(ctx, cg.RuntimeID, Creating, nil)
	c.OnChange(cg.RuntimeID)
	return nil
}

// OnChange is the runtime's change callback: it moves the provisioning
// state and ends waiting operations when a group settles.
func (c *Controller) OnChange(id string) {
	st, err := c.rt.Status(id)
	if err != nil {
		return
	}
	ctx := context.Background()
	switch {
	case st.Error != nil:
		c.setProvisioning(ctx, id, Failed, &api.ErrorBody{Code: st.Error.Code, Message: st.Error.Message})
	case st.State == api.GroupRunning || st.State == api.GroupSucceeded || st.State == api.GroupFailed || st.State == api.GroupStopped:
		c.setProvisioning(ctx, id, Succeeded, nil)
	default:
		return
	}
}

// setProvisioning writes the state, and on a final state ends the
// operations waiting on the group. It never moves a Deleting group: that
// one is the delete's.
func (c *Controller) setProvisioning(ctx context.Context, id, state string, e *api.ErrorBody) {
	c.mu.Lock()
	k, ok := c.byRuntimeID[id]
	c.mu.Unlock()
	if !ok {
		return
	}
	_, err := c.store.UpdateContainerGroup(ctx, k.sub, k.rg, k.name, func(cg *store.ContainerGroup) error {
		cur := cg.Resource.Properties.ProvisioningState
		if cur == Deleting {
			return errDeleting
		}
		if cur == state && (e == nil) == (cg.Error == nil) {
			return errUnchanged
		}
		cg.Resource.Properties.ProvisioningState = state
		cg.Error = e
		cg.UpdatedAt = time.Now().UTC()
		return nil
	})
	if errors.Is(err, errDeleting) || errdefs.Is(err, errdefs.ErrNotFound) {
		return
	}
	if err != nil && !errors.Is(err, errUnchanged) {
		c.log.Error("update provisioning state", "group", k.name, "err", err)
	}
	if state == Succeeded || state == Failed {
		c.mu.Lock()
		ops := c.waiting[id]
		delete(c.waiting, id)
		c.mu.Unlock()
		for _, op := range ops {
			c.EndOperation(ctx, op, e)
		}
	}
}

var (
	errUnchanged = errors.New("unchanged")
	errDeleting  = errors.New("being deleted")
)

func (c *Controller) fail(ctx context.Context, id string, err error) {
	code := errdefs.CodeOf(err)
	if code == "" {
		code = "ContainerGroupDeploymentFailed"
	}
	c.setProvisioning(ctx, id, Failed, &api.ErrorBody{Code: code, Message: err.Error()})
}

// EndOperation ends an InProgress operation: Succeeded when e is nil,
// Failed with e otherwise. An operation that has ended stays as it ended.
func (c *Controller) EndOperation(ctx context.Context, opID string, e *api.ErrorBody) {
	status := api.OperationSucceeded
	if e != nil {
		status = api.OperationFailed
	}
	c.endOperation(ctx, opID, status, e)
}

// cancelOperation ends a create or update that a delete overtook.
func (c *Controller) cancelOperation(ctx context.Context, opID, group string) {
	c.endOperation(ctx, opID, api.OperationCanceled, &api.ErrorBody{Code: "OperationCanceled",
		Message: fmt.Sprintf("The operation was canceled: container group '%s' is being deleted.", group)})
}

func (c *Controller) endOperation(ctx context.Context, opID, status string, e *api.ErrorBody) {
	if opID == "" {
		return
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	op, err := c.store.GetOperation(ctx, opID)
	if err != nil || op.Status != api.OperationInProgress {
		return
	}
	op.Status, op.Error, op.EndTime = status, e, time.Now().UTC()
	if err := c.store.PutOperation(ctx, *op); err != nil {
		c.log.Error("end operation", "op", opID, "err", err)
	}
}

// MarkDeleting records that a container group is being deleted: from now
// on PUTs are refused and the controller's Delete owns it.
func MarkDeleting(ctx context.Context, st store.Store, sub, rg, name string) (*store.ContainerGroup, error) {
	return st.UpdateContainerGroup(ctx, sub, rg, name, func(c *store.ContainerGroup) error {
		c.Resource.Properties.ProvisioningState = Deleting
		c.UpdatedAt = time.Now().UTC()
		return nil
	})
}

// Delete finishes the delete of a group the server marked Deleting: the
// runtime removes its containers, then the record goes, and opID ends. Its
// containers get grace between SIGTERM and SIGKILL (< 0: the host's
// default).
func (c *Controller) Delete(ctx context.Context, cg *store.ContainerGroup, opID string, grace time.Duration) {
	var ops []string
	if opID != "" {
		ops = append(ops, opID)
	}
	c.deleteGroup(ctx, key{cg.Subscription, cg.ResourceGroup, cg.Resource.Name}, ops, grace)
}

// deleteGroup removes a Deleting group under its lock and ends ops with
// the result, which it returns; the operations still waiting for the group
// to settle are canceled.
func (c *Controller) deleteGroup(ctx context.Context, k key, ops []string, grace time.Duration) *api.ErrorBody {
	id := RuntimeID(k.sub, k.rg, k.name)
	defer c.lock(id)()
	var body *api.ErrorBody
	cur, err := c.store.GetContainerGroup(ctx, k.sub, k.rg, k.name)
	switch {
	case errdefs.Is(err, errdefs.ErrNotFound):
		// Deleted already. Under the lock no create can be half-way, so a
		// runtime group of this id has no record: remove it.
		if err := c.rt.Delete(ctx, id, grace); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			body = &api.ErrorBody{Code: "ContainerGroupDeletionFailed", Message: err.Error()}
		}
	case err != nil:
		body = &api.ErrorBody{Code: "ContainerGroupDeletionFailed", Message: err.Error()}
	case cur.Resource.Properties.ProvisioningState != Deleting:
		// Deleted and created again since this delete was asked: done, and
		// the new group is left alone.
	default:
		if err := c.rt.Delete(ctx, id, grace); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			// The record stays Deleting; the next start tries again.
			c.log.Error("delete group", "group", k.name, "err", err)
			body = &api.ErrorBody{Code: "ContainerGroupDeletionFailed", Message: err.Error()}
			break
		}
		gen := cur.Generation
		err := c.store.DeleteContainerGroupIf(ctx, k.sub, k.rg, k.name, func(cg *store.ContainerGroup) error {
			if cg.Resource.Properties.ProvisioningState != Deleting || cg.Generation != gen {
				return fmt.Errorf("container group %q changed while it was deleted: %w", k.name, errdefs.ErrConflict)
			}
			return nil
		})
		if err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			body = &api.ErrorBody{Code: "ContainerGroupDeletionFailed", Message: err.Error()}
		}
	}
	if body == nil && (cur == nil || cur.Resource.Properties.ProvisioningState == Deleting) {
		c.mu.Lock()
		delete(c.byRuntimeID, id)
		waiting := c.waiting[id]
		delete(c.waiting, id)
		c.mu.Unlock()
		for _, op := range waiting {
			c.cancelOperation(ctx, op, k.name)
		}
	}
	for _, op := range ops {
		c.EndOperation(ctx, op, body)
	}
	return body
}

// MarkResourceGroupDeleting records that a resource group is being
// deleted: from now on it takes no PUT of a container group.
func MarkResourceGroupDeleting(ctx context.Context, st store.Store, sub, name string) (*store.ResourceGroup, error) {
	return st.UpdateResourceGroup(ctx, sub, name, func(rg *store.ResourceGroup) error {
		rg.ProvisioningState = store.ResourceGroupDeleting
		return nil
	})
}

// DeleteResourceGroup deletes a resource group the server marked Deleting:
// each of its container groups (Deleting, then removed from the runtime and
// the store), then the resource group itself; then it ends opIDs.
func (c *Controller) DeleteResourceGroup(ctx context.Context, sub, name string, opIDs ...string) {
	body := c.deleteResourceGroup(ctx, sub, name)
	if body != nil {
		c.log.Error("delete resource group", "resourceGroup", name, "err", body.Message)
	}
	for _, op := range opIDs {
		c.EndOperation(ctx, op, body)
	}
}

func (c *Controller) deleteResourceGroup(ctx context.Context, sub, name string) *api.ErrorBody {
	failed := func(err error) *api.ErrorBody {
		return &api.ErrorBody{Code: "ResourceGroupDeletionFailed", Message: err.Error()}
	}
	// Marked already by the server; again for a delete resumed from an
	// operation alone.
	if _, err := MarkResourceGroupDeleting(ctx, c.store, sub, name); errdefs.Is(err, errdefs.ErrNotFound) {
		return nil
	} else if err != nil {
		return failed(err)
	}
	cgs, err := c.store.ListContainerGroups(ctx, sub, name)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil
	} else if err != nil {
		return failed(err)
	}
	var wg sync.WaitGroup
	errs := make([]*api.ErrorBody, len(cgs))
	for i, cg := range cgs {
		if _, err := MarkDeleting(ctx, c.store, cg.Subscription, cg.ResourceGroup, cg.Resource.Name); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			errs[i] = failed(err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.deleteGroup(ctx, key{cg.Subscription, cg.ResourceGroup, cg.Resource.Name}, nil, -1)
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return &api.ErrorBody{Code: "ResourceGroupDeletionFailed", Message: "a container group could not be deleted: " + e.Message}
		}
	}
	if err := c.store.DeleteResourceGroup(ctx, sub, name); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
		return failed(err)
	}
	return nil
}

// Stop stops a group (synchronously).
func (c *Controller) Stop(ctx context.Context, cg *store.ContainerGroup) error {
	defer c.lock(cg.RuntimeID)()
	return c.rt.Stop(ctx, cg.RuntimeID)
}

// Start starts a stopped group; opID ends when it runs.
func (c *Controller) Start(ctx context.Context, cg *store.ContainerGroup, opID string) error {
	return c.restartish(ctx, cg, opID, c.rt.Start)
}

// Restart restarts a group in place; opID ends when it runs again.
func (c *Controller) Restart(ctx context.Context, cg *store.ContainerGroup, opID string) error {
	return c.restartish(ctx, cg, opID, c.rt.Restart)
}

func (c *Controller) restartish(ctx context.Context, cg *store.ContainerGroup, opID string, do func(context.Context, string) error) error {
	defer c.lock(cg.RuntimeID)()
	if err := do(ctx, cg.RuntimeID); err != nil {
		c.EndOperation(ctx, opID, &api.ErrorBody{Code: "ContainerGroupOperationFailed", Message: err.Error()})
		return err
	}
	// The group passes through Pending; end the operation once it settles.
	go func() {
		deadline := time.Now().Add(30 * time.Minute)
		for time.Now().Before(deadline) {
			st, err := c.rt.Status(cg.RuntimeID)
			if err != nil {
				c.EndOperation(context.Background(), opID, &api.ErrorBody{Code: "ResourceNotFound", Message: err.Error()})
				return
			}
			if st.Error != nil {
				c.EndOperation(context.Background(), opID, &api.ErrorBody{Code: st.Error.Code, Message: st.Error.Message})
				return
			}
			if st.State != api.GroupPending {
				c.EndOperation(context.Background(), opID, nil)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.EndOperation(context.Background(), opID, &api.ErrorBody{Code: "OperationTimedOut", Message: fmt.Sprintf("group did not start within 30 minutes")})
	}()
	return nil
}
