package deployment

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
	"github.com/skiff-sh/skiff/internal/template"
)

// run is a deployment Run is driving.
type run struct {
	key   string
	runID string
	// stop ends the run's resource requests (a cancel, or a newer PUT);
	// the record writes go on until the run has said how it ended.
	stop context.CancelFunc
	done chan struct{}
}

// Run drives deployments until ctx ends: it resumes those left Accepted
// or Running, then runs each one accepted, here or by another server. One
// process of a cluster runs it at a time (with the controller, under the
// leader election); a run interrupted by ctx is resumed by the next.
func (e *Engine) Run(ctx context.Context) error {
	changes := e.st.Watch(ctx) // before the listing: no resource group delete is missed
	if err := e.resume(ctx); err != nil {
		return fmt.Errorf("deployments: %w", err)
	}
	tick := time.NewTicker(e.cfg.ScanInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			e.wait()
			return nil
		case k := <-e.kick:
			e.start(ctx, k)
		case <-tick.C:
			e.scan(ctx)
		case c, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			if c.Kind == store.ResourceGroupChange {
				e.resourceGroupChanged(ctx, c.Subscription, c.ResourceGroup)
			}
		}
	}
}

// wait waits for the runs to stop (ctx ended).
func (e *Engine) wait() {
	e.mu.Lock()
	runs := make([]*run, 0, len(e.running))
	for _, r := range e.running {
		runs = append(runs, r)
	}
	e.mu.Unlock()
	for _, r := range runs {
		<-r.done
	}
}

// resume starts every deployment left Accepted or Running, finishes the
// deletes a crash interrupted, and deletes the records of resource groups
// that are gone.
func (e *Engine) resume(ctx context.Context) error {
	objs, err := e.st.ListObjects(ctx, kindDeployment, "")
	if err != nil {
		return err
	}
	for _, o := range objs {
		var r Record
		if err := json.Unmarshal(o.Value, &r); err != nil {
			e.log.Error("deployment record unreadable", "key", o.Key, "err", err)
			continue
		}
		rg, err := e.st.GetResourceGroup(ctx, r.Subscription, r.ResourceGroup)
		switch {
		case errdefs.Is(err, errdefs.ErrNotFound) || (err == nil && !rg.CreatedAt.Equal(r.ResourceGroupCreated)):
			e.forget(ctx, o.Key, o.Revision)
		case err != nil:
			return err
		case r.State == api.DeploymentDeleting:
			e.forget(ctx, o.Key, o.Revision)
		case r.State == api.DeploymentAccepted || r.State == api.DeploymentRunning:
			e.start(ctx, o.Key)
		}
	}
	e.scan(ctx)
	return nil
}

// forget deletes a record (and its marker) whose deployment is gone.
func (e *Engine) forget(ctx context.Context, k string, rev int64) {
	if err := e.st.DeleteObject(ctx, kindDeployment, k, rev); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) && errdefs.CodeOf(err) != "ObjectChanged" {
		e.log.Warn("deployment record not deleted", "key", k, "err", err)
	}
	if err := clearActive(ctx, e.st, k, ""); err != nil {
		e.log.Warn("deployment marker not cleared", "key", k, "err", err)
	}
}

// scan starts the runs other servers accepted, and stops the local runs
// whose deployment was canceled, replaced or deleted meanwhile.
func (e *Engine) scan(ctx context.Context) {
	marks, err := e.st.ListObjects(ctx, kindActive, "")
	if err != nil {
		e.log.Warn("deployment markers not listed", "err", err)
		return
	}
	for _, m := range marks {
		e.start(ctx, m.Key)
	}
	type local struct {
		r     *run
		runID string
	}
	e.mu.Lock()
	runs := make([]local, 0, len(e.running))
	for _, r := range e.running {
		runs = append(runs, local{r, r.runID})
	}
	e.mu.Unlock()
	for _, l := range runs {
		rec, _, err := load(ctx, e.st, l.r.key)
		if errdefs.Is(err, errdefs.ErrNotFound) || (err == nil && l.runID != "" && (rec.RunID != l.runID || rec.State == api.DeploymentCanceled)) {
			l.r.stop()
		}
	}
}

