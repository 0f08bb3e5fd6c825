// Package servercmd is Skiff's two long-running processes: `skiff server`
// (the API server, the store, the controller and — unless --agent=false —
// an in-process host agent, with embedded defaults) and `skiff agent` (a
// host agent that joins a cluster's servers; agent.go).
//
// The embedded default is one process on bbolt. Cluster mode (--store
// etcd) keeps state in etcd: every server serves the API, one of them
// (elected) runs the controller and the scheduler, and host agents join
// with the token the server writes to DATA-DIR/join.token.
package servercmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/agent"
	"github.com/skiff-sh/skiff/internal/agentapi"
	"github.com/skiff-sh/skiff/internal/cluster"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/dnsserver"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostaddr"
	"github.com/skiff-sh/skiff/internal/pki"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/runtime/image"
	"github.com/skiff-sh/skiff/internal/runtime/network"
	"github.com/skiff-sh/skiff/internal/runtime/userns"
	"github.com/skiff-sh/skiff/internal/runtime/volume"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/server"
	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/store"
	"github.com/skiff-sh/skiff/internal/store/etcdstore"
)

// DefaultListen is where the server listens unless told otherwise.
const DefaultListen = "127.0.0.1:7700"

// DefaultDNSListen is where `skiff server` answers DNS for its zone.
const DefaultDNSListen = "127.0.0.1:7753"

// DefaultNetworkPool is --network-pool's default.
const DefaultNetworkPool = 4

// Options of skiff server.
type Options struct {
	// Listen is the plain HTTP API's address, on loopback only ("": no
	// plain HTTP, TLSListen only).
	Listen, DataDir, PublicAddress, Location, Runtime, LogLevel string
	// TLSListen is the HTTPS API's address ("": none).
	TLSListen string
	// TLSCertFile and TLSKeyFile are the operator's serving certificate
	// and key, both or neither; without them Skiff's CA (DataDir/ca.crt)
	// issues one for loopback, the host's names and TLSSANs.
	TLSCertFile, TLSKeyFile string
	TLSSANs                 []string
	// APIURL is the HTTPS URL clients reach the API at ("": the
	// --tls-listen address): the identity provider's issuer, authority and
	// token audience. The servers of a cluster behind one name share it.
	APIURL string
	// StopGrace is the time between SIGTERM and SIGKILL on stop and delete.
	StopGrace time.Duration
	// Bridge and Subnet of the group network.
	Bridge, Subnet string
	// NetworkPool is the number of network attachments kept prepared for
	// groups that publish no ports (network.Config.PoolSize).
	NetworkPool int
	// RegistryMirrors are "REGISTRY=URL" values merged into the registries
	// config file's mirrors.
	RegistryMirrors []string
	// RegistriesConfig is the registries.yaml (default DataDir/registries.yaml).
	RegistriesConfig string
	// GroupPidsLimit caps the processes of all of a group's containers.
	GroupPidsLimit int64
	// ExecSessionsPerGroup bounds a group's exec sessions at once.
	ExecSessionsPerGroup int
	// GitRepoSizeLimit and GitRepoTimeout bound each gitRepo clone.
	GitRepoSizeLimit resource.QuantityValue
	GitRepoTimeout   time.Duration
	// ImageGCHigh and ImageGCLow are the disk usage percentages that start
	// and stop image garbage collection; ImageGCInterval is how often usage
	// is checked.
	ImageGCHigh, ImageGCLow int
	ImageGCInterval         time.Duration
	// MaxImageImportSize bounds an imported image archive ("8Gi").
	MaxImageImportSize resource.QuantityValue
	// AllowHostAccess lets groups connect to the host's addresses (never
	// its loopback) and what it routes to.
	AllowHostAccess bool
	// PublishedPorts is the range of ports groups may publish ("" any).
	PublishedPorts string
	// DNSZone is the zone groups with a dnsNameLabel are named in, and
	// DNSListen the address (UDP and TCP) Skiff answers DNS for it on ("":
	// no DNS server).
	DNSZone, DNSListen string
	// SealKeyFile is the key secrets are sealed with at rest (default
	// DataDir/seal.key, created on first start).
	SealKeyFile string
	// AllowPrivileged and AllowCustomSeccomp are the operator's
	// securityContext policy (api.SecurityPolicy): off, privileged
	// containers, added capabilities and custom seccomp profiles are
	// refused.
	AllowPrivileged, AllowCustomSeccomp bool
	// Quiet leaves out the banner on stderr (an embedded server, as in
	// skiff run).
	Quiet bool
	// UsernsRemap is the host's user namespace mapping, as userns.Parse
	// reads it ("default", "none", a /etc/subuid name or UID:GID:SIZE).
	UsernsRemap string

	// Store is "bolt" (embedded, the default) or "etcd" (cluster mode, at
	// EtcdEndpoints under EtcdPrefix).
	Store         string
	EtcdEndpoints []string
	EtcdPrefix    string
	// NoAgent leaves the in-process host agent out (--agent=false): a
	// cluster server that runs no groups itself.
	NoAgent bool
	// HostLostAfter is how long a host may miss its heartbeat before its
	// groups move (cluster mode).
	HostLostAfter time.Duration
	// Host describes this process's host agent: its name (default
	// "local", or the machine's hostname in a cluster), what it offers,
	// its zone.
	Host HostFlags
}

