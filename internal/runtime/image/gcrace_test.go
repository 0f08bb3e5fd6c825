package image_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/image"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// inUseList is an in-use callback of a fixed list.
func inUseList(refs ...string) func() ([]string, error) {
	return func() ([]string, error) { return refs, nil }
}

// A group records its image before it looks it up, as the runtime does
// (Create records the group, then its containers pull). GC racing that
// lookup never hands out layers it then deletes: a lookup that comes while
// GC runs waits for it, and an image recorded before GC counted its users
// keeps its layers.
func TestGCPolicyRacingALookup(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	refA := testenv.Push(t, reg, "a:v1", testenv.BusyboxImage(t, testenv.ImageOptions{Layers: []testenv.LayerSpec{{Files: map[string]string{"a": "a"}}}}))
	refB := testenv.Push(t, reg, "b:v1", testenv.BusyboxImage(t, testenv.ImageOptions{Layers: []testenv.LayerSpec{{Files: map[string]string{"b": "b"}}}}))
	ctx := context.Background()
	s := newStore(t, image.Options{})
	for _, ref := range []string{refA, refB} {
		if _, err := s.Pull(ctx, ref, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	force := image.GCPolicy{HighPercent: 0, LowPercent: 0}

	// GC has counted its users (b only) when a's lookup starts.
	var mu sync.Mutex
	users := []string{refB}
	counted, release := make(chan struct{}), make(chan struct{})
	gcDone := make(chan image.PolicyResult, 1)
	go func() {
		res, err := s.ApplyGCPolicy(ctx, force, func() ([]string, error) {
			mu.Lock()
			snapshot := append([]string(nil), users...)
			mu.Unlock()
			close(counted)
			<-release // a's lookup comes now
			return snapshot, nil
		})
		if err != nil {
			t.Error(err)
		}
		gcDone <- res
	}()
	<-counted
	mu.Lock()
	users = append(users, refA) // too late for this GC
	mu.Unlock()
	type lookup struct {
		img *image.Image
		err error
	}
	got := make(chan lookup, 1)
	go func() {
		img, err := s.Get(refA)
		got <- lookup{img, err}
	}()
	select {
	case l := <-got:
		t.Fatalf("Get returned while GC ran (%v, %v): GC can delete what it handed out", l.img, l.err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	res := <-gcDone
	l := <-got
	if strings.Join(res.Removed, ",") != refA {
		t.Errorf("GC removed %v, want only the unused %s", res.Removed, refA)
	}
	if l.err == nil {
		for _, dir := range l.img.Layers {
			if _, err := os.Stat(dir); err != nil {
				t.Errorf("Get after GC handed out a deleted layer: %v", err)
			}
		}
	} else if !errors.Is(l.err, errdefs.ErrNotFound) {
		t.Errorf("Get after GC: %v", l.err)
	}

	// Recorded before GC counts: kept, layers and all.
	b, err := s.Get(refB)
	if err != nil {
		t.Fatalf("image in use removed: %v", err)
	}
	if res, err := s.ApplyGCPolicy(ctx, force, inUseList(refB)); err != nil || len(res.Removed) != 0 {
		t.Fatalf("forced GC with b in use: %+v %v", res, err)
	}
	for _, dir := range b.Layers {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("in-use layer removed: %v", err)
		}
	}
	// In use by manifest digest alone (a running container whose tag was
	// since pointed elsewhere, or removed): still kept.
	if err := s.Remove(refB); err != nil {
		t.Fatal(err)
	}
	if res, err := s.ApplyGCPolicy(ctx, force, inUseList(b.Digest)); err != nil || res.RemovedLayers != 0 {
		t.Fatalf("forced GC with b's digest in use: %+v %v", res, err)
	}
	for _, dir := range b.Layers {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("layer of a running digest removed: %v", err)
		}
	}
}
