package template

import (
	"fmt"
	"sort"
	"strings"
)

// document is a parsed template.
type document struct {
	root           *node
	lines          *lines
	schema         string
	contentVersion string
	params         []*paramDecl
	paramIdx       map[string]*paramDecl // by lower-case name
	vars           []*varDecl
	varIdx         map[string]*varDecl
	resources      []*resourceDecl // parents before their nested children
	outputs        []*outputDecl
	userFns        map[string]*userFn // by lower-case "namespace.name"
}

type paramDecl struct {
	name string
	n    *node
	typ  string // as written
	def  *node
}

type varDecl struct {
	name string
	n    *node // the value, or for a copy variable its copy element
	copy bool
}

type resourceDecl struct {
	n      *node
	parent *resourceDecl
	index  int
	label  string // the name as written, for messages before it is evaluated
}

type outputDecl struct {
	name string
	n    *node
	typ  string
}

type userFn struct {
	name    string
	n       *node
	params  []fnParam
	outType string
	out     *node
}

type fnParam struct{ name, typ string }

var paramTypes = map[string]bool{"string": true, "securestring": true, "int": true, "bool": true, "object": true, "secureobject": true, "array": true}

var topLevelKeys = map[string]bool{"$schema": true, "contentversion": true, "apiprofile": true, "parameters": true,
	"variables": true, "functions": true, "resources": true, "outputs": true, "metadata": true}

func parse(doc []byte) (*Template, error) {
	ls := newLines(doc)
	root, err := parseJSON(doc)
	if err != nil {
		je := err.(*jsonError)
		line, col := ls.pos(je.off)
		return nil, &Error{Code: CodeInvalidTemplate, Line: line, Column: col,
			Message: fmt.Sprintf("Deployment template parse failed: '%s Line %d, position %d.'.", je.msg, line, col)}
	}
	d := &document{root: root, lines: ls, paramIdx: map[string]*paramDecl{}, varIdx: map[string]*varDecl{}, userFns: map[string]*userFn{}}
	if err := d.read(); err != nil {
		return nil, err
	}
	return &Template{t: d}, nil
}

// fail is an error of the template's structure at n.
func (d *document) fail(n *node, format string, a ...any) *Error {
	line, col := 0, 0
	if n != nil {
		line, col = d.lines.pos(n.off)
	}
	return &Error{Code: CodeInvalidTemplate, Line: line, Column: col,
		Message: fmt.Sprintf("Deployment template validation failed: '%s'.", fmt.Sprintf(format, a...))}
}

// placed names the place of an expression's error: "The template
// resource 'web' at line '12' and column '9' is not valid: …".
func (d *document) placed(kind, name string, n *node, err error) error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*Error); ok {
		return e
	}
	line, col := 0, 0
	if n != nil {
		line, col = d.lines.pos(n.off)
	}
	inner := strings.TrimSuffix(err.Error(), ".")
	return &Error{Code: CodeInvalidTemplate, Target: name, Line: line, Column: col,
		Message: fmt.Sprintf("Deployment template validation failed: 'The template %s '%s' at line '%d' and column '%d' is not valid: %s.'.", kind, name, line, col, inner)}
}

func (d *document) read() error {
	r := d.root
	if r.kind != kObject {
		return d.fail(r, "The template must be a JSON object")
	}
	for i, k := range r.keys {
		lk := strings.ToLower(k)
		if lk == "languageversion" || lk == "definitions" {
			return d.fail(r.vals[i], "The template's '%s' (symbolic names, languageVersion 2.0) is not supported; use a template with a 'resources' array", k)
		}
		if !topLevelKeys[lk] {
			line, col := d.lines.pos(r.vals[i].off)
			return &Error{Code: CodeInvalidTemplate, Line: line, Column: col,
				Message: fmt.Sprintf("Deployment template validation failed: 'Could not find member '%s' on object of type 'Template'. Path '%s', line %d, position %d.'.", k, k, line, col)}
		}
	}
	if n := r.get("$schema"); n != nil && n.kind == kString {
		d.schema = n.s
	}
	if n := r.get("contentVersion"); n != nil {
		if n.kind != kString {
			return d.fail(n, "The template's 'contentVersion' must be a string")
		}
		d.contentVersion = n.s
	}
	if err := d.readParameters(r.get("parameters")); err != nil {
		return err
	}
	if err := d.readFunctions(r.get("functions")); err != nil {
		return err
	}
	if err := d.readVariables(r.get("variables")); err != nil {
		return err
	}
	res := r.get("resources")
	if res == nil {
		return d.fail(r, "Required property 'resources' not found in JSON. Path '', line 1, position 1")
	}
	if res.kind != kArray {
		return d.fail(res, "The template's 'resources' must be an array")
	}
	if err := d.readResources(res, nil); err != nil {
		return err
	}
	if len(d.resources) > maxResources {
		return d.fail(res, "The template has %d resources, more than the limit of %d", len(d.resources), maxResources)
	}
	return d.readOutputs(r.get("outputs"))
}