// HostFlags describe a host agent's host.
type HostFlags struct {
	Name string
	// CPU and MemoryGB are what groups may request (0: the machine's).
	CPU, MemoryGB float64
	Zone          string
	// SharedShares declares the shares directory shared by every host.
	SharedShares bool
}

// NewCmd returns the `skiff server` command.
func NewCmd() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Skiff API server and host runtime (embedded defaults, nothing else to start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return Run(ctx, *o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Listen, "listen", DefaultListen, "loopback address the plain HTTP API listens on (\"\": none, HTTPS only; other addresses: --tls-listen)")
	f.StringVar(&o.TLSListen, "tls-listen", "", "address the API listens on over HTTPS (TLS 1.2+), e.g. 0.0.0.0:7443; the certificate comes from Skiff's CA (DATA-DIR/ca.crt) unless --tls-cert-file")
	f.StringVar(&o.TLSCertFile, "tls-cert-file", "", "the operator's serving certificate for --tls-listen (PEM, intermediates after it); no CA is made then")
	f.StringVar(&o.TLSKeyFile, "tls-key-file", "", "the key of --tls-cert-file (PEM)")
	f.StringVar(&o.APIURL, "api-url", "", "the https:// URL clients reach this API at, if not the --tls-listen address (a load balancer's, shared by a cluster's servers): the identity provider's authority and token audience")
	f.StringArrayVar(&o.TLSSANs, "tls-san", nil, "NAME or IP the certificate of Skiff's CA is also valid for, beside loopback, the hostname and --public-address (repeatable)")
	f.StringVar(&o.DataDir, "data-dir", "/var/lib/skiff", "where state, images, volumes and the admin token live")
	f.StringVar(&o.Location, "location", "local", "the location this server reports")
	f.StringArrayVar(&o.RegistryMirrors, "registry-mirror", nil, "REGISTRY=URL: try URL for REGISTRY's images before the registry itself (repeatable, in order; e.g. docker.io=http://127.0.0.1:5000)")
	f.StringVar(&o.RegistriesConfig, "registries-config", "", "registry mirrors, TLS and credentials file (default DATA-DIR/registries.yaml)")
	o.MaxImageImportSize.Quantity = *resource.NewQuantity(server.DefaultMaxImageImportSize, resource.BinarySI)
	f.Var(&o.MaxImageImportSize, "max-image-import-size", "largest image archive `skiff image import` may send (e.g. 500Mi, 8Gi)")
	f.IntVar(&o.ExecSessionsPerGroup, "exec-sessions-per-group", server.DefaultExecSessionsPerGroup, "most exec sessions one group may have at once; one more is refused with 409 ExecSessionLimitReached")
	f.StringVar(&o.Store, "store", "bolt", "where state lives: bolt (embedded, DATA-DIR/skiff.db) or etcd (cluster mode, --etcd-endpoints)")
	f.StringSliceVar(&o.EtcdEndpoints, "etcd-endpoints", nil, "etcd client URLs, comma-separated (--store etcd)")
	f.StringVar(&o.EtcdPrefix, "etcd-prefix", "/skiff/", "key prefix of the cluster's state in etcd")
	agentOn := f.Bool("agent", true, "run a host agent in this process (--agent=false: a cluster server that runs no groups itself)")
	f.DurationVar(&o.HostLostAfter, "host-lost-after", 5*time.Second, "cluster mode: how long a host may miss its heartbeat before it is lost and its groups move")
	cmd.PreRun = func(*cobra.Command, []string) { o.NoAgent = !*agentOn }
	addHostFlags(f, o)
	return cmd
}

