// Package agent is a host's agent: it owns the host's runtime. It takes
// the container groups placed on its host from the store, drives the
// runtime to run them as they are desired, and writes what it observes
// back into the store (store.Observed: the instanceView, addresses,
// events, exit codes, restart counts and readiness). It also serves the
// control plane's streams for its groups (hostapi.Host: logs, exec,
// metrics, images).
//
// What the agent owns in the lifecycle (package lifecycle draws it all):
//   - the runtime: create, recreate when a PUT changed the containers,
//     stop, start, restart, delete;
//   - store.Observed, which nobody else writes;
//   - the removal of a Deleting record, once the runtime removed the
//     group (Deleting → gone).
//
// Every change of a group (a write to its record, or a change the runtime
// reports) puts the group's key on one work queue; a key is worked by one
// worker at a time, and each pass reads the record as it is now, so a burst
// of changes is one pass and a later PUT or DELETE always wins. Start
// resyncs: every group placed here is worked once, and runtime groups
// without a record are removed, so whatever a killed server left half done
// is finished.
package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
	"github.com/skiff-sh/skiff/internal/lifecycle"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/store"
)

// DefaultName is the name of the embedded mode's one host.
const DefaultName = "local"

// Config configures an Agent.
type Config struct {
	// Name is the host's name: the agent runs the groups placed on it
	// (store.ContainerGroup.Host). Default DefaultName.
	Name  string
	Store store.Store
	Host  *runtime.Host
	// Workers is how many groups are worked at once (default 64): a
	// delete waits out its grace period, and others go on meanwhile.
	Workers int
	// Register is the host's record as the agent writes it when it
	// starts (Name, State and JoinedAt are the agent's); nil writes one
	// with the machine's capacity.
	Register *store.Host
	// KeepUnplaced keeps runtime groups whose record is not placed on any
	// host (the embedded mode: records of a Skiff before placement). In
	// a cluster such a group was moved off this host while it was lost,
	// and found no other: it must not run here unseen.
	KeepUnplaced bool
	// HeartbeatTTL is how long the host stays alive after its agent's
	// heartbeat stops: the cluster's --host-lost-after (default 5 s).
	HeartbeatTTL time.Duration
	// Storage holds the storage accounts and file shares that azureFile
	// volumes are checked against (shares.go); nil fails every azureFile
	// volume.
	Storage *storage.Service
	Logger  *slog.Logger
}

// Agent runs the groups placed on one host.
type Agent struct {
	cfg   Config
	st    store.Store
	rt    *runtime.Host
	log   *slog.Logger
	queue workqueue.TypedRateLimitingInterface[store.Change]

	mu sync.Mutex
	// keys maps the runtime ids of the groups the agent knows to their
	// store keys, for the runtime's change reports.
	keys map[string]store.Change
	// removing holds the groups whose removal this agent tried since it
	// started.
	removing map[string]bool
	// checking is set while checkSelf runs.
	checking atomic.Bool
}

var _ hostapi.Host = (*Agent)(nil)

// New returns an agent; Start starts it. Pass its OnRuntimeChange to the
// runtime as its change callback.
func New(cfg Config) *Agent {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HeartbeatTTL <= 0 {
		cfg.HeartbeatTTL = 5 * time.Second
	}
	return &Agent{cfg: cfg, st: cfg.Store, rt: cfg.Host, log: cfg.Logger, keys: map[string]store.Change{}, removing: map[string]bool{},
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[store.Change](50*time.Millisecond, 30*time.Second))}
}

// Name is the host's name.
func (a *Agent) Name() string { return a.cfg.Name }

// Start registers the host (NotReady), starts its heartbeat, resyncs with
// the store (removing the runtime groups that have no record or are
// placed on another host, and queueing every group placed here), reports
// the host Ready, and then works changes until ctx ends. So a host that
// was lost, and whose groups moved elsewhere, runs none of them twice once
// it is back.
func (a *Agent) Start(ctx context.Context) error {
	changes := a.st.Watch(ctx) // before the listing: nothing written after it is missed
	if err := a.register(ctx); err != nil {
		return fmt.Errorf("register host %s: %w", a.cfg.Name, err)
	}
	go a.heartbeat(ctx)
	if err := a.resync(ctx); err != nil {
		return err
	}
	a.sweepShares(ctx) // the data of shares deleted while this host was down
	go a.sweepSharesEvery(ctx, ShareSweepInterval)
	go func() {
		<-ctx.Done()
		a.queue.ShutDown()
	}()
	go func() {
		for c := range changes {
			switch {
			case c.Kind == store.ContainerGroupChange:
				a.queue.Add(c)
			case c.Kind == store.HostChange && c.Name == store.HostChangeFor(a.cfg.Name).Name:
				a.checkSelf(ctx)
			}
		}
	}()
	for range a.cfg.Workers {
		go a.work(context.WithoutCancel(ctx))
	}
	return nil
}

