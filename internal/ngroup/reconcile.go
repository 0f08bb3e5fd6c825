package ngroup

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/reconcile"
)

// Health is what a member's state says of it.
type Health int

const (
	// Pending: not running yet (pulling, starting).
	Pending Health = iota
	// Running: its containers run.
	Running
	// Unhealthy: failed, or stopped and not coming back.
	Unhealthy
)

// Member is one container group of an NGroup.
type Member struct {
	Name     string
	Revision int // of the profile it was made from
	Health   Health
	// Stalled: not running yet and backing off (its image does not pull,
	// it crashes as it starts). A rolling update counts it unhealthy; it is
	// not replaced for it, as a replacement would stall alike.
	Stalled   bool
	Deleting  bool
	CreatedAt time.Time
}

// Members is what the reconciler does to container groups, as the
// NGroup's principal; the server does it through its own routes.
type Members interface {
	List(ctx context.Context, r *Record) ([]Member, error)
	// Create makes member name from the profile's revision; Update makes
	// an existing member that revision (in place).
	Create(ctx context.Context, r *Record, name string, revision int) error
	Update(ctx context.Context, r *Record, name string, revision int) error
	Delete(ctx context.Context, r *Record, name string) error
}

// Reconciler keeps the NGroups of a Store.
type Reconciler struct {
	*reconcile.Loop
	st      *Store
	members Members
	log     *slog.Logger
}

// NewReconciler returns the reconciler of st's NGroups.
func NewReconciler(st *Store, m Members, log *slog.Logger) *Reconciler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{Loop: reconcile.New(), st: st, members: m, log: log}
}

// Run reconciles every NGroup each second, and at once on a Kick (after a
// PUT, a DELETE, or a member's change), until ctx ends.
func (c *Reconciler) Run(ctx context.Context) {
	reconcile.Each(ctx, c.Loop, c.log, func(ctx context.Context) ([]Record, error) { return c.st.List(ctx, "", "") },
		(*Record).ID, c.Reconcile)
}

// Reconcile takes one NGroup one step towards its spec and saves what it
// found (its state, the rollout's).
func (c *Reconciler) Reconcile(ctx context.Context, r *Record) error {
	ms, err := c.members.List(ctx, r)
	if err != nil {
		return err
	}
	if r.Deleting {
		for _, m := range ms {
			if !m.Deleting {
				if err := c.members.Delete(ctx, r, m.Name); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
					return err
				}
			}
		}
		if len(ms) == 0 {
			if err := c.st.Delete(ctx, r.Subscription, r.ResourceGroup, r.Name); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
				return err
			}
			c.log.Info("ngroup deleted", "ngroup", r.ID())
		}
		return nil
	}
	before, _ := json.Marshal(r)
	if !r.Stopped {
		if err := c.step(ctx, r, ms); err != nil {
			r.Message = err.Error()
			c.log.Warn("ngroup step", "ngroup", r.ID(), "err", err)
		}
	}
	if after, _ := json.Marshal(r); string(after) == string(before) {
		return nil
	}
	_, err = c.st.Update(ctx, r.Subscription, r.ResourceGroup, r.Name, func(cur *Record) error {
		if cur.Generation != r.Generation || cur.Deleting || cur.Stopped != r.Stopped {
			return errSuperseded // a PUT, DELETE, start or stop came meanwhile: the next pass sees it
		}
		cur.State, cur.Message, cur.ScaledFor = r.State, r.Message, r.ScaledFor
		cur.RolloutStopped, cur.LastBatch = r.RolloutStopped, r.LastBatch
		return nil
	})
	if err == errSuperseded {
		return nil
	}
	return err
}

var errSuperseded = fmt.Errorf("superseded")

