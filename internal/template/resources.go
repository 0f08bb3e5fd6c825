package template

import (
	"context"
	"fmt"
	"strings"
)

// expand evaluates each resource's copy, name, type, apiVersion and
// condition, giving its instances.
func (p *plan) expand() error {
	byDecl := map[*resourceDecl][]*resourceInstance{}
	for _, rd := range p.d.resources {
		parents := []*resourceInstance{nil}
		if rd.parent != nil {
			parents = byDecl[rd.parent]
		}
		for _, parent := range parents {
			insts, err := p.expandOne(rd, parent)
			if err != nil {
				return err
			}
			byDecl[rd] = append(byDecl[rd], insts...)
			p.instances = append(p.instances, insts...)
			if len(p.instances) > maxResources {
				return p.d.placed("resource", rd.label, rd.n, errorf("The template has more than %d resource instances", maxResources))
			}
		}
	}
	return nil
}

func (p *plan) expandOne(rd *resourceDecl, parent *resourceInstance) ([]*resourceInstance, error) {
	c := p.ctx(context.Background(), nil, phResourceHead)
	if parent != nil {
		c.loops = append(append([]loop(nil), parent.loops...), copyLoops(parent)...)
	}
	fail := func(n *node, err error) error { return p.d.placed("resource", rd.label, n, err) }
	count := int64(1)
	copyName := ""
	var batch int64
	serial := false
	if cp := rd.n.get("copy"); cp != nil {
		if cp.kind != kObject {
			return nil, fail(cp, errorf("The resource's 'copy' must be an object with a 'name' and a 'count'"))
		}
		name, n, err := c.copyHeader(cp, false)
		if err != nil {
			return nil, fail(cp, err)
		}
		copyName, count = name, n
		if m := cp.get("mode"); m != nil {
			mv, err := c.evalNode(m, false)
			if err != nil {
				return nil, fail(m, err)
			}
			switch ms, _ := mv.(string); strings.ToLower(ms) {
			case "serial":
				serial = true
			case "parallel":
			default:
				return nil, fail(m, errorf("The copy mode '%v' is not valid: it must be 'serial' or 'parallel'", display(mv)))
			}
		}
		if b := cp.get("batchSize"); b != nil {
			bv, err := c.evalNode(b, false)
			if err != nil {
				return nil, fail(b, err)
			}
			bs, ok := toInt(bv)
			if !ok || bs < 1 {
				return nil, fail(b, errorf("The copy batchSize must be a positive integer"))
			}
			batch = bs
		}
		if serial && batch == 0 {
			batch = 1
		}
		if _, ok := p.loops[strings.ToLower(copyName)]; !ok {
			p.loops[strings.ToLower(copyName)] = nil // known even with count 0
		}
		for _, other := range p.d.resources {
			if other != rd && other.n.get("copy") != nil {
				if on := other.n.get("copy").get("name"); on != nil && on.kind == kString && strings.EqualFold(on.s, copyName) && other.index < rd.index {
					return nil, fail(cp, errorf("The copy name '%s' is used by more than one resource", copyName))
				}
			}
		}
	}
	var out []*resourceInstance
	for i := int64(0); i < count; i++ {
		ic := c.child()
		ri := &resourceInstance{decl: rd, parent: parent, loops: ic.loops, copyName: copyName, batch: batch, serial: serial}
		if copyName != "" {
			ri.main = &loop{name: copyName, index: i}
			ic.main = ri.main
		}
		str := func(key string) (string, error) {
			n := rd.n.get(key)
			v, err := ic.evalNode(n, false)
			if err != nil {
				return "", fail(n, err)
			}
			if isUnknown(v) {
				return "", fail(n, notExpected("reference"))
			}
			s, ok := v.(string)
			if !ok || s == "" {
				return "", fail(n, errorf("The resource's '%s' must be a non-empty string, not a value of type '%s'", key, typeName(v)))
			}
			return s, nil
		}
		var err error
		if ri.typ, err = str("type"); err != nil {
			return nil, err
		}
		if ri.name, err = str("name"); err != nil {
			return nil, err
		}
		if ri.apiVersion, err = str("apiVersion"); err != nil {
			return nil, err
		}
		ri.typ = strings.Trim(ri.typ, "/")
		if parent != nil && !strings.Contains(ri.typ, "/") {
			ri.typ = parent.typ + "/" + ri.typ
			ri.name = parent.name + "/" + ri.name
		}
		id, err := p.resourceID(ri.typ, ri.name)
		if err != nil {
			return nil, fail(rd.n, err)
		}
		ri.id = id
		ri.cond = true
		if parent != nil && !parent.cond {
			ri.cond = false
		}
		if cn := rd.n.get("condition"); cn != nil && ri.cond {
			v, err := ic.evalNode(cn, false)
			if err != nil {
				return nil, fail(cn, err)
			}
			b, ok := v.(bool)
			if !ok {
				if s, isStr := v.(string); isStr && (strings.EqualFold(s, "true") || strings.EqualFold(s, "false")) {
					b, ok = strings.EqualFold(s, "true"), true
				}
			}
			if !ok {
				return nil, fail(cn, errorf("The resource's condition must be a boolean, not a value of type '%s'", typeName(v)))
			}
			ri.cond = b
		}
		out = append(out, ri)
		if copyName != "" {
			p.loops[strings.ToLower(copyName)] = append(p.loops[strings.ToLower(copyName)], ri)
		}
	}
	return out, nil
}

