package image

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/docker/cli/cli/config"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

const (
	defaultDialTimeout     = 10 * time.Second
	defaultResponseTimeout = 30 * time.Second
	// pullJobs is how many layers of one image download at once.
	pullJobs = 3
)

// Pull fetches ref from its registry, stores what is missing and returns the
// image. A short name means Docker Hub ("busybox" is
// index.docker.io/library/busybox:latest); the record keeps ref as written
// (Image.Name). The registry's mirrors configured with SetRegistries are
// tried first, in order, then the registry itself unless its origin is
// disabled. Credentials in creds are used for the origin when one's Server
// matches its host; otherwise (and for mirrors) the host's configured
// credentials, else the docker config file's (and its credential helpers),
// else none. When every endpoint failed and the last answered 429 or 5xx,
// the pull is retried after a back-off (reported to progress as
// ProgressBackOff) up to Options.PullRetries times. A layer
// download cut mid-way resumes with an HTTP Range request.
// Multi-platform indexes resolve to the store's platform. Layers already
// stored are not fetched again, and concurrent pulls of the same image or
// layer share one download. progress, if not nil, is called (never
// concurrently) as layers advance; a Pull that joins an identical one
// already running gets no reports.
//
// Errors name the image and wrap errdefs.ErrNotFound (unknown repository,
// tag or digest; no image for the platform), errdefs.ErrUnauthorized (401,
// 403, bad credentials) or errdefs.ErrUnavailable (registry unreachable,
// timed out or failing with 5xx or 429). They never hold credentials.
func (s *Store) Pull(ctx context.Context, ref string, creds []api.ImageRegistryCredential, progress func(Progress)) (*Image, error) {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w: %w", ref, errdefs.ErrInvalidArgument, err)
	}
	key := parsed.Name() + "\x00" + ref + "\x00" + credsKey(parsed, creds)
	for {
		ch := s.pulls.DoChan(key, func() (any, error) {
			return s.pull(ctx, ref, parsed, creds, progress)
		})
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pull %s: %w", ref, ctx.Err())
		case res := <-ch:
			// A shared pull that failed because the caller that started it
			// gave up is retried by callers that have not.
			if res.Err != nil && res.Shared && errors.Is(res.Err, context.Canceled) && ctx.Err() == nil {
				continue
			}
			if res.Err != nil {
				return nil, res.Err
			}
			return res.Val.(*Image).clone(), nil
		}
	}
}

// credsKey identifies the per-pull credentials for ref's registry, so that
// only pulls with the same credentials share a download.
func credsKey(ref name.Reference, creds []api.ImageRegistryCredential) string {
	if c := matchCreds(ref, creds); c != nil {
		sum := sha256.Sum256([]byte(c.Username + "\x00" + c.Password))
		return "arg:" + hex.EncodeToString(sum[:])
	}
	return "host"
}

// matchCreds returns the entry of creds for ref's registry, or nil.
func matchCreds(ref name.Reference, creds []api.ImageRegistryCredential) *api.ImageRegistryCredential {
	host := ref.Context().RegistryStr()
	for i, c := range creds {
		if normalizeServer(c.Server) == host {
			return &creds[i]
		}
	}
	return nil
}

