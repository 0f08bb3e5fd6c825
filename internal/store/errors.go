package store

import (
	"fmt"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// The errors every Store implementation returns, with their ARM codes, so
// that bbolt and etcd answer alike.

// SubscriptionNotFound is the error of a missing subscription.
func SubscriptionNotFound(id string) error {
	return errdefs.WithCode(errdefs.ErrNotFound, "SubscriptionNotFound", "subscription %q not found", id)
}

// ResourceGroupNotFound is the error of a missing resource group.
func ResourceGroupNotFound(name string) error {
	return errdefs.WithCode(errdefs.ErrNotFound, "ResourceGroupNotFound", "resource group %q not found", name)
}

// ContainerGroupNotFound is the error of a missing container group.
func ContainerGroupNotFound(rg, name string) error {
	return errdefs.WithCode(errdefs.ErrNotFound, "ResourceNotFound",
		"container group %q not found in resource group %q", name, rg)
}

// HostNotFound is the error of a missing host.
func HostNotFound(name string) error {
	return errdefs.WithCode(errdefs.ErrNotFound, "HostNotFound", "host %q not found", name)
}

// OperationNotFound is the error of a missing operation.
func OperationNotFound(id string) error {
	return errdefs.WithCode(errdefs.ErrNotFound, "NotFound", "operation %q not found", id)
}

// SettingNotFound is the error of a missing setting (GetMeta).
func SettingNotFound(k string) error {
	return errdefs.WithCode(errdefs.ErrNotFound, "NotFound", "setting %q not found", k)
}

// Required refuses an empty name.
func Required(what, v string) error {
	if v == "" {
		return fmt.Errorf("%s is empty: %w", what, errdefs.ErrInvalidArgument)
	}
	return nil
}

// CheckTakesGroups refuses a write of a container group (or of any
// resource) into rg while it is being deleted (ErrConflict, code
// ResourceGroupBeingDeleted).
func CheckTakesGroups(rg *ResourceGroup) error {
	if rg.ProvisioningState == ResourceGroupDeleting {
		return errdefs.WithCode(errdefs.ErrConflict, "ResourceGroupBeingDeleted",
			"The resource group '%s' is in deprovisioning state and cannot perform this operation.", rg.Name)
	}
	return nil
}
