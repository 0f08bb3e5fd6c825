package server

import (
	"context"
	"net/http"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/ngroup"
	"github.com/skiff-sh/skiff/internal/store"
)

// Microsoft.ContainerInstance/ngroups: PUT (201 new, 200 updated, both
// with the NGroup in provisioningState Creating or Updating until its
// members run), GET, PATCH (a JSON merge patch of the NGroup, as a PUT),
// DELETE (202; the members go, then the NGroup), the lists, and POST
// start (202), stop (204) and restart (202) of every member. Package
// ngroup keeps the records and reconciles the members, which this file
// lists, creates, updates and deletes for it through the server's own
// routes (ngroupMembers), as the NGroup's principal.

const (
	ngroupsSuffix = "/providers/microsoft.containerinstance/ngroups"
	ngroupPrefix  = rgPrefix + ngroupsSuffix + "/{ngroup}"
)

func (s *Server) registerNGroupRoutes() {
	r := &s.routes
	get, patch, list, del := s.ngroupRoutes().handlers(s)
	r.handle("GET", subPrefix+ngroupsSuffix, list)
	r.handle("GET", rgPrefix+ngroupsSuffix, list)
	r.handle("PUT", ngroupPrefix, s.putNGroup)
	r.handle("GET", ngroupPrefix, get)
	r.handle("PATCH", ngroupPrefix, patch)
	r.handle("DELETE", ngroupPrefix, del)
	r.handle("POST", ngroupPrefix+"/start", s.ngroupAction("start"))
	r.handle("POST", ngroupPrefix+"/stop", s.ngroupAction("stop"))
	r.handle("POST", ngroupPrefix+"/restart", s.ngroupAction("restart"))
}

// ngroupRoutes are the NGroups' routes but PUT and the actions.
func (s *Server) ngroupRoutes() recordRoutes[ngroup.Record] {
	return recordRoutes[ngroup.Record]{param: "ngroup", what: "NGroups",
		records: func() *store.Records[ngroup.Record] {
			if s.ngroups == nil {
				return nil
			}
			return &s.ngroups.Records
		},
		view:  func(r *ngroup.Record) any { return r.View() },
		id:    func(r *ngroup.Record) string { return r.ID() },
		write: s.writeNGroup,
		markDeleting: func(r *ngroup.Record) {
			r.Deleting, r.State = true, api.NGroupDeleting
		},
		kick: func() { s.ngroupCtl.Kick() },
	}
}

// RunReconcilers runs the reconcilers of the NGroups and the standby
// pools until ctx ends: the process that runs the controller runs them.
func (s *Server) RunReconcilers(ctx context.Context) {
	if s.ngroupCtl == nil {
		return
	}
	go s.poolCtl.Run(ctx)
	s.ngroupCtl.Run(ctx)
}

func (s *Server) putNGroup(w http.ResponseWriter, r *http.Request, p params) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return s.writeNGroup(w, r, p, body)
}

// writeNGroup creates or updates the NGroup of p as body says.
func (s *Server) writeNGroup(w http.ResponseWriter, r *http.Request, p params, body []byte) error {
	ctx := r.Context()
	if _, err := s.ngroupRoutes().on(); err != nil {
		return err
	}
	rg, err := s.resourceGroup(ctx, p["sub"], p["rg"])
	if err != nil {
		return err
	}
	if err := store.CheckTakesGroups(rg); err != nil {
		return err
	}
	if err := api.ValidateName(api.KindContainerGroup, p["ngroup"]); err != nil {
		return err
	}
	ng, err := api.DecodeNGroup(body)
	if err != nil {
		return err
	}
	if ng.Location == "" {
		ng.Location = rg.Location
	}
	ng.Location = api.NormalizeLocation(ng.Location)
	ref := ng.Properties.ContainerGroupProfiles[0]
	psub, prg, pname, err := profileRef(p["sub"], ref.Resource.ID, "NGroup")
	if err != nil {
		return err
	}
	prof, err := s.profileRevision(ctx, psub, prg, pname, ref.Revision)
	if err != nil {
		return err
	}
	ng.Properties.ContainerGroupProfiles[0].Resource.ID = prof.ID
	d := deployer(ctx)
	rec, created, err := s.ngroups.Put(ctx, p["sub"], rg.Name, p["ngroup"], ng, prof.Properties.Revision, d)
	if err != nil {
		return err
	}
	s.ngroupCtl.Kick()
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, rec.View())
	return nil
}

