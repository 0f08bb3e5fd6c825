// Package virtualnodecmd is `skiff virtual-node`: it wires the
// virtual-kubelet provider (internal/virtualnode) to a Kubernetes cluster
// and to a Skiff server's HTTP API, with the kubelet API's serving
// certificate, and prints the manifests that deploy it.
package virtualnodecmd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostaddr"
	"github.com/skiff-sh/skiff/internal/virtualnode"
)

// Environment variables read as flag defaults (the original connector's
// names where they map).
const (
	EnvResourceGroup = "ACI_RESOURCE_GROUP"
	EnvRegion        = "ACI_REGION"
	EnvQuotaCPU      = "ACI_QUOTA_CPU"
	EnvQuotaMemory   = "ACI_QUOTA_MEMORY"
	EnvQuotaPods     = "ACI_QUOTA_POD"
	EnvNodeIP        = "VKUBELET_POD_IP"
	EnvKubeletPort   = "KUBELET_PORT"
	EnvCertFile      = "APISERVER_CERT_LOCATION"
	EnvKeyFile       = "APISERVER_KEY_LOCATION"
	EnvClientCAFile  = "APISERVER_CA_CERT_LOCATION"
	EnvNodeName      = "SKIFF_NODE_NAME"
	// The service principal of the seeds' connector: when
	// AZURE_CLIENT_ID is set the node signs in with it (the secret in
	// AZURE_CLIENT_KEY, else AZURE_CLIENT_SECRET) instead of SKIFF_TOKEN.
	EnvClientID       = "AZURE_CLIENT_ID"
	EnvClientKey      = "AZURE_CLIENT_KEY"
	EnvClientSecret   = "AZURE_CLIENT_SECRET"
	EnvTenantID       = "AZURE_TENANT_ID"
	EnvSubscriptionID = "AZURE_SUBSCRIPTION_ID"
)

// principalFromEnv sets f's credentials to the service principal of the
// AZURE_* variables, if AZURE_CLIENT_ID is set, and its subscription to
// AZURE_SUBSCRIPTION_ID when no other is given.
func principalFromEnv(f *cmdutil.Factory) error {
	id := f.Getenv(EnvClientID)
	if id == "" {
		return nil
	}
	secret := f.Getenv(EnvClientKey)
	if secret == "" {
		secret = f.Getenv(EnvClientSecret)
	}
	if secret == "" {
		return cmdutil.FlagErrorf("$%s is set but neither $%s nor $%s holds its secret", EnvClientID, EnvClientKey, EnvClientSecret)
	}
	f.Credentials = &client.ServicePrincipal{AppID: id, Secret: secret, Tenant: f.Getenv(EnvTenantID)}
	if f.Subscription == "" && f.Getenv(cmdutil.EnvSubscription) == "" {
		f.Subscription = f.Getenv(EnvSubscriptionID)
	}
	return nil
}

// Options of skiff virtual-node.
type Options struct {
	Kubeconfig    string
	ResourceGroup string
	Region        string
	NodeName      string
	OS            string
	CPU, Memory   string
	Pods          string
	Taint         string
	ClusterDNS    []string
	ClusterDomain string
	NodeIP        string
	KubeletPort   int
	CertFile      string
	KeyFile       string
	ClientCAFile  string
	ServingCert   string // files, csr or self-signed
	AnonymousAuth bool
	Workers       int
	KubeQPS       float32
	KubeBurst     int
	EventQPS      float32
	EventBurst    int
	LogLevel      string
	SyncInterval  time.Duration
}

