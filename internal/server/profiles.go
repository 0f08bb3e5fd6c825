package server

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/profile"
	"github.com/skiff-sh/skiff/internal/store"
)

// Microsoft.ContainerInstance/containerGroupProfiles: PUT (201 new, 200
// updated; a changed spec is a new revision), GET, PATCH (tags), DELETE
// (200, 204 when absent), the lists by subscription and resource group,
// and the revisions. Records are package profile's; reads never show a
// secret. A container group created with properties.containerGroupProfile
// takes its spec from a revision (fromProfile).

const (
	profilesSuffix = "/providers/microsoft.containerinstance/containergroupprofiles"
	profilePrefix  = rgPrefix + profilesSuffix + "/{profile}"
)

func (s *Server) registerProfileRoutes() {
	r := &s.routes
	r.handle("GET", subPrefix+profilesSuffix, s.listProfiles)
	r.handle("GET", rgPrefix+profilesSuffix, s.listProfiles)
	r.handle("PUT", profilePrefix, s.putProfile)
	r.handle("GET", profilePrefix, s.getProfile)
	r.handle("PATCH", profilePrefix, s.patchProfile)
	r.handle("DELETE", profilePrefix, s.deleteProfile)
	r.handle("GET", profilePrefix+"/revisions", s.listProfileRevisions)
	r.handle("GET", profilePrefix+"/revisions/{revision}", s.getProfileRevision)
}

// profilesOn returns the profile service, or an error on a server without
// a store.
func (s *Server) profilesOn() (*profile.Service, error) {
	if s.profiles == nil {
		return nil, errdefs.WithCode(errdefs.ErrNotImplemented, "FeatureNotSupported", "Container group profiles are not available on this server.")
	}
	return s.profiles, nil
}

func (s *Server) putProfile(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	ps, err := s.profilesOn()
	if err != nil {
		return err
	}
	rg, err := s.resourceGroup(ctx, p["sub"], p["rg"])
	if err != nil {
		return err
	}
	if err := store.CheckTakesGroups(rg); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	in, err := api.DecodeContainerGroupProfile(body)
	if err != nil {
		return err
	}
	if in.Location == "" {
		in.Location = rg.Location
	}
	in.Location = api.NormalizeLocation(in.Location)
	if err := api.ValidateProfile(p["profile"], r.URL.Query().Get("api-version"), in); err != nil {
		return err
	}
	if err := api.CheckSecurityPolicy(p["profile"], &in.Properties.ContainerGroupProperties, s.cfg.Security); err != nil {
		return err
	}
	out, created, err := ps.Put(ctx, p["sub"], rg.Name, p["profile"], in)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, api.RedactProfile(out))
	return nil
}

func (s *Server) getProfile(w http.ResponseWriter, r *http.Request, p params) error {
	out, err := s.profileAt(r.Context(), p, 0)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.RedactProfile(out))
	return nil
}

func (s *Server) getProfileRevision(w http.ResponseWriter, r *http.Request, p params) error {
	n, err := strconv.Atoi(p["revision"])
	if err != nil || n < 1 {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidRevision",
			"The revision '%s' is not a revision number (1, 2, ...).", p["revision"])
	}
	out, err := s.profileAt(r.Context(), p, n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.RedactProfile(out))
	return nil
}

// profileAt reads profile p["profile"] at revision n (0: the latest).
func (s *Server) profileAt(ctx context.Context, p params, n int) (*api.ContainerGroupProfile, error) {
	ps, err := s.profilesOn()
	if err != nil {
		return nil, err
	}
	if _, err := s.resourceGroup(ctx, p["sub"], p["rg"]); err != nil {
		return nil, err
	}
	return ps.Get(ctx, p["sub"], p["rg"], p["profile"], n)
}

