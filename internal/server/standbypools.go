package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/authz"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/lifecycle"
	"github.com/skiff-sh/skiff/internal/standbypool"
	"github.com/skiff-sh/skiff/internal/store"
)

// Microsoft.StandbyPool/standbyContainerGroupPools: PUT (201 new, 200
// updated), GET, PATCH (a JSON merge patch, as a PUT), DELETE (202; the
// members go, then the pool), the lists, and runtimeViews/latest (the
// members counted by state). Package standbypool keeps the records and
// holds each pool at maxReadyCapacity members, which this file lists,
// creates and deletes for it through the server's own routes (poolMembers),
// as the pool's principal.
//
// A container group PUT that creates a group and names a pool in
// properties.standbyPoolProfile takes a ready member (takeFromPool): the
// member's record is replaced by the new group's in one transaction
// (store.HandOverContainerGroup), and the new record names the member's
// runtime group, so that its containers run on, untouched but for the
// config maps the PUT gives. The pool then refills.

const (
	poolsSuffix = "/providers/microsoft.standbypool/standbycontainergrouppools"
	poolPrefix  = rgPrefix + poolsSuffix + "/{pool}"
)

func (s *Server) registerStandbyPoolRoutes() {
	r := &s.routes
	get, patch, list, del := s.poolRoutes().handlers(s)
	r.handle("GET", subPrefix+poolsSuffix, list)
	r.handle("GET", rgPrefix+poolsSuffix, list)
	r.handle("PUT", poolPrefix, s.putStandbyPool)
	r.handle("GET", poolPrefix, get)
	r.handle("PATCH", poolPrefix, patch)
	r.handle("DELETE", poolPrefix, del)
	r.handle("GET", poolPrefix+"/runtimeviews", s.listStandbyPoolViews)
	r.handle("GET", poolPrefix+"/runtimeviews/{view}", s.getStandbyPoolView)
}

// poolRoutes are the pools' routes but PUT and the runtime views.
func (s *Server) poolRoutes() recordRoutes[standbypool.Record] {
	return recordRoutes[standbypool.Record]{param: "pool", what: "Standby pools",
		records: func() *store.Records[standbypool.Record] {
			if s.pools == nil {
				return nil
			}
			return &s.pools.Records
		},
		view:         func(r *standbypool.Record) any { return r.View() },
		id:           func(r *standbypool.Record) string { return r.ID() },
		write:        s.writeStandbyPool,
		markDeleting: func(r *standbypool.Record) { r.Deleting = true },
		kick:         func() { s.poolCtl.Kick() },
	}
}

// isStandbyPoolPattern reports whether a route is one of the pools' (their
// own api-versions; the provider's registration takes ARM's, as
// Microsoft.ContainerInstance's does).
func isStandbyPoolPattern(pattern string) bool {
	return strings.Contains(strings.ToLower(pattern), poolsSuffix)
}

func (s *Server) putStandbyPool(w http.ResponseWriter, r *http.Request, p params) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return s.writeStandbyPool(w, r, p, body)
}

// writeStandbyPool creates or updates the pool of p as body says.
func (s *Server) writeStandbyPool(w http.ResponseWriter, r *http.Request, p params, body []byte) error {
	ctx := r.Context()
	if _, err := s.poolRoutes().on(); err != nil {
		return err
	}
	rg, err := s.resourceGroup(ctx, p["sub"], p["rg"])
	if err != nil {
		return err
	}
	if err := store.CheckTakesGroups(rg); err != nil {
		return err
	}
	if err := api.ValidateStandbyPoolName(p["pool"]); err != nil {
		return err
	}
	sp, err := api.DecodeStandbyPool(body)
	if err != nil {
		return err
	}
	if sp.Location == "" {
		sp.Location = rg.Location
	}
	sp.Location = api.NormalizeLocation(sp.Location)
	ref := sp.Properties.ContainerGroupProperties.ContainerGroupProfile
	psub, prg, pname, err := profileRef(p["sub"], ref.ID, "standby pool")
	if err != nil {
		return err
	}
	prof, err := s.profileRevision(ctx, psub, prg, pname, ref.Revision)
	if err != nil {
		return err
	}
	rec, created, err := s.pools.Put(ctx, p["sub"], rg.Name, p["pool"], sp, prof.ID, prof.Properties.Revision, deployer(ctx))
	if err != nil {
		return err
	}
	s.poolCtl.Kick()
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, rec.View())
	return nil
}

// poolView is a pool's runtime view, from its members as they are now.
func (s *Server) poolView(ctx context.Context, p params) (*api.StandbyPoolRuntimeView, error) {
	rec, err := s.poolRoutes().record(ctx, s, p)
	if err != nil {
		return nil, err
	}
	ms, err := poolMembers{s}.List(ctx, rec)
	if err != nil {
		return nil, err
	}
	return standbypool.View(rec, ms), nil
}