func (d *document) readParameters(ps *node) error {
	if ps == nil {
		return nil
	}
	if ps.kind != kObject {
		return d.fail(ps, "The template's 'parameters' must be an object")
	}
	for i, name := range ps.keys {
		n := ps.vals[i]
		if n.kind != kObject {
			return d.fail(n, "The template parameter '%s' must be an object with a 'type'", name)
		}
		t := n.get("type")
		if t == nil || t.kind != kString {
			return d.fail(n, "The template parameter '%s' at line '%d' and column '%d' has no 'type'. Please see https://aka.ms/arm-syntax-parameters for usage details", name, d.line(n), d.col(n))
		}
		if !paramTypes[strings.ToLower(t.s)] {
			return d.fail(t, "The template parameter '%s' at line '%d' and column '%d' has an invalid type '%s'. The supported types are 'string, securestring, int, bool, object, secureObject, array'. Please see https://aka.ms/arm-syntax-parameters for usage details", name, d.line(t), d.col(t), t.s)
		}
		lk := strings.ToLower(name)
		if _, dup := d.paramIdx[lk]; dup {
			return d.fail(n, "The template parameter '%s' is declared more than once (names are case-insensitive)", name)
		}
		p := &paramDecl{name: name, n: n, typ: t.s, def: n.get("defaultValue")}
		if p.def != nil {
			if err := d.placed("parameter", name, p.def, d.prepare(p.def)); err != nil {
				return err
			}
		}
		for _, k := range []string{"minValue", "maxValue", "minLength", "maxLength"} {
			if v := n.get(k); v != nil && v.kind != kInt {
				return d.fail(v, "The template parameter '%s' has an invalid '%s': it must be an integer", name, k)
			}
		}
		if v := n.get("allowedValues"); v != nil && v.kind != kArray {
			return d.fail(v, "The template parameter '%s' has an invalid 'allowedValues': it must be an array", name)
		}
		d.params = append(d.params, p)
		d.paramIdx[lk] = p
	}
	return nil
}

func (d *document) line(n *node) int { l, _ := d.lines.pos(n.off); return l }
func (d *document) col(n *node) int  { _, c := d.lines.pos(n.off); return c }

func (d *document) readFunctions(fs *node) error {
	if fs == nil {
		return nil
	}
	if fs.kind != kArray {
		return d.fail(fs, "The template's 'functions' must be an array")
	}
	for _, ns := range fs.arr {
		nsName := ns.get("namespace")
		members := ns.get("members")
		if ns.kind != kObject || nsName == nil || nsName.kind != kString || members == nil || members.kind != kObject {
			return d.fail(ns, "A user function namespace must be an object with a 'namespace' and 'members'")
		}
		for i, fname := range members.keys {
			m := members.vals[i]
			full := nsName.s + "." + fname
			out := m.get("output")
			if m.kind != kObject || out == nil || out.kind != kObject || out.get("value") == nil {
				return d.fail(m, "The user function '%s' must have an 'output' with a 'type' and a 'value'", full)
			}
			f := &userFn{name: full, n: m, out: out.get("value")}
			if t := out.get("type"); t != nil && t.kind == kString {
				f.outType = t.s
			}
			if ps := m.get("parameters"); ps != nil {
				if ps.kind != kArray {
					return d.fail(ps, "The user function '%s' has invalid 'parameters': it must be an array", full)
				}
				for _, p := range ps.arr {
					pn, pt := p.get("name"), p.get("type")
					if pn == nil || pn.kind != kString || pt == nil || pt.kind != kString {
						return d.fail(p, "A parameter of the user function '%s' must have a 'name' and a 'type'", full)
					}
					f.params = append(f.params, fnParam{name: pn.s, typ: pt.s})
				}
			}
			if err := d.placed("function", full, f.out, d.prepare(f.out)); err != nil {
				return err
			}
			d.userFns[strings.ToLower(full)] = f
		}
	}
	return nil
}