// ngroupAction starts, stops or restarts every member; a stopped NGroup
// is not reconciled (its members are meant to be stopped) until started.
func (s *Server) ngroupAction(action string) func(http.ResponseWriter, *http.Request, params) error {
	return func(w http.ResponseWriter, r *http.Request, p params) error {
		ctx := r.Context()
		rec, err := s.ngroupRoutes().record(ctx, s, p)
		if err != nil {
			return err
		}
		if rec.Deleting {
			return errdefs.WithCode(errdefs.ErrConflict, "NGroupBeingDeleted", "The NGroup '%s' is being deleted.", rec.Name)
		}
		rec, err = s.ngroups.Update(ctx, rec.Subscription, rec.ResourceGroup, rec.Name, func(cur *ngroup.Record) error {
			cur.Stopped = action == "stop"
			return nil
		})
		if err != nil {
			return err
		}
		ms, err := ngroupMembers{s}.List(ctx, rec)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Deleting {
				continue
			}
			set := ngroupMembers{s}.set(rec)
			code, _, body, err := set.do(ctx, http.MethodPost, set.path(m.Name)+"/"+action, nil)
			if err != nil {
				return err
			}
			if code >= 300 {
				return memberError(m.Name, code, body)
			}
		}
		s.ngroupCtl.Kick()
		if action == "stop" {
			w.WriteHeader(http.StatusNoContent)
		} else {
			w.WriteHeader(http.StatusAccepted)
		}
		return nil
	}
}

// ngroupMembers is ngroup.Members on the server.
type ngroupMembers struct{ s *Server }

// set is the NGroup's members as a memberSet.
func (m ngroupMembers) set(r *ngroup.Record) memberSet {
	return memberSet{s: m.s, who: r.Principal, sub: r.Subscription, rg: r.ResourceGroup,
		tag: api.NGroupTag, owner: r.Name, location: r.Location, zones: r.Zones, profileID: r.ProfileID()}
}

func (m ngroupMembers) List(ctx context.Context, r *ngroup.Record) ([]ngroup.Member, error) {
	groups, err := m.set(r).groups(ctx)
	if err != nil {
		return nil, err
	}
	var out []ngroup.Member
	for i := range groups {
		g := &groups[i]
		v := m.s.view(g, true)
		mem := ngroup.Member{Name: g.Resource.Name, CreatedAt: g.CreatedAt, Health: ngroup.Pending, Revision: memberRevision(g)}
		state := ""
		if iv := v.Properties.InstanceView; iv != nil {
			state = iv.State
		}
		for _, c := range v.Properties.Containers {
			if iv := c.Properties.InstanceView; iv != nil && stalled(iv) {
				mem.Stalled = true
			}
		}
		switch {
		case v.Properties.ProvisioningState == "Deleting":
			mem.Deleting = true
		case v.Properties.ProvisioningState == "Failed":
			mem.Health = ngroup.Unhealthy
		case state == api.GroupRunning:
			mem.Health = ngroup.Running
		case state == api.GroupFailed || state == api.GroupStopped || state == api.GroupSucceeded:
			mem.Health = ngroup.Unhealthy
		}
		out = append(out, mem)
	}
	return out, nil
}

// stalled reports whether a container is backing off: its image does not
// pull, or it crashes as it starts.
func stalled(iv *api.ContainerInstanceView) bool {
	if cs := iv.CurrentState; cs != nil && (cs.DetailStatus == "ErrImagePull" || cs.DetailStatus == "CrashLoopBackOff") {
		return true
	}
	for _, ev := range iv.Events {
		if ev.Name == "BackOff" {
			return true
		}
	}
	return false
}

func (m ngroupMembers) Create(ctx context.Context, r *ngroup.Record, name string, revision int) error {
	return m.set(r).put(ctx, name, revision)
}

func (m ngroupMembers) Update(ctx context.Context, r *ngroup.Record, name string, revision int) error {
	return m.set(r).put(ctx, name, revision)
}

func (m ngroupMembers) Delete(ctx context.Context, r *ngroup.Record, name string) error {
	return m.set(r).delete(ctx, name)
}
