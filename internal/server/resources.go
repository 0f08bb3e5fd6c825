package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

// maxBody is ARM's limit on a request body (the router applies it).
const maxBody = 4 << 20

func readBody(r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) || len(data) > maxBody {
		return nil, errdefs.WithCode(errdefs.ErrTooLarge, "RequestContentTooLarge", "The request content size exceeds the maximum size of 4 MB.")
	}
	if err != nil {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidRequestContent", "The request content could not be read: %v", err)
	}
	return data, nil
}

// subscriptionView is a subscription as ARM shows it, with the identity
// provider's tenant (az login keeps it).
func (s *Server) subscriptionView(sub store.Subscription) api.Subscription {
	v := api.Subscription{ID: "/subscriptions/" + sub.ID, SubscriptionID: sub.ID, DisplayName: sub.DisplayName, State: sub.State}
	if s.cfg.Identity != nil {
		v.TenantID = s.cfg.Identity.TenantID()
	}
	return v
}

func (s *Server) subscription(ctx context.Context, id string) (*store.Subscription, error) {
	sub, err := s.cfg.Store.GetSubscription(ctx, id)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, errdefs.WithCode(errdefs.ErrNotFound, "SubscriptionNotFound", "The subscription '%s' could not be found.", id)
	}
	return sub, err
}

