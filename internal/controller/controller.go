// Package controller is the control plane's reconciler. It reacts to the
// store's changes (never by polling): it places new container groups on a
// host, moves provisioning states as the host's agent reports what it
// observes, deletes resource groups, and ends long-running operations.
// Package lifecycle draws the states and who moves each; this package owns
// the controller's rows:
//
//   - Pending → Creating: the group is placed on a host (store Host);
//   - Pending/Creating → Succeeded/Failed, Succeeded ⇄ Failed: the agent
//     observed the current generation settle or fail (lifecycle.FromObserved);
//   - any → Deleting for the groups of a resource group being deleted;
//   - Deleting → gone for a group that was never placed on a host (no agent
//     holds it); a placed one is removed by its agent;
//   - a Deleting resource group → gone, once it holds no group.
//
// The intents the server writes (a PUT's Pending, a DELETE's Deleting, a
// stop, start or restart) are this package's functions too (intent.go), so
// that every write of a group's lifecycle is in one place, as are the
// operations: created by Begin, ended only by the controller (ops.go).
//
// Each change puts a key (a group, a resource group or an operation) on
// one work queue; a key is worked by one worker at a time, reading the
// records as they are now. Start queues every group, every Deleting
// resource group and every InProgress operation, so whatever a killed
// server left half done resumes, deletes of resource groups included.
package controller

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/lifecycle"
	"github.com/skiff-sh/skiff/internal/scheduler"
	"github.com/skiff-sh/skiff/internal/store"
)

// Config configures a Controller.
type Config struct {
	Store store.Store
	// Host is the host agent new groups are placed on (the embedded mode
	// has one). "" is cluster mode: the scheduler places each group on a
	// host that joined, and the groups of a host that is lost move.
	Host   string
	Logger *slog.Logger
}

// Controller reconciles the store.
type Controller struct {
	st    store.Store
	host  string
	log   *slog.Logger
	queue workqueue.TypedRateLimitingInterface[store.Change]

	mu sync.Mutex
	// ops holds the InProgress operations by the lower-cased ARM id of the
	// resource they wait on.
	ops map[string]map[string]store.Operation
	// sched places groups in cluster mode (nil in the embedded mode), and
	// unplaced holds the groups that fit nowhere, by scheduler key.
	sched    *scheduler.Scheduler
	unplaced map[string]store.Change
}

// New returns a controller; Start starts it.
func New(cfg Config) *Controller {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Controller{st: cfg.Store, host: cfg.Host, log: cfg.Logger, ops: map[string]map[string]store.Operation{}, unplaced: map[string]store.Change{},
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[store.Change](50*time.Millisecond, 30*time.Second))}
	if cfg.Host == "" {
		c.sched = scheduler.New()
	}
	return c
}

// Start queues everything unfinished and works the store's changes until
// ctx ends.
func (c *Controller) Start(ctx context.Context) error {
	changes := c.st.Watch(ctx) // before the listing: nothing written after it is missed
	ops, err := c.st.ListOperations(ctx, api.OperationInProgress)
	if err != nil {
		return err
	}
	for _, op := range ops {
		c.index(op)
		c.queue.Add(store.OpChange(op.Subscription, op.ID))
	}
	subs, err := c.st.ListSubscriptions(ctx)
	if err != nil {
		return err
	}
	for _, s := range subs {
		rgs, err := c.st.ListResourceGroups(ctx, s.ID)
		if err != nil {
			return err
		}
		for _, rg := range rgs {
			if rg.ProvisioningState == store.ResourceGroupDeleting {
				c.queue.Add(store.RGChange(rg.Subscription, rg.Name))
			}
		}
	}
	cgs, err := store.AllContainerGroups(ctx, c.st)
	if err != nil {
		return err
	}
	if c.sched != nil {
		// The scheduler starts from the hosts and placements as they are;
		// each host is worked once, so hosts lost while no controller led
		// are found.
		hosts, err := c.st.ListHosts(ctx)
		if err != nil {
			return err
		}
		for _, h := range hosts {
			c.sched.SetHost(h)
			c.queue.Add(store.HostChangeFor(h.Name))
		}
		for i := range cgs {
			if cgs[i].Host != "" {
				c.sched.Assign(scheduler.RequestOf(&cgs[i]), cgs[i].Host)
			}
		}
	}
	for _, cg := range cgs {
		c.queue.Add(store.GroupChange(cg.Subscription, cg.ResourceGroup, cg.Resource.Name))
	}
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
	go func() {
		for ch := range changes {
			c.queue.Add(ch)
		}
	}()
	for range 8 {
		go c.work(context.WithoutCancel(ctx))
	}
	return nil
}

