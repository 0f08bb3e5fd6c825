package etcdstore

// The records: subscriptions, resource groups, container groups,
// operations and settings, with the errors the bbolt store gives (the
// suite holds both to them).

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

// PutSubscription creates or replaces a subscription; a replacement keeps
// the stored ID's case and CreatedAt.
func (s *Store) PutSubscription(ctx context.Context, sub store.Subscription) error {
	if err := store.Required("subscription id", sub.ID); err != nil {
		return err
	}
	_, err := s.atomically(ctx, []string{s.subKey(sub.ID)}, func(kvs []*mvccpb.KeyValue) (decision, error) {
		rec := sub
		if kvs[0] != nil {
			var old store.Subscription
			if err := decode(kvs[0], &old); err != nil {
				return decision{}, err
			}
			rec.ID, rec.CreatedAt = old.ID, old.CreatedAt
		}
		return put(s.subKey(sub.ID), "subscription", rec)
	})
	return err
}

// GetSubscription returns a subscription by id.
func (s *Store) GetSubscription(ctx context.Context, id string) (*store.Subscription, error) {
	var sub store.Subscription
	if err := s.getRecord(ctx, s.subKey(id), &sub, func() error { return store.SubscriptionNotFound(id) }); err != nil {
		return nil, err
	}
	return &sub, nil
}

// ListSubscriptions returns all subscriptions sorted by id.
func (s *Store) ListSubscriptions(ctx context.Context) ([]store.Subscription, error) {
	resp, err := s.get(ctx, s.prefix+dirSubscriptions, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	return decodeAll(resp.Kvs, func(sub *store.Subscription) string { return key(sub.ID) })
}

// PutResourceGroup creates or replaces a resource group; a replacement keeps
// the stored name's case and CreatedAt.
func (s *Store) PutResourceGroup(ctx context.Context, rg store.ResourceGroup) (created bool, err error) {
	if err := store.Required("subscription", rg.Subscription); err != nil {
		return false, err
	}
	if err := store.Required("resource group name", rg.Name); err != nil {
		return false, err
	}
	k := s.rgKey(rg.Subscription, rg.Name)
	_, err = s.atomically(ctx, []string{k}, func(kvs []*mvccpb.KeyValue) (decision, error) {
		rec := rg
		created = kvs[0] == nil
		if !created {
			var old store.ResourceGroup
			if err := decode(kvs[0], &old); err != nil {
				return decision{}, err
			}
			rec.Subscription, rec.Name, rec.CreatedAt = old.Subscription, old.Name, old.CreatedAt
		}
		return put(k, "resource group", rec)
	})
	return created, err
}

// GetResourceGroup returns a resource group by name.
func (s *Store) GetResourceGroup(ctx context.Context, sub, name string) (*store.ResourceGroup, error) {
	var rg store.ResourceGroup
	if err := s.getRecord(ctx, s.rgKey(sub, name), &rg, func() error { return store.ResourceGroupNotFound(name) }); err != nil {
		return nil, err
	}
	return &rg, nil
}

// ListResourceGroups returns a subscription's resource groups sorted by
// name.
func (s *Store) ListResourceGroups(ctx context.Context, sub string) ([]store.ResourceGroup, error) {
	resp, err := s.get(ctx, s.rgDir(sub), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	return decodeAll(resp.Kvs, func(rg *store.ResourceGroup) string { return key(rg.Name) })
}

// DeleteResourceGroup deletes an empty resource group. It does not cascade:
// while container groups remain it fails with errdefs.ErrConflict; the
// delete holds only if none was added meanwhile.
func (s *Store) DeleteResourceGroup(ctx context.Context, sub, name string) error {
	k, groups := s.rgKey(sub, name), s.cgDir(sub, name)
	_, err := s.atomically(ctx, []string{k}, func(kvs []*mvccpb.KeyValue) (decision, error) {
		if kvs[0] == nil {
			return decision{}, store.ResourceGroupNotFound(name)
		}
		resp, err := s.get(ctx, groups, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return decision{}, err
		}
		if resp.Count > 0 {
			return decision{}, fmt.Errorf("resource group %q still holds %d container group(s): %w", name, resp.Count, errdefs.ErrConflict)
		}
		return decision{
			cmps: []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(groups), "=", 0).WithPrefix()},
			ops:  []clientv3.Op{clientv3.OpDelete(k)},
		}, nil
	})
	return err
}

