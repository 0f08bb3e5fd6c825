// Package standbypool keeps standby container group pools: their records
// in the store's objects, and the reconciler that holds each pool at
// maxReadyCapacity members (container groups made from one container
// group profile revision, tagged api.StandbyPoolTag, in the pool's
// resource group). A create that names the pool is handed a ready member
// by the server (store.HandOverContainerGroup), and the pool refills.
//
// A pool's life, and who moves it:
//
//	PUT (server: Put) ──▶ Succeeded ──PUT──▶ Succeeded (members of an older revision are drained and replaced)
//	DELETE (server) ──▶ Deleting ──▶ gone (reconciler, once no member is left)
//
// A member's, as the reconciler sees it:
//
//	created ──▶ Creating ──▶ Running (ready: the server may hand it over) ──▶ handed over (no longer a member)
//	               │             │
//	               └─────────────┴──▶ failed, stopped or of an older revision: deleted, and replaced
package standbypool

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/deployment"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/reconcile"
	"github.com/skiff-sh/skiff/internal/store"
)

// Record is one standby pool as stored.
type Record struct {
	Subscription  string                    `json:"subscription"`
	ResourceGroup string                    `json:"resourceGroup"`
	Name          string                    `json:"name"`
	Location      string                    `json:"location"`
	Tags          map[string]string         `json:"tags,omitempty"`
	Spec          api.StandbyPoolProperties `json:"spec"`
	// ProfileID and Revision are the profile revision members are made
	// from: the one the spec names, or the latest when the spec was PUT.
	ProfileID string `json:"profileId"`
	Revision  int    `json:"revision"`
	// Principal is who the pool acts as: its PUT's principal, whose rights
	// its members' creates and deletes need.
	Principal deployment.Principal `json:"principal"`
	Deleting  bool                 `json:"deleting,omitempty"`
	CreatedAt time.Time            `json:"createdAt"`
}

// ID is the pool's resource ID.
func (r *Record) ID() string { return api.StandbyPoolID(r.Subscription, r.ResourceGroup, r.Name) }

// Capacity is maxReadyCapacity.
func (r *Record) Capacity() int { return *r.Spec.ElasticityProfile.MaxReadyCapacity }

// MemberPrefix is the prefix of the members' names: <pool>-<guid>.
func (r *Record) MemberPrefix() string { return strings.ToLower(r.Name) + "-" }

// View is the pool as the API shows it.
func (r *Record) View() *api.StandbyPool {
	spec := r.Spec
	spec.ProvisioningState = api.StandbyPoolSucceeded
	if r.Deleting {
		spec.ProvisioningState = api.StandbyPoolDeleting
	}
	groups := *r.Spec.ContainerGroupProperties
	rev := r.Revision
	groups.ContainerGroupProfile = &api.ProfileReference{ID: r.ProfileID, Revision: &rev}
	spec.ContainerGroupProperties = &groups
	return &api.StandbyPool{ID: r.ID(), Name: r.Name, Type: api.StandbyPoolResourceType, Location: r.Location,
		Tags: maps.Clone(r.Tags), Properties: spec}
}

// NotFound is the error of a missing pool.
func NotFound(rg, name string) error {
	return errdefs.WithCode(errdefs.ErrNotFound, "ResourceNotFound",
		"The Resource '%s/%s' under resource group '%s' was not found.", api.StandbyPoolResourceType, name, rg)
}

// Store keeps the pools' records.
type Store struct {
	store.Records[Record]
}

// NewStore returns the pools of st.
func NewStore(st store.ObjectStore) *Store {
	return &Store{store.Records[Record]{St: st, Kind: "standbypools", NotFound: NotFound}}
}

// Put creates the pool of spec or replaces its spec, refusing a pool being
// deleted; created reports which.
func (s *Store) Put(ctx context.Context, sub, rg, name string, sp *api.StandbyPool, profileID string, revision int, who deployment.Principal) (*Record, bool, error) {
	created := false
	r, err := s.Modify(ctx, sub, rg, name, func(r *Record) (*Record, error) {
		created = r == nil
		if created {
			r = &Record{Subscription: sub, ResourceGroup: rg, Name: name, CreatedAt: time.Now().UTC()}
		} else if r.Deleting {
			return nil, errdefs.WithCode(errdefs.ErrConflict, "StandbyPoolBeingDeleted", "The standby pool '%s' is being deleted.", name)
		}
		r.Location, r.Tags, r.Spec = sp.Location, maps.Clone(sp.Tags), sp.Properties
		r.Spec.ProvisioningState = ""
		r.ProfileID, r.Revision, r.Principal = profileID, revision, who
		return r, nil
	})
	return r, created, err
}

// State is what the reconciler makes of a member.
type State string