func (c *Controller) work(ctx context.Context) {
	for {
		k, quit := c.queue.Get()
		if quit {
			return
		}
		var err error
		switch k.Kind {
		case store.ContainerGroupChange:
			err = c.reconcileGroup(ctx, k)
		case store.ResourceGroupChange:
			err = c.reconcileResourceGroup(ctx, k)
		case store.OperationChange:
			err = c.reconcileOperation(ctx, k)
		case store.HostChange:
			err = c.reconcileHost(ctx, k)
		}
		if err != nil {
			c.log.Warn("reconcile", "kind", k.Kind, "name", k.Name, "resourceGroup", k.ResourceGroup, "err", err)
			c.queue.AddRateLimited(k)
		} else {
			c.queue.Forget(k)
		}
		c.queue.Done(k)
	}
}

var errChanged = errors.New("the record changed")

// reconcileGroup moves a group's provisioning state and ends the
// operations that wait on it.
func (c *Controller) reconcileGroup(ctx context.Context, k store.Change) error {
	cg, err := c.st.GetContainerGroup(ctx, k.Subscription, k.ResourceGroup, k.Name)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		if c.sched != nil {
			c.unplace(k.Subscription, k.ResourceGroup, k.Name)
			c.retryUnplaced() // its capacity is free
		}
		c.settle(ctx, api.ResourceID(k.Subscription, k.ResourceGroup, k.Name), nil)
		c.queue.Add(store.RGChange(k.Subscription, k.ResourceGroup)) // a resource group being deleted may be empty now
		return nil
	}
	if err != nil {
		return err
	}
	defer c.settle(ctx, api.ResourceID(cg.Subscription, cg.ResourceGroup, cg.Resource.Name), cg)
	prov := lifecycle.Provisioning(cg.Resource.Properties.ProvisioningState)
	if prov == lifecycle.Deleting {
		if cg.Host != "" && c.sched != nil && c.hostLost(ctx, cg.Host) {
			return c.move(ctx, cg, "is lost") // no agent will remove it: the record goes
		}
		if cg.Host != "" {
			// Its agent removes it; a resource group being deleted hears
			// of a failure to.
			if cg.Observed != nil && cg.Observed.DeleteError != nil {
				c.queue.Add(store.RGChange(cg.Subscription, cg.ResourceGroup))
			}
			return nil
		}
		if err := lifecycle.Transition(lifecycle.Deleting, lifecycle.None, lifecycle.Controller); err != nil {
			return err
		}
		gen := cg.Generation
		err := c.st.DeleteContainerGroupIf(ctx, cg.Subscription, cg.ResourceGroup, cg.Resource.Name, func(cur *store.ContainerGroup) error {
			if cur.Generation != gen || cur.Host != "" || lifecycle.Provisioning(cur.Resource.Properties.ProvisioningState) != lifecycle.Deleting {
				return errChanged
			}
			return nil
		})
		if errors.Is(err, errChanged) || errdefs.Is(err, errdefs.ErrNotFound) {
			return nil
		}
		return err
	}
	if c.sched != nil && cg.Host != "" {
		// A PUT may have changed what it requests: its host counts the
		// new amounts (it stays where it runs).
		c.sched.Assign(scheduler.RequestOf(cg), cg.Host)
	}
	to, e := prov, cg.Error
	if obs := cg.Observed; obs != nil && obs.Generation == cg.Generation {
		if p, ok := lifecycle.FromObserved(lifecycle.GroupState(obs.State), obs.Error != nil); ok {
			to, e = p, obs.Error
		}
	}
	if to == lifecycle.Pending {
		to = lifecycle.Creating // placed now, or (a changed PUT) placed already
	}
	if to == lifecycle.Succeeded {
		e = nil
	}
	if to == prov && cg.Host != "" && sameError(e, cg.Error) {
		return nil
	}
	if err := lifecycle.Transition(prov, to, lifecycle.Controller); err != nil {
		c.log.Error("refused transition", "group", cg.Resource.Name, "err", err)
		return nil
	}
	host := cg.Host
	if host == "" {
		h, ok, err := c.place(ctx, cg)
		if err != nil || !ok {
			return err // nothing fits: it stays Pending, and is queued again when a host changes
		}
		host = h
	}
	gen := cg.Generation
	_, err = c.st.UpdateContainerGroup(ctx, cg.Subscription, cg.ResourceGroup, cg.Resource.Name, func(cur *store.ContainerGroup) error {
		if cur.Generation != gen || cur.Resource.Properties.ProvisioningState != string(prov) || (cur.Host != "" && cur.Host != host) {
			return errChanged // a newer PUT or a DELETE: the next pass sees it
		}
		if cur.Host == "" {
			cur.Host = host
			if c.sched != nil {
				cur.Events = appendEvent(cur.Events, api.EventNormal, "Scheduled", "Placed on host "+host+".")
			}
		}
		cur.Resource.Properties.ProvisioningState = string(to)
		cur.Error = e
		cur.UpdatedAt = time.Now().UTC()
		return nil
	})
	if cg.Host == "" && err != nil {
		c.unplace(cg.Subscription, cg.ResourceGroup, cg.Resource.Name) // it did not get the host the scheduler counted it on
	}
	if errors.Is(err, errChanged) || errdefs.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	return err
}