// resourceGroupChanged cancels the runs of a resource group being deleted
// and deletes the records of one that is gone.
func (e *Engine) resourceGroupChanged(ctx context.Context, sub, rgName string) {
	rg, err := e.st.GetResourceGroup(ctx, sub, rgName)
	if err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
		e.log.Warn("resource group not read", "resourceGroup", rgName, "err", err)
		return
	}
	if rg != nil && rg.ProvisioningState != store.ResourceGroupDeleting {
		return
	}
	objs, err := e.st.ListObjects(ctx, kindDeployment, groupPrefix(sub, rgName))
	if err != nil {
		e.log.Warn("deployments not listed", "resourceGroup", rgName, "err", err)
		return
	}
	for _, o := range objs {
		var r Record
		if json.Unmarshal(o.Value, &r) != nil {
			continue
		}
		if rg == nil || !rg.CreatedAt.Equal(r.ResourceGroupCreated) {
			e.forget(ctx, o.Key, o.Revision)
			continue
		}
		if r.State == api.DeploymentAccepted || r.State == api.DeploymentRunning {
			_, err := update(ctx, e.st, o.Key, r.RunID, func(x *Record) error {
				if x.State != api.DeploymentAccepted && x.State != api.DeploymentRunning {
					return nil
				}
				x.State, x.Ended = api.DeploymentCanceled, time.Now().UTC()
				x.Error = &api.ErrorBody{Code: "ResourceGroupBeingDeleted", Message: fmt.Sprintf("The deployment was canceled: its resource group '%s' is being deleted.", rg.Name)}
				return nil
			})
			if err != nil && !errors.Is(err, errChanged) {
				e.log.Warn("deployment not canceled", "deployment", r.Target().ID(), "err", err)
			}
			e.stopLocal(o.Key, r.RunID)
		}
	}
}

