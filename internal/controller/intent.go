package controller

import (
	"context"
	"time"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/lifecycle"
	"github.com/skiff-sh/skiff/internal/store"
)

// The intents the API server writes. Each is one compare-and-swap on the
// record as it is, so a DELETE that came first is never undone.

// MarkDeleting records that a container group is to be deleted (the
// server's DELETE): from now on PUTs are refused and the group's agent (or
// the controller, for a group never placed) removes it. grace is the time
// between SIGTERM and SIGKILL it asked for (nil: the host's default).
func MarkDeleting(ctx context.Context, st store.Store, sub, rg, name string, grace *time.Duration) (*store.ContainerGroup, error) {
	return markDeleting(ctx, st, sub, rg, name, grace, lifecycle.Server)
}

func markDeleting(ctx context.Context, st store.Store, sub, rg, name string, grace *time.Duration, by lifecycle.Actor) (*store.ContainerGroup, error) {
	return st.UpdateContainerGroup(ctx, sub, rg, name, func(c *store.ContainerGroup) error {
		from := lifecycle.Provisioning(c.Resource.Properties.ProvisioningState)
		if from == lifecycle.Deleting {
			// Asked again: the delete goes on, and if the agent's last
			// attempt failed it tries once more (UpdatedAt says a DELETE
			// came after that attempt).
			c.UpdatedAt = time.Now().UTC()
			return nil
		}
		if err := lifecycle.Transition(from, lifecycle.Deleting, by); err != nil {
			return err
		}
		c.Resource.Properties.ProvisioningState = string(lifecycle.Deleting)
		c.DeleteGrace = grace
		c.UpdatedAt = time.Now().UTC()
		return nil
	})
}

// MarkResourceGroupDeleting records that a resource group is to be
// deleted: from now on it takes no PUT of a container group, and the
// controller deletes its groups and then it.
func MarkResourceGroupDeleting(ctx context.Context, st store.Store, sub, name string) (*store.ResourceGroup, error) {
	return st.UpdateResourceGroup(ctx, sub, name, func(rg *store.ResourceGroup) error {
		rg.ProvisioningState = store.ResourceGroupDeleting
		return nil
	})
}

// RequestAction asks the group's agent to stop, start or restart it, and
// returns the action's sequence number (what Observed.ActionSeq reaches
// once it is done). A Deleting group is refused (409).
func RequestAction(ctx context.Context, st store.Store, sub, rg, name, kind string) (int64, error) {
	var seq int64
	_, err := st.UpdateContainerGroup(ctx, sub, rg, name, func(c *store.ContainerGroup) error {
		if lifecycle.Provisioning(c.Resource.Properties.ProvisioningState) == lifecycle.Deleting {
			return errdefs.WithCode(errdefs.ErrConflict, "ContainerGroupTransitioning", "The container group '%s' is being deleted.", c.Resource.Name)
		}
		c.Action = store.Action{Kind: kind, Seq: c.Action.Seq + 1}
		seq = c.Action.Seq
		return nil
	})
	return seq, err
}

// Await waits until done accepts the group's record (nil: gone), reading
// it again at each of its changes, or until ctx ends.
func Await(ctx context.Context, st store.Store, sub, rg, name string, done func(*store.ContainerGroup) bool) (*store.ContainerGroup, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes := st.Watch(ctx)
	want := store.GroupChange(sub, rg, name)
	for {
		cg, err := st.GetContainerGroup(ctx, sub, rg, name)
		if errdefs.Is(err, errdefs.ErrNotFound) {
			cg, err = nil, nil
		}
		if err != nil {
			return nil, err
		}
		if done(cg) {
			return cg, nil
		}
		for ch := range changes {
			if ch == want {
				break
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// Stop stops a group and waits until its agent did (ACI's stop is
// synchronous).
func Stop(ctx context.Context, st store.Store, sub, rg, name string) error {
	seq, err := RequestAction(ctx, st, sub, rg, name, store.ActionStop)
	if err != nil {
		return err
	}
	cg, err := Await(ctx, st, sub, rg, name, func(cg *store.ContainerGroup) bool {
		return cg == nil || lifecycle.Provisioning(cg.Resource.Properties.ProvisioningState) == lifecycle.Deleting ||
			(cg.Observed != nil && cg.Observed.ActionSeq >= seq)
	})
	switch {
	case err != nil:
		return err
	case cg == nil:
		return errdefs.WithCode(errdefs.ErrNotFound, "ResourceNotFound", "The container group '%s' was deleted.", name)
	case cg.Observed != nil && cg.Observed.ActionError != nil:
		return errdefs.WithCode(errdefs.ErrConflict, cg.Observed.ActionError.Code, "%s", cg.Observed.ActionError.Message)
	}
	return nil
}