// addHostFlags adds the flags of a host agent's runtime: skiff server's
// in-process agent and skiff agent share them.
func addHostFlags(f *pflag.FlagSet, o *Options) {
	f.StringVar(&o.Host.Name, "name", "", "this host's name in the cluster (default: local; in cluster mode the machine's hostname)")
	f.Float64Var(&o.Host.CPU, "cpu", 0, "CPUs groups may request on this host (default: the machine's)")
	f.Float64Var(&o.Host.MemoryGB, "memory", 0, "memory in GB groups may request on this host (default: the machine's)")
	f.StringVar(&o.Host.Zone, "zone", "", "availability zone of this host, matched to a group's zones")
	f.BoolVar(&o.Host.SharedShares, "shared-shares", false, "the shares directory (DATA-DIR/shares) is shared by every host (an NFS mount): groups mounting a persistent share may run on any host")
	f.StringVar(&o.PublicAddress, "public-address", "", "host address published ports bind to (default: the host's primary address)")
	f.StringVar(&o.Runtime, "runtime", "runc", "OCI runtime: runc or crun")
	f.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.Bridge, "bridge", "skiff0", "Linux bridge the groups are attached to")
	f.StringVar(&o.Subnet, "subnet", "10.201.0.0/16", "private range group IPs come from (never routed off the host)")
	f.IntVar(&o.NetworkPool, "network-pool", DefaultNetworkPool, "network namespaces kept attached and addressed ahead, for groups that publish no ports to take at create (0: none)")
	f.IntVar(&o.ImageGCHigh, "image-gc-high-threshold", 85, "disk usage percent of the data dir's filesystem at which unused images are removed (100: never)")
	f.IntVar(&o.ImageGCLow, "image-gc-low-threshold", 80, "disk usage percent image garbage collection frees down to")
	f.DurationVar(&o.ImageGCInterval, "image-gc-interval", 5*time.Minute, "how often disk usage is checked for image garbage collection")
	f.StringVar(&o.UsernsRemap, "userns-remap", "default", "user namespace of every group: default (Skiff's own subordinate ID range, added to /etc/subuid and /etc/subgid as \"skiff\"), a name from those files, UID:GID:SIZE, or none (container root is host root)")
	f.StringVar(&o.SealKeyFile, "seal-key-file", "", "key that seals secrets at rest: 32 bytes or 64 hex digits, mode 0600 (default DATA-DIR/seal.key, created on first start)")
	f.BoolVar(&o.AllowPrivileged, "allow-privileged", false, "accept securityContext.privileged and capabilities.add beyond the default set (inside its user namespace; with --userns-remap none such a container can take over the host)")
	f.BoolVar(&o.AllowCustomSeccomp, "allow-custom-seccomp", false, "accept a custom securityContext.seccompProfile instead of the default profile")
	f.DurationVar(&o.StopGrace, "stop-grace", 10*time.Second, "time between SIGTERM and SIGKILL when containers are stopped or deleted")
	f.BoolVar(&o.AllowHostAccess, "allow-host-access", false, "let groups open connections to the host's addresses (the API too; never 127.0.0.0/8) and to networks the host routes to")
	f.Int64Var(&o.GroupPidsLimit, "group-pids-limit", runtime.DefaultGroupPidsLimit, "most processes all the containers of one group may have together (each container also has its own limit of 4096)")
	o.GitRepoSizeLimit.Quantity = *resource.NewQuantity(volume.DefaultGitMaxBytes, resource.BinarySI)
	f.Var(&o.GitRepoSizeLimit, "gitrepo-size-limit", "most disk one gitRepo volume's clone may take, .git included (e.g. 100Mi, 1Gi); a bigger repository fails its group")
	f.DurationVar(&o.GitRepoTimeout, "gitrepo-timeout", volume.DefaultGitTimeout, "longest one gitRepo clone may take; a slower one fails its group")
	f.StringVar(&o.DNSZone, "dns-zone", api.DefaultDNSZone, "DNS zone of the names groups with a dnsNameLabel get (ipAddress.fqdn: LABEL.LOCATION.ZONE)")
	f.StringVar(&o.DNSListen, "dns-listen", DefaultDNSListen, "address (UDP and TCP) Skiff answers DNS for --dns-zone on, e.g. dig @127.0.0.1 -p 7753 LABEL.local.skiff.local (\"\": none)")
	f.StringVar(&o.PublishedPorts, "published-ports", "", "LOW-HIGH: the only ports groups may publish on the public address (default: any port no host process listens on)")
}

