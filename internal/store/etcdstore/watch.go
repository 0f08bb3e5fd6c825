package etcdstore

// The watch: an etcd watch of the whole prefix, from the revision after
// the one Watch was called at, turned into store.Changes. etcd sends the
// events of every writer (this process's or another's) in revision order,
// which is commit order. A watcher that reads slowly never holds a writer
// up: etcd moves a slow watch aside and catches it up later, and the
// client buffers what it received for each watch.

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiff-sh/skiff/internal/store"
)

// rewatchDelay is the pause before a watch that failed is opened again.
const rewatchDelay = 200 * time.Millisecond

// Watch returns the changes committed from now on, in commit order, until
// ctx ends or the store is closed (then the channel is closed). It
// survives etcd restarts and reconnects: the watch resumes after the last
// revision it reported. If etcd compacted that revision away meanwhile,
// the watch reports a change for every record there is (a resync), and
// for every one it knew of that is gone, and goes on from there: a
// watcher misses no change, it may hear some that changed nothing.
func (s *Store) Watch(ctx context.Context) <-chan store.Change {
	out := make(chan store.Change)
	w := &watch{s: s, out: out, next: s.rev.Load() + 1, known: map[string]bool{}}
	// One read gives the revision now (writes by other processes
	// included) and the records' keys; if etcd cannot be asked (within
	// DialTimeout: Watch does not wait for etcd), the newest revision this
	// store saw will do, and a resync cannot tell what was deleted before.
	rctx, cancel := context.WithTimeout(ctx, s.dialTimeout)
	defer cancel()
	if resp, err := s.txn(rctx, nil, s.recordKeys(), nil); err == nil {
		w.next, w.known = resp.Header.Revision+1, keysOf(resp.Responses)
	} else if ctx.Err() == nil {
		s.log.Warn("etcd store: watch starts without the records' keys", "from", w.next, "err", err)
	}
	go w.run(ctx)
	return out
}

// watch is one Watch's state.
type watch struct {
	s   *Store
	out chan<- store.Change
	// next is the revision to watch from; known the keys of the records
	// (operations aside: they are never deleted) that exist at next-1.
	next  int64
	known map[string]bool
}

// recordKeys reads the keys of the records a resync must account for.
func (s *Store) recordKeys() []clientv3.Op {
	var ops []clientv3.Op
	for _, dir := range []string{dirResourceGroups, dirContainerGroups, dirHosts, dirAlive} {
		ops = append(ops, clientv3.OpGet(s.prefix+dir, clientv3.WithPrefix(), clientv3.WithKeysOnly()))
	}
	return ops
}

// keysOf collects the keys of range responses.
func keysOf(resps []*etcdserverpb.ResponseOp) map[string]bool {
	keys := map[string]bool{}
	for _, r := range resps {
		for _, kv := range r.GetResponseRange().GetKvs() {
			keys[string(kv.Key)] = true
		}
	}
	return keys
}

// send hands c to the watcher; false if the watch's context ended.
func (w *watch) send(ctx context.Context, c store.Change) bool {
	select {
	case w.out <- c:
		return true
	case <-ctx.Done():
		return false
	}
}

// run sends the changes until ctx ends or the store closes, opening the
// etcd watch again whenever it ends.
func (w *watch) run(ctx context.Context) {
	defer close(w.out)
	for w.s.live(ctx) {
		if !w.follow(ctx) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(rewatchDelay):
		}
	}
}

// live reports whether a watch goes on: ctx has not ended and the store
// is not closed.
func (s *Store) live(ctx context.Context) bool {
	return ctx.Err() == nil && s.cli.Ctx().Err() == nil
}

// follow runs one etcd watch from w.next and sends its changes; false if
// the watcher is gone.
func (w *watch) follow(ctx context.Context) bool {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for resp := range w.s.cli.Watch(wctx, w.s.prefix, clientv3.WithPrefix(), clientv3.WithRev(w.next)) {
		if resp.CompactRevision != 0 {
			w.s.log.Warn("etcd store: the watch resumed past a compaction; resyncing every record",
				"from", w.next, "compacted", resp.CompactRevision)
			return w.resync(ctx)
		}
		if err := resp.Err(); err != nil {
			w.s.log.Warn("etcd store: watch failed; opening it again", "from", w.next, "err", err)
			return true
		}
		for _, ev := range resp.Events {
			c, ok := w.s.change(ev.Kv)
			switch {
			case !ok || c.Kind == store.OperationChange:
			case ev.Type == clientv3.EventTypeDelete:
				delete(w.known, string(ev.Kv.Key))
			default:
				w.known[string(ev.Kv.Key)] = true
			}
			if ok && !w.send(ctx, c) {
				return false
			}
			w.next = ev.Kv.ModRevision + 1
		}
	}
	return w.s.live(ctx)
}

// resync sends a change for every record there is and every one known
// that is gone, read at one revision, and goes on after that revision.
func (w *watch) resync(ctx context.Context) bool {
	// The records' keys, then the operations (a change names an
	// operation's subscription, which only its record has).
	reads := append(w.s.recordKeys(), clientv3.OpGet(w.s.prefix+dirOperations, clientv3.WithPrefix()))
	records := len(reads) - 1
	for {
		resp, err := w.s.txn(ctx, nil, reads, nil)
		if err == nil {
			current := keysOf(resp.Responses[:records])
			var kvs []*mvccpb.KeyValue
			for k := range w.known {
				if !current[k] {
					kvs = append(kvs, &mvccpb.KeyValue{Key: []byte(k)})
				}
			}
			for i := range resp.Responses {
				kvs = append(kvs, rangeOf(resp, i).Kvs...)
			}
			sent := map[store.Change]bool{}
			for _, kv := range kvs {
				c, ok := w.s.change(kv)
				if !ok || sent[c] {
					continue
				}
				sent[c] = true
				if !w.send(ctx, c) {
					return false
				}
			}
			w.next, w.known = resp.Header.Revision+1, current
			return true
		}
		w.s.log.Warn("etcd store: resync failed; trying again", "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-w.s.cli.Ctx().Done():
			return false
		case <-time.After(rewatchDelay):
		}
	}
}

// change names the record at kv's key (kv of a put, or of a delete: then
// without a value); false for keys no watcher hears of (settings,
// subscriptions).
func (s *Store) change(kv *mvccpb.KeyValue) (store.Change, bool) {
	rest, ok := strings.CutPrefix(string(kv.Key), s.prefix)
	if !ok {
		return store.Change{}, false
	}
	dir, path, _ := strings.Cut(rest, "/")
	names := strings.Split(path, "/")
	for i, n := range names {
		names[i] = segUnescaper.Replace(n)
	}
	switch dir + "/" {
	case dirContainerGroups:
		if len(names) == 3 {
			return store.GroupChange(names[0], names[1], names[2]), true
		}
	case dirResourceGroups:
		if len(names) == 2 {
			return store.RGChange(names[0], names[1]), true
		}
	case dirOperations:
		// The key has the id folded and no subscription: both come from
		// the record (a deleted one has none; the store never deletes one).
		var op struct {
			ID           string `json:"id"`
			Subscription string `json:"subscription"`
		}
		if len(kv.Value) == 0 || json.Unmarshal(kv.Value, &op) != nil || op.ID == "" {
			op.ID = names[0]
		}
		return store.OpChange(op.Subscription, op.ID), true
	case dirHosts, dirAlive:
		if len(names) == 1 {
			return store.HostChangeFor(names[0]), true
		}
	}
	return store.Change{}, false
}
