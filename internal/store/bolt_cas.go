package store

// Conditional writes: the compare-and-swap the server and the controller
// use so that a PUT racing a DELETE (of a container group or of its
// resource group) decides on the record as it is when the write happens.

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// UpdateResourceGroup applies f to the stored resource group and stores the
// result in one transaction; if f fails nothing is written and its error is
// returned as is. f may not rename the group (errdefs.ErrInvalidArgument).
func (b *Bolt) UpdateResourceGroup(ctx context.Context, sub, name string, f func(*ResourceGroup) error) (*ResourceGroup, error) {
	var rg *ResourceGroup
	err := b.write(ctx, RGChange(sub, name), func(tx *bolt.Tx) error {
		var err error
		if rg, err = getResourceGroup(tx, sub, name); err != nil {
			return err
		}
		old := *rg
		if err := f(rg); err != nil {
			return err
		}
		if key(rg.Subscription) != key(old.Subscription) || key(rg.Name) != key(old.Name) {
			return fmt.Errorf("update of resource group %q may not change its subscription or name: %w", old.Name, errdefs.ErrInvalidArgument)
		}
		return putJSON(buckets(tx, bucketResourceGroups, key(sub)), key(name), rg)
	})
	if err != nil {
		return nil, err
	}
	return rg, nil
}

// CreateOrUpdateContainerGroup reads the stored container group (nil if
// none), asks f for the record to store and stores it, in one transaction.
// The store sets Subscription and ResourceGroup to the resource group's,
// keeps the stored name's case and CreatedAt, and sets Generation to 1 on
// creation and to the stored Generation+1 on replacement. A resource group
// that is Deleting takes nothing (errdefs.ErrConflict, code
// ResourceGroupBeingDeleted).
func (b *Bolt) CreateOrUpdateContainerGroup(ctx context.Context, sub, rgName, name string, f func(old *ContainerGroup) (*ContainerGroup, error)) (*ContainerGroup, bool, error) {
	if err := Required("container group name", name); err != nil {
		return nil, false, err
	}
	var out *ContainerGroup
	var created bool
	err := b.write(ctx, GroupChange(sub, rgName, name), func(tx *bolt.Tx) error {
		rg, err := getResourceGroup(tx, sub, rgName)
		if err != nil {
			return err
		}
		if err := CheckTakesGroups(rg); err != nil {
			return err
		}
		bk, err := createBuckets(tx, bucketContainerGroups, key(rg.Subscription), key(rg.Name))
		if err != nil {
			return err
		}
		var old ContainerGroup
		ok, err := getGroup(bk, key(name), &old, b.seal)
		if err != nil {
			return err
		}
		var cur *ContainerGroup
		if ok {
			cur = &old
		}
		cg, err := f(cur)
		if err != nil {
			return err
		}
		if key(cg.Resource.Name) != key(name) {
			return fmt.Errorf("container group %q may not be stored as %q: %w", name, cg.Resource.Name, errdefs.ErrInvalidArgument)
		}
		cg.Subscription, cg.ResourceGroup = rg.Subscription, rg.Name
		cg.Generation = 1
		if ok {
			cg.Resource.Name, cg.CreatedAt = old.Resource.Name, old.CreatedAt
			cg.Generation = old.Generation + 1
		}
		created, out = !ok, cg
		return putGroup(bk, key(name), *cg, b.seal)
	})
	if err != nil {
		return nil, false, err
	}
	return out, created, nil
}

// DeleteContainerGroupIf deletes the stored container group if ok accepts
// it, in one transaction; ok's error is returned as is and nothing is
// deleted.
func (b *Bolt) DeleteContainerGroupIf(ctx context.Context, sub, rg, name string, ok func(*ContainerGroup) error) error {
	return b.write(ctx, GroupChange(sub, rg, name), func(tx *bolt.Tx) error {
		bk, err := containerGroups(tx, sub, rg)
		if err != nil {
			return err
		}
		var cg ContainerGroup
		found, err := getGroup(bk, key(name), &cg, b.seal)
		if err != nil {
			return err
		}
		if !found {
			return ContainerGroupNotFound(rg, name)
		}
		if err := ok(&cg); err != nil {
			return err
		}
		return bk.Delete([]byte(key(name)))
	})
}

// HandOverContainerGroup creates sub/rg/name from the record of
// sub/fromRG/fromName as f makes it, and deletes that record, in one
// transaction (see Store).
func (b *Bolt) HandOverContainerGroup(ctx context.Context, sub, fromRG, fromName, rgName, name string, f func(from *ContainerGroup) (*ContainerGroup, error)) (*ContainerGroup, error) {
	if err := Required("container group name", name); err != nil {
		return nil, err
	}
	var out *ContainerGroup
	changes := []Change{GroupChange(sub, rgName, name), GroupChange(sub, fromRG, fromName)}
	err := b.writeAll(ctx, changes, func(tx *bolt.Tx) error {
		fromBk, err := containerGroups(tx, sub, fromRG)
		if err != nil {
			return err
		}
		var from ContainerGroup
		found, err := getGroup(fromBk, key(fromName), &from, b.seal)
		if err != nil {
			return err
		}
		if !found {
			return ContainerGroupNotFound(fromRG, fromName)
		}
		rg, err := getResourceGroup(tx, sub, rgName)
		if err != nil {
			return err
		}
		if err := CheckTakesGroups(rg); err != nil {
			return err
		}
		bk, err := createBuckets(tx, bucketContainerGroups, key(rg.Subscription), key(rg.Name))
		if err != nil {
			return err
		}
		if bk.Get([]byte(key(name))) != nil {
			return fmt.Errorf("container group %q exists: %w", name, errdefs.ErrAlreadyExists)
		}
		cg, err := f(&from)
		if err != nil {
			return err
		}
		if cg == nil || key(cg.Resource.Name) != key(name) {
			return fmt.Errorf("container group %q may not be stored as another: %w", name, errdefs.ErrInvalidArgument)
		}
		cg.Subscription, cg.ResourceGroup, cg.Generation = rg.Subscription, rg.Name, 1
		out = cg
		if err := putGroup(bk, key(name), *cg, b.seal); err != nil {
			return err
		}
		return fromBk.Delete([]byte(key(fromName)))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
