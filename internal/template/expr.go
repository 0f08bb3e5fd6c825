package template

import (
	"fmt"
	"strconv"
	"strings"
)

// The expression language: a string "[f(a, 'b')...]" holds one
// expression, a function call followed by property accesses (.name,
// ['name'], [0]); arguments are expressions, 'strings' (with '' for a
// quote), integers, or nested calls.

type expr interface{ isExpr() }

type litExpr struct{ v any } // string or int64

type callExpr struct {
	name string // lower case; "ns.fn" for a user function
	orig string // as written
	args []expr
}

type accessExpr struct {
	target expr
	index  expr // a litExpr string for .name
	dot    bool
}

func (litExpr) isExpr()    {}
func (callExpr) isExpr()   {}
func (accessExpr) isExpr() {}

// maxExprDepth bounds the nesting of calls and indexes in one expression.
const maxExprDepth = 64

// classify reports how a template string is read: as an expression (the
// text inside the brackets) or as a literal (with ARM's "[[" escape
// removed).
func classify(s string) (inner string, isExpr bool, lit string) {
	if len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if s[1] == '[' {
			return "", false, s[1:]
		}
		return s[1 : len(s)-1], true, ""
	}
	return "", false, s
}

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tString
	tInt
	tLParen
	tRParen
	tLBrack
	tRBrack
	tComma
	tDot
)

func (k tokKind) String() string {
	return [...]string{"EndOfData", "Identifier", "String", "Integer", "LeftParenthesis", "RightParenthesis",
		"LeftSquareBracket", "RightSquareBracket", "Comma", "Dot"}[k]
}

type token struct {
	kind tokKind
	text string
	ival int64
	pos  int
}

type exprParser struct {
	src   string
	toks  []token
	i     int
	depth int
}

func parseErr(src, format string, a ...any) error {
	return &evalError{msg: fmt.Sprintf("Unable to parse language expression '%s': %s", src, fmt.Sprintf(format, a...))}
}

func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{kind: tLParen, pos: i})
			i++
		case c == ')':
			toks = append(toks, token{kind: tRParen, pos: i})
			i++
		case c == '[':
			toks = append(toks, token{kind: tLBrack, pos: i})
			i++
		case c == ']':
			toks = append(toks, token{kind: tRBrack, pos: i})
			i++
		case c == ',':
			toks = append(toks, token{kind: tComma, pos: i})
			i++
		case c == '.':
			toks = append(toks, token{kind: tDot, pos: i})
			i++
		case c == '\'':
			start := i
			i++
			var sb strings.Builder
			for {
				if i >= len(src) {
					return nil, parseErr(src, "the string literal starting at position '%d' is not terminated", start)
				}
				if src[i] == '\'' {
					if i+1 < len(src) && src[i+1] == '\'' {
						sb.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				sb.WriteByte(src[i])
				i++
			}
			toks = append(toks, token{kind: tString, text: sb.String(), pos: start})
		case c == '-' || (c >= '0' && c <= '9'):
			start := i
			if c == '-' {
				i++
			}
			d := i
			for i < len(src) && src[i] >= '0' && src[i] <= '9' {
				i++
			}
			if i == d {
				return nil, parseErr(src, "the character '-' at position '%d' is not expected", start)
			}
			if i < len(src) && src[i] == '.' {
				return nil, parseErr(src, "the number at position '%d' is not an integer", start)
			}
			v, err := strconv.ParseInt(src[start:i], 10, 64)
			if err != nil {
				return nil, parseErr(src, "the integer '%s' at position '%d' is out of range", src[start:i], start)
			}
			toks = append(toks, token{kind: tInt, ival: v, text: src[start:i], pos: start})
		case isIdentStart(c):
			start := i
			for i < len(src) && isIdentChar(src[i]) {
				i++
			}
			toks = append(toks, token{kind: tIdent, text: src[start:i], pos: start})
		default:
			return nil, parseErr(src, "the character '%c' at position '%d' is not expected", rune(c), i)
		}
	}
	toks = append(toks, token{kind: tEOF, pos: len(src)})
	return toks, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// parseExpr parses the text inside an expression string's brackets.
