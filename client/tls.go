package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/pki"
)

// HTTPS: a Skiff server started with --tls-listen serves a certificate of
// its own CA, DATA-DIR/ca.crt. A client trusts it with Options.CAFile (or
// a pool in Options.RootCAs):
//
//	c, err := client.New(client.Options{Endpoint: "https://skiff.example:7443", Token: tok,
//		CAFile: "/var/lib/skiff/ca.crt"})
//
// The API, long-running operations and exec and attach sessions (wss:)
// then all trust it. A certificate the client does not trust is a
// *CertificateError.

// DefaultCAHint is CertificateError's hint when Options.CAHint is empty.
const DefaultCAHint = "trust the server's CA certificate (its DATA-DIR/ca.crt) with Options.CAFile"

// tlsTrust is how a client trusts https servers.
type tlsTrust struct {
	// config is the TLS configuration of the client's transport (nil: Go's
	// default), which exec and attach websockets dial with too.
	config *tls.Config
	hint   string
}

// httpClient returns the HTTP client of o: o.HTTPClient (or a new one),
// with a transport that trusts o's CA if it gives one.
func httpClient(o Options) (*http.Client, tlsTrust, error) {
	trust := tlsTrust{hint: o.CAHint}
	if trust.hint == "" {
		trust.hint = DefaultCAHint
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	roots := o.RootCAs
	switch {
	case o.CAFile != "" && roots != nil:
		return nil, trust, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "give the client CAFile or RootCAs, not both")
	case o.CAFile != "":
		var err error
		if roots, err = pki.TrustedRoots(o.CAFile); err != nil {
			return nil, trust, err
		}
	case roots == nil:
		if tr, ok := hc.Transport.(*http.Transport); ok {
			trust.config = tr.TLSClientConfig
		}
		return hc, trust, nil
	}
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	tr, ok := rt.(*http.Transport)
	if !ok {
		return nil, trust, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "a CA needs an HTTPClient whose Transport is an *http.Transport (or nil), not a %T: set the CA in its own TLS configuration", rt)
	}
	tr = tr.Clone()
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{}
	}
	tr.TLSClientConfig.RootCAs = roots
	tr.TLSClientConfig.MinVersion = max(tr.TLSClientConfig.MinVersion, tls.VersionTLS12)
	trust.config = tr.TLSClientConfig
	c := *hc
	c.Transport = tr
	return &c, trust, nil
}

// CertificateError says that the client did not accept the server's
// certificate: signed by a CA it does not trust, or not for the name the
// endpoint has. It is of class ErrUnavailable, and wraps the x509 error.
type CertificateError struct {
	Endpoint string
	// Err is the x509 error (x509.UnknownAuthorityError,
	// x509.HostnameError, ...).
	Err error
	// Hint says what to do.
	Hint string
}

func (e *CertificateError) Error() string {
	return fmt.Sprintf("cannot trust the Skiff server at %s: %v; %s", e.Endpoint, e.Err, e.Hint)
}

// Unwrap returns ErrUnavailable and the x509 error.
func (e *CertificateError) Unwrap() []error { return []error{errdefs.ErrUnavailable, e.Err} }

// certificateError turns a round trip's error about the server's
// certificate into a *CertificateError; nil if err is not one.
func (c *Client) certificateError(err error) error {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &unknown):
		return &CertificateError{Endpoint: c.Endpoint(), Err: unknown, Hint: c.tls.hint}
	case errors.As(err, &hostname):
		return &CertificateError{Endpoint: c.Endpoint(), Err: hostname,
			Hint: "connect with a name the certificate holds, or give the server this one with --tls-san"}
	case errors.As(err, &invalid):
		return &CertificateError{Endpoint: c.Endpoint(), Err: invalid, Hint: "check the server's certificate and this machine's clock"}
	}
	return nil
}
