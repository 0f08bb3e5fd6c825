package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
	"github.com/skiff-sh/skiff/internal/store"
)

// cachedImage is an entry of cachedImages: ARM's CachedImage plus the
// manifest digest and the normalised reference (Skiff extensions).
type cachedImage struct {
	api.CachedImage
	Digest    string `json:"digest,omitempty"`
	Reference string `json:"reference,omitempty"`
	Size      int64  `json:"size,omitempty"`
}

func (s *Server) cachedImages(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.subscription(r.Context(), p["sub"]); err != nil {
		return err
	}
	cache, err := s.images(r)
	if err != nil {
		return err
	}
	imgs, err := cache.List()
	if err != nil {
		return err
	}
	out := api.List[cachedImage]{Value: []cachedImage{}}
	for _, img := range imgs {
		if img.Private {
			continue // pulled with a group's own credentials: not everyone's to see
		}
		out.Value = append(out.Value, cachedImage{
			CachedImage: api.CachedImage{OSType: "Linux", Image: img.Name},
			Digest:      img.Digest, Reference: img.Ref, Size: img.Size,
		})
	}
	sort.Slice(out.Value, func(i, j int) bool { return out.Value[i].Image < out.Value[j].Image })
	writeJSON(w, http.StatusOK, out)
	return nil
}

type imageRef struct {
	Image  string `json:"image"`
	Digest string `json:"digest"`
}

// ndjsonType is the media type of the streamed pull progress.
const ndjsonType = "application/x-ndjson"

type pullEvent = api.PullEvent

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
	cache, err := s.images(r)
	if err != nil {
		return err
	}
	if !strings.Contains(r.Header.Get("Accept"), ndjsonType) && r.URL.Query().Get("progress") != "true" {
		img, err := cache.Pull(r.Context(), req.Image, req.Credentials, nil)
		if err != nil {
			return errdefs.WithCode(classOf(err), "InaccessibleImage", "%v", err)
		}
		writeJSON(w, http.StatusOK, imageRef{Image: img.Name, Digest: img.Digest})
		return nil
	}
	// Streamed: 200 at once, then one JSON object per line.
	w.Header().Set("Content-Type", ndjsonType)
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	send := func(e pullEvent) {
		_ = enc.Encode(e)
		if flusher != nil {
			flusher.Flush()
		}
	}
	img, err := cache.Pull(r.Context(), req.Image, req.Credentials, func(p hostapi.ImageProgress) {
		e := pullEvent{Layer: p.Layer, Status: p.Status, Complete: p.Complete, Total: p.Total, Attempt: p.Attempt, Message: p.Message}
		if p.Delay > 0 {
			e.Delay = p.Delay.String()
		}
		send(e)
	})
	if err != nil {
		send(pullEvent{Status: "error", Error: &api.ErrorBody{Code: "InaccessibleImage", Message: err.Error()}})
		return nil
	}
	send(pullEvent{Status: "pulled", Image: img.Name, Digest: img.Digest})
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
	cache, err := s.images(r)
	if err != nil {
		return err
	}
	limit := s.cfg.MaxImageImportSize
	tooLarge := errdefs.WithCode(errdefs.ErrTooLarge, "RequestContentTooLarge",
		"The image archive exceeds the maximum import size of %d bytes (skiff server --max-image-import-size).", limit)
	if r.ContentLength > limit {
		return tooLarge
	}
	f, err := os.CreateTemp("", "skiff-import-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	body := http.MaxBytesReader(w, r.Body, limit)
	if _, err := io.Copy(f, newIdleReader(w, body)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge
		}
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidRequestContent", "read the image archive: %v", err)
	}
	imgs, err := cache.Import(r.Context(), f.Name())
	if err != nil {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidImageArchive", "%v", err)
	}
	out := api.List[imageRef]{Value: []imageRef{}}
	for _, img := range imgs {
		out.Value = append(out.Value, imageRef{Image: img.Name, Digest: img.Digest})
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
	cache, err := s.images(r)
	if err != nil {
		return err
	}
	target, err := cache.Get(ref)
	if err != nil {
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return errdefs.WithCode(errdefs.ErrNotFound, "ImageNotFound", "The image '%s' is not on this host.", ref)
		}
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidImage", "%v", err)
	}
	users, err := s.imageUsers(r.Context())
	if err != nil {
		return err
	}
	// Only the caller's own groups are named: another subscription's
	// groups are no business of the caller's.
	var own []string
	others := false
	for img, groups := range users {
		if u, err := cache.Get(img); err == nil && (u.Ref == target.Ref || u.Digest == target.Digest) {
			for _, g := range groups {
				if g.sub == p["sub"] {
					own = append(own, g.group)
				} else {
					others = true
				}
			}
		}
	}
	switch {
	case len(own) > 0 && others:
		return errdefs.WithCode(errdefs.ErrConflict, "ImageInUse", "The image '%s' is in use by container group(s) %s and by other container groups on this host.", ref, strings.Join(own, ", "))
	case len(own) > 0:
		return errdefs.WithCode(errdefs.ErrConflict, "ImageInUse", "The image '%s' is in use by container group(s) %s.", ref, strings.Join(own, ", "))
	case others:
		return errdefs.WithCode(errdefs.ErrConflict, "ImageInUse", "The image '%s' is in use by container groups on this host.", ref)
	}
	if err := cache.Remove(ref); err != nil {
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return errdefs.WithCode(errdefs.ErrNotFound, "ImageNotFound", "The image '%s' is not on this host.", ref)
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// imageUser is a container group using an image: its subscription and
// "rg/name".
type imageUser struct{ sub, group string }

// imageUsers maps each image a container group names (as written) to the
// groups using it, across all subscriptions.
func (s *Server) imageUsers(ctx context.Context) (map[string][]imageUser, error) {
	cgs, err := store.AllContainerGroups(ctx, s.cfg.Store)
	if err != nil {
		return nil, err
	}
	out := map[string][]imageUser{}
	for _, cg := range cgs {
		id := imageUser{sub: cg.Subscription, group: cg.ResourceGroup + "/" + cg.Resource.Name}
		for _, img := range cg.Resource.Properties.Images() {
			out[img] = append(out[img], id)
		}
	}
	return out, nil
}
