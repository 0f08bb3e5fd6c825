package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// OCI annotations naming an image in an OCI layout.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// Import stores the images of a tarball: a docker-archive (`docker save`,
// go-containerregistry's tarball.Write), read through its manifest.json, or
// an OCI image layout (oci-layout + index.json). Images are stored under
// their tags (docker RepoTags; OCI "io.containerd.image.name", or
// "org.opencontainers.image.ref.name" when it is a full reference), and
// under their ID when they have none. Multi-platform indexes resolve to the
// store's platform.
func (s *Store) Import(ctx context.Context, tarPath string) ([]*Image, error) {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	names, err := tarNames(tarPath)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", tarPath, err)
	}
	var imgs []*Image
	switch {
	case names["manifest.json"]:
		imgs, err = s.importDocker(ctx, tarPath)
	case names["oci-layout"] && names["index.json"]:
		imgs, err = s.importOCI(ctx, tarPath)
	default:
		return nil, fmt.Errorf("import %s: neither a docker archive (manifest.json) nor an OCI layout (oci-layout, index.json): %w", tarPath, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", tarPath, err)
	}
	for _, img := range imgs {
		s.log.Info("image imported", "ref", img.Ref, "digest", img.Digest, "from", tarPath)
	}
	return imgs, nil
}

// tarNames lists the top-level file names of a tar.
func tarNames(p string) (map[string]bool, error) {
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
		}
		return nil, err
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: not a tar: %w", errdefs.ErrInvalidArgument, err)
		}
		names[path.Clean(hdr.Name)] = true
	}
}

func (s *Store) importDocker(ctx context.Context, tarPath string) ([]*Image, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(tarPath) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	var out []*Image
	for _, d := range m {
		var (
			img  v1.Image
			tags []string
		)
		for _, t := range d.RepoTags {
			tag, err := name.NewTag(t)
			if err != nil {
				return nil, fmt.Errorf("tag %q: %w: %w", t, errdefs.ErrInvalidArgument, err)
			}
			tags = append(tags, tag.Name())
			if img == nil {
				img, err = tarball.Image(opener, &tag)
				if err != nil {
					return nil, err
				}
			}
		}
		if img == nil {
			if len(m) != 1 {
				return nil, fmt.Errorf("untagged image %s in a multi-image archive: %w", d.Config, errdefs.ErrInvalidArgument)
			}
			img, err = tarball.Image(opener, nil)
			if err != nil {
				return nil, err
			}
		}
		imgs, err := s.storeUnder(ctx, img, tags, "")
		if err != nil {
			return nil, err
		}
		out = append(out, imgs...)
	}
	return out, nil
}

// storeUnder stores img under each reference in refs, or under its ID when
// refs is empty.
func (s *Store) storeUnder(ctx context.Context, img v1.Image, refs []string, indexDigest string) ([]*Image, error) {
	if len(refs) == 0 {
		id, err := img.ConfigName()
		if err != nil {
			return nil, err
		}
		refs = []string{id.String()}
	}
	var out []*Image
	for _, ref := range refs {
		stored, err := s.storeImage(ctx, ref, ref, img, indexDigest, nil, func(Progress) {})
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		out = append(out, stored)
	}
	return out, nil
}

func (s *Store) importOCI(ctx context.Context, tarPath string) ([]*Image, error) {
	dir, err := os.MkdirTemp(filepath.Join(s.root, dirTmp), "oci-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := extractPlain(ctx, tarPath, dir); err != nil {
		return nil, err
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	var out []*Image
	for _, d := range im.Manifests {
		var refs []string
		if n := d.Annotations[annotationContainerdName]; n != "" {
			refs = append(refs, n)
		} else if n := d.Annotations[annotationRefName]; strings.ContainsAny(n, "/:@") {
			refs = append(refs, n)
		}
		for i, r := range refs {
			parsed, err := name.ParseReference(r)
			if err != nil {
				return nil, fmt.Errorf("image name %q: %w: %w", r, errdefs.ErrInvalidArgument, err)
			}
			refs[i] = parsed.Name()
		}
		var (
			img         v1.Image
			indexDigest string
		)
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			indexDigest = d.Digest.String()
			img, err = s.pickPlatform(child, tarPath)
			if err != nil {
				return nil, err
			}
		case d.MediaType.IsImage():
			if d.Platform != nil && !platformMatches(s.platform, *d.Platform) {
				continue
			}
			img, err = idx.Image(d.Digest)
			if err != nil {
				return nil, err
			}
		default:
			continue
		}
		imgs, err := s.storeUnder(ctx, img, refs, indexDigest)
		if err != nil {
			return nil, err
		}
		out = append(out, imgs...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no %s image in the OCI layout: %w", s.platform.String(), errdefs.ErrNotFound)
	}
	return out, nil
}

// extractPlain extracts the directories and regular files of a tar into dir
// (an OCI layout has nothing else), refusing paths that leave dir.
func extractPlain(ctx context.Context, tarPath, dir string) error {
	f, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer f.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(f)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
		}
		rel, err := cleanPath(hdr.Name)
		if err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(rel, 0o700); err != nil {
				return err
			}
		case tar.TypeReg, tar.TypeRegA:
			if d := path.Dir(rel); d != "." {
				if err := root.MkdirAll(d, 0o700); err != nil {
					return err
				}
			}
			out, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}