// start runs the deployment at key k unless it runs already.
func (e *Engine) start(ctx context.Context, k string) {
	e.mu.Lock()
	if e.running[k] != nil {
		e.mu.Unlock()
		return
	}
	work, stop := context.WithCancel(ctx)
	r := &run{key: k, stop: stop, done: make(chan struct{})}
	e.running[k] = r
	e.mu.Unlock()
	go func() {
		defer close(r.done)
		err := e.execute(ctx, work, r)
		stop()
		if err != nil && ctx.Err() == nil {
			e.log.Warn("deployment run interrupted; retrying", "key", k, "err", err)
			select { // a store that is down is not hammered
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		e.mu.Lock()
		delete(e.running, k)
		e.mu.Unlock()
	}()
}

// stopLocal ends the resource requests of run runID of k, if it runs
// here.
func (e *Engine) stopLocal(k, runID string) {
	e.mu.Lock()
	r := e.running[k]
	match := r != nil && (r.runID == "" || r.runID == runID)
	e.mu.Unlock()
	if match {
		r.stop()
	}
}

// errStopped: the run is not to go on (canceled, replaced or deleted).
var errStopped = errors.New("deployment run stopped")

// execute runs one deployment. ctx is the engine's (its end interrupts
// the run, which the next engine resumes); work, under it, also ends when
// the deployment is canceled, and bounds every resource request.
func (e *Engine) execute(ctx, work context.Context, r *run) error {
	rec, _, err := load(ctx, e.st, r.key)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return clearActive(ctx, e.st, r.key, "")
	}
	if err != nil {
		return err
	}
	if rec.State != api.DeploymentAccepted && rec.State != api.DeploymentRunning {
		return clearActive(ctx, e.st, r.key, rec.RunID)
	}
	e.mu.Lock()
	r.runID = rec.RunID
	e.mu.Unlock()
	x := &execution{e: e, ctx: ctx, work: work, r: r, principal: rec.Principal}
	rec, err = x.record(func(d *Record) error {
		if d.State != api.DeploymentAccepted && d.State != api.DeploymentRunning {
			return errStopped
		}
		d.State, d.Started, d.Ended = api.DeploymentRunning, time.Now().UTC(), time.Time{}
		d.Operations, d.Outputs, d.OutputResources, d.Error = nil, nil, nil, nil
		return nil
	})
	if errors.Is(err, errStopped) || errors.Is(err, errChanged) {
		return clearActive(ctx, e.st, r.key, r.runID)
	}
	if err != nil {
		return err
	}
	e.log.Info("deployment running", "deployment", rec.Target().ID(), "mode", rec.Mode, "principal", rec.Principal.DisplayName)
	end, err := x.deploy(rec)
	if ctx.Err() != nil {
		return ctx.Err() // the engine stopped: the next one resumes the run
	}
	if err != nil {
		return err
	}
	final, err := x.record(func(d *Record) error {
		if d.State != api.DeploymentRunning {
			return errStopped // canceled meanwhile: it stays so
		}
		d.State, d.Ended = end.state, time.Now().UTC()
		d.Error, d.Outputs, d.OutputResources = end.err, end.outputs, end.resources
		return nil
	})
	switch {
	case errors.Is(err, errStopped) || errors.Is(err, errChanged):
	case err != nil:
		return err
	default:
		if final.State == api.DeploymentFailed {
			e.log.Info("deployment failed", "deployment", final.Target().ID(), "error", final.Error.Message, "details", len(final.Error.Details))
		} else {
			e.log.Info("deployment ended", "deployment", final.Target().ID(), "state", final.State, "duration", final.duration().String())
		}
	}
	return clearActive(ctx, e.st, r.key, r.runID)
}

// execution is one run of a deployment.
type execution struct {
	e         *Engine
	ctx, work context.Context
	r         *run
	principal Principal
	scrub     *scrubber
	plan      *template.Plan

	mu sync.Mutex // one record write at a time
}

// outcome is how a run ended.
type outcome struct {
	state     string
	err       *api.ErrorBody
	outputs   map[string]api.DeploymentOutput
	resources []string
}

// record applies f to the run's record. A record found Canceled, replaced
// or deleted stops the run's requests.
func (x *execution) record(f func(*Record) error) (*Record, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	rec, err := update(x.ctx, x.e.st, x.r.key, x.r.runID, f)
	if errors.Is(err, errChanged) || (rec != nil && rec.State == api.DeploymentCanceled) {
		x.r.stop()
	}
	return rec, err
}

func failed(code, format string, a ...any) outcome {
	return outcome{state: api.DeploymentFailed, err: &api.ErrorBody{Code: code, Message: fmt.Sprintf(format, a...)}}
}

// deploy binds the template again (as accepted), deploys its resources,
// evaluates the outputs and, in Complete mode, deletes what the template
// does not hold.
func (x *execution) deploy(rec *Record) (outcome, error) {
	e := x.e
	params, err := e.openParameters(rec)
	if err != nil {
		return outcome{}, err
	}
	types := map[string]string{}
	for name, sp := range rec.Parameters {
		types[name] = sp.Type
	}
	x.scrub = newScrubber(types, params)
	tmpl, err := template.Parse(rec.Template)
	if err != nil {
		return x.templateFailure(err), nil
	}
	rg, err := e.st.GetResourceGroup(x.ctx, rec.Subscription, rec.ResourceGroup)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return failed("ResourceGroupNotFound", "Resource group '%s' could not be found.", rec.ResourceGroup), nil
	}
	if err != nil {
		return outcome{}, err
	}
	sub, err := e.st.GetSubscription(x.ctx, rec.Subscription)
	if err != nil {
		return outcome{}, err
	}
	scope := template.Scope{TenantID: rec.Principal.TenantID, SubscriptionID: sub.ID, SubscriptionName: sub.DisplayName,
		ResourceGroup: rg.Name, Location: rg.Location, ResourceGroupTags: rg.Tags, DeploymentName: rec.Name, Now: rec.Now}
	plan, err := tmpl.Bind(params, scope, e.cfg.Resources.Types)
	if err != nil {
		return x.templateFailure(err), nil
	}
	x.plan = plan
	failures := x.deployResources(plan)
	if x.ctx.Err() != nil {
		return outcome{}, x.ctx.Err()
	}
	if x.work.Err() != nil {
		return outcome{state: api.DeploymentCanceled}, nil
	}
	if len(failures) > 0 {
		return deploymentFailed(failures), nil
	}
	rt := &runtime{x: x}
	outs, err := plan.Outputs(x.work, rt)
	if err != nil {
		if x.ctx.Err() != nil {
			return outcome{}, x.ctx.Err()
		}
		o := x.templateFailure(err)
		o.err.Code = "DeploymentOutputEvaluationFailed"
		return o, nil
	}
	end := outcome{state: api.DeploymentSucceeded, outputs: map[string]api.DeploymentOutput{}}
	for name, o := range outs {
		out := api.DeploymentOutput{Type: api.TemplateTypeName(o.Type), Value: o.Value}
		if secureType(o.Type) {
			out.Value = nil
		}
		end.outputs[name] = out
	}
	for _, r := range plan.Resources {
		end.resources = append(end.resources, r.ID)
	}
	if strings.EqualFold(rec.Mode, api.DeploymentModeComplete) {
		failures := x.deleteOthers(rec, plan)
		if x.ctx.Err() != nil {
			return outcome{}, x.ctx.Err()
		}
		if x.work.Err() != nil {
			return outcome{state: api.DeploymentCanceled}, nil
		}
		if len(failures) > 0 {
			return deploymentFailed(failures), nil
		}
	}
	return end, nil
}

