package template

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

type plan struct {
	d      *document
	scope  Scope
	params map[string]*paramState // by lower-case name
	vars   map[string]*varState
	// instances are every resource instance, conditions false included,
	// in template order (copies in index order).
	instances []*resourceInstance
	loops     map[string][]*resourceInstance // copy name (lower) -> instances
	nowTime   time.Time
	given     map[string]any
	work      int64 // Bind's evaluation budget
}

type paramState struct {
	decl  *paramDecl
	state int // 0 unevaluated, 1 evaluating, 2 done
	value any
	err   error
}

type varState struct {
	decl  *varDecl
	state int
	value any
	err   error
}

type resourceInstance struct {
	decl       *resourceDecl
	parent     *resourceInstance
	id         string
	typ        string
	name       string
	apiVersion string
	cond       bool
	loops      []loop // the enclosing copies (a nested child's parent's)
	main       *loop  // its own copy, if any
	copyName   string
	batch      int64
	serial     bool
	deps       []*resourceInstance
	res        *Resource
}

func (p *plan) now() time.Time {
	if !p.nowTime.IsZero() {
		return p.nowTime
	}
	return time.Now().UTC()
}

func (t *Template) bind(params map[string]any, s Scope, types Types) (*Plan, error) {
	if t == nil || t.t == nil {
		return nil, &Error{Code: CodeInvalidTemplate, Message: "The template is not parsed"}
	}
	var p *plan
	out, err := t.bindPlan(params, s, types, &p)
	if err != nil {
		return nil, p.redact(err)
	}
	return out, nil
}

func (t *Template) bindPlan(params map[string]any, s Scope, types Types, pp **plan) (*Plan, error) {
	d := t.t
	p := &plan{d: d, scope: s, params: map[string]*paramState{}, vars: map[string]*varState{},
		loops: map[string][]*resourceInstance{}, nowTime: s.Now, given: map[string]any{}}
	*pp = p
	if p.nowTime.IsZero() {
		p.nowTime = time.Now().UTC()
	}
	p.nowTime = p.nowTime.UTC()
	// parameters
	var unknownNames []string
	for k, v := range params {
		if _, ok := d.paramIdx[strings.ToLower(k)]; !ok {
			unknownNames = append(unknownNames, k)
			continue
		}
		p.given[strings.ToLower(k)] = v
	}
	if len(unknownNames) > 0 {
		sort.Strings(unknownNames)
		var declared []string
		for _, pd := range d.params {
			declared = append(declared, pd.name)
		}
		return nil, &Error{Code: CodeInvalidTemplate, Target: unknownNames[0],
			Message: fmt.Sprintf("Deployment template validation failed: 'The template parameters '%s' in the parameters file are not valid; they are not present in the original template and can therefore not be provided at deployment time. The only supported parameters for this template are '%s'. Please see https://aka.ms/arm-pass-parameter-values for usage details.'.",
				strings.Join(unknownNames, ", "), strings.Join(declared, ", "))}
	}
	for _, pd := range d.params {
		p.params[strings.ToLower(pd.name)] = &paramState{decl: pd}
	}
	root := p.ctx(context.Background(), nil, phParamDefault)
	out := &Plan{Parameters: map[string]Parameter{}, p: p}
	for _, pd := range d.params {
		v, err := p.parameter(root, pd.name)
		if err != nil {
			return nil, err
		}
		out.Parameters[pd.name] = Parameter{Type: pd.typ, Value: v}
	}
	// variables
	for _, vd := range d.vars {
		p.vars[strings.ToLower(vd.name)] = &varState{decl: vd}
	}
	vctx := p.ctx(context.Background(), nil, phVariable)
	for _, vd := range d.vars {
		if _, err := p.variable(vctx, vd.name); err != nil {
			return nil, err
		}
	}
	// resources
	if err := p.expand(); err != nil {
		return nil, err
	}
	if err := p.resolve(types); err != nil {
		return nil, err
	}
	order, err := p.order()
	if err != nil {
		return nil, err
	}
	for _, ri := range order {
		out.Resources = append(out.Resources, ri.res)
	}
	// outputs, for their shape
	if _, err := p.outputs(context.Background(), nil); err != nil {
		return nil, err
	}
	return out, nil
}

