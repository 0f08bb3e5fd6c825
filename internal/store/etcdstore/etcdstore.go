// Package etcdstore is the store.Store of cluster mode: Skiff's records in
// etcd, so that several servers and host agents share them. It behaves as
// the embedded bbolt store does (one test suite, internal/store/storetest,
// runs against both); what differs is where the atomicity comes from (etcd
// transactions that compare revisions), where the watch comes from (an
// etcd watch, resumed across reconnects), and where a host's liveness is
// kept (a lease, so that it outlives the process that heartbeats).
package etcdstore

// Key layout, schema version 1. Every key starts with Options.Prefix
// (default "/skiff/"). Segments in angle brackets are lower-cased (ARM
// names fold case) with "%" and "/" escaped as %25 and %2F, so that a name
// is always one segment; records keep the case of their first write.
// Values are JSON.
//
//	<prefix>meta/schemaVersion                    : 1       (reserved)
//	<prefix>meta/sealCheck                        : "skiff-sealed:v1:…" (reserved:
//	                                                a sealed canary; a wrong key
//	                                                fails Open)
//	<prefix>meta/<key>                            : "value" (GetMeta/PutMeta, key as given)
//	<prefix>subscriptions/<id>                    : Subscription
//	<prefix>resourcegroups/<sub>/<name>           : ResourceGroup
//	<prefix>containergroups/<sub>/<rg>/<name>     : ContainerGroup (secrets sealed)
//	<prefix>operations/<id>                       : Operation
//	<prefix>hosts/<name>                          : Host
//	<prefix>alive/<name>                          : the heartbeat's TTL in seconds,
//	                                                attached to its lease: the key
//	                                                exists while the host is Alive
//
// Every secret of a container group (api.WalkSecrets) is sealed
// (store.SealGroup) with the key in Options.Sealer before it is written and
// opened on every read, so etcd, its snapshots and its backups never hold a
// plain one. A container group is only written while its resource group's
// key is as the writer read it, and a resource group is only deleted while
// no key lies below containergroups/<sub>/<rg>/, so a resource group never
// holds groups once deleted (store.Store's contract, as bbolt's nested
// buckets give it).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
)

// SchemaVersion is the version of the key layout this build writes.
const SchemaVersion = 1

const (
	keySchemaVersion = "schemaVersion"
	keySealCheck     = "sealCheck"
	sealCheckPlain   = "skiff seal check"

	dirMeta            = "meta/"
	dirSubscriptions   = "subscriptions/"
	dirResourceGroups  = "resourcegroups/"
	dirContainerGroups = "containergroups/"
	dirOperations      = "operations/"
	dirHosts           = "hosts/"
	dirAlive           = "alive/"
	dirObjects         = "objects/"
)

// Options configures Open.
type Options struct {
	// Endpoints are etcd's client URLs (required).
	Endpoints []string
	// Prefix is put before every key, so that several Skiff installations
	// (or tests) can share one etcd; "" means "/skiff/". A "/" is added
	// if it does not end in one.
	Prefix string
	// Sealer seals secrets at rest (required). Records sealed with another
	// key fail Open with seal.ErrWrongKey (errdefs.ErrUnauthorized).
	Sealer *seal.Sealer
	// DialTimeout bounds the connection to etcd and Open's first request;
	// 0 means 5 s.
	DialTimeout time.Duration
	// Logger receives the etcd client's warnings and the watch's
	// reconnects and resyncs; nil discards them.
	Logger *slog.Logger
}

// Store is a store.Store in etcd. It is safe for concurrent use, also by
// other processes sharing the same etcd and prefix.
type Store struct {
	cli    *clientv3.Client
	prefix string
	seal   *seal.Sealer
	log    *slog.Logger
	// dialTimeout is Options.DialTimeout.
	dialTimeout time.Duration
	// rev is the newest etcd revision a response showed: where a watch
	// starts if etcd cannot be asked.
	rev atomic.Int64
	// recent is what atomically decides on before it reads.
	recent recent

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open connects to etcd, checks the seal key against the canary (writing
// one, and the schema version, on first use) and returns the store. A
// prefix sealed with another key fails with seal.ErrWrongKey before
// anything is written; one written by a newer schema fails with
// errdefs.ErrConflict; an etcd that does not answer within DialTimeout
// fails with errdefs.ErrUnavailable.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Sealer == nil {
		return nil, fmt.Errorf("open etcd store: a seal key is required: %w", errdefs.ErrInvalidArgument)
	}
	if len(o.Endpoints) == 0 {
		return nil, fmt.Errorf("open etcd store: no etcd endpoints: %w", errdefs.ErrInvalidArgument)
	}
	if o.Prefix == "" {
		o.Prefix = "/skiff/"
	}
	if !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	where := fmt.Sprintf("open etcd store %s at %s", o.Prefix, strings.Join(o.Endpoints, ","))
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   o.Endpoints,
		DialTimeout: o.DialTimeout,
		Logger:      zap.New(slogCore{log: log.With("component", "etcd-client")}),
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, etcdErr(ctx, err))
	}
	s := &Store{cli: cli, prefix: o.Prefix, seal: o.Sealer, log: log, dialTimeout: o.DialTimeout}
	ictx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	if err := s.init(ictx); err != nil {
		cli.Close()
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("etcd did not answer within %s: %w", o.DialTimeout, errdefs.ErrUnavailable)
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return s, nil
}

