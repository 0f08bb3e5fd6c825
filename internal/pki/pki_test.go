package pki_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/pki"
)

var wanted = pki.NewSANs("localhost", "127.0.0.1", "::1", "Skiff-Host.example.", "10.1.2.3", "0.0.0.0", "")

// mode fails the test unless path has mode perm.
func mode(t *testing.T, path string, perm os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != perm {
		t.Errorf("%s has mode %04o, want %04o", filepath.Base(path), fi.Mode().Perm(), perm)
	}
}

// verify fails the test unless a client trusting only ca accepts the
// certificate for every name of sans.
func verify(t *testing.T, ca *pki.CA, c tls.Certificate, sans pki.SANs) {
	t.Helper()
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	names := slices.Clone(sans.DNSNames)
	for _, ip := range sans.IPs {
		names = append(names, ip.String())
	}
	for _, n := range names {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: n}); err != nil {
			t.Errorf("a client of %s does not accept the certificate: %v", n, err)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewSANs(t *testing.T) {
	want := pki.SANs{DNSNames: []string{"localhost", "skiff-host.example"},
		IPs: []netip.Addr{netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}}
	if !wanted.Equal(want) {
		t.Errorf("NewSANs = %+v, want %+v", wanted, want)
	}
	if got := pki.NewSANs("[::1]", "::ffff:127.0.0.1", "LOCALHOST", "localhost"); got.String() != "localhost, 127.0.0.1, ::1" {
		t.Errorf("NewSANs of bracketed, mapped and repeated names = %q", got)
	}
}

// First start: a CA and a serving certificate for every wanted name, the
// keys readable only by their owner.
func TestFirstStartMakesCAAndServingCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, created, err := pki.LoadOrCreateCA(dir, "Skiff CA test")
	if err != nil || !created {
		t.Fatalf("LoadOrCreateCA = %v, created %v", err, created)
	}
	if !ca.Cert.IsCA || ca.Cert.NotAfter.Before(time.Now().Add(9*365*24*time.Hour)) {
		t.Errorf("the CA should be a CA valid for about 10 years: CA %v until %s", ca.Cert.IsCA, ca.Cert.NotAfter)
	}
	c, reissued, err := pki.EnsureServing(dir, ca, wanted)
	if err != nil || !reissued {
		t.Fatalf("EnsureServing = %v, reissued %v", err, reissued)
	}
	verify(t, ca, c, wanted)
	if got := pki.Of(c.Leaf); !got.Equal(wanted) {
		t.Errorf("the certificate's names are %q, want exactly %q", got, wanted)
	}
	if !slices.Contains(c.Leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || c.Leaf.IsCA {
		t.Errorf("the serving certificate should be a server's, not a CA: %v %v", c.Leaf.ExtKeyUsage, c.Leaf.IsCA)
	}
	mode(t, filepath.Join(dir, pki.CAKeyFile), 0o600)
	mode(t, filepath.Join(dir, pki.KeyFile), 0o600)
	mode(t, filepath.Join(dir, pki.CACertFile), 0o644)
	if !bytes.Equal(readFile(t, filepath.Join(dir, pki.CACertFile)), ca.CertPEM()) {
		t.Error("ca.crt is not the CA's certificate")
	}
	// What a client reads from ca.crt is enough to trust the server.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(readFile(t, filepath.Join(dir, pki.CACertFile))) {
		t.Fatal("ca.crt holds no certificate")
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"}); err != nil {
		t.Error(err)
	}
}