// templateFailure is a template error of a run, as its error.
func (x *execution) templateFailure(err error) outcome {
	var te *template.Error
	if errors.As(err, &te) {
		return failed(te.Code, "%s", x.scrub.text(te.Message))
	}
	return failed("InvalidTemplate", "%s", x.scrub.text(err.Error()))
}

// deploymentFailed is ARM's error of a deployment whose resources
// failed, one detail each.
func deploymentFailed(failures []api.ErrorBody) outcome {
	return outcome{state: api.DeploymentFailed, err: &api.ErrorBody{Code: "DeploymentFailed",
		Message: "At least one resource deployment operation failed. Please list deployment operations for details. " +
			"Please see https://aka.ms/arm-deployment-operations for usage details.",
		Details: failures}}
}

// deployResources deploys the plan's resources, each once the resources
// it depends on are deployed, at most Parallel at once. A failed resource
// keeps those that depend on it from starting; those in flight finish.
// It returns a detail per failed resource.
func (x *execution) deployResources(plan *template.Plan) []api.ErrorBody {
	n := len(plan.Resources)
	index := make(map[string]int, n)
	for i, r := range plan.Resources {
		index[strings.ToLower(r.ID)] = i
	}
	const (
		waiting = iota
		active
		succeeded
		done // failed or canceled
	)
	state := make([]int, n)
	deps := make([][]int, n)
	for i, r := range plan.Resources {
		for _, d := range r.DependsOn {
			if j, ok := index[strings.ToLower(d)]; ok && j != i {
				deps[i] = append(deps[i], j)
			}
		}
	}
	type result struct {
		i      int
		detail *api.ErrorBody
	}
	results := make(chan result)
	var failures []api.ErrorBody
	inFlight := 0
	for {
		if x.work.Err() == nil {
			for i := 0; i < n && inFlight < x.e.cfg.Parallel; i++ {
				if state[i] != waiting {
					continue
				}
				ready := true
				for _, j := range deps[i] {
					if state[j] != succeeded {
						ready = false
						break
					}
				}
				if !ready {
					continue
				}
				state[i] = active
				inFlight++
				go func(i int) {
					results <- result{i, x.deployOne(plan.Resources[i])}
				}(i)
			}
		}
		if inFlight == 0 {
			return failures
		}
		res := <-results
		inFlight--
		if res.detail != nil {
			state[res.i] = done
			if res.detail.Code != "" {
				failures = append(failures, *res.detail)
			}
		} else {
			state[res.i] = succeeded
		}
	}
}

// deployOne renders one resource's body and PUTs it, as an operation of
// the run. It returns nil on success, the failure's detail otherwise
// (with no code when it was canceled).
func (x *execution) deployOne(r *template.Resource) *api.ErrorBody {
	op := x.begin(api.ProvisioningOperationCreate, r.ID, r.Type, r.Name)
	body, err := x.plan.Body(x.work, r, &runtime{x: x})
	if err != nil {
		if x.work.Err() != nil {
			return x.canceled(op)
		}
		f := x.templateFailure(err)
		return x.fail(op, http.StatusBadRequest, false, f.err)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return x.fail(op, http.StatusBadRequest, false, &api.ErrorBody{Code: "InvalidTemplate", Message: err.Error()})
	}
	rep, err := x.e.cfg.Resources.Put(x.work, x.principal, r.ID, r.APIVersion, data)
	return x.finish(op, rep, err)
}