func copyLoops(ri *resourceInstance) []loop {
	if ri.main == nil {
		return nil
	}
	return []loop{*ri.main}
}

// resourceID is the id of a resource of the scope's resource group: the
// type's segments interleaved with the name's.
func (p *plan) resourceID(typ, name string) (string, error) {
	return rgResourceID(p.scope.SubscriptionID, p.scope.ResourceGroup, typ, strings.Split(name, "/"))
}

func rgResourceID(sub, rg, typ string, names []string) (string, error) {
	suffix, err := providerPath(typ, names)
	if err != nil {
		return "", err
	}
	return "/subscriptions/" + sub + "/resourceGroups/" + rg + suffix, nil
}

// providerPath is /providers/ns/type1/name1/type2/name2….
func providerPath(typ string, names []string) (string, error) {
	typ = strings.Trim(typ, "/")
	segs := strings.Split(typ, "/")
	if len(segs) < 2 || segs[0] == "" || segs[1] == "" {
		return "", errorf("The resource type '%s' is not valid: it must be a namespace and a type, such as 'Microsoft.ContainerInstance/containerGroups'", typ)
	}
	var all []string
	for _, n := range names {
		all = append(all, strings.Split(n, "/")...)
	}
	if len(all) != len(segs)-1 {
		return "", errorf("The resource name '%s' for type '%s' has incorrect segment lengths. A nested resource type must have identical number of segments as its resource name. A root resource type must have segment length one greater than its resource name. Please see https://aka.ms/arm-template/#resources for usage details", strings.Join(all, "/"), typ)
	}
	var sb strings.Builder
	sb.WriteString("/providers/")
	sb.WriteString(segs[0])
	for i, t := range segs[1:] {
		if all[i] == "" {
			return "", errorf("The resource name for type '%s' has an empty segment", typ)
		}
		sb.WriteString("/" + t + "/" + all[i])
	}
	return sb.String(), nil
}

