package agentapi

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
)

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	// Token is the bearer token every request must carry (required: an
	// empty Token refuses every request).
	Token string
	// TempDir is where an imported tarball is spooled (default
	// os.TempDir()).
	TempDir string
	// MaxImportSize bounds an imported tarball, in bytes (default
	// DefaultMaxImportSize).
	MaxImportSize int64
	// Logger receives the failed requests: 5xx at error, 4xx at debug
	// level (nil discards them).
	Logger *slog.Logger
}

// DefaultMaxImportSize is the bound on an imported tarball when
// HandlerOptions.MaxImportSize is zero.
const DefaultMaxImportSize = 8 << 30

// maxJSONBody bounds a request's JSON body.
const maxJSONBody = 1 << 20

// handler serves a Host.
type handler struct {
	host hostapi.Host
	o    HandlerOptions
	log  *slog.Logger
	mux  *http.ServeMux
}

// NewHandler serves h as the agent API (see the package doc) to the
// holders of o.Token.
func NewHandler(h hostapi.Host, o HandlerOptions) http.Handler {
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.MaxImportSize <= 0 {
		o.MaxImportSize = DefaultMaxImportSize
	}
	hd := &handler{host: h, o: o, log: o.Logger, mux: http.NewServeMux()}
	if hd.log == nil {
		hd.log = slog.New(slog.DiscardHandler)
	}
	for pattern, f := range map[string]func(http.ResponseWriter, *http.Request) error{
		"GET " + prefix + "/groups":                             hd.groupCount,
		"GET " + prefix + "/groups/{id}/stats":                  hd.stats,
		"GET " + prefix + "/groups/{id}/containers/{name}/logs": hd.logs,
		"GET " + prefix + "/groups/{id}/containers/{name}/exec": hd.exec,
		"POST " + prefix + "/ports/check":                       hd.checkPorts,
		"DELETE " + prefix + "/shares/{account}/{dir}":          hd.removeShare,
		"GET " + prefix + "/images":                             hd.listImages,
		"GET " + prefix + "/image":                              hd.getImage,
		"DELETE " + prefix + "/image":                           hd.removeImage,
		"POST " + prefix + "/images/pull":                       hd.pull,
		"PUT " + prefix + "/images/import":                      hd.importImage,
	} {
		hd.mux.Handle(pattern, hd.adapt(f))
	}
	return hd
}

// ServeHTTP refuses a request without the token before anything else,
// then routes it.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="skiff-agent"`)
		h.fail(w, r, errdefs.WithCode(errdefs.ErrUnauthorized, "AuthenticationFailed",
			"The agent API needs this agent's bearer token (Authorization: Bearer <token>)."))
		return
	}
	if _, pattern := h.mux.Handler(r); pattern == "" {
		h.fail(w, r, errdefs.WithCode(errdefs.ErrNotFound, "RouteNotFound", "The agent API has no route %s %s.", r.Method, r.URL.Path))
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *handler) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && h.o.Token != "" && strings.EqualFold(scheme, "Bearer") &&
		subtle.ConstantTimeCompare([]byte(token), []byte(h.o.Token)) == 1
}

// adapt turns a handler that returns its error into an http.Handler. A
// handler that has written its status returns nil.
func (h *handler) adapt(f func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			h.fail(w, r, err)
		}
	})
}

// fail answers err as an error envelope.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	we, code := h.report(r, err)
	writeJSON(w, code, envelope{Error: we})
}