// loadSealKey loads the operator's --seal-key-file, or the data dir's key
// (created on first start).
func loadSealKey(o Options) (*seal.Sealer, error) {
	if o.SealKeyFile != "" {
		s, err := seal.LoadKey(o.SealKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--seal-key-file: %w", err)
		}
		return s, nil
	}
	return seal.LoadOrCreateKey(filepath.Join(o.DataDir, seal.KeyFile))
}

// networkPolicy reads the network flags; the API's own port is never
// published.
func networkPolicy(o Options) (network.Policy, error) {
	pr, err := network.ParsePortRange(o.PublishedPorts)
	if err != nil {
		return network.Policy{}, fmt.Errorf("--published-ports: %w", err)
	}
	pol := network.Policy{AllowHostAccess: o.AllowHostAccess, PublishedPorts: pr}
	for _, addr := range []string{o.Listen, o.TLSListen} {
		if _, port, err := net.SplitHostPort(addr); err == nil {
			if n, err := strconv.Atoi(port); err == nil && n > 0 {
				pol.ReservedPorts = append(pol.ReservedPorts, api.Port{Protocol: api.ProtocolTCP, Port: int32(n)})
			}
		}
	}
	return pol, nil
}

// fillDefaults gives zero Options fields (a caller of Run that is not the
// command line, such as a benchmark) the flags' defaults.
func (o *Options) fillDefaults() {
	if o.GroupPidsLimit == 0 {
		o.GroupPidsLimit = runtime.DefaultGroupPidsLimit
	}
	if o.ExecSessionsPerGroup == 0 {
		o.ExecSessionsPerGroup = server.DefaultExecSessionsPerGroup
	}
	if o.GitRepoSizeLimit.IsZero() {
		o.GitRepoSizeLimit.Quantity = *resource.NewQuantity(volume.DefaultGitMaxBytes, resource.BinarySI)
	}
	if o.GitRepoTimeout == 0 {
		o.GitRepoTimeout = volume.DefaultGitTimeout
	}
	if o.HostLostAfter == 0 {
		o.HostLostAfter = 5 * time.Second
	}
	if o.Store == "" {
		o.Store = "bolt"
	}
	if o.EtcdPrefix == "" {
		o.EtcdPrefix = "/skiff/"
	}
	if o.MaxImageImportSize.IsZero() {
		o.MaxImageImportSize.Quantity = *resource.NewQuantity(server.DefaultMaxImageImportSize, resource.BinarySI)
	}
}

// Run runs the server until ctx ends. Containers keep running after it
// returns; the next start re-attaches to them.
func Run(ctx context.Context, o Options) error {
	s, err := Start(ctx, o)
	if err != nil {
		return err
	}
	return s.Wait()
}

