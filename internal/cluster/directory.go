package cluster

import (
	"context"
	"net/http"
	"strings"
	"sync"

	"github.com/skiff-sh/skiff/internal/agentapi"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
	"github.com/skiff-sh/skiff/internal/store"
)

// Directory finds the agents of the cluster's hosts from their records,
// and calls them with the agent token (server.HostDirectory).
type Directory struct {
	st    store.Store
	token string
	hc    *http.Client

	mu     sync.Mutex
	agents map[string]hostapi.Host // by agent URL
}

// NewDirectory returns a directory over the store's hosts; it calls the
// agents with hc (nil: agentapi.NewClient's default).
func NewDirectory(st store.Store, agentToken string, hc *http.Client) *Directory {
	return &Directory{st: st, token: agentToken, hc: hc, agents: map[string]hostapi.Host{}}
}

// Agent returns the named host's agent.
func (d *Directory) Agent(ctx context.Context, name string) (hostapi.Host, error) {
	h, err := d.st.GetHost(ctx, name)
	if err != nil {
		return nil, err
	}
	if h.AgentURL == "" {
		return nil, errdefs.WithCode(errdefs.ErrUnavailable, "HostUnreachable", "Host %s has no agent API address.", h.Name)
	}
	if !h.Alive {
		return nil, errdefs.WithCode(errdefs.ErrUnavailable, "HostUnreachable", "Host %s is not responding (%s).", h.Name, strings.ToLower(h.State))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.agents[h.AgentURL]
	if !ok {
		a = agentapi.NewClient(h.AgentURL, d.token, d.hc)
		d.agents[h.AgentURL] = a
	}
	return a, nil
}

// Ready lists the hosts that are alive and Ready.
func (d *Directory) Ready(ctx context.Context) ([]string, error) {
	hosts, err := d.st.ListHosts(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, h := range hosts {
		if h.Alive && h.State == store.HostReady {
			out = append(out, h.Name)
		}
	}
	return out, nil
}