// step creates, deletes and updates members, and sets r's state.
func (c *Reconciler) step(ctx context.Context, r *Record, ms []Member) error {
	want := r.Desired()
	maintain := *r.Spec.ElasticProfile.MaintainDesiredCount
	up := r.Spec.UpdateProfile
	rolling := up.UpdateMode == api.UpdateRolling
	var alive []Member
	for _, m := range ms {
		if !m.Deleting {
			alive = append(alive, m)
		}
	}
	// A member that failed is replaced, when the count is maintained;
	// not one of a stopped rollout's, which would fail again.
	if maintain {
		kept := alive[:0]
		for _, m := range alive {
			if m.Health == Unhealthy && !(r.RolloutStopped && m.Revision == r.Revision) {
				if err := c.members.Delete(ctx, r, m.Name); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
					return err
				}
				c.log.Info("ngroup member replaced", "ngroup", r.ID(), "member", m.Name)
				continue
			}
			kept = append(kept, m)
		}
		alive = kept
	}
	// Scale down: the unhealthy first, then the old revisions, then the
	// newest.
	if len(alive) > want {
		slices.SortStableFunc(alive, func(a, b Member) int {
			if (a.Health == Unhealthy) != (b.Health == Unhealthy) {
				if a.Health == Unhealthy {
					return -1
				}
				return 1
			}
			if (a.Revision == r.Revision) != (b.Revision == r.Revision) {
				if a.Revision != r.Revision {
					return -1
				}
				return 1
			}
			return b.CreatedAt.Compare(a.CreatedAt)
		})
		for _, m := range alive[:len(alive)-want] {
			if err := c.members.Delete(ctx, r, m.Name); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
				return err
			}
		}
		alive = alive[len(alive)-want:]
	}
	// Scale up, at the NGroup's revision.
	if len(alive) < want && (maintain || r.ScaledFor != r.Generation) {
		for len(alive) < want {
			name := r.MemberPrefix() + uuid.NewString()
			if err := c.members.Create(ctx, r, name, r.Revision); err != nil {
				return fmt.Errorf("create member %s: %w", name, err)
			}
			alive = append(alive, Member{Name: name, Revision: r.Revision, Health: Pending, CreatedAt: time.Now()})
		}
	}
	if len(alive) >= want {
		r.ScaledFor = r.Generation
	}
	// A rolling update: a batch at a time, each once the last one runs,
	// stopped when too many of the new revision's members are unhealthy.
	var old, updated []Member
	for _, m := range alive {
		if m.Revision == r.Revision {
			updated = append(updated, m)
		} else {
			old = append(old, m)
		}
	}
	if rolling && len(old) > 0 && !r.RolloutStopped {
		ru := up.RollingUpdateProfile
		unhealthy, pending := 0, 0
		for _, m := range updated {
			switch {
			case m.Health == Unhealthy, m.Health == Pending && m.Stalled:
				unhealthy++
			case m.Health == Pending:
				pending++
			}
		}
		base := max(want, 1)
		if unhealthy*100 > *ru.MaxUnhealthyPercent*base {
			r.RolloutStopped = true
			r.Message = fmt.Sprintf("The rolling update to revision %d stopped: %d of %d members of that revision are unhealthy, more than maxUnhealthyPercent %d%% of %d.",
				r.Revision, unhealthy, len(updated), *ru.MaxUnhealthyPercent, want)
			c.log.Warn("ngroup rolling update stopped", "ngroup", r.ID(), "revision", r.Revision, "unhealthy", unhealthy)
		} else if pause, _ := api.ParseISODuration(ru.PauseTimeBetweenBatches); pending == 0 && time.Since(r.LastBatch) >= pause {
			batch := max(1, (want**ru.MaxBatchPercent+99)/100)
			slices.SortStableFunc(old, func(a, b Member) int { return a.CreatedAt.Compare(b.CreatedAt) })
			for _, m := range old[:min(batch, len(old))] {
				if *ru.InPlaceUpdate {
					if err := c.members.Update(ctx, r, m.Name, r.Revision); err != nil {
						return fmt.Errorf("update member %s: %w", m.Name, err)
					}
					continue
				}
				if err := c.members.Delete(ctx, r, m.Name); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
					return err
				}
				name := r.MemberPrefix() + uuid.NewString()
				if err := c.members.Create(ctx, r, name, r.Revision); err != nil {
					return fmt.Errorf("create member %s: %w", name, err)
				}
			}
			r.LastBatch = time.Now().UTC()
			c.log.Info("ngroup rolling update batch", "ngroup", r.ID(), "revision", r.Revision, "batch", min(batch, len(old)))
		}
	}
	running := 0
	for _, m := range alive {
		if m.Health == Running {
			running++
		}
	}
	switch {
	case r.RolloutStopped:
		r.State = api.NGroupFailed
	case r.ScaledFor == r.Generation && running == len(alive) && (len(old) == 0 || !rolling) && len(alive) <= want:
		r.State, r.Message = api.NGroupSucceeded, ""
	case r.State == api.NGroupCreating && r.ScaledFor != r.Generation:
	default:
		if r.State != api.NGroupCreating {
			r.State = api.NGroupUpdating
		}
	}
	return nil
}
