package identity

import (
	"strings"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// The OData $filter subset that az sends to Graph, and/joined terms of
//
//	prop eq 'value'                          displayName, appId, id
//	startswith(prop,'value')                 displayName
//	coll/any(x:x eq 'value')                 servicePrincipalNames, identifierUris
//
// String literals are single-quoted, with '' for a quote. Comparisons ignore
// case, as Graph's on these properties.

type filterTerm struct {
	op    string // "eq", "startswith", "any"
	prop  string
	value string
}

type odataFilter []filterTerm

func unsupportedQuery(format string, a ...any) error {
	return errdefs.WithCode(errdefs.ErrInvalidArgument, "Request_UnsupportedQuery", format, a...)
}

// lexFilter splits a filter into identifiers (with '/' and '.'), quoted
// strings (kept with a leading '), and the punctuation ( ) , :.
func lexFilter(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case strings.IndexByte("(),:", c) >= 0:
			toks = append(toks, string(c))
			i++
		case c == '\'':
			var b strings.Builder
			b.WriteByte('\'')
			i++
			for {
				if i >= len(s) {
					return nil, unsupportedQuery("Unterminated string literal in the filter.")
				}
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			toks = append(toks, b.String())
		default:
			j := i
			for j < len(s) && (isIdentByte(s[j])) {
				j++
			}
			if j == i {
				return nil, unsupportedQuery("Invalid filter clause: unexpected '%c'.", c)
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks, nil
}

func isIdentByte(c byte) bool {
	return c == '/' || c == '.' || c == '_' || c == '@' || c == '$' ||
		(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// parseFilter parses a $filter; props maps each filterable property of
// the resource to whether it is a collection.
func parseFilter(s, resource string, props map[string]bool) (odataFilter, error) {
	toks, err := lexFilter(s)
	if err != nil {
		return nil, err
	}
	pos := 0
	next := func() string {
		if pos >= len(toks) {
			return ""
		}
		pos++
		return toks[pos-1]
	}
	// The helpers below record the first error and then do nothing.
	var perr error
	expect := func(want string) {
		if got := next(); perr == nil && got != want {
			perr = unsupportedQuery("Invalid filter clause: expected '%s', got '%s'.", want, got)
		}
	}
	eq := func(where string) {
		if op := next(); perr == nil && !strings.EqualFold(op, "eq") {
			perr = unsupportedQuery("Unsupported filter operator '%s'%s: only eq, startswith and any are supported.", op, where)
		}
	}
	literal := func() string {
		t := next()
		if perr == nil && !strings.HasPrefix(t, "'") {
			perr = unsupportedQuery("Invalid filter clause: expected a quoted string, got '%s'.", t)
		}
		return strings.TrimPrefix(t, "'")
	}
	prop := func(name string, coll bool) string {
		for p, isColl := range props {
			if strings.EqualFold(p, name) && isColl == coll {
				return p
			}
		}
		if perr == nil {
			perr = unsupportedQuery("Unsupported or invalid query filter clause specified for property '%s' of resource '%s'.", name, resource)
		}
		return ""
	}
	var f odataFilter
	for {
		t := next()
		var term filterTerm
		switch {
		case strings.EqualFold(t, "startswith"):
			expect("(")
			term = filterTerm{op: "startswith", prop: prop(next(), false)}
			expect(",")
			term.value = literal()
			expect(")")
		case strings.HasSuffix(strings.ToLower(t), "/any"):
			term = filterTerm{op: "any", prop: prop(t[:len(t)-len("/any")], true)}
			expect("(")
			v := next()
			expect(":")
			if v2 := next(); perr == nil && (v2 != v || v == "") {
				perr = unsupportedQuery("Invalid filter clause: lambda variable '%s' is not '%s'.", v2, v)
			}
			eq(" in any()")
			term.value = literal()
			expect(")")
		case t != "" && !strings.HasPrefix(t, "'"):
			term = filterTerm{op: "eq", prop: prop(t, false)}
			eq("")
			term.value = literal()
		default:
			return nil, unsupportedQuery("Invalid filter clause near '%s'.", t)
		}
		if perr != nil {
			return nil, perr
		}
		f = append(f, term)
		switch t := next(); {
		case t == "":
			return f, nil
		case !strings.EqualFold(t, "and"):
			return nil, unsupportedQuery("Unsupported filter clause '%s': only 'and' joins terms.", t)
		}
	}
}

// match reports whether an object passes every term; scalar and coll give
// its properties.
func (f odataFilter) match(scalar func(string) string, coll func(string) []string) bool {
	for _, t := range f {
		switch t.op {
		case "eq":
			if !strings.EqualFold(scalar(t.prop), t.value) {
				return false
			}
		case "startswith":
			v := scalar(t.prop)
			if len(v) < len(t.value) || !strings.EqualFold(v[:len(t.value)], t.value) {
				return false
			}
		case "any":
			found := false
			for _, v := range coll(t.prop) {
				found = found || strings.EqualFold(v, t.value)
			}
			if !found {
				return false
			}
		}
	}
	return true
}
