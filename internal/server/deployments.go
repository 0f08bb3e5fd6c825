package server

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/deployment"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/identity"
	"github.com/skiff-sh/skiff/internal/store"
)

// Template deployments (Microsoft.Resources/deployments at resource group
// scope): the routes accept, read, cancel and delete them through the
// deployment engine (internal/deployment), which runs them where the
// controller runs and creates their resources through this server's own
// routes, as the principal that deployed (inprocess.go).

const deploymentsPrefix = rgPrefix + "/providers/microsoft.resources/deployments"

func (s *Server) registerDeploymentRoutes() {
	r := &s.routes
	d := deploymentsPrefix + "/{deployment}"
	r.handle("GET", deploymentsPrefix, s.listDeployments)
	r.handle("PUT", d, s.putDeployment)
	r.handle("GET", d, s.getDeployment)
	r.handle("HEAD", d, s.headDeployment)
	r.handle("DELETE", d, s.deleteDeployment)
	r.handle("POST", d+"/validate", s.validateDeployment)
	r.handle("POST", d+"/cancel", s.cancelDeployment)
	r.handle("POST", d+"/exporttemplate", s.exportDeploymentTemplate)
	r.handle("GET", d+"/operations", s.listDeploymentOperations)
	r.handle("GET", d+"/operations/{operationId}", s.getDeploymentOperation)
	// ARM's older path of the operations, without the provider, which az
	// 2.45 and the SDKs still use.
	r.handle("GET", rgPrefix+"/deployments/{deployment}/operations", s.listDeploymentOperations)
	r.handle("GET", rgPrefix+"/deployments/{deployment}/operations/{operationId}", s.getDeploymentOperation)
	r.handle("GET", d+"/operationstatuses/{op}", s.deploymentOperationStatus)
	r.handle("GET", d+"/operationresults/{op}", s.deploymentOperationResult)
}

// Deployments is the server's deployment engine; its Run drives the
// deployments the routes accept (see internal/cmd/server).
func (s *Server) Deployments() *deployment.Engine { return s.deploy }

// deploymentAPIVersionOK accepts Microsoft.Resources' api-versions on the
// deployment routes: those az 2.45 and the SDKs send (2016-09-01 on).
func deploymentAPIVersionOK(pattern, v string) bool {
	if !strings.HasPrefix(pattern, deploymentsPrefix) && !strings.HasPrefix(pattern, rgPrefix+"/deployments/") {
		return false
	}
	date := strings.TrimSuffix(strings.ToLower(v), "-preview")
	_, err := time.Parse(time.DateOnly, date)
	return err == nil && len(date) == len(time.DateOnly) && date >= "2016-09-01" && date <= "2025-12-31"
}

func deploymentTarget(p params) deployment.Target {
	return deployment.Target{Subscription: p["sub"], ResourceGroup: p["rg"], Name: p["deployment"]}
}

// deployer is the request's principal as the engine records it (the
// server's own work is the admin's).
func deployer(ctx context.Context) deployment.Principal {
	who := principalOf(ctx)
	if who == nil {
		return deployment.Principal{Admin: true, DisplayName: "skiff"}
	}
	return deployment.Principal{TenantID: who.TenantID, ObjectID: who.ObjectID, AppID: who.AppID, DisplayName: who.DisplayName, Admin: who.Admin}
}

// asPrincipal is the identity a deployment's resource requests are made
// as.
func asPrincipal(p deployment.Principal) *identity.Principal {
	return &identity.Principal{TenantID: p.TenantID, ObjectID: p.ObjectID, AppID: p.AppID, DisplayName: p.DisplayName, Admin: p.Admin}
}

// deploymentRequest reads a PUT or validate body.
func (s *Server) deploymentRequest(r *http.Request, p params) (*store.ResourceGroup, *api.DeploymentRequest, error) {
	rg, err := s.resourceGroup(r.Context(), p["sub"], p["rg"])
	if err != nil {
		return nil, nil, err
	}
	if err := deployment.ValidateName(p["deployment"]); err != nil {
		return nil, nil, err
	}
	body, err := readBody(r)
	if err != nil {
		return nil, nil, err
	}
	req, err := api.DecodeDeployment(body)
	if err != nil {
		return nil, nil, err
	}
	return rg, req, nil
}

func (s *Server) putDeployment(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	rg, req, err := s.deploymentRequest(r, p)
	if err != nil {
		return err
	}
	if err := store.CheckTakesGroups(rg); err != nil {
		return err
	}
	t := deploymentTarget(p)
	t.ResourceGroup = rg.Name
	rec, created, err := s.deploy.Create(ctx, t, req, deployer(ctx))
	if err != nil {
		return err
	}
	v := url.Values{"api-version": {r.URL.Query().Get("api-version")}}
	w.Header().Set("Azure-AsyncOperation", baseURL(r)+rec.Target().ID()+"/operationStatuses/"+rec.RunID+"?"+v.Encode())
	w.Header().Set("Retry-After", "1")
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, s.deploy.View(rec))
	return nil
}

func (s *Server) deploymentRecord(ctx context.Context, p params) (*deployment.Record, error) {
	if _, err := s.resourceGroup(ctx, p["sub"], p["rg"]); err != nil {
		return nil, err
	}
	return s.deploy.Get(ctx, deploymentTarget(p))
}

func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request, p params) error {
	rec, err := s.deploymentRecord(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.deploy.View(rec))
	return nil
}

