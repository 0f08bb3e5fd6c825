package server

import (
	"context"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/scheduler"
	"github.com/skiff-sh/skiff/internal/store"
)

// The hosts of the cluster (the embedded mode has one, "local"): Skiff's
// extension at /providers/Skiff.Cluster/hosts, for the operator.

func (s *Server) listHosts(w http.ResponseWriter, r *http.Request, _ params) error {
	out, err := s.hostViews(r.Context(), "")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.List[api.Host]{Value: out})
	return nil
}

func (s *Server) getHost(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.cfg.Store.GetHost(r.Context(), p["host"]); err != nil {
		return err
	}
	out, err := s.hostViews(r.Context(), p["host"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out[0])
	return nil
}

// hostViews renders the hosts (only the named one, if name is set), with
// what the groups placed on each request.
func (s *Server) hostViews(ctx context.Context, name string) ([]api.Host, error) {
	hosts, err := s.cfg.Store.ListHosts(ctx)
	if err != nil {
		return nil, err
	}
	cgs, err := store.AllContainerGroups(ctx, s.cfg.Store)
	if err != nil {
		return nil, err
	}
	type use struct {
		cpu, mem float64
		n        int
	}
	used := map[string]*use{}
	for i := range cgs {
		h := strings.ToLower(cgs[i].Host)
		if h == "" {
			continue
		}
		u := used[h]
		if u == nil {
			u = &use{}
			used[h] = u
		}
		req := scheduler.RequestOf(&cgs[i])
		u.cpu, u.mem, u.n = u.cpu+req.CPU, u.mem+req.MemoryGB, u.n+1
	}
	out := []api.Host{}
	for _, h := range hosts {
		if name != "" && !strings.EqualFold(h.Name, name) {
			continue
		}
		state := h.State
		if !h.Alive && state != store.HostLost {
			state = api.HostNotResponding
		}
		v := api.Host{Name: h.Name, Type: api.HostType, Properties: api.HostProperties{
			State: state, Message: h.Message, PublicAddress: h.PublicAddress, OSType: h.OSType, Zone: h.Zone, Labels: h.Labels,
			Capacity: resources(h.Capacity), Allocatable: resources(h.Allocatable), SharedShares: h.SharedShares,
		}}
		if !h.JoinedAt.IsZero() {
			v.Properties.JoinedAt = h.JoinedAt.UTC().Format(time.RFC3339)
		}
		if u := used[strings.ToLower(h.Name)]; u != nil {
			v.Properties.Allocated = api.HostResources{CPU: round(u.cpu), MemoryInGB: round(u.mem)}
			v.Properties.ContainerGroupCount = u.n
		}
		out = append(out, v)
	}
	return out, nil
}

func resources(r store.Resources) api.HostResources {
	return api.HostResources{CPU: round(r.CPU), MemoryInGB: round(r.MemoryGB)}
}

// round keeps three decimals, so sums of requests read as written.
func round(x float64) float64 { return math.Round(x*1000) / 1000 }