// Running is a started server.
type Running struct {
	// Endpoint is the API's base URL (plain HTTP on loopback, or HTTPS
	// when plain HTTP is off), Token the admin token and Subscription the
	// default subscription.
	Endpoint, Token, Subscription string
	// TLSEndpoint is the HTTPS base URL ("" without --tls-listen), CAFile
	// the certificate of the CA that clients trust it with ("" with an
	// operator's certificate).
	TLSEndpoint, CAFile string
	done                chan error
}

// Wait waits until the server stopped (its ctx ended) and returns why.
func (r *Running) Wait() error { return <-r.done }

// Start starts the server and returns once it listens; it runs until ctx
// ends.
func Start(ctx context.Context, o Options) (_ *Running, err error) {
	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()
	log, err := newLogger(o.LogLevel)
	if err != nil {
		return nil, err
	}
	clustered := o.Store == "etcd"
	if clustered {
		quietGRPC()
	}
	switch {
	case o.Store != "bolt" && o.Store != "etcd" && o.Store != "":
		return nil, fmt.Errorf("--store must be bolt or etcd, not %q", o.Store)
	case clustered && len(o.EtcdEndpoints) == 0:
		return nil, fmt.Errorf("--store etcd needs --etcd-endpoints")
	case !clustered && o.NoAgent:
		return nil, fmt.Errorf("--agent=false needs --store etcd: the embedded mode's groups run in its own agent")
	case o.HostLostAfter < time.Second && clustered:
		return nil, fmt.Errorf("--host-lost-after must be at least 1s, not %s", o.HostLostAfter)
	}
	if err := checkListen(o); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, err
	}
	o.fillDefaults()
	if o.MaxImageImportSize.Value() <= 0 {
		return nil, fmt.Errorf("--max-image-import-size must be positive, not %s", o.MaxImageImportSize.String())
	}
	if o.ExecSessionsPerGroup <= 0 {
		return nil, fmt.Errorf("--exec-sessions-per-group must be positive, not %d", o.ExecSessionsPerGroup)
	}
	regs, err := loadRegistries(o)
	if err != nil {
		return nil, err
	}
	sealer, err := loadSealKey(o)
	if err != nil {
		return nil, err
	}
	var st store.Store
	if clustered {
		st, err = etcdstore.Open(ctx, etcdstore.Options{Endpoints: o.EtcdEndpoints, Prefix: o.EtcdPrefix, Sealer: sealer, Logger: log.With("component", "store")})
		if errdefs.Is(err, errdefs.ErrUnauthorized) {
			return nil, fmt.Errorf("%w (every server of a cluster opens its secrets with the same key: give this one the first server's DATA-DIR/seal.key with --seal-key-file)", err)
		}
	} else {
		st, err = store.OpenBolt(filepath.Join(o.DataDir, "skiff.db"), store.BoltOptions{Sealer: sealer})
	}
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { st.Close() })
	var secrets clusterSecrets
	if clustered {
		if secrets, err = ensureClusterSecrets(ctx, st, sealer, o.DataDir); err != nil {
			return nil, err
		}
	}
	token, sub, err := server.EnsureIdentity(ctx, st, o.DataDir)
	if err != nil {
		return nil, err
	}
	security := api.SecurityPolicy{AllowPrivileged: o.AllowPrivileged, AllowCustomSeccomp: o.AllowCustomSeccomp}
	tl, err := setupTLS(ctx, o, st, sealer, log)
	if err != nil {
		return nil, err
	}
	lns, err := listenAPI(o, tl)
	if err != nil {
		return nil, err
	}
	closers = append(closers, lns.close)
	ln, endpoint := lns.primary(), lns.endpoint

	// The control plane and (unless --agent=false) this host's agent in
	// one process, meeting in the store; the agent's streams are
	// in-process, and in a cluster also served to the other servers under
	// /agent/. They stop before the store and the runtime close.
	ctx, cancel := context.WithCancel(ctx)
	closers = append(closers, cancel)
	var ag *agent.Agent
	var gcPolicy image.GCPolicy
	if !o.NoAgent {
		name := o.Host.Name
		if name == "" {
			name = agent.DefaultName
			if clustered {
				name, _ = os.Hostname()
			}
		}
		reg := o.hostRecord()
		if clustered {
			reg.AgentURL = lns.agentURL()
		}
		ag, gcPolicy, err = startAgent(ctx, o, log, sealer, regs, st, name, reg, !clustered, &closers)
		if err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	srvCfg := server.Config{Store: st, Token: token,
		Security: security, Location: o.Location, Logger: log.With("component", "server"),
		MaxImageImportSize: o.MaxImageImportSize.Value(), ExecSessionsPerGroup: o.ExecSessionsPerGroup}
	if ag != nil {
		srvCfg.Host = ag
		go ag.RunImageGC(ctx, gcPolicy, o.ImageGCInterval)
	}
	if clustered {
		srvCfg.Hosts = cluster.NewDirectory(st, secrets.agent, agentHTTPClient(tl))
		regJSON, err := json.Marshal(regs)
		if err != nil {
			return nil, err
		}
		key, err := sealKeyHex(o)
		if err != nil {
			return nil, err
		}
		mux.Handle(cluster.JoinPath, cluster.JoinHandler(secrets.join, func(req cluster.JoinRequest) (*cluster.JoinResponse, error) {
			log.Info("host joining", "host", req.Name)
			return &cluster.JoinResponse{EtcdEndpoints: o.EtcdEndpoints, Prefix: o.EtcdPrefix, SealKey: key, AgentToken: secrets.agent,
				HostLostAfter: o.HostLostAfter.String(), Registries: regJSON}, nil
		}))
		if ag != nil {
			mux.Handle(agentPrefix+"/", http.StripPrefix(agentPrefix, agentapi.NewHandler(ag, agentapi.HandlerOptions{Token: secrets.agent, TempDir: o.DataDir, MaxImportSize: o.MaxImageImportSize.Value(), Logger: log.With("component", "agentapi")})))
		}
	} else {
		ctl := controller.New(controller.Config{Store: st, Host: ag.Name(), Logger: log.With("component", "controller")})
		if err := ctl.Start(ctx); err != nil {
			return nil, fmt.Errorf("controller: %w", err)
		}
	}
	// Audit lines are written whatever --log-level says (but not by the
	// quiet server of skiff run, whose terminal is the user's).
	if !o.Quiet {
		srvCfg.AuditLogger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if srvCfg.Identity, srvCfg.Authz, err = startIdentity(ctx, o, st, sealer, lns.tlsEndpoint, log); err != nil {
		return nil, err
	}
	srvCfg.Sealer = sealer
	srvCfg.DNSZone = o.DNSZone
	srv := server.New(srvCfg)
	mux.Handle("/", srv)
	if o.DNSListen != "" {
		ds, err := dnsserver.Start(o.DNSListen, srv.DNSZone(), srv, log.With("component", "dns"))
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { _ = ds.Close() })
		log.Info("serving DNS", "listen", ds.Addr(), "zone", srv.DNSZone())
	}
	// Template deployments run where the controller runs: here in the
	// embedded mode, under the leader election in a cluster, so that one
	// server drives each deployment.
	if clustered {
		cli, err := etcdClient(o.EtcdEndpoints)
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { cli.Close() })
		id := ln.Addr().String()
		go cluster.Lead(ctx, cli, strings.TrimSuffix(o.EtcdPrefix, "/")+"/leader", id, o.HostLostAfter, log.With("component", "election"), func(lctx context.Context) error {
			ctl := controller.New(controller.Config{Store: st, Logger: log.With("component", "controller")})
			if err := ctl.Start(lctx); err != nil {
				return err
			}
			go runDeployments(lctx, srv, log)
			go srv.RunReconcilers(lctx)
			return nil
		})
	} else {
		go runDeployments(ctx, srv, log)
		go srv.RunReconcilers(ctx)
	}
	// No ReadTimeout or WriteTimeout for the whole request: uploads, log
	// streams and pulls take as long as they take. The router bounds how
	// long a body may take to arrive; websockets keep their own deadlines.
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	log.Info("skiff server ready", "listen", ln.Addr().String(), "subscription", sub, "store", o.Store,
		"token_file", filepath.Join(o.DataDir, "admin.token"), "location", o.Location)
	run := &Running{Endpoint: endpoint, TLSEndpoint: lns.tlsEndpoint, Token: token, Subscription: sub, done: make(chan error, 1)}
	if tl != nil {
		run.CAFile = tl.caFile
		log.Info("serving HTTPS", "listen", lns.secure.Addr().String(), "ca_file", tl.caFile, "names", pki.Of(tl.leaf).String())
	}
	if !o.Quiet {
		fmt.Fprintf(os.Stderr, "skiff server listening on %s (subscription %s, token in %s)\n",
			endpoint, sub, filepath.Join(o.DataDir, "admin.token"))
		if tl != nil {
			fmt.Fprintln(os.Stderr, tlsBanner(lns, tl, o))
		}
		if clustered {
			fmt.Fprintf(os.Stderr, "cluster mode on etcd %s: agents join with %s --join-token-file %s\n",
				strings.Join(o.EtcdEndpoints, ","), lns.joinFlags(tl), filepath.Join(o.DataDir, joinTokenFile))
		}
	}
	serve(ctx, hs, lns.all(), closers, run.done)
	return run, nil
}

