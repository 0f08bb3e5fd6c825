package deployment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
	"github.com/skiff-sh/skiff/internal/template"
)

// nameRE is ARM's rule for a deployment name.
var nameRE = regexp.MustCompile(`^[-\w._()]{1,64}$`)

// ValidateName refuses a deployment name ARM refuses.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidDeploymentName",
			"The deployment name '%s' is invalid. It can be at most 64 characters long and may contain only letters, digits, '-', '.', '_', '(' and ')'.", clip(name))
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// bound is a request bound to its template: what a run will deploy.
type bound struct {
	plan   *template.Plan
	params map[string]paramValue
	scrub  *scrubber
	rg     *store.ResourceGroup
	now    time.Time
}

// bind parses the template and binds it to the parameters and the scope,
// checking everything that can be checked before anything is created.
func (e *Engine) bind(ctx context.Context, t Target, tmplDoc json.RawMessage, params map[string]any, p Principal, now time.Time) (*bound, error) {
	rg, err := e.st.GetResourceGroup(ctx, t.Subscription, t.ResourceGroup)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, errdefs.WithCode(errdefs.ErrNotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", t.ResourceGroup)
	}
	if err != nil {
		return nil, err
	}
	sub, err := e.st.GetSubscription(ctx, t.Subscription)
	if err != nil {
		return nil, err
	}
	// Until the template is bound its declared types are known only from
	// the document: enough to keep secure values out of its errors.
	sc := newScrubber(declaredTypes(tmplDoc), params)
	tmpl, err := template.Parse(tmplDoc)
	if err != nil {
		return nil, templateError(err, sc)
	}
	scope := template.Scope{TenantID: p.TenantID, SubscriptionID: sub.ID, SubscriptionName: sub.DisplayName,
		ResourceGroup: rg.Name, Location: rg.Location, ResourceGroupTags: rg.Tags, DeploymentName: t.Name, Now: now}
	var types template.Types
	if e.cfg.Resources != nil {
		types = e.cfg.Resources.Types
	}
	plan, err := tmpl.Bind(params, scope, types)
	if err != nil {
		return nil, templateError(err, sc)
	}
	b := &bound{plan: plan, params: map[string]paramValue{}, rg: rg, now: now}
	typesOf := map[string]string{}
	values := map[string]any{}
	for name, bp := range plan.Parameters {
		b.params[name] = paramValue{Type: bp.Type, Value: bp.Value}
		typesOf[name], values[name] = bp.Type, bp.Value
	}
	b.scrub = newScrubber(typesOf, values)
	return b, nil
}

// templateError is a template's error as the API answers it, without
// secure values.
func templateError(err error, sc *scrubber) error {
	var te *template.Error
	if errors.As(err, &te) {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, te.Code, "%s", sc.text(te.Message))
	}
	return errors.New(sc.text(err.Error()))
}

// declaredTypes reads the declared types of a template's parameters
// (keys compared without case, as ARM's are).
func declaredTypes(doc json.RawMessage) map[string]string {
	var top map[string]json.RawMessage
	if json.Unmarshal(doc, &top) != nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range top {
		if !strings.EqualFold(k, "parameters") {
			continue
		}
		var params map[string]map[string]any
		if json.Unmarshal(v, &params) != nil {
			return out
		}
		for name, decl := range params {
			for dk, dv := range decl {
				if s, ok := dv.(string); ok && strings.EqualFold(dk, "type") {
					out[name] = s
				}
			}
		}
	}
	return out
}

// Validate checks a deployment as a PUT would, and returns it as it
// would be (provisioningState Succeeded); nothing is stored.
func (e *Engine) Validate(ctx context.Context, t Target, req *api.DeploymentRequest, p Principal) (*api.DeploymentValidateResult, error) {
	if err := ValidateName(t.Name); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	b, err := e.bind(ctx, t, req.Template, req.Parameters, p, now)
	if err != nil {
		return nil, err
	}
	params, err := e.storeParameters(b.params)
	if err != nil {
		return nil, err
	}
	rec := e.newRecord(t, req, b, params, p)
	rec.State = api.DeploymentSucceeded
	v := e.View(rec)
	for _, id := range rec.Resources {
		v.Properties.ValidatedResources = append(v.Properties.ValidatedResources, api.ResourceReference{ID: id})
	}
	v.Properties.Duration = "PT0S"
	return &api.DeploymentValidateResult{ID: v.ID, Name: v.Name, Type: v.Type, Properties: &v.Properties}, nil
}

