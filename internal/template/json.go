package template

import (
	"bytes"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A node is one JSON value of the template document with its position,
// so that errors can name the line and column as ARM's do. Objects keep
// their members in document order and their keys' case.
type node struct {
	kind  nodeKind
	b     bool
	i     int64
	f     float64
	s     string
	arr   []*node
	keys  []string
	vals  []*node
	off   int  // byte offset of the value's first character
	expr  expr // for a string that is an expression ("[...]")
	isLit bool // for a string: s is literal text (after the "[[" escape)
}

type nodeKind uint8

const (
	kNull nodeKind = iota
	kBool
	kInt
	kFloat
	kString
	kArray
	kObject
)

// get returns an object member by name, case-insensitively as ARM reads
// its template's keywords (an exact match first).
func (n *node) get(key string) *node {
	if n == nil || n.kind != kObject {
		return nil
	}
	for i, k := range n.keys {
		if k == key {
			return n.vals[i]
		}
	}
	for i, k := range n.keys {
		if strings.EqualFold(k, key) {
			return n.vals[i]
		}
	}
	return nil
}

// maxJSONDepth bounds the nesting of the template document.
const maxJSONDepth = 256

type jsonParser struct {
	s     []byte
	i     int
	depth int
	// singleQuotes accepts 'strings', as Newtonsoft does for json().
	singleQuotes bool
}

type jsonError struct {
	msg string
	off int
}

func (e *jsonError) Error() string { return e.msg }

func parseJSON(s []byte) (*node, error) { return parseJSONWith(&jsonParser{s: s}) }

func parseJSONWith(p *jsonParser) (*node, error) {
	s := p.s
	if len(s) >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF {
		p.i = 3
	}
	if err := p.space(); err != nil {
		return nil, err
	}
	n, err := p.value()
	if err != nil {
		return nil, err
	}
	if err := p.space(); err != nil {
		return nil, err
	}
	if p.i < len(p.s) {
		return nil, p.errf("Additional text encountered after finished reading JSON content: %s", p.peekChar())
	}
	return n, nil
}

func (p *jsonParser) peekChar() string {
	if p.i >= len(p.s) {
		return "end of input"
	}
	r, _ := utf8.DecodeRune(p.s[p.i:])
	return string(r)
}

func (p *jsonParser) errf(format string, a ...any) error {
	return &jsonError{msg: fmt.Sprintf(format, a...), off: p.i}
}

// space skips whitespace and comments (ARM accepts // and /* */ comments
// in templates).
func (p *jsonParser) space() error {
	for p.i < len(p.s) {
		switch c := p.s[p.i]; c {
		case ' ', '\t', '\n', '\r':
			p.i++
		case '/':
			if p.i+1 >= len(p.s) {
				return p.errf("Unexpected character encountered while parsing value: /")
			}
			switch p.s[p.i+1] {
			case '/':
				for p.i < len(p.s) && p.s[p.i] != '\n' {
					p.i++
				}
			case '*':
				end := bytes.Index(p.s[p.i+2:], []byte("*/"))
				if end < 0 {
					return p.errf("Unexpected end while parsing comment.")
				}
				p.i += 2 + end + 2
			default:
				return p.errf("Unexpected character encountered while parsing value: /")
			}
		default:
			return nil
		}
	}
	return nil
}

func (p *jsonParser) value() (*node, error) {
	if p.i >= len(p.s) {
		return nil, p.errf("Unexpected end of content while parsing JSON.")
	}
	start := p.i
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"' || (c == '\'' && p.singleQuotes):
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return &node{kind: kString, s: s, off: start}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't' && strings.HasPrefix(string(p.s[p.i:min(len(p.s), p.i+4)]), "true"):
		p.i += 4
		return &node{kind: kBool, b: true, off: start}, nil
	case c == 'f' && strings.HasPrefix(string(p.s[p.i:min(len(p.s), p.i+5)]), "false"):
		p.i += 5
		return &node{kind: kBool, off: start}, nil
	case c == 'n' && strings.HasPrefix(string(p.s[p.i:min(len(p.s), p.i+4)]), "null"):
		p.i += 4
		return &node{kind: kNull, off: start}, nil
	}
	return nil, p.errf("Unexpected character encountered while parsing value: %s", p.peekChar())
}

func (p *jsonParser) enter() error {
	p.depth++
	if p.depth > maxJSONDepth {
		return p.errf("The JSON document is nested more than %d levels deep.", maxJSONDepth)
	}
	return nil
}

