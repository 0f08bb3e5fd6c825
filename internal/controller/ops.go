package controller

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/lifecycle"
	"github.com/skiff-sh/skiff/internal/store"
)

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

// Begin records a new InProgress operation on resourceID that waits for
// target (see store.Operation.Target). Only the controller ends it.
func Begin(ctx context.Context, st store.Store, sub, location, kind, resourceID string, target int64) (*store.Operation, error) {
	op := store.Operation{ID: uuid.NewString(), Subscription: sub, Location: location, ResourceID: resourceID,
		Kind: kind, Target: target, Status: api.OperationInProgress, StartTime: time.Now().UTC()}
	if err := st.PutOperation(ctx, op); err != nil {
		return nil, err
	}
	return &op, nil
}

func (c *Controller) index(op store.Operation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := strings.ToLower(op.ResourceID)
	if c.ops[id] == nil {
		c.ops[id] = map[string]store.Operation{}
	}
	c.ops[id][op.ID] = op
}

// opsOn returns the InProgress operations on a resource (by ARM id, any
// case), copied so that ending them may change the index.
func (c *Controller) opsOn(resourceID string) []store.Operation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Collect(maps.Values(c.ops[strings.ToLower(resourceID)]))
}

// reconcileOperation indexes a new InProgress operation and works the
// resource it waits on.
func (c *Controller) reconcileOperation(ctx context.Context, k store.Change) error {
	op, err := c.st.GetOperation(ctx, k.Name)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if op.Status != api.OperationInProgress {
		return nil
	}
	c.index(*op)
	if op.Kind == KindResourceGroupDelete {
		if sub, rg, ok := parseResourceGroupID(op.ResourceID); ok {
			c.queue.Add(store.RGChange(sub, rg))
		}
		return nil
	}
	sub, rg, name, err := api.ParseResourceID(op.ResourceID)
	if err != nil {
		c.end(ctx, *op, api.OperationFailed, &api.ErrorBody{Code: "InvalidOperation", Message: "unknown resource " + op.ResourceID})
		return nil
	}
	c.queue.Add(store.GroupChange(sub, rg, name))
	return nil
}

func parseResourceGroupID(id string) (sub, rg string, ok bool) {
	parts := strings.Split(strings.Trim(id, "/"), "/")
	if len(parts) != 4 || !strings.EqualFold(parts[0], "subscriptions") || !strings.EqualFold(parts[2], "resourceGroups") {
		return "", "", false
	}
	return parts[1], parts[3], true
}

// settle ends the operations on a group that its record (nil: gone)
// shows are done.
func (c *Controller) settle(ctx context.Context, resourceID string, cg *store.ContainerGroup) {
	for _, op := range c.opsOn(resourceID) {
		if status, e, done := outcome(op, cg); done {
			c.end(ctx, op, status, e)
		}
	}
}

// outcome decides whether op is over, given its group's record (nil:
// gone), and how it ended.
func outcome(op store.Operation, cg *store.ContainerGroup) (status string, e *api.ErrorBody, done bool) {
	var prov lifecycle.Provisioning
	var obs *store.Observed
	if cg != nil {
		prov, obs = lifecycle.Provisioning(cg.Resource.Properties.ProvisioningState), cg.Observed
	}
	canceled := func() (string, *api.ErrorBody, bool) {
		name := op.ResourceID[strings.LastIndex(op.ResourceID, "/")+1:]
		return api.OperationCanceled, &api.ErrorBody{Code: "OperationCanceled",
			Message: fmt.Sprintf("The operation was canceled: container group '%s' is being deleted.", name)}, true
	}
	switch op.Kind {
	case KindDelete:
		switch {
		case cg == nil, prov != lifecycle.Deleting && cg.Generation > op.Target:
			return api.OperationSucceeded, nil, true // gone, or created again since
		case prov == lifecycle.Deleting && obs != nil && obs.DeleteError != nil && !obs.UpdatedAt.Before(op.StartTime):
			// A failure seen since this delete was asked; a DELETE after
			// a failed one waits for the agent's new attempt.
			return api.OperationFailed, obs.DeleteError, true
		}
	case KindCreate, KindUpdate:
		switch {
		case cg == nil || prov == lifecycle.Deleting:
			return canceled()
		case cg.Generation < op.Target && cg.CreatedAt.After(op.StartTime):
			// Deleted and created again since (generations start
			// over): the version this operation waited for is gone,
			// as if it had seen the delete.
			return canceled()
		case cg.Generation < op.Target || obs == nil || obs.Generation != cg.Generation:
			// The agent has not run this generation yet.
		default:
			// Settled at this generation, and the controller wrote so.
			p, ok := lifecycle.FromObserved(lifecycle.GroupState(obs.State), obs.Error != nil)
			switch {
			case !ok || p != prov:
			case p == lifecycle.Failed:
				return api.OperationFailed, cg.Error, true
			default:
				return api.OperationSucceeded, nil, true
			}
		}
	case KindStart, KindRestart:
		switch {
		case cg == nil || prov == lifecycle.Deleting:
			return canceled()
		case obs == nil || obs.ActionSeq < op.Target:
		case obs.ActionError != nil:
			return api.OperationFailed, obs.ActionError, true
		case obs.Error != nil:
			return api.OperationFailed, obs.Error, true
		case lifecycle.GroupState(obs.State) != lifecycle.GroupPending:
			return api.OperationSucceeded, nil, true
		}
	default:
		return api.OperationFailed, &api.ErrorBody{Code: "InvalidOperation", Message: "unknown operation kind " + op.Kind}, true
	}
	return "", nil, false
}

// endAll ends every operation on resourceID.
func (c *Controller) endAll(ctx context.Context, resourceID, status string, e *api.ErrorBody) {
	for _, op := range c.opsOn(resourceID) {
		c.end(ctx, op, status, e)
	}
}

// end is the one place an operation ends: it stays as it ended.
func (c *Controller) end(ctx context.Context, op store.Operation, status string, e *api.ErrorBody) {
	cur, err := c.st.GetOperation(ctx, op.ID)
	if err == nil && cur.Status == api.OperationInProgress {
		cur.Status, cur.Error, cur.EndTime = status, e, time.Now().UTC()
		if status == api.OperationSucceeded {
			cur.Error = nil
		}
		if err := c.st.PutOperation(ctx, *cur); err != nil {
			c.log.Error("end operation", "op", op.ID, "err", err)
			return
		}
	}
	c.mu.Lock()
	id := strings.ToLower(op.ResourceID)
	delete(c.ops[id], op.ID)
	if len(c.ops[id]) == 0 {
		delete(c.ops, id)
	}
	c.mu.Unlock()
}
