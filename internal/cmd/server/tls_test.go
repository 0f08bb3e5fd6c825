package servercmd

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/skiff-sh/skiff/internal/pki"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store/etcdstore"
	etcdenv "github.com/skiff-sh/skiff/internal/testenv/etcd"
)

func TestCheckListen(t *testing.T) {
	for _, ok := range []Options{
		{Listen: "127.0.0.1:7700"}, {Listen: "127.0.0.2:0"}, {Listen: "[::1]:7700"}, {Listen: "localhost:7700"},
		{Listen: "", TLSListen: "0.0.0.0:7443"}, {Listen: "127.0.0.1:7700", TLSListen: ":7443", TLSSANs: []string{"skiff.example", "192.0.2.1", "*.skiff.example"}},
		{TLSListen: "[::]:7443", TLSCertFile: "c", TLSKeyFile: "k"},
	} {
		if err := checkListen(ok); err != nil {
			t.Errorf("checkListen(%+v) = %v", ok, err)
		}
	}
	for _, bad := range []struct {
		o    Options
		want string
	}{
		{Options{Listen: "0.0.0.0:7700"}, "--tls-listen 0.0.0.0:7700"},
		{Options{Listen: ":7700"}, "only on loopback"},
		{Options{Listen: "192.0.2.1:7700", TLSListen: "192.0.2.1:7443"}, "only on loopback"},
		{Options{Listen: ""}, "--tls-listen"},
		{Options{Listen: "127.0.0.1:1", TLSListen: ":7443", TLSCertFile: "c"}, "go together"},
		{Options{Listen: "127.0.0.1:1", TLSKeyFile: "k"}, "go together"},
		{Options{Listen: "127.0.0.1:1", TLSSANs: []string{"x"}}, "need --tls-listen"},
		{Options{Listen: "127.0.0.1:1", TLSListen: ":7443", TLSSANs: []string{"bad name"}}, "--tls-san"},
		{Options{Listen: "127.0.0.1:1", TLSListen: "7443"}, "HOST:PORT"},
	} {
		if err := checkListen(bad.o); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("checkListen(%+v) = %v, want an error with %q", bad.o, err, bad.want)
		}
	}
}

// Servers of one cluster that start at once, each with its own data dir,
// end up with one CA, kept in the store: each writes its ca.crt, none the
// CA's key, and each serves a certificate of its own from that CA.
func TestClusterServersShareOneCA(t *testing.T) {
	etcd := etcdenv.Start(t)
	sealer, err := seal.LoadOrCreateKey(filepath.Join(t.TempDir(), seal.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	const servers = 4
	dirs := make([]string, servers)
	got := make([]*serverTLS, servers)
	errs := make([]error, servers)
	// Every store is open before any server starts; then all start at once.
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range servers {
		dirs[i] = t.TempDir()
		st, err := etcdstore.Open(t.Context(), etcdstore.Options{Endpoints: etcd.Endpoints, Prefix: "/skiff/", Sealer: sealer})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		o := Options{Store: "etcd", EtcdEndpoints: etcd.Endpoints, EtcdPrefix: "/skiff/", DataDir: dirs[i], TLSListen: "127.0.0.1:0", PublicAddress: "127.0.0.1"}
		wg.Go(func() {
			<-start
			got[i], errs[i] = setupTLS(t.Context(), o, st, sealer, log)
		})
	}
	close(start)
	wg.Wait()
	var first []byte
	for i := range servers {
		if errs[i] != nil {
			t.Fatalf("server %d: %v", i, errs[i])
		}
		ca, err := os.ReadFile(got[i].caFile)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = ca
		} else if !bytes.Equal(ca, first) {
			t.Fatalf("server %d has a CA of its own", i)
		}
		if _, err := os.Stat(filepath.Join(dirs[i], pki.CAKeyFile)); err == nil {
			t.Errorf("server %d wrote the CA's key to its data dir", i)
		}
		if err := got[i].leaf.CheckSignatureFrom(mustParseCA(t, first)); err != nil {
			t.Errorf("server %d's certificate is not the cluster CA's: %v", i, err)
		}
	}
}

func mustParseCA(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("ca.crt holds no PEM block")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
