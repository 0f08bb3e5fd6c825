package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/lifecycle"
	"github.com/skiff-sh/skiff/internal/scheduler"
	"github.com/skiff-sh/skiff/internal/store"
)

// Placement, in cluster mode (package scheduler picks the host):
//
//	Host ""  ──scheduled──▶ Host h ──h lost, restartPolicy Always/OnFailure──▶ Host h' (or "" if none fits)
//	  │ ▲                      │
//	  │ └── nothing fits:      └── h lost, restartPolicy Never: stays on h (it runs again if h comes back)
//	  │     FailedScheduling event, queued again when a host joins or frees capacity
//
// The provisioning state is not changed by a move; the control plane's
// events (store.ContainerGroup.Events) say what happened. The embedded mode
// places every group on its one host.

// place picks the host of an unplaced group: the embedded mode's one host,
// or the scheduler's choice. ok is false when nothing fits; the group then
// stays unplaced with a FailedScheduling event, and is queued again when a
// host changes.
func (c *Controller) place(ctx context.Context, cg *store.ContainerGroup) (host string, ok bool, err error) {
	if c.sched == nil {
		return c.host, true, nil
	}
	key := scheduler.KeyOf(cg.Subscription, cg.ResourceGroup, cg.Resource.Name)
	host, err = c.sched.Schedule(scheduler.RequestOf(cg))
	var un *scheduler.Unschedulable
	if errors.As(err, &un) {
		c.mu.Lock()
		c.unplaced[key] = store.GroupChange(cg.Subscription, cg.ResourceGroup, cg.Resource.Name)
		c.mu.Unlock()
		return "", false, c.addEvent(ctx, cg, api.EventWarning, "FailedScheduling", un.Error())
	}
	if err != nil {
		return "", false, err
	}
	c.mu.Lock()
	delete(c.unplaced, key)
	c.mu.Unlock()
	return host, true, nil
}

// unplace gives back what the scheduler counted for a group that did not
// get the host it picked (its record changed meanwhile), or is gone.
func (c *Controller) unplace(sub, rg, name string) {
	if c.sched != nil {
		key := scheduler.KeyOf(sub, rg, name)
		c.sched.Unassign(key)
		c.mu.Lock()
		delete(c.unplaced, key)
		c.mu.Unlock()
	}
}

// addEvent records a control plane event of the group, unless it is the
// group's last event already (so that a group worked again for another
// reason writes nothing).
func (c *Controller) addEvent(ctx context.Context, cg *store.ContainerGroup, typ, reason, msg string) error {
	if n := len(cg.Events); n > 0 && cg.Events[n-1].Name == reason && cg.Events[n-1].Message == msg {
		return nil
	}
	gen := cg.Generation
	_, err := c.st.UpdateContainerGroup(ctx, cg.Subscription, cg.ResourceGroup, cg.Resource.Name, func(cur *store.ContainerGroup) error {
		if cur.Generation != gen {
			return errChanged
		}
		cur.Events = appendEvent(cur.Events, typ, reason, msg)
		return nil
	})
	if errors.Is(err, errChanged) || errdefs.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	return err
}

// maxEvents bounds a group's control plane events.
const maxEvents = 20

// appendEvent adds an event; the same as the last one counts it again.
func appendEvent(evs []api.Event, typ, reason, msg string) []api.Event {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if n := len(evs); n > 0 && evs[n-1].Name == reason && evs[n-1].Message == msg {
		evs[n-1].Count++
		evs[n-1].LastTimestamp = now
		return evs
	}
	evs = append(evs, api.Event{Count: 1, FirstTimestamp: now, LastTimestamp: now, Name: reason, Message: msg, Type: typ})
	if len(evs) > maxEvents {
		evs = evs[len(evs)-maxEvents:]
	}
	return evs
}

// joinGrace is how long a host whose agent just wrote its record may be
// without a heartbeat before it counts as lost.
const joinGrace = 3 * time.Second

// reconcileHost keeps the scheduler's view of a host current, and moves
// the groups off a host whose heartbeat stopped.
func (c *Controller) reconcileHost(ctx context.Context, k store.Change) error {
	if c.sched == nil {
		return nil
	}
	h, err := c.st.GetHost(ctx, k.Name)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		c.sched.RemoveHost(k.Name)
		return c.evacuate(ctx, k.Name, "was removed")
	}
	if err != nil {
		return err
	}
	c.sched.SetHost(*h)
	if h.Alive && h.State == store.HostReady {
		c.retryUnplaced() // capacity appeared
		return nil
	}
	if h.Alive {
		return nil // starting: not given groups until it is Ready
	}
	if since := time.Since(h.UpdatedAt); h.State != store.HostLost && since < joinGrace {
		// Its agent wrote the record just now and its heartbeat is
		// about to begin: look again once the grace is over.
		c.queue.AddAfter(k, joinGrace-since)
		return nil
	}
	if h.State != store.HostLost {
		msg := fmt.Sprintf("its heartbeat stopped (the host was last %s at %s)", h.State, h.UpdatedAt.Format(time.RFC3339))
		h, err = c.st.UpdateHost(ctx, h.Name, func(cur *store.Host) error {
			if cur.Alive {
				return errChanged
			}
			cur.State, cur.Message, cur.UpdatedAt = store.HostLost, msg, time.Now().UTC()
			return nil
		})
		if errors.Is(err, errChanged) || errdefs.Is(err, errdefs.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		c.log.Warn("host lost", "host", h.Name, "message", msg)
		c.sched.SetHost(*h)
	}
	return c.evacuate(ctx, h.Name, "stopped responding")
}

