// Package reconcile runs the passes of the control plane's record
// reconcilers (NGroups, standby pools): each pass takes every record one
// step towards its spec, and passes run every Interval and at once when
// something kicks them (a PUT, a DELETE, a member handed over).
package reconcile

import (
	"context"
	"log/slog"
	"time"
)

// Loop is when passes run. Its zero value is not ready: use New.
type Loop struct {
	kick chan struct{}
	// Interval is how often a pass runs without a Kick.
	Interval time.Duration
}

// New returns a loop of passes every second.
func New() *Loop { return &Loop{kick: make(chan struct{}, 1), Interval: time.Second} }

// Kick makes the next pass run now (or right after the one running).
func (l *Loop) Kick() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Each runs passes over the records list returns until ctx ends: one
// calls step on each record, and logs what fails (the next pass tries
// again).
func Each[T any](ctx context.Context, l *Loop, log *slog.Logger, list func(context.Context) ([]T, error), id func(*T) string, step func(context.Context, *T) error) {
	t := time.NewTicker(l.Interval)
	defer t.Stop()
	for {
		recs, err := list(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("list", "err", err)
		}
		for i := range recs {
			if err := step(ctx, &recs[i]); err != nil && ctx.Err() == nil {
				log.Warn("reconcile", "id", id(&recs[i]), "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.kick:
		}
	}
}