// UpdateResourceGroup applies f to the stored resource group and stores the
// result atomically; if f fails nothing is written and its error is
// returned as is. f may not rename the group (errdefs.ErrInvalidArgument).
func (s *Store) UpdateResourceGroup(ctx context.Context, sub, name string, f func(*store.ResourceGroup) error) (*store.ResourceGroup, error) {
	k := s.rgKey(sub, name)
	var rg store.ResourceGroup
	_, err := s.atomically(ctx, []string{k}, func(kvs []*mvccpb.KeyValue) (decision, error) {
		if kvs[0] == nil {
			return decision{}, store.ResourceGroupNotFound(name)
		}
		rg = store.ResourceGroup{}
		if err := decode(kvs[0], &rg); err != nil {
			return decision{}, err
		}
		old := rg
		if err := f(&rg); err != nil {
			return decision{}, err
		}
		if key(rg.Subscription) != key(old.Subscription) || key(rg.Name) != key(old.Name) {
			return decision{}, fmt.Errorf("update of resource group %q may not change its subscription or name: %w", old.Name, errdefs.ErrInvalidArgument)
		}
		return put(k, "resource group", rg)
	})
	if err != nil {
		return nil, err
	}
	return &rg, nil
}

// groupHead is the part of a stored container group a replacement keeps.
type groupHead struct {
	Resource struct {
		Name string `json:"name"`
	} `json:"resource"`
	Generation int64     `json:"generation"`
	CreatedAt  time.Time `json:"createdAt"`
}

// PutContainerGroup creates or replaces a container group named
// cg.Resource.Name. The resource group must exist. The store sets
// Subscription and ResourceGroup to the resource group's, keeps the stored
// name's case and CreatedAt on replacement, and sets Generation to 1 on
// creation and to the stored Generation+1 on replacement.
func (s *Store) PutContainerGroup(ctx context.Context, cg store.ContainerGroup) (created bool, err error) {
	if err := store.Required("container group name", cg.Resource.Name); err != nil {
		return false, err
	}
	keys := []string{s.rgKey(cg.Subscription, cg.ResourceGroup), s.cgKey(cg.Subscription, cg.ResourceGroup, cg.Resource.Name)}
	_, err = s.atomically(ctx, keys, func(kvs []*mvccpb.KeyValue) (decision, error) {
		rg, err := decodeRG(kvs[0], cg.ResourceGroup)
		if err != nil {
			return decision{}, err
		}
		rec := cg
		rec.Subscription, rec.ResourceGroup = rg.Subscription, rg.Name
		rec.Generation = 1
		created = kvs[1] == nil
		if !created {
			var old groupHead
			if err := decode(kvs[1], &old); err != nil {
				return decision{}, err
			}
			rec.Resource.Name, rec.CreatedAt = old.Resource.Name, old.CreatedAt
			rec.Generation = old.Generation + 1
		}
		return s.putGroup(keys[1], rec)
	})
	return created, err
}

// GetContainerGroup returns a container group by name.
func (s *Store) GetContainerGroup(ctx context.Context, sub, rg, name string) (*store.ContainerGroup, error) {
	k := s.cgKey(sub, rg, name)
	resp, err := s.get(ctx, k)
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		s.recent.saw([]string{k}, []*mvccpb.KeyValue{nil})
		return nil, s.groupNotFound(ctx, sub, rg, name)
	}
	s.recent.saw([]string{k}, resp.Kvs[:1])
	return s.openGroup(resp.Kvs[0])
}

