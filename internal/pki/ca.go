// Package pki is Skiff's certificate authority and the server's serving
// certificate, so that `skiff server --tls-listen` serves HTTPS that a
// client can trust with one file, DATA-DIR/ca.crt (REQUESTS_CA_BUNDLE for
// the az CLI, SKIFF_CA_FILE for skiff):
//
//	DATA-DIR/ca.crt   0644  the CA's certificate (ECDSA P-256, 10 years): what clients trust
//	DATA-DIR/ca.key   0600  its key (embedded mode only: a cluster keeps it sealed in its store)
//	DATA-DIR/tls.crt  0644  the serving certificate, signed by the CA, then the CA's certificate
//	DATA-DIR/tls.key  0600  its key
//
// The CA is made once and kept: a restart reuses it, so clients keep
// trusting the server. The serving certificate is reissued (by the same
// CA) when the names it should carry changed or when it expires within
// RenewBefore. An operator's own certificate (LoadKeyPair) replaces all of
// it. Everything is crypto/x509 of the standard library; files are written
// with atomicfile.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/skiff-sh/skiff/internal/atomicfile"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// File names in a data dir.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
	CertFile   = "tls.crt"
	KeyFile    = "tls.key"
)

// Validity periods.
const (
	// CAValidity is how long a CA made by NewCA is valid.
	CAValidity = 10 * 365 * 24 * time.Hour
	// ServingValidity is how long a serving certificate is valid.
	ServingValidity = 397 * 24 * time.Hour
	// RenewBefore is how long before its end a serving certificate is
	// reissued (at the server's start).
	RenewBefore = 30 * 24 * time.Hour
	// backdate is how far before now certificates start, for clients
	// whose clocks are a little behind.
	backdate = time.Hour
)

// CA is a certificate authority: its certificate and its key.
type CA struct {
	// Cert is the CA's certificate.
	Cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// NewCA makes a CA named name (its subject's common name): a new ECDSA
// P-256 key and a self-signed certificate valid for CAValidity.
func NewCA(name string) (*CA, error) {
	der, keyPEM, err := newCert(&x509.Certificate{
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		IsCA:           true,
		MaxPathLenZero: true,
	}, name, CAValidity, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	return ParseCA(encodePEM("CERTIFICATE", der), keyPEM)
}

// newCert makes a new ECDSA P-256 key and a certificate of tmpl for it:
// subject cn, a random serial, valid for validity from backdate ago,
// signed by parent with parentKey (nil: self-signed). It returns the
// certificate's DER and the key's PEM (PKCS #8).
func newCert(tmpl *x509.Certificate, cn string, validity time.Duration, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (der, keyPEM []byte, _ error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl.SerialNumber, tmpl.Subject = serial.Add(serial, big.NewInt(1)), pkix.Name{CommonName: cn, Organization: []string{"Skiff"}}
	tmpl.NotBefore, tmpl.NotAfter, tmpl.BasicConstraintsValid = now.Add(-backdate), now.Add(validity), true
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	if der, err = x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey); err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return der, encodePEM("PRIVATE KEY", keyDER), nil
}

// ParseCA reads a CA from its PEM certificate and PEM key (PKCS #8, SEC 1
// or what openssl writes), and checks that they belong together and that
// the certificate is a CA's.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "CA certificate %q is not a CA's (no CA basic constraint or certificate signing usage)", cert.Subject.CommonName)
	}
	key, err := parseECKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "the CA key does not belong to CA certificate %q", cert.Subject.CommonName)
	}
	// Encoded again from what was parsed, so that CertPEM never carries
	// anything else the input held (such as the key).
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	return &CA{Cert: cert, key: key, certPEM: encodePEM("CERTIFICATE", cert.Raw), keyPEM: encodePEM("PRIVATE KEY", keyDER)}, nil
}

// CertPEM is the CA's certificate in PEM: what clients trust.
func (ca *CA) CertPEM() []byte { return ca.certPEM }

// KeyPEM is the CA's key in PEM (PKCS #8). It is a secret.
func (ca *CA) KeyPEM() []byte { return ca.keyPEM }

// Pool is a certificate pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// LoadOrCreateCA loads the CA of dir (CACertFile, CAKeyFile), or makes one
// named name and writes it there (the key 0600, the certificate 0644) if
// dir has none; created says which. A key without its certificate (a crash
// between the two writes) is replaced; a certificate without its key is an
// error, since clients may trust it already.
func LoadOrCreateCA(dir, name string) (_ *CA, created bool, _ error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := os.ReadFile(keyPath)
	switch {
	case cerr == nil && kerr == nil:
		ca, err := ParseCA(certPEM, keyPEM)
		if err != nil {
			return nil, false, fmt.Errorf("%s and %s: %w", certPath, keyPath, err)
		}
		return ca, false, nil
	case cerr == nil && errors.Is(kerr, fs.ErrNotExist):
		return nil, false, errdefs.WithCode(errdefs.ErrInvalidArgument, "",
			"%s exists without its key %s: restore the key, or remove %s to make a new CA (clients then need the new one)", certPath, keyPath, certPath)
	case cerr != nil && !errors.Is(cerr, fs.ErrNotExist):
		return nil, false, fmt.Errorf("CA: %w", cerr)
	case kerr != nil && !errors.Is(kerr, fs.ErrNotExist):
		return nil, false, fmt.Errorf("CA: %w", kerr)
	}
	ca, err := NewCA(name)
	if err != nil {
		return nil, false, err
	}
	// The key first: a crash before the certificate is written leaves a
	// key that the next start replaces.
	if err := atomicfile.WriteFile(keyPath, ca.keyPEM, 0o600); err != nil {
		return nil, false, err
	}
	if err := atomicfile.WriteFile(certPath, ca.certPEM, 0o644); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

// WriteCACert writes the CA's certificate to dir's CACertFile (0644) unless
// it holds that already.
func WriteCACert(dir string, ca *CA) error {
	path := filepath.Join(dir, CACertFile)
	if old, err := os.ReadFile(path); err == nil && string(old) == string(ca.certPEM) {
		return nil
	}
	return atomicfile.WriteFile(path, ca.certPEM, 0o644)
}

// TrustedRoots is the system's trusted roots and the certificates of the
// PEM files (a server's ca.crt): what a client of a Skiff server trusts.
func TrustedRoots(files ...string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "CA file: %v", err)
		}
		if !pool.AppendCertsFromPEM(data) {
			return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "CA file %s holds no PEM certificate", f)
		}
	}
	return pool, nil
}

func encodePEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// firstBlock is the first PEM block of data of one of types; what names
// it in the error when there is none.
func firstBlock(data []byte, what string, types ...string) (*pem.Block, error) {
	for {
		b, rest := pem.Decode(data)
		if b == nil {
			return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "no PEM %s found", what)
		}
		if slices.Contains(types, b.Type) {
			return b, nil
		}
		data = rest
	}
}

// parseCert reads the first certificate of PEM data.
func parseCert(data []byte) (*x509.Certificate, error) {
	b, err := firstBlock(data, "certificate", "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(b.Bytes)
}

// parseECKey reads an ECDSA key from PEM (PKCS #8 or SEC 1).
func parseECKey(data []byte) (*ecdsa.PrivateKey, error) {
	b, err := firstBlock(data, "private key", "EC PRIVATE KEY", "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	if b.Type == "EC PRIVATE KEY" {
		return x509.ParseECPrivateKey(b.Bytes)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "the key is a %T, not an ECDSA key", k)
	}
	return ec, nil
}
