package servercmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostaddr"
	"github.com/skiff-sh/skiff/internal/pki"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
)

// HTTPS for skiff server (--tls-listen): the certificate comes from the
// operator (--tls-cert-file, --tls-key-file) or from Skiff's own CA
// (package pki), which a cluster's servers share through the store. Plain
// HTTP (--listen) answers only on loopback.

// clusterCAKey is the store setting that holds a cluster's CA, sealed.
const clusterCAKey = "cluster.ca"

// checkListen refuses listen flags that would serve the API in the clear
// off the host, and TLS flags that do not go together.
func checkListen(o Options) error {
	bad := func(format string, a ...any) error {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "", format, a...)
	}
	switch {
	case o.Listen == "" && o.TLSListen == "":
		return bad(`--listen "" turns plain HTTP off: give --tls-listen ADDR to serve the API over HTTPS`)
	case o.Listen != "" && !isLoopback(o.Listen):
		return bad("--listen %s: plain HTTP answers only on loopback (127.0.0.0/8, ::1, localhost); serve other addresses over HTTPS with --tls-listen %s", o.Listen, o.Listen)
	case (o.TLSCertFile == "") != (o.TLSKeyFile == ""):
		return bad("--tls-cert-file and --tls-key-file go together: give both, or neither for a certificate from Skiff's own CA")
	case o.TLSListen == "" && (o.TLSCertFile != "" || len(o.TLSSANs) > 0):
		return bad("--tls-cert-file, --tls-key-file and --tls-san need --tls-listen ADDR")
	case o.TLSCertFile != "" && len(o.TLSSANs) > 0:
		return bad("--tls-san names the certificate Skiff's CA issues; an operator's --tls-cert-file carries its own names")
	}
	if o.TLSListen != "" {
		if _, _, err := net.SplitHostPort(o.TLSListen); err != nil {
			return bad("--tls-listen %s: want HOST:PORT (%v)", o.TLSListen, err)
		}
	}
	for _, n := range o.TLSSANs {
		if _, err := netip.ParseAddr(n); err != nil && (n == "" || strings.Trim(strings.ToLower(n), "abcdefghijklmnopqrstuvwxyz0123456789.-*") != "") {
			return bad("--tls-san %q: want a DNS name or an IP address", n)
		}
	}
	return nil
}

// isLoopback reports whether the HOST:PORT addr is on loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// serverTLS is what the HTTPS listener serves with.
type serverTLS struct {
	config *tls.Config
	// caFile is the CA clients trust ("" with an operator's certificate).
	caFile string
	// roots is what this server trusts when it calls another server of its
	// cluster (their in-process agents): the system's roots and Skiff's CA.
	roots *x509.CertPool
	// leaf is the serving certificate, for the log.
	leaf *x509.Certificate
}

// setupTLS loads or makes what --tls-listen serves with; nil without
// --tls-listen.
func setupTLS(ctx context.Context, o Options, st store.Store, sealer *seal.Sealer, log *slog.Logger) (*serverTLS, error) {
	if o.TLSListen == "" {
		return nil, nil
	}
	if o.TLSCertFile != "" {
		cert, err := pki.LoadKeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert-file: %w", err)
		}
		roots, err := pki.TrustedRoots()
		if err != nil {
			return nil, err
		}
		return &serverTLS{config: tlsConfig(cert), roots: roots, leaf: cert.Leaf}, nil
	}
	host, _ := os.Hostname()
	var ca *pki.CA
	var err error
	if o.Store == "etcd" {
		if ca, err = clusterCA(ctx, o, st, sealer, host); err == nil {
			err = pki.WriteCACert(o.DataDir, ca)
		}
	} else {
		var created bool
		if ca, created, err = pki.LoadOrCreateCA(o.DataDir, "Skiff CA "+host); created {
			log.Info("made a CA for HTTPS", "ca_file", filepath.Join(o.DataDir, pki.CACertFile))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("HTTPS: %w", err)
	}
	sans := servingSANs(o, host)
	cert, reissued, err := pki.EnsureServing(o.DataDir, ca, sans)
	if err != nil {
		return nil, fmt.Errorf("HTTPS: %w", err)
	}
	if reissued {
		log.Info("issued the serving certificate", "names", sans.String(), "not_after", cert.Leaf.NotAfter)
	}
	roots, err := pki.TrustedRoots()
	if err != nil {
		return nil, err
	}
	roots.AddCert(ca.Cert)
	return &serverTLS{config: tlsConfig(cert), caFile: filepath.Join(o.DataDir, pki.CACertFile), roots: roots, leaf: cert.Leaf}, nil
}

