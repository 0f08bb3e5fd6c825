// Package store persists Skiff's resources: subscriptions, resource groups,
// container groups and long-running operations. The interface lets a
// clustered implementation (etcd) follow the embedded bbolt one; one test
// suite runs against every implementation.
//
// ARM names are case-insensitive: lookups fold case, records keep the name
// as it was first written.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/seal"
)

// Subscription is a tenant's subscription.
type Subscription struct {
	ID          string    `json:"id"` // a GUID
	DisplayName string    `json:"displayName"`
	State       string    `json:"state"` // "Enabled"
	CreatedAt   time.Time `json:"createdAt"`
}

// ResourceGroup is a named group of resources in a subscription.
type ResourceGroup struct {
	Subscription string            `json:"subscription"`
	Name         string            `json:"name"`
	Location     string            `json:"location"`
	Tags         map[string]string `json:"tags,omitempty"`
	// ProvisioningState is "" (Succeeded) or ResourceGroupDeleting once a
	// delete was accepted; a Deleting resource group takes no new or
	// changed container groups (CreateOrUpdateContainerGroup).
	ProvisioningState string    `json:"provisioningState,omitempty"`
	CreatedAt         time.Time `json:"createdAt"`
}

// ResourceGroupDeleting is the ProvisioningState of a resource group whose
// delete has been accepted and is not finished.
const ResourceGroupDeleting = "Deleting"