func parseExpr(src string) (expr, error) {
	if len(src) > maxStringLen {
		return nil, parseErr(src[:64]+"...", "the expression is longer than %d characters", maxStringLen)
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &exprParser{src: src, toks: toks}
	if p.peek().kind == tEOF {
		return nil, parseErr(src, "the expression is empty")
	}
	if p.peek().kind != tIdent {
		return nil, p.unexpected("Identifier")
	}
	e, err := p.primary()
	if err != nil {
		return nil, err
	}
	if p.peek().kind != tEOF {
		return nil, p.unexpected("EndOfData")
	}
	return e, nil
}

func (p *exprParser) peek() token { return p.toks[p.i] }
func (p *exprParser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *exprParser) unexpected(want string) error {
	t := p.peek()
	return parseErr(p.src, "expected token '%s' and actual '%s' at position '%d'", want, t.kind, t.pos)
}

// primary is an argument: a literal, or a call with its accesses.
func (p *exprParser) primary() (expr, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxExprDepth {
		return nil, parseErr(p.src, "the expression is nested more than %d levels deep", maxExprDepth)
	}
	t := p.next()
	var e expr
	switch t.kind {
	case tString:
		e = litExpr{v: t.text}
	case tInt:
		e = litExpr{v: t.ival}
	case tIdent:
		name := t.text
		if p.peek().kind == tDot && p.toks[p.i+1].kind == tIdent && p.toks[p.i+2].kind == tLParen {
			// a user function: namespace.name(...)
			p.next()
			name += "." + p.next().text
		}
		if p.peek().kind != tLParen {
			// true, false and null as literals, as true() and false()
			switch strings.ToLower(t.text) {
			case "true":
				e = litExpr{v: true}
			case "false":
				e = litExpr{v: false}
			case "null":
				e = litExpr{v: nil}
			}
			if e != nil && p.depth > 1 {
				break
			}
			p.i--
			return nil, parseErr(p.src, "the identifier '%s' at position '%d' is not a function call; use parameters('%s') or variables('%s')", t.text, t.pos, t.text, t.text)
		}
		p.next()
		c := callExpr{name: strings.ToLower(name), orig: name}
		if p.peek().kind == tRParen {
			p.next()
		} else {
			for {
				a, err := p.primary()
				if err != nil {
					return nil, err
				}
				c.args = append(c.args, a)
				switch p.peek().kind {
				case tComma:
					p.next()
					continue
				case tRParen:
					p.next()
				default:
					return nil, p.unexpected("RightParenthesis")
				}
				break
			}
		}
		e = c
	default:
		p.i--
		return nil, p.unexpected("Identifier")
	}
	// accesses
	for chain := 0; ; chain++ {
		if chain > maxExprDepth {
			return nil, parseErr(p.src, "the expression has more than %d property accesses in a row", maxExprDepth)
		}
		switch p.peek().kind {
		case tDot:
			p.next()
			t := p.next()
			if t.kind != tIdent {
				p.i--
				return nil, p.unexpected("Identifier")
			}
			e = accessExpr{target: e, index: litExpr{v: t.text}, dot: true}
		case tLBrack:
			p.next()
			p.depth++
			idx, err := p.primary()
			p.depth--
			if err != nil {
				return nil, err
			}
			if p.peek().kind != tRBrack {
				return nil, p.unexpected("RightSquareBracket")
			}
			p.next()
			e = accessExpr{target: e, index: idx}
		default:
			return e, nil
		}
	}
}

// walkCalls calls f for each call in e.
func walkCalls(e expr, f func(callExpr)) {
	switch x := e.(type) {
	case callExpr:
		f(x)
		for _, a := range x.args {
			walkCalls(a, f)
		}
	case accessExpr:
		walkCalls(x.target, f)
		walkCalls(x.index, f)
	}
}