// ListContainerGroups lists a resource group's container groups sorted by
// name, or, when rg is "", the subscription's sorted by resource group then
// name. A named resource group that does not exist is ErrNotFound.
func (s *Store) ListContainerGroups(ctx context.Context, sub, rg string) ([]store.ContainerGroup, error) {
	var kvs []*mvccpb.KeyValue
	if rg == "" {
		resp, err := s.get(ctx, s.subCGDir(sub), clientv3.WithPrefix())
		if err != nil {
			return nil, err
		}
		kvs = resp.Kvs
	} else {
		resp, err := s.txn(ctx, nil, []clientv3.Op{
			clientv3.OpGet(s.rgKey(sub, rg), clientv3.WithCountOnly()),
			clientv3.OpGet(s.cgDir(sub, rg), clientv3.WithPrefix()),
		}, nil)
		if err != nil {
			return nil, err
		}
		if rangeOf(resp, 0).Count == 0 {
			return nil, store.ResourceGroupNotFound(rg)
		}
		kvs = rangeOf(resp, 1).Kvs
	}
	// A resource group's name never shares a key with another's: "\x00"
	// ends it, so "a" sorts before "a-b" as bbolt's nested buckets do.
	out, err := decodeAll(kvs, func(cg *store.ContainerGroup) string {
		return key(cg.ResourceGroup) + "\x00" + key(cg.Resource.Name)
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		if err := store.OpenGroup(&out[i], s.seal); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DeleteContainerGroup deletes a container group.
func (s *Store) DeleteContainerGroup(ctx context.Context, sub, rg, name string) error {
	k := s.cgKey(sub, rg, name)
	resp, err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), ">", 0)}, []clientv3.Op{clientv3.OpDelete(k)}, nil)
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return s.groupNotFound(ctx, sub, rg, name)
	}
	return nil
}

// UpdateContainerGroup applies f to the stored container group and stores
// the result atomically: if f fails, its error is returned as is and
// nothing is written. f may not rename the group or move it
// (errdefs.ErrInvalidArgument).
func (s *Store) UpdateContainerGroup(ctx context.Context, sub, rg, name string, f func(*store.ContainerGroup) error) (*store.ContainerGroup, error) {
	k := s.cgKey(sub, rg, name)
	var cg *store.ContainerGroup
	_, err := s.atomically(ctx, []string{k}, func(kvs []*mvccpb.KeyValue) (decision, error) {
		if kvs[0] == nil {
			return decision{}, s.groupNotFound(ctx, sub, rg, name)
		}
		var err error
		if cg, err = s.openGroup(kvs[0]); err != nil {
			return decision{}, err
		}
		old := *cg
		if err := f(cg); err != nil {
			return decision{}, err
		}
		if key(cg.Subscription) != key(old.Subscription) || key(cg.ResourceGroup) != key(old.ResourceGroup) ||
			key(cg.Resource.Name) != key(old.Resource.Name) {
			return decision{}, fmt.Errorf("update of container group %q may not change its subscription, resource group or name: %w",
				old.Resource.Name, errdefs.ErrInvalidArgument)
		}
		return s.putGroup(k, *cg)
	})
	if err != nil {
		return nil, err
	}
	return cg, nil
}

// CreateOrUpdateContainerGroup reads the stored container group (nil if
// none), asks f for the record to store and stores it, atomically with the
// resource group as it was read. The store sets Subscription and
// ResourceGroup to the resource group's, keeps the stored name's case and
// CreatedAt, and sets Generation to 1 on creation and to the stored
// Generation+1 on replacement. A resource group that is Deleting takes
// nothing (errdefs.ErrConflict, code ResourceGroupBeingDeleted).
func (s *Store) CreateOrUpdateContainerGroup(ctx context.Context, sub, rgName, name string, f func(old *store.ContainerGroup) (*store.ContainerGroup, error)) (*store.ContainerGroup, bool, error) {
	if err := store.Required("container group name", name); err != nil {
		return nil, false, err
	}
	keys := []string{s.rgKey(sub, rgName), s.cgKey(sub, rgName, name)}
	var out *store.ContainerGroup
	var created bool
	_, err := s.atomically(ctx, keys, func(kvs []*mvccpb.KeyValue) (decision, error) {
		rg, err := decodeRG(kvs[0], rgName)
		if err != nil {
			return decision{}, err
		}
		if err := store.CheckTakesGroups(rg); err != nil {
			return decision{}, err
		}
		var old *store.ContainerGroup
		if kvs[1] != nil {
			if old, err = s.openGroup(kvs[1]); err != nil {
				return decision{}, err
			}
		}
		cg, err := f(old)
		if err != nil {
			return decision{}, err
		}
		if cg == nil || key(cg.Resource.Name) != key(name) {
			return decision{}, fmt.Errorf("container group %q may not be stored as %v: %w", name, storedAs(cg), errdefs.ErrInvalidArgument)
		}
		cg.Subscription, cg.ResourceGroup = rg.Subscription, rg.Name
		cg.Generation = 1
		if old != nil {
			cg.Resource.Name, cg.CreatedAt = old.Resource.Name, old.CreatedAt
			cg.Generation = old.Generation + 1
		}
		created, out = old == nil, cg
		return s.putGroup(keys[1], *cg)
	})
	if err != nil {
		return nil, false, err
	}
	return out, created, nil
}

