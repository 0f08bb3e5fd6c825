package deployment

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/skiff-sh/skiff/api"
)

// redacted replaces a secure value in a message.
const redacted = "[secure value redacted]"

// minScrubbed is the shortest secure value scrubbed from messages: a
// shorter one would blank innocent words and says little.
const minScrubbed = 4

// scrubber removes the values of secure parameters from text.
type scrubber struct {
	secrets []string // longest first
}

// newScrubber collects the strings of the secure parameters' values
// (every string in a secureObject, and its JSON as a whole).
func newScrubber(types map[string]string, values map[string]any) *scrubber {
	s := &scrubber{}
	add := func(v string) {
		if len(v) >= minScrubbed {
			s.secrets = append(s.secrets, v)
			// As JSON and Go quote it, escapes included.
			if q := strconv.Quote(v); q[1:len(q)-1] != v {
				s.secrets = append(s.secrets, q[1:len(q)-1])
			}
			if b, err := json.Marshal(v); err == nil && string(b[1:len(b)-1]) != v {
				s.secrets = append(s.secrets, string(b[1:len(b)-1]))
			}
		}
	}
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case string:
			add(t)
		case map[string]any:
			for _, e := range t {
				walk(e)
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	for name, typ := range types {
		if !secureType(typ) {
			continue
		}
		v := values[name]
		walk(v)
		if _, isString := v.(string); !isString && v != nil {
			if b, err := json.Marshal(v); err == nil {
				add(string(b))
			}
		}
	}
	slices.SortFunc(s.secrets, func(a, b string) int { return len(b) - len(a) })
	return s
}

// text returns msg without secure values.
func (s *scrubber) text(msg string) string {
	if s == nil {
		return msg
	}
	for _, v := range s.secrets {
		msg = strings.ReplaceAll(msg, v, redacted)
	}
	return msg
}

// error returns a copy of e without secure values.
func (s *scrubber) error(e *api.ErrorBody) *api.ErrorBody {
	if e == nil {
		return nil
	}
	out := &api.ErrorBody{Code: e.Code, Message: s.text(e.Message), Target: s.text(e.Target)}
	for _, d := range e.Details {
		out.Details = append(out.Details, *s.error(&d))
	}
	return out
}