func (s *Server) getStandbyPoolView(w http.ResponseWriter, r *http.Request, p params) error {
	if !strings.EqualFold(p["view"], "latest") {
		return errdefs.WithCode(errdefs.ErrNotFound, "ResourceNotFound",
			"The runtime view '%s' of standby pool '%s' was not found: the one view is 'latest'.", p["view"], p["pool"])
	}
	v, err := s.poolView(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) listStandbyPoolViews(w http.ResponseWriter, r *http.Request, p params) error {
	v, err := s.poolView(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.List[api.StandbyPoolRuntimeView]{Value: []api.StandbyPoolRuntimeView{*v}})
	return nil
}

// poolMembers is standbypool.Members on the server.
type poolMembers struct{ s *Server }

func (m poolMembers) set(r *standbypool.Record) memberSet {
	return memberSet{s: m.s, who: r.Principal, sub: r.Subscription, rg: r.ResourceGroup,
		tag: api.StandbyPoolTag, owner: r.Name, location: r.Location, zones: r.Spec.Zones, profileID: r.ProfileID}
}

func (m poolMembers) List(ctx context.Context, r *standbypool.Record) ([]standbypool.Member, error) {
	groups, err := m.set(r).groups(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]standbypool.Member, 0, len(groups))
	for i := range groups {
		g := &groups[i]
		out = append(out, standbypool.Member{Name: g.Resource.Name, Revision: memberRevision(g), State: poolMemberState(g), CreatedAt: g.CreatedAt})
	}
	return out, nil
}

func (m poolMembers) Create(ctx context.Context, r *standbypool.Record, name string) error {
	return m.set(r).put(ctx, name, r.Revision)
}

func (m poolMembers) Delete(ctx context.Context, r *standbypool.Record, name string) error {
	return m.set(r).delete(ctx, name)
}

// poolMemberState is what a pool member's record says of it: Running only
// when it runs the spec it was last given and every container is ready,
// so that it may be handed over.
func poolMemberState(g *store.ContainerGroup) standbypool.State {
	switch lifecycle.Provisioning(g.Resource.Properties.ProvisioningState) {
	case lifecycle.Deleting:
		return standbypool.Deleting
	case lifecycle.Failed:
		return standbypool.Unusable
	}
	obs := g.Observed
	if obs == nil || obs.Generation != g.Generation || g.Action.Seq > obs.ActionSeq {
		return standbypool.Creating
	}
	switch lifecycle.GroupState(obs.State) {
	case lifecycle.GroupRunning:
	case lifecycle.GroupFailed, lifecycle.GroupStopped, lifecycle.GroupSucceeded:
		return standbypool.Unusable
	default:
		return standbypool.Creating
	}
	ready := 0
	for _, c := range obs.Containers {
		if c.Init {
			continue
		}
		if c.View.Ready == nil || !*c.View.Ready {
			return standbypool.Creating
		}
		ready++
	}
	if ready == 0 || lifecycle.Provisioning(g.Resource.Properties.ProvisioningState) != lifecycle.Succeeded {
		return standbypool.Creating
	}
	return standbypool.Running
}

// standbyPoolFor returns the pool a container group PUT names to be
// created from, or nil: none named, or the group exists (an update takes
// nothing from a pool). A create that names no profile takes the pool's.
func (s *Server) standbyPoolFor(ctx context.Context, sub, rg string, cg *api.ContainerGroup) (*standbypool.Record, error) {
	ref := cg.Properties.StandbyPoolProfile
	if ref == nil {
		return nil, nil
	}
	psub, prg, pname, err := api.ParseStandbyPoolID(ref.ID)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(psub, sub) {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidStandbyPoolReference",
			"The standby pool '%s' is in another subscription than the container group.", ref.ID)
	}
	if _, err := s.cfg.Store.GetContainerGroup(ctx, sub, rg, cg.Name); err == nil {
		return nil, nil
	} else if !errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	ps, err := s.poolRoutes().on()
	if err != nil {
		return nil, err
	}
	id := api.StandbyPoolID(psub, prg, pname)
	if who := principalOf(ctx); !s.unrestricted(who) {
		if err := s.cfg.Authz.Authorize(ctx, who.ObjectID, authz.ActionStandbyPoolsRead, id); err != nil {
			return nil, err
		}
	}
	pool, _, err := ps.Get(ctx, psub, prg, pname)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "StandbyPoolNotFound",
			"The standby pool '%s' named by properties.standbyPoolProfile does not exist.", ref.ID)
	}
	if err != nil {
		return nil, err
	}
	ref.ID = pool.ID()
	if cg.Properties.ContainerGroupProfile == nil {
		rev := pool.Revision
		cg.Properties.ContainerGroupProfile = &api.ProfileReference{ID: pool.ProfileID, Revision: &rev}
	}
	return pool, nil
}

var errNotReady = errors.New("the standby group is not ready")