// agentPrefix is where a cluster server serves its in-process agent's
// API to the other servers.
const agentPrefix = "/agent"

// serve serves hs on the listeners until ctx ends (or one fails), then
// shuts it down, runs the closers in reverse and reports on done.
func serve(ctx context.Context, hs *http.Server, lns []net.Listener, closers []func(), done chan<- error) {
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errc <- hs.Serve(ln) }()
	}
	go func() {
		var err error
		select {
		case err = <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
		case <-ctx.Done():
		}
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := hs.Shutdown(shutdown); err == nil {
			err = serr
		}
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		done <- err
	}()
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// loadRegistries reads the registries config and the --registry-mirror
// flags.
func loadRegistries(o Options) (image.Registries, error) {
	path := o.RegistriesConfig
	if path == "" {
		path = filepath.Join(o.DataDir, "registries.yaml")
	}
	regs, err := image.LoadRegistries(path)
	if err != nil {
		return regs, err
	}
	for _, m := range o.RegistryMirrors {
		if err := regs.AddMirrorFlag(m); err != nil {
			return regs, fmt.Errorf("--registry-mirror: %w", err)
		}
	}
	return regs, nil
}

// hostRecord is the host's record as its flags describe it.
func (o Options) hostRecord() store.Host {
	h := store.Host{OSType: "Linux", Zone: o.Host.Zone, SharedShares: o.Host.SharedShares, PublicAddress: o.PublicAddress}
	h.Capacity = agent.Machine()
	h.Allocatable = h.Capacity
	if o.Host.CPU > 0 {
		h.Allocatable.CPU = o.Host.CPU
	}
	if o.Host.MemoryGB > 0 {
		h.Allocatable.MemoryGB = o.Host.MemoryGB
	}
	return h
}