// NewCmd returns the `skiff virtual-node` command.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	o := &Options{}
	env := func(name, def string) string {
		if v := f.Getenv(name); v != "" {
			return v
		}
		return def
	}
	port, _ := strconv.Atoi(env(EnvKubeletPort, "10250"))
	cmd := &cobra.Command{
		Use:   "virtual-node",
		Short: "Register a Kubernetes virtual node whose pods run as Skiff container groups",
		Long: `Register a virtual node in a Kubernetes cluster and run the pods scheduled to it as
container groups of a Skiff server, through the Skiff HTTP API.

Kubernetes access: --kubeconfig (default $KUBECONFIG), else the in-cluster config.
Skiff access: --endpoint/$SKIFF_ENDPOINT, $SKIFF_CA_FILE, --subscription/$SKIFF_SUBSCRIPTION (else
$AZURE_SUBSCRIPTION_ID), and a service principal: $AZURE_CLIENT_ID, $AZURE_CLIENT_KEY (or
$AZURE_CLIENT_SECRET), $AZURE_TENANT_ID; without one, $SKIFF_TOKEN.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return Run(ctx, f, *o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Endpoint, "endpoint", "", "URL of the Skiff server (default $"+cmdutil.EnvEndpoint+")")
	fl.StringVar(&f.Subscription, "subscription", "", "Skiff subscription (default $"+cmdutil.EnvSubscription+" or the server's first)")
	fl.StringVar(&o.Kubeconfig, "kubeconfig", env("KUBECONFIG", ""), "kubeconfig file (default $KUBECONFIG, else in-cluster config)")
	fl.StringVar(&o.ResourceGroup, "resource-group", env(EnvResourceGroup, "skiff-virtual-node"), "resource group of the pods' container groups ($"+EnvResourceGroup+"); created if missing")
	fl.StringVar(&o.Region, "region", env(EnvRegion, "local"), "location of the container groups ($"+EnvRegion+")")
	fl.StringVar(&o.NodeName, "node-name", env(EnvNodeName, virtualnode.DefaultNodeName), "name of the Kubernetes node")
	fl.StringVar(&o.OS, "os", "Linux", "operating system of the node: Linux or Windows")
	fl.StringVar(&o.CPU, "cpu", env(EnvQuotaCPU, "10000"), "cpu capacity and allocatable ($"+EnvQuotaCPU+")")
	fl.StringVar(&o.Memory, "memory", env(EnvQuotaMemory, "4Ti"), "memory capacity and allocatable ($"+EnvQuotaMemory+")")
	fl.StringVar(&o.Pods, "pods", env(EnvQuotaPods, "5000"), "pod capacity and allocatable ($"+EnvQuotaPods+")")
	fl.StringSliceVar(&o.ClusterDNS, "cluster-dns", nil, "cluster DNS server addresses for ClusterFirst pods, as the kubelet's (e.g. 10.96.0.10); the Skiff host must reach them")
	fl.StringVar(&o.ClusterDomain, "cluster-domain", "cluster.local", "cluster domain for the search path of ClusterFirst pods")
	fl.StringVar(&o.Taint, "taint", virtualnode.DefaultTaint, "taint of the node, key[=value]:Effect; empty for none (e.g. azure.com/aci:NoSchedule)")
	fl.StringVar(&o.NodeIP, "node-ip", env(EnvNodeIP, ""), "node InternalIP the API server reaches the kubelet API on ($"+EnvNodeIP+"; default the host's primary address)")
	fl.IntVar(&o.KubeletPort, "kubelet-port", port, "port of the kubelet API ($"+EnvKubeletPort+")")
	fl.StringVar(&o.CertFile, "tls-cert-file", env(EnvCertFile, ""), "serving certificate of the kubelet API ($"+EnvCertFile+")")
	fl.StringVar(&o.KeyFile, "tls-key-file", env(EnvKeyFile, ""), "its key ($"+EnvKeyFile+")")
	fl.StringVar(&o.ClientCAFile, "client-ca-file", env(EnvClientCAFile, ""), "CA of the client certificates the API server presents ($"+EnvClientCAFile+")")
	fl.StringVar(&o.ServingCert, "serving-cert", "", "where the serving certificate comes from: files, csr (signed through the cluster's CSR API) or self-signed (default: files when given, else csr)")
	fl.BoolVar(&o.AnonymousAuth, "anonymous-auth", false, "serve the kubelet API to unauthenticated clients (only for tests)")
	fl.IntVar(&o.Workers, "pod-sync-workers", 10, "pods created or deleted in parallel")
	// client-go's own defaults (5/10) throttle pod status updates and
	// events to a few pods per second; these are the kubelet's.
	fl.Float32Var(&o.KubeQPS, "kube-api-qps", 50, "queries per second to the Kubernetes API server")
	fl.IntVar(&o.KubeBurst, "kube-api-burst", 100, "burst of queries to the Kubernetes API server")
	// Events have a client and a limit of their own, as the kubelet's do
	// (--event-qps): a rollout's events must not hold back its pods'
	// status updates.
	fl.Float32Var(&o.EventQPS, "event-qps", 50, "events per second sent to the Kubernetes API server, beside --kube-api-qps")
	fl.IntVar(&o.EventBurst, "event-burst", 100, "burst of events sent to the Kubernetes API server")
	fl.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	fl.DurationVar(&o.SyncInterval, "sync-interval", 2*time.Second, "how often pod states are read from Skiff")
	cmd.AddCommand(newManifestCmd(f))
	return cmd
}

// ParseTaint parses key[=value]:Effect.
func ParseTaint(s string) (*corev1.Taint, error) {
	if s == "" {
		return nil, nil
	}
	kv, effect, ok := strings.Cut(s, ":")
	if !ok {
		return nil, cmdutil.FlagErrorf("taint %q: want key[=value]:Effect", s)
	}
	k, v, _ := strings.Cut(kv, "=")
	t := &corev1.Taint{Key: k, Value: v, Effect: corev1.TaintEffect(effect)}
	switch t.Effect {
	case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		return nil, cmdutil.FlagErrorf("taint %q: effect must be NoSchedule, PreferNoSchedule or NoExecute", s)
	}
	if k == "" {
		return nil, cmdutil.FlagErrorf("taint %q has no key", s)
	}
	return t, nil
}

func kubeConfig(path string) (*rest.Config, error) {
	if path != "" {
		return clientcmd.BuildConfigFromFlags("", path)
	}
	c, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("no --kubeconfig and not in a cluster (%v): %w", err, errdefs.ErrInvalidArgument)
	}
	return c, nil
}

func logger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// Run registers the node and serves until ctx ends.
func Run(ctx context.Context, f *cmdutil.Factory, o Options) error {
	log := logger(o.LogLevel)
	ctx = vklog.WithLogger(ctx, vkLogger{log.With("component", "virtual-kubelet")})
	for _, a := range o.ClusterDNS {
		if net.ParseIP(a) == nil {
			return cmdutil.FlagErrorf("--cluster-dns %q is not an IP address", a)
		}
	}
	taint, err := ParseTaint(o.Taint)
	if err != nil {
		return err
	}
	capacity := corev1.ResourceList{}
	for name, v := range map[corev1.ResourceName]string{corev1.ResourceCPU: o.CPU, corev1.ResourceMemory: o.Memory, corev1.ResourcePods: o.Pods} {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return cmdutil.FlagErrorf("%s capacity %q: %v", name, v, err)
		}
		capacity[name] = q
	}
	if o.NodeIP == "" {
		o.NodeIP = hostaddr.PrimaryAddress()
	}
	if net.ParseIP(o.NodeIP) == nil {
		return cmdutil.FlagErrorf("--node-ip %q is not an IP address", o.NodeIP)
	}
	restCfg, err := kubeConfig(o.Kubeconfig)
	if err != nil {
		return err
	}
	if o.KubeQPS <= 0 || o.KubeBurst <= 0 {
		return cmdutil.FlagErrorf("--kube-api-qps and --kube-api-burst must be more than 0")
	}
	if o.EventQPS <= 0 || o.EventBurst <= 0 {
		return cmdutil.FlagErrorf("--event-qps and --event-burst must be more than 0")
	}
	eventCfg := rest.CopyConfig(restCfg)
	restCfg.QPS, restCfg.Burst = o.KubeQPS, o.KubeBurst
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	eventCfg.QPS, eventCfg.Burst = o.EventQPS, o.EventBurst
	eventKube, err := kubernetes.NewForConfig(eventCfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if err := principalFromEnv(f); err != nil {
		return err
	}
	// The provider follows its groups itself (pod status), so a PUT need
	// not wait for the group to run.
	f.RespondAsync = true
	sk, err := f.Client()
	if err != nil {
		return err
	}

	tlsCfg, err := servingTLS(ctx, kube, o, log)
	if err != nil {
		return err
	}

	eb := record.NewBroadcaster()
	eb.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: eventKube.CoreV1().Events("")})
	defer eb.Shutdown()
	recorder := eb.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "skiff-virtual-node", Host: o.NodeName})

	var prov *virtualnode.Provider
	newProvider := func(pc nodeutil.ProviderConfig) (nodeutil.Provider, node.NodeProvider, error) {
		cfg := virtualnode.Config{
			Client: sk, ResourceGroup: o.ResourceGroup, Region: o.Region, NodeName: o.NodeName, OS: o.OS,
			InternalIP: o.NodeIP, KubeletPort: int32(o.KubeletPort), Capacity: capacity,
			Pods: pc.Pods, Secrets: pc.Secrets, ConfigMaps: pc.ConfigMaps, Kube: kube, Events: recorder,
			SyncInterval: o.SyncInterval, Logger: log, ClusterDNS: o.ClusterDNS, ClusterDomain: o.ClusterDomain,
		}
		if sp, ok := f.Credentials.(*client.ServicePrincipal); ok {
			cfg.Principal = "service principal " + sp.AppID
		}
		if taint != nil {
			cfg.Taints = []corev1.Taint{*taint}
		}
		p, err := virtualnode.New(cfg)
		if err != nil {
			return nil, nil, err
		}
		p.ConfigureNode(pc.Node)
		prov = p
		return p, p, nil
	}

	mux := http.NewServeMux()
	var auth nodeutil.Auth
	if o.AnonymousAuth {
		auth = nodeutil.NoAuth()
	} else {
		var opts []nodeutil.WebhookAuthOption
		if o.ClientCAFile != "" {
			ca, err := dynamiccertificates.NewDynamicCAContentFromFile("client-ca", o.ClientCAFile)
			if err != nil {
				return fmt.Errorf("client CA %s: %v: %w", o.ClientCAFile, err, errdefs.ErrInvalidArgument)
			}
			opts = append(opts, func(c *nodeutil.WebhookAuthConfig) error {
				c.AuthnConfig.ClientCertificateCAContentProvider = ca
				return nil
			})
		}
		auth, err = nodeutil.WebhookAuth(kube, o.NodeName, opts...)
		if err != nil {
			return fmt.Errorf("kubelet API auth: %w", err)
		}
	}
	n, err := nodeutil.NewNode(o.NodeName, newProvider,
		nodeutil.WithClient(kube),
		func(c *nodeutil.NodeConfig) error {
			c.HTTPListenAddr = net.JoinHostPort("", strconv.Itoa(o.KubeletPort))
			c.Handler = nodeutil.WithAuth(auth, mux)
			c.TLSConfig = tlsCfg
			c.EventRecorder = recorder
			c.NumWorkers = o.Workers
			c.StreamIdleTimeout = 4 * time.Hour
			c.StreamCreationTimeout = 30 * time.Second
			return nil
		},
		nodeutil.AttachProviderRoutes(mux),
	)
	if err != nil {
		return fmt.Errorf("virtual node: %w", err)
	}
	log.Info("registering virtual node", "node", o.NodeName, "skiff", sk.Endpoint(), "resourceGroup", o.ResourceGroup, "kubeletAPI", net.JoinHostPort(o.NodeIP, strconv.Itoa(o.KubeletPort)))
	errc := make(chan error, 1)
	go func() { errc <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-errc:
		return fmt.Errorf("virtual node: %w", err)
	}
	// Informers are synced now: orphan cleanup sees every pod.
	prov.Run(ctx)
	log.Info("virtual node ready", "node", o.NodeName)
	err = <-errc
	if err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
		return fmt.Errorf("virtual node: %w", err)
	}
	return nil
}

// servingTLS returns the TLS config of the kubelet API.
func servingTLS(ctx context.Context, kube kubernetes.Interface, o Options, log *slog.Logger) (*tls.Config, error) {
	mode := o.ServingCert
	if mode == "" {
		mode = "csr"
		if o.CertFile != "" || o.KeyFile != "" {
			mode = "files"
		}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert}
	switch mode {
	case "files":
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("serving certificate: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case "self-signed":
		cert, err := SelfSigned(o.NodeName, o.NodeIP)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	case "csr":
		cert, err := RequestServingCert(ctx, kube, o.NodeName, o.NodeIP, log)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	default:
		return nil, cmdutil.FlagErrorf("--serving-cert %q: want files, csr or self-signed", mode)
	}
	return cfg, nil
}
