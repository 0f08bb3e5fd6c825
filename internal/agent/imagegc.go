package agent

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/skiff-sh/skiff/internal/runtime/image"
	"github.com/skiff-sh/skiff/internal/store"
)

// RunImageGC applies the image GC policy every interval until ctx ends,
// never removing an image in use (imagesInUse).
func (a *Agent) RunImageGC(ctx context.Context, p image.GCPolicy, interval time.Duration) {
	if interval <= 0 {
		interval = 5 * time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		res, err := a.rt.Images.ApplyGCPolicy(ctx, p, func() ([]string, error) { return a.imagesInUse(ctx) })
		if err != nil {
			a.log.Warn("image gc failed", "err", err)
			continue
		}
		if res.Triggered {
			a.log.Info("image gc", "usedBefore", res.UsedBefore, "usedAfter", res.UsedAfter, "removed", res.Removed, "freedBytes", res.FreedBytes)
		}
	}
}

// imagesInUse lists the images GC must keep: from the runtime's records,
// every image of every group it holds (running, stopped, finished, or being
// created right now, between pull and start), as written and by the
// manifest digest it runs, so a tag pointed elsewhere since keeps the old
// layers; and every image a stored group names, for accepted groups the
// runtime has not been asked to create yet. The GC policy calls it while it
// holds the image store, after which the runtime can only record groups
// whose images it looks up after GC.
func (a *Agent) imagesInUse(ctx context.Context) ([]string, error) {
	set := map[string]bool{}
	for _, id := range a.rt.List() {
		st, err := a.rt.Status(id)
		if err != nil {
			continue // deleted meanwhile
		}
		for _, c := range st.Containers {
			set[c.Image] = true
			set[c.ImageID] = true
		}
	}
	cgs, err := store.AllContainerGroups(ctx, a.st)
	if err != nil {
		return nil, err
	}
	for _, cg := range cgs {
		for _, img := range cg.Resource.Properties.Images() {
			set[img] = true
		}
	}
	delete(set, "")
	return slices.Sorted(maps.Keys(set)), nil
}
