package output

import (
	"slices"
	"sort"
)

// keyOrder holds the key orders of the multi-select hashes of a query
// ({a: x, b: y}), so that tables and tsv keep the order the user wrote, as
// az does; other objects are shown in sorted key order.
type keyOrder [][]string

// of returns the keys of m in display order.
func (o keyOrder) of(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, cand := range o {
		if len(cand) != len(keys) {
			continue
		}
		sorted := slices.Clone(cand)
		sort.Strings(sorted)
		if slices.Equal(sorted, keys) {
			return cand
		}
	}
	return keys
}

// hashKeyOrders scans a JMESPath expression for multi-select hashes and
// returns the keys of each, in the order written.
func hashKeyOrders(q string) [][]string {
	type frame struct {
		hash      bool
		expectKey bool
		pending   string
		keys      []string
	}
	var out [][]string
	var stack []*frame
	top := func() *frame {
		if len(stack) == 0 {
			return nil
		}
		return stack[len(stack)-1]
	}
	for i := 0; i < len(q); i++ {
		ch := q[i]
		f := top()
		switch {
		case ch == '\'' || ch == '"' || ch == '`':
			j := i + 1
			for j < len(q) && q[j] != ch {
				if q[j] == '\\' {
					j++
				}
				j++
			}
			if ch == '"' && f != nil && f.hash && f.expectKey && j <= len(q) {
				f.pending = q[i+1 : min(j, len(q))]
			}
			i = j
		case ch == '{':
			stack = append(stack, &frame{hash: true, expectKey: true})
		case ch == '[' || ch == '(':
			stack = append(stack, &frame{})
		case ch == '}' || ch == ']' || ch == ')':
			if f != nil {
				stack = stack[:len(stack)-1]
				if f.hash && ch == '}' && len(f.keys) > 0 {
					out = append(out, f.keys)
				}
			}
		case ch == ',' && f != nil && f.hash:
			f.expectKey, f.pending = true, ""
		case ch == ':' && f != nil && f.hash && f.expectKey:
			f.keys = append(f.keys, f.pending)
			f.expectKey = false
		case isIdent(ch) && f != nil && f.hash && f.expectKey:
			j := i
			for j < len(q) && isIdent(q[j]) {
				j++
			}
			f.pending = q[i:j]
			i = j - 1
		}
	}
	return out
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