func (p *plan) ctx(ctx context.Context, rt Runtime, ph phase) *evalCtx {
	w := new(int64)
	if rt == nil {
		w = &p.work
	}
	return &evalCtx{p: p, ph: ph, ctx: ctx, rt: rt, work: w}
}

// parameter is parameters(name): the given value or the default,
// converted and checked.
func (p *plan) parameter(c *evalCtx, name string) (any, error) {
	ps := p.params[strings.ToLower(name)]
	if ps == nil {
		return nil, errorf("The template parameter '%s' is not found. Please see https://aka.ms/arm-syntax-parameters for usage details", name)
	}
	switch ps.state {
	case 2:
		return ps.value, ps.err
	case 1:
		return nil, errorf("The template parameter '%s' has a default value that refers to itself (through parameters())", ps.decl.name)
	}
	ps.state = 1
	v, err := p.bindParameter(ps.decl)
	ps.state, ps.value, ps.err = 2, v, err
	return v, err
}

func paramTypeName(t string) string {
	switch strings.ToLower(t) {
	case "string":
		return "String"
	case "securestring":
		return "SecureString"
	case "int":
		return "Integer"
	case "bool":
		return "Boolean"
	case "object":
		return "Object"
	case "secureobject":
		return "SecureObject"
	case "array":
		return "Array"
	}
	return t
}

func (p *plan) paramErr(pd *paramDecl, format string, a ...any) error {
	line, col := p.d.lines.pos(pd.n.off)
	return &Error{Code: CodeInvalidTemplate, Target: pd.name, Line: line, Column: col,
		Message: fmt.Sprintf("Deployment template validation failed: '%s'.", fmt.Sprintf(format, a...))}
}

func (p *plan) bindParameter(pd *paramDecl) (any, error) {
	line, col := p.d.lines.pos(pd.n.off)
	lt := strings.ToLower(pd.typ)
	v, given := p.given[strings.ToLower(pd.name)]
	if given && v == nil {
		given = false
	}
	if given {
		nv, err := normalize(v)
		if err != nil {
			return nil, p.paramErr(pd, "The provided value for the template parameter '%s' at line '%d' and column '%d' is not valid: %v", pd.name, line, col, err)
		}
		v = convertGiven(lt, nv)
	} else {
		if pd.def == nil {
			return nil, p.paramErr(pd, "The value for the template parameter '%s' at line '%d' and column '%d' is not provided. Please see https://aka.ms/resource-manager-parameter-files for details", pd.name, line, col)
		}
		c := p.ctx(context.Background(), nil, phParamDefault)
		dv, err := c.evalNode(pd.def, false)
		if err != nil {
			return nil, p.d.placed("parameter", pd.name, pd.def, err)
		}
		if hasUnknown(dv) {
			return nil, p.d.placed("parameter", pd.name, pd.def, notExpected("reference"))
		}
		v = dv
	}
	if !typeFits(lt, v) {
		return nil, p.paramErr(pd, "The provided value for the template parameter '%s' at line '%d' and column '%d' is not valid. Expected a value of type '%s', but received a value of type '%s'. Please see https://aka.ms/arm-create-parameter-file for usage details", pd.name, line, col, paramTypeName(pd.typ), typeName(v))
	}
	secure := isSecureType(pd.typ)
	shown := func(v any) string {
		if secure {
			return ""
		}
		return " '" + truncate(display(v), 200) + "'"
	}
	if av := pd.n.get("allowedValues"); av != nil {
		allowed := av.plain().([]any)
		check := []any{v}
		if arr, ok := v.([]any); ok && lt == "array" {
			check = arr
		}
		for _, e := range check {
			found := false
			for _, a := range allowed {
				if deepEqual(a, e) {
					found = true
					break
				}
			}
			if !found {
				var names []string
				for _, a := range allowed {
					names = append(names, display(a))
				}
				return nil, p.paramErr(pd, "The provided value%s for the template parameter '%s' at line '%d' and column '%d' is not valid. The parameter value is not part of the allowed value(s): '%s'. Please see https://aka.ms/arm-syntax-parameters for usage details", shown(e), pd.name, line, col, strings.Join(names, ","))
			}
		}
	}
	if iv, ok := v.(int64); ok {
		if n := pd.n.get("minValue"); n != nil && iv < n.i {
			return nil, p.paramErr(pd, "The provided value%s for the template parameter '%s' at line '%d' and column '%d' is not valid. The parameter value is less than the minimum value '%d'. Please see https://aka.ms/arm-syntax-parameters for usage details", shown(v), pd.name, line, col, n.i)
		}
		if n := pd.n.get("maxValue"); n != nil && iv > n.i {
			return nil, p.paramErr(pd, "The provided value%s for the template parameter '%s' at line '%d' and column '%d' is not valid. The parameter value is greater than the maximum value '%d'. Please see https://aka.ms/arm-syntax-parameters for usage details", shown(v), pd.name, line, col, n.i)
		}
	}
	var length int64 = -1
	switch x := v.(type) {
	case string:
		length = strLen(x)
	case []any:
		length = int64(len(x))
	}
	if length >= 0 {
		if n := pd.n.get("minLength"); n != nil && length < n.i {
			return nil, p.paramErr(pd, "The provided value for the template parameter '%s' at line '%d' and column '%d' is not valid. The length of the value is '%d', less than the minimum length '%d'. Please see https://aka.ms/arm-syntax-parameters for usage details", pd.name, line, col, length, n.i)
		}
		if n := pd.n.get("maxLength"); n != nil && length > n.i {
			return nil, p.paramErr(pd, "The provided value for the template parameter '%s' at line '%d' and column '%d' is not valid. The length of the value is '%d', more than the maximum length '%d'. Please see https://aka.ms/arm-syntax-parameters for usage details", pd.name, line, col, length, n.i)
		}
	}
	return v, nil
}

