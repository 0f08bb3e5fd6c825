package server

import (
	"io"
	"net/http"
	"os"
	"sort"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
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

func (s *Server) cachedImages(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.subscription(r.Context(), p["sub"]); err != nil {
		return err
	}
	imgs, err := s.cfg.Host.Images.List()
	if err != nil {
		return err
	}
	out := api.List[api.CachedImage]{Value: []api.CachedImage{}}
	for _, img := range imgs {
		out.Value = append(out.Value, api.CachedImage{OSType: "Linux", Image: img.Ref})
	}
	sort.Slice(out.Value, func(i, j int) bool { return out.Value[i].Image < out.Value[j].Image })
	writeJSON(w, http.StatusOK, out)
	return nil
}

type imageRef struct {
	Image  string `json:"image"`
	Digest string `json:"digest"`
}

func (s *Server) pullImage(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.subscription(r.Context(), p["sub"]); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var req struct {
		Image       string                        `json:"image"`
		Credentials []api.ImageRegistryCredential `json:"credentials"`
	}
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	if req.Image == "" {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidImage", "The image to pull must be given.")
	}
	img, err := s.cfg.Host.Images.Pull(r.Context(), req.Image, req.Credentials, nil)
	if err != nil {
		return errdefs.WithCode(classOf(err), "InaccessibleImage", "%v", err)
	}
	writeJSON(w, http.StatusOK, imageRef{Image: img.Ref, Digest: img.Digest})
	return nil
}

func classOf(err error) error {
	for _, c := range []error{errdefs.ErrNotFound, errdefs.ErrUnauthorized, errdefs.ErrInvalidArgument, errdefs.ErrUnavailable} {
		if errdefs.Is(err, c) {
			if c == errdefs.ErrUnauthorized {
				return errdefs.ErrInvalidArgument // the caller's credentials, not ours
			}
			return c
		}
	}
	return errdefs.ErrUnavailable
}

func (s *Server) importImage(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.subscription(r.Context(), p["sub"]); err != nil {
		return err
	}
	f, err := os.CreateTemp("", "skiff-import-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, r.Body); err != nil {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidRequestContent", "read the image archive: %v", err)
	}
	imgs, err := s.cfg.Host.Images.Import(r.Context(), f.Name())
	if err != nil {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidImageArchive", "%v", err)
	}
	out := api.List[imageRef]{Value: []imageRef{}}
	for _, img := range imgs {
		out.Value = append(out.Value, imageRef{Image: img.Ref, Digest: img.Digest})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) removeImage(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.subscription(r.Context(), p["sub"]); err != nil {
		return err
	}
	ref := r.URL.Query().Get("image")
	if ref == "" {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidImage", "The image to remove must be given (?image=).")
	}
	if err := s.cfg.Host.Images.Remove(ref); err != nil {
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return errdefs.WithCode(errdefs.ErrNotFound, "ImageNotFound", "The image '%s' is not on this host.", ref)
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
