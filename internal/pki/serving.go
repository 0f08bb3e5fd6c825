package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/internal/atomicfile"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// SANs are the names a serving certificate is valid for: DNS names and IP
// addresses, each sorted and without repeats.
type SANs struct {
	DNSNames []string
	IPs      []netip.Addr
}

// NewSANs sorts names into DNS names (lower-cased, without a trailing
// dot) and IP addresses ("[::1]" is ::1). Empty names and unspecified
// addresses (0.0.0.0, ::), which no client dials, are left out.
func NewSANs(names ...string) SANs {
	var s SANs
	for _, n := range names {
		n = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
		if n == "" {
			continue
		}
		if ip, err := netip.ParseAddr(strings.Trim(n, "[]")); err == nil {
			if ip = ip.Unmap().WithZone(""); !ip.IsUnspecified() && !slices.Contains(s.IPs, ip) {
				s.IPs = append(s.IPs, ip)
			}
			continue
		}
		if !slices.Contains(s.DNSNames, n) {
			s.DNSNames = append(s.DNSNames, n)
		}
	}
	slices.Sort(s.DNSNames)
	slices.SortFunc(s.IPs, netip.Addr.Compare)
	return s
}

// String lists the names, DNS names first.
func (s SANs) String() string {
	all := slices.Clone(s.DNSNames)
	for _, ip := range s.IPs {
		all = append(all, ip.String())
	}
	return strings.Join(all, ", ")
}

// Of reads the SANs of a certificate.
func Of(cert *x509.Certificate) SANs {
	names := slices.Clone(cert.DNSNames)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	return NewSANs(names...)
}

// Equal reports whether s and o hold the same names.
func (s SANs) Equal(o SANs) bool {
	return slices.Equal(s.DNSNames, o.DNSNames) && slices.Equal(s.IPs, o.IPs)
}

// Issue makes a serving certificate for sans, valid for validity from now
// (an hour earlier, for clocks behind), with a new ECDSA P-256 key. The
// certificate's PEM is the leaf followed by the CA's certificate.
func (ca *CA) Issue(sans SANs, validity time.Duration) (certPEM, keyPEM []byte, _ error) {
	if len(sans.DNSNames) == 0 && len(sans.IPs) == 0 {
		return nil, nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "a serving certificate needs at least one name")
	}
	cn := "skiff server"
	if len(sans.DNSNames) > 0 {
		cn = sans.DNSNames[0]
	}
	tmpl := &x509.Certificate{
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    sans.DNSNames,
	}
	for _, ip := range sans.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	der, keyPEM, err := newCert(tmpl, cn, validity, ca.Cert, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("serving certificate: %w", err)
	}
	return append(encodePEM("CERTIFICATE", der), ca.certPEM...), keyPEM, nil
}

// EnsureServing returns dir's serving certificate (CertFile, KeyFile) if
// ca signed it, it carries exactly sans and it is valid for longer than
// RenewBefore; otherwise it issues a new one, writes it there (the key
// 0600, the certificate 0644) and says so with reissued.
func EnsureServing(dir string, ca *CA, sans SANs) (_ tls.Certificate, reissued bool, _ error) {
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	if c, ok := usableServing(certPath, keyPath, ca, sans); ok {
		return c, false, nil
	}
	certPEM, keyPEM, err := ca.Issue(sans, ServingValidity)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	// The key first: a crash in between leaves a pair that does not
	// match, which the next start replaces.
	if err := atomicfile.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, false, err
	}
	if err := atomicfile.WriteFile(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, false, err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("serving certificate: %w", err)
	}
	return c, true, nil
}

// usableServing reads the serving certificate at certPath and keyPath and
// says whether it can be served on: a matching pair, signed by ca, for
// sans, not near its end.
func usableServing(certPath, keyPath string, ca *CA, sans SANs) (tls.Certificate, bool) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return tls.Certificate{}, false
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return tls.Certificate{}, false
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil || c.Leaf == nil {
		return tls.Certificate{}, false
	}
	ok := c.Leaf.CheckSignatureFrom(ca.Cert) == nil && Of(c.Leaf).Equal(sans) &&
		time.Until(c.Leaf.NotAfter) > RenewBefore && !time.Now().Before(c.Leaf.NotBefore)
	return c, ok
}

// LoadKeyPair reads an operator's certificate (PEM, the leaf first, then
// any intermediates) and its key, and refuses a key that is not the
// certificate's and a certificate that has expired.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "certificate %s and key %s: %v", certFile, keyFile, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return tls.Certificate{}, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "certificate %s: %v", certFile, err)
		}
	}
	if now := time.Now(); now.After(c.Leaf.NotAfter) {
		return tls.Certificate{}, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "certificate %s expired on %s", certFile, c.Leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	return c, nil
}