// takeFromPool hands a ready member of pool over to cg, the spec of a new
// group in rg, and returns its record: nil when the pool has none to give
// (then the group is created afresh), or an error if the reference asks
// for that (failContainerGroupCreateOnReuseFailure).
func (s *Server) takeFromPool(ctx context.Context, pool *standbypool.Record, rg *store.ResourceGroup, cg *api.ContainerGroup) (*store.ContainerGroup, error) {
	ref := cg.Properties.StandbyPoolProfile
	failed := func(why string) (*store.ContainerGroup, error) {
		s.cfg.Logger.Info("standby pool gave no group", "pool", pool.ID(), "group", cg.Name, "why", why)
		if ref.FailContainerGroupCreateOnReuseFailure {
			return nil, errdefs.WithCode(errdefs.ErrConflict, "StandbyPoolReuseFailed",
				"The container group '%s' was not created: %s, and failContainerGroupCreateOnReuseFailure is set.", cg.Name, why)
		}
		return nil, nil
	}
	if pool.Deleting {
		return failed("the standby pool '" + pool.Name + "' is being deleted")
	}
	if p := cg.Properties.ContainerGroupProfile; !strings.EqualFold(p.ID, pool.ProfileID) || p.Revision == nil || *p.Revision != pool.Revision {
		return failed("the standby pool '" + pool.Name + "' holds groups of " + (&api.ProfileReference{ID: pool.ProfileID, Revision: &pool.Revision}).String() +
			", not of " + p.String())
	}
	groups, err := poolMembers{s}.set(pool).groups(ctx)
	if err != nil {
		return nil, err
	}
	var ready []store.ContainerGroup
	for _, g := range groups {
		if poolMemberState(&g) == standbypool.Running && memberRevision(&g) == pool.Revision {
			ready = append(ready, g)
		}
	}
	slices.SortFunc(ready, func(a, b store.ContainerGroup) int { return a.CreatedAt.Compare(b.CreatedAt) })
	for _, m := range ready {
		if cg.Properties.IPAddress != nil {
			// The name is checked against every other group, this member
			// aside: its name is what the new group takes over.
			all := &storedGroups{st: s.cfg.Store, except: &m}
			if cg.Properties.IPAddress.FQDN, err = s.nameGroup(ctx, rg.Subscription, rg.Name, cg.Name, cg, all); err != nil {
				return nil, err
			}
		}
		rec, err := s.cfg.Store.HandOverContainerGroup(ctx, rg.Subscription, m.ResourceGroup, m.Resource.Name, rg.Name, cg.Name,
			func(from *store.ContainerGroup) (*store.ContainerGroup, error) {
				return handedOver(from, pool, rg, cg)
			})
		switch {
		case err == nil:
			s.poolCtl.Kick() // refill
			s.cfg.Logger.Info("container group taken from standby pool", "pool", pool.ID(), "group", cg.Name, "member", m.Resource.Name)
			return rec, nil
		case errors.Is(err, errNotReady), errdefs.Is(err, errdefs.ErrNotFound):
			continue // taken or changed meanwhile: the next
		case errdefs.Is(err, errdefs.ErrAlreadyExists):
			return nil, nil // created meanwhile: the PUT updates it
		default:
			return nil, err
		}
	}
	return failed("the standby pool '" + pool.Name + "' has no ready container group")
}

// handedOver is the record of cg, the new group, made from from, the pool
// member it takes over: its host, runtime group, address and what its
// agent observed, as a create (Pending) whose generation the agent has not
// run yet, so that the agent's next pass gives the running group the
// config maps cg asks for and reports it Running.
func handedOver(from *store.ContainerGroup, pool *standbypool.Record, rg *store.ResourceGroup, cg *api.ContainerGroup) (*store.ContainerGroup, error) {
	if !strings.EqualFold(from.Resource.Tags[api.StandbyPoolTag], pool.Name) || poolMemberState(from) != standbypool.Running || memberRevision(from) != pool.Revision {
		return nil, errNotReady
	}
	if err := lifecycle.Transition(lifecycle.Succeeded, lifecycle.None, lifecycle.Server); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	obs := *from.Observed
	obs.Generation = 0
	ts := now.Format(time.RFC3339Nano)
	events := append(slices.Clone(from.Events), api.Event{Count: 1, FirstTimestamp: ts, LastTimestamp: ts, Type: api.EventNormal,
		Name: "StandbyPoolHandOver", Message: "Taken from standby pool " + pool.Name + " (its container group " + from.Resource.Name + ")."})
	rec := &store.ContainerGroup{
		Subscription: rg.Subscription, ResourceGroup: rg.Name, RuntimeID: from.RuntimeID,
		Resource: *api.Clone(cg), CreatedAt: now, UpdatedAt: now,
		Host: from.Host, Observed: &obs, Events: events,
	}
	rec.Resource.Properties.IsCreatedFromStandbyPool = true
	rec.Resource.Properties.ProvisioningState = string(lifecycle.Pending)
	return rec, lifecycle.Transition(lifecycle.None, lifecycle.Pending, lifecycle.Server)
}
