// Package authz is Skiff's role-based access control, as ARM does it: may
// this principal do this action at this scope. It keeps ARM's
// Microsoft.Authorization resources, role definitions (Azure's built-in
// roles with their real GUIDs, and custom roles of a subscription) and role
// assignments (a role for a principal at a subscription, a resource group
// or a resource), and evaluates them as ARM does:
//
//   - an assignment at a scope applies at that scope and every scope under
//     it, segment by segment and without case ("/subscriptions/S" covers
//     "/subscriptions/s/resourceGroups/rg/…");
//   - a role allows an action when one of its permissions' actions matches
//     it and that permission's notActions do not ("*" stands for any run
//     of characters, case does not count);
//   - what no applicable role allows is denied, with ARM's
//     AuthorizationFailed (403).
//
// Records live in the store's generic objects, one JSON document each:
//
//	authz.roledefinitions        <guid>                     custom role {v, subscription, definition}
//	authz.roledefinitions.names  <lower-case role name>     the GUID of the custom role of that name
//	authz.roleassignments        <guid>                     assignment {v, assignment}
//	authz.roleassignments.unique <scope>|<role guid>|<oid>  the GUID of the assignment (lower case)
//
// The .names and .unique documents make ARM's uniqueness rules (a role name
// once per directory; one assignment of a role to a principal at a scope)
// hold across servers: each is created only if absent, in the same store
// every server writes. v is the document's schema version (1).
//
// Evaluation reads an in-memory snapshot of the assignments and custom
// roles, so a check costs a map lookup and a few string comparisons. A
// write through this package drops the snapshot at once (the next check
// reads the store again); a write by another server (a cluster's other
// replicas share the etcd store) is seen within CacheTTL, by which the
// snapshot is bounded: it is reloaded when older. So a revoked role stops
// working on another replica within CacheTTL (default 2 s), as ARM's own
// caches delay a change by minutes.
package authz

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

// Object kinds, as the package doc draws them.
const (
	kindRoles       = "authz.roledefinitions"
	kindRoleNames   = "authz.roledefinitions.names"
	kindAssignments = "authz.roleassignments"
	kindUnique      = "authz.roleassignments.unique"
	schemaVersion   = 1
)

// DefaultCacheTTL bounds how long a change made on another server takes to
// be seen here.
const DefaultCacheTTL = 2 * time.Second

// Options configure an Authorizer.
type Options struct {
	// Store keeps the role definitions and assignments (required).
	Store store.ObjectStore
	// CacheTTL is the oldest a snapshot of the store is used for a check
	// (default DefaultCacheTTL).
	CacheTTL time.Duration
	// LookupPrincipal, when set, is asked about the principal of a new role
	// assignment: it returns the principal's type ("ServicePrincipal",
	// "User", …), or an error that refuses the assignment (the identity
	// provider's PrincipalNotFound, 400). Unset, the type is the one the
	// request names, else "ServicePrincipal", and any principal id is
	// taken.
	LookupPrincipal func(ctx context.Context, principalID string) (principalType string, err error)
	// Now returns the time for createdOn and updatedOn (default time.Now).
	Now func() time.Time
}

// Authorizer decides whether principals may do actions, and keeps the role
// definitions and assignments it decides by. It is safe for concurrent
// use.
type Authorizer struct {
	st     store.ObjectStore
	ttl    time.Duration
	lookup func(ctx context.Context, principalID string) (string, error)
	now    func() time.Time

	snap atomic.Pointer[snapshot]
	// gen counts writes through this Authorizer; a load that saw an older
	// gen is not kept, since it may miss that write.
	gen    atomic.Int64
	loadMu sync.Mutex
}