// startAgent opens the host runtime and starts a host agent on it.
func startAgent(ctx context.Context, o Options, log *slog.Logger, sealer *seal.Sealer, regs image.Registries, st store.Store,
	name string, reg store.Host, keepUnplaced bool, closers *[]func()) (*agent.Agent, image.GCPolicy, error) {
	gcPolicy := image.GCPolicy{HighPercent: o.ImageGCHigh, LowPercent: o.ImageGCLow}
	if err := gcPolicy.Validate(); err != nil {
		return nil, gcPolicy, err
	}
	switch {
	case o.NetworkPool < 0 || o.NetworkPool > 256:
		return nil, gcPolicy, fmt.Errorf("--network-pool must be between 0 and 256, not %d", o.NetworkPool)
	case o.GroupPidsLimit <= 0:
		return nil, gcPolicy, fmt.Errorf("--group-pids-limit must be positive, not %d", o.GroupPidsLimit)
	case o.GitRepoSizeLimit.Value() <= 0:
		return nil, gcPolicy, fmt.Errorf("--gitrepo-size-limit must be positive, not %s", o.GitRepoSizeLimit.String())
	case o.GitRepoTimeout <= 0:
		return nil, gcPolicy, fmt.Errorf("--gitrepo-timeout must be positive, not %s", o.GitRepoTimeout)
	case o.Host.CPU < 0 || o.Host.MemoryGB < 0:
		return nil, gcPolicy, fmt.Errorf("--cpu and --memory must not be negative")
	}
	if o.PublicAddress == "" {
		o.PublicAddress = hostaddr.PrimaryAddress()
	}
	if reg.PublicAddress == "" {
		reg.PublicAddress = o.PublicAddress
	}
	idmap, err := userns.Parse(o.UsernsRemap)
	if err != nil {
		return nil, gcPolicy, fmt.Errorf("--userns-remap: %w", err)
	}
	netPolicy, err := networkPolicy(o)
	if err != nil {
		return nil, gcPolicy, err
	}
	security := api.SecurityPolicy{AllowPrivileged: o.AllowPrivileged, AllowCustomSeccomp: o.AllowCustomSeccomp}
	var agp atomic.Pointer[agent.Agent]
	hopts := runtime.HostOptions{
		NetworkPolicy: netPolicy,
		DataDir:       o.DataDir, PublicAddress: o.PublicAddress, OCIRuntime: o.Runtime, StopGrace: o.StopGrace,
		BridgeName: o.Bridge, Subnet: o.Subnet, NetworkPool: o.NetworkPool, Sealer: sealer, IDMap: idmap, Security: security,
		GroupPidsLimit: o.GroupPidsLimit, GitRepoMaxBytes: o.GitRepoSizeLimit.Value(), GitRepoTimeout: o.GitRepoTimeout,
		Logger: log, OnChange: func(id string) {
			if ag := agp.Load(); ag != nil {
				ag.OnRuntimeChange(id)
			}
		},
	}
	if !keepUnplaced {
		// A cluster's hosts may share a machine (tests, demos): each
		// agent's network (its CNI network and nftables tables) and
		// cgroups are named after its bridge, which is its own.
		hopts.NetworkName, hopts.CgroupRoot = o.Bridge, "/skiff-"+o.Bridge
	}
	host, err := runtime.Open(ctx, hopts)
	if err != nil {
		return nil, gcPolicy, err
	}
	*closers = append(*closers, func() { host.Close() })
	if err := host.Images.SetRegistries(regs); err != nil {
		return nil, gcPolicy, err
	}
	for r, m := range regs.Mirrors {
		log.Info("registry mirrors", "registry", r, "endpoints", m.Endpoints, "disableOrigin", m.DisableOrigin)
	}
	// azureFile volumes are checked against the storage accounts (the
	// keys are sealed with the store's seal key).
	shares, err := storage.New(storage.Config{Store: st, Sealer: sealer})
	if err != nil {
		return nil, gcPolicy, err
	}
	ag := agent.New(agent.Config{Name: name, Store: st, Host: host, Register: &reg, HeartbeatTTL: o.HostLostAfter, KeepUnplaced: keepUnplaced,
		Storage: shares, Logger: log.With("component", "agent")})
	agp.Store(ag)
	if err := ag.Start(ctx); err != nil {
		return nil, gcPolicy, fmt.Errorf("agent: %w", err)
	}
	log.Info("host agent running", "host", name, "public_address", o.PublicAddress, "userns", idmap.String(),
		"cpu", reg.Allocatable.CPU, "memoryInGB", reg.Allocatable.MemoryGB)
	return ag, gcPolicy, nil
}

// runDeployments drives the server's template deployments until ctx ends
// (a failed start, such as a store that is down, is retried).
func runDeployments(ctx context.Context, srv *server.Server, log *slog.Logger) {
	for ctx.Err() == nil {
		if err := srv.Deployments().Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("template deployments stopped; starting again", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}
