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
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

// kind is the object kind of the records.
const kind = "ngroups"

// Principal is who an NGroup acts as: the principal of its PUT, whose
// rights its members' creates and deletes need.
type Principal struct {
	TenantID    string `json:"tenantId,omitempty"`
	ObjectID    string `json:"objectId,omitempty"`
	AppID       string `json:"appId,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	Admin       bool   `json:"admin,omitempty"`
}

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
	Revision  int       `json:"revision"`
	Principal Principal `json:"principal"`
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

// Store keeps the records of one store.
type Store struct{ st store.ObjectStore }

// NewStore returns the records of st.
func NewStore(st store.ObjectStore) *Store { return &Store{st: st} }

func key(sub, rg, name string) string {
	return strings.ToLower(sub) + "/" + strings.ToLower(rg) + "/" + strings.ToLower(name)
}

// NotFound is the error of a missing NGroup.
func NotFound(rg, name string) error {
	return errdefs.WithCode(errdefs.ErrNotFound, "ResourceNotFound",
		"The Resource '%s/%s' under resource group '%s' was not found.", api.NGroupResourceType, name, rg)
}

// Get returns an NGroup's record and its store revision.
func (s *Store) Get(ctx context.Context, sub, rg, name string) (*Record, int64, error) {
	o, err := s.st.GetObject(ctx, kind, key(sub, rg, name))
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, 0, NotFound(rg, name)
	}
	if err != nil {
		return nil, 0, err
	}
	var r Record
	if err := json.Unmarshal(o.Value, &r); err != nil {
		return nil, 0, fmt.Errorf("ngroup %s: %w", o.Key, err)
	}
	return &r, o.Revision, nil
}

// List returns the NGroups of a resource group, or of a subscription when
// rg is "", or every one when sub is "" too.
func (s *Store) List(ctx context.Context, sub, rg string) ([]Record, error) {
	prefix := ""
	if sub != "" {
		prefix = strings.ToLower(sub) + "/"
		if rg != "" {
			prefix += strings.ToLower(rg) + "/"
		}
	}
	objs, err := s.st.ListObjects(ctx, kind, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(objs))
	for _, o := range objs {
		var r Record
		if err := json.Unmarshal(o.Value, &r); err != nil {
			return nil, fmt.Errorf("ngroup %s: %w", o.Key, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Update applies f to the stored record in a compare-and-swap (retried
// when another write came first). f may refuse with an error, which is
// returned as is.
func (s *Store) Update(ctx context.Context, sub, rg, name string, f func(*Record) error) (*Record, error) {
	return s.modify(ctx, sub, rg, name, func(r *Record) (*Record, error) {
		if r == nil {
			return nil, NotFound(rg, name)
		}
		return r, f(r)
	})
}

// Put creates the NGroup of spec (State Creating) or updates it (a new
// generation; State Updating, and a new rolling update when the revision
// changed). It refuses a PUT of an NGroup being deleted.
func (s *Store) Put(ctx context.Context, sub, rg, name string, ng *api.NGroup, revision int, who Principal) (*Record, bool, error) {
	created := false
	r, err := s.modify(ctx, sub, rg, name, func(r *Record) (*Record, error) {
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

// modify is a compare-and-swap of the record of sub/rg/name: f gets the
// stored record (nil if there is none) and returns the one to store; it is
// called again when another write came first.
func (s *Store) modify(ctx context.Context, sub, rg, name string, f func(*Record) (*Record, error)) (*Record, error) {
	for attempt := 0; attempt < 10; attempt++ {
		r, rev, err := s.Get(ctx, sub, rg, name)
		if errdefs.Is(err, errdefs.ErrNotFound) {
			r, rev = nil, 0
		} else if err != nil {
			return nil, err
		}
		if r, err = f(r); err != nil {
			return nil, err
		}
		if err := s.put(ctx, r, rev); errdefs.Is(err, errdefs.ErrConflict) {
			continue
		} else if err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, errdefs.WithCode(errdefs.ErrConflict, "Conflict", "The NGroup '%s' is being changed by another request; try again.", name)
}

func (s *Store) put(ctx context.Context, r *Record, rev int64) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = s.st.PutObject(ctx, kind, key(r.Subscription, r.ResourceGroup, r.Name), b, rev)
	return err
}

// Delete removes the record.
func (s *Store) Delete(ctx context.Context, sub, rg, name string) error {
	err := s.st.DeleteObject(ctx, kind, key(sub, rg, name), store.AnyRevision)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return NotFound(rg, name)
	}
	return err
}