func (s *Server) listProfileRevisions(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	ps, err := s.profilesOn()
	if err != nil {
		return err
	}
	if _, err := s.resourceGroup(ctx, p["sub"], p["rg"]); err != nil {
		return err
	}
	revs, err := ps.Revisions(ctx, p["sub"], p["rg"], p["profile"])
	if err != nil {
		return err
	}
	out := api.List[api.ContainerGroupProfile]{Value: []api.ContainerGroupProfile{}}
	for i := range revs {
		out.Value = append(out.Value, *api.RedactProfile(&revs[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) listProfiles(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	ps, err := s.profilesOn()
	if err != nil {
		return err
	}
	if err := s.listScopeExists(ctx, p); err != nil {
		return err
	}
	all, err := ps.List(ctx, p["sub"], p["rg"])
	if err != nil {
		return err
	}
	out := api.List[api.ContainerGroupProfile]{Value: []api.ContainerGroupProfile{}}
	for i := range all {
		if listable(ctx, all[i].ID) {
			out.Value = append(out.Value, *api.RedactProfile(&all[i]))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) patchProfile(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	if _, err := s.profileAt(ctx, p, 0); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var patch struct {
		Tags map[string]string `json:"tags"`
	}
	if err := json.Unmarshal(body, &patch); err != nil {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidRequestContent",
			"The request content was invalid and could not be deserialized: %v", err)
	}
	if err := api.ValidateTags(patch.Tags); err != nil {
		return err
	}
	out, err := s.profiles.SetTags(ctx, p["sub"], p["rg"], p["profile"], patch.Tags)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.RedactProfile(out))
	return nil
}

func (s *Server) deleteProfile(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	ps, err := s.profilesOn()
	if err != nil {
		return err
	}
	if _, err := s.resourceGroup(ctx, p["sub"], p["rg"]); err != nil {
		return err
	}
	if err := ps.Delete(ctx, p["sub"], p["rg"], p["profile"]); errdefs.Is(err, errdefs.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	} else if err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// listScopeExists checks the scope of a list route: its resource group, or
// its subscription when the route has none.
func (s *Server) listScopeExists(ctx context.Context, p params) error {
	if p["rg"] != "" {
		_, err := s.resourceGroup(ctx, p["sub"], p["rg"])
		return err
	}
	_, err := s.subscription(ctx, p["sub"])
	return err
}

// profileRef parses the id of the profile a resource of subscription sub
// (a what) refers to: it must be in the same subscription.
func profileRef(sub, id, what string) (psub, prg, pname string, err error) {
	if psub, prg, pname, err = api.ParseProfileID(id); err != nil {
		return "", "", "", err
	}
	if !strings.EqualFold(psub, sub) {
		return "", "", "", errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidContainerGroupProfileReference",
			"The container group profile '%s' is in another subscription than the %s.", id, what)
	}
	return psub, prg, pname, nil
}

// profileRevision reads a revision (the latest when nil) of a profile a
// resource refers to: one that is not there is a 400.
func (s *Server) profileRevision(ctx context.Context, psub, prg, pname string, revision *int) (*api.ContainerGroupProfile, error) {
	ps, err := s.profilesOn()
	if err != nil {
		return nil, err
	}
	n := 0
	if revision != nil {
		if n = *revision; n < 1 {
			return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidRevision",
				"The revision '%d' of container group profile '%s' is not a revision number (1, 2, ...).", n, api.ProfileID(psub, prg, pname))
		}
	}
	prof, err := ps.Get(ctx, psub, prg, pname, n)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "ContainerGroupProfileNotFound", "%s", err.Error())
	}
	return prof, err
}

// fromProfile gives cg, a group PUT naming properties.containerGroupProfile,
// the spec of that profile's revision (the latest when none is named):
// every property but the references (to the profile, kept with its
// revision, and to a standby pool). The profile must be in the group's
// subscription. The body's containers may give only a config map each (a
// container of the profile by name, and its configMap), as ACI takes them.
func (s *Server) fromProfile(ctx context.Context, sub string, cg *api.ContainerGroup) error {
	ref := cg.Properties.ContainerGroupProfile
	if ref == nil {
		return nil
	}
	psub, prg, pname, err := profileRef(sub, ref.ID, "container group")
	if err != nil {
		return err
	}
	overlays := cg.Properties.Containers
	for _, c := range overlays {
		only := c.Properties
		only.ConfigMap = nil
		if !reflect.DeepEqual(only, api.ContainerProperties{}) {
			return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidContainerGroupProfileReference",
				"The container group '%s' names the profile '%s' and gives container '%s' properties other than a configMap: a group created from a profile takes its containers from it.", cg.Name, ref.ID, c.Name)
		}
	}
	if len(cg.Properties.InitContainers) > 0 {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidContainerGroupProfileReference",
			"The container group '%s' names the profile '%s' and gives init containers too: a group created from a profile takes its containers from it.", cg.Name, ref.ID)
	}
	prof, err := s.profileRevision(ctx, psub, prg, pname, ref.Revision)
	if err != nil {
		return err
	}
	rev := prof.Properties.Revision
	pool := cg.Properties.StandbyPoolProfile
	cg.Properties = prof.Group(cg.Name).Properties
	cg.Properties.ContainerGroupProfile = &api.ProfileReference{ID: prof.ID, Revision: &rev}
	cg.Properties.StandbyPoolProfile = pool
	for _, o := range overlays {
		i := slices.IndexFunc(cg.Properties.Containers, func(c api.Container) bool { return strings.EqualFold(c.Name, o.Name) })
		if i < 0 {
			return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidContainerGroupProfileReference",
				"The container group '%s' gives a config map to container '%s', which the profile '%s' does not have.", cg.Name, o.Name, prof.ID)
		}
		cg.Properties.Containers[i].Properties.ConfigMap = o.Properties.ConfigMap
	}
	if cg.Location == "" {
		cg.Location = prof.Location
	}
	if len(cg.Zones) == 0 {
		cg.Zones = prof.Zones
	}
	return nil
}