// resync removes the runtime groups this host must not run, queues the
// ones placed here, and then reports the host Ready.
func (a *Agent) resync(ctx context.Context) error {
	cgs, err := store.AllContainerGroups(ctx, a.st)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, cg := range cgs {
		if cg.Host == a.cfg.Name || (cg.Host == "" && a.cfg.KeepUnplaced) {
			keep[cg.RuntimeID] = true
		}
		if cg.Host == a.cfg.Name {
			a.queue.Add(store.GroupChange(cg.Subscription, cg.ResourceGroup, cg.Resource.Name))
		}
	}
	// What runs elsewhere now is killed at once (no grace: its copy on
	// the other host is the one that counts), all at once.
	var wg sync.WaitGroup
	for _, id := range a.rt.List() {
		if !keep[id] {
			wg.Go(func() {
				a.log.Info("removing runtime group this host does not own", "id", id)
				if err := a.rt.Delete(ctx, id, 0); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
					a.log.Warn("remove group", "id", id, "err", err)
				}
			})
		}
	}
	wg.Wait()
	_, err = a.st.UpdateHost(ctx, a.cfg.Name, func(h *store.Host) error {
		h.State, h.Message, h.UpdatedAt = store.HostReady, "", time.Now().UTC()
		return nil
	})
	return err
}

// OnRuntimeChange is the runtime's change callback: the group is worked
// again, which writes what the runtime reports now.
func (a *Agent) OnRuntimeChange(id string) {
	a.mu.Lock()
	k, ok := a.keys[id]
	a.mu.Unlock()
	if ok {
		a.queue.Add(k)
	}
}

func (a *Agent) work(ctx context.Context) {
	for {
		k, quit := a.queue.Get()
		if quit {
			return
		}
		if err := a.reconcile(ctx, k); err != nil {
			a.log.Warn("work group", "group", k.Name, "err", err)
			a.queue.AddRateLimited(k)
		} else {
			a.queue.Forget(k)
		}
		a.queue.Done(k)
	}
}

// reconcile makes the runtime run the group as its record says, and
// writes what it observes.
func (a *Agent) reconcile(ctx context.Context, k store.Change) error {
	cg, err := a.st.GetContainerGroup(ctx, k.Subscription, k.ResourceGroup, k.Name)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return a.orphaned(ctx, k)
	}
	if err != nil {
		return err
	}
	// The record names its runtime group: a group handed over from a
	// standby pool runs under the id its pool member was created with.
	id := cg.RuntimeID
	if cg.Host != a.cfg.Name {
		// Not placed here (yet), or moved to another host while this one
		// was lost: then it must not run here too.
		if cg.Host != "" {
			if _, err := a.rt.Status(id); err == nil {
				a.log.Info("removing group that moved to another host", "group", cg.Resource.Name, "host", cg.Host)
				if err := a.rt.Delete(ctx, id, -1); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
					return err
				}
			}
			a.forget(id)
		}
		return nil
	}
	a.mu.Lock()
	a.keys[id] = k
	a.mu.Unlock()
	if lifecycle.Provisioning(cg.Resource.Properties.ProvisioningState) == lifecycle.Deleting {
		return a.remove(ctx, cg)
	}
	obs := store.Observed{}
	if cg.Observed != nil {
		obs = *cg.Observed
	}
	_, statusErr := a.rt.Status(id)
	inRuntime := statusErr == nil
	switch {
	case cg.Observed == nil || obs.Generation != cg.Generation || (!inRuntime && obs.Error == nil):
		// A generation not run yet, or one the runtime lost: run it.
		stopAsked := cg.Action.Kind == store.ActionStop && cg.Action.Seq > obs.ActionSeq
		props, err := a.resolveShares(ctx, cg)
		var mountErr *mountError
		if err != nil && !errors.As(err, &mountErr) {
			return err // the store did not answer: try again
		}
		if err == nil {
			err = a.run(ctx, cg, props, inRuntime)
		} else if inRuntime { // the generation it ran is replaced by one that cannot run
			if derr := a.rt.Delete(ctx, cg.RuntimeID, -1); derr != nil && !errdefs.Is(derr, errdefs.ErrNotFound) {
				return derr
			}
		}
		if err != nil {
			obs = failedObserved(err, "ContainerGroupDeploymentFailed")
		} else {
			obs = store.Observed{}
			if stopAsked { // a stop asked while it was being created
				if err := a.act(ctx, cg.RuntimeID, store.ActionStop); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
					obs.ActionError = errorBody(err, "ContainerGroupOperationFailed")
				}
			}
		}
		obs.Generation, obs.ActionSeq = cg.Generation, cg.Action.Seq
	case cg.Action.Seq > obs.ActionSeq:
		obs.ActionError = nil
		if err := a.act(ctx, id, cg.Action.Kind); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			obs.ActionError = errorBody(err, "ContainerGroupOperationFailed")
		}
		obs.ActionSeq = cg.Action.Seq
	}
	return a.write(ctx, cg, obs, false)
}

