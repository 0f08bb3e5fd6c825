package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

const bucketObjects = "objects"

// createObjects adds the objects bucket (schema version 4):
//
//	objects
//	└── <kind>
//	    └── <key>     : revision (8 bytes, big-endian) + value
//
// A kind's bucket sequence gives the revisions.
func createObjects(tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists([]byte(bucketObjects))
	return err
}

// decodeObject splits a stored object into its revision and value.
func decodeObject(kind, key string, raw []byte) (Object, error) {
	if len(raw) < 8 {
		return Object{}, fmt.Errorf("%s %q: stored object of %d bytes: %w", kind, key, len(raw), errdefs.ErrUnavailable)
	}
	return Object{Kind: kind, Key: key, Revision: int64(binary.BigEndian.Uint64(raw)), Value: bytes.Clone(raw[8:])}, nil
}

// GetObject returns an object.
func (b *Bolt) GetObject(ctx context.Context, kind, key string) (*Object, error) {
	if err := CheckObjectName(kind, key); err != nil {
		return nil, err
	}
	var o Object
	err := b.view(ctx, func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucketObjects)).Bucket([]byte(kind))
		var raw []byte
		if bk != nil {
			raw = bk.Get([]byte(key))
		}
		if raw == nil {
			return ObjectNotFound(kind, key)
		}
		var err error
		o, err = decodeObject(kind, key, raw)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &o, nil
}

// ListObjects returns the kind's objects whose key starts with prefix.
func (b *Bolt) ListObjects(ctx context.Context, kind, prefix string) ([]Object, error) {
	if err := CheckObjectName(kind, "-"); err != nil {
		return nil, err
	}
	var out []Object
	err := b.view(ctx, func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucketObjects)).Bucket([]byte(kind))
		if bk == nil {
			return nil
		}
		c := bk.Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, v = c.Next() {
			o, err := decodeObject(kind, string(k), v)
			if err != nil {
				return err
			}
			out = append(out, o)
		}
		return nil
	})
	return out, err
}

// PutObject writes an object if rev allows it.
func (b *Bolt) PutObject(ctx context.Context, kind, key string, value []byte, rev int64) (int64, error) {
	if err := CheckObjectName(kind, key); err != nil {
		return 0, err
	}
	var next int64
	err := b.update(ctx, func(tx *bolt.Tx) error {
		bk, err := tx.Bucket([]byte(bucketObjects)).CreateBucketIfNotExists([]byte(kind))
		if err != nil {
			return err
		}
		stored, err := storedRevision(bk, kind, key)
		if err != nil {
			return err
		}
		if err := CheckObjectRevision(kind, key, rev, stored); err != nil {
			return err
		}
		seq, err := bk.NextSequence()
		if err != nil {
			return err
		}
		next = int64(seq)
		raw := make([]byte, 8, 8+len(value))
		binary.BigEndian.PutUint64(raw, seq)
		return bk.Put([]byte(key), append(raw, value...))
	})
	if err != nil {
		return 0, err
	}
	return next, nil
}

// DeleteObject removes an object if rev allows it.
func (b *Bolt) DeleteObject(ctx context.Context, kind, key string, rev int64) error {
	if err := CheckObjectName(kind, key); err != nil {
		return err
	}
	if rev == 0 { // as etcdstore: a bad argument before any lookup
		return fmt.Errorf("object revision 0 of a delete: %w", errdefs.ErrInvalidArgument)
	}
	return b.update(ctx, func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucketObjects)).Bucket([]byte(kind))
		if bk == nil {
			return ObjectNotFound(kind, key)
		}
		stored, err := storedRevision(bk, kind, key)
		if err != nil {
			return err
		}
		if stored == 0 {
			return ObjectNotFound(kind, key)
		}
		if err := CheckObjectRevision(kind, key, rev, stored); err != nil {
			return err
		}
		return bk.Delete([]byte(key))
	})
}

// storedRevision is the revision of the stored object, 0 if there is none.
func storedRevision(bk *bolt.Bucket, kind, key string) (int64, error) {
	raw := bk.Get([]byte(key))
	if raw == nil {
		return 0, nil
	}
	o, err := decodeObject(kind, key, raw)
	return o.Revision, err
}