// resolve checks duplicate ids and the types, resolves dependsOn and the
// implicit dependencies of reference() and list*(), and makes the plan's
// Resources.
func (p *plan) resolve(types Types) error {
	seen := map[string]*resourceInstance{}
	for _, ri := range p.instances {
		if !ri.cond {
			continue
		}
		key := strings.ToLower(ri.id)
		if other := seen[key]; other != nil {
			line, col := p.d.lines.pos(ri.decl.n.off)
			return &Error{Code: CodeInvalidTemplate, Target: ri.name, Line: line, Column: col,
				Message: fmt.Sprintf("Deployment template validation failed: 'The resource '%s' at line '%d' and column '%d' is defined multiple times in a template. Please see https://aka.ms/arm-template/#resources for usage details.'.", ri.id, line, col)}
		}
		seen[key] = ri
	}
	for _, ri := range p.instances {
		if !ri.cond {
			continue
		}
		rd := ri.decl
		fail := func(n *node, err error) error { return p.d.placed("resource", ri.name, n, err) }
		if types != nil {
			if err := types(ri.typ, ri.apiVersion); err != nil {
				line, col := p.d.lines.pos(rd.n.off)
				return &Error{Code: CodeInvalidTemplateDeployment, Target: ri.name, Line: line, Column: col,
					Message: fmt.Sprintf("Deployment template validation failed: 'The template resource '%s' at line '%d' and column '%d' is not valid: %s.'.", ri.name, line, col, strings.TrimSuffix(err.Error(), "."))}
			}
		}
		deps := map[*resourceInstance]bool{}
		if dn := rd.n.get("dependsOn"); dn != nil {
			c := p.ctx(context.Background(), nil, phResourceHead)
			c.loops, c.main = ri.loops, ri.main
			v, err := c.evalNode(dn, false)
			if err != nil {
				return fail(dn, err)
			}
			if isUnknown(v) {
				return fail(dn, notExpected("reference"))
			}
			list, ok := v.([]any)
			if !ok {
				return fail(dn, errorf("The resource's 'dependsOn' must be an array of resource names or ids"))
			}
			for _, e := range list {
				s, ok := e.(string)
				if !ok {
					return fail(dn, errorf("The resource's 'dependsOn' must be an array of strings, not of values of type '%s'", typeName(e)))
				}
				targets := p.find(s, true)
				if targets == nil {
					line, col := p.d.lines.pos(dn.off)
					return &Error{Code: CodeInvalidTemplate, Target: ri.name, Line: line, Column: col,
						Message: fmt.Sprintf("Deployment template validation failed: 'The resource '%s' is not defined in the template. Please see https://aka.ms/arm-template for usage details.'.", s)}
				}
				for _, t := range targets {
					deps[t] = true
				}
			}
		}
		// the body, for its shape and its implicit dependencies
		var refs []*resourceInstance
		c := p.ctx(context.Background(), nil, phResourceBody)
		c.loops, c.main, c.refs = ri.loops, ri.main, &refs
		if _, err := p.evalBody(c, ri); err != nil {
			return err
		}
		for _, t := range refs {
			deps[t] = true
		}
		// a serial copy waits for the previous batch
		if ri.serial && ri.main != nil && ri.main.index >= ri.batch {
			b := ri.main.index/ri.batch - 1
			for _, o := range p.loops[strings.ToLower(ri.copyName)] {
				if o.parent == ri.parent && o.main.index/ri.batch == b {
					deps[o] = true
				}
			}
		}
		for _, o := range p.instances { // template order
			if deps[o] && o.cond {
				ri.deps = append(ri.deps, o)
			}
		}
		res := &Resource{ID: ri.id, Type: ri.typ, Name: ri.name, APIVersion: ri.apiVersion, r: ri}
		if ri.main != nil {
			res.Copy, res.Index = ri.copyName, int(ri.main.index)
		}
		for _, dpd := range ri.deps {
			res.DependsOn = append(res.DependsOn, dpd.id)
		}
		ri.res = res
	}
	return nil
}

// find resolves a resource reference of dependsOn or reference(): a full
// id, a copy loop's name (all its instances, when loops), "type/name",
// or a name.
func (p *plan) find(s string, loops bool) []*resourceInstance {
	s = strings.TrimSpace(s)
	var out []*resourceInstance
	if strings.HasPrefix(s, "/") {
		for _, ri := range p.instances {
			if strings.EqualFold(ri.id, s) {
				out = append(out, ri)
			}
		}
		return out
	}
	if loops {
		if insts, ok := p.loops[strings.ToLower(s)]; ok {
			return append([]*resourceInstance{}, insts...)
		}
	}
	for _, ri := range p.instances {
		if strings.EqualFold(ri.name, s) || strings.EqualFold(ri.typ+"/"+ri.name, s) {
			out = append(out, ri)
		}
	}
	return out
}

