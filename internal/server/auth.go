package server

import (
	"context"
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"

	"github.com/skiff-sh/skiff/internal/authz"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/identity"
)

// Every request but the identity provider's (discovery, tokens, Graph,
// which authenticates its own) is authenticated, then authorized as ARM
// does before a resource provider sees it:
//
//	bearer token ──▶ the admin token: the admin principal (anything goes)
//	             └─▶ a token of Skiff's identity provider: its service principal
//	route ──▶ authz.RouteFor: the action, checked over the request's path
//	          (a role at the path or a parent scope grants it), or over the
//	          operation's target, or "any authenticated", or "member of the
//	          subscription"; a list route needs the action somewhere at or
//	          under its path, and its handler keeps the items in those scopes.
//
// A caller without the action gets 403 AuthorizationFailed whether or not
// the resource exists.

// principalKey and scopesKey carry a request's principal and, for a list
// route, the scopes it may list, in its context.
type (
	principalKey struct{}
	scopesKey    struct{}
)

// principalOf is the principal of a request's context; nil outside a
// request (the server's own work), which may do anything.
func principalOf(ctx context.Context) *identity.Principal {
	p, _ := ctx.Value(principalKey{}).(*identity.Principal)
	return p
}

// errNoToken is the 401 of a request without a usable bearer token.
func errNoToken() error {
	return errdefs.WithCode(errdefs.ErrUnauthorized, "AuthenticationFailed",
		"Authentication failed. The 'Authorization' header is missing or does not carry a valid bearer token.")
}

// authenticate returns the request's principal.
func (s *Server) authenticate(r *http.Request) (*identity.Principal, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return nil, errNoToken()
	}
	tok = strings.TrimSpace(tok)
	if s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Token)) == 1 {
		return &identity.Principal{Admin: true, DisplayName: "admin token"}, nil
	}
	if s.cfg.Identity == nil {
		return nil, errNoToken()
	}
	return s.cfg.Identity.Verify(r.Context(), tok)
}

// unrestricted reports whether p may do anything without asking RBAC:
// the admin, or any caller of a server without RBAC (admin token only).
func (s *Server) unrestricted(p *identity.Principal) bool {
	return p == nil || p.Admin || s.cfg.Authz == nil
}

// authorize decides a matched route (pattern) for the request's principal,
// and returns the request's context, which carries what a list handler
// needs.
func (s *Server) authorize(r *http.Request, pattern string, p params) (context.Context, error) {
	ctx := r.Context()
	who := principalOf(ctx)
	if s.unrestricted(who) {
		return ctx, nil
	}
	ra, ok := authz.RouteFor(r.Method, pattern)
	if !ok { // every route is in authz.Routes (TestEveryRouteIsAuthorized)
		return ctx, authz.Denied(who.ObjectID, r.Method+" "+pattern, r.URL.Path)
	}
	scope := strings.TrimRight(r.URL.Path, "/")
	switch ra.Scope {
	case authz.ScopeAuthenticated:
		return ctx, nil
	case authz.ScopeSubscriptionMember:
		if p["sub"] == "" {
			return ctx, nil // GET /subscriptions lists the caller's
		}
		in, err := s.cfg.Authz.InSubscription(ctx, who.ObjectID, p["sub"])
		if err != nil || in {
			return ctx, err
		}
		return ctx, authz.Denied(who.ObjectID, ra.Action, scope)
	case authz.ScopeOperationTarget:
		op, err := s.cfg.Store.GetOperation(ctx, p["op"])
		if err != nil || !strings.EqualFold(op.Subscription, p["sub"]) {
			return ctx, authz.Denied(who.ObjectID, ra.Action, scope)
		}
		return ctx, s.cfg.Authz.Authorize(ctx, who.ObjectID, ra.Action, op.ResourceID)
	}
	if ra.Scope != authz.ScopeList {
		return ctx, s.cfg.Authz.Authorize(ctx, who.ObjectID, ra.Action, scope)
	}
	base := listBase(scope)
	scopes, err := s.cfg.Authz.AllowedScopes(ctx, who.ObjectID, ra.Action, base)
	if err != nil {
		return ctx, err
	}
	if len(scopes) == 0 {
		return ctx, authz.Denied(who.ObjectID, ra.Action, base)
	}
	return context.WithValue(ctx, scopesKey{}, scopes), nil
}

// listBase is the scope whose items a list path lists: the subscription
// or resource group above ".../providers/NS/TYPE" or ".../resourceGroups".
func listBase(path string) string {
	segs := split(path)
	if n := len(segs); n >= 3 && strings.EqualFold(segs[n-3], "providers") {
		segs = segs[:n-3]
	} else if n > 0 {
		segs = segs[:n-1]
	}
	return "/" + strings.Join(segs, "/")
}

// listable reports whether a list handler shows the item at scope to the
// request's principal.
func listable(ctx context.Context, scope string) bool {
	scopes, ok := ctx.Value(scopesKey{}).([]string)
	return !ok || authz.InScopes(scopes, scope)
}

// allowGraph decides the identity provider's Graph calls: anyone
// authenticated reads; writing applications and service principals takes
// a principal that may assign roles somewhere (an Owner or User Access
// Administrator of some scope), since a principal is only of use once it
// is given a role.
func (s *Server) allowGraph(ctx context.Context, p *identity.Principal, action string) error {
	if s.unrestricted(p) || strings.HasSuffix(action, "/read") {
		return nil
	}
	scopes, err := s.cfg.Authz.AllowedScopes(ctx, p.ObjectID, authz.ActionRoleAssignmentsWrite, "/")
	if err != nil || len(scopes) > 0 {
		return err
	}
	return authz.Denied(p.ObjectID, action, "/")
}

// audit logs a request that changes something (or execs, attaches, or was
// refused) with its principal, action, scope and status. It never logs a
// body, a query or a header: no secret reaches it.
func (s *Server) audit(r *http.Request, pattern string, who *identity.Principal, status int) {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && status != http.StatusForbidden {
		return
	}
	action := r.Method + " " + pattern
	if ra, ok := authz.RouteFor(r.Method, pattern); ok {
		action = ra.Action
	}
	s.auditLog.Info("request", "principal", who, "action", action, "scope", r.URL.Path, "status", status)
}

// subscriptionsOf returns whether the request's principal sees a
// subscription in GET /subscriptions: one where it holds any role, at the
// subscription or under it (every one for a role at "/").
func (s *Server) subscriptionsOf(ctx context.Context) (func(id string) bool, error) {
	who := principalOf(ctx)
	if s.unrestricted(who) {
		return func(string) bool { return true }, nil
	}
	all, subs, err := s.cfg.Authz.Subscriptions(ctx, who.ObjectID)
	if err != nil {
		return nil, err
	}
	return func(id string) bool {
		return all || slices.ContainsFunc(subs, func(s string) bool { return strings.EqualFold(s, id) })
	}, nil
}

// forgetRoleAssignments deletes the role assignments left at and under
// the scope of a resource just created: ARM deletes a resource's
// assignments with it, and no assignment can be made on a resource that
// does not exist, so whatever is there is a deleted namesake's. The
// resource is stored already: a failure is logged, not answered.
func (s *Server) forgetRoleAssignments(ctx context.Context, scope string) {
	if s.cfg.Authz == nil {
		return
	}
	if _, err := s.cfg.Authz.DeleteRoleAssignmentsUnder(ctx, scope); err != nil {
		s.log.Warn("role assignments of a deleted namesake left", "scope", scope, "err", err)
	}
}
