package server

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
	"github.com/skiff-sh/skiff/internal/store"
)

// HostDirectory finds the host agents of a cluster: the server reaches a
// group's agent for its streams (logs, exec, attach, metrics) and the
// hosts' image caches through it.
type HostDirectory interface {
	// Agent returns the agent of the named host (ErrNotFound if no such
	// host joined).
	Agent(ctx context.Context, name string) (hostapi.Host, error)
	// Ready lists the names of the hosts that take work now.
	Ready(ctx context.Context) ([]string, error)
}

// hostOf returns the agent of the host that runs cg.
func (s *Server) hostOf(ctx context.Context, cg *store.ContainerGroup) (hostapi.Host, error) {
	if s.cfg.Hosts == nil {
		return s.cfg.Host, nil
	}
	if cg.Host == "" {
		return nil, errdefs.WithCode(errdefs.ErrConflict, "ContainerGroupNotPlaced",
			"The container group '%s' is not placed on a host yet.", cg.Resource.Name)
	}
	return s.cfg.Hosts.Agent(ctx, cg.Host)
}

// images returns the image cache a request addresses: the embedded mode's
// one host; in a cluster the host its ?host= names, or every Ready host at
// once.
func (s *Server) images(r *http.Request) (hostapi.Images, error) {
	if s.cfg.Hosts == nil {
		return s.cfg.Host.Images(), nil
	}
	ctx := r.Context()
	if name := r.URL.Query().Get("host"); name != "" {
		h, err := s.cfg.Hosts.Agent(ctx, name)
		if err != nil {
			return nil, err
		}
		return h.Images(), nil
	}
	names, err := s.cfg.Hosts.Ready(ctx)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, errdefs.WithCode(errdefs.ErrUnavailable, "NoHostAvailable", "No host is ready to take images.")
	}
	var fan fanImages
	for _, n := range names {
		h, err := s.cfg.Hosts.Agent(ctx, n)
		if err != nil {
			return nil, err
		}
		fan = append(fan, h.Images())
	}
	return fan, nil
}

// fanImages is the image caches of several hosts as one: writes go to
// every host, reads merge.
type fanImages []hostapi.Images

// each runs f on every host at once and returns the first error.
func (f fanImages) each(fn func(hostapi.Images) error) error {
	errs := make([]error, len(f))
	var wg sync.WaitGroup
	for i, im := range f {
		wg.Go(func() { errs[i] = fn(im) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (f fanImages) List() ([]hostapi.ImageSummary, error) {
	seen := map[string]bool{}
	var out []hostapi.ImageSummary
	for _, im := range f {
		l, err := im.List()
		if err != nil {
			return nil, err
		}
		for _, s := range l {
			if k := s.Ref + "@" + s.Digest; !seen[k] {
				seen[k] = true
				out = append(out, s)
			}
		}
	}
	return out, nil
}

func (f fanImages) Pull(ctx context.Context, ref string, creds []api.ImageRegistryCredential, progress func(hostapi.ImageProgress)) (*hostapi.Image, error) {
	var mu sync.Mutex
	var img *hostapi.Image
	report := progress
	if progress != nil {
		report = func(p hostapi.ImageProgress) {
			mu.Lock()
			defer mu.Unlock()
			progress(p)
		}
	}
	err := f.each(func(im hostapi.Images) error {
		got, err := im.Pull(ctx, ref, creds, report)
		mu.Lock()
		defer mu.Unlock()
		if got != nil && img == nil {
			img = got
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return img, nil
}

func (f fanImages) Import(ctx context.Context, tarPath string) ([]hostapi.Image, error) {
	var mu sync.Mutex
	var imgs []hostapi.Image
	err := f.each(func(im hostapi.Images) error {
		got, err := im.Import(ctx, tarPath)
		mu.Lock()
		defer mu.Unlock()
		if imgs == nil {
			imgs = got
		}
		return err
	})
	return imgs, err
}

func (f fanImages) Get(ref string) (*hostapi.Image, error) {
	var last error
	for _, im := range f {
		img, err := im.Get(ref)
		if err == nil {
			return img, nil
		}
		last = err
	}
	return nil, last
}

// Remove removes the image from every host that has it; ErrNotFound if
// none has.
func (f fanImages) Remove(ref string) error {
	removed := false
	var mu sync.Mutex
	err := f.each(func(im hostapi.Images) error {
		err := im.Remove(ref)
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return nil
		}
		if err == nil {
			mu.Lock()
			removed = true
			mu.Unlock()
		}
		return err
	})
	if err == nil && !removed {
		return errors.Join(errdefs.ErrNotFound, errors.New("no host has image "+ref))
	}
	return err
}
