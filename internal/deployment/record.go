package deployment

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

// The store's object kinds:
//
//	deployment          sub/rg/name (lower-case) → Record (JSON; secure
//	                    parameter values sealed)
//	deployment-active   sub/rg/name → the RunID of an Accepted or Running
//	                    run, so that the engine of another server finds it
//	                    without reading every record
const (
	kindDeployment = "deployment"
	kindActive     = "deployment-active"
)

// recordVersion is the Record's schema version.
const recordVersion = 1

// Record is a deployment as the store keeps it.
type Record struct {
	Version       int    `json:"version"`
	Subscription  string `json:"subscription"`
	ResourceGroup string `json:"resourceGroup"`
	Name          string `json:"name"`
	// RunID names this run (a PUT): the correlation id and the id of its
	// operation status.
	RunID        string                     `json:"runId"`
	Template     json.RawMessage            `json:"template"`
	TemplateHash string                     `json:"templateHash"`
	Parameters   map[string]StoredParameter `json:"parameters,omitempty"`
	Mode         string                     `json:"mode"`
	DebugSetting *api.DebugSetting          `json:"debugSetting,omitempty"`
	Tags         map[string]string          `json:"tags,omitempty"`
	Principal    Principal                  `json:"principal"`
	// Now is the deployment's time (utcNow() in parameter defaults).
	Now time.Time `json:"now"`
	// ResourceGroupCreated is its resource group's CreatedAt: a record
	// of a deleted namesake is not shown.
	ResourceGroupCreated time.Time `json:"resourceGroupCreated"`

	State           string                          `json:"state"`
	Error           *api.ErrorBody                  `json:"error,omitempty"`
	Started         time.Time                       `json:"started,omitzero"`
	Ended           time.Time                       `json:"ended,omitzero"`
	Updated         time.Time                       `json:"updated"`
	Operations      []Operation                     `json:"operations,omitempty"`
	Outputs         map[string]api.DeploymentOutput `json:"outputs,omitempty"`
	OutputResources []string                        `json:"outputResources,omitempty"`
	Dependencies    []api.Dependency                `json:"dependencies,omitempty"`
	Providers       []api.Provider                  `json:"providers,omitempty"`
	// Resources are the ids the plan deploys, in order.
	Resources []string `json:"resources,omitempty"`
}

// StoredParameter is a bound parameter: its declared type and its value,
// sealed (Sealed, of its JSON) when the type is secure.
type StoredParameter struct {
	Type   string          `json:"type"`
	Value  json.RawMessage `json:"value,omitempty"`
	Sealed string          `json:"sealed,omitempty"`
}

// Operation is what a run did to one resource.
type Operation struct {
	ID           string             `json:"id"`
	Provisioning string             `json:"provisioning"` // api.ProvisioningOperation*
	State        string             `json:"state"`        // Running, Succeeded, Failed, Canceled
	Started      time.Time          `json:"started"`
	Ended        time.Time          `json:"ended,omitzero"`
	StatusCode   string             `json:"statusCode,omitempty"`
	Status       *api.StatusMessage `json:"status,omitempty"`
	ResourceID   string             `json:"resourceId"`
	ResourceType string             `json:"resourceType"`
	ResourceName string             `json:"resourceName"`
}

// Target is the record's deployment.
func (r *Record) Target() Target { return Target{r.Subscription, r.ResourceGroup, r.Name} }

func key(t Target) string {
	return strings.ToLower(t.Subscription + "/" + t.ResourceGroup + "/" + t.Name)
}

func groupPrefix(sub, rg string) string { return strings.ToLower(sub + "/" + rg + "/") }

// load reads a record and its revision.
func load(ctx context.Context, st store.ObjectStore, k string) (*Record, int64, error) {
	o, err := st.GetObject(ctx, kindDeployment, k)
	if err != nil {
		return nil, 0, err
	}
	var r Record
	if err := json.Unmarshal(o.Value, &r); err != nil {
		return nil, 0, fmt.Errorf("deployment %q: stored record: %v: %w", k, err, errdefs.ErrUnavailable)
	}
	return &r, o.Revision, nil
}

