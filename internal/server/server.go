// Package server is Skiff's HTTP API: ARM's Microsoft.ContainerInstance and
// Microsoft.Resources on the wire (docs/api.md), with bearer-token
// authentication, long-running operations and the ARM error envelope. It
// stores desired state in the store and leaves running it to the
// controller.
package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/atomicfile"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
	"github.com/skiff-sh/skiff/internal/store"
)

// Config configures a Server.
type Config struct {
	Store store.Store
	// Host is the seam to the host agent: logs, exec, metrics samples,
	// images and the published-port check. Everything else the server
	// reads and writes in the store.
	Host hostapi.Host
	// Security is what the operator allows a securityContext beyond the
	// defaults; a PUT asking for more is refused with a 400 before
	// anything is stored.
	Security api.SecurityPolicy
	// Token is the admin bearer token.
	Token    string
	Location string
	Logger   *slog.Logger
	// ExecSessionsPerGroup bounds the exec sessions of one container group
	// at once (default DefaultExecSessionsPerGroup); one more is refused
	// with 409 ExecSessionLimitReached.
	ExecSessionsPerGroup int
	// MaxImageImportSize bounds an image archive POSTed to images/import
	// (default DefaultMaxImageImportSize).
	MaxImageImportSize int64
}

// DefaultMaxImageImportSize is the default bound on an imported image
// archive.
const DefaultMaxImageImportSize = 8 << 30

// Server serves the API.
type Server struct {
	cfg     Config
	log     *slog.Logger
	routes  router
	metrics *metrics

	execMu     sync.Mutex
	sessions   map[string]*execSession
	execActive map[string]int // open exec websockets per group (runtime ID)

	cpu cpuSamples // last CPU sample per container (insights.go)
}

// New returns a server with its routes.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Location == "" {
		cfg.Location = "local"
	}
	if cfg.MaxImageImportSize <= 0 {
		cfg.MaxImageImportSize = DefaultMaxImageImportSize
	}
	s := &Server{cfg: cfg, log: cfg.Logger, sessions: map[string]*execSession{}, execActive: map[string]int{}}
	s.metrics = newMetrics(s)
	s.registerRoutes()
	return s
}

const (
	subPrefix = "/subscriptions/{sub}"
	rgPrefix  = subPrefix + "/resourcegroups/{rg}"
	cgPrefix  = rgPrefix + "/providers/microsoft.containerinstance/containergroups/{name}"
	locPrefix = subPrefix + "/providers/microsoft.containerinstance/locations/{loc}"
)

func (s *Server) registerRoutes() {
	r := &s.routes
	r.handle("GET", "/subscriptions", s.listSubscriptions)
	r.handle("GET", subPrefix, s.getSubscription)
	r.handle("POST", subPrefix+"/providers/microsoft.containerinstance/register", s.registerProvider)
	r.handle("GET", "/providers/microsoft.containerinstance/operations", s.listProviderOperations)
	r.handle("GET", subPrefix+"/resourcegroups", s.listResourceGroups)
	r.handle("PUT", rgPrefix, s.putResourceGroup)
	r.handle("GET", rgPrefix, s.getResourceGroup)
	r.handle("HEAD", rgPrefix, s.headResourceGroup)
	r.handle("DELETE", rgPrefix, s.deleteResourceGroup)
	r.handle("GET", subPrefix+"/providers/microsoft.containerinstance/containergroups", s.listContainerGroups)
	r.handle("GET", rgPrefix+"/providers/microsoft.containerinstance/containergroups", s.listContainerGroups)
	r.handle("PUT", cgPrefix, s.putContainerGroup)
	r.handle("GET", cgPrefix, s.getContainerGroup)
	r.handle("PATCH", cgPrefix, s.patchContainerGroup)
	r.handle("DELETE", cgPrefix, s.deleteContainerGroup)
	r.handle("POST", cgPrefix+"/stop", s.stopContainerGroup)
	r.handle("POST", cgPrefix+"/start", s.startContainerGroup)
	r.handle("POST", cgPrefix+"/restart", s.restartContainerGroup)
	r.handle("GET", cgPrefix+"/outboundnetworkdependenciesendpoints", s.outboundEndpoints)
	r.handle("GET", cgPrefix+insightsSuffix, s.containerGroupMetrics)
	r.handle("GET", cgPrefix+"/containers/{container}/logs", s.containerLogs)
	r.handle("POST", cgPrefix+"/containers/{container}/exec", s.containerExec)
	r.handle("POST", cgPrefix+"/containers/{container}/attach", s.containerAttach)
	r.handle("GET", locPrefix+"/operations/{op}", s.getOperation)
	r.handle("GET", locPrefix+"/usages", s.usages)
	r.handle("GET", locPrefix+"/capabilities", s.capabilities)
	r.handle("GET", locPrefix+"/cachedimages", s.cachedImages)
	r.handle("POST", locPrefix+"/images/pull", s.pullImage)
	r.handle("POST", locPrefix+"/images/import", s.importImage, rawBody)
	r.handle("DELETE", locPrefix+"/images", s.removeImage)
}