// New returns an Authorizer on opts.Store.
func New(opts Options) *Authorizer {
	a := &Authorizer{st: opts.Store, ttl: opts.CacheTTL, lookup: opts.LookupPrincipal, now: opts.Now}
	if a.ttl <= 0 {
		a.ttl = DefaultCacheTTL
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a
}

// snapshot is what the store held at one time, compiled for evaluation.
type snapshot struct {
	at time.Time
	// roles are the built-in and custom roles by lower-case GUID.
	roles map[string]*compiledRole
	// grants are the assignments by lower-case principal id.
	grants map[string][]grant
	// assignments are all assignments, by name; customs the custom roles.
	assignments []RoleAssignment
	customs     []storedRole
}

// grant is one assignment, ready to evaluate.
type grant struct {
	scope    []string // lower-case segments
	rawScope string   // as stored
	role     *compiledRole
}

type storedRole struct {
	V            int            `json:"v"`
	Subscription string         `json:"subscription"`
	Definition   RoleDefinition `json:"definition"`
}

type storedAssignment struct {
	V          int            `json:"v"`
	Assignment RoleAssignment `json:"assignment"`
}

var builtInCompiled = func() map[string]*compiledRole {
	m := map[string]*compiledRole{}
	for _, d := range BuiltInRoles("") {
		m[d.Name] = compileRole(d)
	}
	return m
}()

// invalidate drops the snapshot after a write through this Authorizer.
func (a *Authorizer) invalidate() {
	a.gen.Add(1)
	a.snap.Store(nil)
}

// current returns a snapshot no older than the TTL, loading one if need be
// (one load at a time; the others wait for it and share it).
func (a *Authorizer) current(ctx context.Context) (*snapshot, error) {
	if s := a.snap.Load(); s != nil && time.Since(s.at) < a.ttl {
		return s, nil
	}
	a.loadMu.Lock()
	defer a.loadMu.Unlock()
	if s := a.snap.Load(); s != nil && time.Since(s.at) < a.ttl {
		return s, nil
	}
	gen := a.gen.Load()
	s, err := a.load(ctx)
	if err != nil {
		return nil, err
	}
	if a.gen.Load() == gen {
		a.snap.Store(s)
	}
	return s, nil
}

func (a *Authorizer) load(ctx context.Context) (*snapshot, error) {
	s := &snapshot{at: time.Now(), roles: make(map[string]*compiledRole, len(builtInCompiled)), grants: map[string][]grant{}}
	for id, r := range builtInCompiled {
		s.roles[id] = r
	}
	roles, err := a.st.ListObjects(ctx, kindRoles, "")
	if err != nil {
		return nil, fmt.Errorf("role definitions: %w", err)
	}
	for _, o := range roles {
		var sr storedRole
		if err := json.Unmarshal(o.Value, &sr); err != nil {
			return nil, fmt.Errorf("role definition %s: %w", o.Key, err)
		}
		s.customs = append(s.customs, sr)
		s.roles[strings.ToLower(sr.Definition.Name)] = compileRole(sr.Definition)
	}
	objs, err := a.st.ListObjects(ctx, kindAssignments, "")
	if err != nil {
		return nil, fmt.Errorf("role assignments: %w", err)
	}
	for _, o := range objs {
		ra, err := decodeAssignment(o)
		if err != nil {
			return nil, err
		}
		s.assignments = append(s.assignments, ra)
		role := s.roles[roleGUIDOf(ra.Properties.RoleDefinitionID)]
		if role == nil {
			continue // its custom role was deleted: it grants nothing
		}
		p := strings.ToLower(ra.Properties.PrincipalID)
		s.grants[p] = append(s.grants[p], grant{scope: scopeSegments(ra.Properties.Scope), rawScope: ra.Properties.Scope, role: role})
	}
	return s, nil
}

func decodeAssignment(o store.Object) (RoleAssignment, error) {
	var sa storedAssignment
	if err := json.Unmarshal(o.Value, &sa); err != nil {
		return RoleAssignment{}, fmt.Errorf("role assignment %s: %w", o.Key, err)
	}
	return sa.Assignment, nil
}

// Denied is ARM's AuthorizationFailed (403) for principalID, action and
// scope.
func Denied(principalID, action, scope string) error {
	return errdefs.WithCode(errdefs.ErrForbidden, "AuthorizationFailed",
		"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' "+
			"or the scope is invalid. If access was recently granted, please refresh your credentials.",
		principalID, principalID, action, scope)
}

// Authorize returns nil if principalID may do action at scope (a role
// assigned to it at scope or a parent allows the action), else Denied. An
// error reading the store is returned as it is: nothing is allowed then.
func (a *Authorizer) Authorize(ctx context.Context, principalID, action, scope string) error {
	ok, err := a.allowed(ctx, principalID, action, scope)
	if err != nil {
		return err
	}
	if !ok {
		return Denied(principalID, action, scope)
	}
	return nil
}

// Can reports whether principalID may do action at scope; false when the
// store cannot be read, too.
func (a *Authorizer) Can(ctx context.Context, principalID, action, scope string) bool {
	ok, err := a.allowed(ctx, principalID, action, scope)
	return err == nil && ok
}

func (a *Authorizer) allowed(ctx context.Context, principalID, action, scope string) (bool, error) {
	if principalID == "" {
		return false, nil
	}
	s, err := a.current(ctx)
	if err != nil {
		return false, err
	}
	grants := s.grants[strings.ToLower(principalID)]
	if len(grants) == 0 {
		return false, nil
	}
	segs, act := scopeSegments(scope), strings.ToLower(action)
	for _, g := range grants {
		if within(segs, g.scope) && g.role.allows(act) {
			return true, nil
		}
	}
	return false, nil
}

// AllowedScopes returns the scopes at or under base in all of which
// principalID may do action: base itself when a role at it or above it
// allows the action, else the narrower scopes of the assignments that do.
// None is under another. A list handler keeps the items InScopes of them.
func (a *Authorizer) AllowedScopes(ctx context.Context, principalID, action, base string) ([]string, error) {
	s, err := a.current(ctx)
	if err != nil {
		return nil, err
	}
	segs, act := scopeSegments(base), strings.ToLower(action)
	var out []string
	for _, g := range s.grants[strings.ToLower(principalID)] {
		if !g.role.allows(act) {
			continue
		}
		switch {
		case within(segs, g.scope):
			return []string{cmp.Or(strings.TrimRight(base, "/"), "/")}, nil
		case within(g.scope, segs):
			out = append(out, g.rawScope)
		}
	}
	return minimalScopes(out), nil
}

// minimalScopes drops the scopes under another, and duplicates, and sorts
// the rest.
func minimalScopes(scopes []string) []string {
	slices.SortFunc(scopes, func(x, y string) int {
		return cmp.Or(cmp.Compare(len(scopeSegments(x)), len(scopeSegments(y))), strings.Compare(strings.ToLower(x), strings.ToLower(y)))
	})
	var out []string
	for _, sc := range scopes {
		if !InScopes(out, sc) {
			out = append(out, sc)
		}
	}
	slices.SortFunc(out, func(x, y string) int { return strings.Compare(strings.ToLower(x), strings.ToLower(y)) })
	return out
}

// Subscriptions returns the subscriptions in which principalID holds any
// role, at the subscription or under it, as GET /subscriptions lists them
// for a caller; all is true when it holds one at the root scope "/", which
// covers every subscription.
func (a *Authorizer) Subscriptions(ctx context.Context, principalID string) (all bool, subs []string, err error) {
	s, err := a.current(ctx)
	if err != nil {
		return false, nil, err
	}
	seen := map[string]bool{}
	for _, g := range s.grants[strings.ToLower(principalID)] {
		if len(g.scope) == 0 {
			all = true
			continue
		}
		sub := subscriptionOf(g.rawScope)
		if sub != "" && !seen[strings.ToLower(sub)] {
			seen[strings.ToLower(sub)] = true
			subs = append(subs, sub)
		}
	}
	slices.SortFunc(subs, func(x, y string) int { return strings.Compare(strings.ToLower(x), strings.ToLower(y)) })
	return all, subs, nil
}

// InSubscription reports whether principalID holds any role at, above or
// under the subscription sub: ARM shows such a principal the subscription
// (ScopeSubscriptionMember).
func (a *Authorizer) InSubscription(ctx context.Context, principalID, sub string) (bool, error) {
	all, subs, err := a.Subscriptions(ctx, principalID)
	if err != nil {
		return false, err
	}
	return all || slices.ContainsFunc(subs, func(s string) bool { return strings.EqualFold(s, sub) }), nil
}