func (s *Store) pull(ctx context.Context, written string, ref name.Reference, creds []api.ImageRegistryCredential, progress func(Progress)) (*Image, error) {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	start := time.Now()
	refStr := ref.Name()
	eps, err := s.endpoints(ref)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", written, err)
	}
	var mu sync.Mutex
	report := func(p Progress) {
		if progress == nil {
			return
		}
		p.Ref = written
		mu.Lock()
		defer mu.Unlock()
		progress(p)
	}
	retries := s.opts.PullRetries
	if retries == 0 {
		retries = 3
	}
	delay := s.opts.PullBackoff
	if delay <= 0 {
		delay = time.Second
	}
	for attempt := 1; ; attempt++ {
		var lastErr error
		for _, ep := range eps {
			out, err := s.pullFrom(ctx, written, ref, ep, creds, report)
			if err == nil {
				s.log.Info("image pulled", "ref", written, "name", refStr, "from", ep.registry.RegistryStr(), "digest", out.Digest, "layers", len(out.Layers), "duration", time.Since(start))
				return out, nil
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("pull %s: %w", written, ctx.Err())
			}
			lastErr = err
			s.log.Info("pull from endpoint failed", "ref", written, "endpoint", ep.registry.RegistryStr(), "mirror", ep.mirror, "err", err)
		}
		if retries < 0 || attempt > retries || !retryable(lastErr) {
			return nil, lastErr
		}
		wait := delay << (attempt - 1)
		report(Progress{Status: ProgressBackOff, Attempt: attempt, Delay: wait, Message: lastErr.Error()})
		s.log.Info("pull backing off", "ref", written, "attempt", attempt, "delay", wait)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pull %s: %w", written, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// pullFrom pulls ref's manifest and missing layers from one endpoint.
func (s *Store) pullFrom(ctx context.Context, written string, ref name.Reference, ep endpoint, creds []api.ImageRegistryCredential, report func(Progress)) (*Image, error) {
	repo := ep.repo
	var target name.Reference = repo.Tag(ref.Identifier())
	if d, ok := ref.(name.Digest); ok {
		target = repo.Digest(d.DigestStr())
	}
	auth, private, err := s.authFor(ctx, ref, ep, creds)
	if err != nil {
		return nil, fmt.Errorf("pull %s: credentials: %w", written, err)
	}
	desc, err := remote.Get(target, s.remoteOptions(ctx, ep, auth)...)
	if err != nil {
		return nil, pullError(written, err)
	}
	var (
		img         v1.Image
		indexDigest string
	)
	if desc.MediaType.IsIndex() {
		indexDigest = desc.Digest.String()
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, pullError(written, err)
		}
		img, err = s.pickPlatform(idx, written)
		if err != nil {
			return nil, err
		}
	} else if desc.MediaType.IsImage() {
		img, err = desc.Image()
		if err != nil {
			return nil, pullError(written, err)
		}
	} else {
		return nil, fmt.Errorf("pull %s: unsupported manifest media type %q: %w", written, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	blobs := &blobFetcher{s: s, repo: repo, auth: auth, rt: ep.transport}
	out, err := s.storeImageAs(ctx, ref.Name(), written, img, indexDigest, blobs, report, private)
	if err != nil {
		return nil, pullError(written, err)
	}
	return out, nil
}

// authFor returns how a pull of ref authenticates to endpoint ep: the
// caller's own credentials (creds) for the origin when one matches its
// registry, else the host's configured credentials, else the docker config
// file's, else none. private is true for the caller's own credentials: an
// image pulled with them is the caller's (see Image.Private), while one
// pulled with the operator's credentials is everyone's.
func (s *Store) authFor(ctx context.Context, ref name.Reference, ep endpoint, creds []api.ImageRegistryCredential) (auth authn.Authenticator, private bool, err error) {
	switch c := matchCreds(ref, creds); {
	case !ep.mirror && c != nil:
		return authn.FromConfig(authn.AuthConfig{Username: c.Username, Password: c.Password}), true, nil
	case ep.auth != nil:
		return hostAuthenticator(ep.auth), false, nil
	default:
		a, err := s.keychain.ResolveContext(ctx, ep.repo)
		return a, false, err
	}
}

// remoteOptions are the go-containerregistry options of a request to ep.
func (s *Store) remoteOptions(ctx context.Context, ep endpoint, auth authn.Authenticator) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuth(auth),
		remote.WithTransport(ep.transport),
		remote.WithPlatform(s.platform),
		// Status codes are retried by pull, visibly; only dropped
		// connections are retried here.
		remote.WithRetryStatusCodes(),
		remote.WithRetryBackoff(remote.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 2}),
		remote.WithUserAgent("skiff"),
	}
}

// pickPlatform returns the index's image for the store's platform,
// descending into nested indexes.
func (s *Store) pickPlatform(idx v1.ImageIndex, refStr string) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, pullError(refStr, err)
	}
	var seen []string
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, pullError(refStr, err)
			}
			if img, err := s.pickPlatform(child, refStr); err == nil {
				return img, nil
			}
		case d.MediaType.IsImage():
			if d.Platform == nil {
				continue
			}
			seen = append(seen, d.Platform.String())
			if platformMatches(s.platform, *d.Platform) {
				img, err := idx.Image(d.Digest)
				if err != nil {
					return nil, pullError(refStr, err)
				}
				return img, nil
			}
		}
	}
	return nil, fmt.Errorf("%s: no %s image in the index (it has: %s): %w",
		refStr, s.platform.String(), strings.Join(seen, ", "), errdefs.ErrNotFound)
}

