package server

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

func (s *Server) newOperation(ctx context.Context, sub, kind, resourceID string, target int64) (*store.Operation, error) {
	return controller.Begin(ctx, s.cfg.Store, sub, s.cfg.Location, kind, resourceID, target)
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// asyncHeaders points the client at the operation, as ACI does.
func (s *Server) asyncHeaders(w http.ResponseWriter, r *http.Request, op *store.Operation) {
	v := url.Values{"api-version": {r.URL.Query().Get("api-version")}}
	u := baseURL(r) + "/subscriptions/" + op.Subscription + "/providers/Microsoft.ContainerInstance/locations/" +
		op.Location + "/operations/" + op.ID + "?" + v.Encode()
	w.Header().Set("Azure-AsyncOperation", u)
	w.Header().Set("Retry-After", "1")
	if op.Kind == controller.KindDelete || op.Kind == controller.KindResourceGroupDelete {
		w.Header().Set("Location", u)
	}
}

func (s *Server) getOperation(w http.ResponseWriter, r *http.Request, p params) error {
	op, err := s.cfg.Store.GetOperation(r.Context(), p["op"])
	if err != nil || !strings.EqualFold(op.Subscription, p["sub"]) {
		return errdefs.WithCode(errdefs.ErrNotFound, "OperationNotFound", "The operation '%s' could not be found.", p["op"])
	}
	if d := longPoll(r); d > 0 {
		w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(d/time.Second)))
		if op.Status == api.OperationInProgress {
			if now, err := s.awaitOperation(r.Context(), op.ID, d); err == nil {
				op = now
			}
		}
	}
	out := api.OperationStatus{ID: op.ResourceID, Name: op.ID, Status: op.Status, StartTime: op.StartTime.Format(time.RFC3339Nano), Error: op.Error}
	if !op.EndTime.IsZero() {
		out.EndTime = op.EndTime.Format(time.RFC3339Nano)
	}
	if sub, rg, name, err := api.ParseResourceID(op.ResourceID); err == nil {
		if cg, err := s.cfg.Store.GetContainerGroup(r.Context(), sub, rg, name); err == nil && cg.Observed != nil {
			events := append([]api.Event{}, cg.Observed.Events...)
			for _, c := range cg.Observed.Containers {
				events = append(events, c.View.Events...)
			}
			out.Properties = &api.OperationStatusDetails{Events: events}
		}
	}
	if op.Status == api.OperationInProgress {
		// Pollers (az's among them) wait their default of 30 s without it.
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
