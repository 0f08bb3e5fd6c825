// Package ngroup keeps NGroups: their records in the store's objects, and
// the reconciler that holds each NGroup's members (container groups made
// from one container group profile revision, tagged api.NGroupTag) at its
// desired count and moves them to a new revision, Manually or Rolling.
//
// An NGroup's life, and who moves it:
//
//	PUT (server: Put) ──▶ Creating ──▶ Succeeded ◀──▶ Updating (a PUT, a member lost or failing)
//	                          │            │               │
//	                          └────────────┴──▶ Failed (a rolling update stopped: too many new members unhealthy)
//	DELETE (server: MarkDeleting) ──▶ Deleting ──▶ gone (reconciler, once no member is left)
//
// The states other than Deleting are the reconciler's to set. The server
// starts and stops the members (start, stop, restart); a stopped NGroup is
// left alone until it is started.
package ngroup

import (
	"context"
	"maps"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/deployment"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

// kind is the object kind of the records.
const kind = "ngroups"

// Record is one NGroup as stored.
type Record struct {
	Subscription  string               `json:"subscription"`
	ResourceGroup string               `json:"resourceGroup"`
	Name          string               `json:"name"`
	Location      string               `json:"location"`
	Tags          map[string]string    `json:"tags,omitempty"`
	Zones         []string             `json:"zones,omitempty"`
	Spec          api.NGroupProperties `json:"spec"`
	// Revision is the profile revision members run: the one the spec
	// names, or the profile's latest when the spec was PUT.
	Revision int `json:"revision"`
	// Principal is who the NGroup acts as: its PUT's principal, whose
	// rights its members' creates and deletes need.
	Principal deployment.Principal `json:"principal"`
	// Generation counts the PUTs; ScaledFor is the generation whose count
	// the reconciler reached (without maintainDesiredCount, lost members
	// are replaced only until then).
	Generation int `json:"generation"`
	ScaledFor  int `json:"scaledFor"`
	// State is the provisioningState, Message why it is Failed.
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
	// RolloutStopped: the rolling update to Revision stopped.
	RolloutStopped bool      `json:"rolloutStopped,omitempty"`
	LastBatch      time.Time `json:"lastBatch,omitzero"`
	Stopped        bool      `json:"stopped,omitempty"`
	Deleting       bool      `json:"deleting,omitempty"`
	CreatedAt      time.Time `json:"createdAt"`
}

// ID is the NGroup's resource ID.
func (r *Record) ID() string { return api.NGroupID(r.Subscription, r.ResourceGroup, r.Name) }

// View is the NGroup as the API shows it.
func (r *Record) View() *api.NGroup {
	spec := r.Spec
	spec.ProvisioningState = r.State
	spec.ContainerGroupProfiles = append([]api.NGroupProfileStub(nil), r.Spec.ContainerGroupProfiles...)
	if len(spec.ContainerGroupProfiles) == 1 {
		rev := r.Revision
		spec.ContainerGroupProfiles[0].Revision = &rev
	}
	return &api.NGroup{ID: r.ID(), Name: r.Name, Type: api.NGroupResourceType, Location: r.Location,
		Tags: maps.Clone(r.Tags), Zones: r.Zones, Properties: spec}
}

// Desired is the count, and MemberPrefix the prefix of the members' names.
func (r *Record) Desired() int { return *r.Spec.ElasticProfile.DesiredCount }

// MemberPrefix is the prefix of the members' names (<prefix><guid>).
func (r *Record) MemberPrefix() string {
	if np := r.Spec.ElasticProfile.NamingPolicy; np != nil && np.GUIDNamingPolicy != nil {
		return np.GUIDNamingPolicy.Prefix
	}
	return ""
}

// ProfileID is the profile the members are made from.
func (r *Record) ProfileID() string { return r.Spec.ContainerGroupProfiles[0].Resource.ID }

// Store keeps the NGroups' records.
type Store struct {
	store.Records[Record]
}

// NewStore returns the records of st.
func NewStore(st store.ObjectStore) *Store {
	return &Store{store.Records[Record]{St: st, Kind: kind, NotFound: NotFound}}
}

// NotFound is the error of a missing NGroup.
func NotFound(rg, name string) error {
	return errdefs.WithCode(errdefs.ErrNotFound, "ResourceNotFound",
		"The Resource '%s/%s' under resource group '%s' was not found.", api.NGroupResourceType, name, rg)
}

// Put creates the NGroup of spec (State Creating) or updates it (a new
// generation; State Updating, and a new rolling update when the revision
// changed). It refuses a PUT of an NGroup being deleted.
func (s *Store) Put(ctx context.Context, sub, rg, name string, ng *api.NGroup, revision int, who deployment.Principal) (*Record, bool, error) {
	created := false
	r, err := s.Modify(ctx, sub, rg, name, func(r *Record) (*Record, error) {
		created = r == nil
		if created {
			r = &Record{Subscription: sub, ResourceGroup: rg, Name: name, State: api.NGroupCreating, CreatedAt: time.Now().UTC()}
		} else if r.Deleting {
			return nil, errdefs.WithCode(errdefs.ErrConflict, "NGroupBeingDeleted", "The NGroup '%s' is being deleted.", name)
		}
		if r.Revision != revision {
			r.RolloutStopped, r.Message, r.LastBatch = false, "", time.Time{}
		}
		r.Location, r.Tags, r.Zones, r.Spec, r.Revision, r.Principal = ng.Location, maps.Clone(ng.Tags), ng.Zones, ng.Properties, revision, who
		r.Spec.ProvisioningState = ""
		r.Generation++
		if !created {
			r.State = api.NGroupUpdating
		}
		return r, nil
	})
	return r, created, err
}
