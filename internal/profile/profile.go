// Package profile keeps container group profiles: named container group
// specs with immutable, numbered revisions, in the store's objects, their
// secrets sealed at rest. A PUT whose spec differs from the latest
// revision's adds a revision; one that changes only tags, location or
// zones, or nothing, adds none. Groups created from a profile copy one
// revision's spec (internal/server), so deleting a profile leaves them be.
package profile

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
)

// kind is the object kind of the records.
const kind = "containergroupprofiles"

// Service is the profiles of one store. It is safe for concurrent use, and
// several Services on one store (a cluster's servers) agree: every write is
// a compare-and-swap of the record.
type Service struct {
	st     store.ObjectStore
	sealer *seal.Sealer
}

// New returns the Service of st; sealer seals the profiles' secrets.
func New(st store.ObjectStore, sealer *seal.Sealer) (*Service, error) {
	if st == nil || sealer == nil {
		return nil, fmt.Errorf("profile: a store and a sealer are required: %w", errdefs.ErrInvalidArgument)
	}
	return &Service{st: st, sealer: sealer}, nil
}

// record is one profile as stored: its revisions oldest first, each with
// its secrets sealed.
type record struct {
	Subscription  string            `json:"subscription"`
	ResourceGroup string            `json:"resourceGroup"`
	Name          string            `json:"name"`
	Location      string            `json:"location"`
	Tags          map[string]string `json:"tags,omitempty"`
	Zones         []string          `json:"zones,omitempty"`
	CreatedAt     time.Time         `json:"createdAt"`
	Revisions     []revision        `json:"revisions"`
}

type revision struct {
	Number     int                          `json:"number"`
	CreatedAt  time.Time                    `json:"createdAt"`
	Properties api.ContainerGroupProperties `json:"properties"`
}

func key(sub, rg, name string) string {
	return strings.ToLower(sub) + "/" + strings.ToLower(rg) + "/" + strings.ToLower(name)
}

// Put creates the profile sub/rg/name or updates it: a spec unlike the
// latest revision's becomes the next revision. It returns the profile at
// its latest revision, secrets included, and whether it was created.
func (s *Service) Put(ctx context.Context, sub, rg, name string, p *api.ContainerGroupProfile) (*api.ContainerGroupProfile, bool, error) {
	created := false
	rec, err := s.modify(ctx, sub, rg, name, func(rec *record) (*record, error) {
		now := time.Now().UTC()
		created = rec == nil
		if created {
			rec = &record{Subscription: sub, ResourceGroup: rg, Name: name, CreatedAt: now}
		}
		rec.Location, rec.Tags, rec.Zones = p.Location, maps.Clone(p.Tags), p.Zones
		spec := p.Properties.ContainerGroupProperties
		spec.ProvisioningState, spec.InstanceView = "", nil
		if n := len(rec.Revisions); n > 0 {
			last, err := s.open(rec.Revisions[n-1].Properties)
			if err != nil || equal(last, spec) {
				return rec, err
			}
		}
		sealed, err := s.seal(spec)
		if err != nil {
			return nil, err
		}
		rec.Revisions = append(rec.Revisions, revision{Number: len(rec.Revisions) + 1, CreatedAt: now, Properties: sealed})
		return rec, nil
	})
	if err != nil {
		return nil, false, err
	}
	out, err := s.view(rec, len(rec.Revisions))
	return out, created, err
}

// modify is a compare-and-swap of the record of sub/rg/name: f gets the
// stored record (nil if there is none) and returns the one to store; it is
// called again when another write came first.
func (s *Service) modify(ctx context.Context, sub, rg, name string, f func(*record) (*record, error)) (*record, error) {
	k := key(sub, rg, name)
	for attempt := 0; attempt < 10; attempt++ {
		rec, rev, err := s.get(ctx, k)
		if errdefs.Is(err, errdefs.ErrNotFound) {
			rec, rev = nil, 0
		} else if err != nil {
			return nil, err
		}
		if rec, err = f(rec); err != nil {
			return nil, err
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		if _, err := s.st.PutObject(ctx, kind, k, b, rev); errdefs.Is(err, errdefs.ErrConflict) {
			continue // another write came first: apply this one to it
		} else if err != nil {
			return nil, err
		}
		return rec, nil
	}
	return nil, errdefs.WithCode(errdefs.ErrConflict, "Conflict", "The container group profile '%s' is being changed by another request; try again.", name)
}

// Get returns the profile at revision n (0: the latest), secrets included.
func (s *Service) Get(ctx context.Context, sub, rg, name string, n int) (*api.ContainerGroupProfile, error) {
	rec, _, err := s.get(ctx, key(sub, rg, name))
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, api.ProfileNotFound(rg, name, 0)
	}
	if err != nil {
		return nil, err
	}
	if n == 0 {
		n = len(rec.Revisions)
	}
	if n < 1 || n > len(rec.Revisions) {
		return nil, api.ProfileNotFound(rg, name, n)
	}
	return s.view(rec, n)
}

