package server

import (
	"net/http"

	"github.com/skiff-sh/skiff/api"
)

func (s *Server) usages(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.subscription(r.Context(), p["sub"]); err != nil {
		return err
	}
	cgs, err := s.cfg.Store.ListContainerGroups(r.Context(), p["sub"], "")
	if err != nil {
		return err
	}
	var cores float64
	for _, cg := range cgs {
		for _, c := range cg.Resource.Properties.Containers {
			cores += c.Properties.Resources.Requests.CPU
		}
	}
	u := func(name, local string, cur, limit int32) api.Usage {
		return api.Usage{Unit: "Count", CurrentValue: cur, Limit: limit, Name: api.UsageName{Value: name, LocalizedValue: local}}
	}
	writeJSON(w, http.StatusOK, api.List[api.Usage]{Value: []api.Usage{
		u("ContainerGroups", "Container Groups", int32(len(cgs)), 2000),
		u("StandardCores", "Standard Cores", int32(cores+0.999), 1000),
	}})
	return nil
}

func (s *Server) capabilities(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.subscription(r.Context(), p["sub"]); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.List[api.Capability]{Value: []api.Capability{{
		ResourceType: "containerGroups", OSType: "Linux", Location: s.cfg.Location, IPAddressType: "Public", GPU: "None",
		Capabilities: api.CapabilityLimits{MaxMemoryInGB: 16, MaxCPU: 4, MaxGPUCount: 0},
	}}})
	return nil
}