// deleteOthers deletes, in Complete mode, the resources of the resource
// group (of the types a template may deploy) that the plan does not hold.
func (x *execution) deleteOthers(rec *Record, plan *template.Plan) []api.ErrorBody {
	keep := map[string]bool{}
	for _, r := range plan.Resources {
		keep[strings.ToLower(r.ID)] = true
	}
	items, err := x.e.cfg.Resources.List(x.work, x.principal, ResourceGroupID(rec.Subscription, rec.ResourceGroup))
	if err != nil {
		if x.work.Err() != nil {
			return nil
		}
		return []api.ErrorBody{{Code: "ResourceListFailed", Message: x.scrub.text(err.Error())}}
	}
	var (
		mu       sync.Mutex
		failures []api.ErrorBody
		wg       sync.WaitGroup
		sem      = make(chan struct{}, x.e.cfg.Parallel)
	)
	for _, it := range items {
		if keep[strings.ToLower(it.ID)] {
			continue
		}
		if x.work.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			name := it.ID[strings.LastIndex(it.ID, "/")+1:]
			op := x.begin(api.ProvisioningOperationDelete, it.ID, it.Type, name)
			rep, err := x.e.cfg.Resources.Delete(x.work, x.principal, it.ID, defaultAPIVersion(it.Type))
			if d := x.finish(op, rep, err); d != nil && d.Code != "" {
				mu.Lock()
				failures = append(failures, *d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failures
}

// begin records a new Running operation and returns its id.
func (x *execution) begin(provisioning, id, typ, name string) string {
	opID := newOperationID()
	_, err := x.record(func(d *Record) error {
		d.Operations = append(d.Operations, Operation{ID: opID, Provisioning: provisioning, State: api.DeploymentRunning,
			Started: time.Now().UTC(), ResourceID: id, ResourceType: typ, ResourceName: name})
		return nil
	})
	if err != nil && !errors.Is(err, errChanged) {
		x.e.log.Warn("deployment operation not recorded", "resource", id, "err", err)
	}
	return opID
}

// finish records how a resource request ended.
func (x *execution) finish(opID string, rep Reply, err error) *api.ErrorBody {
	switch {
	case err != nil && x.work.Err() != nil:
		return x.canceled(opID)
	case err != nil:
		return x.fail(opID, http.StatusInternalServerError, false, &api.ErrorBody{Code: "InternalServerError", Message: err.Error()})
	case rep.Error != nil:
		return x.fail(opID, rep.Status, rep.Async, rep.Error)
	}
	x.endOp(opID, api.DeploymentSucceeded, statusName(rep.Status), nil)
	return nil
}

func (x *execution) fail(opID string, status int, async bool, e *api.ErrorBody) *api.ErrorBody {
	e = x.scrub.error(e)
	msg := &api.StatusMessage{Error: e}
	code := statusName(status)
	if async {
		msg.Status = api.DeploymentFailed
		code = "Conflict" // as ARM reports a long-running operation that failed
	}
	op := x.endOp(opID, api.DeploymentFailed, code, msg)
	detail := api.ErrorBody{Code: e.Code, Message: e.Message, Details: e.Details}
	if op != nil {
		detail.Target = op.ResourceID
		detail.Message = fmt.Sprintf("%s '%s': %s", op.ResourceType, op.ResourceName, e.Message)
	}
	return &detail
}

func (x *execution) canceled(opID string) *api.ErrorBody {
	x.endOp(opID, api.DeploymentCanceled, "", nil)
	return &api.ErrorBody{}
}

// endOp records an operation's end and returns it.
func (x *execution) endOp(opID, state, code string, msg *api.StatusMessage) *Operation {
	var out *Operation
	_, err := x.record(func(d *Record) error {
		for i := range d.Operations {
			if d.Operations[i].ID == opID {
				op := &d.Operations[i]
				op.State, op.Ended, op.StatusCode, op.Status = state, time.Now().UTC(), code, msg
				c := *op
				out = &c
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errChanged) {
		x.e.log.Warn("deployment operation not recorded", "operation", opID, "err", err)
	}
	return out
}

// newOperationID is an operation id in ARM's style (upper-case hex).
func newOperationID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

// statusName is an HTTP status as ARM's deployment operations name it.
func statusName(code int) string {
	switch code {
	case http.StatusOK:
		return "OK"
	case http.StatusCreated:
		return "Created"
	case http.StatusAccepted:
		return "Accepted"
	case http.StatusNoContent:
		return "NoContent"
	case http.StatusBadRequest:
		return "BadRequest"
	case http.StatusUnauthorized:
		return "Unauthorized"
	case http.StatusForbidden:
		return "Forbidden"
	case http.StatusNotFound:
		return "NotFound"
	case http.StatusConflict:
		return "Conflict"
	case http.StatusRequestEntityTooLarge:
		return "RequestEntityTooLarge"
	case http.StatusInternalServerError:
		return "InternalServerError"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	case 0:
		return ""
	}
	return strconv.Itoa(code)
}

// defaultAPIVersion is the api-version Skiff reads or deletes a resource
// with when the template names none for it.
func defaultAPIVersion(resourceType string) string {
	switch {
	case strings.HasPrefix(strings.ToLower(resourceType), "microsoft.storage/"):
		return "2023-01-01"
	}
	return "2023-05-01"
}

// TypeOfID is the resource type of an ARM id under a provider
// (…/providers/NS/T1/n1/T2/n2 → NS/T1/T2), or "".
func TypeOfID(id string) string {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	for i := len(segs) - 1; i >= 0; i-- {
		if strings.EqualFold(segs[i], "providers") && i+2 < len(segs) {
			rest := segs[i+1:]
			parts := []string{rest[0]}
			for j := 1; j < len(rest); j += 2 {
				parts = append(parts, rest[j])
			}
			return strings.Join(parts, "/")
		}
	}
	return ""
}

// runtime answers reference() and listKeys() through the API, as the
// deploying principal.
type runtime struct{ x *execution }

func (rt *runtime) version(id, apiVersion string) string {
	if apiVersion != "" {
		return apiVersion
	}
	if rt.x.plan != nil {
		for _, r := range rt.x.plan.Resources {
			if strings.EqualFold(r.ID, id) {
				return r.APIVersion
			}
		}
	}
	return defaultAPIVersion(TypeOfID(id))
}

func (rt *runtime) Reference(ctx context.Context, id, apiVersion string, full bool) (any, error) {
	rep, err := rt.x.e.cfg.Resources.Get(ctx, rt.x.principal, id, rt.version(id, apiVersion))
	if err != nil {
		return nil, err
	}
	if rep.Error != nil {
		return nil, fmt.Errorf("the resource '%s' could not be read: (%s) %s: %w", id, rep.Error.Code, rep.Error.Message, errdefs.ErrNotFound)
	}
	v, err := api.DecodeJSONValue(rep.Body)
	if err != nil {
		return nil, fmt.Errorf("the resource '%s': %v: %w", id, err, errdefs.ErrUnavailable)
	}
	if full {
		return v, nil
	}
	m, _ := v.(map[string]any)
	return m["properties"], nil
}

func (rt *runtime) ListKeys(ctx context.Context, id, apiVersion string) (any, error) {
	rep, err := rt.x.e.cfg.Resources.Post(ctx, rt.x.principal, id+"/listKeys", rt.version(id, apiVersion), nil)
	if err != nil {
		return nil, err
	}
	if rep.Error != nil {
		return nil, fmt.Errorf("the keys of '%s' could not be listed: (%s) %s: %w", id, rep.Error.Code, rep.Error.Message, errdefs.ErrNotFound)
	}
	v, err := api.DecodeJSONValue(rep.Body)
	if err != nil {
		return nil, fmt.Errorf("the keys of '%s': %v: %w", id, err, errdefs.ErrUnavailable)
	}
	return v, nil
}