// ServeHTTP authenticates, checks the api-version, routes and translates
// errors.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, code: 200}
	route := s.serve(rec, r)
	s.metrics.observe(r.Method, route, rec.code, time.Since(start))
}

func (s *Server) serve(w *statusRecorder, r *http.Request) string {
	switch {
	case r.URL.Path == "/healthz":
		w.Write([]byte("ok\n"))
		return "/healthz"
	case r.URL.Path == "/metrics":
		s.metrics.handler.ServeHTTP(w, r)
		return "/metrics"
	case strings.HasPrefix(r.URL.Path, "/exec/"):
		s.serveExecSocket(w, r, strings.TrimPrefix(r.URL.Path, "/exec/"))
		return "/exec"
	}
	if !s.authorized(r) {
		writeError(w, r, s.log, errdefs.WithCode(errdefs.ErrUnauthorized, "AuthenticationFailed",
			"Authentication failed. The 'Authorization' header is missing or does not carry a valid bearer token."))
		return "unauthorized"
	}
	rt, p, pathOK := s.routes.match(r.Method, r.URL.Path)
	if rt == nil {
		if pathOK {
			writeError(w, r, s.log, errdefs.WithCode(errdefs.ErrInvalidArgument, "MethodNotAllowed",
				"The method %s is not allowed on %s.", r.Method, r.URL.Path))
			return "unmatched"
		}
		writeError(w, r, s.log, errdefs.WithCode(errdefs.ErrNotFound, "InvalidResourceType",
			"The resource path %s is not known to this server.", r.URL.Path))
		return "unmatched"
	}
	pattern := "/" + strings.Join(rt.segs, "/")
	if err := checkAPIVersion(pattern, r.URL.Query().Get("api-version")); err != nil {
		writeError(w, r, s.log, err)
		return pattern
	}
	if err := rt.handler(w, r, p); err != nil {
		writeError(w, r, s.log, err)
	}
	return pattern
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.cfg.Token)) == 1
}

type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.code, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack hands the connection to the websocket upgrader.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("connection cannot be hijacked")
	}
	s.code, s.wroteHeader = http.StatusSwitchingProtocols, true
	return h.Hijack()
}

// Unwrap lets http.ResponseController and the websocket upgrader reach the
// underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// EnsureIdentity creates the default subscription and the admin token on
// first start, and returns the token. The token file is mode 0600.
func EnsureIdentity(ctx context.Context, st store.Store, dataDir string) (token, subscription string, err error) {
	sub, err := st.GetMeta(ctx, "defaultSubscription")
	if err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
		return "", "", err
	}
	if sub == "" {
		sub = uuid.NewString()
		if err := st.PutSubscription(ctx, store.Subscription{ID: sub, DisplayName: "Skiff", State: "Enabled", CreatedAt: time.Now().UTC()}); err != nil {
			return "", "", err
		}
		if err := st.PutMeta(ctx, "defaultSubscription", sub); err != nil {
			return "", "", err
		}
	}
	path := filepath.Join(dataDir, "admin.token")
	data, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(data))) > 0 {
		return strings.TrimSpace(string(data)), sub, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = hex.EncodeToString(b)
	if err := atomicfile.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("admin token: %w", err)
	}
	return token, sub, nil
}
