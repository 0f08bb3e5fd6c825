package authz

import (
	"strings"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// clause is one term of an ARM $filter: a function call (atScope(),
// assignedTo('x')) or a comparison (principalId eq 'x').
type clause struct {
	name  string // lower-case
	value string
	call  bool
}

// parseFilter reads the $filter grammar of Microsoft.Authorization: terms
// joined by "and", each "name()", "name('value')" or "name eq 'value'",
// with OData's quoting (” for a quote in a value). Names compare without
// case.
func parseFilter(s string) ([]clause, error) {
	bad := func() ([]clause, error) {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidFilter", "The $filter '%s' is not valid or not supported.", clip(s))
	}
	var out []clause
	rest := strings.TrimSpace(s)
	for rest != "" {
		if len(out) > 0 {
			r, ok := cutWordFold(rest, "and")
			if !ok {
				return bad()
			}
			rest = strings.TrimLeft(r, " ")
		}
		i := strings.IndexAny(rest, "( ")
		if i <= 0 {
			return bad()
		}
		c := clause{name: strings.ToLower(rest[:i])}
		rest = rest[i:]
		var ok bool
		if rest[0] == '(' {
			c.call = true
			rest = strings.TrimLeft(rest[1:], " ")
			if !strings.HasPrefix(rest, ")") {
				if c.value, rest, ok = quoted(rest); !ok {
					return bad()
				}
				rest = strings.TrimLeft(rest, " ")
				if !strings.HasPrefix(rest, ")") {
					return bad()
				}
			}
			rest = rest[1:]
		} else {
			if rest, ok = cutWordFold(strings.TrimLeft(rest, " "), "eq"); !ok {
				return bad()
			}
			if c.value, rest, ok = quoted(strings.TrimLeft(rest, " ")); !ok {
				return bad()
			}
		}
		out = append(out, c)
		rest = strings.TrimLeft(rest, " ")
	}
	return out, nil
}

// cutWordFold cuts the word w (any case) and the space after it off s.
func cutWordFold(s, w string) (string, bool) {
	if len(s) <= len(w) || !strings.EqualFold(s[:len(w)], w) || s[len(w)] != ' ' {
		return s, false
	}
	return s[len(w)+1:], true
}

// quoted reads a single-quoted OData string off s.
func quoted(s string) (value, rest string, ok bool) {
	if !strings.HasPrefix(s, "'") {
		return "", s, false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		return b.String(), s[i+1:], true
	}
	return "", s, false
}

func unsupported(filter string, c clause) error {
	return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidFilter",
		"The $filter '%s' is not supported: '%s' is not a filter of this list.", clip(filter), c.name)
}

// ParseRoleAssignmentFilter reads a roleAssignments list's $filter:
// atScope(), principalId eq '…', assignedTo('…'), joined by "and".
func ParseRoleAssignmentFilter(filter string) (RoleAssignmentFilter, error) {
	var f RoleAssignmentFilter
	cs, err := parseFilter(filter)
	if err != nil {
		return f, err
	}
	for _, c := range cs {
		switch {
		case c.name == "atscope" && c.call && c.value == "":
			f.AtScope = true
		case (c.name == "principalid" && !c.call) || (c.name == "assignedto" && c.call):
			f.PrincipalID = c.value
		default:
			return f, unsupported(filter, c)
		}
	}
	return f, nil
}

// ParseRoleDefinitionFilter reads a roleDefinitions list's $filter:
// roleName eq '…', type eq '…', atScopeAndBelow(), joined by "and".
func ParseRoleDefinitionFilter(filter string) (RoleDefinitionFilter, error) {
	var f RoleDefinitionFilter
	cs, err := parseFilter(filter)
	if err != nil {
		return f, err
	}
	for _, c := range cs {
		switch {
		case c.name == "rolename" && !c.call:
			f.RoleName = c.value
		case c.name == "type" && !c.call:
			f.Type = c.value
		case c.name == "atscopeandbelow" && c.call && c.value == "":
			f.AtScopeAndBelow = true
		default:
			return f, unsupported(filter, c)
		}
	}
	return f, nil
}
