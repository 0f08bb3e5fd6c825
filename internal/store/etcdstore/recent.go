package etcdstore

import (
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// recentMax and recentMaxBytes bound how many records recent keeps, and
// how many bytes of values.
const (
	recentMax      = 4096
	recentMaxBytes = 32 << 20
)

// recent keeps the newest version this store read or wrote of a few
// thousand records, so that a read-modify-write can skip its read: it
// decides on what it has, and its transaction's revision compares tell
// whether that was stale (then the transaction's Else reads the keys, and
// it decides again). A key it does not have is taken to be absent, which
// is what a create finds. Values are kept as stored (secrets sealed).
type recent struct {
	mu    sync.Mutex
	kvs   map[string]*mvccpb.KeyValue
	bytes int // of the values in kvs
}

// get returns what recent has of keys (nil: not had, taken as absent).
func (r *recent) get(keys []string) []*mvccpb.KeyValue {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*mvccpb.KeyValue, len(keys))
	for i, k := range keys {
		out[i] = r.kvs[k]
	}
	return out
}

// saw notes key-values read at the same time as keys (nil: absent).
func (r *recent) saw(keys []string, kvs []*mvccpb.KeyValue) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, k := range keys {
		r.set(k, kvs[i])
	}
}

// wrote notes the puts and deletes of a transaction committed at rev.
func (r *recent) wrote(ops []clientv3.Op, rev int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, op := range ops {
		switch k := string(op.KeyBytes()); {
		case op.IsPut():
			r.set(k, &mvccpb.KeyValue{Key: op.KeyBytes(), Value: op.ValueBytes(), ModRevision: rev})
		case op.IsDelete():
			r.set(k, nil)
		}
	}
}

func (r *recent) set(k string, kv *mvccpb.KeyValue) {
	r.drop(k)
	if kv == nil || len(kv.Value) > recentMaxBytes/16 {
		return
	}
	if r.kvs == nil {
		r.kvs = map[string]*mvccpb.KeyValue{}
	}
	for old := range r.kvs { // any ones go
		if len(r.kvs) < recentMax && r.bytes+len(kv.Value) <= recentMaxBytes {
			break
		}
		r.drop(old)
	}
	r.kvs[k], r.bytes = kv, r.bytes+len(kv.Value)
}

func (r *recent) drop(k string) {
	if old, ok := r.kvs[k]; ok {
		r.bytes -= len(old.Value)
		delete(r.kvs, k)
	}
}