func (e *Engine) newRecord(t Target, req *api.DeploymentRequest, b *bound, params map[string]StoredParameter, p Principal) *Record {
	h := fnv.New64a()
	h.Write(req.Template)
	rec := &Record{Subscription: t.Subscription, ResourceGroup: b.rg.Name, Name: t.Name, RunID: uuid.NewString(),
		Template: req.Template, TemplateHash: strconv.FormatUint(h.Sum64(), 10), Parameters: params, Mode: req.Mode,
		DebugSetting: req.DebugSetting, Tags: req.Tags, Principal: p, Now: b.now, ResourceGroupCreated: b.rg.CreatedAt,
		State: api.DeploymentAccepted, Updated: b.now}
	byID := map[string]*template.Resource{}
	for _, r := range b.plan.Resources {
		byID[strings.ToLower(r.ID)] = r
		rec.Resources = append(rec.Resources, r.ID)
	}
	providers := map[string]*api.Provider{}
	var order []string
	for _, r := range b.plan.Resources {
		ns, typ, _ := strings.Cut(r.Type, "/")
		pr := providers[strings.ToLower(ns)]
		if pr == nil {
			pr = &api.Provider{Namespace: ns}
			providers[strings.ToLower(ns)] = pr
			order = append(order, strings.ToLower(ns))
		}
		if !slices.ContainsFunc(pr.ResourceTypes, func(x api.ProviderResourceType) bool { return strings.EqualFold(x.ResourceType, typ) }) {
			pr.ResourceTypes = append(pr.ResourceTypes, api.ProviderResourceType{ResourceType: typ, Locations: []string{b.rg.Location}})
		}
		if len(r.DependsOn) == 0 {
			continue
		}
		d := api.Dependency{ID: r.ID, ResourceType: r.Type, ResourceName: r.Name}
		for _, dep := range r.DependsOn {
			bd := api.BasicDependency{ID: dep}
			if dr := byID[strings.ToLower(dep)]; dr != nil {
				bd.ResourceType, bd.ResourceName = dr.Type, dr.Name
			}
			d.DependsOn = append(d.DependsOn, bd)
		}
		rec.Dependencies = append(rec.Dependencies, d)
	}
	for _, ns := range order {
		rec.Providers = append(rec.Providers, *providers[ns])
	}
	return rec
}

// errNotFound is ARM's 404 of a deployment.
func errNotFound(name string) error {
	return errdefs.WithCode(errdefs.ErrNotFound, "DeploymentNotFound", "Deployment '%s' could not be found.", name)
}

// Create accepts a deployment: it validates it as Validate does, then
// stores it Accepted, replacing a deployment of that name that is over.
// The engine's Run deploys it.
func (e *Engine) Create(ctx context.Context, t Target, req *api.DeploymentRequest, p Principal) (rec *Record, created bool, err error) {
	if err := ValidateName(t.Name); err != nil {
		return nil, false, err
	}
	if e.cfg.Sealer == nil {
		return nil, false, fmt.Errorf("deployments: no seal key: %w", errdefs.ErrUnavailable)
	}
	now := time.Now().UTC()
	b, err := e.bind(ctx, t, req.Template, req.Parameters, p, now)
	if err != nil {
		return nil, false, err
	}
	params, err := e.storeParameters(b.params)
	if err != nil {
		return nil, false, err
	}
	rec = e.newRecord(t, req, b, params, p)
	k := key(t)
	for {
		old, rev, err := load(ctx, e.st, k)
		switch {
		case errdefs.Is(err, errdefs.ErrNotFound):
			rev, created = 0, true
		case err != nil:
			return nil, false, err
		case !old.ResourceGroupCreated.Equal(b.rg.CreatedAt):
			created = true // a deleted namesake resource group's
		case !api.DeploymentTerminal(old.State):
			return nil, false, errdefs.WithCode(errdefs.ErrConflict, "DeploymentActive",
				"Unable to edit or replace deployment '%s': the previous deployment is still %s. Wait for it to end, or cancel it (POST .../cancel).",
				old.Name, strings.ToLower(old.State))
		default:
			created = false
			rec.Name = old.Name // the name as first written
		}
		if _, err := save(ctx, e.st, rec, rev); err != nil {
			if errdefs.CodeOf(err) == "ObjectChanged" || errdefs.CodeOf(err) == "ObjectExists" {
				continue
			}
			return nil, false, err
		}
		break
	}
	if err := markActive(ctx, e.st, k, rec.RunID); err != nil {
		// The record is stored: a restarted engine resumes it all the
		// same (it lists every record on start).
		e.log.Warn("deployment marker not written", "deployment", t.ID(), "err", err)
	}
	select {
	case e.kick <- k:
	default: // the scan finds it
	}
	return rec, created, nil
}

