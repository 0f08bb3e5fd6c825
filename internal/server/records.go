package server

import (
	"context"
	"encoding/json"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

// recordRoutes are the routes NGroups and standby pools share beside their
// PUT: GET, PATCH (a JSON merge patch of the resource as it reads, then
// written as a PUT), the lists, and DELETE, which marks the record for
// its reconciler to delete the members, then the record.
type recordRoutes[T any] struct {
	records func() *store.Records[T] // nil on a server without a store
	param   string                   // the path parameter of the name
	what    string                   // the resources' name in messages
	view    func(*T) any
	id      func(*T) string
	// write creates or updates the resource of p as body says (the PUT).
	write func(w http.ResponseWriter, r *http.Request, p params, body []byte) error
	// markDeleting marks a record being deleted; kick wakes the reconciler.
	markDeleting func(*T)
	kick         func()
}

func (rr recordRoutes[T]) on() (*store.Records[T], error) {
	recs := rr.records()
	if recs == nil {
		return nil, errdefs.WithCode(errdefs.ErrNotImplemented, "FeatureNotSupported", "%s are not available on this server.", rr.what)
	}
	return recs, nil
}

// record reads the record of p, in its resource group.
func (rr recordRoutes[T]) record(ctx context.Context, s *Server, p params) (*T, error) {
	recs, err := rr.on()
	if err != nil {
		return nil, err
	}
	if _, err := s.resourceGroup(ctx, p["sub"], p["rg"]); err != nil {
		return nil, err
	}
	rec, _, err := recs.Get(ctx, p["sub"], p["rg"], p[rr.param])
	return rec, err
}

func (rr recordRoutes[T]) handlers(s *Server) (get, patch, list, del func(http.ResponseWriter, *http.Request, params) error) {
	get = func(w http.ResponseWriter, r *http.Request, p params) error {
		rec, err := rr.record(r.Context(), s, p)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, rr.view(rec))
		return nil
	}
	patch = func(w http.ResponseWriter, r *http.Request, p params) error {
		rec, err := rr.record(r.Context(), s, p)
		if err != nil {
			return err
		}
		body, err := readBody(r)
		if err != nil {
			return err
		}
		cur, err := json.Marshal(rr.view(rec))
		if err != nil {
			return err
		}
		merged, err := jsonpatch.MergePatch(cur, body)
		if err != nil {
			return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidRequestContent",
				"The request content was invalid and could not be deserialized: %v", err)
		}
		return rr.write(w, r, p, merged)
	}
	list = func(w http.ResponseWriter, r *http.Request, p params) error {
		ctx := r.Context()
		recs, err := rr.on()
		if err != nil {
			return err
		}
		if err := s.listScopeExists(ctx, p); err != nil {
			return err
		}
		all, err := recs.List(ctx, p["sub"], p["rg"])
		if err != nil {
			return err
		}
		out := api.List[any]{Value: []any{}}
		for i := range all {
			if listable(ctx, rr.id(&all[i])) {
				out.Value = append(out.Value, rr.view(&all[i]))
			}
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	del = func(w http.ResponseWriter, r *http.Request, p params) error {
		ctx := r.Context()
		recs, err := rr.on()
		if err != nil {
			return err
		}
		if _, err := s.resourceGroup(ctx, p["sub"], p["rg"]); err != nil {
			return err
		}
		_, err = recs.Update(ctx, p["sub"], p["rg"], p[rr.param], func(rec *T) error {
			rr.markDeleting(rec)
			return nil
		})
		if errdefs.Is(err, errdefs.ErrNotFound) {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		if err != nil {
			return err
		}
		rr.kick()
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	return get, patch, list, del
}
