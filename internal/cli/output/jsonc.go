package output

import (
	"bytes"
	"encoding/json"
	"sort"
)

// ANSI colours of jsonc.
const (
	colorKey    = "\x1b[94m"
	colorString = "\x1b[32m"
	colorLit    = "\x1b[36m"
	colorReset  = "\x1b[0m"
)

// writeJSONC writes v as indented JSON with coloured keys and values.
func writeJSONC(b *bytes.Buffer, v any, indent string) {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 0 {
			b.WriteString("{}")
			return
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("{\n")
		for i, k := range keys {
			b.WriteString(indent + "  " + colorKey + quote(k) + colorReset + ": ")
			writeJSONC(b, t[k], indent+"  ")
			if i < len(keys)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "}")
	case []any:
		if len(t) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteString("[\n")
		for i, e := range t {
			b.WriteString(indent + "  ")
			writeJSONC(b, e, indent+"  ")
			if i < len(t)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "]")
	case string:
		b.WriteString(colorString + quote(t) + colorReset)
	default:
		lit, _ := json.Marshal(t)
		b.WriteString(colorLit + string(lit) + colorReset)
	}
}

func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return string(bytes.TrimRight(b.Bytes(), "\n"))
}