// evacuate moves the groups of a lost (or removed) host: one whose
// restartPolicy restarts it goes to another host (or back to unplaced, if
// none fits); a Never one stays; a Deleting one's record is removed, as no
// agent will.
func (c *Controller) evacuate(ctx context.Context, host, why string) error {
	cgs, err := store.AllContainerGroups(ctx, c.st)
	if err != nil {
		return err
	}
	var on []*store.ContainerGroup
	for i := range cgs {
		if cgs[i].Host == host {
			on = append(on, &cgs[i])
		}
	}
	// First none of them counts on the host, so that the shares they
	// mount are not pinned to it while they are placed one by one.
	for _, cg := range on {
		if cg.Resource.Properties.RestartPolicy != api.RestartNever {
			c.sched.Unassign(scheduler.KeyOf(cg.Subscription, cg.ResourceGroup, cg.Resource.Name))
		}
	}
	for _, cg := range on {
		if err := c.move(ctx, cg, why); err != nil {
			return err
		}
	}
	return nil
}

func (c *Controller) move(ctx context.Context, cg *store.ContainerGroup, why string) error {
	from, gen := cg.Host, cg.Generation
	sub, rg, name := cg.Subscription, cg.ResourceGroup, cg.Resource.Name
	if lifecycle.Provisioning(cg.Resource.Properties.ProvisioningState) == lifecycle.Deleting {
		err := c.st.DeleteContainerGroupIf(ctx, sub, rg, name, func(cur *store.ContainerGroup) error {
			if cur.Host != from || lifecycle.Provisioning(cur.Resource.Properties.ProvisioningState) != lifecycle.Deleting {
				return errChanged
			}
			return nil
		})
		if errors.Is(err, errChanged) || errdefs.Is(err, errdefs.ErrNotFound) {
			return nil
		}
		return err
	}
	lost := fmt.Sprintf("Host %s %s.", from, why)
	if cg.Resource.Properties.RestartPolicy == api.RestartNever {
		return c.addEvent(ctx, cg, api.EventWarning, "HostLost", lost+" The restart policy is Never: the group is not started elsewhere.")
	}
	c.sched.Unassign(scheduler.KeyOf(sub, rg, name))
	to, err := c.sched.Schedule(scheduler.RequestOf(cg))
	var un *scheduler.Unschedulable
	if errors.As(err, &un) {
		to = ""
	} else if err != nil {
		return err
	}
	_, err = c.st.UpdateContainerGroup(ctx, sub, rg, name, func(cur *store.ContainerGroup) error {
		if cur.Host != from || cur.Generation != gen {
			return errChanged
		}
		cur.Host = to
		cur.Observed = nil // the new host observes it afresh
		cur.Events = appendEvent(cur.Events, api.EventWarning, "HostLost", lost)
		if to != "" {
			cur.Events = appendEvent(cur.Events, api.EventNormal, "Rescheduled", fmt.Sprintf("Placed on host %s after host %s was lost.", to, from))
		} else {
			cur.Events = appendEvent(cur.Events, api.EventWarning, "FailedScheduling", un.Error())
		}
		cur.UpdatedAt = time.Now().UTC()
		return nil
	})
	if errors.Is(err, errChanged) || errdefs.Is(err, errdefs.ErrNotFound) {
		if to != "" {
			c.sched.Unassign(scheduler.KeyOf(sub, rg, name))
		}
		c.queue.Add(store.GroupChange(sub, rg, name))
		return nil
	}
	if err == nil {
		c.log.Info("group moved off a lost host", "group", name, "from", from, "to", to)
		if to == "" {
			c.mu.Lock()
			c.unplaced[scheduler.KeyOf(sub, rg, name)] = store.GroupChange(sub, rg, name)
			c.mu.Unlock()
		}
	}
	return err
}

// retryUnplaced queues every group that fit nowhere.
func (c *Controller) retryUnplaced() {
	c.mu.Lock()
	keys := make([]store.Change, 0, len(c.unplaced))
	for _, k := range c.unplaced {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	for _, k := range keys {
		c.queue.Add(k)
	}
}
