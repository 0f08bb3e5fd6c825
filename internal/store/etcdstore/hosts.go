package etcdstore

// Hosts: the record under hosts/, and the liveness under alive/, a key
// attached to a lease that the host's heartbeat keeps alive. etcd deletes
// the key when the lease runs out, whichever process (or etcd itself,
// after a restart) is left to notice, so a host's liveness does not depend
// on the server that read it.

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

// defaultHeartbeatTTL is the ttl of a Heartbeat asked with none (as the
// bbolt store's).
const defaultHeartbeatTTL = 5 * time.Second

// PutHost creates or replaces a host's record (Alive is not stored).
func (s *Store) PutHost(ctx context.Context, h store.Host) error {
	if err := store.Required("host name", h.Name); err != nil {
		return err
	}
	return s.putRecord(ctx, s.hostKey(h.Name), "host", h)
}

// GetHost returns a host's record, Alive filled from its heartbeat.
func (s *Store) GetHost(ctx context.Context, name string) (*store.Host, error) {
	resp, err := s.txn(ctx, nil, []clientv3.Op{
		clientv3.OpGet(s.hostKey(name)),
		clientv3.OpGet(s.aliveKey(name), clientv3.WithCountOnly()),
	}, nil)
	if err != nil {
		return nil, err
	}
	kvs := rangeOf(resp, 0).Kvs
	if len(kvs) == 0 {
		return nil, store.HostNotFound(name)
	}
	var h store.Host
	if err := decode(kvs[0], &h); err != nil {
		return nil, err
	}
	h.Alive = rangeOf(resp, 1).Count > 0
	return &h, nil
}

// ListHosts lists the hosts by name, Alive filled from their heartbeats.
func (s *Store) ListHosts(ctx context.Context) ([]store.Host, error) {
	resp, err := s.txn(ctx, nil, []clientv3.Op{
		clientv3.OpGet(s.prefix+dirHosts, clientv3.WithPrefix()),
		clientv3.OpGet(s.prefix+dirAlive, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	}, nil)
	if err != nil {
		return nil, err
	}
	out, err := decodeAll(rangeOf(resp, 0).Kvs, func(h *store.Host) string { return key(h.Name) })
	if err != nil {
		return nil, err
	}
	alive := map[string]bool{}
	for _, kv := range rangeOf(resp, 1).Kvs {
		alive[string(kv.Key)] = true
	}
	for i := range out {
		out[i].Alive = alive[s.aliveKey(out[i].Name)]
	}
	return out, nil
}

// UpdateHost applies f to a host's record atomically; if f fails nothing
// is written and its error is returned as is.
func (s *Store) UpdateHost(ctx context.Context, name string, f func(*store.Host) error) (*store.Host, error) {
	k, alive := s.hostKey(name), s.aliveKey(name)
	var h store.Host
	resp, err := s.atomically(ctx, []string{k}, func(kvs []*mvccpb.KeyValue) (decision, error) {
		if kvs[0] == nil {
			return decision{}, store.HostNotFound(name)
		}
		h = store.Host{}
		if err := decode(kvs[0], &h); err != nil {
			return decision{}, err
		}
		if err := f(&h); err != nil {
			return decision{}, err
		}
		d, err := put(k, "host", h)
		if err != nil {
			return decision{}, err
		}
		d.ops = append(d.ops, clientv3.OpGet(alive, clientv3.WithCountOnly()))
		return d, nil
	})
	if err != nil {
		return nil, err
	}
	h.Alive = rangeOf(resp, 1).Count > 0
	return &h, nil
}

// DeleteHost removes a host's record (not its heartbeat, which runs out
// by itself).
func (s *Store) DeleteHost(ctx context.Context, name string) error {
	k := s.hostKey(name)
	resp, err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), ">", 0)}, []clientv3.Op{clientv3.OpDelete(k)}, nil)
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return store.HostNotFound(name)
	}
	return nil
}

// Heartbeat makes the host Alive: it grants a lease of ttl (rounded up to
// whole seconds, at least 1; 0 means 5 s), puts the host's alive key with
// it and keeps the lease alive until ctx ends (then it returns ctx.Err())
// or the lease is lost: etcd unreachable for about ttl, or the lease
// expired (then it returns an error of class errdefs.ErrUnavailable, and
// the caller calls Heartbeat again). The lease is never revoked: once the
// heartbeat stops the host stays Alive for ttl, so an agent that is
// restarted quickly keeps its groups. etcd may make a lease longer than
// asked (its smallest is 1.5 election timeouts).
func (s *Store) Heartbeat(ctx context.Context, name string, ttl time.Duration) error {
	if err := store.Required("host name", name); err != nil {
		return err
	}
	if ttl <= 0 {
		ttl = defaultHeartbeatTTL
	}
	secs := max(int64(math.Ceil(ttl.Seconds())), 1)
	if err := ctx.Err(); err != nil {
		return err
	}
	lease, err := s.cli.Grant(ctx, secs)
	if err != nil {
		return fmt.Errorf("heartbeat of host %q: grant a lease: %w", name, etcdErr(ctx, err))
	}
	if _, err := s.cli.Put(ctx, s.aliveKey(name), strconv.FormatInt(secs, 10), clientv3.WithLease(lease.ID)); err != nil {
		return fmt.Errorf("heartbeat of host %q: %w", name, etcdErr(ctx, err))
	}
	beats, err := s.cli.KeepAlive(ctx, lease.ID)
	if err != nil {
		return fmt.Errorf("heartbeat of host %q: %w", name, etcdErr(ctx, err))
	}
	for range beats { // the channel closes when ctx ends or the lease is lost
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.cli.Ctx().Err() != nil {
		return fmt.Errorf("heartbeat of host %q: the store was closed: %w", name, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("heartbeat of host %q lost its lease %x (etcd unreachable, or the lease of %d s ran out): %w",
		name, int64(lease.ID), secs, errdefs.ErrUnavailable)
}