// run creates the group's current generation in the runtime; a group the
// runtime holds with other containers is removed first, one with the
// same containers (a PUT of tags, say) is left running, and one whose
// containers differ only in their config maps gets them in place.
//
// props are the group's properties as the runtime runs them: with its
// azureFile volumes resolved (resolveShares).
func (a *Agent) run(ctx context.Context, cg *store.ContainerGroup, props *api.ContainerGroupProperties, inRuntime bool) error {
	if inRuntime {
		spec, err := a.rt.Spec(cg.RuntimeID)
		if err == nil && api.SameContainers(&spec.Properties, props) {
			return nil
		}
		// When only config maps changed, their files change in place.
		// UpdateConfigMaps refuses anything else with ErrConflict (a
		// config map given to a container without one needs a new mount):
		// then the group is created again, as it is when the runtime
		// lost it meanwhile.
		if err == nil {
			err := a.rt.UpdateConfigMaps(cg.RuntimeID, props)
			if !errdefs.Is(err, errdefs.ErrConflict) && !errdefs.Is(err, errdefs.ErrNotFound) {
				return err
			}
		}
		if err := a.rt.Delete(ctx, cg.RuntimeID, -1); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			return err
		}
	}
	spec := runtime.GroupSpec{Name: cg.Resource.Name, Properties: *props, Tenant: cg.Subscription}
	spec.Properties.InstanceView = nil
	spec.Properties.ProvisioningState = ""
	if err := a.rt.Create(ctx, cg.RuntimeID, spec); err != nil && !errdefs.Is(err, errdefs.ErrAlreadyExists) {
		return err
	}
	return nil
}

func (a *Agent) act(ctx context.Context, id, kind string) error {
	switch kind {
	case store.ActionStop:
		return a.rt.Stop(ctx, id)
	case store.ActionStart:
		return a.rt.Start(ctx, id)
	case store.ActionRestart:
		return a.rt.Restart(ctx, id)
	}
	return fmt.Errorf("unknown action %q: %w", kind, errdefs.ErrInvalidArgument)
}

// remove deletes a Deleting group from the runtime, then its record
// (only the same Deleting record: a group created again meanwhile stays).
func (a *Agent) remove(ctx context.Context, cg *store.ContainerGroup) error {
	// A removal that failed is tried again when a DELETE came after it
	// (the record's UpdatedAt), or once after a start; not on the agent's
	// own write of the failure.
	if o := cg.Observed; o != nil && o.DeleteError != nil && cg.UpdatedAt.Before(o.UpdatedAt) && a.triedRemove(cg.RuntimeID) {
		return nil
	}
	grace := time.Duration(-1)
	if cg.DeleteGrace != nil {
		grace = *cg.DeleteGrace
	}
	if err := a.rt.Delete(ctx, cg.RuntimeID, grace); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
		a.log.Error("delete group", "group", cg.Resource.Name, "err", err)
		obs := store.Observed{}
		if cg.Observed != nil {
			obs = *cg.Observed
		}
		obs.DeleteError = errorBody(err, "ContainerGroupDeletionFailed")
		// Written even when it failed the same way before: the time says
		// which DELETE this attempt answers. The record stays Deleting;
		// the next DELETE or start tries again.
		return a.write(ctx, cg, obs, true)
	}
	if err := lifecycle.Transition(lifecycle.Deleting, lifecycle.None, lifecycle.Agent); err != nil {
		return err
	}
	gen := cg.Generation
	err := a.st.DeleteContainerGroupIf(ctx, cg.Subscription, cg.ResourceGroup, cg.Resource.Name, func(cur *store.ContainerGroup) error {
		if lifecycle.Provisioning(cur.Resource.Properties.ProvisioningState) != lifecycle.Deleting || cur.Generation != gen {
			return errChanged
		}
		return nil
	})
	if errors.Is(err, errChanged) {
		return nil // created again: the next pass runs the new one
	}
	if err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
		return err
	}
	a.forget(cg.RuntimeID)
	return nil
}

var errChanged = errors.New("the record changed")

