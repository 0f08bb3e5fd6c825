package cluster

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// JoinPath is the server's route agents join through.
const JoinPath = "/cluster/join"

// JoinRequest is what an agent says when it joins.
type JoinRequest struct {
	// Name is the host's name.
	Name string `json:"name"`
}

// JoinResponse tells a joining agent how to reach the cluster's state.
type JoinResponse struct {
	// EtcdEndpoints and Prefix locate the store.
	EtcdEndpoints []string `json:"etcdEndpoints"`
	Prefix        string   `json:"prefix"`
	// SealKey (hex) opens the secrets in the store: the agent needs them
	// to run groups. It is never written to disk by the agent.
	SealKey string `json:"sealKey"`
	// AgentToken is what the servers call the agent's API with.
	AgentToken string `json:"agentToken"`
	// HostLostAfter is how long the host may miss its heartbeat before it
	// is lost (its heartbeat's TTL).
	HostLostAfter string `json:"hostLostAfter"`
	// Registries is the servers' registry configuration (mirrors,
	// credentials), which the agent pulls with.
	Registries json.RawMessage `json:"registries,omitempty"`
}

// JoinHandler answers joins that present token; respond builds the
// answer.
func JoinHandler(token string, respond func(JoinRequest) (*JoinResponse, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(code int, msg string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(map[string]string{"error": msg})
		}
		if r.Method != http.MethodPost {
			fail(http.StatusMethodNotAllowed, "POST only")
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(token)) != 1 {
			fail(http.StatusUnauthorized, "the join token is missing or wrong")
			return
		}
		var req JoinRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil || req.Name == "" || !validName(req.Name) {
			fail(http.StatusBadRequest, "the join request must name the host (letters, digits, '-', '.', '_'; at most 63)")
			return
		}
		resp, err := respond(req)
		if err != nil {
			fail(http.StatusServiceUnavailable, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	})
}

func validName(n string) bool {
	if len(n) > 63 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// Join asks the servers in turn, until one answers, to let the host join;
// it returns the answer and the server that gave it. A refused token is
// not tried on the next server (they share it). roots are what https
// servers are trusted with (nil: the system's roots).
func Join(ctx context.Context, servers []string, token string, req JoinRequest, roots *x509.CertPool) (*JoinResponse, string, error) {
	body, _ := json.Marshal(req)
	hc := &http.Client{Timeout: 10 * time.Second}
	if roots != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		hc.Transport = tr
	}
	var errs []error
	for _, srv := range servers {
		srv = strings.TrimRight(strings.TrimSpace(srv), "/")
		if srv == "" {
			continue
		}
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, srv+JoinPath, bytes.NewReader(body))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", srv, err))
			continue
		}
		hr.Header.Set("Authorization", "Bearer "+token)
		hr.Header.Set("Content-Type", "application/json")
		res, err := hc.Do(hr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", srv, err))
			continue
		}
		data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		var out struct {
			JoinResponse
			Error string `json:"error"`
		}
		_ = json.Unmarshal(data, &out)
		switch {
		case res.StatusCode == http.StatusOK:
			return &out.JoinResponse, srv, nil
		case res.StatusCode == http.StatusUnauthorized:
			return nil, srv, fmt.Errorf("join %s: %s: %w", srv, out.Error, errdefs.ErrUnauthorized)
		case res.StatusCode == http.StatusBadRequest:
			return nil, srv, fmt.Errorf("join %s: %s: %w", srv, out.Error, errdefs.ErrInvalidArgument)
		default:
			errs = append(errs, fmt.Errorf("%s: %s %s", srv, res.Status, out.Error))
		}
	}
	if len(errs) == 0 {
		return nil, "", fmt.Errorf("join: no server given: %w", errdefs.ErrInvalidArgument)
	}
	return nil, "", fmt.Errorf("join: no server answered: %w: %w", errors.Join(errs...), errdefs.ErrUnavailable)
}
