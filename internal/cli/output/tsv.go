package output

import (
	"io"
	"strings"
)

// writeTSV writes one line per item of a list (or one for a single value):
// the values of an object tab-separated (nested objects as empty cells,
// lists as their length), a scalar as itself. Like az, no header.
func writeTSV(w io.Writer, v any, order keyOrder) error {
	items, isList := v.([]any)
	if !isList {
		if v == nil {
			return nil
		}
		items = []any{v}
	}
	var b strings.Builder
	for _, it := range items {
		var cells []string
		switch t := it.(type) {
		case map[string]any:
			for _, k := range order.of(t) {
				cells = append(cells, Scalar(t[k]))
			}
		case []any:
			for _, e := range t {
				cells = append(cells, Scalar(e))
			}
		default:
			cells = append(cells, Scalar(t))
		}
		b.WriteString(strings.Join(cells, "\t") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
