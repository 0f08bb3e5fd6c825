package template

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// evalError is an expression's failure before it is placed (named with
// the parameter, variable, resource or output it is in).
type evalError struct{ msg string }

func (e *evalError) Error() string { return e.msg }

func errorf(format string, a ...any) error { return &evalError{msg: fmt.Sprintf(format, a...)} }

// phase is where an expression is, which decides the functions it may
// call (ARM refuses reference() in variables, utcNow() outside
// parameter defaults, …).
type phase uint8

const (
	phParamDefault phase = iota // a parameter's defaultValue
	phVariable                  // a variable's value
	phResourceHead              // a resource's name, type, apiVersion, condition, copy, dependsOn
	phResourceBody              // the rest of a resource
	phOutput                    // an output
	phUserFunction              // a user function's output
)

// loop is a copy loop's name and the index being evaluated.
type loop struct {
	name  string
	index int64
}

type evalCtx struct {
	p     *plan
	ph    phase
	ctx   context.Context
	rt    Runtime // nil while binding: reference() and listKeys() are unknown
	loops []loop  // innermost last
	// main is the resource's or output's copy loop, for copyIndex()
	// without a name.
	main *loop
	// fnArgs are a user function's arguments, for parameters().
	fnArgs map[string]any
	fnName string
	// refs collects the resources that reference() and list*() name
	// while a resource is bound (its implicit dependencies).
	refs *[]*resourceInstance
	work *int64
}

func (c *evalCtx) child() *evalCtx { cc := *c; return &cc }

func (c *evalCtx) withLoop(name string, i int64) *evalCtx {
	cc := c.child()
	cc.loops = append(append([]loop(nil), c.loops...), loop{name: name, index: i})
	return cc
}

func (c *evalCtx) charge(n int64) error {
	if c.work == nil {
		return nil
	}
	*c.work += n
	if *c.work > maxWork {
		return errorf("The template is too complex to evaluate: it needs more than %d evaluation steps", maxWork)
	}
	return nil
}

func (c *evalCtx) binding() bool { return c.rt == nil }

// eval evaluates a parsed expression.
func (c *evalCtx) eval(e expr) (any, error) {
	if err := c.charge(1); err != nil {
		return nil, err
	}
	switch x := e.(type) {
	case litExpr:
		return x.v, nil
	case accessExpr:
		t, err := c.eval(x.target)
		if err != nil {
			return nil, err
		}
		idx, err := c.eval(x.index)
		if err != nil {
			return nil, err
		}
		return access(t, idx, x.dot)
	case callExpr:
		return c.call(x)
	}
	return nil, errorf("The language expression is not valid")
}

func (c *evalCtx) call(x callExpr) (any, error) {
	if strings.Contains(x.name, ".") {
		return c.callUser(x)
	}
	f := functions[x.name]
	if f == nil {
		return nil, unknownFunction(x.orig)
	}
	if err := f.checkArity(x.orig, len(x.args)); err != nil {
		return nil, err
	}
	if f.lazy != nil {
		return f.lazy(c, x.orig, x.args)
	}
	args := make([]any, len(x.args))
	anyUnknown := false
	// unknown values come only from reference() and list*() while a
	// resource or an output is bound
	mayBeUnknown := c.binding() && (c.ph == phResourceBody || c.ph == phOutput || c.ph == phUserFunction)
	for i, a := range x.args {
		v, err := c.eval(a)
		if err != nil {
			return nil, err
		}
		args[i] = v
		if mayBeUnknown && !anyUnknown {
			found, visited := scanUnknown(v)
			if err := c.charge(int64(visited / 16)); err != nil {
				return nil, err
			}
			anyUnknown = found
		}
	}
	if anyUnknown && !f.structural {
		if f.checkKnown != nil {
			if err := f.checkKnown(c, x.orig, args); err != nil {
				return nil, err
			}
		}
		return unknown, nil
	}
	v, err := f.fn(c, x.orig, args)
	if err != nil {
		return nil, err
	}
	if f.given {
		return v, nil // a value already checked (a parameter, a variable, a Runtime's)
	}
	return c.checkResult(x.orig, v)
}

