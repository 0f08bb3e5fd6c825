// Package servercmd is `skiff server`: the API server, the store, the
// controller and the host runtime in one process, with embedded defaults.
package servercmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/agent"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/hostaddr"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/runtime/image"
	"github.com/skiff-sh/skiff/internal/runtime/network"
	"github.com/skiff-sh/skiff/internal/runtime/userns"
	"github.com/skiff-sh/skiff/internal/runtime/volume"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/server"
	"github.com/skiff-sh/skiff/internal/store"
)

// DefaultListen is where the server listens unless told otherwise.
const DefaultListen = "127.0.0.1:7700"

// Options of skiff server.
type Options struct {
	Listen, DataDir, PublicAddress, Location, Runtime, LogLevel string
	// StopGrace is the time between SIGTERM and SIGKILL on stop and delete.
	StopGrace time.Duration
	// Bridge and Subnet of the group network.
	Bridge, Subnet string
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
	f.StringVar(&o.Listen, "listen", DefaultListen, "address the HTTP API listens on")
	f.StringVar(&o.DataDir, "data-dir", "/var/lib/skiff", "where state, images, volumes and the admin token live")
	f.StringVar(&o.PublicAddress, "public-address", "", "host address published ports bind to (default: the host's primary address)")
	f.StringVar(&o.Location, "location", "local", "the location this server reports")
	f.StringVar(&o.Runtime, "runtime", "runc", "OCI runtime: runc or crun")
	f.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.Bridge, "bridge", "skiff0", "Linux bridge the groups are attached to")
	f.StringVar(&o.Subnet, "subnet", "10.201.0.0/16", "private range group IPs come from (never routed off the host)")
	f.StringArrayVar(&o.RegistryMirrors, "registry-mirror", nil, "REGISTRY=URL: try URL for REGISTRY's images before the registry itself (repeatable, in order; e.g. docker.io=http://127.0.0.1:5000)")
	f.StringVar(&o.RegistriesConfig, "registries-config", "", "registry mirrors, TLS and credentials file (default DATA-DIR/registries.yaml)")
	f.IntVar(&o.ImageGCHigh, "image-gc-high-threshold", 85, "disk usage percent of the data dir's filesystem at which unused images are removed (100: never)")
	f.IntVar(&o.ImageGCLow, "image-gc-low-threshold", 80, "disk usage percent image garbage collection frees down to")
	f.DurationVar(&o.ImageGCInterval, "image-gc-interval", 5*time.Minute, "how often disk usage is checked for image garbage collection")
	f.StringVar(&o.UsernsRemap, "userns-remap", "default", "user namespace of every group: default (Skiff's own subordinate ID range, added to /etc/subuid and /etc/subgid as \"skiff\"), a name from those files, UID:GID:SIZE, or none (container root is host root)")
	f.StringVar(&o.SealKeyFile, "seal-key-file", "", "key that seals secrets at rest: 32 bytes or 64 hex digits, mode 0600 (default DATA-DIR/seal.key, created on first start)")
	f.BoolVar(&o.AllowPrivileged, "allow-privileged", false, "accept securityContext.privileged and capabilities.add beyond the default set (inside its user namespace; with --userns-remap none such a container can take over the host)")
	f.BoolVar(&o.AllowCustomSeccomp, "allow-custom-seccomp", false, "accept a custom securityContext.seccompProfile instead of the default profile")
	o.MaxImageImportSize.Quantity = *resource.NewQuantity(server.DefaultMaxImageImportSize, resource.BinarySI)
	f.Var(&o.MaxImageImportSize, "max-image-import-size", "largest image archive `skiff image import` may send (e.g. 500Mi, 8Gi)")
	f.DurationVar(&o.StopGrace, "stop-grace", 10*time.Second, "time between SIGTERM and SIGKILL when containers are stopped or deleted")
	f.BoolVar(&o.AllowHostAccess, "allow-host-access", false, "let groups open connections to the host's addresses (the API too; never 127.0.0.0/8) and to networks the host routes to")
	f.Int64Var(&o.GroupPidsLimit, "group-pids-limit", runtime.DefaultGroupPidsLimit, "most processes all the containers of one group may have together (each container also has its own limit of 4096)")
	f.IntVar(&o.ExecSessionsPerGroup, "exec-sessions-per-group", server.DefaultExecSessionsPerGroup, "most exec sessions one group may have at once; one more is refused with 409 ExecSessionLimitReached")
	o.GitRepoSizeLimit.Quantity = *resource.NewQuantity(volume.DefaultGitMaxBytes, resource.BinarySI)
	f.Var(&o.GitRepoSizeLimit, "gitrepo-size-limit", "most disk one gitRepo volume's clone may take, .git included (e.g. 100Mi, 1Gi); a bigger repository fails its group")
	f.DurationVar(&o.GitRepoTimeout, "gitrepo-timeout", volume.DefaultGitTimeout, "longest one gitRepo clone may take; a slower one fails its group")
	f.StringVar(&o.PublishedPorts, "published-ports", "", "LOW-HIGH: the only ports groups may publish on the public address (default: any port no host process listens on)")
	return cmd
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
	if _, port, err := net.SplitHostPort(o.Listen); err == nil {
		if n, err := strconv.Atoi(port); err == nil && n > 0 {
			pol.ReservedPorts = []api.Port{{Protocol: api.ProtocolTCP, Port: int32(n)}}
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
	// Endpoint is the API's base URL, Token the admin token and
	// Subscription the default subscription.
	Endpoint, Token, Subscription string
	done                          chan error
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
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if o.PublicAddress == "" {
		o.PublicAddress = hostaddr.PrimaryAddress()
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, err
	}
	gcPolicy := image.GCPolicy{HighPercent: o.ImageGCHigh, LowPercent: o.ImageGCLow}
	if err := gcPolicy.Validate(); err != nil {
		return nil, err
	}
	o.fillDefaults()
	switch {
	case o.GroupPidsLimit <= 0:
		return nil, fmt.Errorf("--group-pids-limit must be positive, not %d", o.GroupPidsLimit)
	case o.ExecSessionsPerGroup <= 0:
		return nil, fmt.Errorf("--exec-sessions-per-group must be positive, not %d", o.ExecSessionsPerGroup)
	case o.GitRepoSizeLimit.Value() <= 0:
		return nil, fmt.Errorf("--gitrepo-size-limit must be positive, not %s", o.GitRepoSizeLimit.String())
	case o.GitRepoTimeout <= 0:
		return nil, fmt.Errorf("--gitrepo-timeout must be positive, not %s", o.GitRepoTimeout)
	}
	if o.RegistriesConfig == "" {
		o.RegistriesConfig = filepath.Join(o.DataDir, "registries.yaml")
	}
	regs, err := image.LoadRegistries(o.RegistriesConfig)
	if err != nil {
		return nil, err
	}
	for _, m := range o.RegistryMirrors {
		if err := regs.AddMirrorFlag(m); err != nil {
			return nil, fmt.Errorf("--registry-mirror: %w", err)
		}
	}
	sealer, err := loadSealKey(o)
	if err != nil {
		return nil, err
	}
	st, err := store.OpenBolt(filepath.Join(o.DataDir, "skiff.db"), store.BoltOptions{Sealer: sealer})
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { st.Close() })
	token, sub, err := server.EnsureIdentity(ctx, st, o.DataDir)
	if err != nil {
		return nil, err
	}
	if o.MaxImageImportSize.Value() <= 0 {
		return nil, fmt.Errorf("--max-image-import-size must be positive, not %s", o.MaxImageImportSize.String())
	}
	idmap, err := userns.Parse(o.UsernsRemap)
	if err != nil {
		return nil, fmt.Errorf("--userns-remap: %w", err)
	}
	netPolicy, err := networkPolicy(o)
	if err != nil {
		return nil, err
	}
	security := api.SecurityPolicy{AllowPrivileged: o.AllowPrivileged, AllowCustomSeccomp: o.AllowCustomSeccomp}
	var agp atomic.Pointer[agent.Agent]
	host, err := runtime.Open(ctx, runtime.HostOptions{
		NetworkPolicy: netPolicy,
		DataDir:       o.DataDir, PublicAddress: o.PublicAddress, OCIRuntime: o.Runtime, StopGrace: o.StopGrace,
		BridgeName: o.Bridge, Subnet: o.Subnet, Sealer: sealer, IDMap: idmap, Security: security,
		GroupPidsLimit: o.GroupPidsLimit, GitRepoMaxBytes: o.GitRepoSizeLimit.Value(), GitRepoTimeout: o.GitRepoTimeout,
		Logger: log, OnChange: func(id string) {
			if ag := agp.Load(); ag != nil {
				ag.OnRuntimeChange(id)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { host.Close() })
	if err := host.Images.SetRegistries(regs); err != nil {
		return nil, err
	}
	for reg, m := range regs.Mirrors {
		log.Info("registry mirrors", "registry", reg, "endpoints", m.Endpoints, "disableOrigin", m.DisableOrigin)
	}
	// The embedded mode: the control plane and this host's agent in one
	// process, meeting in the store (and the agent's streams in-process).
	// They stop before the store and the runtime close.
	ctx, cancel := context.WithCancel(ctx)
	closers = append(closers, cancel)
	ag := agent.New(agent.Config{Store: st, Host: host, Logger: log.With("component", "agent")})
	agp.Store(ag)
	if err := ag.Start(ctx); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	ctl := controller.New(controller.Config{Store: st, Host: ag.Name(), Logger: log.With("component", "controller")})
	if err := ctl.Start(ctx); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	srv := server.New(server.Config{Store: st, Host: ag, Token: token,
		Security: security, Location: o.Location, Logger: log.With("component", "server"),
		MaxImageImportSize: o.MaxImageImportSize.Value(), ExecSessionsPerGroup: o.ExecSessionsPerGroup})
	go ag.RunImageGC(ctx, gcPolicy, o.ImageGCInterval)
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, err
	}
	// No ReadTimeout or WriteTimeout for the whole request: uploads, log
	// streams and pulls take as long as they take. The router bounds how
	// long a body may take to arrive; websockets keep their own deadlines.
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	log.Info("skiff server ready", "listen", ln.Addr().String(), "subscription", sub,
		"token_file", filepath.Join(o.DataDir, "admin.token"), "public_address", o.PublicAddress, "location", o.Location, "userns", idmap.String())
	if !o.Quiet {
		fmt.Fprintf(os.Stderr, "skiff server listening on http://%s (subscription %s, token in %s)\n",
			ln.Addr(), sub, filepath.Join(o.DataDir, "admin.token"))
	}
	run := &Running{Endpoint: "http://" + ln.Addr().String(), Token: token, Subscription: sub, done: make(chan error, 1)}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
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
		run.done <- err
	}()
	return run, nil
}