// orphaned handles a group whose record is gone: the runtime group its
// name derives is nobody's (say, one the controller removed the record of
// before it was placed, by a version of Skiff that had no placement), and
// is removed, unless a record placed here names it: a standby pool's
// member handed over to a new group (store.HandOverContainerGroup writes
// that record in the transaction that removes this one, so it is read
// here), which is then worked instead.
func (a *Agent) orphaned(ctx context.Context, k store.Change) error {
	id := store.RuntimeID(k.Subscription, k.ResourceGroup, k.Name)
	if _, err := a.rt.Status(id); err == nil {
		cgs, err := store.AllContainerGroups(ctx, a.st)
		if err != nil {
			return err
		}
		for _, cg := range cgs {
			if cg.RuntimeID == id && cg.Host == a.cfg.Name {
				a.queue.Add(store.GroupChange(cg.Subscription, cg.ResourceGroup, cg.Resource.Name))
				a.forgetIf(id, k)
				return nil
			}
		}
		if err := a.rt.Delete(ctx, id, -1); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			return err
		}
	}
	a.forgetIf(id, k)
	return nil
}

// triedRemove reports whether this agent tried to remove the group since
// it started, and notes that it does now.
func (a *Agent) triedRemove(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.removing[id] {
		return true
	}
	a.removing[id] = true
	return false
}

// forgetIf forgets id if it is still known as k's (not as the group it
// was handed over to).
func (a *Agent) forgetIf(id string, k store.Change) {
	a.mu.Lock()
	if cur, ok := a.keys[id]; !ok || cur == k {
		delete(a.keys, id)
		delete(a.removing, id)
	}
	a.mu.Unlock()
}

func (a *Agent) forget(id string) {
	a.mu.Lock()
	delete(a.keys, id)
	delete(a.removing, id)
	a.mu.Unlock()
}

// write stores obs, completed with what the runtime reports now, if it
// differs from what is stored (or always, if force).
func (a *Agent) write(ctx context.Context, cg *store.ContainerGroup, obs store.Observed, force bool) error {
	if st, err := a.rt.Status(cg.RuntimeID); err == nil {
		fill(&obs, st, a.rt.Network.Config().PublicAddress)
	} else if obs.State == "" {
		obs.State = string(lifecycle.GroupPending)
	}
	if !force && cg.Observed != nil && sameObserved(cg.Observed, &obs) {
		return nil
	}
	obs.UpdatedAt = time.Now().UTC()
	gen := cg.Generation
	_, err := a.st.UpdateContainerGroup(ctx, cg.Subscription, cg.ResourceGroup, cg.Resource.Name, func(cur *store.ContainerGroup) error {
		if cur.Generation != gen || cur.Host != a.cfg.Name {
			return errChanged // a newer PUT: the next pass observes that one
		}
		cur.Observed = &obs
		return nil
	})
	if errors.Is(err, errChanged) || errdefs.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	return err
}

// fill copies the runtime's status into obs.
func fill(obs *store.Observed, st *runtime.GroupStatus, publicIP string) {
	obs.State, obs.Error = st.State, nil
	if st.Error != nil {
		obs.Error = &api.ErrorBody{Code: st.Error.Code, Message: st.Error.Message}
	}
	obs.IP, obs.PublicIP = st.IP, publicIP
	obs.Events = append([]api.Event{}, st.Events...)
	obs.Containers = make([]store.ObservedContainer, 0, len(st.Containers))
	for _, cs := range st.Containers {
		cur := cs.CurrentState
		ready := cs.Ready && cur.State == api.ContainerRunning
		v := api.ContainerInstanceView{RestartCount: cs.RestartCount, CurrentState: &cur, Events: append([]api.Event{}, cs.Events...), Ready: &ready}
		if cs.PreviousState != nil {
			p := *cs.PreviousState
			v.PreviousState = &p
		}
		obs.Containers = append(obs.Containers, store.ObservedContainer{Name: cs.Name, Init: cs.Init, View: v})
	}
}

// sameObserved compares as stored: an empty list and none are the same
// record (omitempty), so a group observed again as it was is not written
// again, which would wake its own watch.
func sameObserved(a, b *store.Observed) bool {
	x, y := *a, *b
	x.UpdatedAt, y.UpdatedAt = time.Time{}, time.Time{}
	jx, errx := json.Marshal(x)
	jy, erry := json.Marshal(y)
	return errx == nil && erry == nil && bytes.Equal(jx, jy)
}

func errorBody(err error, def string) *api.ErrorBody {
	code := errdefs.CodeOf(err)
	if code == "" {
		code = def
	}
	return &api.ErrorBody{Code: code, Message: err.Error()}
}
