package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Object is one document of a kind the store does not interpret: the
// records that later parts of the control plane add beside the container
// groups (identities, role assignments, deployments).
type Object struct {
	Kind, Key string
	// Value is the caller's encoding (JSON); the caller seals any secret
	// in it.
	Value []byte
	// Revision changes with every write of the object; it is > 0.
	Revision int64
}

// AnyRevision, as PutObject's or DeleteObject's rev, writes whatever is
// stored.
const AnyRevision int64 = -1

// ObjectStore keeps Objects by kind and key. Kinds are short lower-case
// names ([a-z0-9.-]); keys are any non-empty string without NUL (they may
// hold "/"), compared as bytes: callers lower-case keys that ARM compares
// without case. Writes of objects are not in Watch.
type ObjectStore interface {
	// GetObject returns an object, or ErrNotFound (ObjectNotFound).
	GetObject(ctx context.Context, kind, key string) (*Object, error)
	// ListObjects returns the kind's objects whose key starts with prefix
	// ("" all), sorted by key.
	ListObjects(ctx context.Context, kind, prefix string) ([]Object, error)
	// PutObject writes an object and returns its new revision. rev 0
	// creates only (ErrConflict, ObjectExists, if there is one); rev > 0
	// replaces only that revision (ErrConflict, ObjectChanged, if another
	// is stored; ErrNotFound if none is); AnyRevision writes.
	PutObject(ctx context.Context, kind, key string, value []byte, rev int64) (int64, error)
	// DeleteObject removes an object; rev is as PutObject's (AnyRevision:
	// whatever is stored). ErrNotFound if there is none.
	DeleteObject(ctx context.Context, kind, key string, rev int64) error
}

// CheckObjectName refuses a kind or key an ObjectStore does not keep.
func CheckObjectName(kind, key string) error {
	if kind == "" || len(kind) > 64 || strings.Trim(kind, "abcdefghijklmnopqrstuvwxyz0123456789.-") != "" {
		return fmt.Errorf("object kind %q: want 1-64 of [a-z0-9.-]: %w", kind, errdefs.ErrInvalidArgument)
	}
	if key == "" || strings.ContainsRune(key, 0) {
		return fmt.Errorf("object key %q: want a non-empty string without NUL: %w", key, errdefs.ErrInvalidArgument)
	}
	return nil
}

// ObjectNotFound is the error of a missing object.
func ObjectNotFound(kind, key string) error {
	return errdefs.WithCode(errdefs.ErrNotFound, "ObjectNotFound", "%s %q not found", kind, key)
}

// ObjectExists is the error of a create (rev 0) of an object that exists.
func ObjectExists(kind, key string) error {
	return errdefs.WithCode(errdefs.ErrConflict, "ObjectExists", "%s %q exists already", kind, key)
}

// ObjectChanged is the error of a write of a revision that is no longer
// the stored one.
func ObjectChanged(kind, key string, rev int64) error {
	return errdefs.WithCode(errdefs.ErrConflict, "ObjectChanged", "%s %q changed since revision %d", kind, key, rev)
}

// CheckObjectRevision decides a write of rev over the stored revision
// (0: there is none), as ObjectStore documents.
func CheckObjectRevision(kind, key string, rev, stored int64) error {
	switch {
	case rev == AnyRevision:
		return nil
	case rev == 0 && stored != 0:
		return ObjectExists(kind, key)
	case rev > 0 && stored == 0:
		return ObjectNotFound(kind, key)
	case rev > 0 && rev != stored:
		return ObjectChanged(kind, key, rev)
	case rev < 0:
		return fmt.Errorf("object revision %d: %w", rev, errdefs.ErrInvalidArgument)
	}
	return nil
}