// report is err on the wire and its status, logged: a 5xx as an error, a
// 4xx (or anything once the caller is gone) at debug level.
func (h *handler) report(r *http.Request, err error) (wireError, int) {
	we, code := toWire(err)
	if code >= 500 && r.Context().Err() == nil {
		h.log.Error("agent API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		h.log.Debug("agent API request refused", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	}
	return we, code
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", jsonType)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON decodes a request's body into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody)).Decode(v)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return errdefs.WithCode(errdefs.ErrTooLarge, "RequestContentTooLarge", "The request body exceeds %d bytes.", maxJSONBody)
	case err != nil:
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidRequestContent", "The request body is not valid JSON: %v", err)
	}
	return nil
}

func (h *handler) groupCount(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, countBody{Count: h.host.GroupCount()})
	return nil
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request) error {
	st, err := h.host.Stats(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (h *handler) checkPorts(w http.ResponseWriter, r *http.Request) error {
	var ports []api.Port
	if err := decodeJSON(w, r, &ports); err != nil {
		return err
	}
	if err := h.host.CheckPorts(ports); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) removeShare(w http.ResponseWriter, r *http.Request) error {
	if err := h.host.RemoveShare(r.Context(), r.PathValue("account"), r.PathValue("dir")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) listImages(w http.ResponseWriter, _ *http.Request) error {
	imgs, err := h.host.Images().List()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, imgs)
	return nil
}

func (h *handler) getImage(w http.ResponseWriter, r *http.Request) error {
	img, err := h.host.Images().Get(r.URL.Query().Get("ref"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, img)
	return nil
}

func (h *handler) removeImage(w http.ResponseWriter, r *http.Request) error {
	if err := h.host.Images().Remove(r.URL.Query().Get("ref")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// pull answers 200 at once, then a line per progress report and a last
// line with the image or the error.
func (h *handler) pull(w http.ResponseWriter, r *http.Request) error {
	var req pullRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	w.Header().Set("Content-Type", ndjsonType)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	var mu sync.Mutex // a store may report the layers it pulls at once
	send := func(l pullLine) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(l)
		_ = rc.Flush()
	}
	var progress func(hostapi.ImageProgress)
	if req.Progress {
		progress = func(p hostapi.ImageProgress) { send(pullLine{Progress: &p}) }
	}
	img, err := h.host.Images().Pull(r.Context(), req.Ref, req.Credentials, progress)
	if err != nil {
		we, _ := h.report(r, err)
		send(pullLine{Error: &we})
		return nil
	}
	send(pullLine{Image: img})
	return nil
}

// importImage spools the body to TempDir (at most MaxImportSize bytes),
// imports the spool and removes it.
func (h *handler) importImage(w http.ResponseWriter, r *http.Request) error {
	tooLarge := errdefs.WithCode(errdefs.ErrTooLarge, "RequestContentTooLarge",
		"The image archive exceeds the agent's maximum import size of %d bytes.", h.o.MaxImportSize)
	if r.ContentLength > h.o.MaxImportSize {
		return tooLarge // before reading a byte: with Expect: 100-continue none is sent
	}
	f, err := os.CreateTemp(h.o.TempDir, "skiff-agent-import-*.tar")
	if err != nil {
		return fmt.Errorf("spool the image archive: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, http.MaxBytesReader(w, r.Body, h.o.MaxImportSize)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge
		}
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidRequestContent", "Read the image archive: %v", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("spool the image archive: %w", err)
	}
	imgs, err := h.host.Images().Import(r.Context(), f.Name())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, imgs)
	return nil
}

// logs streams a container's log; see the package doc for when the status
// is written.
func (h *handler) logs(w http.ResponseWriter, r *http.Request) error {
	o, err := logOptions(r.URL.Query())
	if err != nil {
		return err
	}
	lw := &logWriter{w: w, rc: http.NewResponseController(w)}
	err = h.host.Logs(r.Context(), r.PathValue("id"), r.PathValue("name"), o, lw)
	switch {
	case err == nil:
		return nil
	case !lw.started:
		return err
	case r.Context().Err() == nil:
		we, _ := h.report(r, err)
		b, _ := json.Marshal(envelope{Error: we})
		w.Header().Set(errorTrailer, string(b))
	}
	return nil
}

// logWriter writes the status and the headers at the first byte, and
// flushes every write.
type logWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (l *logWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if !l.started {
		l.started = true
		h := l.w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Trailer", errorTrailer)
		l.w.WriteHeader(http.StatusOK)
	}
	n, err := l.w.Write(p)
	if err == nil {
		_ = l.rc.Flush()
	}
	return n, err
}

// logQuery is o as the query of a log request; logOptions reads it back.
func logQuery(o hostapi.LogOptions) url.Values {
	q := url.Values{"tail": {strconv.Itoa(o.Tail)}}
	for name, set := range map[string]bool{"timestamps": o.Timestamps, "follow": o.Follow, "previous": o.Previous} {
		if set {
			q.Set(name, "true")
		}
	}
	if !o.Since.IsZero() {
		q.Set("since", o.Since.Format(time.RFC3339Nano))
	}
	if o.LimitBytes != 0 {
		q.Set("limitBytes", strconv.FormatInt(o.LimitBytes, 10))
	}
	return q
}

func logOptions(q url.Values) (hostapi.LogOptions, error) {
	o := hostapi.LogOptions{Tail: -1}
	bad := func(name string) error {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidParameter", "The value %q of the query parameter '%s' is invalid.", q.Get(name), name)
	}
	var err error
	if v := q.Get("tail"); v != "" {
		if o.Tail, err = strconv.Atoi(v); err != nil {
			return o, bad("tail")
		}
	}
	for name, dst := range map[string]*bool{"timestamps": &o.Timestamps, "follow": &o.Follow, "previous": &o.Previous} {
		if v := q.Get(name); v != "" {
			if *dst, err = strconv.ParseBool(v); err != nil {
				return o, bad(name)
			}
		}
	}
	if v := q.Get("since"); v != "" {
		if o.Since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return o, bad("since")
		}
	}
	if v := q.Get("limitBytes"); v != "" {
		if o.LimitBytes, err = strconv.ParseInt(v, 10, 64); err != nil {
			return o, bad("limitBytes")
		}
	}
	return o, nil
}
