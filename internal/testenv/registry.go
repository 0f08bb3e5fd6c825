package testenv

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// registryBinary is the Debian package docker-registry's server (distribution 2.8).
const registryBinary = "docker-registry"

// RegistryOptions configures StartRegistry. The zero value is an anonymous,
// read-write registry.
type RegistryOptions struct {
	// Username and Password, when Username is set, protect the registry: with
	// htpasswd basic auth by default, or through the token server when
	// TokenAuth is set.
	Username, Password string
	// TokenAuth configures the registry with `auth: token` (bearer tokens)
	// and starts a small token server on loopback that issues JWTs, signed
	// with a key the registry trusts, to clients that present Username and
	// Password (or to anyone, when Username is empty).
	TokenAuth bool
}

// Registry is a running docker-registry on loopback.
type Registry struct {
	// Addr is "127.0.0.1:PORT"; image references are Addr + "/repo:tag".
	Addr string
	// Username and Password are the credentials the registry demands (empty
	// for an anonymous registry).
	Username, Password string
	// TokenRealm is the token server's URL when the registry uses bearer
	// tokens, "" otherwise.
	TokenRealm string
}

// StartRegistry starts Debian's docker-registry on a free 127.0.0.1 port with
// its storage in a test temp dir, waits until /v2/ answers, and kills it in
// t.Cleanup. It fails the test if the registry binary is missing.
func StartRegistry(t testing.TB, opts RegistryOptions) *Registry {
	t.Helper()
	bin, err := exec.LookPath(registryBinary)
	if err != nil {
		t.Fatalf("testenv: %s not found (install Debian's docker-registry package): %v", registryBinary, err)
	}
	dir := t.TempDir()
	reg := &Registry{Username: opts.Username, Password: opts.Password}

	var (
		authCfg string
		front   net.Listener // token mode: the address clients use
		tk      *tokenKey
	)
	switch {
	case opts.TokenAuth:
		// go-containerregistry only accepts a token realm on a loopback
		// address when it is the registry's own host:port, so the token
		// server and the registry share one front address (as in Harbor).
		front, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testenv: listen: %v", err)
		}
		reg.TokenRealm = "http://" + front.Addr().String() + "/token"
		tk = tokenCert(t, dir)
		authCfg = fmt.Sprintf(`auth:
  token:
    realm: %s
    service: %s
    issuer: %s
    rootcertbundle: %s
`, reg.TokenRealm, tokenService, tokenIssuer, tk.cert)
	case opts.Username != "":
		htpasswd, err := exec.LookPath("htpasswd")
		if err != nil {
			t.Fatalf("testenv: htpasswd not found (install Debian's apache2-utils package): %v", err)
		}
		out, err := exec.Command(htpasswd, "-Bbn", opts.Username, opts.Password).Output()
		if err != nil {
			t.Fatalf("testenv: htpasswd -Bbn: %v", err)
		}
		pwFile := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(pwFile, bytes.TrimSpace(out), 0o600); err != nil {
			t.Fatal(err)
		}
		authCfg = fmt.Sprintf("auth:\n  htpasswd:\n    realm: skiff-test\n    path: %s\n", pwFile)
	}

	// A port picked by the kernel may be taken again before the registry
	// binds it; try a few times.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		addr := FreeLoopbackAddr(t, "127.0.0.1")
		cfgPath := filepath.Join(dir, "config.yml")
		cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, filepath.Join(dir, "data"), addr, authCfg)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		logPath := filepath.Join(dir, fmt.Sprintf("registry-%d.log", attempt))
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "serve", cfgPath)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			logFile.Close()
			t.Fatalf("testenv: start %s: %v", bin, err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
			logFile.Close()
		}
		if err := waitRegistry(addr, exited, 15*time.Second); err != nil {
			stop()
			log, _ := os.ReadFile(logPath)
			lastErr = fmt.Errorf("%w; registry log:\n%s", err, log)
			continue
		}
		t.Cleanup(stop)
		reg.Addr = addr
		if front != nil {
			reg.Addr = serveFront(t, front, addr, tk, opts.Username, opts.Password)
		}
		return reg
	}
	if front != nil {
		front.Close()
	}
	t.Fatalf("testenv: docker-registry did not start: %v", lastErr)
	return nil
}

// waitRegistry polls http://addr/v2/ until it answers 200 or 401.
func waitRegistry(addr string, exited <-chan struct{}, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("docker-registry exited")
		default:
		}
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer on http://%s/v2/ within %s", addr, timeout)
}

const (
	tokenService = "skiff-test-registry"
	tokenIssuer  = "skiff-test-token-server"
)

// tokenKey is the token server's signing key and the path of its
// self-signed certificate, which the registry trusts.
type tokenKey struct {
	key  *ecdsa.PrivateKey
	der  []byte
	cert string
}

// tokenCert makes a token-signing key and writes its certificate to dir.
func tokenCert(t testing.TB, dir string) *tokenKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: tokenIssuer},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPath := filepath.Join(dir, "token-cert.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tokenKey{key: key, der: der, cert: certPath}
}

// serveFront serves, on l, a Docker registry token server (the protocol of
// distribution's docs/spec/auth/token.md) at /token and a reverse proxy to
// the registry at backend for everything else, until the test ends. It
// returns l's address.
func serveFront(t testing.TB, l net.Listener, backend string, tk *tokenKey, username, password string) string {
	t.Helper()
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: backend})
	mux := http.NewServeMux()
	mux.Handle("/", proxy)
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		subject := ""
		if username != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != username || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="skiff-test-token"`)
				http.Error(w, `{"details":"invalid credentials"}`, http.StatusUnauthorized)
				return
			}
			subject = u
		}
		token, err := signToken(tk.key, tk.der, subject, r.URL.Query()["scope"])
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"token":        token,
			"access_token": token,
			"expires_in":   600,
			"issued_at":    time.Now().UTC().Format(time.RFC3339),
		})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		wg.Wait()
	})
	return l.Addr().String()
}

// tokenAccess is one entry of a registry JWT's "access" claim.
type tokenAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// signToken returns an ES256 JWT granting every requested scope
// ("repository:NAME:pull,push").
func signToken(key *ecdsa.PrivateKey, certDER []byte, subject string, scopes []string) (string, error) {
	access := []tokenAccess{}
	for _, scope := range scopes {
		for _, s := range strings.Fields(scope) {
			parts := strings.Split(s, ":")
			if len(parts) < 3 {
				continue
			}
			access = append(access, tokenAccess{
				Type:    parts[0],
				Name:    strings.Join(parts[1:len(parts)-1], ":"),
				Actions: strings.Split(parts[len(parts)-1], ","),
			})
		}
	}
	now := time.Now()
	jti := make([]byte, 8)
	_, _ = rand.Read(jti)
	header, err := json.Marshal(map[string]any{
		"typ": "JWT",
		"alg": "ES256",
		"x5c": []string{base64.StdEncoding.EncodeToString(certDER)},
	})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(map[string]any{
		"iss":    tokenIssuer,
		"sub":    subject,
		"aud":    tokenService,
		"exp":    now.Add(10 * time.Minute).Unix(),
		"nbf":    now.Add(-time.Minute).Unix(),
		"iat":    now.Unix(),
		"jti":    fmt.Sprintf("%x", jti),
		"access": access,
	})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signingInput := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signingInput))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signingInput + "." + enc.EncodeToString(sig), nil
}
