package store

// Bucket layout of the bbolt database, schema version 4 (hosts: see
// createHosts; objects: createObjects). Names in angle
// brackets are lower-cased (ARM names are case-insensitive); the records keep
// the case of their first write. Values are JSON.
//
//	meta
//	├── schemaVersion : 4                    (reserved, see migrations)
//	├── sealCheck     : "skiff-sealed:v1:…"  (reserved: a sealed canary; a
//	│                                         wrong key fails the open)
//	└── <key>         : "value"              (GetMeta / PutMeta, key as given)
//	subscriptions
//	└── <id>          : Subscription
//	resourcegroups
//	└── <sub>
//	    └── <name>    : ResourceGroup
//	containergroups
//	└── <sub>
//	    └── <rg>
//	        └── <name> : ContainerGroup     (secrets sealed, see below)
//	operations
//	└── <id>          : Operation
//
// Since version 2 every secret of a container group (api.WalkSecrets: secure
// environment values, registry passwords, storage account keys, secret
// volume contents) is stored sealed (package seal) with the key in
// BoltOptions.Sealer; the store opens them on every read, so callers see
// plain values and the file never holds them. Version 1 stored them in
// clear: the 1 → 2 migration seals them and then compacts the file, so that
// no freed page keeps an old plain value.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/skiff-sh/skiff/internal/atomicfile"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/seal"
)

const (
	bucketMeta            = "meta"
	bucketSubscriptions   = "subscriptions"
	bucketResourceGroups  = "resourcegroups"
	bucketContainerGroups = "containergroups"
	bucketOperations      = "operations"

	keySchemaVersion = "schemaVersion"
	keySealCheck     = "sealCheck"

	sealCheckPlain = "skiff seal check"
)

// migration upgrades a database by one schema version inside tx.
type migration func(tx *bolt.Tx) error

// migrations returns the schema migrations: migrations(s)[v] upgrades a
// version-v database to version v+1, where version 0 is a new file (or one
// without a schemaVersion). The current schema version is
// len(migrations(nil)). Append a function here when the layout changes, and
// never edit an old one.
func migrations(s *seal.Sealer) []migration {
	return []migration{
		createV1,       // 0 → 1
		sealSecrets(s), // 1 → 2
		createHosts,    // 2 → 3
		createObjects,  // 3 → 4
	}
}

// versionPlainSecrets is the last schema version that stored secrets in
// clear; opening one compacts the file after sealing them.
const versionPlainSecrets = 1

