package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Records keeps the JSON records of one kind of ARM resource in an
// ObjectStore, keyed by subscription, resource group and name (folded to
// lower case, as ARM compares them). The control plane's newer resources
// (standby pools, ...) keep their records so, each writing through one
// compare-and-swap (Modify).
type Records[T any] struct {
	St   ObjectStore
	Kind string
	// NotFound is the error of a record that is not there.
	NotFound func(rg, name string) error
}

// RecordKey is the object key of sub/rg/name.
func RecordKey(sub, rg, name string) string {
	return strings.ToLower(sub) + "/" + strings.ToLower(rg) + "/" + strings.ToLower(name)
}

// Get returns a record and its revision.
func (r Records[T]) Get(ctx context.Context, sub, rg, name string) (*T, int64, error) {
	o, err := r.St.GetObject(ctx, r.Kind, RecordKey(sub, rg, name))
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, 0, r.NotFound(rg, name)
	}
	if err != nil {
		return nil, 0, err
	}
	var v T
	if err := json.Unmarshal(o.Value, &v); err != nil {
		return nil, 0, fmt.Errorf("%s %s: %w", r.Kind, o.Key, err)
	}
	return &v, o.Revision, nil
}

// List returns the records of a resource group, or of a subscription when
// rg is "", or every one when sub is "" too, sorted by key.
func (r Records[T]) List(ctx context.Context, sub, rg string) ([]T, error) {
	prefix := ""
	if sub != "" {
		prefix = strings.ToLower(sub) + "/"
		if rg != "" {
			prefix += strings.ToLower(rg) + "/"
		}
	}
	objs, err := r.St.ListObjects(ctx, r.Kind, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		var v T
		if err := json.Unmarshal(o.Value, &v); err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.Kind, o.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Modify is a compare-and-swap of the record of sub/rg/name: f gets the
// stored record (nil if there is none) and returns the one to store; it is
// called again when another write came first. f's error is returned as is
// and nothing is written.
func (r Records[T]) Modify(ctx context.Context, sub, rg, name string, f func(*T) (*T, error)) (*T, error) {
	k := RecordKey(sub, rg, name)
	for range 10 {
		cur, rev, err := r.Get(ctx, sub, rg, name)
		if errdefs.Is(err, errdefs.ErrNotFound) {
			cur, rev = nil, 0
		} else if err != nil {
			return nil, err
		}
		next, err := f(cur)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(next)
		if err != nil {
			return nil, err
		}
		if _, err := r.St.PutObject(ctx, r.Kind, k, b, rev); errdefs.Is(err, errdefs.ErrConflict) {
			continue
		} else if err != nil {
			return nil, err
		}
		return next, nil
	}
	return nil, errdefs.WithCode(errdefs.ErrConflict, "Conflict", "The resource '%s' is being changed by another request; try again.", name)
}

// Update applies f to the stored record (NotFound if there is none), as
// Modify does.
func (r Records[T]) Update(ctx context.Context, sub, rg, name string, f func(*T) error) (*T, error) {
	return r.Modify(ctx, sub, rg, name, func(cur *T) (*T, error) {
		if cur == nil {
			return nil, r.NotFound(rg, name)
		}
		return cur, f(cur)
	})
}

// Delete removes a record.
func (r Records[T]) Delete(ctx context.Context, sub, rg, name string) error {
	err := r.St.DeleteObject(ctx, r.Kind, RecordKey(sub, rg, name), AnyRevision)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return r.NotFound(rg, name)
	}
	return err
}

// DeleteIn removes every record of a resource group.
func (r Records[T]) DeleteIn(ctx context.Context, sub, rg string) error {
	prefix := strings.ToLower(sub) + "/" + strings.ToLower(rg) + "/"
	objs, err := r.St.ListObjects(ctx, r.Kind, prefix)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := r.St.DeleteObject(ctx, r.Kind, o.Key, AnyRevision); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			return err
		}
	}
	return nil
}