// storedAs names what f returned, for the error.
func storedAs(cg *store.ContainerGroup) string {
	if cg == nil {
		return "nothing"
	}
	return fmt.Sprintf("%q", cg.Resource.Name)
}

// DeleteContainerGroupIf deletes the stored container group if ok accepts
// it, atomically; ok's error is returned as is and nothing is deleted.
func (s *Store) DeleteContainerGroupIf(ctx context.Context, sub, rg, name string, ok func(*store.ContainerGroup) error) error {
	k := s.cgKey(sub, rg, name)
	_, err := s.atomically(ctx, []string{k}, func(kvs []*mvccpb.KeyValue) (decision, error) {
		if kvs[0] == nil {
			return decision{}, s.groupNotFound(ctx, sub, rg, name)
		}
		cg, err := s.openGroup(kvs[0])
		if err != nil {
			return decision{}, err
		}
		if err := ok(cg); err != nil {
			return decision{}, err
		}
		return decision{ops: []clientv3.Op{clientv3.OpDelete(k)}}, nil
	})
	return err
}

// HandOverContainerGroup creates sub/rg/name from the record of
// sub/fromRG/fromName as f makes it, and deletes that record, atomically
// (see store.Store).
func (s *Store) HandOverContainerGroup(ctx context.Context, sub, fromRG, fromName, rgName, name string, f func(from *store.ContainerGroup) (*store.ContainerGroup, error)) (*store.ContainerGroup, error) {
	if err := store.Required("container group name", name); err != nil {
		return nil, err
	}
	keys := []string{s.rgKey(sub, rgName), s.cgKey(sub, rgName, name), s.cgKey(sub, fromRG, fromName)}
	var out *store.ContainerGroup
	_, err := s.atomically(ctx, keys, func(kvs []*mvccpb.KeyValue) (decision, error) {
		if kvs[2] == nil {
			return decision{}, s.groupNotFound(ctx, sub, fromRG, fromName)
		}
		from, err := s.openGroup(kvs[2])
		if err != nil {
			return decision{}, err
		}
		rg, err := decodeRG(kvs[0], rgName)
		if err != nil {
			return decision{}, err
		}
		if err := store.CheckTakesGroups(rg); err != nil {
			return decision{}, err
		}
		if kvs[1] != nil {
			return decision{}, fmt.Errorf("container group %q exists: %w", name, errdefs.ErrAlreadyExists)
		}
		cg, err := f(from)
		if err != nil {
			return decision{}, err
		}
		if cg == nil || key(cg.Resource.Name) != key(name) {
			return decision{}, fmt.Errorf("container group %q may not be stored as %v: %w", name, storedAs(cg), errdefs.ErrInvalidArgument)
		}
		cg.Subscription, cg.ResourceGroup, cg.Generation = rg.Subscription, rg.Name, 1
		d, err := s.putGroup(keys[1], *cg)
		if err != nil {
			return decision{}, err
		}
		out = cg
		d.ops = append(d.ops, clientv3.OpDelete(keys[2]))
		return d, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PutOperation creates or replaces an operation.
func (s *Store) PutOperation(ctx context.Context, op store.Operation) error {
	if err := store.Required("operation id", op.ID); err != nil {
		return err
	}
	return s.putRecord(ctx, s.opKey(op.ID), "operation", op)
}

// GetOperation returns an operation by id.
func (s *Store) GetOperation(ctx context.Context, id string) (*store.Operation, error) {
	var op store.Operation
	err := s.getRecord(ctx, s.opKey(id), &op, func() error {
		return store.OperationNotFound(id)
	})
	if err != nil {
		return nil, err
	}
	return &op, nil
}

// ListOperations returns the operations whose status is status (all when
// status is ""), sorted by start time, then id.
func (s *Store) ListOperations(ctx context.Context, status string) ([]store.Operation, error) {
	resp, err := s.get(ctx, s.prefix+dirOperations, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	all, err := decodeAll(resp.Kvs, func(op *store.Operation) string { return key(op.ID) })
	if err != nil {
		return nil, err
	}
	out := slices.DeleteFunc(all, func(op store.Operation) bool {
		return status != "" && !strings.EqualFold(op.Status, status)
	})
	slices.SortStableFunc(out, func(a, b store.Operation) int { return a.StartTime.Compare(b.StartTime) })
	return out, nil
}

// GetMeta returns the setting k.
func (s *Store) GetMeta(ctx context.Context, k string) (string, error) {
	if err := checkMetaKey(k); err != nil {
		return "", err
	}
	var v string
	err := s.getRecord(ctx, s.metaKey(k), &v, func() error {
		return store.SettingNotFound(k)
	})
	return v, err
}

// PutMeta sets the setting k.
func (s *Store) PutMeta(ctx context.Context, k, value string) error {
	if err := checkMetaKey(k); err != nil {
		return err
	}
	return s.putRecord(ctx, s.metaKey(k), "setting", value)
}

func checkMetaKey(k string) error {
	if k == "" || k == keySchemaVersion || k == keySealCheck {
		return fmt.Errorf("setting name %q is empty or reserved: %w", k, errdefs.ErrInvalidArgument)
	}
	return nil
}

// getRecord reads the record at k into v; notFound gives the error when
// there is none.
func (s *Store) getRecord(ctx context.Context, k string, v any, notFound func() error) error {
	resp, err := s.get(ctx, k)
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		s.recent.saw([]string{k}, []*mvccpb.KeyValue{nil})
		return notFound()
	}
	s.recent.saw([]string{k}, resp.Kvs[:1])
	return decode(resp.Kvs[0], v)
}

// putRecord writes v at k, whatever was there.
func (s *Store) putRecord(ctx context.Context, k, what string, v any) error {
	d, err := put(k, what, v)
	if err != nil {
		return err
	}
	_, err = s.txn(ctx, nil, d.ops, nil)
	return err
}

// put is a decision to write v at k.
func put(k, what string, v any) (decision, error) {
	data, err := encode(what, v)
	if err != nil {
		return decision{}, err
	}
	return decision{ops: []clientv3.Op{clientv3.OpPut(k, data)}}, nil
}

// putGroup is a decision to write cg at k with its secrets sealed; cg
// itself is not modified.
func (s *Store) putGroup(k string, cg store.ContainerGroup) (decision, error) {
	sealed, err := store.SealGroup(cg, s.seal)
	if err != nil {
		return decision{}, err
	}
	return put(k, "container group", sealed)
}

// openGroup decodes a stored container group and opens its secrets.
func (s *Store) openGroup(kv *mvccpb.KeyValue) (*store.ContainerGroup, error) {
	var cg store.ContainerGroup
	if err := decode(kv, &cg); err != nil {
		return nil, err
	}
	if err := store.OpenGroup(&cg, s.seal); err != nil {
		return nil, err
	}
	return &cg, nil
}

// decodeRG decodes a resource group read as kv (nil: it does not exist).
func decodeRG(kv *mvccpb.KeyValue, name string) (*store.ResourceGroup, error) {
	if kv == nil {
		return nil, store.ResourceGroupNotFound(name)
	}
	var rg store.ResourceGroup
	if err := decode(kv, &rg); err != nil {
		return nil, err
	}
	return &rg, nil
}

// groupNotFound is the error for a container group that is not there: its
// resource group's if that is not there either (as bbolt answers).
func (s *Store) groupNotFound(ctx context.Context, sub, rg, name string) error {
	resp, err := s.get(ctx, s.rgKey(sub, rg), clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	if resp.Count == 0 {
		return store.ResourceGroupNotFound(rg)
	}
	return store.ContainerGroupNotFound(rg, name)
}