// order sorts the resources so that each comes after its dependencies,
// ties in template order, and refuses cycles.
func (p *plan) order() ([]*resourceInstance, error) {
	var todo []*resourceInstance
	for _, ri := range p.instances {
		if ri.cond {
			todo = append(todo, ri)
		}
	}
	done := map[*resourceInstance]bool{}
	var out []*resourceInstance
	for len(todo) > 0 {
		picked := -1
		for i, ri := range todo {
			ready := true
			for _, d := range ri.deps {
				if !done[d] {
					ready = false
					break
				}
			}
			if ready {
				picked = i
				break
			}
		}
		if picked < 0 {
			cycle := findCycle(todo, done)
			ids := make([]string, len(cycle))
			for i, ri := range cycle {
				ids[i] = "'" + ri.id + "'"
			}
			line, col := p.d.lines.pos(cycle[0].decl.n.off)
			return nil, &Error{Code: CodeInvalidTemplate, Target: cycle[0].name, Line: line, Column: col,
				Message: fmt.Sprintf("Deployment template validation failed: 'Circular dependency detected on resource: %s. Please see https://aka.ms/arm-template/#resources for usage details.'.", strings.Join(ids, " and "))}
		}
		ri := todo[picked]
		done[ri] = true
		out = append(out, ri)
		todo = append(todo[:picked:picked], todo[picked+1:]...)
	}
	return out, nil
}

func findCycle(todo []*resourceInstance, done map[*resourceInstance]bool) []*resourceInstance {
	pos := map[*resourceInstance]int{}
	var path []*resourceInstance
	cur := todo[0]
	for {
		if i, ok := pos[cur]; ok {
			return path[i:]
		}
		pos[cur] = len(path)
		path = append(path, cur)
		next := cur
		for _, d := range cur.deps {
			if !done[d] {
				next = d
				break
			}
		}
		if next == cur {
			return path[len(path)-1:]
		}
		cur = next
	}
}

// excluded are the keys of a resource that are not its body.
var excluded = map[string]bool{"type": true, "apiversion": true, "name": true, "dependson": true,
	"condition": true, "copy": true, "comments": true, "resources": true}

func (p *plan) evalBody(c *evalCtx, ri *resourceInstance) (map[string]any, error) {
	n := ri.decl.n
	body := map[string]any{}
	for i, k := range n.keys {
		if excluded[strings.ToLower(k)] {
			continue
		}
		v, err := c.evalNode(n.vals[i], true)
		if err != nil {
			if !c.binding() {
				return nil, p.runtimeErr(ri, n.vals[i], err)
			}
			return nil, p.d.placed("resource", ri.name, n.vals[i], err)
		}
		body[k] = v
	}
	if valueSize(body, maxValueSize) > maxValueSize {
		return nil, p.d.placed("resource", ri.name, n, errorf("The resource's body is larger than the limit of %d bytes", maxValueSize))
	}
	return body, nil
}

// runtimeErr places an error met while a resource is deployed. An error
// of the Runtime is returned as it is, so that its class is kept.
func (p *plan) runtimeErr(ri *resourceInstance, n *node, err error) error {
	if _, ok := err.(*evalError); !ok {
		return err
	}
	line, col := p.d.lines.pos(n.off)
	return &Error{Code: CodeInvalidTemplate, Target: ri.name, Line: line, Column: col,
		Message: fmt.Sprintf("Unable to process template language expressions for resource '%s' at line '%d' and column '%d'. '%s.'", ri.id, line, col, strings.TrimSuffix(err.Error(), "."))}
}

