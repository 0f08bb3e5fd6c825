package etcdstore

import (
	"bytes"
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

// Objects are kept under <prefix>objects/<kind>/<key>, the key as given;
// an object's revision is its key's ModRevision.
func (s *Store) objectKey(kind, key string) string { return s.prefix + dirObjects + kind + "/" + key }

// GetObject returns an object.
func (s *Store) GetObject(ctx context.Context, kind, key string) (*store.Object, error) {
	if err := store.CheckObjectName(kind, key); err != nil {
		return nil, err
	}
	resp, err := s.get(ctx, s.objectKey(kind, key))
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, store.ObjectNotFound(kind, key)
	}
	kv := resp.Kvs[0]
	return &store.Object{Kind: kind, Key: key, Value: bytes.Clone(kv.Value), Revision: kv.ModRevision}, nil
}

// ListObjects returns the kind's objects whose key starts with prefix,
// sorted by key.
func (s *Store) ListObjects(ctx context.Context, kind, prefix string) ([]store.Object, error) {
	if err := store.CheckObjectName(kind, "-"); err != nil {
		return nil, err
	}
	dir := s.objectKey(kind, "")
	resp, err := s.get(ctx, dir+prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, err
	}
	out := make([]store.Object, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, store.Object{Kind: kind, Key: string(kv.Key[len(dir):]), Value: bytes.Clone(kv.Value), Revision: kv.ModRevision})
	}
	return out, nil
}

// PutObject writes an object if rev allows it, in one transaction.
func (s *Store) PutObject(ctx context.Context, kind, key string, value []byte, rev int64) (int64, error) {
	if err := store.CheckObjectName(kind, key); err != nil {
		return 0, err
	}
	k := s.objectKey(kind, key)
	resp, err := s.objectTxn(ctx, kind, key, rev, clientv3.OpPut(k, string(value)))
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// DeleteObject removes an object if rev allows it, in one transaction.
func (s *Store) DeleteObject(ctx context.Context, kind, key string, rev int64) error {
	if err := store.CheckObjectName(kind, key); err != nil {
		return err
	}
	_, err := s.objectTxn(ctx, kind, key, rev, clientv3.OpDelete(s.objectKey(kind, key)))
	if err != nil {
		return err
	}
	return nil
}

// objectTxn runs op if the stored object's revision admits rev
// (store.CheckObjectRevision; a ModRevision of 0 is an absent key); a
// delete also needs an object. On a lost compare the error is decided on
// what the transaction read.
func (s *Store) objectTxn(ctx context.Context, kind, key string, rev int64, op clientv3.Op) (*clientv3.TxnResponse, error) {
	if rev < store.AnyRevision || (rev == 0 && op.IsDelete()) {
		return nil, fmt.Errorf("object revision %d: %w", rev, errdefs.ErrInvalidArgument)
	}
	k := s.objectKey(kind, key)
	var cmps []clientv3.Cmp // none: a put of any revision
	switch {
	case rev == store.AnyRevision && op.IsDelete():
		cmps = []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), ">", 0)}
	case rev != store.AnyRevision:
		cmps = []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", rev)}
	}
	resp, err := s.txn(ctx, cmps, []clientv3.Op{op}, []clientv3.Op{clientv3.OpGet(k)})
	if err != nil {
		return nil, err
	}
	if resp.Succeeded {
		return resp, nil
	}
	var stored int64
	if kvs := rangeOf(resp, 0).Kvs; len(kvs) > 0 {
		stored = kvs[0].ModRevision
	}
	if stored == 0 && op.IsDelete() {
		return nil, store.ObjectNotFound(kind, key)
	}
	if err := store.CheckObjectRevision(kind, key, rev, stored); err != nil {
		return nil, err
	}
	return nil, store.ObjectChanged(kind, key, rev)
}
