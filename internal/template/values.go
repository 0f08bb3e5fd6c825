package template

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Values are plain JSON values: nil, bool, int64, float64, string,
// []any and map[string]any (objects keep their keys' case; lookups are
// case-insensitive, as ARM's). unknownValue stands for what only a
// deployment knows (reference, listKeys) while a template is bound.

type unknownValue struct{}

var unknown any = unknownValue{}

func isUnknown(v any) bool { _, ok := v.(unknownValue); return ok }

// hasUnknown reports whether v holds an unknown value anywhere.
func hasUnknown(v any) bool {
	switch x := v.(type) {
	case unknownValue:
		return true
	case []any:
		for _, e := range x {
			if hasUnknown(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if hasUnknown(e) {
				return true
			}
		}
	}
	return false
}

// scanUnknown is hasUnknown that also counts the values it visited.
func scanUnknown(v any) (bool, int) {
	n := 0
	var walk func(any) bool
	walk = func(v any) bool {
		n++
		switch x := v.(type) {
		case unknownValue:
			return true
		case []any:
			for _, e := range x {
				if walk(e) {
					return true
				}
			}
		case map[string]any:
			for _, e := range x {
				if walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v), n
}

// Limits on what an evaluation may produce, so that a hostile template
// cannot exhaust the server.
const (
	maxStringLen   = 1 << 20 // bytes in a string a function produces
	maxValueSize   = 4 << 20 // a value's size in bytes of JSON, about
	maxArrayLen    = 100000  // elements of an array a function produces
	maxCopyCount   = 800     // instances of one copy loop (ARM's limit)
	maxResources   = 800     // resource instances in a template (ARM's)
	maxRangeCount  = 10000   // range()'s count (ARM's)
	maxWork        = 50_000_000
	maxUserFnDepth = 1
)

// typeName is ARM's name for a value's type in messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "Null"
	case bool:
		return "Boolean"
	case int64:
		return "Integer"
	case float64:
		return "Float"
	case string:
		return "String"
	case []any:
		return "Array"
	case map[string]any:
		return "Object"
	case unknownValue:
		return "Unknown"
	}
	return fmt.Sprintf("%T", v)
}

// lookup finds an object's property case-insensitively (an exact match
// first; among keys that differ only by case, the first in sort order).
func lookup(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	var found string
	ok := false
	for k := range m {
		if strings.EqualFold(k, key) && (!ok || k < found) {
			found, ok = k, true
		}
	}
	if !ok {
		return nil, false
	}
	return m[found], true
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// toJSON writes v compactly, as ARM's string() and Newtonsoft's
// Formatting.None do.
func toJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(jsonable(v)); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// jsonable replaces unknown values (only seen while binding) so that
// encoding cannot fail.
func jsonable(v any) any {
	switch x := v.(type) {
	case unknownValue:
		return nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	}
	return v
}

// valueSize estimates v's size as JSON, stopping once it passes limit.
func valueSize(v any, limit int) int {
	n := 0
	var walk func(any)
	walk = func(v any) {
		if n > limit {
			return
		}
		switch x := v.(type) {
		case string:
			n += len(x) + 2
		case []any:
			n += 2
			for _, e := range x {
				walk(e)
				n++
				if n > limit {
					return
				}
			}
		case map[string]any:
			n += 2
			for k, e := range x {
				n += len(k) + 4
				walk(e)
				if n > limit {
					return
				}
			}
		default:
			n += 8
		}
	}
	walk(v)
	return n
}

// deepEqual is ARM's equals: values of the same type and content; an
// integer equals a float of the same value.
func deepEqual(a, b any) bool {
	switch x := a.(type) {
	case int64:
		switch y := b.(type) {
		case int64:
			return x == y
		case float64:
			return float64(x) == y
		}
		return false
	case float64:
		switch y := b.(type) {
		case int64:
			return x == float64(y)
		case float64:
			return x == y
		}
		return false
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !deepEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, e := range x {
			f, ok := y[k]
			if !ok || !deepEqual(e, f) {
				return false
			}
		}
		return true
	}
	return a == b
}

// normalize turns a value from outside (given parameters, a Runtime's
// answer) into the plain values the evaluator works with: json.Number and
// whole float64s become int64, other Go types go through encoding/json.
func normalize(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string, int64:
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case float32:
		return normalize(float64(x))
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), nil
		}
		return x, nil
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, nil
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, err
		}
		return f, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case unknownValue:
		return x, nil
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return normalize(out)
}

// display is a value as text, as ARM's string() and concat() write it.
func display(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return toJSON(v)
}