// init writes the canary and the schema version if there are none, in
// one transaction, or else checks both.
func (s *Store) init(ctx context.Context) error {
	canary, err := s.seal.Seal(sealCheckPlain)
	if err != nil {
		return err
	}
	canaryJSON, err := encode("seal check", canary)
	if err != nil {
		return err
	}
	checkKey, versionKey := s.prefix+dirMeta+keySealCheck, s.prefix+dirMeta+keySchemaVersion
	resp, err := s.txn(ctx,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(checkKey), "=", 0)},
		[]clientv3.Op{clientv3.OpPut(checkKey, canaryJSON), clientv3.OpPut(versionKey, strconv.Itoa(SchemaVersion))},
		[]clientv3.Op{clientv3.OpGet(checkKey), clientv3.OpGet(versionKey)})
	if err != nil || resp.Succeeded {
		return err
	}
	kvs := firstKVs(resp)
	var v int
	if kvs[1] != nil {
		if err := json.Unmarshal(kvs[1].Value, &v); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
	}
	if v > SchemaVersion {
		return fmt.Errorf("store schema version %d is newer than this build supports (%d); use a newer skiff: %w",
			v, SchemaVersion, errdefs.ErrConflict)
	}
	if err := json.Unmarshal(kvs[0].Value, &canary); err != nil {
		return fmt.Errorf("read seal check: %w", err)
	}
	if _, err := s.seal.Open(canary); err != nil {
		return fmt.Errorf("the store's secrets cannot be opened with the seal key: %w", err)
	}
	return nil
}

// Close closes the connection to etcd: watches end (their channels
// close) and heartbeats stop, leaving their hosts Alive for their ttl.
// Closing twice is harmless.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.cli.Close()
		if errors.Is(s.closeErr, context.Canceled) {
			s.closeErr = nil
		}
	})
	return s.closeErr
}

// etcdErr gives an etcd failure its class: the caller's context error as
// is, ErrTooLarge for a request over etcd's size limit (or the client's),
// ErrUnavailable for the rest (etcd unreachable, no leader, ...).
func etcdErr(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, rpctypes.ErrRequestTooLarge), status.Code(err) == codes.ResourceExhausted:
		return fmt.Errorf("etcd: %w: %w", err, errdefs.ErrTooLarge)
	default:
		return fmt.Errorf("etcd: %w: %w", err, errdefs.ErrUnavailable)
	}
}

