// Package output prints command results the way az does: json (sorted
// keys, two-space indent), jsonc (the same, coloured), yaml, table (the
// aligned layout of az's tabulate), tsv (values only) or none, after an
// optional JMESPath --query.
package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/jmespath/go-jmespath"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Format is an output format.
type Format string

// Output formats, as az names them.
const (
	JSON  Format = "json"
	JSONC Format = "jsonc"
	YAML  Format = "yaml"
	Table Format = "table"
	TSV   Format = "tsv"
	None  Format = "none"
)

// Formats lists the accepted formats.
func Formats() []Format { return []Format{JSON, JSONC, YAML, Table, TSV, None} }

// ParseFormat validates a format name.
func ParseFormat(s string) (Format, error) {
	formats := Formats()
	for _, f := range formats {
		if strings.EqualFold(s, string(f)) {
			return f, nil
		}
	}
	names := make([]string, len(formats))
	for i, f := range formats {
		names[i] = string(f)
	}
	return "", errdefs.WithCode(errdefs.ErrInvalidArgument, "", "--output %q: allowed values: %s", s, strings.Join(names, ", "))
}

// Options are the output flags of a command.
type Options struct {
	Format Format
	Query  string
}

// Columns is a command's own table (az's table transformer): the headers
// and the row of one item. It is used by -o table when no --query is given.
type Columns struct {
	Headers []string
	Row     func(item any) []string
}

// Normalize turns a Go value into the JSON-shaped value Print expects
// (map[string]any, []any, string, float64, bool, nil).
func Normalize(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Print writes the JSON-shaped value v to w in the format o asks for.
func Print(w io.Writer, v any, o Options, cols *Columns) error {
	order := keyOrder(nil)
	if o.Query != "" {
		jp, err := jmespath.Compile(o.Query)
		if err != nil {
			return errdefs.WithCode(errdefs.ErrInvalidArgument, "", "--query %q: %v", o.Query, err)
		}
		if v, err = jp.Search(v); err != nil {
			return errdefs.WithCode(errdefs.ErrInvalidArgument, "", "--query %q: %v", o.Query, err)
		}
		order = keyOrder(hashKeyOrders(o.Query))
		cols = nil
	}
	switch o.Format {
	case JSON, "":
		return writeJSON(w, v)
	case JSONC:
		var buf bytes.Buffer
		writeJSONC(&buf, v, "")
		buf.WriteByte('\n')
		_, err := w.Write(buf.Bytes())
		return err
	case YAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("yaml: %w", err)
		}
		_, err = w.Write(b)
		return err
	case Table:
		return writeTable(w, v, cols, order)
	case TSV:
		return writeTSV(w, v, order)
	case None:
		return nil
	}
	return errdefs.WithCode(errdefs.ErrInvalidArgument, "", "unknown output format %q", o.Format)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Field walks a JSON-shaped value along object keys and returns what it
// finds, or nil.
func Field(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
