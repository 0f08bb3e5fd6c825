package template

import (
	"fmt"
	"strconv"
	"strings"
)

func fnResourceGroup(c *evalCtx, _ string, _ []any) (any, error) {
	s := c.p.scope
	tags := map[string]any{}
	for k, v := range s.ResourceGroupTags {
		tags[k] = v
	}
	return map[string]any{
		"id":         "/subscriptions/" + s.SubscriptionID + "/resourceGroups/" + s.ResourceGroup,
		"name":       s.ResourceGroup,
		"type":       "Microsoft.Resources/resourceGroups",
		"location":   s.Location,
		"tags":       tags,
		"properties": map[string]any{"provisioningState": "Succeeded"},
	}, nil
}

func fnSubscription(c *evalCtx, _ string, _ []any) (any, error) {
	s := c.p.scope
	return map[string]any{
		"id":             "/subscriptions/" + s.SubscriptionID,
		"subscriptionId": s.SubscriptionID,
		"tenantId":       s.TenantID,
		"displayName":    s.SubscriptionName,
	}, nil
}

func fnTenant(c *evalCtx, _ string, _ []any) (any, error) {
	s := c.p.scope
	return map[string]any{
		"id":          "/tenants/" + s.TenantID,
		"tenantId":    s.TenantID,
		"countryCode": "",
		"displayName": "",
	}, nil
}

func fnDeployment(c *evalCtx, _ string, _ []any) (any, error) {
	d := c.p.d
	tmpl := map[string]any{"contentVersion": d.contentVersion}
	if d.schema != "" {
		tmpl["$schema"] = d.schema
	}
	return map[string]any{
		"name": c.p.scope.DeploymentName,
		"properties": map[string]any{
			"template":          tmpl,
			"templateHash":      strconv.FormatUint(murmurHash64(d.lines.doc), 10),
			"mode":              "Incremental",
			"provisioningState": "Accepted",
		},
	}, nil
}

func fnEnvironment(*evalCtx, string, []any) (any, error) {
	return map[string]any{
		"name":                    "AzureCloud",
		"resourceManager":         "https://management.azure.com/",
		"authentication":          map[string]any{"loginEndpoint": "https://login.microsoftonline.com/", "audiences": []any{"https://management.core.windows.net/", "https://management.azure.com/"}, "tenant": "common", "identityProvider": "AAD"},
		"suffixes":                map[string]any{"storage": "core.windows.net", "acrLoginServer": ".azurecr.io"},
		"activeDirectoryDataLake": "https://datalake.azure.net/",
	}, nil
}

func allStrings(fn string, a []any) ([]string, error) {
	out := make([]string, len(a))
	for i, v := range a {
		s, ok := v.(string)
		if !ok {
			return nil, errorf("The template language function '%s' expects its parameters to be strings; parameter %d is of type '%s'. Please see https://aka.ms/arm-resourceid for usage details", fn, i+1, typeName(v))
		}
		out[i] = s
	}
	return out, nil
}

// splitTypeArgs finds the resource type among resourceId()'s arguments:
// the first that has a "/"; those before it are the scope's (a
// subscription id and a resource group name).
func splitTypeArgs(fn string, a []string, maxScope int) (scope []string, typ string, names []string, err error) {
	for i, s := range a {
		if strings.Contains(s, "/") {
			if i > maxScope {
				break
			}
			return a[:i], s, a[i+1:], nil
		}
	}
	return nil, "", nil, errorf("The template language function '%s' expects a resource type such as 'Microsoft.ContainerInstance/containerGroups' among its first %d parameters. Please see https://aka.ms/arm-resourceid for usage details", fn, maxScope+1)
}

func idErr(fn string, err error) error {
	return errorf("Unable to evaluate template language function '%s': %s", fn, strings.TrimSuffix(err.Error(), "."))
}

func fnResourceID(c *evalCtx, name string, a []any) (any, error) {
	args, err := allStrings(name, a)
	if err != nil {
		return nil, err
	}
	scope, typ, names, err := splitTypeArgs(name, args, 2)
	if err != nil {
		return nil, err
	}
	sub, rg := c.p.scope.SubscriptionID, c.p.scope.ResourceGroup
	switch len(scope) {
	case 1:
		rg = scope[0]
	case 2:
		sub, rg = scope[0], scope[1]
	}
	id, err := rgResourceID(sub, rg, typ, names)
	if err != nil {
		return nil, idErr(name, err)
	}
	return id, nil
}

func fnSubscriptionResourceID(c *evalCtx, name string, a []any) (any, error) {
	args, err := allStrings(name, a)
	if err != nil {
		return nil, err
	}
	scope, typ, names, err := splitTypeArgs(name, args, 1)
	if err != nil {
		return nil, err
	}
	sub := c.p.scope.SubscriptionID
	if len(scope) == 1 {
		sub = scope[0]
	}
	suffix, err := providerPath(typ, names)
	if err != nil {
		return nil, idErr(name, err)
	}
	return "/subscriptions/" + sub + suffix, nil
}

func fnTenantResourceID(_ *evalCtx, name string, a []any) (any, error) {
	args, err := allStrings(name, a)
	if err != nil {
		return nil, err
	}
	suffix, err := providerPath(args[0], args[1:])
	if err != nil {
		return nil, idErr(name, err)
	}
	return suffix, nil
}