// seen notes a revision a response showed.
func (s *Store) seen(rev int64) {
	for {
		cur := s.rev.Load()
		if rev <= cur || s.rev.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// txn runs one transaction, and notes what it wrote in s.recent.
func (s *Store) txn(ctx context.Context, cmps []clientv3.Cmp, then, els []clientv3.Op) (*clientv3.TxnResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
	if err != nil {
		return nil, etcdErr(ctx, err)
	}
	s.seen(resp.Header.Revision)
	if resp.Succeeded {
		s.recent.wrote(then, resp.Header.Revision)
	}
	return resp, nil
}

// get runs one linearizable read.
func (s *Store) get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	resp, err := s.cli.Get(ctx, key, opts...)
	if err != nil {
		return nil, etcdErr(ctx, err)
	}
	s.seen(resp.Header.Revision)
	return resp, nil
}

// decision is what an atomic write does, decided on the keys it read:
// ops run only if cmps and the keys' revisions still hold.
type decision struct {
	cmps []clientv3.Cmp
	ops  []clientv3.Op
}

// atomically is a read-modify-write of keys: it asks decide for the
// write on the keys as this store last saw them (s.recent; a key it has
// not seen is taken as absent) and commits it in a transaction that holds
// only if no key changed since (a ModRevision compare each). A lost race
// is answered by the transaction itself (its Else reads the keys), and
// decide is asked again on what it read. So a create, or an update of a
// record this store just read or wrote, is one round trip. decide may run
// more than once: it must only decide. Its error is returned as is (and
// then nothing is written) only when it decided on keys read just then:
// an error on what the store had is checked against a fresh read first.
// kvs[i] is keys[i]'s, nil if absent. It returns the committed
// transaction's response (its Responses are ops').
func (s *Store) atomically(ctx context.Context, keys []string, decide func(kvs []*mvccpb.KeyValue) (decision, error)) (*clientv3.TxnResponse, error) {
	reads := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		reads[i] = clientv3.OpGet(k)
	}
	kvs, fresh := s.recent.get(keys), false
	for {
		d, err := decide(kvs)
		if err != nil {
			if fresh || ctx.Err() != nil {
				return nil, err
			}
			resp, rerr := s.txn(ctx, nil, reads, nil)
			if rerr != nil {
				return nil, rerr
			}
			kvs, fresh = firstKVs(resp), true
			s.recent.saw(keys, kvs)
			continue
		}
		cmps := d.cmps
		for i, k := range keys {
			var rev int64
			if kvs[i] != nil {
				rev = kvs[i].ModRevision
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", rev))
		}
		resp, err := s.txn(ctx, cmps, d.ops, reads)
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			return resp, nil
		}
		kvs, fresh = firstKVs(resp), true
		s.recent.saw(keys, kvs)
	}
}

// firstKVs returns, for each range response of resp, its first key-value
// (nil: none).
func firstKVs(resp *clientv3.TxnResponse) []*mvccpb.KeyValue {
	out := make([]*mvccpb.KeyValue, len(resp.Responses))
	for i, r := range resp.Responses {
		if rr := r.GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
			out[i] = rr.Kvs[0]
		}
	}
	return out
}

// rangeOf returns the i-th response of resp as a range response.
func rangeOf(resp *clientv3.TxnResponse, i int) *clientv3.GetResponse {
	return (*clientv3.GetResponse)(resp.Responses[i].GetResponseRange())
}

// segEscaper keeps a folded name one key segment; segUnescaper undoes it.
var (
	segEscaper   = strings.NewReplacer("%", "%25", "/", "%2F")
	segUnescaper = strings.NewReplacer("%2F", "/", "%25", "%")
)

// seg folds a name into a key segment.
func seg(name string) string { return segEscaper.Replace(strings.ToLower(name)) }

func (s *Store) subKey(id string) string { return s.prefix + dirSubscriptions + seg(id) }
func (s *Store) rgDir(sub string) string { return s.prefix + dirResourceGroups + seg(sub) + "/" }
func (s *Store) rgKey(sub, name string) string {
	return s.rgDir(sub) + seg(name)
}
func (s *Store) subCGDir(sub string) string { return s.prefix + dirContainerGroups + seg(sub) + "/" }
func (s *Store) cgDir(sub, rg string) string {
	return s.subCGDir(sub) + seg(rg) + "/"
}
func (s *Store) cgKey(sub, rg, name string) string { return s.cgDir(sub, rg) + seg(name) }
func (s *Store) opKey(id string) string            { return s.prefix + dirOperations + seg(id) }
func (s *Store) hostKey(name string) string        { return s.prefix + dirHosts + seg(name) }
func (s *Store) aliveKey(name string) string       { return s.prefix + dirAlive + seg(name) }
func (s *Store) metaKey(k string) string           { return s.prefix + dirMeta + k }

// encode encodes a record.
func encode(what string, v any) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", what, err)
	}
	return string(data), nil
}

// decode decodes the record in kv.
func decode(kv *mvccpb.KeyValue, v any) error {
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return fmt.Errorf("decode %q: %w", kv.Key, err)
	}
	return nil
}

// decodeAll decodes every record of a range, sorted by the folded name
// sortKey gives (the order bbolt's folded keys have).
func decodeAll[T any](kvs []*mvccpb.KeyValue, sortKey func(*T) string) ([]T, error) {
	out := make([]T, len(kvs))
	for i, kv := range kvs {
		if err := decode(kv, &out[i]); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(out, func(a, b T) int { return strings.Compare(sortKey(&a), sortKey(&b)) })
	return out, nil
}

// key folds a name, as bbolt's keys do.
func key(name string) string { return strings.ToLower(name) }