// Get returns a deployment's record.
func (e *Engine) Get(ctx context.Context, t Target) (*Record, error) {
	rec, _, err := e.current(ctx, t)
	return rec, err
}

// current loads a record that belongs to its resource group as it is now.
func (e *Engine) current(ctx context.Context, t Target) (*Record, int64, error) {
	rec, rev, err := load(ctx, e.st, key(t))
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, 0, errNotFound(t.Name)
	}
	if err != nil {
		return nil, 0, err
	}
	rg, err := e.st.GetResourceGroup(ctx, t.Subscription, t.ResourceGroup)
	if errdefs.Is(err, errdefs.ErrNotFound) || (err == nil && !rg.CreatedAt.Equal(rec.ResourceGroupCreated)) {
		return nil, 0, errNotFound(t.Name)
	}
	if err != nil {
		return nil, 0, err
	}
	return rec, rev, nil
}

// List returns a resource group's deployments, by name.
func (e *Engine) List(ctx context.Context, sub, rgName string) ([]*Record, error) {
	rg, err := e.st.GetResourceGroup(ctx, sub, rgName)
	if err != nil {
		return nil, err
	}
	objs, err := e.st.ListObjects(ctx, kindDeployment, groupPrefix(sub, rgName))
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, o := range objs {
		var r Record
		if err := json.Unmarshal(o.Value, &r); err != nil {
			return nil, fmt.Errorf("deployment %q: stored record: %v: %w", o.Key, err, errdefs.ErrUnavailable)
		}
		if r.ResourceGroupCreated.Equal(rg.CreatedAt) {
			out = append(out, &r)
		}
	}
	return out, nil
}

// Delete deletes a deployment's record (not its resources, as in ARM); a
// deployment that is Accepted or Running is refused.
func (e *Engine) Delete(ctx context.Context, t Target) (runID string, err error) {
	rec, rev, err := e.current(ctx, t)
	if err != nil {
		return "", err
	}
	if !api.DeploymentTerminal(rec.State) && rec.State != api.DeploymentDeleting {
		return "", errdefs.WithCode(errdefs.ErrConflict, "DeploymentActive",
			"The deployment '%s' is still %s: cancel it, or wait for it to end, before deleting it.", rec.Name, strings.ToLower(rec.State))
	}
	rec.State, rec.Updated = api.DeploymentDeleting, time.Now().UTC()
	if rev, err = save(ctx, e.st, rec, rev); err != nil {
		if errdefs.CodeOf(err) == "ObjectChanged" {
			return "", errdefs.WithCode(errdefs.ErrConflict, "DeploymentChanged", "The deployment '%s' changed while it was being deleted; try again.", rec.Name)
		}
		return "", err
	}
	if err := e.st.DeleteObject(ctx, kindDeployment, key(t), rev); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
		return "", err
	}
	return rec.RunID, nil
}