// Revisions returns every revision of the profile, newest first.
func (s *Service) Revisions(ctx context.Context, sub, rg, name string) ([]api.ContainerGroupProfile, error) {
	rec, _, err := s.get(ctx, key(sub, rg, name))
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, api.ProfileNotFound(rg, name, 0)
	}
	if err != nil {
		return nil, err
	}
	out := make([]api.ContainerGroupProfile, 0, len(rec.Revisions))
	for n := len(rec.Revisions); n >= 1; n-- {
		p, err := s.view(rec, n)
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	return out, nil
}

// List returns the profiles of a resource group, or of the subscription
// when rg is "", at their latest revisions, sorted by resource group and
// name.
func (s *Service) List(ctx context.Context, sub, rg string) ([]api.ContainerGroupProfile, error) {
	prefix := strings.ToLower(sub) + "/"
	if rg != "" {
		prefix += strings.ToLower(rg) + "/"
	}
	objs, err := s.st.ListObjects(ctx, kind, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]api.ContainerGroupProfile, 0, len(objs))
	for _, o := range objs {
		var rec record
		if err := json.Unmarshal(o.Value, &rec); err != nil {
			return nil, fmt.Errorf("profile %s: %w", o.Key, err)
		}
		p, err := s.view(&rec, len(rec.Revisions))
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	return out, nil
}

// SetTags replaces the profile's tags (a PATCH); no revision is added.
func (s *Service) SetTags(ctx context.Context, sub, rg, name string, tags map[string]string) (*api.ContainerGroupProfile, error) {
	rec, err := s.modify(ctx, sub, rg, name, func(rec *record) (*record, error) {
		if rec == nil {
			return nil, api.ProfileNotFound(rg, name, 0)
		}
		rec.Tags = maps.Clone(tags)
		return rec, nil
	})
	if err != nil {
		return nil, err
	}
	return s.view(rec, len(rec.Revisions))
}

// Delete removes the profile and its revisions; ErrNotFound if there is
// none.
func (s *Service) Delete(ctx context.Context, sub, rg, name string) error {
	err := s.st.DeleteObject(ctx, kind, key(sub, rg, name), store.AnyRevision)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return api.ProfileNotFound(rg, name, 0)
	}
	return err
}

// DeleteIn removes every profile of a resource group (its delete).
func (s *Service) DeleteIn(ctx context.Context, sub, rg string) error {
	objs, err := s.st.ListObjects(ctx, kind, strings.ToLower(sub)+"/"+strings.ToLower(rg)+"/")
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := s.st.DeleteObject(ctx, kind, o.Key, store.AnyRevision); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (s *Service) get(ctx context.Context, k string) (*record, int64, error) {
	o, err := s.st.GetObject(ctx, kind, k)
	if err != nil {
		return nil, 0, err
	}
	var rec record
	if err := json.Unmarshal(o.Value, &rec); err != nil {
		return nil, 0, fmt.Errorf("profile %s: %w", k, err)
	}
	return &rec, o.Revision, nil
}

// view is the profile of rec at revision n (1-based), secrets opened.
func (s *Service) view(rec *record, n int) (*api.ContainerGroupProfile, error) {
	props, err := s.open(rec.Revisions[n-1].Properties)
	if err != nil {
		return nil, err
	}
	return &api.ContainerGroupProfile{
		ID: api.ProfileID(rec.Subscription, rec.ResourceGroup, rec.Name), Name: rec.Name, Type: api.ProfileResourceType,
		Location: rec.Location, Tags: maps.Clone(rec.Tags), Zones: rec.Zones,
		Properties: api.ProfileProperties{ContainerGroupProperties: props, Revision: n},
	}, nil
}

func (s *Service) seal(p api.ContainerGroupProperties) (api.ContainerGroupProperties, error) {
	g, err := store.SealGroup(store.ContainerGroup{Resource: api.ContainerGroup{Name: "profile", Properties: p}}, s.sealer)
	return g.Resource.Properties, err
}

func (s *Service) open(p api.ContainerGroupProperties) (api.ContainerGroupProperties, error) {
	g := store.ContainerGroup{Resource: *api.Clone(&api.ContainerGroup{Name: "profile", Properties: p})}
	err := store.OpenGroup(&g, s.sealer)
	return g.Resource.Properties, err
}

// equal compares two specs as their JSON.
func equal(a, b api.ContainerGroupProperties) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
