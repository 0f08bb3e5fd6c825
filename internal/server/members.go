package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/deployment"
	"github.com/skiff-sh/skiff/internal/store"
)

// memberAPIVersion is the api-version of the members' requests.
const memberAPIVersion = "2026-07-01"

// memberSet is the container groups a resource that keeps some (an
// NGroup, a standby pool) holds: those of its resource group tagged with
// its name. It lists them from the store, and creates and deletes them
// through the server's own routes as the resource's principal, so that
// they are authorized, validated and run as any group is.
type memberSet struct {
	s   *Server
	who deployment.Principal
	// sub and rg hold the members; tag=owner marks them.
	sub, rg, tag, owner string
	// What a member is made from.
	location  string
	zones     []string
	profileID string
}

func (m memberSet) path(name string) string { return api.ResourceID(m.sub, m.rg, name) }

// do sends one request as the owner's principal, asking for the operation
// rather than waiting for a member to run (the reconciler looks again).
func (m memberSet) do(ctx context.Context, method, path string, body []byte) (int, http.Header, []byte, error) {
	return deployResources{m.s}.do(ctx, m.who, method, path, memberAPIVersion, body, http.Header{"Prefer": {"respond-async"}})
}

// groups returns the members' records.
func (m memberSet) groups(ctx context.Context) ([]store.ContainerGroup, error) {
	all, err := m.s.cfg.Store.ListContainerGroups(ctx, m.sub, m.rg)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, g := range all {
		if strings.EqualFold(g.Resource.Tags[m.tag], m.owner) {
			out = append(out, g)
		}
	}
	return out, nil
}

// memberRevision is the profile revision a group was made from (0: none).
func memberRevision(g *store.ContainerGroup) int {
	if ref := g.Resource.Properties.ContainerGroupProfile; ref != nil && ref.Revision != nil {
		return *ref.Revision
	}
	return 0
}

func memberError(name string, code int, body []byte) error {
	rep := reply(code, body)
	if rep.Error != nil {
		return fmt.Errorf("member %s: %d %s: %s", name, code, rep.Error.Code, rep.Error.Message)
	}
	return fmt.Errorf("member %s: %d", name, code)
}

// put creates member name from the profile's revision, or makes it that
// revision.
func (m memberSet) put(ctx context.Context, name string, revision int) error {
	body, err := json.Marshal(map[string]any{
		"location": m.location, "zones": m.zones, "tags": map[string]string{m.tag: m.owner},
		"properties": map[string]any{"containerGroupProfile": map[string]any{"id": m.profileID, "revision": revision}},
	})
	if err != nil {
		return err
	}
	code, _, resp, err := m.do(ctx, http.MethodPut, m.path(name), body)
	if err != nil {
		return err
	}
	if code >= 300 {
		return memberError(name, code, resp)
	}
	return nil
}

func (m memberSet) delete(ctx context.Context, name string) error {
	code, _, resp, err := m.do(ctx, http.MethodDelete, m.path(name), nil)
	if err != nil {
		return err
	}
	if code >= 300 && code != http.StatusNotFound {
		return memberError(name, code, resp)
	}
	return nil
}
