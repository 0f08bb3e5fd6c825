package client

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// The image routes are Skiff extensions below a location
// (…/locations/{loc}/images…, docs/api.md "Images"); the server has one
// image cache, whatever the location.

// ImageRef is an image of the server's cache: its name and manifest digest.
type ImageRef struct {
	Image  string `json:"image"`
	Digest string `json:"digest"`
}

// PullRequest is the body of an image pull.
type PullRequest struct {
	Image       string                        `json:"image"`
	Credentials []api.ImageRegistryCredential `json:"credentials,omitempty"`
}

// ListCachedImages lists the images of the server's cache (images pulled
// with a group's own credentials are not listed).
func (c *Client) ListCachedImages(ctx context.Context, location string) ([]api.CachedImage, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	return listOf[api.CachedImage](ctx, c, p.Location(location)+"/cachedImages", nil)
}

// PullImage pulls an image into the server's cache. With progress, the
// server streams the pull and progress is told each event (layer
// progress, back-offs) before the result; without, it answers once done.
func (c *Client) PullImage(ctx context.Context, location string, req PullRequest, progress func(api.PullEvent)) (*ImageRef, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	path := p.Location(location) + "/images/pull"
	var out ImageRef
	if progress == nil {
		if _, err := c.call(ctx, http.MethodPost, path, nil, req, &out); err != nil {
			return nil, err
		}
		return &out, nil
	}
	resp, err := c.Do(ctx, &Request{Method: http.MethodPost, Path: path, Query: url.Values{"progress": {"true"}}, JSON: req})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		// A server without the stream answers once done.
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		keepRaw(ctx, b)
		return &out, (&Response{Body: b}).Decode(&out)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e api.PullEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, errdefs.WithCode(errdefs.ErrUnavailable, "", "bad progress line from the server: %v", err)
		}
		switch {
		case e.Error != nil:
			return nil, errdefs.WithCode(errdefs.ErrUnavailable, e.Error.Code, "%s", e.Error.Message)
		case e.Status == "pulled":
			out = ImageRef{Image: e.Image, Digest: e.Digest}
			if b, err := json.Marshal(out); err == nil {
				keepRaw(ctx, b)
			}
			return &out, nil
		}
		progress(e)
	}
	if err := sc.Err(); err != nil {
		return nil, errdefs.WithCode(errdefs.ErrUnavailable, "", "pull progress stream: %v", err)
	}
	return nil, errdefs.WithCode(errdefs.ErrUnavailable, "", "the server ended the pull without a result")
}

// ImportImage imports a docker-archive or OCI-layout tarball of size
// bytes (docker save, podman save) into the server's cache and returns the
// images it held.
func (c *Client) ImportImage(ctx context.Context, location string, tarball io.Reader, size int64) ([]ImageRef, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(ctx, &Request{
		Method: http.MethodPost, Path: p.Location(location) + "/images/import",
		Body: tarball, ContentType: "application/x-tar", ContentLength: size,
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list api.List[json.RawMessage]
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, err
	}
	if b, err := json.Marshal(list.Value); err == nil {
		keepRaw(ctx, b)
	}
	out := make([]ImageRef, len(list.Value))
	for i, r := range list.Value {
		if err := (&Response{Body: r}).Decode(&out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RemoveImage removes an image from the server's cache; an image that a
// container group uses is refused (ErrConflict).
func (c *Client) RemoveImage(ctx context.Context, location, image string) error {
	p, err := c.In(ctx)
	if err != nil {
		return err
	}
	_, err = c.call(ctx, http.MethodDelete, p.Location(location)+"/images", url.Values{"image": {image}}, nil, nil)
	return err
}

// Usages lists the usages and limits of a location (Location_ListUsage).
func (c *Client) Usages(ctx context.Context, location string) ([]api.Usage, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	return listOf[api.Usage](ctx, c, p.Location(location)+"/usages", nil)
}

// Capabilities lists what a location can run (Location_ListCapabilities).
func (c *Client) Capabilities(ctx context.Context, location string) ([]api.Capability, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	return listOf[api.Capability](ctx, c, p.Location(location)+"/capabilities", nil)
}