// save writes a record if rev is still the stored one (0: creates).
func save(ctx context.Context, st store.ObjectStore, r *Record, rev int64) (int64, error) {
	r.Version = recordVersion
	data, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	return st.PutObject(ctx, kindDeployment, key(r.Target()), data, rev)
}

// errChanged: the record is not the run's any more (deleted, or replaced
// by a new PUT).
var errChanged = fmt.Errorf("the deployment was replaced or deleted: %w", errdefs.ErrConflict)

// update applies f to the stored record of run runID, retrying when
// another writer came first; f may be called more than once.
func update(ctx context.Context, st store.ObjectStore, k, runID string, f func(*Record) error) (*Record, error) {
	for {
		r, rev, err := load(ctx, st, k)
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return nil, errChanged
		}
		if err != nil {
			return nil, err
		}
		if runID != "" && r.RunID != runID {
			return nil, errChanged
		}
		if err := f(r); err != nil {
			return r, err
		}
		r.Updated = time.Now().UTC()
		if _, err := save(ctx, st, r, rev); err == nil {
			return r, nil
		} else if errdefs.CodeOf(err) != "ObjectChanged" && !errdefs.Is(err, errdefs.ErrNotFound) {
			return nil, err
		}
	}
}

// secureParameter reports whether a parameter of declared type t is
// secure.
func secureType(t string) bool {
	return strings.EqualFold(t, "securestring") || strings.EqualFold(t, "secureobject")
}

// storeParameters seals the secure values of bound parameters.
func (e *Engine) storeParameters(bound map[string]paramValue) (map[string]StoredParameter, error) {
	out := make(map[string]StoredParameter, len(bound))
	for name, p := range bound {
		data, err := json.Marshal(p.Value)
		if err != nil {
			return nil, fmt.Errorf("parameter '%s': %v: %w", name, err, errdefs.ErrInvalidArgument)
		}
		sp := StoredParameter{Type: p.Type}
		if secureType(p.Type) {
			if sp.Sealed, err = e.cfg.Sealer.Seal(string(data)); err != nil {
				return nil, err
			}
		} else {
			sp.Value = data
		}
		out[name] = sp
	}
	return out, nil
}

type paramValue struct {
	Type  string
	Value any
}

// openParameters returns the values of a record's parameters, secure ones
// opened.
func (e *Engine) openParameters(r *Record) (map[string]any, error) {
	out := make(map[string]any, len(r.Parameters))
	for name, sp := range r.Parameters {
		data := []byte(sp.Value)
		if sp.Sealed != "" {
			plain, err := e.cfg.Sealer.Open(sp.Sealed)
			if err != nil {
				return nil, fmt.Errorf("deployment '%s': parameter '%s': %w", r.Name, name, err)
			}
			data = []byte(plain)
		}
		if len(data) == 0 {
			out[name] = nil
			continue
		}
		v, err := api.DecodeJSONValue(data)
		if err != nil {
			return nil, fmt.Errorf("deployment '%s': parameter '%s': %v: %w", r.Name, name, err, errdefs.ErrUnavailable)
		}
		out[name] = v
	}
	return out, nil
}

// markActive and clearActive keep the deployment-active marker of a run.
func markActive(ctx context.Context, st store.ObjectStore, k, runID string) error {
	_, err := st.PutObject(ctx, kindActive, k, []byte(runID), store.AnyRevision)
	return err
}

func clearActive(ctx context.Context, st store.ObjectStore, k, runID string) error {
	o, err := st.GetObject(ctx, kindActive, k)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if runID != "" && string(o.Value) != runID {
		return nil // a newer run's
	}
	err = st.DeleteObject(ctx, kindActive, k, o.Revision)
	if errdefs.Is(err, errdefs.ErrNotFound) || errdefs.CodeOf(err) == "ObjectChanged" {
		return nil
	}
	return err
}
