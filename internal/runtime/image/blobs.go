package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// maxResumes bounds how often one layer download resumes after a cut.
const maxResumes = 5

// blobFetcher downloads blobs of one repository on one endpoint, resuming
// cut downloads with HTTP Range requests.
type blobFetcher struct {
	s    *Store
	repo name.Repository
	auth authn.Authenticator
	rt   http.RoundTripper

	once   sync.Once
	client *http.Client
	err    error
}

// httpClient authenticates once (ping, token) and returns the client.
func (f *blobFetcher) httpClient(ctx context.Context) (*http.Client, error) {
	f.once.Do(func() {
		t, err := transport.NewWithContext(ctx, f.repo.Registry, f.auth, f.rt, []string{f.repo.Scope(transport.PullScope)})
		if err != nil {
			f.err = err
			return
		}
		f.client = &http.Client{Transport: transport.NewUserAgent(t, "skiff")}
	})
	return f.client, f.err
}

// open returns a reader of the blob digest (of size bytes, when known) that
// resumes after a dropped connection and fails at EOF when the content does
// not match digest.
func (f *blobFetcher) open(ctx context.Context, digest string, size int64, report func(Progress)) (io.ReadCloser, error) {
	r := &resumingReader{ctx: ctx, f: f, digest: digest, size: size, h: sha256.New(), report: report}
	if err := r.connect(); err != nil {
		return nil, err
	}
	return r, nil
}

// resumingReader reads a blob, reconnecting at its offset after errors.
type resumingReader struct {
	ctx     context.Context
	f       *blobFetcher
	digest  string
	size    int64
	report  func(Progress)
	body    io.ReadCloser
	off     int64
	h       hash.Hash
	resumes int
}

// connect issues the GET (with a Range from the current offset).
func (r *resumingReader) connect() error {
	c, err := r.f.httpClient(r.ctx)
	if err != nil {
		return err
	}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", r.f.repo.Registry.Scheme(), r.f.repo.RegistryStr(), r.f.repo.RepositoryStr(), r.digest)
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if r.off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", r.off))
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	if err := transport.CheckError(resp, http.StatusOK, http.StatusPartialContent); err != nil {
		resp.Body.Close()
		return err
	}
	if r.off > 0 && resp.StatusCode == http.StatusOK {
		// The server ignored the range: skip what we have.
		if _, err := io.CopyN(io.Discard, resp.Body, r.off); err != nil {
			resp.Body.Close()
			return err
		}
	}
	r.body = resp.Body
	return nil
}

// Read implements io.Reader.
func (r *resumingReader) Read(p []byte) (int, error) {
	for {
		if r.body == nil {
			if err := r.connect(); err != nil {
				return 0, err
			}
		}
		n, err := r.body.Read(p)
		if n > 0 {
			r.h.Write(p[:n])
			r.off += int64(n)
		}
		if err == nil {
			return n, nil
		}
		if errors.Is(err, io.EOF) && (r.size <= 0 || r.off >= r.size) {
			if got := "sha256:" + hex.EncodeToString(r.h.Sum(nil)); got != r.digest {
				return n, fmt.Errorf("blob %s: content has digest %s: %w", r.digest, got, errdefs.ErrInvalidArgument)
			}
			return n, io.EOF
		}
		// Cut mid-way (short body, reset, stall): resume where we are.
		r.body.Close()
		r.body = nil
		if r.ctx.Err() != nil || r.resumes >= maxResumes {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
		r.resumes++
		r.f.s.log.Info("layer download cut, resuming", "digest", r.digest, "offset", r.off, "size", r.size, "err", err)
		r.report(Progress{Layer: r.digest, Status: ProgressResumed, Complete: r.off, Total: r.size})
		if n > 0 {
			return n, nil
		}
	}
}

// Close implements io.Closer.
func (r *resumingReader) Close() error {
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}
