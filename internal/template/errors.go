package template

import (
	"strings"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Unwrap gives the error's class, errdefs.ErrInvalidArgument.
func (e *Error) Unwrap() error { return errdefs.ErrInvalidArgument }

func isSecureType(t string) bool {
	return strings.EqualFold(t, "securestring") || strings.EqualFold(t, "secureobject")
}

// secrets are the values of the secure parameters, which no message may
// show: a function's error can quote its argument ("cannot convert the
// string '…' to an integer").
func (p *plan) secrets() []string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			if len(x) >= 3 {
				out = append(out, x)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	for _, ps := range p.params {
		if ps.state == 2 && ps.err == nil && isSecureType(ps.decl.typ) {
			walk(ps.value)
			if _, ok := ps.value.(string); !ok && ps.value != nil {
				out = append(out, toJSON(ps.value))
			}
		}
	}
	return out
}

// redact removes the secure parameters' values from an error's message.
func (p *plan) redact(err error) error {
	te, ok := err.(*Error)
	if !ok || p == nil {
		return err
	}
	msg := te.Message
	for _, s := range p.secrets() {
		msg = strings.ReplaceAll(msg, s, "***")
	}
	if msg == te.Message {
		return err
	}
	cp := *te
	cp.Message = msg
	return &cp
}