// tlsConfig serves cert with TLS 1.2 or later, HTTP/2 or HTTP/1.1.
func tlsConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
}

// servingSANs are the names of the serving certificate: loopback, the
// host's name, its public address, the host of --tls-listen when it is
// one, and --tls-san.
func servingSANs(o Options, hostname string) pki.SANs {
	names := []string{"localhost", "127.0.0.1", "::1", hostname, publicAddress(o)}
	if host, _, err := net.SplitHostPort(o.TLSListen); err == nil {
		names = append(names, host) // "" and 0.0.0.0 are left out
	}
	return pki.NewSANs(append(names, o.TLSSANs...)...)
}

// publicAddress is --public-address, or the host's primary address.
func publicAddress(o Options) string {
	if o.PublicAddress != "" {
		return o.PublicAddress
	}
	return hostaddr.PrimaryAddress()
}

// caBundle is how a cluster's CA is kept in the store (sealed).
type caBundle struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// clusterCA returns the CA of the cluster, kept sealed in the store's
// settings, and makes it on the cluster's first start. Settings have no
// create-if-absent, so servers starting at once make it under a lock in
// etcd: one makes it, the others read that one.
func clusterCA(ctx context.Context, o Options, st store.Store, sealer *seal.Sealer, host string) (*pki.CA, error) {
	if ca, err := loadClusterCA(ctx, st, sealer); !errdefs.Is(err, errdefs.ErrNotFound) {
		return ca, err
	}
	unlock, err := lockCluster(ctx, o, "ca")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if ca, err := loadClusterCA(ctx, st, sealer); !errdefs.Is(err, errdefs.ErrNotFound) {
		return ca, err
	}
	ca, err := pki.NewCA("Skiff cluster CA " + host)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(caBundle{Cert: string(ca.CertPEM()), Key: string(ca.KeyPEM())})
	if err != nil {
		return nil, err
	}
	sealed, err := sealer.Seal(string(b))
	if err != nil {
		return nil, err
	}
	if err := st.PutMeta(ctx, clusterCAKey, sealed); err != nil {
		return nil, err
	}
	return ca, nil
}

// loadClusterCA reads the cluster's CA from the store; ErrNotFound if
// there is none yet.
func loadClusterCA(ctx context.Context, st store.Store, sealer *seal.Sealer) (*pki.CA, error) {
	v, err := st.GetMeta(ctx, clusterCAKey)
	if err != nil {
		return nil, err
	}
	plain, err := sealer.Open(v)
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	var b caBundle
	if err := json.Unmarshal([]byte(plain), &b); err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	ca, err := pki.ParseCA([]byte(b.Cert), []byte(b.Key))
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	return ca, nil
}

// lockCluster takes the cluster-wide lock name in etcd (under the store's
// prefix) and returns its release.
func lockCluster(ctx context.Context, o Options, name string) (unlock func(), err error) {
	cli, err := etcdClient(o.EtcdEndpoints)
	if err != nil {
		return nil, err
	}
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(10), concurrency.WithContext(ctx))
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	m := concurrency.NewMutex(sess, strings.TrimSuffix(o.EtcdPrefix, "/")+"/locks/"+name)
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := m.Lock(lctx); err != nil {
		sess.Close()
		cli.Close()
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = m.Unlock(uctx)
		sess.Close()
		cli.Close()
	}, nil
}