// A restart reuses the CA and the certificate; other names, or a
// certificate near its end, get a new certificate from the same CA.
func TestRestartReusesCAAndReissuesOnlyWhenNeeded(t *testing.T) {
	dir := t.TempDir()
	ca, _, err := pki.LoadOrCreateCA(dir, "Skiff CA test")
	if err != nil {
		t.Fatal(err)
	}
	first, _, err := pki.EnsureServing(dir, ca, wanted)
	if err != nil {
		t.Fatal(err)
	}
	caCert := readFile(t, filepath.Join(dir, pki.CACertFile))

	again, created, err := pki.LoadOrCreateCA(dir, "Skiff CA test")
	if err != nil || created {
		t.Fatalf("LoadOrCreateCA on restart = %v, created %v", err, created)
	}
	if !bytes.Equal(again.CertPEM(), ca.CertPEM()) || !bytes.Equal(readFile(t, filepath.Join(dir, pki.CACertFile)), caCert) {
		t.Fatal("a restart made a new CA")
	}
	same, reissued, err := pki.EnsureServing(dir, again, pki.NewSANs("::1", "10.1.2.3", "localhost", "127.0.0.1", "skiff-host.example"))
	if err != nil || reissued {
		t.Fatalf("EnsureServing with the same names = %v, reissued %v", err, reissued)
	}
	if same.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) != 0 {
		t.Error("the serving certificate changed though its names did not")
	}

	more := pki.NewSANs("localhost", "127.0.0.1", "::1", "api.example", "192.0.2.7")
	changed, reissued, err := pki.EnsureServing(dir, again, more)
	if err != nil || !reissued {
		t.Fatalf("EnsureServing with other names = %v, reissued %v", err, reissued)
	}
	verify(t, ca, changed, more)
	if slices.Contains(changed.Leaf.DNSNames, "skiff-host.example") {
		t.Errorf("a name no longer wanted is still in the certificate: %v", changed.Leaf.DNSNames)
	}

	// A certificate that ends within 30 days is replaced.
	certPEM, keyPEM, err := ca.Issue(more, 10*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, pki.CertFile), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, pki.KeyFile), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	renewed, reissued, err := pki.EnsureServing(dir, ca, more)
	if err != nil || !reissued || time.Until(renewed.Leaf.NotAfter) < 300*24*time.Hour {
		t.Fatalf("EnsureServing of a certificate ending in 10 days = %v, reissued %v, until %s", err, reissued, renewed.Leaf.NotAfter)
	}

	// A certificate of another CA (the data dir's CA was replaced) too.
	other, err := pki.NewCA("another")
	if err != nil {
		t.Fatal(err)
	}
	fromOther, reissued, err := pki.EnsureServing(dir, other, more)
	if err != nil || !reissued {
		t.Fatalf("EnsureServing under another CA = %v, reissued %v", err, reissued)
	}
	verify(t, other, fromOther, more)
}

// A CA certificate without its key is refused (clients may trust it); a
// key whose certificate was never written is replaced.
func TestHalfWrittenCA(t *testing.T) {
	dir := t.TempDir()
	ca, _, err := pki.LoadOrCreateCA(dir, "Skiff CA test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, pki.CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pki.LoadOrCreateCA(dir, "Skiff CA test"); err == nil || !strings.Contains(err.Error(), "without its key") {
		t.Errorf("ca.crt without ca.key: %v, want an error saying so", err)
	}
	if err := os.Remove(filepath.Join(dir, pki.CACertFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, pki.CAKeyFile), ca.KeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh, created, err := pki.LoadOrCreateCA(dir, "Skiff CA test")
	if err != nil || !created || bytes.Equal(fresh.KeyPEM(), ca.KeyPEM()) {
		t.Errorf("ca.key without ca.crt should make a new CA: %v, created %v", err, created)
	}
}

// writePair writes an operator's certificate and key files.
func writePair(t *testing.T, certPEM, keyPEM []byte) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "op.crt"), filepath.Join(dir, "op.key")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestOperatorKeyPair(t *testing.T) {
	opCA, err := pki.NewCA("operator CA")
	if err != nil {
		t.Fatal(err)
	}
	names := pki.NewSANs("skiff.example")
	certPEM, keyPEM, err := opCA.Issue(names, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := writePair(t, certPEM, keyPEM)
	c, err := pki.LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	verify(t, opCA, c, names)

	// Bad pairs: another certificate's key, a missing key, an expired
	// certificate, a key file that holds a certificate.
	otherCert, _, err := opCA.Issue(names, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expired, expiredKey, err := opCA.Issue(names, -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2][]byte{
		"mismatched key":    {otherCert, keyPEM},
		"expired":           {expired, expiredKey},
		"certificate twice": {certPEM, otherCert},
	} {
		cf, kf := writePair(t, pair[0], pair[1])
		if _, err := pki.LoadKeyPair(cf, kf); err == nil || !strings.Contains(err.Error(), cf) {
			t.Errorf("%s: LoadKeyPair = %v, want an error naming %s", name, err, cf)
		}
	}
	if _, err := pki.LoadKeyPair(certFile, filepath.Join(t.TempDir(), "missing.key")); err == nil {
		t.Error("a missing key file was accepted")
	}
	if _, err := pki.ParseCA(certPEM, keyPEM); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("ParseCA of a serving certificate = %v, want it refused", err)
	}
	if _, err := pki.ParseCA(opCA.CertPEM(), keyPEM); err == nil {
		t.Error("ParseCA with another key was accepted")
	}
}
