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
	"github.com/skiff-sh/skiff/internal/authz"
	"github.com/skiff-sh/skiff/internal/deployment"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
	"github.com/skiff-sh/skiff/internal/identity"
	"github.com/skiff-sh/skiff/internal/ngroup"
	"github.com/skiff-sh/skiff/internal/profile"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/standbypool"
	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/store"
)

// Config configures a Server.
type Config struct {
	Store store.Store
	// Host is the seam to the host agent: logs, exec, metrics samples,
	// images and the published-port check. Everything else the server
	// reads and writes in the store.
	Host hostapi.Host
	// Hosts, in cluster mode, finds the agent of each host (Host is then
	// unused): groups run on many hosts and each host's agent answers for
	// its own. Published ports are then checked by the scheduler, per
	// host, not at PUT.
	Hosts HostDirectory
	// Security is what the operator allows a securityContext beyond the
	// defaults; a PUT asking for more is refused with a 400 before
	// anything is stored.
	Security api.SecurityPolicy
	// Token is the admin bearer token.
	Token string
	// Identity, if set, is Skiff's identity provider: its tokens
	// authenticate service principals, and its discovery, token and Graph
	// routes are served beside the API. Without it only the admin token
	// authenticates.
	Identity *identity.Provider
	// AuditLogger gets the audit lines (default: Logger); it should log
	// at Info whatever the server's log level.
	AuditLogger *slog.Logger
	// Authz is the role-based access control engine: the role definitions
	// and assignments that the Microsoft.Authorization routes serve
	// (roles.go), and that each route's principal is checked against.
	Authz    *authz.Authorizer
	Location string
	Logger   *slog.Logger
	// ExecSessionsPerGroup bounds the exec sessions of one container group
	// at once (default DefaultExecSessionsPerGroup); one more is refused
	// with 409 ExecSessionLimitReached.
	ExecSessionsPerGroup int
	// MaxImageImportSize bounds an image archive POSTed to images/import
	// (default DefaultMaxImageImportSize).
	MaxImageImportSize int64
	// SyncWindow is how long a PUT of a container group waits for the
	// group to run before it answers with a long-running operation
	// (opwait.go): 0 is DefaultSyncWindow, negative never waits.
	SyncWindow time.Duration
	// DNSZone is the zone groups with a dnsNameLabel are named in
	// (default api.DefaultDNSZone): ipAddress.fqdn ends in it, and
	// ResolveFQDN answers for it (dns.go).
	DNSZone string
	// Sealer seals the secure parameters of template deployments at rest
	// (nil: a key of the process's own, lost when it ends).
	Sealer *seal.Sealer
}

// DefaultMaxImageImportSize is the default bound on an imported image
// archive.
const DefaultMaxImageImportSize = 8 << 30