func (d *document) readVariables(vs *node) error {
	if vs == nil {
		return nil
	}
	if vs.kind != kObject {
		return d.fail(vs, "The template's 'variables' must be an object")
	}
	add := func(v *varDecl, at *node) error {
		lk := strings.ToLower(v.name)
		if _, dup := d.varIdx[lk]; dup {
			return d.fail(at, "The template variable '%s' is declared more than once (names are case-insensitive)", v.name)
		}
		d.vars = append(d.vars, v)
		d.varIdx[lk] = v
		return nil
	}
	for i, name := range vs.keys {
		n := vs.vals[i]
		if strings.EqualFold(name, "copy") && n.kind == kArray {
			for _, c := range n.arr {
				cn := c.get("name")
				if c.kind != kObject || cn == nil || cn.kind != kString || c.get("count") == nil || c.get("input") == nil {
					return d.fail(c, "A variable copy must be an object with a 'name', a 'count' and an 'input'")
				}
				if err := d.placed("variable", cn.s, c, d.prepare(c)); err != nil {
					return err
				}
				if err := add(&varDecl{name: cn.s, n: c, copy: true}, c); err != nil {
					return err
				}
			}
			continue
		}
		if err := d.placed("variable", name, n, d.prepare(n)); err != nil {
			return err
		}
		if err := add(&varDecl{name: name, n: n}, n); err != nil {
			return err
		}
	}
	return nil
}

func (d *document) readResources(rs *node, parent *resourceDecl) error {
	for _, n := range rs.arr {
		if n.kind != kObject {
			return d.fail(n, "A template resource must be an object")
		}
		label := "<unnamed>"
		if nm := n.get("name"); nm != nil && nm.kind == kString {
			label = nm.s
		}
		for _, k := range []string{"type", "name", "apiVersion"} {
			v := n.get(k)
			if v == nil {
				return d.placed("resource", label, n, errorf("Required property '%s' not found in JSON", k))
			}
			if v.kind != kString {
				return d.placed("resource", label, v, errorf("The resource's '%s' must be a string", k))
			}
		}
		r := &resourceDecl{n: n, parent: parent, index: len(d.resources), label: label}
		for i, k := range n.keys {
			if strings.EqualFold(k, "resources") || strings.EqualFold(k, "comments") {
				continue
			}
			if err := d.placed("resource", label, n.vals[i], d.prepare(n.vals[i])); err != nil {
				return err
			}
		}
		d.resources = append(d.resources, r)
		if len(d.resources) > maxResources {
			return d.fail(n, "The template has more than %d resources", maxResources)
		}
		if children := n.get("resources"); children != nil {
			if children.kind != kArray {
				return d.placed("resource", label, children, errorf("The resource's nested 'resources' must be an array"))
			}
			if err := d.readResources(children, r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *document) readOutputs(os *node) error {
	if os == nil {
		return nil
	}
	if os.kind != kObject {
		return d.fail(os, "The template's 'outputs' must be an object")
	}
	for i, name := range os.keys {
		n := os.vals[i]
		if n.kind != kObject {
			return d.fail(n, "The template output '%s' must be an object with a 'type' and a 'value'", name)
		}
		t := n.get("type")
		if t == nil || t.kind != kString || !paramTypes[strings.ToLower(t.s)] {
			return d.placed("output", name, n, errorf("The output must have a 'type', one of 'string, securestring, int, bool, object, secureObject, array'"))
		}
		if n.get("value") == nil && n.get("copy") == nil {
			return d.placed("output", name, n, errorf("Required property 'value' not found in JSON"))
		}
		if err := d.placed("output", name, n, d.prepare(n)); err != nil {
			return err
		}
		d.outputs = append(d.outputs, &outputDecl{name: name, n: n, typ: t.s})
	}
	return nil
}

// prepare parses every expression string under n once, so that
// evaluation shares the parsed form (and syntax errors are found when the
// template is parsed), and checks that every function it calls exists.
func (d *document) prepare(n *node) error {
	switch n.kind {
	case kString:
		if n.isLit || n.expr != nil {
			return nil
		}
		inner, isExpr, lit := classify(n.s)
		if !isExpr {
			n.isLit = true
			n.s = lit
			return nil
		}
		e, err := parseExpr(inner)
		if err != nil {
			return err
		}
		var bad error
		walkCalls(e, func(c callExpr) {
			if bad != nil {
				return
			}
			if strings.Contains(c.name, ".") {
				// user functions are read before variables, resources
				// and outputs; they cannot call each other (as ARM's)
				if _, ok := d.userFns[c.name]; !ok {
					bad = unknownFunction(c.orig)
				}
				return
			}
			if functions[c.name] == nil {
				bad = unknownFunction(c.orig)
			}
		})
		if bad != nil {
			return bad
		}
		n.expr = e
	case kArray:
		for _, e := range n.arr {
			if err := d.prepare(e); err != nil {
				return err
			}
		}
	case kObject:
		for _, v := range n.vals {
			if err := d.prepare(v); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedNames[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