// Cancel cancels a deployment that is Accepted or Running: it becomes
// Canceled at once, and its run starts no more resources.
func (e *Engine) Cancel(ctx context.Context, t Target) error {
	rec, _, err := e.current(ctx, t)
	if err != nil {
		return err
	}
	k := key(t)
	_, err = update(ctx, e.st, k, rec.RunID, func(r *Record) error {
		if r.State != api.DeploymentAccepted && r.State != api.DeploymentRunning {
			return errdefs.WithCode(errdefs.ErrConflict, "DeploymentCannotBeCancelled",
				"The deployment '%s' cannot be cancelled: it is %s. Only a deployment that is Accepted or Running can be.", r.Name, r.State)
		}
		r.State, r.Ended = api.DeploymentCanceled, time.Now().UTC()
		return nil
	})
	if errors.Is(err, errChanged) {
		return errNotFound(t.Name)
	}
	if err != nil {
		return err
	}
	if err := clearActive(ctx, e.st, k, rec.RunID); err != nil {
		e.log.Warn("deployment marker not cleared", "deployment", t.ID(), "err", err)
	}
	e.stopLocal(k, rec.RunID)
	return nil
}

// View is a record as a read shows it: secure parameters without their
// values.
func (e *Engine) View(r *Record) api.Deployment {
	t := r.Target()
	props := api.DeploymentProperties{
		TemplateHash: r.TemplateHash, Mode: r.Mode, DebugSetting: r.DebugSetting, ProvisioningState: r.State,
		CorrelationID: r.RunID, Timestamp: r.Updated.UTC().Format(time.RFC3339Nano), Duration: isoDuration(r.duration()),
		Providers: r.Providers, Dependencies: r.Dependencies, Error: r.Error,
		Parameters: map[string]api.DeploymentParameter{},
	}
	for name, sp := range r.Parameters {
		dp := api.DeploymentParameter{Type: api.TemplateTypeName(sp.Type)}
		if sp.Sealed == "" && len(sp.Value) > 0 {
			dp.Value, _ = api.DecodeJSONValue(sp.Value)
		}
		props.Parameters[name] = dp
	}
	if r.State == api.DeploymentSucceeded {
		props.Outputs = r.Outputs
		for _, id := range r.OutputResources {
			props.OutputResources = append(props.OutputResources, api.ResourceReference{ID: id})
		}
	}
	return api.Deployment{ID: t.ID(), Name: r.Name, Type: api.DeploymentType, Tags: r.Tags, Properties: props}
}

// duration is how long the run took, or has taken so far.
func (r *Record) duration() time.Duration {
	switch {
	case r.Started.IsZero():
		return 0
	case r.Ended.IsZero():
		return time.Since(r.Started)
	}
	return r.Ended.Sub(r.Started)
}

// Operations are a deployment's operations as ARM shows them.
func (e *Engine) Operations(r *Record) []api.DeploymentOperation {
	out := []api.DeploymentOperation{}
	for _, op := range r.Operations {
		out = append(out, operationView(r, op))
	}
	return out
}

func operationView(r *Record, op Operation) api.DeploymentOperation {
	d := op.Ended.Sub(op.Started)
	if op.Ended.IsZero() {
		d = time.Since(op.Started)
	}
	ts := op.Ended
	if ts.IsZero() {
		ts = op.Started
	}
	return api.DeploymentOperation{
		ID: r.Target().ID() + "/operations/" + op.ID, OperationID: op.ID,
		Properties: api.DeploymentOperationProperties{
			ProvisioningOperation: op.Provisioning, ProvisioningState: op.State,
			Timestamp: ts.UTC().Format(time.RFC3339Nano), Duration: isoDuration(d), TrackingID: op.ID,
			StatusCode: op.StatusCode, StatusMessage: op.Status,
			TargetResource: &api.TargetResource{ID: op.ResourceID, ResourceType: op.ResourceType, ResourceName: op.ResourceName},
		},
	}
}

// Operation returns one of a deployment's operations.
func (e *Engine) Operation(r *Record, id string) (*api.DeploymentOperation, error) {
	for _, op := range r.Operations {
		if strings.EqualFold(op.ID, id) {
			v := operationView(r, op)
			return &v, nil
		}
	}
	return nil, errdefs.WithCode(errdefs.ErrNotFound, "DeploymentOperationNotFound",
		"The operation '%s' of deployment '%s' could not be found.", clip(id), r.Name)
}

// isoDuration is an ISO 8601 duration as ARM writes them (PT1M2.5S).
func isoDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	var b strings.Builder
	b.WriteString("PT")
	if h := d / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dH", h)
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dM", m)
		d -= m * time.Minute
	}
	s := strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
	b.WriteString(s + "S")
	return b.String()
}
