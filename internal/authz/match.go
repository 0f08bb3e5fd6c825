package authz

import (
	"strings"

	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// pattern is an action of a role: a string in which "*" stands for any
// run of characters, "/" included ("*/read", "Microsoft.Authorization/*/
// Delete", "Microsoft.Compute/*Extensions/read"), compared without case as
// ARM compares actions.
type pattern struct {
	// parts are the lower-case literals between the stars; star reports
	// whether there is any star (else parts[0] is the whole action).
	parts []string
	star  bool
}

func compile(action string) pattern {
	parts := strings.Split(strings.ToLower(action), "*")
	return pattern{parts: parts, star: len(parts) > 1}
}

func compileAll(actions []string) []pattern {
	out := make([]pattern, 0, len(actions))
	for _, a := range actions {
		out = append(out, compile(a))
	}
	return out
}

// match reports whether the lower-case action matches. The first literal
// is a prefix and the last a suffix; those between are found left to right,
// each as early as it can be, which is enough for a pattern of literals and
// stars alone.
func (p pattern) match(action string) bool {
	if !p.star {
		return action == p.parts[0]
	}
	first, last := p.parts[0], p.parts[len(p.parts)-1]
	if len(action) < len(first)+len(last) || !strings.HasPrefix(action, first) || !strings.HasSuffix(action, last) {
		return false
	}
	rest := action[len(first) : len(action)-len(last)]
	for _, lit := range p.parts[1 : len(p.parts)-1] {
		i := strings.Index(rest, lit)
		if i < 0 {
			return false
		}
		rest = rest[i+len(lit):]
	}
	return true
}

func matchAny(ps []pattern, action string) bool {
	for _, p := range ps {
		if p.match(action) {
			return true
		}
	}
	return false
}

// scopeSegments are a scope's path segments, lower-case: ARM compares
// scopes segment by segment without case. The root scope "/" has none.
func scopeSegments(scope string) []string {
	s := strings.Trim(strings.ToLower(scope), "/")
	if s == "" {
		return nil
	}
	return strings.Split(s, "/")
}

// within reports whether scope (segments) is parent, or the same as, of
// child: an assignment at parent applies at child.
func within(child, parent []string) bool {
	if len(parent) > len(child) {
		return false
	}
	for i, s := range parent {
		if child[i] != s {
			return false
		}
	}
	return true
}

// Within reports whether the scope or resource id child is at or under
// parent (segment-wise, without case): "/subscriptions/s/resourceGroups/rg"
// is under "/subscriptions/S", "/subscriptions/s/resourceGroups/rg2" is not
// under "…/resourceGroups/rg".
func Within(child, parent string) bool {
	return within(scopeSegments(child), scopeSegments(parent))
}

// InScopes reports whether id is at or under one of scopes (AllowedScopes'
// answer), for a list handler that keeps only what the caller may read.
func InScopes(scopes []string, id string) bool {
	segs := scopeSegments(id)
	for _, s := range scopes {
		if within(segs, scopeSegments(s)) {
			return true
		}
	}
	return false
}

// CleanScope checks a scope a role can be assigned at and returns it
// without a trailing "/": the root "/", a subscription, a resource group,
// or a resource ("…/providers/{namespace}/{type}/{name}[/{type}/{name}…]").
// Anything else is InvalidScope (400).
func CleanScope(scope string) (string, error) {
	if scope == "/" {
		return "/", nil
	}
	s := strings.TrimRight(scope, "/")
	segs := strings.Split(strings.TrimPrefix(s, "/"), "/")
	bad := func() (string, error) {
		return "", errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidScope",
			"The scope '%s' is not valid. It must be '/', a subscription, a resource group or a resource.", clip(scope))
	}
	if !strings.HasPrefix(s, "/") || len(segs) < 2 || !strings.EqualFold(segs[0], "subscriptions") {
		return bad()
	}
	for _, seg := range segs {
		if seg == "" || strings.ContainsAny(seg, "?#|\x00") {
			return bad()
		}
	}
	switch n := len(segs); {
	case n == 2:
	case n == 4 && strings.EqualFold(segs[2], "resourceGroups"):
	case n >= 8 && n%2 == 0 && strings.EqualFold(segs[2], "resourceGroups") && strings.EqualFold(segs[4], "providers"):
	default:
		return bad()
	}
	return s, nil
}

// subscriptionOf returns the subscription id of a scope, or "" for the root.
func subscriptionOf(scope string) string {
	segs := strings.Split(strings.Trim(scope, "/"), "/")
	if len(segs) >= 2 && strings.EqualFold(segs[0], "subscriptions") {
		return segs[1]
	}
	return ""
}

// isGUID reports whether s is a GUID in ARM's form (with dashes).
func isGUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}

// clip shortens a client's value for an error message.
func clip(s string) string {
	const n = 200
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