// Server serves the API.
type Server struct {
	cfg      Config
	log      *slog.Logger
	auditLog *slog.Logger
	identity http.Handler // the identity provider's routes, if cfg.Identity
	routes   router
	metrics  *metrics

	execMu     sync.Mutex
	sessions   map[string]*execSession
	execActive map[string]int // open exec websockets per group (runtime ID)

	cpu cpuSamples // last CPU sample per container (insights.go)

	opWaits opWaiters // requests waiting for operations (opwait.go)

	fqdns fqdnIndex // the groups' names, for ResolveFQDN (dns.go)

	storage *storage.Service // storage accounts and shares (storage.go); nil without a store

	profiles *profile.Service // container group profiles (profiles.go); nil without a store

	ngroups   *ngroup.Store      // NGroups' records (ngroups.go); nil without a store
	ngroupCtl *ngroup.Reconciler // their members' reconciler, run by the controller's process

	pools   *standbypool.Store      // standby pools' records (standbypools.go); nil without a store
	poolCtl *standbypool.Reconciler // their members' reconciler, run by the controller's process

	deploy       *deployment.Engine // template deployments (deployments.go)
	inprocessLog *slog.Logger       // the log of the engine's requests (inprocess.go)
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
	audit := cfg.AuditLogger
	if audit == nil {
		audit = cfg.Logger
	}
	s := &Server{cfg: cfg, log: cfg.Logger, auditLog: audit.With("component", "audit"),
		sessions: map[string]*execSession{}, execActive: map[string]int{}}
	if cfg.Identity != nil {
		s.identity = identity.NewHandler(cfg.Identity, identity.HandlerOptions{Authenticate: s.authenticate, Allow: s.allowGraph,
			Logger: cfg.Logger.With("component", "identity")})
	}
	s.metrics = newMetrics(s)
	s.registerRoutes()
	sealer := cfg.Sealer
	if sealer == nil {
		key := make([]byte, seal.KeySize)
		_, _ = rand.Read(key)
		sealer, _ = seal.New(key, "(the process's own)")
	}
	if cfg.Store != nil {
		s.storage, _ = storage.New(storage.Config{Store: cfg.Store, Sealer: sealer})
		s.profiles, _ = profile.New(cfg.Store, sealer)
		s.ngroups = ngroup.NewStore(cfg.Store)
		s.ngroupCtl = ngroup.NewReconciler(s.ngroups, ngroupMembers{s}, cfg.Logger.With("component", "ngroups"))
		s.pools = standbypool.NewStore(cfg.Store)
		s.poolCtl = standbypool.NewReconciler(s.pools, poolMembers{s}, cfg.Logger.With("component", "standbypools"))
	}
	s.inprocessLog = slog.New(errorsOnly{cfg.Logger.Handler()})
	s.deploy = deployment.New(deployment.Config{Store: cfg.Store, Sealer: sealer, Resources: deployResources{s},
		Logger: cfg.Logger.With("subsystem", "deployments")})
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
	r.handle("POST", subPrefix+"/providers/microsoft.standbypool/register", s.registerProvider)
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
	r.handle("GET", "/providers/skiff.cluster/hosts", s.listHosts)
	r.handle("GET", "/providers/skiff.cluster/hosts/{host}", s.getHost)
	s.registerRoleRoutes()
	s.registerDeploymentRoutes()
	s.registerStorageRoutes()
	s.registerProfileRoutes()
	s.registerNGroupRoutes()
	s.registerStandbyPoolRoutes()
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
	case strings.HasPrefix(r.URL.Path, filesPrefix):
		s.serveFiles(w, r) // authorized by the account's Shared Key
		return "files"
	}
	if s.identity != nil && identity.Handles(r.URL.Path) {
		s.identity.ServeHTTP(w, r) // authenticates its own
		return "identity"
	}
	who, err := s.authenticate(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return "unauthorized"
	}
	r = r.WithContext(context.WithValue(r.Context(), principalKey{}, who))
	return s.route(w, r, who)
}

// route serves an authenticated request (its principal in its context):
// the route's match, api-version, authorization, handler and audit line.
// The deployment engine's requests enter here (inprocess.go).
func (s *Server) route(w *statusRecorder, r *http.Request, who *identity.Principal) string {
	log := s.log
	if inprocess(r.Context()) {
		// The engine keeps the refusal, secure values scrubbed, in the
		// deployment's operation: a 4xx of its request is not logged.
		log = s.inprocessLog
	}
	rt, p, pathOK := s.routes.match(r.Method, r.URL.Path)
	if rt == nil {
		if pathOK {
			writeError(w, r, log, errdefs.WithCode(errdefs.ErrInvalidArgument, "MethodNotAllowed",
				"The method %s is not allowed on %s.", r.Method, r.URL.Path))
			return "unmatched"
		}
		writeError(w, r, log, errdefs.WithCode(errdefs.ErrNotFound, "InvalidResourceType",
			"The resource path %s is not known to this server.", r.URL.Path))
		return "unmatched"
	}
	pattern := "/" + strings.Join(rt.segs, "/")
	if err := checkAPIVersion(pattern, r.URL.Query().Get("api-version")); err != nil {
		writeError(w, r, log, err)
		return pattern
	}
	ctx, err := s.authorize(r, pattern, p)
	if err == nil {
		err = rt.handler(w, r.WithContext(ctx), p)
	}
	if err != nil {
		writeError(w, r, log, err)
	}
	s.audit(r, pattern, who, w.code)
	return pattern
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