// platformMatches: same OS and architecture, and same variant when want
// names one.
func platformMatches(want, got v1.Platform) bool {
	if want.OS != got.OS || want.Architecture != got.Architecture {
		return false
	}
	return want.Variant == "" || want.Variant == got.Variant
}

// normalizeServer turns a credential's server ("https://host:port/v1/",
// "docker.io") into go-containerregistry's registry name.
func normalizeServer(server string) string {
	s := strings.ToLower(strings.TrimSpace(server))
	s = strings.TrimPrefix(s, "https://")
	s = strings.TrimPrefix(s, "http://")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	switch s {
	case "docker.io", "registry-1.docker.io", "index.docker.io", "registry.hub.docker.com":
		return name.DefaultRegistry
	}
	if r, err := name.NewRegistry(s); err == nil {
		return r.RegistryStr()
	}
	return s
}

// configKeychain is authn.DefaultKeychain reading one docker config file.
type configKeychain struct {
	path string
}

// ResolveContext returns the credentials the config file holds for target's
// registry, or authn.Anonymous.
func (k *configKeychain) ResolveContext(_ context.Context, target authn.Resource) (authn.Authenticator, error) {
	f, err := os.Open(k.path)
	if errors.Is(err, os.ErrNotExist) {
		return authn.Anonymous, nil
	}
	if err != nil {
		return nil, fmt.Errorf("docker config %s: %w", k.path, err)
	}
	defer f.Close()
	cf, err := config.LoadFromReader(f)
	if err != nil {
		return nil, fmt.Errorf("docker config %s: %w: %w", k.path, errdefs.ErrInvalidArgument, err)
	}
	for _, key := range []string{target.String(), target.RegistryStr()} {
		if key == name.DefaultRegistry {
			key = authn.DefaultAuthKey
		}
		ac, err := cf.GetAuthConfig(key)
		if err != nil {
			return nil, fmt.Errorf("docker config %s: %w", k.path, err)
		}
		if ac.Username == "" && ac.Password == "" && ac.Auth == "" && ac.IdentityToken == "" && ac.RegistryToken == "" {
			continue
		}
		return authn.FromConfig(authn.AuthConfig{
			Username:      ac.Username,
			Password:      ac.Password,
			Auth:          ac.Auth,
			IdentityToken: ac.IdentityToken,
			RegistryToken: ac.RegistryToken,
		}), nil
	}
	return authn.Anonymous, nil
}

// pullError wraps err with the error class that fits it and the image name.
// Errors already carrying a class are only prefixed.
func pullError(ref string, err error) error {
	for _, class := range []error{errdefs.ErrNotFound, errdefs.ErrUnauthorized, errdefs.ErrUnavailable, errdefs.ErrInvalidArgument} {
		if errors.Is(err, class) {
			if strings.Contains(err.Error(), ref) {
				return err
			}
			return fmt.Errorf("pull %s: %w", ref, err)
		}
	}
	if class := classify(err); class != nil {
		return fmt.Errorf("pull %s: %w: %w", ref, class, err)
	}
	return fmt.Errorf("pull %s: %w", ref, err)
}

// retryable: the registry answered 429, 408 or 5xx.
func retryable(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	return terr.StatusCode == http.StatusTooManyRequests || terr.StatusCode == http.StatusRequestTimeout || terr.StatusCode >= 500
}

// classify maps registry and network errors to errdefs classes.
func classify(err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		for _, d := range terr.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return errdefs.ErrNotFound
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return errdefs.ErrUnauthorized
			case transport.UnavailableErrorCode, transport.TooManyRequestsErrorCode:
				return errdefs.ErrUnavailable
			}
		}
		switch {
		case terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden:
			return errdefs.ErrUnauthorized
		case terr.StatusCode == http.StatusNotFound:
			return errdefs.ErrNotFound
		case terr.StatusCode == http.StatusTooManyRequests || terr.StatusCode == http.StatusRequestTimeout || terr.StatusCode >= 500:
			return errdefs.ErrUnavailable
		}
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return errdefs.ErrUnavailable
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return errdefs.ErrUnavailable
	}
	var nerr net.Error
	if errors.As(err, &nerr) {
		return errdefs.ErrUnavailable
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return errdefs.ErrNotFound
		}
		return errdefs.ErrUnavailable
	}
	return nil
}

// newTransport returns an HTTP transport that never waits forever: bounded
// dial, TLS handshake and response headers, and a response body that may
// not stall for longer than responseTimeout.
func newTransport(dialTimeout, responseTimeout time.Duration) http.RoundTripper {
	return newTransportTLS(dialTimeout, responseTimeout, nil)
}