// Member states, as a pool's runtime view counts them.
const (
	// Creating: not running and ready yet.
	Creating State = "Creating"
	// Running: running and ready; the server may hand it over.
	Running State = "Running"
	// Deleting: being deleted.
	Deleting State = "Deleting"
	// Unusable: failed, stopped or exited; it is replaced.
	Unusable State = "Unusable"
)

// Member is one container group of a pool.
type Member struct {
	Name      string
	Revision  int // of the profile it was made from
	State     State
	CreatedAt time.Time
}

// Members is what the reconciler does to container groups, as the pool's
// principal; the server does it through its own routes.
type Members interface {
	List(ctx context.Context, r *Record) ([]Member, error)
	Create(ctx context.Context, r *Record, name string) error
	Delete(ctx context.Context, r *Record, name string) error
}

// Reconciler keeps the pools of a Store.
type Reconciler struct {
	*reconcile.Loop
	st      *Store
	members Members
	log     *slog.Logger
}

// NewReconciler returns the reconciler of st's pools.
func NewReconciler(st *Store, m Members, log *slog.Logger) *Reconciler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{Loop: reconcile.New(), st: st, members: m, log: log}
}

// Run reconciles every pool each second, and at once on a Kick (after a
// PUT, a DELETE, or a member's change), until ctx ends.
func (c *Reconciler) Run(ctx context.Context) {
	reconcile.Each(ctx, c.Loop, c.log, func(ctx context.Context) ([]Record, error) { return c.st.List(ctx, "", "") },
		(*Record).ID, c.Reconcile)
}

// Reconcile takes one pool one step towards maxReadyCapacity members of
// its revision.
func (c *Reconciler) Reconcile(ctx context.Context, r *Record) error {
	ms, err := c.members.List(ctx, r)
	if err != nil {
		return err
	}
	del := func(m Member) error {
		if err := c.members.Delete(ctx, r, m.Name); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			return err
		}
		return nil
	}
	if r.Deleting {
		for _, m := range ms {
			if m.State != Deleting {
				if err := del(m); err != nil {
					return err
				}
			}
		}
		if len(ms) == 0 {
			if err := c.st.Delete(ctx, r.Subscription, r.ResourceGroup, r.Name); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
				return err
			}
			c.log.Info("standby pool deleted", "pool", r.ID())
		}
		return nil
	}
	// Members that cannot be handed over, or are of an older revision,
	// go; the rest count.
	var alive []Member
	for _, m := range ms {
		switch {
		case m.State == Deleting:
		case m.State == Unusable || m.Revision != r.Revision:
			if err := del(m); err != nil {
				return err
			}
		default:
			alive = append(alive, m)
		}
	}
	want := r.Capacity()
	if len(alive) > want {
		// The ones not ready yet go first, then the newest.
		slices.SortStableFunc(alive, func(a, b Member) int {
			if (a.State == Running) != (b.State == Running) {
				if a.State != Running {
					return -1
				}
				return 1
			}
			return b.CreatedAt.Compare(a.CreatedAt)
		})
		for _, m := range alive[:len(alive)-want] {
			if err := del(m); err != nil {
				return err
			}
		}
		return nil
	}
	for n := len(alive); n < want; n++ {
		name := r.MemberPrefix() + uuid.NewString()
		if err := c.members.Create(ctx, r, name); err != nil {
			return fmt.Errorf("create member %s: %w", name, err)
		}
	}
	return nil
}

// View is the pool's runtime view: its members counted by state, and its
// health (healthy when maxReadyCapacity members are ready).
func View(r *Record, ms []Member) *api.StandbyPoolRuntimeView {
	counts := map[State]int{}
	for _, m := range ms {
		counts[m.State]++
	}
	var by []api.StandbyPoolStateCount
	for _, st := range []State{Creating, Running, Deleting} {
		by = append(by, api.StandbyPoolStateCount{State: string(st), Count: counts[st]})
	}
	status := &api.StandbyPoolStatus{Code: "HealthState/healthy", Message: "The pool holds its maxReadyCapacity of ready container groups."}
	if counts[Running] < r.Capacity() {
		status = &api.StandbyPoolStatus{Code: "HealthState/degraded",
			Message: fmt.Sprintf("%d of maxReadyCapacity %d container groups are ready; the pool is refilling.", counts[Running], r.Capacity())}
	}
	prov := api.StandbyPoolSucceeded
	if r.Deleting {
		prov = api.StandbyPoolDeleting
	}
	return &api.StandbyPoolRuntimeView{ID: r.ID() + "/runtimeViews/latest", Name: "latest", Type: api.StandbyPoolResourceType + "/runtimeViews",
		Properties: api.StandbyPoolRuntimeViewProperties{InstanceCountSummary: []api.StandbyPoolCountSummary{{InstanceCountsByState: by}},
			Status: status, ProvisioningState: prov}}
}