func (s *Server) resourceGroup(ctx context.Context, sub, name string) (*store.ResourceGroup, error) {
	if _, err := s.subscription(ctx, sub); err != nil {
		return nil, err
	}
	rg, err := s.cfg.Store.GetResourceGroup(ctx, sub, name)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, errdefs.WithCode(errdefs.ErrNotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", name)
	}
	return rg, err
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request, _ params) error {
	subs, err := s.cfg.Store.ListSubscriptions(r.Context())
	if err != nil {
		return err
	}
	member, err := s.subscriptionsOf(r.Context())
	if err != nil {
		return err
	}
	out := api.List[api.Subscription]{Value: []api.Subscription{}}
	for _, sub := range subs {
		if member(sub.ID) {
			out.Value = append(out.Value, s.subscriptionView(sub))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getSubscription(w http.ResponseWriter, r *http.Request, p params) error {
	sub, err := s.subscription(r.Context(), p["sub"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.subscriptionView(*sub))
	return nil
}

func (s *Server) registerProvider(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.subscription(r.Context(), p["sub"]); err != nil {
		return err
	}
	ns, types := "Microsoft.ContainerInstance", []string{"containerGroups", "containerGroupProfiles", "ngroups"}
	versions := []string{"2026-07-01", "2025-09-01", "2023-05-01", "2021-10-01", "2018-10-01", "2017-08-01-preview"}
	if strings.Contains(strings.ToLower(r.URL.Path), "/microsoft.standbypool/") {
		ns, types = "Microsoft.StandbyPool", []string{"standbyContainerGroupPools"}
		versions = []string{"2025-10-01", "2025-03-01", "2024-03-01", "2024-03-01-preview", "2023-12-01-preview"}
	}
	var rts []map[string]any
	for _, t := range types {
		rts = append(rts, map[string]any{"resourceType": t, "locations": []string{s.cfg.Location}, "apiVersions": versions})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id":                "/subscriptions/" + p["sub"] + "/providers/" + ns,
		"namespace":         ns,
		"registrationState": "Registered",
		"resourceTypes":     rts,
	})
	return nil
}

func (s *Server) listProviderOperations(w http.ResponseWriter, r *http.Request, _ params) error {
	op := func(name, resource, operation, desc string) api.Operation {
		return api.Operation{Name: "Microsoft.ContainerInstance/" + name, Origin: "User", Display: api.OperationDisplay{
			Provider: "Microsoft Container Instance", Resource: resource, Operation: operation, Description: desc}}
	}
	writeJSON(w, http.StatusOK, api.List[api.Operation]{Value: []api.Operation{
		op("containerGroups/read", "Container Group", "Get Container Group", "Get all container groups."),
		op("containerGroups/write", "Container Group", "Create or Update Container Group", "Create or update a specific container group."),
		op("containerGroups/delete", "Container Group", "Delete Container Group", "Delete the specific container group."),
		op("containerGroups/restart/action", "Container Group", "Restart Container Group", "Restarts a specific container group."),
		op("containerGroups/stop/action", "Container Group", "Stop Container Group", "Stops a specific container group."),
		op("containerGroups/start/action", "Container Group", "Start Container Group", "Starts a specific container group."),
		op("containerGroups/containers/logs/read", "Container", "Get Container Logs", "Get the logs for a specific container."),
		op("containerGroups/containers/exec/action", "Container", "Container Exec", "Exec into a specific container."),
		op("containerGroups/containers/attach/action", "Container", "Container Attach", "Attach to the output stream of a container."),
		op("locations/usages/read", "Usage", "Get Usage", "Get the usage for a specific location."),
		op("locations/operations/read", "Operation", "Get Operation", "Get the status of an asynchronous operation."),
	}})
	return nil
}

func rgView(rg store.ResourceGroup) api.ResourceGroup {
	return api.ResourceGroup{
		ID:   "/subscriptions/" + rg.Subscription + "/resourceGroups/" + rg.Name,
		Name: rg.Name, Type: "Microsoft.Resources/resourceGroups", Location: rg.Location, Tags: rg.Tags,
		Properties: api.ResourceGroupProperties{ProvisioningState: cmp.Or(rg.ProvisioningState, "Succeeded")},
	}
}

func (s *Server) listResourceGroups(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.subscription(r.Context(), p["sub"]); err != nil {
		return err
	}
	rgs, err := s.cfg.Store.ListResourceGroups(r.Context(), p["sub"])
	if err != nil {
		return err
	}
	out := api.List[api.ResourceGroup]{Value: []api.ResourceGroup{}}
	for _, rg := range rgs {
		if listable(r.Context(), controller.ResourceGroupID(rg.Subscription, rg.Name)) {
			out.Value = append(out.Value, rgView(rg))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) putResourceGroup(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.subscription(r.Context(), p["sub"]); err != nil {
		return err
	}
	if err := api.ValidateName("resourceGroup", p["rg"]); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	in, err := api.DecodeResourceGroup(body)
	if err != nil {
		return err
	}
	if strings.TrimSpace(in.Location) == "" {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "LocationRequired", "The location property is required for this definition.")
	}
	if err := api.ValidateTags(in.Tags); err != nil {
		return err
	}
	// An existing group is updated in one transaction, so that a delete
	// that came first is not undone.
	updated, err := s.cfg.Store.UpdateResourceGroup(r.Context(), p["sub"], p["rg"], func(old *store.ResourceGroup) error {
		if old.ProvisioningState == store.ResourceGroupDeleting {
			return errdefs.WithCode(errdefs.ErrConflict, "ResourceGroupBeingDeleted",
				"The resource group '%s' is in deprovisioning state and cannot perform this operation.", old.Name)
		}
		if !strings.EqualFold(old.Location, in.Location) {
			return errdefs.WithCode(errdefs.ErrConflict, "InvalidResourceGroupLocation",
				"Invalid resource group location '%s'. The Resource group already exists in location '%s'.", in.Location, old.Location)
		}
		old.Tags = in.Tags
		return nil
	})
	if err == nil {
		writeJSON(w, http.StatusOK, rgView(*updated))
		return nil
	}
	if !errdefs.Is(err, errdefs.ErrNotFound) {
		return err
	}
	rg := store.ResourceGroup{Subscription: p["sub"], Name: p["rg"], Location: in.Location, Tags: in.Tags, CreatedAt: time.Now().UTC()}
	created, err := s.cfg.Store.PutResourceGroup(r.Context(), rg)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
		s.forgetRoleAssignments(r.Context(), controller.ResourceGroupID(rg.Subscription, rg.Name))
	}
	writeJSON(w, code, rgView(rg))
	return nil
}

func (s *Server) getResourceGroup(w http.ResponseWriter, r *http.Request, p params) error {
	rg, err := s.resourceGroup(r.Context(), p["sub"], p["rg"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rgView(*rg))
	return nil
}

func (s *Server) headResourceGroup(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.resourceGroup(r.Context(), p["sub"], p["rg"]); err != nil {
		if errdefs.Is(err, errdefs.ErrNotFound) {
			w.WriteHeader(http.StatusNotFound)
			return nil
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteResourceGroup records the resource group as Deleting (no PUT of a
// container group gets in from now on) and the operation; the controller
// deletes its container groups, then the resource group, and ends the
// operation, after a restart too.
func (s *Server) deleteResourceGroup(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	if _, err := s.resourceGroup(ctx, p["sub"], p["rg"]); err != nil {
		return err
	}
	// Its storage accounts and their shares go first (storage.go): a
	// failure leaves the resource group as it was, to be deleted again.
	if err := s.deleteStorageOf(ctx, p["sub"], p["rg"]); err != nil {
		return err
	}
	if s.profiles != nil {
		if err := s.profiles.DeleteIn(ctx, p["sub"], p["rg"]); err != nil {
			return err
		}
	}
	// Its NGroups' and standby pools' records go; their members go with
	// the other groups.
	if s.ngroups != nil {
		if err := s.ngroups.DeleteIn(ctx, p["sub"], p["rg"]); err != nil {
			return err
		}
		if err := s.pools.DeleteIn(ctx, p["sub"], p["rg"]); err != nil {
			return err
		}
	}
	rg, err := controller.MarkResourceGroupDeleting(ctx, s.cfg.Store, p["sub"], p["rg"])
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return errdefs.WithCode(errdefs.ErrNotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", p["rg"])
	}
	if err != nil {
		return err
	}
	// An account whose PUT raced the first pass: none gets in from now
	// on (the resource group is Deleting).
	if err := s.deleteStorageOf(ctx, rg.Subscription, rg.Name); err != nil {
		s.log.Warn("a storage account of a deleted resource group is left", "resourceGroup", rg.Name, "err", err)
	}
	// The controller deletes its groups, then it, and ends the operation.
	op, err := s.newOperation(ctx, rg.Subscription, controller.KindResourceGroupDelete, controller.ResourceGroupID(rg.Subscription, rg.Name), 0)
	if err != nil {
		return err
	}
	s.asyncHeaders(w, r, op)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func decodeJSON(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidRequestContent", "The request content was invalid and could not be deserialized: %v", err)
	}
	return nil
}
