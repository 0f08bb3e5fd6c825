package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// GCPolicy is the kubelet's image GC policy: when the filesystem holding
// the store is at least HighPercent full, unused images are removed, oldest
// first, until it is at most LowPercent full.
type GCPolicy struct {
	HighPercent, LowPercent int
}

// Validate checks 0 <= Low <= High <= 100 (High 100 never collects).
func (p GCPolicy) Validate() error {
	if p.LowPercent < 0 || p.HighPercent > 100 || p.LowPercent > p.HighPercent {
		return fmt.Errorf("image gc thresholds: want 0 <= low (%d) <= high (%d) <= 100: %w", p.LowPercent, p.HighPercent, errdefs.ErrInvalidArgument)
	}
	return nil
}

// PolicyResult reports what ApplyGCPolicy did.
type PolicyResult struct {
	// Triggered is true when usage was at or above the high threshold.
	Triggered bool
	// UsedBefore and UsedAfter are the filesystem's used percentage.
	UsedBefore, UsedAfter float64
	// Removed lists the images removed (as written by users).
	Removed []string
	GCResult
}

// DiskUsage returns the used percentage of the filesystem holding path
// (capacity minus space available to unprivileged users, as the kubelet
// counts it).
func DiskUsage(path string) (float64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	if st.Blocks == 0 {
		return 0, nil
	}
	return float64(st.Blocks-st.Bavail) * 100 / float64(st.Blocks), nil
}

// ApplyGCPolicy removes images that no entry of the in-use list names
// (references, manifest digests or image IDs, as Get accepts them), oldest
// first, with their now unreferenced layers, while the store's filesystem
// is above p.LowPercent, once it has reached p.HighPercent. Images in use
// are never removed.
//
// inUse is called once the policy holds the store: Get, Pull and Import
// wait until it is done, so an image a group starts to use while GC runs is
// either in the list or is looked up after GC finished. Callers that
// record a group's images before looking them up (as the runtime records a
// group before it pulls) therefore never lose an image between pull and
// container start.
func (s *Store) ApplyGCPolicy(ctx context.Context, p GCPolicy, inUse func() ([]string, error)) (PolicyResult, error) {
	var res PolicyResult
	if err := p.Validate(); err != nil {
		return res, err
	}
	used, err := DiskUsage(s.root)
	if err != nil {
		return res, err
	}
	res.UsedBefore, res.UsedAfter = used, used
	if used < float64(p.HighPercent) {
		return res, nil
	}
	res.Triggered = true
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	var refs []string
	if inUse != nil {
		if refs, err = inUse(); err != nil {
			return res, fmt.Errorf("image gc: images in use: %w", err)
		}
	}
	s.log.Info("image gc: disk above high threshold", "usedPercent", used, "high", p.HighPercent, "low", p.LowPercent, "inUse", len(refs))
	gc := func() error {
		r, err := s.gcLocked(ctx, refs)
		res.RemovedLayers += r.RemovedLayers
		res.FreedBytes += r.FreedBytes
		if err != nil {
			return err
		}
		res.UsedAfter, err = DiskUsage(s.root)
		return err
	}
	if err := gc(); err != nil {
		return res, err
	}
	keep := map[string]bool{}
	for _, ref := range refs {
		if recs, err := s.resolve(ref); err == nil {
			for _, r := range recs {
				keep[r.Ref] = true
			}
		}
	}
	recs, err := s.records()
	if err != nil {
		return res, err
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].StoredAt.Before(recs[j].StoredAt) })
	for _, r := range recs {
		if res.UsedAfter <= float64(p.LowPercent) {
			break
		}
		if keep[r.Ref] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		s.recMu.Lock()
		err := os.Remove(s.recordPath(r.Ref))
		s.recMu.Unlock()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("image gc: remove %s: %w", r.Ref, err)
		}
		res.Removed = append(res.Removed, r.displayName())
		s.log.Info("image gc: image removed", "ref", r.displayName(), "digest", r.Digest)
		if err := gc(); err != nil {
			return res, err
		}
	}
	s.log.Info("image gc: done", "usedPercent", res.UsedAfter, "removed", len(res.Removed), "freedBytes", res.FreedBytes)
	return res, nil
}