// ContainerGroup is the desired state of a container group, as accepted by
// the API (secrets included: the store is private to the server).
type ContainerGroup struct {
	Subscription  string `json:"subscription"`
	ResourceGroup string `json:"resourceGroup"`
	// RuntimeID names the group in the host runtime.
	RuntimeID string `json:"runtimeID"`
	// Resource is the ARM resource; Resource.Name is the group's name and
	// Resource.Properties.ProvisioningState its provisioning state.
	Resource api.ContainerGroup `json:"resource"`
	// Error explains a Failed provisioning state.
	Error *api.ErrorBody `json:"error,omitempty"`
	// Generation increases with every accepted PUT.
	Generation int64     `json:"generation"`
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`

	// Host is the host agent the controller placed the group on; "" until
	// it is placed. Only that agent runs it.
	Host string `json:"host,omitempty"`
	// PortsRefusedBy are the hosts that refused the group's public ports
	// when the server accepted its spec (the scheduler passes them over).
	// Only the server writes it, with the spec.
	PortsRefusedBy []string `json:"portsRefusedBy,omitempty"`
	// Action is the last stop, start or restart asked of the group.
	Action Action `json:"action,omitzero"`
	// DeleteGrace is the time between SIGTERM and SIGKILL a DELETE asked
	// for (nil: the host's default).
	DeleteGrace *time.Duration `json:"deleteGrace,omitempty"`
	// Observed is what the group's host agent last saw of it. Only the
	// agent writes it; every other writer keeps it as it is.
	Observed *Observed `json:"observed,omitempty"`
	// Events are the control plane's events of the group (Scheduled,
	// FailedScheduling, HostLost, Rescheduled); reads show them with the
	// agent's. Only the controller writes them.
	Events []api.Event `json:"events,omitempty"`
}

// Action kinds.
const (
	ActionStop    = "stop"
	ActionStart   = "start"
	ActionRestart = "restart"
)

// Action is a stop, start or restart asked of a group. Seq increases with
// each; the agent carries out the newest it has not (Observed.ActionSeq),
// so two asked in a row are one, the later.
type Action struct {
	Kind string `json:"kind,omitempty"`
	Seq  int64  `json:"seq,omitempty"`
}

// Observed is a group's state as its host agent saw it last: what GET
// shows as the instanceView and the IP addresses.
type Observed struct {
	// Generation is the spec generation the host runs (or failed to).
	Generation int64 `json:"generation"`
	// ActionSeq is the last Action.Seq the host carried out, and
	// ActionError its failure.
	ActionSeq   int64          `json:"actionSeq,omitempty"`
	ActionError *api.ErrorBody `json:"actionError,omitempty"`
	// State is the group's instanceView state (api.Group*).
	State string `json:"state"`
	// Error is a failure for good before or while starting (an image
	// that cannot be pulled).
	Error *api.ErrorBody `json:"error,omitempty"`
	// DeleteError is why removing a Deleting group failed; the agent
	// tries again on its next start.
	DeleteError *api.ErrorBody `json:"deleteError,omitempty"`
	// IP is the group's private address; PublicIP the host address its
	// published ports answer on.
	IP         string              `json:"ip,omitempty"`
	PublicIP   string              `json:"publicIP,omitempty"`
	Events     []api.Event         `json:"events,omitempty"`
	Containers []ObservedContainer `json:"containers,omitempty"`
	UpdatedAt  time.Time           `json:"updatedAt"`
}

// ObservedContainer is one container's instanceView.
type ObservedContainer struct {
	Name string                    `json:"name"`
	Init bool                      `json:"init,omitempty"`
	View api.ContainerInstanceView `json:"view"`
}

// Container returns the observed container of that name, or nil.
func (o *Observed) Container(name string) *ObservedContainer {
	if o == nil {
		return nil
	}
	for i := range o.Containers {
		if o.Containers[i].Name == name {
			return &o.Containers[i]
		}
	}
	return nil
}

// Operation is a long-running operation, polled through its
// Azure-AsyncOperation URL.
type Operation struct {
	ID           string `json:"id"` // a GUID
	Subscription string `json:"subscription"`
	Location     string `json:"location"`
	ResourceID   string `json:"resourceID"` // ARM id of the target resource
	Kind         string `json:"kind"`       // create, update, delete, start, restart
	// Target is what the operation waits for: the generation a create or
	// update wrote, a delete marked, or the Action.Seq of a start or
	// restart.
	Target    int64          `json:"target,omitempty"`
	Status    string         `json:"status"` // api.Operation*
	Error     *api.ErrorBody `json:"error,omitempty"`
	StartTime time.Time      `json:"startTime"`
	EndTime   time.Time      `json:"endTime,omitzero"`
}

// Store persists resources and hosts. Every method is safe for concurrent use. Get and
// Delete of something absent return an error wrapping errdefs.ErrNotFound.
type Store interface {
	PutSubscription(ctx context.Context, s Subscription) error
	GetSubscription(ctx context.Context, id string) (*Subscription, error)
	ListSubscriptions(ctx context.Context) ([]Subscription, error)

	// PutResourceGroup creates or replaces; created reports which.
	PutResourceGroup(ctx context.Context, rg ResourceGroup) (created bool, err error)
	GetResourceGroup(ctx context.Context, sub, name string) (*ResourceGroup, error)
	ListResourceGroups(ctx context.Context, sub string) ([]ResourceGroup, error)
	DeleteResourceGroup(ctx context.Context, sub, name string) error
	// UpdateResourceGroup applies f to the stored record atomically; if f
	// fails nothing is written and its error is returned as is.
	UpdateResourceGroup(ctx context.Context, sub, name string, f func(*ResourceGroup) error) (*ResourceGroup, error)

	// PutContainerGroup creates or replaces; created reports which. The
	// resource group must exist (else ErrNotFound). The store sets
	// Generation (1 on create, +1 on replace) and keeps the stored name and
	// CreatedAt on replace.
	PutContainerGroup(ctx context.Context, cg ContainerGroup) (created bool, err error)
	GetContainerGroup(ctx context.Context, sub, rg, name string) (*ContainerGroup, error)
	// ListContainerGroups lists a resource group's groups, or the whole
	// subscription's when rg is "", sorted by resource group then name.
	ListContainerGroups(ctx context.Context, sub, rg string) ([]ContainerGroup, error)
	DeleteContainerGroup(ctx context.Context, sub, rg, name string) error
	// UpdateContainerGroup applies f to the stored record atomically.
	UpdateContainerGroup(ctx context.Context, sub, rg, name string, f func(*ContainerGroup) error) (*ContainerGroup, error)
	// CreateOrUpdateContainerGroup is a compare-and-swap: in one
	// transaction it reads the stored record (nil if there is none), asks
	// f for the record to store, and stores it as PutContainerGroup does
	// (Generation, name case, CreatedAt). If f fails nothing is written and
	// its error is returned as is. The resource group must exist (else
	// ErrNotFound) and not be Deleting (else ErrConflict, code
	// ResourceGroupBeingDeleted).
	CreateOrUpdateContainerGroup(ctx context.Context, sub, rg, name string, f func(old *ContainerGroup) (*ContainerGroup, error)) (cg *ContainerGroup, created bool, err error)
	// DeleteContainerGroupIf deletes the stored record only if ok accepts
	// it, in one transaction; ok's error is returned as is.
	DeleteContainerGroupIf(ctx context.Context, sub, rg, name string, ok func(*ContainerGroup) error) error
	// HandOverContainerGroup gives a new record the running group of
	// another, in one transaction: it reads the record sub/fromRG/fromName
	// (ErrNotFound if absent), asks f for the record to create as
	// sub/rg/name from it, stores that as a create (Generation 1), and
	// deletes the one it came from. The new name must be free (else
	// ErrAlreadyExists) and its resource group as CreateOrUpdateContainerGroup
	// wants it. If f fails nothing is written and its error is returned as
	// is. (A standby pool hands its ready groups over so.)
	HandOverContainerGroup(ctx context.Context, sub, fromRG, fromName, rg, name string, f func(from *ContainerGroup) (*ContainerGroup, error)) (*ContainerGroup, error)

	PutOperation(ctx context.Context, op Operation) error
	GetOperation(ctx context.Context, id string) (*Operation, error)
	// ListOperations returns the operations with the given status ("" for
	// all), oldest first; InProgress ones are resumed after a restart.
	ListOperations(ctx context.Context, status string) ([]Operation, error)

	// GetMeta and PutMeta keep small server settings (e.g. the default
	// subscription id).
	GetMeta(ctx context.Context, key string) (string, error)
	PutMeta(ctx context.Context, key, value string) error

	// Watch returns the container groups, resource groups and operations
	// that writes change from now on, in commit order, until ctx ends
	// (then the channel is closed). Controllers and agents react to it
	// instead of polling.
	Watch(ctx context.Context) <-chan Change

	HostStore
	ObjectStore

	Close() error
}

// RuntimeID is the host runtime's id of a container group: stable, derived
// from its ARM identity, so a retried or recovered create never makes a
// second group.
func RuntimeID(sub, rg, name string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(sub + "/" + rg + "/" + name)))
	return "cg-" + hex.EncodeToString(sum[:10])
}

// Is reports whether cg is the record of sub/rg/name (names fold case).
func (cg *ContainerGroup) Is(sub, rg, name string) bool {
	return strings.EqualFold(cg.Subscription, sub) && strings.EqualFold(cg.ResourceGroup, rg) && strings.EqualFold(cg.Resource.Name, name)
}

// AllContainerGroups lists the container groups of every subscription, as
// ListContainerGroups orders each subscription's.
func AllContainerGroups(ctx context.Context, st Store) ([]ContainerGroup, error) {
	subs, err := st.ListSubscriptions(ctx)
	if err != nil {
		return nil, err
	}
	var out []ContainerGroup
	for _, s := range subs {
		cgs, err := st.ListContainerGroups(ctx, s.ID, "")
		if err != nil {
			return nil, err
		}
		out = append(out, cgs...)
	}
	return out, nil
}

// SealGroup returns a copy of cg with every secret (api.WalkSecrets)
// sealed, as a store keeps it at rest; cg is not modified.
func SealGroup(cg ContainerGroup, s *seal.Sealer) (ContainerGroup, error) {
	cg.Resource = *api.Clone(&cg.Resource)
	err := api.WalkSecrets(&cg.Resource.Properties, func(where, v string) (string, error) {
		sealed, err := s.Seal(v)
		if err != nil {
			return "", fmt.Errorf("container group %q: %s: %w", cg.Resource.Name, where, err)
		}
		return sealed, nil
	})
	return cg, err
}

// OpenGroup opens the secrets of a group SealGroup sealed, in place.
func OpenGroup(cg *ContainerGroup, s *seal.Sealer) error {
	return api.WalkSecrets(&cg.Resource.Properties, func(where, v string) (string, error) {
		plain, err := s.Open(v)
		if err != nil {
			return "", fmt.Errorf("container group %q: %s: %w", cg.Resource.Name, where, err)
		}
		return plain, nil
	})
}