// hostLost reports whether the named host is lost or gone.
func (c *Controller) hostLost(ctx context.Context, name string) bool {
	h, err := c.st.GetHost(ctx, name)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return true
	}
	return err == nil && !h.Alive && h.State == store.HostLost
}

func sameError(a, b *api.ErrorBody) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Code == b.Code && a.Message == b.Message
}

// reconcileResourceGroup finishes the delete of a Deleting resource group:
// each of its groups is marked Deleting (their agents remove them), and
// once none is left the resource group goes.
func (c *Controller) reconcileResourceGroup(ctx context.Context, k store.Change) error {
	id := ResourceGroupID(k.Subscription, k.ResourceGroup)
	rg, err := c.st.GetResourceGroup(ctx, k.Subscription, k.ResourceGroup)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		c.endAll(ctx, id, api.OperationSucceeded, nil)
		return nil
	}
	if err != nil {
		return err
	}
	if rg.ProvisioningState != store.ResourceGroupDeleting {
		return nil
	}
	cgs, err := c.st.ListContainerGroups(ctx, rg.Subscription, rg.Name)
	if err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
		return err
	}
	for _, cg := range cgs {
		if obs := cg.Observed; obs != nil && obs.DeleteError != nil {
			c.endAll(ctx, id, api.OperationFailed, &api.ErrorBody{Code: "ResourceGroupDeletionFailed",
				Message: "a container group could not be deleted: " + obs.DeleteError.Message})
		}
		if lifecycle.Provisioning(cg.Resource.Properties.ProvisioningState) == lifecycle.Deleting {
			continue
		}
		if _, err := markDeleting(ctx, c.st, cg.Subscription, cg.ResourceGroup, cg.Resource.Name, nil, lifecycle.Controller); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			return err
		}
	}
	if len(cgs) > 0 {
		return nil // each removal queues the resource group again
	}
	if err := c.st.DeleteResourceGroup(ctx, rg.Subscription, rg.Name); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
		if errdefs.Is(err, errdefs.ErrConflict) {
			return nil // a group was added in between: its removal queues this again
		}
		return err
	}
	c.endAll(ctx, id, api.OperationSucceeded, nil)
	return nil
}