func (p *jsonParser) object() (*node, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	n := &node{kind: kObject, off: p.i}
	p.i++ // {
	if err := p.space(); err != nil {
		return nil, err
	}
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return n, nil
	}
	for {
		if err := p.space(); err != nil {
			return nil, err
		}
		if p.i >= len(p.s) || !(p.s[p.i] == '"' || (p.s[p.i] == '\'' && p.singleQuotes)) {
			return nil, p.errf("Invalid property identifier character: %s", p.peekChar())
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		if err := p.space(); err != nil {
			return nil, err
		}
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.errf("Invalid character after parsing property name. Expected ':' but got: %s", p.peekChar())
		}
		p.i++
		if err := p.space(); err != nil {
			return nil, err
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		replaced := false
		for j, k := range n.keys {
			if k == key { // a repeated name: the last one wins
				n.vals[j] = v
				replaced = true
				break
			}
		}
		if !replaced {
			n.keys = append(n.keys, key)
			n.vals = append(n.vals, v)
		}
		if err := p.space(); err != nil {
			return nil, err
		}
		if p.i >= len(p.s) {
			return nil, p.errf("Unexpected end of content while parsing JSON.")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return n, nil
		default:
			return nil, p.errf("After parsing a value an unexpected character was encountered: %s", p.peekChar())
		}
	}
}

func (p *jsonParser) array() (*node, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	n := &node{kind: kArray, off: p.i}
	p.i++ // [
	if err := p.space(); err != nil {
		return nil, err
	}
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		n.arr = []*node{}
		return n, nil
	}
	for {
		if err := p.space(); err != nil {
			return nil, err
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		n.arr = append(n.arr, v)
		if err := p.space(); err != nil {
			return nil, err
		}
		if p.i >= len(p.s) {
			return nil, p.errf("Unexpected end of content while parsing JSON.")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return n, nil
		default:
			return nil, p.errf("After parsing a value an unexpected character was encountered: %s", p.peekChar())
		}
	}
}

func (p *jsonParser) str() (string, error) {
	quote := p.s[p.i]
	p.i++
	var sb strings.Builder
	for {
		if p.i >= len(p.s) {
			return "", p.errf("Unterminated string. Expected delimiter: %c.", quote)
		}
		c := p.s[p.i]
		switch {
		case c == quote:
			p.i++
			return sb.String(), nil
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return "", p.errf("Unterminated string. Expected delimiter: \".")
			}
			e := p.s[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/', '\'':
				sb.WriteByte(e)
			case 'b':
				sb.WriteByte('\b')
			case 'f':
				sb.WriteByte('\f')
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", p.errf("Invalid Unicode escape sequence.")
				}
				if utf16.IsSurrogate(r) {
					if p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
						save := p.i
						p.i += 2
						r2, ok := p.hex4()
						if ok {
							if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
								sb.WriteRune(d)
								continue
							}
						}
						p.i = save
					}
					r = utf8.RuneError
				}
				sb.WriteRune(r)
			default:
				return "", p.errf("Bad JSON escape sequence: \\%c.", e)
			}
		case c < 0x20 && c != '\t':
			return "", p.errf("Bad control character in string literal.")
		default:
			sb.WriteByte(c)
			p.i++
		}
	}
}

func (p *jsonParser) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.s[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(v), true
}

func (p *jsonParser) number() (*node, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	if p.i == digits {
		return nil, p.errf("Input string '%s' is not a valid number.", string(p.s[start:p.i]))
	}
	isInt := true
	if p.i < len(p.s) && p.s[p.i] == '.' {
		isInt = false
		p.i++
		d := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		if p.i == d {
			return nil, p.errf("Input string '%s' is not a valid number.", string(p.s[start:p.i]))
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		isInt = false
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		d := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		if p.i == d {
			return nil, p.errf("Input string '%s' is not a valid number.", string(p.s[start:p.i]))
		}
	}
	text := string(p.s[start:p.i])
	if isInt {
		if v, err := strconv.ParseInt(text, 10, 64); err == nil {
			return &node{kind: kInt, i: v, off: start}, nil
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, &jsonError{msg: fmt.Sprintf("Input string '%s' is not a valid number.", text), off: start}
	}
	return &node{kind: kFloat, f: f, off: start}, nil
}

// lines maps byte offsets to 1-based lines and columns.
type lines struct {
	doc    []byte
	starts []int
}

func newLines(doc []byte) *lines {
	l := &lines{doc: doc, starts: []int{0}}
	for i, c := range doc {
		if c == '\n' {
			l.starts = append(l.starts, i+1)
		}
	}
	return l
}

func (l *lines) pos(off int) (line, col int) {
	if off < 0 {
		return 0, 0
	}
	i := sort.Search(len(l.starts), func(i int) bool { return l.starts[i] > off }) - 1
	if i < 0 {
		i = 0
	}
	end := min(off, len(l.doc))
	return i + 1, utf8.RuneCount(l.doc[l.starts[i]:end]) + 1
}

// plain converts a node to a plain JSON value without evaluating
// expressions (strings stay as written).
func (n *node) plain() any {
	switch n.kind {
	case kNull:
		return nil
	case kBool:
		return n.b
	case kInt:
		return n.i
	case kFloat:
		return n.f
	case kString:
		return n.s
	case kArray:
		out := make([]any, len(n.arr))
		for i, v := range n.arr {
			out[i] = v.plain()
		}
		return out
	default:
		out := make(map[string]any, len(n.keys))
		for i, k := range n.keys {
			out[k] = n.vals[i].plain()
		}
		return out
	}
}
