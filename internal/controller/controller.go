// Package controller reconciles the desired container groups in the store
// with the host runtime, and reports the runtime's progress back as
// provisioning states and long-running operation results.
//
// Provisioning states of a container group (ARM's, as ACI uses them):
//
//	PUT ──▶ Pending ──▶ Creating ──▶ Succeeded   (group Running, or ran to completion)
//	           │            │
//	           └────────────┴──────▶ Failed      (image, volume or network failure; reason in error)
//	DELETE ──▶ Deleting ──▶ (gone)
//
// Pending is written by the server with the accepted spec; the controller
// moves it on. A restart of the server resumes every group whose state is
// not final, and creates in the runtime any accepted group it lacks.
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
// runtime, runtime groups without a record are removed, and unfinished
// operations are picked up again.
func (c *Controller) Resume(ctx context.Context) error {
	subs, err := c.store.ListSubscriptions(ctx)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, s := range subs {
		cgs, err := c.store.ListContainerGroups(ctx, s.ID, "")
		if err != nil {
			return err
		}
		for _, cg := range cgs {
			known[cg.RuntimeID] = true
			c.track(cg.RuntimeID, key{cg.Subscription, cg.ResourceGroup, cg.Resource.Name})
			switch cg.Resource.Properties.ProvisioningState {
			case Deleting:
				go c.finishDelete(context.WithoutCancel(ctx), cg, "", -1)
				continue
			}
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
	// Changes the runtime made while no controller listened (before this
	// start, or lost with a killed server) are caught up here.
	for id := range known {
		c.OnChange(id)
	}
	ops, err := c.store.ListOperations(ctx, api.OperationInProgress)
	if err != nil {
		return err
	}
	for _, op := range ops {
		sub, rg, name, err := api.ParseResourceID(op.ResourceID)
		if err != nil {
			continue
		}
		id := RuntimeID(sub, rg, name)
		if op.Kind == "delete" {
			if _, err := c.store.GetContainerGroup(ctx, sub, rg, name); errdefs.Is(err, errdefs.ErrNotFound) {
				c.endOperation(ctx, op.ID, nil)
			}
			continue
		}
		c.wait(id, op.ID)
		c.OnChange(id)
	}
	return nil
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

// Apply makes the runtime run cg as stored (a create, or an update of a
// group that must be recreated), and ends opID when it settles.
func (c *Controller) Apply(ctx context.Context, cg *store.ContainerGroup, opID string, recreate bool) error {
	defer c.lock(cg.RuntimeID)()
	c.track(cg.RuntimeID, key{cg.Subscription, cg.ResourceGroup, cg.Resource.Name})
	c.wait(cg.RuntimeID, opID)
	if recreate {
		if err := c.rt.Delete(ctx, cg.RuntimeID, -1); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			c.fail(ctx, cg.RuntimeID, err)
			return err
		}
	}
	if err := c.createInRuntime(ctx, cg); err != nil {
		c.fail(ctx, cg.RuntimeID, err)
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
// operations waiting on the group.
func (c *Controller) setProvisioning(ctx context.Context, id, state string, e *api.ErrorBody) {
	c.mu.Lock()
	k, ok := c.byRuntimeID[id]
	c.mu.Unlock()
	if !ok {
		return
	}
	_, err := c.store.UpdateContainerGroup(ctx, k.sub, k.rg, k.name, func(cg *store.ContainerGroup) error {
		cur := cg.Resource.Properties.ProvisioningState
		if cur == Deleting || (cur == state && (e == nil) == (cg.Error == nil)) {
			return errUnchanged
		}
		cg.Resource.Properties.ProvisioningState = state
		cg.Error = e
		cg.UpdatedAt = time.Now().UTC()
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) && !errdefs.Is(err, errdefs.ErrNotFound) {
		c.log.Error("update provisioning state", "group", k.name, "err", err)
	}
	if state == Succeeded || state == Failed {
		c.mu.Lock()
		ops := c.waiting[id]
		delete(c.waiting, id)
		c.mu.Unlock()
		for _, op := range ops {
			c.endOperation(ctx, op, e)
		}
	}
}

var errUnchanged = errors.New("unchanged")

func (c *Controller) fail(ctx context.Context, id string, err error) {
	code := errdefs.CodeOf(err)
	if code == "" {
		code = "ContainerGroupDeploymentFailed"
	}
	c.setProvisioning(ctx, id, Failed, &api.ErrorBody{Code: code, Message: err.Error()})
}

func (c *Controller) endOperation(ctx context.Context, opID string, e *api.ErrorBody) {
	op, err := c.store.GetOperation(ctx, opID)
	if err != nil {
		return
	}
	if op.Status != api.OperationInProgress {
		return
	}
	op.Status = api.OperationSucceeded
	if e != nil {
		op.Status, op.Error = api.OperationFailed, e
	}
	op.EndTime = time.Now().UTC()
	if err := c.store.PutOperation(ctx, *op); err != nil {
		c.log.Error("end operation", "op", opID, "err", err)
	}
}

// Delete removes the group from the runtime, then from the store, and ends
// opID. Its containers get grace between SIGTERM and SIGKILL (< 0: the
// host's default).
func (c *Controller) Delete(ctx context.Context, cg *store.ContainerGroup, opID string, grace time.Duration) {
	c.finishDelete(ctx, *cg, opID, grace)
}

func (c *Controller) finishDelete(ctx context.Context, cg store.ContainerGroup, opID string, grace time.Duration) {
	defer c.lock(cg.RuntimeID)()
	var body *api.ErrorBody
	if err := c.rt.Delete(ctx, cg.RuntimeID, grace); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
		c.log.Error("delete group", "group", cg.Resource.Name, "err", err)
		body = &api.ErrorBody{Code: "ContainerGroupDeletionFailed", Message: err.Error()}
	} else if err := c.store.DeleteContainerGroup(ctx, cg.Subscription, cg.ResourceGroup, cg.Resource.Name); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
		body = &api.ErrorBody{Code: "ContainerGroupDeletionFailed", Message: err.Error()}
	}
	c.mu.Lock()
	delete(c.byRuntimeID, cg.RuntimeID)
	delete(c.waiting, cg.RuntimeID)
	c.mu.Unlock()
	if opID != "" {
		c.endOperation(ctx, opID, body)
	}
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
		c.endOperation(ctx, opID, &api.ErrorBody{Code: "ContainerGroupOperationFailed", Message: err.Error()})
		return err
	}
	// The group passes through Pending; end the operation once it settles.
	go func() {
		deadline := time.Now().Add(30 * time.Minute)
		for time.Now().Before(deadline) {
			st, err := c.rt.Status(cg.RuntimeID)
			if err != nil {
				c.endOperation(context.Background(), opID, &api.ErrorBody{Code: "ResourceNotFound", Message: err.Error()})
				return
			}
			if st.Error != nil {
				c.endOperation(context.Background(), opID, &api.ErrorBody{Code: st.Error.Code, Message: st.Error.Message})
				return
			}
			if st.State != api.GroupPending {
				c.endOperation(context.Background(), opID, nil)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.endOperation(context.Background(), opID, &api.ErrorBody{Code: "OperationTimedOut", Message: fmt.Sprintf("group did not start within 30 minutes")})
	}()
	return nil
}
