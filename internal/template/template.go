// Package template is the ARM template language: a deployment template's
// parameters, variables, resources and outputs, and the expression
// language inside its strings ("[concat(parameters('a'), 'b')]").
//
// It does no I/O. A deployment (package deployment) parses a template,
// binds it to its parameters and scope (Bind), which checks everything
// that can be checked before anything is created, and then, resource by
// resource in dependency order, renders each body (Plan.Body) with a
// Runtime that answers reference() and listKeys() from what is deployed,
// and at the end the outputs (Plan.Outputs).
//
// Errors are *Error, with ARM's codes: InvalidTemplate for a template that
// is malformed or whose expressions fail and for parameters that do not
// fit it (missing, unknown, disallowed, out of range: ARM's "The value for
// the template parameter 'x' … is not provided"), InvalidTemplateDeployment
// for resources that cannot be deployed (unknown type), and
// each names the place ("resource 'Microsoft.ContainerInstance/
// containerGroups/web' at line 12, column 9: ...").
package template

import (
	"context"
	"time"
)

// Error codes of ARM's template errors.
const (
	CodeInvalidTemplate           = "InvalidTemplate"
	CodeInvalidTemplateDeployment = "InvalidTemplateDeployment"
)

// Error is a template error. Class is errdefs.ErrInvalidArgument.
type Error struct {
	Code    string
	Message string
	// Target is the place: a parameter, variable, resource or output.
	Target string
	// Line and Column are 1-based positions in the template document when
	// known, else 0.
	Line, Column int
}

func (e *Error) Error() string { return e.Message }

// Scope is what the context functions return: resourceGroup(),
// subscription(), deployment(), and utcNow() in parameter defaults.
type Scope struct {
	TenantID          string
	SubscriptionID    string
	SubscriptionName  string
	ResourceGroup     string
	Location          string // the resource group's
	ResourceGroupTags map[string]string
	DeploymentName    string
	Now               time.Time
}

// Runtime answers the functions that read deployed resources. Resources
// are named by their full ids (/subscriptions/…/providers/Type/name).
type Runtime interface {
	// Reference is reference(id, apiVersion[, 'Full']): the resource's
	// properties, or with full the whole resource (id, name, type,
	// location, properties, …) as its GET returns it.
	Reference(ctx context.Context, id, apiVersion string, full bool) (any, error)
	// ListKeys is listKeys(id, apiVersion): the body of the resource's
	// POST …/listKeys.
	ListKeys(ctx context.Context, id, apiVersion string) (any, error)
}

// Types checks that a resource type can be deployed at apiVersion; a nil
// Types accepts every type. Its error becomes InvalidTemplateDeployment.
type Types func(resourceType, apiVersion string) error

// Template is a parsed template document.
type Template struct {
	t *document
}

// Parse parses a template document (JSON, as az and the SDK send it).
func Parse(doc []byte) (*Template, error) { return parse(doc) }

// Parameter is a bound parameter: its declared type as written in the
// template ("string", "securestring", "int", …, any case) and its value.
type Parameter struct {
	Type  string
	Value any
}

// Secure reports whether the parameter is a securestring or secureObject,
// whose value a read never shows.
func (p Parameter) Secure() bool { return isSecureType(p.Type) }

// Output is an evaluated output.
type Output struct {
	Type  string
	Value any
}

// Resource is one resource instance of a plan (a copy loop gives one per
// index).
type Resource struct {
	// ID is the resource's full id under the scope's resource group.
	ID         string
	Type       string // e.g. Microsoft.ContainerInstance/containerGroups
	Name       string // e.g. web, or acct/default/share for a child
	APIVersion string
	// DependsOn are the ids of the resources that must be deployed first:
	// the template's dependsOn (by name or id, copy loops meaning all
	// their instances) and, for a serial copy loop, the previous batch.
	DependsOn []string
	// Copy is the copy loop's name and this instance's index, or "" and 0.
	Copy  string
	Index int
	r     *resourceInstance
}

// Plan is a template bound to its parameters and scope: the resources to
// deploy, dependencies first, with conditions evaluated (a resource whose
// condition is false is not in Resources).
type Plan struct {
	// Parameters are every declared parameter's value: given, or its
	// default. Given strings are converted to the declared type (int,
	// bool, object, array) as az does for --parameters k=v.
	Parameters map[string]Parameter
	// Resources are in an order that puts every resource after those it
	// depends on (ties in template order).
	Resources []*Resource
	p         *plan
}

// Bind binds a template to the deployment's parameters (values, without
// ARM's {"value": …} wrapper) and scope: it checks the parameters against
// their declarations, evaluates the variables, expands copy loops and
// conditions, resolves dependsOn, refuses cycles, and checks each resource
// type with types. Expressions that need a deployed resource (reference,
// listKeys) are checked for shape only. Nothing is created, so a nil
// error means the deployment may start.
func (t *Template) Bind(params map[string]any, s Scope, types Types) (*Plan, error) {
	return t.bind(params, s, types)
}

// Body renders a resource's body for its PUT: every property of the
// resource in the template except type, apiVersion, name, dependsOn,
// condition, copy and comments, with its expressions evaluated (rt
// answers reference and listKeys). The result is plain JSON values
// (map[string]any, []any, string, float64 or int64, bool, nil).
func (p *Plan) Body(ctx context.Context, r *Resource, rt Runtime) (map[string]any, error) {
	return p.body(ctx, r, rt)
}

// Outputs evaluates the template's outputs, each converted to and checked
// against its declared type.
func (p *Plan) Outputs(ctx context.Context, rt Runtime) (map[string]Output, error) {
	return p.outputs(ctx, rt)
}
