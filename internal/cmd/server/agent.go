package servercmd

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/internal/agentapi"
	"github.com/skiff-sh/skiff/internal/cluster"
	"github.com/skiff-sh/skiff/internal/pki"
	"github.com/skiff-sh/skiff/internal/runtime/image"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store/etcdstore"
)

// AgentOptions of skiff agent.
type AgentOptions struct {
	Options
	// Servers are the API servers' URLs, tried in turn to join.
	Servers       []string
	JoinTokenFile string
	// CAFile is the CA the servers' HTTPS is trusted with, beside the
	// system's roots (a server's DATA-DIR/ca.crt).
	CAFile string
}

// DefaultAgentListen is where an agent's API listens unless told
// otherwise.
const DefaultAgentListen = "127.0.0.1:7701"

// NewAgentCmd returns the `skiff agent` command.
func NewAgentCmd() *cobra.Command {
	o := &AgentOptions{}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a host agent that joins a cluster's servers and runs the groups they place on this host",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			a, err := StartAgent(ctx, *o)
			if err != nil {
				return err
			}
			return a.Wait()
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Servers, "server", nil, "the cluster's API server URLs, comma-separated (the agent joins through the first that answers)")
	f.StringVar(&o.JoinTokenFile, "join-token-file", "", "file holding the join token (a server's DATA-DIR/join.token)")
	f.StringVar(&o.CAFile, "ca-file", "", "CA certificate an https --server is trusted with, beside the system's (a server's DATA-DIR/ca.crt)")
	f.StringVar(&o.Listen, "listen", DefaultAgentListen, "address this agent's API (logs, exec, metrics, images for the servers) listens on")
	f.StringVar(&o.DataDir, "data-dir", "/var/lib/skiff-agent", "where this host's images, volumes and group state live")
	f.StringArrayVar(&o.RegistryMirrors, "registry-mirror", nil, "REGISTRY=URL: a mirror tried before the servers' registry configuration (repeatable)")
	addHostFlags(f, &o.Options)
	return cmd
}

// StartAgent joins the cluster, starts the host agent and its API, and
// returns once it serves; it runs until ctx ends.
func StartAgent(ctx context.Context, o AgentOptions) (_ *Running, err error) {
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
	quietGRPC()
	switch {
	case len(o.Servers) == 0:
		return nil, fmt.Errorf("--server is required: the URL of a cluster server (skiff server --store etcd)")
	case o.JoinTokenFile == "":
		return nil, fmt.Errorf("--join-token-file is required: a server's DATA-DIR/%s", joinTokenFile)
	}
	token, err := readToken(o.JoinTokenFile)
	if err != nil {
		return nil, fmt.Errorf("--join-token-file: %w", err)
	}
	name := o.Host.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, err
	}
	o.fillDefaults()
	var roots *x509.CertPool
	if o.CAFile != "" {
		if roots, err = pki.TrustedRoots(o.CAFile); err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
	}
	join, via, err := cluster.Join(ctx, o.Servers, token, cluster.JoinRequest{Name: name}, roots)
	if ua := (x509.UnknownAuthorityError{}); errors.As(err, &ua) {
		return nil, fmt.Errorf("%w (give the agent the servers' CA with --ca-file, a server's DATA-DIR/%s)", err, pki.CACertFile)
	}
	if err != nil {
		return nil, err
	}
	lost, err := time.ParseDuration(join.HostLostAfter)
	if err != nil {
		return nil, fmt.Errorf("join %s: host lost timeout %q: %w", via, join.HostLostAfter, err)
	}
	o.HostLostAfter = lost
	key, err := hex.DecodeString(join.SealKey)
	if err != nil {
		return nil, fmt.Errorf("join %s: seal key: %w", via, err)
	}
	sealer, err := seal.New(key, "(the cluster's, from the join)")
	if err != nil {
		return nil, err
	}
	var regs image.Registries
	if len(join.Registries) > 0 {
		if err := json.Unmarshal(join.Registries, &regs); err != nil {
			return nil, fmt.Errorf("join %s: registries: %w", via, err)
		}
	}
	for _, m := range o.RegistryMirrors {
		if err := regs.AddMirrorFlag(m); err != nil {
			return nil, fmt.Errorf("--registry-mirror: %w", err)
		}
	}
	st, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: join.EtcdEndpoints, Prefix: join.Prefix, Sealer: sealer, Logger: log.With("component", "store")})
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { st.Close() })
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { ln.Close() })
	endpoint := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(ctx)
	closers = append(closers, cancel)
	reg := o.hostRecord()
	reg.AgentURL = endpoint
	ag, gcPolicy, err := startAgent(ctx, o.Options, log, sealer, regs, st, name, reg, false, &closers)
	if err != nil {
		return nil, err
	}
	go ag.RunImageGC(ctx, gcPolicy, o.ImageGCInterval)
	h := agentapi.NewHandler(ag, agentapi.HandlerOptions{Token: join.AgentToken, TempDir: o.DataDir, MaxImportSize: o.MaxImageImportSize.Value(), Logger: log.With("component", "agentapi")})
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	log.Info("skiff agent ready", "host", name, "listen", ln.Addr().String(), "joined", via)
	fmt.Fprintf(os.Stderr, "skiff agent %s joined %s; its API listens on %s\n", name, via, endpoint)
	run := &Running{Endpoint: endpoint, done: make(chan error, 1)}
	serve(ctx, hs, []net.Listener{ln}, closers, run.done)
	return run, nil
}
