package output

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// skipKeys are the keys az leaves out of automatic tables.
var skipKeys = map[string]bool{"id": true, "type": true, "etag": true}

// writeTable writes v as az's table: with cols when the command has its
// own, else one column per scalar key (capitalised, nested values left
// out, null as empty cells), or a Result column for scalars.
func writeTable(w io.Writer, v any, cols *Columns, order keyOrder) error {
	if v == nil {
		return nil
	}
	items, isList := v.([]any)
	if !isList {
		items = []any{v}
	}
	var headers []string
	var rows [][]string
	if cols != nil {
		headers = cols.Headers
		for _, it := range items {
			rows = append(rows, cols.Row(it))
		}
	} else {
		index := map[string]int{}
		var cells []map[string]string
		for _, it := range items {
			row := map[string]string{}
			add := func(h, val string) {
				if _, ok := index[h]; !ok {
					index[h] = len(headers)
					headers = append(headers, h)
				}
				row[h] = val
			}
			switch t := it.(type) {
			case map[string]any:
				for _, k := range order.of(t) {
					val := t[k]
					if skipKeys[k] || isNested(val) {
						continue
					}
					add(capitalize(k), Scalar(val))
				}
			case []any:
				for i, e := range t {
					add(fmt.Sprintf("Column%d", i+1), Scalar(e))
				}
			default:
				add("Result", Scalar(t))
			}
			cells = append(cells, row)
		}
		for _, c := range cells {
			r := make([]string, len(headers))
			for i, h := range headers {
				r[i] = c[h]
			}
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 || len(headers) == 0 {
		return nil
	}
	_, err := io.WriteString(w, FormatTable(headers, rows))
	return err
}

// FormatTable lays out rows under headers like tabulate's "simple" format,
// which az uses: columns two spaces apart, each as wide as its widest cell
// and at least its header plus two, a dashed rule under the header, no
// trailing blanks.
func FormatTable(headers []string, rows [][]string) string {
	width := make([]int, len(headers))
	for i, h := range headers {
		width[i] = utf8.RuneCountInString(h) + 2
	}
	for _, r := range rows {
		for i := range width {
			if i < len(r) {
				width[i] = max(width[i], utf8.RuneCountInString(r[i]))
			}
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		var l strings.Builder
		for i := range width {
			if i > 0 {
				l.WriteString("  ")
			}
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			l.WriteString(c + strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)))
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	line(headers)
	rule := make([]string, len(width))
	for i, n := range width {
		rule[i] = strings.Repeat("-", n)
	}
	line(rule)
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

// Scalar renders a JSON scalar as a table or tsv cell.
func Scalar(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(t)
	case []any:
		return strconv.Itoa(len(t))
	case map[string]any:
		return ""
	}
	return fmt.Sprint(v)
}

func isNested(v any) bool {
	switch v.(type) {
	case []any, map[string]any:
		return true
	}
	return false
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return strings.ToUpper(string(r)) + s[n:]
}
