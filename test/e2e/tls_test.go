package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/pki"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// caPool is a pool of the certificates of a PEM file.
func caPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(readBytes(t, file)) {
		t.Fatalf("%s holds no certificate", file)
	}
	return pool
}

// serverLeaf is the certificate the server at the https endpoint serves,
// verified with roots.
func serverLeaf(t *testing.T, endpoint string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(endpoint, "https://"), &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", endpoint, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// at is the server as the CLI meets it at endpoint, with dataDir as its
// SKIFF_DATA_DIR.
func (s *server) at(endpoint, dataDir string) *server {
	view := *s.SkiffServer
	view.Endpoint, view.DataDir = endpoint, dataDir
	return &server{SkiffServer: &view, t: s.t}
}

// Over HTTPS, with the CA of the server's data dir: the API (a resource
// group and a container group created and read), the CLI (with
// SKIFF_CA_FILE, with the data dir's ca.crt, and exec over wss:), the
// Azure SDK for Go; without the CA the handshake fails with unknown
// authority, in the client and in the CLI, with one clear line. A restart
// keeps the CA and the certificate; in a cluster, the agent joined over
// HTTPS (--ca-file) and a second server serves a certificate of the same
// CA.
func TestTLSServesTheAPIWithItsOwnCA(t *testing.T) {
	s := newServer(t, testenv.SkiffServerOptions{TLS: true})
	if s.CAFile == "" {
		t.Fatalf("the server made no ca.crt in %s", s.DataDir)
	}
	pool := caPool(t, s.CAFile)
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	ctx := t.Context()

	// RespondAsync: the create announces its operation, whose URL must be
	// https too (without it a group that runs at once has none).
	c, err := client.New(client.Options{Endpoint: s.TLSEndpoint, Token: s.Token, Subscription: s.Subscription, RootCAs: pool, RespondAsync: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateResourceGroup(ctx, "secure", api.ResourceGroup{Location: "local"}); err != nil {
		t.Fatalf("create resource group over HTTPS: %v", err)
	}
	if rg, err := c.GetResourceGroup(ctx, "secure"); err != nil || rg.Name != "secure" {
		t.Fatalf("get resource group over HTTPS: %+v %v", rg, err)
	}
	_, poller, err := c.PutContainerGroup(ctx, "secure", "app", groupBody(image, nil), client.APIVersion)
	if err != nil {
		t.Fatalf("create container group over HTTPS: %v", err)
	}
	if !strings.HasPrefix(poller.URL(), "https://") {
		t.Errorf("the operation's URL over HTTPS is %s", poller.URL())
	}
	if err := poller.Wait(ctx, nil); err != nil {
		t.Fatalf("the create's operation over HTTPS: %v\n%s", err, s.LogTail(20))
	}
	if g, err := c.GetContainerGroup(ctx, "secure", "app"); err != nil || g.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("get container group over HTTPS: %+v %v", g, err)
	}
	leaf := serverLeaf(t, s.TLSEndpoint, pool)

	t.Run("without the CA", func(t *testing.T) {
		anon, err := client.New(client.Options{Endpoint: s.TLSEndpoint, Token: s.Token})
		if err != nil {
			t.Fatal(err)
		}
		_, err = anon.ListResourceGroups(ctx)
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) || !errdefs.Is(err, errdefs.ErrUnavailable) {
			t.Errorf("a client without the CA: %v, want x509.UnknownAuthorityError of class ErrUnavailable", err)
		}
		if _, err := tls.Dial("tcp", strings.TrimPrefix(s.TLSEndpoint, "https://"), &tls.Config{}); !errors.As(err, &unknown) {
			t.Errorf("a TLS handshake without the CA: %v, want unknown authority", err)
		}
		old := &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}
		if conn, err := tls.Dial("tcp", strings.TrimPrefix(s.TLSEndpoint, "https://"), old); err == nil {
			conn.Close()
			t.Error("the server accepted TLS 1.1")
		}
	})

	t.Run("CLI", func(t *testing.T) {
		t.Setenv("SKIFF_TOKEN", s.Token)
		noData := t.TempDir()
		t.Setenv("SKIFF_CA_FILE", s.CAFile)
		if out := s.at(s.TLSEndpoint, noData).mustSkiff("group", "show", "-n", "secure", "--query", "name", "-o", "tsv"); strings.TrimSpace(out) != "secure" {
			t.Errorf("skiff group show with SKIFF_CA_FILE: %q", out)
		}
		t.Setenv("SKIFF_CA_FILE", "")
		// The data dir's ca.crt, as its admin.token, without SKIFF_CA_FILE.
		if out := s.at(s.TLSEndpoint, s.DataDir).mustSkiff("container", "list", "-g", "secure", "--query", "[].name", "-o", "tsv"); strings.TrimSpace(out) != "app" {
			t.Errorf("skiff container list with the data dir's ca.crt: %q", out)
		}
		// Exec's websocket is wss: and trusts the same CA.
		s.waitRunning("secure", "app")
		out, errOut, code := s.at(s.TLSEndpoint, s.DataDir).skiff("container", "exec", "-g", "secure", "-n", "app", "--exec-command", `["sh","-c","echo over-wss"]`)
		if code != 0 || !strings.Contains(out, "over-wss") {
			t.Errorf("skiff container exec over HTTPS: exit %d, out %q, err %q", code, out, errOut)
		}
		out, errOut, code = s.at(s.TLSEndpoint, noData).skiff("group", "list")
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if code != 6 || len(lines) != 1 || !strings.Contains(errOut, "x509: certificate signed by unknown authority") || !strings.Contains(errOut, "set SKIFF_CA_FILE") {
			t.Errorf("skiff without the CA: exit %d (want 6), stdout %q, stderr %q: want one line naming unknown authority and SKIFF_CA_FILE", code, out, errOut)
		}
	})

	t.Run("Azure SDK for Go", func(t *testing.T) {
		opts := sdkOptions(s.TLSEndpoint)
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
		opts.Transport = &http.Client{Transport: tr}
		groups, err := armcontainerinstance.NewContainerGroupsClient(s.Subscription, staticToken(s.Token), opts)
		if err != nil {
			t.Fatal(err)
		}
		cg := armcontainerinstance.ContainerGroup{
			Location: to.Ptr("local"),
			Properties: &armcontainerinstance.ContainerGroupPropertiesProperties{
				OSType: to.Ptr(armcontainerinstance.OperatingSystemTypesLinux),
				Containers: []*armcontainerinstance.Container{{
					Name: to.Ptr("app"),
					Properties: &armcontainerinstance.ContainerProperties{
						Image:   to.Ptr(image),
						Command: []*string{to.Ptr("sleep"), to.Ptr("3600")},
						Resources: &armcontainerinstance.ResourceRequirements{Requests: &armcontainerinstance.ResourceRequests{
							CPU: to.Ptr(0.5), MemoryInGB: to.Ptr(0.5),
						}},
					},
				}},
			},
		}
		sdkCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		p, err := groups.BeginCreateOrUpdate(sdkCtx, "secure", "sdk", cg, nil)
		if err != nil {
			t.Fatalf("BeginCreateOrUpdate over HTTPS: %v", err)
		}
		if _, err := p.PollUntilDone(sdkCtx, &runtimePollOpts); err != nil {
			t.Fatalf("PollUntilDone over HTTPS: %v", err)
		}
		got, err := groups.Get(sdkCtx, "secure", "sdk", nil)
		if err != nil || *got.Properties.ProvisioningState != "Succeeded" {
			t.Fatalf("Get over HTTPS: %v", err)
		}
	})

	if s.cluster() {
		t.Run("second server of the cluster", func(t *testing.T) {
			second := testenv.StartSkiffServer(t, testenv.SkiffServerOptions{Binary: skiffBin, Etcd: s.Etcd.Endpoints, NoAgent: true,
				SealKeyFile: s.SealKeyFile(), TLS: true})
			if first, again := readBytes(t, s.CAFile), readBytes(t, second.CAFile); !bytes.Equal(first, again) {
				t.Fatal("the second server of the cluster has a CA of its own")
			}
			if _, err := os.Stat(filepath.Join(s.DataDir, pki.CAKeyFile)); err == nil {
				t.Error("a cluster server wrote the CA's key to its data dir (it is kept sealed in the store)")
			}
			if l := serverLeaf(t, second.TLSEndpoint, pool); l.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
				t.Error("the second server serves the first one's certificate, not its own")
			}
		})
	}

	caBefore := readBytes(t, s.CAFile)
	s.Stop(syscall.SIGTERM)
	s.Start()
	if !bytes.Equal(readBytes(t, s.CAFile), caBefore) {
		t.Fatal("a restart made a new CA")
	}
	if again := serverLeaf(t, s.TLSEndpoint, pool); again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Error("a restart with the same names reissued the serving certificate")
	}
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The operator's certificate is served as it is, and no CA is made.
func TestTLSServesTheOperatorsCertificate(t *testing.T) {
	opCA, err := pki.NewCA("operator's CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := opCA.Issue(pki.NewSANs("127.0.0.1", "skiff.example"), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "op.crt"), filepath.Join(dir, "op.key")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	want, err := pki.LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, testenv.SkiffServerOptions{TLS: true, Flags: []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile}})
	got := serverLeaf(t, s.TLSEndpoint, opCA.Pool())
	if got.SerialNumber.Cmp(want.Leaf.SerialNumber) != 0 || got.Subject.CommonName != "skiff.example" {
		t.Errorf("served certificate %s (serial %x), want the operator's %s (serial %x)",
			got.Subject, got.SerialNumber, want.Leaf.Subject, want.Leaf.SerialNumber)
	}
	for _, f := range []string{pki.CACertFile, pki.CAKeyFile} {
		if _, err := os.Stat(filepath.Join(s.DataDir, f)); err == nil {
			t.Errorf("the server made %s though the operator gave a certificate", f)
		}
	}
	c, err := client.New(client.Options{Endpoint: s.TLSEndpoint, Token: s.Token, Subscription: s.Subscription, RootCAs: opCA.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListResourceGroups(t.Context()); err != nil {
		t.Errorf("the API with the operator's certificate: %v", err)
	}
}

// Plain HTTP answers only on loopback, and TLS flags that do not go
// together are refused: each at start, with one line naming what to do.
func TestTLSRefusesPlainHTTPOffLoopback(t *testing.T) {
	port := strings.Split(testenv.FreeLoopbackAddr(t, "127.0.0.1"), ":")[1]
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "0.0.0.0:" + port}, "--tls-listen"},
		{[]string{"--listen", ""}, "--tls-listen"},
		{[]string{"--tls-listen", "127.0.0.1:" + port, "--tls-cert-file", "/nonexistent.crt"}, "--tls-key-file"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		cmd := exec.CommandContext(ctx, skiffBin, append([]string{"server", "--data-dir", t.TempDir()}, tc.args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		cancel()
		var exit *exec.ExitError
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if !errors.As(err, &exit) || exit.ExitCode() == 0 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("skiff server %q: %v, stderr %q; want a non-zero exit and one line naming %s", tc.args, err, stderr.String(), tc.want)
		}
	}
}