// apiListeners are the listeners of the API: plain HTTP on loopback,
// HTTPS, or both.
type apiListeners struct {
	plain, secure net.Listener
	// endpoint is the plain URL, or the HTTPS one when plain HTTP is off;
	// tlsEndpoint is the HTTPS URL ("" without --tls-listen).
	endpoint, tlsEndpoint string
}

// listenAPI opens the listeners of o.
func listenAPI(o Options, tl *serverTLS) (_ *apiListeners, err error) {
	l := &apiListeners{}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	if o.Listen != "" {
		if l.plain, err = net.Listen("tcp", o.Listen); err != nil {
			return nil, err
		}
		l.endpoint = "http://" + l.plain.Addr().String()
	}
	if tl != nil {
		raw, err := net.Listen("tcp", o.TLSListen)
		if err != nil {
			return nil, fmt.Errorf("--tls-listen: %w", err)
		}
		l.secure = tls.NewListener(raw, tl.config)
		l.tlsEndpoint = "https://" + dialable(raw.Addr().(*net.TCPAddr), o)
		if l.endpoint == "" {
			l.endpoint = l.tlsEndpoint
		}
	}
	return l, nil
}

// dialable is addr as a client dials it: an unspecified address (all of
// the host's) becomes the public address, which the certificate holds.
func dialable(addr *net.TCPAddr, o Options) string {
	if addr.IP.IsUnspecified() {
		if pub := publicAddress(o); pub != "" {
			return net.JoinHostPort(pub, fmt.Sprint(addr.Port))
		}
	}
	return addr.String()
}

// primary is the listener that names this server (its election id).
func (l *apiListeners) primary() net.Listener {
	if l.plain != nil {
		return l.plain
	}
	return l.secure
}

// all lists the open listeners.
func (l *apiListeners) all() []net.Listener {
	var out []net.Listener
	for _, ln := range []net.Listener{l.plain, l.secure} {
		if ln != nil {
			out = append(out, ln)
		}
	}
	return out
}

func (l *apiListeners) close() {
	for _, ln := range l.all() {
		ln.Close()
	}
}

// agentURL is where the other servers of a cluster reach this server's
// in-process agent: over HTTPS when it is served (plain HTTP answers
// only on loopback).
func (l *apiListeners) agentURL() string {
	if l.tlsEndpoint != "" {
		return l.tlsEndpoint + agentPrefix
	}
	return l.endpoint + agentPrefix
}

// joinFlags are the flags an agent joins this server with: --server, and
// --ca-file when it serves HTTPS with Skiff's CA.
func (l *apiListeners) joinFlags(tl *serverTLS) string {
	switch {
	case tl == nil:
		return "--server " + l.endpoint
	case tl.caFile == "":
		return "--server " + l.tlsEndpoint
	}
	return "--server " + l.tlsEndpoint + " --ca-file " + tl.caFile
}

// agentHTTPClient is the client a cluster server calls the agents with:
// nil (agentapi's default) without HTTPS, else one that also trusts
// Skiff's CA, which the in-process agents of the other servers serve
// with.
func agentHTTPClient(tl *serverTLS) *http.Client {
	if tl == nil {
		return nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // agents are reached directly
	tr.TLSClientConfig = &tls.Config{RootCAs: tl.roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}
}

// tlsBanner is the startup line about HTTPS.
func tlsBanner(l *apiListeners, tl *serverTLS, o Options) string {
	if tl.caFile != "" {
		return fmt.Sprintf("skiff server serving HTTPS on %s (certificate for %s; clients trust %s: SKIFF_CA_FILE, REQUESTS_CA_BUNDLE)",
			l.tlsEndpoint, pki.Of(tl.leaf), tl.caFile)
	}
	return fmt.Sprintf("skiff server serving HTTPS on %s (certificate %s, for %s)", l.tlsEndpoint, o.TLSCertFile, pki.Of(tl.leaf))
}