func (p *Plan) body(ctx context.Context, r *Resource, rt Runtime) (map[string]any, error) {
	if r == nil || r.r == nil || p.p == nil {
		return nil, &Error{Code: CodeInvalidTemplate, Message: "The resource is not one of this plan's"}
	}
	ri := r.r
	c := p.p.ctx(ctx, rt, phResourceBody)
	if rt == nil {
		c.work = new(int64)
	}
	c.loops, c.main = ri.loops, ri.main
	body, err := p.p.evalBody(c, ri)
	if err != nil {
		return nil, p.p.redact(err)
	}
	return body, nil
}

func (p *Plan) outputs(ctx context.Context, rt Runtime) (map[string]Output, error) {
	if p.p == nil {
		return nil, &Error{Code: CodeInvalidTemplate, Message: "The plan is not bound"}
	}
	if rt == nil {
		rt = nullRuntime{}
	}
	out, err := p.p.outputs(ctx, rt)
	if err != nil {
		return nil, p.p.redact(err)
	}
	return out, nil
}

// nullRuntime answers Outputs called without a Runtime.
type nullRuntime struct{}

func (nullRuntime) Reference(context.Context, string, string, bool) (any, error) {
	return nil, errorf("reference() needs the deployment's runtime")
}
func (nullRuntime) ListKeys(context.Context, string, string) (any, error) {
	return nil, errorf("listKeys() needs the deployment's runtime")
}

func (p *plan) outputs(ctx context.Context, rt Runtime) (map[string]Output, error) {
	out := map[string]Output{}
	for _, od := range p.d.outputs {
		c := p.ctx(ctx, rt, phOutput)
		if rt == nil {
			c.work = new(int64)
		}
		fail := func(n *node, err error) error {
			if _, ok := err.(*evalError); !ok && rt != nil {
				return err
			}
			return p.d.placed("output", od.name, n, err)
		}
		if cn := od.n.get("condition"); cn != nil {
			v, err := c.evalNode(cn, false)
			if err != nil {
				return nil, fail(cn, err)
			}
			if b, ok := v.(bool); ok && !b {
				continue
			} else if !ok && !isUnknown(v) {
				return nil, fail(cn, errorf("The output's condition must be a boolean, not a value of type '%s'", typeName(v)))
			}
		}
		var v any
		if cp := od.n.get("copy"); cp != nil {
			countN, input := cp.get("count"), cp.get("input")
			if cp.kind != kObject || countN == nil || input == nil {
				return nil, fail(cp, errorf("The output's 'copy' must be an object with a 'count' and an 'input'"))
			}
			count, err := c.copyCount(od.name, countN)
			if err != nil {
				return nil, fail(cp, err)
			}
			items := make([]any, 0, count)
			for i := int64(0); i < count; i++ {
				ic := c.child()
				ic.main = &loop{name: od.name, index: i}
				e, err := ic.evalNode(input, true)
				if err != nil {
					return nil, fail(input, err)
				}
				items = append(items, e)
			}
			v = items
		} else {
			vn := od.n.get("value")
			e, err := c.evalNode(vn, true)
			if err != nil {
				return nil, fail(vn, err)
			}
			v = e
		}
		lt := strings.ToLower(od.typ)
		if !hasUnknown(v) && !typeFits(lt, v) {
			if f, ok := v.(float64); ok && lt == "int" && f == float64(int64(f)) {
				v = int64(f)
			} else {
				return nil, fail(od.n, errorf("The template output '%s' is not valid: Template output JToken type is not valid. Expected '%s'. Actual '%s'. Please see https://aka.ms/arm-template/#outputs for usage details", od.name, paramTypeName(od.typ), typeName(v)))
			}
		}
		if valueSize(v, maxValueSize) > maxValueSize {
			return nil, fail(od.n, errorf("The output's value is larger than the limit of %d bytes", maxValueSize))
		}
		out[od.name] = Output{Type: od.typ, Value: v}
	}
	return out, nil
}