// createV1 creates the version-1 buckets.
func createV1(tx *bolt.Tx) error {
	for _, name := range []string{bucketMeta, bucketSubscriptions, bucketResourceGroups, bucketContainerGroups, bucketOperations} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// sealSecrets seals the secrets of every container group record, which
// version 1 stored in clear.
func sealSecrets(s *seal.Sealer) migration {
	return func(tx *bolt.Tx) error {
		root := tx.Bucket([]byte(bucketContainerGroups))
		if root == nil {
			return nil
		}
		return root.ForEachBucket(func(sub []byte) error {
			subBk := root.Bucket(sub)
			return subBk.ForEachBucket(func(rg []byte) error {
				bk := subBk.Bucket(rg)
				recs := map[string][]byte{}
				err := bk.ForEach(func(k, v []byte) error {
					recs[string(k)] = v
					return nil
				})
				if err != nil {
					return err
				}
				for k := range recs { // no Put inside ForEach
					var cg ContainerGroup
					if _, err := getJSON(bk, k, &cg); err != nil {
						return err
					}
					if err := putGroup(bk, k, cg, s); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}

// BoltOptions configures OpenBolt.
type BoltOptions struct {
	// Sealer seals secrets at rest (required). A database sealed with
	// another key fails to open with seal.ErrWrongKey.
	Sealer *seal.Sealer
	// Timeout bounds the wait for the file lock another process holds;
	// 0 means 1 s.
	Timeout time.Duration
	// Logger receives schema migration messages; nil discards them.
	Logger *slog.Logger
}

// Bolt is a Store in a single bbolt file. It is safe for concurrent use by
// goroutines of one process; bbolt's file lock keeps other processes out.
type Bolt struct {
	db   *bolt.DB
	seal *seal.Sealer
	hub  hub
	live liveness
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens (creating with mode 0600 if needed) the database at path and
// brings its schema up to date. A file locked by another process fails with
// errdefs.ErrConflict after opts.Timeout, and so does a file written by a
// newer schema version; a file sealed with another key than opts.Sealer's
// fails with seal.ErrWrongKey (errdefs.ErrUnauthorized), before anything
// is written.
func OpenBolt(path string, opts BoltOptions) (*Bolt, error) {
	return openBolt(path, opts, migrations(opts.Sealer))
}

func openBolt(path string, opts BoltOptions, migs []migration) (*Bolt, error) {
	if opts.Sealer == nil {
		return nil, fmt.Errorf("open store %s: a seal key is required: %w", path, errdefs.ErrInvalidArgument)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: database is in use by another process: %w", path, errdefs.ErrConflict)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	from, err := migrate(db, migs, log, opts.Sealer)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if from == versionPlainSecrets {
		if db, err = compact(db, opts.Timeout, log); err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
	}
	// Writes that arrive together (many groups starting at once, each
	// written by the server, the controller and the agent) wait at most
	// this long to share a commit; while a commit runs, the next batch
	// gathers anyway.
	db.MaxBatchDelay = 200 * time.Microsecond
	return &Bolt{db: db, seal: opts.Sealer}, nil
}

// compact rewrites the database into a fresh file and puts it in place of
// the old one, so that freed pages (which bbolt does not clear) keep none
// of the values the migrations replaced. It returns the new handle; the
// old one is closed.
func compact(src *bolt.DB, timeout time.Duration, log *slog.Logger) (*bolt.DB, error) {
	path := src.Path()
	tmp := path + ".compact"
	os.Remove(tmp)
	fail := func(err error) (*bolt.DB, error) {
		src.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("compact: %w", err)
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return fail(err)
	}
	if err := bolt.Compact(dst, src, 0); err != nil {
		dst.Close()
		return fail(err)
	}
	if err := dst.Close(); err != nil {
		return fail(err)
	}
	// The old file stays locked by src until the new one is in place and
	// open, so no other process slips in between.
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return fail(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	src.Close()
	if err != nil {
		return nil, fmt.Errorf("compact: reopen: %w", err)
	}
	log.Info("compacted store after sealing its secrets", "path", path)
	return db, nil
}

// migrate checks the seal key and runs the migrations the database has not
// seen, in one transaction. It returns the version it found.
func migrate(db *bolt.DB, migs []migration, log *slog.Logger, s *seal.Sealer) (from int, err error) {
	err = db.Update(func(tx *bolt.Tx) error {
		v, err := schemaVersion(tx)
		if err != nil {
			return err
		}
		from = v
		latest := len(migs)
		if v > latest {
			return fmt.Errorf("database schema version %d is newer than this build supports (%d); use a newer skiff: %w",
				v, latest, errdefs.ErrConflict)
		}
		if err := checkSealKey(tx, s); err != nil {
			return err
		}
		if v == latest {
			return nil
		}
		for ; v < latest; v++ {
			log.Info("migrating store schema", "from", v, "to", v+1, "path", db.Path())
			if err := migs[v](tx); err != nil {
				return fmt.Errorf("migrate schema from version %d to %d: %w", v, v+1, err)
			}
		}
		meta, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
		if err != nil {
			return err
		}
		return putJSON(meta, keySchemaVersion, latest)
	})
	return from, err
}

// checkSealKey opens the sealed canary in meta, or writes one on first
// use, so that a wrong key is refused at open and never half-used.
func checkSealKey(tx *bolt.Tx, s *seal.Sealer) error {
	meta, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
	if err != nil {
		return err
	}
	var canary string
	ok, err := getJSON(meta, keySealCheck, &canary)
	if err != nil {
		return err
	}
	if ok {
		if _, err := s.Open(canary); err != nil {
			return fmt.Errorf("the store's secrets cannot be opened with the seal key: %w", err)
		}
		return nil
	}
	if canary, err = s.Seal(sealCheckPlain); err != nil {
		return err
	}
	return putJSON(meta, keySealCheck, canary)
}

// schemaVersion reads the version; a missing one is 0.
func schemaVersion(tx *bolt.Tx) (int, error) {
	var v int
	meta := tx.Bucket([]byte(bucketMeta))
	if meta == nil {
		return 0, nil
	}
	if _, err := getJSON(meta, keySchemaVersion, &v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// Close closes the database file. Closing twice is harmless.
func (b *Bolt) Close() error { return b.db.Close() }

func (b *Bolt) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.View(fn)
}

func (b *Bolt) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.Update(fn)
}

// write is a write of a record that watchers hear of: once it committed, c
// is published. Concurrent writes share one transaction and one fsync
// (bbolt's Batch), so fn may run more than once and must only change the
// transaction and what it returns.
func (b *Bolt) write(ctx context.Context, c Change, fn func(tx *bolt.Tx) error) error {
	return b.writeAll(ctx, []Change{c}, fn)
}

// writeAll is write of a transaction that changes several records.
func (b *Bolt) writeAll(ctx context.Context, cs []Change, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.db.Batch(fn); err != nil {
		return err
	}
	for _, c := range cs {
		b.hub.publish(c)
	}
	return nil
}

// Watch returns the changes committed from now on until ctx ends.
func (b *Bolt) Watch(ctx context.Context) <-chan Change { return b.hub.watch(ctx) }

// PutSubscription creates or replaces a subscription; a replacement keeps
// the stored ID's case and CreatedAt.
func (b *Bolt) PutSubscription(ctx context.Context, s Subscription) error {
	if err := Required("subscription id", s.ID); err != nil {
		return err
	}
	return b.update(ctx, func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucketSubscriptions))
		var old Subscription
		if ok, err := getJSON(bk, key(s.ID), &old); err != nil {
			return err
		} else if ok {
			s.ID, s.CreatedAt = old.ID, old.CreatedAt
		}
		return putJSON(bk, key(s.ID), s)
	})
}

// GetSubscription returns a subscription by id.
func (b *Bolt) GetSubscription(ctx context.Context, id string) (*Subscription, error) {
	var s Subscription
	err := b.view(ctx, func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket([]byte(bucketSubscriptions)), key(id), &s)
		if err == nil && !ok {
			err = SubscriptionNotFound(id)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// ListSubscriptions returns all subscriptions sorted by id.
func (b *Bolt) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	var out []Subscription
	err := b.view(ctx, func(tx *bolt.Tx) error {
		var err error
		out, err = listJSON[Subscription](tx.Bucket([]byte(bucketSubscriptions)))
		return err
	})
	return out, err
}

// PutResourceGroup creates or replaces a resource group; a replacement keeps
// the stored name's case and CreatedAt.
func (b *Bolt) PutResourceGroup(ctx context.Context, rg ResourceGroup) (created bool, err error) {
	if err := Required("subscription", rg.Subscription); err != nil {
		return false, err
	}
	if err := Required("resource group name", rg.Name); err != nil {
		return false, err
	}
	err = b.write(ctx, RGChange(rg.Subscription, rg.Name), func(tx *bolt.Tx) error {
		bk, err := createBuckets(tx, bucketResourceGroups, key(rg.Subscription))
		if err != nil {
			return err
		}
		var old ResourceGroup
		ok, err := getJSON(bk, key(rg.Name), &old)
		if err != nil {
			return err
		}
		if ok {
			rg.Subscription, rg.Name, rg.CreatedAt = old.Subscription, old.Name, old.CreatedAt
		}
		created = !ok
		return putJSON(bk, key(rg.Name), rg)
	})
	return created, err
}

// GetResourceGroup returns a resource group by name.
func (b *Bolt) GetResourceGroup(ctx context.Context, sub, name string) (*ResourceGroup, error) {
	var rg *ResourceGroup
	err := b.view(ctx, func(tx *bolt.Tx) error {
		var err error
		rg, err = getResourceGroup(tx, sub, name)
		return err
	})
	return rg, err
}

// ListResourceGroups returns a subscription's resource groups sorted by
// name.
func (b *Bolt) ListResourceGroups(ctx context.Context, sub string) ([]ResourceGroup, error) {
	var out []ResourceGroup
	err := b.view(ctx, func(tx *bolt.Tx) error {
		var err error
		out, err = listJSON[ResourceGroup](buckets(tx, bucketResourceGroups, key(sub)))
		return err
	})
	return out, err
}

// DeleteResourceGroup deletes an empty resource group. It does not cascade:
// while container groups remain it fails with errdefs.ErrConflict.
func (b *Bolt) DeleteResourceGroup(ctx context.Context, sub, name string) error {
	return b.write(ctx, RGChange(sub, name), func(tx *bolt.Tx) error {
		if _, err := getResourceGroup(tx, sub, name); err != nil {
			return err
		}
		subCGs := buckets(tx, bucketContainerGroups, key(sub))
		if cgs := buckets(tx, bucketContainerGroups, key(sub), key(name)); cgs != nil {
			if n := cgs.Stats().KeyN; n > 0 {
				return fmt.Errorf("resource group %q still holds %d container group(s): %w", name, n, errdefs.ErrConflict)
			}
			if err := subCGs.DeleteBucket([]byte(key(name))); err != nil {
				return err
			}
		}
		return buckets(tx, bucketResourceGroups, key(sub)).Delete([]byte(key(name)))
	})
}

// PutContainerGroup creates or replaces a container group named
// cg.Resource.Name. The resource group must exist. The store sets
// Subscription and ResourceGroup to the resource group's, keeps the stored
// name's case and CreatedAt on replacement, and sets Generation to 1 on
// creation and to the stored Generation+1 on replacement.
func (b *Bolt) PutContainerGroup(ctx context.Context, cg ContainerGroup) (created bool, err error) {
	if err := Required("container group name", cg.Resource.Name); err != nil {
		return false, err
	}
	err = b.write(ctx, GroupChange(cg.Subscription, cg.ResourceGroup, cg.Resource.Name), func(tx *bolt.Tx) error {
		rg, err := getResourceGroup(tx, cg.Subscription, cg.ResourceGroup)
		if err != nil {
			return err
		}
		bk, err := createBuckets(tx, bucketContainerGroups, key(rg.Subscription), key(rg.Name))
		if err != nil {
			return err
		}
		var old ContainerGroup
		ok, err := getJSON(bk, key(cg.Resource.Name), &old)
		if err != nil {
			return err
		}
		cg.Subscription, cg.ResourceGroup = rg.Subscription, rg.Name
		cg.Generation = 1
		if ok {
			cg.Resource.Name, cg.CreatedAt = old.Resource.Name, old.CreatedAt
			cg.Generation = old.Generation + 1
		}
		created = !ok
		return putGroup(bk, key(cg.Resource.Name), cg, b.seal)
	})
	return created, err
}

// GetContainerGroup returns a container group by name.
func (b *Bolt) GetContainerGroup(ctx context.Context, sub, rg, name string) (*ContainerGroup, error) {
	var cg ContainerGroup
	err := b.view(ctx, func(tx *bolt.Tx) error {
		bk, err := containerGroups(tx, sub, rg)
		if err != nil {
			return err
		}
		ok, err := getGroup(bk, key(name), &cg, b.seal)
		if err == nil && !ok {
			err = ContainerGroupNotFound(rg, name)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &cg, nil
}

// ListContainerGroups lists a resource group's container groups sorted by
// name, or, when rg is "", the subscription's sorted by resource group then
// name. A named resource group that does not exist is ErrNotFound.
func (b *Bolt) ListContainerGroups(ctx context.Context, sub, rg string) ([]ContainerGroup, error) {
	var out []ContainerGroup
	err := b.view(ctx, func(tx *bolt.Tx) error {
		if rg != "" {
			bk, err := containerGroups(tx, sub, rg)
			if err != nil {
				return err
			}
			out, err = listGroups(bk, b.seal)
			return err
		}
		out = []ContainerGroup{}
		subBk := buckets(tx, bucketContainerGroups, key(sub))
		if subBk == nil {
			return nil
		}
		return subBk.ForEachBucket(func(k []byte) error {
			cgs, err := listGroups(subBk.Bucket(k), b.seal)
			out = append(out, cgs...)
			return err
		})
	})
	return out, err
}

// DeleteContainerGroup deletes a container group.
func (b *Bolt) DeleteContainerGroup(ctx context.Context, sub, rg, name string) error {
	return b.write(ctx, GroupChange(sub, rg, name), func(tx *bolt.Tx) error {
		bk, err := containerGroups(tx, sub, rg)
		if err != nil {
			return err
		}
		if bk == nil || bk.Get([]byte(key(name))) == nil {
			return ContainerGroupNotFound(rg, name)
		}
		return bk.Delete([]byte(key(name)))
	})
}

// UpdateContainerGroup applies f to the stored container group and stores
// the result, all in one transaction: if f fails, its error is returned as
// is and nothing is written. f may not rename the group or move it
// (errdefs.ErrInvalidArgument).
func (b *Bolt) UpdateContainerGroup(ctx context.Context, sub, rg, name string, f func(*ContainerGroup) error) (*ContainerGroup, error) {
	var cg ContainerGroup
	err := b.write(ctx, GroupChange(sub, rg, name), func(tx *bolt.Tx) error {
		bk, err := containerGroups(tx, sub, rg)
		if err != nil {
			return err
		}
		ok, err := getGroup(bk, key(name), &cg, b.seal)
		if err != nil {
			return err
		}
		if !ok {
			return ContainerGroupNotFound(rg, name)
		}
		old := cg
		if err := f(&cg); err != nil {
			return err
		}
		if key(cg.Subscription) != key(old.Subscription) || key(cg.ResourceGroup) != key(old.ResourceGroup) ||
			key(cg.Resource.Name) != key(old.Resource.Name) {
			return fmt.Errorf("update of container group %q may not change its subscription, resource group or name: %w",
				old.Resource.Name, errdefs.ErrInvalidArgument)
		}
		return putGroup(bk, key(name), cg, b.seal)
	})
	if err != nil {
		return nil, err
	}
	return &cg, nil
}

// PutOperation creates or replaces an operation.
func (b *Bolt) PutOperation(ctx context.Context, op Operation) error {
	if err := Required("operation id", op.ID); err != nil {
		return err
	}
	return b.write(ctx, OpChange(op.Subscription, op.ID), func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket([]byte(bucketOperations)), key(op.ID), op)
	})
}

// GetOperation returns an operation by id.
func (b *Bolt) GetOperation(ctx context.Context, id string) (*Operation, error) {
	var op Operation
	err := b.view(ctx, func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket([]byte(bucketOperations)), key(id), &op)
		if err == nil && !ok {
			err = OperationNotFound(id)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &op, nil
}

// ListOperations returns the operations whose status is status (all when
// status is ""), sorted by start time, then id.
func (b *Bolt) ListOperations(ctx context.Context, status string) ([]Operation, error) {
	var out []Operation
	err := b.view(ctx, func(tx *bolt.Tx) error {
		all, err := listJSON[Operation](tx.Bucket([]byte(bucketOperations)))
		out = slices.DeleteFunc(all, func(op Operation) bool {
			return status != "" && !strings.EqualFold(op.Status, status)
		})
		return err
	})
	slices.SortStableFunc(out, func(a, b Operation) int { return a.StartTime.Compare(b.StartTime) })
	return out, err
}

// GetMeta returns the setting key.
func (b *Bolt) GetMeta(ctx context.Context, k string) (string, error) {
	if err := metaKey(k); err != nil {
		return "", err
	}
	var v string
	err := b.view(ctx, func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket([]byte(bucketMeta)), k, &v)
		if err == nil && !ok {
			err = SettingNotFound(k)
		}
		return err
	})
	return v, err
}

// PutMeta sets the setting key.
func (b *Bolt) PutMeta(ctx context.Context, k, value string) error {
	if err := metaKey(k); err != nil {
		return err
	}
	return b.update(ctx, func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket([]byte(bucketMeta)), k, value)
	})
}

func metaKey(k string) error {
	if k == "" || k == keySchemaVersion || k == keySealCheck {
		return fmt.Errorf("setting name %q is empty or reserved: %w", k, errdefs.ErrInvalidArgument)
	}
	return nil
}

// getResourceGroup reads a resource group record.
func getResourceGroup(tx *bolt.Tx, sub, name string) (*ResourceGroup, error) {
	var rg ResourceGroup
	ok, err := getJSON(buckets(tx, bucketResourceGroups, key(sub)), key(name), &rg)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ResourceGroupNotFound(name)
	}
	return &rg, nil
}

// containerGroups returns the bucket of a resource group's container
// groups: nil if it has none yet, ErrNotFound if the group does not exist.
func containerGroups(tx *bolt.Tx, sub, rg string) (*bolt.Bucket, error) {
	if _, err := getResourceGroup(tx, sub, rg); err != nil {
		return nil, err
	}
	return buckets(tx, bucketContainerGroups, key(sub), key(rg)), nil
}

// key folds a name for lookup.
func key(name string) string { return strings.ToLower(name) }

// buckets follows a path of nested buckets; nil if one is missing.
func buckets(tx *bolt.Tx, path ...string) *bolt.Bucket {
	bk := tx.Bucket([]byte(path[0]))
	for _, name := range path[1:] {
		if bk == nil {
			return nil
		}
		bk = bk.Bucket([]byte(name))
	}
	return bk
}

// createBuckets follows a path of nested buckets, creating missing ones.
func createBuckets(tx *bolt.Tx, path ...string) (*bolt.Bucket, error) {
	bk, err := tx.CreateBucketIfNotExists([]byte(path[0]))
	for _, name := range path[1:] {
		if err != nil {
			break
		}
		bk, err = bk.CreateBucketIfNotExists([]byte(name))
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", strings.Join(path, "/"), err)
	}
	return bk, nil
}

// getJSON decodes the value at k into v; false if bk or k is missing.
func getJSON(bk *bolt.Bucket, k string, v any) (bool, error) {
	if bk == nil {
		return false, nil
	}
	data := bk.Get([]byte(k))
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decode %q: %w", k, err)
	}
	return true, nil
}

func putJSON(bk *bolt.Bucket, k string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", k, err)
	}
	return bk.Put([]byte(k), data)
}

// listJSON decodes every value of bk (nil: none) in key order.
func listJSON[T any](bk *bolt.Bucket) ([]T, error) {
	out := []T{}
	if bk == nil {
		return out, nil
	}
	err := bk.ForEach(func(k, data []byte) error {
		var v T
		if err := json.Unmarshal(data, &v); err != nil {
			return fmt.Errorf("decode %q: %w", k, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// putGroup stores a container group with its secrets sealed; cg itself is
// not modified.
func putGroup(bk *bolt.Bucket, k string, cg ContainerGroup, s *seal.Sealer) error {
	sealed, err := SealGroup(cg, s)
	if err != nil {
		return err
	}
	return putJSON(bk, k, sealed)
}

// getGroup reads a container group and opens its secrets; false if bk or
// k is missing.
func getGroup(bk *bolt.Bucket, k string, cg *ContainerGroup, s *seal.Sealer) (bool, error) {
	*cg = ContainerGroup{} // a batched write may run its function twice
	ok, err := getJSON(bk, k, cg)
	if err != nil || !ok {
		return ok, err
	}
	return true, OpenGroup(cg, s)
}

// listGroups reads every container group of bk (nil: none) in key order,
// with their secrets opened.
func listGroups(bk *bolt.Bucket, s *seal.Sealer) ([]ContainerGroup, error) {
	out, err := listJSON[ContainerGroup](bk)
	if err != nil {
		return nil, err
	}
	for i := range out {
		if err := OpenGroup(&out[i], s); err != nil {
			return nil, err
		}
	}
	return out, nil
}