// checkResult enforces the limits on a function's result.
func (c *evalCtx) checkResult(fn string, v any) (any, error) {
	switch r := v.(type) {
	case string:
		if len(r) > maxStringLen {
			return nil, errorf("The template language function '%s' produced a string of %d bytes, more than the limit of %d", fn, len(r), maxStringLen)
		}
		if err := c.charge(int64(len(r) / 64)); err != nil {
			return nil, err
		}
	case []any:
		if len(r) > maxArrayLen {
			return nil, errorf("The template language function '%s' produced an array of %d elements, more than the limit of %d", fn, len(r), maxArrayLen)
		}
		n := valueSize(r, maxValueSize)
		if n > maxValueSize {
			return nil, errorf("The template language function '%s' produced a value larger than the limit of %d bytes", fn, maxValueSize)
		}
		if err := c.charge(int64(n / 64)); err != nil {
			return nil, err
		}
	case map[string]any:
		n := valueSize(r, maxValueSize)
		if n > maxValueSize {
			return nil, errorf("The template language function '%s' produced a value larger than the limit of %d bytes", fn, maxValueSize)
		}
		if err := c.charge(int64(n / 64)); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func unknownFunction(name string) error {
	return errorf("The template function '%s' is not valid. Please see https://aka.ms/arm-functions for usage details", name)
}

func notExpected(name string) error {
	return errorf("The template function '%s' is not expected at this location. Please see https://aka.ms/arm-functions for usage details", name)
}

// access is target.name, target['name'] or target[index].
func access(t, idx any, dot bool) (any, error) {
	if isUnknown(t) || isUnknown(idx) {
		return unknown, nil
	}
	switch x := t.(type) {
	case map[string]any:
		key, ok := idx.(string)
		if !ok {
			return nil, errorf("The language expression property '%s' can't be evaluated, property name must be a string", display(idx))
		}
		v, ok := lookup(x, key)
		if !ok {
			return nil, errorf("The language expression property '%s' doesn't exist, available properties are '%s'", key, strings.Join(sortedKeys(x), ", "))
		}
		return v, nil
	case []any:
		var i int64
		switch n := idx.(type) {
		case int64:
			i = n
		case string:
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				return nil, errorf("The language expression property '%s' can't be evaluated, the array index must be an integer", n)
			}
			i = v
		default:
			return nil, errorf("The language expression property '%s' can't be evaluated, the array index must be an integer", display(idx))
		}
		if i < 0 || i >= int64(len(x)) {
			return nil, errorf("The language expression property array index '%d' is out of bounds", i)
		}
		return x[i], nil
	case nil:
		return nil, errorf("The language expression property '%s' can't be evaluated", display(idx))
	}
	return nil, errorf("The language expression property '%s' can't be evaluated, property access is not allowed on a value of type '%s'", display(idx), typeName(t))
}

// evalNode evaluates a template value: expressions in its strings (and in
// its object keys), and, where propCopy, "copy" arrays of property
// iterations.
func (c *evalCtx) evalNode(n *node, propCopy bool) (any, error) {
	if err := c.charge(1); err != nil {
		return nil, err
	}
	switch n.kind {
	case kString:
		if n.expr != nil {
			return c.eval(n.expr)
		}
		if n.isLit {
			return n.s, nil
		}
		inner, isExpr, lit := classify(n.s)
		if !isExpr {
			return lit, nil
		}
		// Parse prepares every string it will evaluate; this is for
		// the rest, parsed each time, as nodes are shared by goroutines.
		e, err := parseExpr(inner)
		if err != nil {
			return nil, err
		}
		return c.eval(e)
	case kArray:
		out := make([]any, len(n.arr))
		for i, e := range n.arr {
			v, err := c.evalNode(e, propCopy)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case kObject:
		out := make(map[string]any, len(n.keys))
		for i, k := range n.keys {
			v := n.vals[i]
			if propCopy && strings.EqualFold(k, "copy") && isPropertyCopy(v) {
				if err := c.propertyCopy(v, out); err != nil {
					return nil, err
				}
				continue
			}
			key, err := c.evalKey(k)
			if err != nil {
				return nil, err
			}
			ev, err := c.evalNode(v, propCopy)
			if err != nil {
				return nil, err
			}
			out[key] = ev
		}
		return out, nil
	}
	return n.plain(), nil
}

// evalKey evaluates an object key: ARM evaluates an expression there
// too ("[parameters('tagName')]": "x").
func (c *evalCtx) evalKey(k string) (string, error) {
	inner, isExpr, lit := classify(k)
	if !isExpr {
		return lit, nil
	}
	e, err := parseExpr(inner)
	if err != nil {
		return "", err
	}
	v, err := c.eval(e)
	if err != nil {
		return "", err
	}
	if isUnknown(v) {
		return "", errorf("The template function 'reference' is not expected in a property name")
	}
	s, ok := v.(string)
	if !ok {
		return "", errorf("The property name '%s' must evaluate to a string, not a value of type '%s'", k, typeName(v))
	}
	return s, nil
}

// isPropertyCopy reports whether a "copy" member is a property iteration:
// an array of objects with name, count and input.
func isPropertyCopy(n *node) bool {
	if n.kind != kArray || len(n.arr) == 0 {
		return false
	}
	for _, e := range n.arr {
		if e.kind != kObject || e.get("name") == nil || e.get("input") == nil {
			return false
		}
	}
	return true
}

// propertyCopy expands "copy": [{"name": "containers", "count": n,
// "input": {...}}] into out["containers"] = [input for each index].
func (c *evalCtx) propertyCopy(n *node, out map[string]any) error {
	for _, e := range n.arr {
		name, count, err := c.copyHeader(e, false)
		if err != nil {
			return err
		}
		items := make([]any, 0, count)
		for i := int64(0); i < count; i++ {
			v, err := c.withLoop(name, i).evalNode(e.get("input"), true)
			if err != nil {
				return err
			}
			items = append(items, v)
		}
		out[name] = items
	}
	return nil
}

// copyHeader evaluates a copy element's name and count.
func (c *evalCtx) copyHeader(e *node, countOptional bool) (string, int64, error) {
	nameN := e.get("name")
	if nameN == nil {
		return "", 0, errorf("The copy element is missing its 'name'")
	}
	nv, err := c.evalNode(nameN, false)
	if err != nil {
		return "", 0, err
	}
	name, ok := nv.(string)
	if !ok || name == "" {
		return "", 0, errorf("The copy element's name must be a non-empty string")
	}
	countN := e.get("count")
	if countN == nil {
		if countOptional {
			return name, 0, nil
		}
		return "", 0, errorf("The copy '%s' is missing its 'count'", name)
	}
	count, err := c.copyCount(name, countN)
	return name, count, err
}

func (c *evalCtx) copyCount(name string, countN *node) (int64, error) {
	cv, err := c.evalNode(countN, false)
	if err != nil {
		return 0, err
	}
	if isUnknown(cv) {
		return 0, errorf("The count of the copy '%s' cannot use reference() or list*(): it must be known when the deployment starts", name)
	}
	count, ok := toInt(cv)
	if !ok {
		return 0, errorf("The count of the copy '%s' must be an integer, not a value of type '%s'", name, typeName(cv))
	}
	if count < 0 {
		return 0, errorf("The count of the copy '%s' is '%d': it cannot be negative", name, count)
	}
	if count > maxCopyCount {
		return 0, errorf("The count of the copy '%s' is '%d', more than the limit of %d", name, count, maxCopyCount)
	}
	return count, nil
}

// toInt reads an integer: an int64 or a whole float.
func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case float64:
		if x == float64(int64(x)) {
			return int64(x), true
		}
	}
	return 0, false
}

// evalString evaluates a template string ("[expr]" or a literal) as an
// output would, against the plan; it is for tests and the fuzz target.
func (p *plan) evalString(ctx context.Context, s string, rt Runtime, ph phase) (any, error) {
	c := p.ctx(ctx, rt, ph)
	if rt == nil {
		c.work = new(int64)
	}
	inner, isExpr, lit := classify(s)
	if !isExpr {
		return lit, nil
	}
	e, err := parseExpr(inner)
	if err != nil {
		return nil, err
	}
	var bad error
	walkCalls(e, func(x callExpr) {
		if bad == nil && !strings.Contains(x.name, ".") && functions[x.name] == nil {
			bad = unknownFunction(x.orig)
		}
	})
	if bad != nil {
		return nil, bad
	}
	return c.eval(e)
}
