package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

// wantCode checks that err is of class and has the ARM code.
func wantCode(t *testing.T, err, class error, code string) {
	t.Helper()
	var c *errdefs.Coded
	if !errors.Is(err, class) || !errors.As(err, &c) || c.Code != code {
		t.Fatalf("err = %v, want %v with code %s", err, class, code)
	}
}

// Objects: create-only, compare-and-swap by revision, any-revision
// writes, prefix lists in key order, deletes, keys with slashes and case,
// bad names refused, and everything still there after a reopen.
func testObjects(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	s := open(t)
	const kind = "test.things"

	_, err := s.GetObject(ctx, kind, "a")
	wantCode(t, err, errdefs.ErrNotFound, "ObjectNotFound")
	if l, err := s.ListObjects(ctx, kind, ""); err != nil || len(l) != 0 {
		t.Fatalf("list of an unused kind = %v, %v", l, err)
	}

	r1, err := s.PutObject(ctx, kind, "/subscriptions/S/resourceGroups/A", []byte(`{"v":1}`), 0)
	must(t, err)
	if r1 <= 0 {
		t.Fatalf("revision %d, want > 0", r1)
	}
	_, err = s.PutObject(ctx, kind, "/subscriptions/S/resourceGroups/A", []byte(`{"v":9}`), 0)
	wantCode(t, err, errdefs.ErrConflict, "ObjectExists")

	r2, err := s.PutObject(ctx, kind, "/subscriptions/S/resourceGroups/A", []byte(`{"v":2}`), r1)
	must(t, err)
	if r2 == r1 {
		t.Fatalf("a replace kept revision %d", r1)
	}
	_, err = s.PutObject(ctx, kind, "/subscriptions/S/resourceGroups/A", []byte(`{"v":3}`), r1)
	wantCode(t, err, errdefs.ErrConflict, "ObjectChanged")
	_, err = s.PutObject(ctx, kind, "absent", []byte(`{}`), r2)
	wantCode(t, err, errdefs.ErrNotFound, "ObjectNotFound")

	o, err := s.GetObject(ctx, kind, "/subscriptions/S/resourceGroups/A")
	must(t, err)
	if string(o.Value) != `{"v":2}` || o.Revision != r2 || o.Kind != kind || o.Key != "/subscriptions/S/resourceGroups/A" {
		t.Fatalf("GetObject = %+v %s, want v2 at revision %d", o, o.Value, r2)
	}
	// Keys are bytes: another case is another object.
	if _, err := s.GetObject(ctx, kind, "/subscriptions/s/resourcegroups/a"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a key of other case found: %v", err)
	}

	for _, k := range []string{"/subscriptions/S/resourceGroups/B", "/subscriptions/S", "/subscriptions/T/x", "other"} {
		_, err := s.PutObject(ctx, kind, k, []byte(k), store.AnyRevision)
		must(t, err)
	}
	if _, err := s.PutObject(ctx, "test.else", "/subscriptions/S/z", []byte("z"), 0); err != nil {
		t.Fatal(err)
	}
	keys := func(prefix string) string {
		t.Helper()
		l, err := s.ListObjects(ctx, kind, prefix)
		must(t, err)
		var ks []string
		for _, o := range l {
			if o.Kind != kind || o.Revision <= 0 {
				t.Fatalf("listed %+v", o)
			}
			ks = append(ks, o.Key)
		}
		return fmt.Sprint(ks)
	}
	if got, want := keys("/subscriptions/S/"), "[/subscriptions/S/resourceGroups/A /subscriptions/S/resourceGroups/B]"; got != want {
		t.Fatalf("list by prefix = %s, want %s", got, want)
	}
	if got, want := keys(""), "[/subscriptions/S /subscriptions/S/resourceGroups/A /subscriptions/S/resourceGroups/B /subscriptions/T/x other]"; got != want {
		t.Fatalf("list of all = %s, want %s", got, want)
	}

	err = s.DeleteObject(ctx, kind, "/subscriptions/S/resourceGroups/A", r1)
	wantCode(t, err, errdefs.ErrConflict, "ObjectChanged")
	must(t, s.DeleteObject(ctx, kind, "/subscriptions/S/resourceGroups/A", r2))
	wantCode(t, s.DeleteObject(ctx, kind, "/subscriptions/S/resourceGroups/A", store.AnyRevision), errdefs.ErrNotFound, "ObjectNotFound")
	must(t, s.DeleteObject(ctx, kind, "other", store.AnyRevision))

	for _, bad := range [][2]string{{"", "k"}, {"Upper", "k"}, {"a/b", "k"}, {kind, ""}, {kind, "a\x00b"}} {
		if _, err := s.PutObject(ctx, bad[0], bad[1], nil, 0); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("PutObject(%q, %q) = %v, want ErrInvalidArgument", bad[0], bad[1], err)
		}
	}
	if _, err := s.PutObject(ctx, kind, "neg", nil, -7); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("PutObject with revision -7 = %v, want ErrInvalidArgument", err)
	}

	must(t, s.Close())
	s = open(t)
	if got, want := keys(""), "[/subscriptions/S /subscriptions/S/resourceGroups/B /subscriptions/T/x]"; got != want {
		t.Fatalf("after a reopen: %s, want %s", got, want)
	}
}

// Concurrent compare-and-swap writers of one object: every increment
// lands once, none is lost.
func testObjectsCAS(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	s := open(t)
	const kind, key = "test.counter", "n"
	_, err := s.PutObject(ctx, kind, key, []byte("0"), 0)
	must(t, err)
	var wg sync.WaitGroup
	var conflicts atomic.Int64
	for range 8 {
		wg.Go(func() {
			for done := 0; done < 10; {
				o, err := s.GetObject(ctx, kind, key)
				if err != nil {
					t.Error(err)
					return
				}
				var n int
				fmt.Sscan(string(o.Value), &n)
				if _, err := s.PutObject(ctx, kind, key, []byte(fmt.Sprint(n+1)), o.Revision); errors.Is(err, errdefs.ErrConflict) {
					conflicts.Add(1)
					continue
				} else if err != nil {
					t.Error(err)
					return
				}
				done++
			}
		})
	}
	wg.Wait()
	o, err := s.GetObject(ctx, kind, key)
	must(t, err)
	if string(o.Value) != "80" {
		t.Fatalf("8 writers × 10 increments = %s (%d conflicts retried), want 80", o.Value, conflicts.Load())
	}
}