func (s *Server) headDeployment(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.deploymentRecord(r.Context(), p); err != nil {
		if errdefs.Is(err, errdefs.ErrNotFound) {
			w.WriteHeader(http.StatusNotFound)
			return nil
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// filterRE is the one $filter ARM's deployment list takes.
var filterRE = regexp.MustCompile(`(?i)^\s*provisioningState\s+eq\s+'([^']*)'\s*$`)

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	rg, err := s.resourceGroup(ctx, p["sub"], p["rg"])
	if err != nil {
		return err
	}
	state := ""
	if f := r.URL.Query().Get("$filter"); f != "" {
		m := filterRE.FindStringSubmatch(f)
		if m == nil {
			return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidFilterInQueryString",
				"The $filter '%s' is not supported: the only filter is provisioningState eq '{state}'.", clip(f))
		}
		state = m[1]
	}
	recs, err := s.deploy.List(ctx, p["sub"], rg.Name)
	if err != nil {
		return err
	}
	var items []api.Deployment
	for _, rec := range recs {
		if (state == "" || strings.EqualFold(rec.State, state)) && listable(ctx, rec.Target().ID()) {
			items = append(items, s.deploy.View(rec))
		}
	}
	pg, err := pageOf(r)
	if err != nil {
		return err
	}
	out := api.List[api.Deployment]{Value: []api.Deployment{}}
	for i := pg.skip; i < len(items) && i < pg.skip+pg.top; i++ {
		out.Value = append(out.Value, items[i])
	}
	if pg.skip+pg.top < len(items) {
		next := *r.URL
		v := next.Query()
		v.Set("$skiptoken", strconv.Itoa(pg.skip+pg.top))
		next.RawQuery = v.Encode()
		out.NextLink = baseURL(r) + next.RequestURI()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deleteDeployment deletes the record only (its resources stay, as in
// ARM); 202 with a Location that answers 204 once it is gone.
func (s *Server) deleteDeployment(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	if _, err := s.resourceGroup(ctx, p["sub"], p["rg"]); err != nil {
		return err
	}
	t := deploymentTarget(p)
	runID, err := s.deploy.Delete(ctx, t)
	if errdefs.Is(err, errdefs.ErrNotFound) && errdefs.CodeOf(err) == "DeploymentNotFound" {
		w.WriteHeader(http.StatusNoContent) // as ARM: nothing to delete
		return nil
	}
	if err != nil {
		return err
	}
	v := url.Values{"api-version": {r.URL.Query().Get("api-version")}}
	w.Header().Set("Location", baseURL(r)+t.ID()+"/operationResults/"+runID+"?"+v.Encode())
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *Server) validateDeployment(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	rg, req, err := s.deploymentRequest(r, p)
	if err != nil {
		return err
	}
	t := deploymentTarget(p)
	t.ResourceGroup = rg.Name
	res, err := s.deploy.Validate(ctx, t, req, deployer(ctx))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) cancelDeployment(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	if _, err := s.resourceGroup(ctx, p["sub"], p["rg"]); err != nil {
		return err
	}
	if err := s.deploy.Cancel(ctx, deploymentTarget(p)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) exportDeploymentTemplate(w http.ResponseWriter, r *http.Request, p params) error {
	rec, err := s.deploymentRecord(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.DeploymentExportResult{Template: rec.Template})
	return nil
}

func (s *Server) listDeploymentOperations(w http.ResponseWriter, r *http.Request, p params) error {
	rec, err := s.deploymentRecord(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.List[api.DeploymentOperation]{Value: s.deploy.Operations(rec)})
	return nil
}

func (s *Server) getDeploymentOperation(w http.ResponseWriter, r *http.Request, p params) error {
	rec, err := s.deploymentRecord(r.Context(), p)
	if err != nil {
		return err
	}
	op, err := s.deploy.Operation(rec, p["operationid"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, op)
	return nil
}

// deploymentOperationStatus is a PUT's Azure-AsyncOperation: Accepted or
// Running until the run ends, then its state and error. With "Prefer:
// wait=N" it answers as soon as the run ends (opwait.go).
func (s *Server) deploymentOperationStatus(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	notFound := errdefs.WithCode(errdefs.ErrNotFound, "OperationNotFound", "The operation '%s' could not be found.", clip(p["op"]))
	rec, err := s.deploymentRecord(ctx, p)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	if !strings.EqualFold(rec.RunID, p["op"]) {
		return notFound
	}
	if d := longPoll(r); d > 0 {
		w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(d/time.Second)))
		deadline := time.Now().Add(d)
		for !api.DeploymentTerminal(rec.State) && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
			now, err := s.deploy.Get(ctx, deploymentTarget(p))
			if err != nil || now.RunID != rec.RunID {
				break
			}
			rec = now
		}
	}
	out := api.DeploymentOperationStatus{Status: rec.State, Error: rec.Error}
	if rec.State == api.DeploymentCanceled && out.Error == nil {
		out.Error = &api.ErrorBody{Code: "DeploymentCanceled", Message: "The deployment '" + rec.Name + "' was canceled."}
	}
	if !api.DeploymentTerminal(rec.State) {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deploymentOperationResult is a DELETE's Location: 204 once the record
// is gone.
func (s *Server) deploymentOperationResult(w http.ResponseWriter, r *http.Request, p params) error {
	rec, err := s.deploymentRecord(r.Context(), p)
	if err == nil && strings.EqualFold(rec.RunID, p["op"]) && rec.State == api.DeploymentDeleting {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	if err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
