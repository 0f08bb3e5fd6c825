package image

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/skiff-sh/skiff/api"
)

// GetFor returns the stored image for ref (as Get does) to a caller that
// would pull it with creds, without downloading anything. A public image
// (pulled anonymously, with the operator's credentials, or imported) is
// returned as it is. A private one (Image.Private: pulled with some
// group's own credentials) is returned only when the registry accepts the
// caller's credentials for it, as a pull would pick them (Pull's rules):
// its manifest, by digest, is fetched with a HEAD request from the
// registry's endpoints in order. This is the kubelet's "ensure secret
// pulled images" check: a cached private image is no way around the
// registry's access control.
//
// Errors: errdefs.ErrNotFound when the image is not stored; for a private
// image the caller may not have, the pull error (errdefs.ErrUnauthorized,
// errdefs.ErrNotFound, errdefs.ErrUnavailable) naming the image. A caller
// falls back to Pull, which then fails (or succeeds) as it would have.
func (s *Store) GetFor(ctx context.Context, ref string, creds []api.ImageRegistryCredential) (*Image, error) {
	img, err := s.Get(ref)
	if err != nil || !img.Private {
		return img, err
	}
	if err := s.checkAccess(ctx, ref, img.Digest, creds); err != nil {
		return nil, err
	}
	return img, nil
}

// checkAccess asks ref's registry endpoints, with the authentication a
// pull with creds would use, for the manifest digest; nil once one answers.
func (s *Store) checkAccess(ctx context.Context, ref, digest string, creds []api.ImageRegistryCredential) error {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	eps, err := s.endpoints(parsed)
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	var lastErr error
	for _, ep := range eps {
		auth, _, err := s.authFor(ctx, parsed, ep, creds)
		if err != nil {
			return fmt.Errorf("pull %s: credentials: %w", ref, err)
		}
		if _, err = remote.Head(ep.repo.Digest(digest), s.remoteOptions(ctx, ep, auth)...); err == nil {
			s.log.Debug("private image handed out: the registry accepts the caller's credentials", "ref", ref, "endpoint", ep.registry.RegistryStr())
			return nil
		}
		lastErr = pullError(ref, err)
		s.log.Info("private image not handed out: the registry refused the caller", "ref", ref, "endpoint", ep.registry.RegistryStr(), "err", lastErr)
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("pull %s: no registry endpoint", ref)
	}
	return lastErr
}