func fnExtensionResourceID(_ *evalCtx, name string, a []any) (any, error) {
	args, err := allStrings(name, a)
	if err != nil {
		return nil, err
	}
	suffix, err := providerPath(args[1], args[2:])
	if err != nil {
		return nil, idErr(name, err)
	}
	return strings.TrimSuffix(args[0], "/") + suffix, nil
}

func checkRuntimePhase(c *evalCtx, name string, _ []any) error {
	if c.ph != phResourceBody && c.ph != phOutput {
		return notExpected(name)
	}
	return nil
}

// target resolves reference()'s and listKeys()'s first argument: a
// resource id, or the name of a resource of the template.
func (c *evalCtx) target(fn, s string) (id, apiVersion string, ri *resourceInstance, err error) {
	if strings.HasPrefix(s, "/") {
		for _, r := range c.p.find(s, false) {
			if ri == nil || r.cond {
				ri = r
			}
		}
		if ri != nil {
			return ri.id, ri.apiVersion, ri, nil
		}
		return s, "", nil, nil
	}
	found := c.p.find(s, false)
	for _, r := range found {
		if ri == nil || r.cond {
			ri = r
		}
	}
	if ri == nil {
		return "", "", nil, errorf("The template reference '%s' is not valid: could not find template resource or resource copy with this name. Please see https://aka.ms/arm-function-reference for usage details", s)
	}
	return ri.id, ri.apiVersion, ri, nil
}

func fnReference(c *evalCtx, name string, a []any) (any, error) {
	if err := checkRuntimePhase(c, name, a); err != nil {
		return nil, err
	}
	s, err := argStr(name, a[0])
	if err != nil {
		return nil, err
	}
	id, api, ri, err := c.target(name, s)
	if err != nil {
		return nil, err
	}
	if len(a) >= 2 {
		v, err := argStr(name, a[1])
		if err != nil {
			return nil, err
		}
		api = v
	}
	full := false
	if len(a) == 3 {
		f, err := argStr(name, a[2])
		if err != nil {
			return nil, err
		}
		if !strings.EqualFold(f, "full") {
			return nil, errorf("The template language function 'reference' has an invalid third parameter '%s': it can only be 'Full'", f)
		}
		full = true
	}
	if api == "" {
		return nil, errorf("The template language function 'reference' needs an apiVersion for the resource '%s', which this template does not deploy. Please see https://aka.ms/arm-function-reference for usage details", id)
	}
	if c.binding() {
		if ri != nil && c.refs != nil && ri.cond {
			*c.refs = append(*c.refs, ri)
		}
		return unknown, nil
	}
	v, err := c.rt.Reference(c.ctx, id, api, full)
	if err != nil {
		return nil, fmt.Errorf("reference('%s'): %w", id, err)
	}
	return normalize(v)
}

func fnListKeys(c *evalCtx, name string, a []any) (any, error) {
	if err := checkRuntimePhase(c, name, a); err != nil {
		return nil, err
	}
	s, err := argStr(name, a[0])
	if err != nil {
		return nil, err
	}
	api, err := argStr(name, a[1])
	if err != nil {
		return nil, err
	}
	id, _, ri, err := c.target(name, s)
	if err != nil {
		return nil, err
	}
	if c.binding() {
		if ri != nil && c.refs != nil && ri.cond {
			*c.refs = append(*c.refs, ri)
		}
		return unknown, nil
	}
	v, err := c.rt.ListKeys(c.ctx, id, api)
	if err != nil {
		return nil, fmt.Errorf("listKeys('%s'): %w", id, err)
	}
	return normalize(v)
}

// callUser calls a user function: its output value evaluated with its
// parameters bound to the arguments.
func (c *evalCtx) callUser(x callExpr) (any, error) {
	f := c.p.d.userFns[x.name]
	if f == nil {
		return nil, unknownFunction(x.orig)
	}
	if c.ph == phUserFunction {
		return nil, errorf("The user function '%s' cannot call another user function", x.orig)
	}
	if len(x.args) != len(f.params) {
		return nil, errorf("Unable to evaluate the user function '%s': it requires %d argument(s) while %d were given", f.name, len(f.params), len(x.args))
	}
	args := map[string]any{}
	for i, a := range x.args {
		v, err := c.eval(a)
		if err != nil {
			return nil, err
		}
		if !hasUnknown(v) && !typeFits(strings.ToLower(f.params[i].typ), v) {
			return nil, errorf("The user function '%s' expects its parameter '%s' to be of type '%s'. The provided value is of type '%s'", f.name, f.params[i].name, paramTypeName(f.params[i].typ), typeName(v))
		}
		args[f.params[i].name] = v
	}
	fc := c.child()
	fc.ph, fc.fnArgs, fc.fnName, fc.loops, fc.main = phUserFunction, args, f.name, nil, nil
	v, err := fc.evalNode(f.out, false)
	if err != nil {
		return nil, err
	}
	if f.outType != "" && !hasUnknown(v) && !typeFits(strings.ToLower(f.outType), v) {
		return nil, errorf("The user function '%s' returned a value of type '%s' where its output is declared '%s'", f.name, typeName(v), paramTypeName(f.outType))
	}
	return v, nil
}