// convertGiven converts a given string to the declared type, as az does
// for --parameters k=v (int, bool, JSON for object and array); a value
// that does not convert is kept, for the type check to refuse.
func convertGiven(t string, v any) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	switch t {
	case "int":
		if i, ok := toInt(mustJSON(s)); ok {
			return i
		}
	case "bool":
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			return true
		case "false":
			return false
		}
	case "object", "secureobject":
		if j, ok := mustJSON(s).(map[string]any); ok {
			return j
		}
	case "array":
		if j, ok := mustJSON(s).([]any); ok {
			return j
		}
	}
	return v
}

func mustJSON(s string) any {
	n, err := parseJSON([]byte(s))
	if err != nil {
		return nil
	}
	return n.plain()
}

func typeFits(t string, v any) bool {
	switch t {
	case "string", "securestring":
		_, ok := v.(string)
		return ok
	case "int":
		_, ok := v.(int64)
		return ok
	case "bool":
		_, ok := v.(bool)
		return ok
	case "object", "secureobject":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	}
	return false
}

// variable is variables(name), evaluated once, on first use.
func (p *plan) variable(c *evalCtx, name string) (any, error) {
	vs := p.vars[strings.ToLower(name)]
	if vs == nil {
		return nil, errorf("The template variable '%s' is not found. Please see https://aka.ms/arm-syntax-variables for usage details", name)
	}
	switch vs.state {
	case 2:
		return vs.value, vs.err
	case 1:
		return nil, errorf("The template variable '%s' refers to itself, directly or through other variables", vs.decl.name)
	}
	vs.state = 1
	vc := p.ctx(c.ctx, nil, phVariable)
	vc.work = c.work
	v, err := p.evalVariable(vc, vs.decl)
	if err == nil && hasUnknown(v) {
		err = notExpected("reference")
	}
	if err == nil && valueSize(v, maxValueSize) > maxValueSize {
		err = errorf("The value is larger than the limit of %d bytes", maxValueSize)
	}
	if err != nil {
		err = p.d.placed("variable", vs.decl.name, vs.decl.n, err)
		v = nil
	}
	vs.state, vs.value, vs.err = 2, v, err
	return v, err
}

func (p *plan) evalVariable(c *evalCtx, vd *varDecl) (any, error) {
	if !vd.copy {
		return c.evalNode(vd.n, true)
	}
	count, err := c.copyCount(vd.name, vd.n.get("count"))
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, count)
	for i := int64(0); i < count; i++ {
		v, err := c.withLoop(vd.name, i).evalNode(vd.n.get("input"), true)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