// newTransportTLS is newTransport with a TLS configuration (nil: the
// default).
func newTransportTLS(dialTimeout, responseTimeout time.Duration, tlsCfg *tls.Config) http.RoundTripper {
	if dialTimeout <= 0 {
		dialTimeout = defaultDialTimeout
	}
	if responseTimeout <= 0 {
		responseTimeout = defaultResponseTimeout
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   min(dialTimeout, responseTimeout),
		ResponseHeaderTimeout: responseTimeout,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       tlsCfg,
	}
	return &stallTransport{next: t, idle: responseTimeout}
}

// stallTransport cancels a request whose response body sends nothing for
// idle.
type stallTransport struct {
	next http.RoundTripper
	idle time.Duration
}

// RoundTrip implements http.RoundTripper.
func (t *stallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	b := &stallBody{body: resp.Body, idle: t.idle, cancel: cancel}
	b.timer = time.AfterFunc(t.idle, func() { b.stalled.Store(true); cancel() })
	resp.Body = b
	return resp, nil
}

type stallBody struct {
	body    io.ReadCloser
	idle    time.Duration
	timer   *time.Timer
	stalled atomic.Bool
	cancel  context.CancelFunc
}

func (b *stallBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err != nil && b.stalled.Load() {
		return n, fmt.Errorf("registry response stalled for %s: %w", b.idle, os.ErrDeadlineExceeded)
	}
	b.timer.Reset(b.idle)
	return n, err
}

func (b *stallBody) Close() error {
	b.timer.Stop()
	b.cancel()
	return b.body.Close()
}

// exposedPorts lists a config's exposed ports, sorted.
func exposedPorts(m map[string]struct{}) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// storeImage stores img under ref: its layers (fetching the compressed blobs
// when compressed, else reading uncompressed streams), blobs and record.
// Pulled layers come from blobs; imported ones (blobs nil) are read
// uncompressed. written is the name as the user wrote it.
func (s *Store) storeImage(ctx context.Context, ref, written string, img v1.Image, indexDigest string, blobs *blobFetcher, report func(Progress)) (*Image, error) {
	return s.storeImageAs(ctx, ref, written, img, indexDigest, blobs, report, false)
}

// storeImageAs is storeImage; private records that the image was pulled
// with the caller's own registry credentials (Image.Private).
func (s *Store) storeImageAs(ctx context.Context, ref, written string, img v1.Image, indexDigest string, blobs *blobFetcher, report func(Progress), private bool) (*Image, error) {
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	id, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	if cf.OS != "" && cf.OS != "linux" {
		return nil, fmt.Errorf("image is for %s, not linux: %w", cf.OS, errdefs.ErrInvalidArgument)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(layers) != len(cf.RootFS.DiffIDs) {
		return nil, fmt.Errorf("manifest has %d layers but config has %d diffIDs: %w", len(layers), len(cf.RootFS.DiffIDs), errdefs.ErrInvalidArgument)
	}

	sizes := make([]int64, len(layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pullJobs)
	for i, l := range layers {
		diffID := cf.RootFS.DiffIDs[i]
		g.Go(func() error {
			size, err := s.ensureLayer(gctx, l, diffID, blobs, report)
			sizes[i] = size
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	if err := s.writeBlob(digest.String(), rawManifest); err != nil {
		return nil, fmt.Errorf("store manifest: %w", err)
	}
	if err := s.writeBlob(id.String(), rawConfig); err != nil {
		return nil, fmt.Errorf("store config: %w", err)
	}
	rec := &record{
		Ref:         ref,
		Name:        written,
		Digest:      digest.String(),
		IndexDigest: indexDigest,
		ID:          id.String(),
		Config: ImageConfig{
			Entrypoint:   cf.Config.Entrypoint,
			Cmd:          cf.Config.Cmd,
			Env:          cf.Config.Env,
			WorkingDir:   cf.Config.WorkingDir,
			User:         cf.Config.User,
			ExposedPorts: exposedPorts(cf.Config.ExposedPorts),
		},
		StoredAt: time.Now().UTC(),
		Private:  private,
	}
	for i, d := range cf.RootFS.DiffIDs {
		rec.Layers = append(rec.Layers, d.String())
		rec.Size += sizes[i]
	}
	if err := s.writeRecord(rec); err != nil {
		return nil, fmt.Errorf("store image record: %w", err)
	}
	return s.toImage(rec), nil
}
