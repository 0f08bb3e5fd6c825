// Package deployment runs ARM template deployments
// (Microsoft.Resources/deployments at resource group scope): it keeps each
// deployment's record in the store, and drives its resources through the
// API, as the principal that deployed, in dependency order. It does no
// HTTP: the server hands it decoded requests and implements Resources,
// through which every resource is created, read and deleted with the
// rights, validation and defaults of the API itself.
//
// A deployment's states, and who moves each arrow:
//
//	 PUT (server: Create)
//	        │
//	        ▼
//	    Accepted ──────────────┐
//	        │ engine (Run)     │ server (Cancel), or engine
//	        ▼                  │ (its resource group is deleted)
//	     Running ──────────────┤
//	engine │    │ engine       ▼
//	       ▼    ▼           Canceled
//	Succeeded  Failed          │
//	       │    │              │
//	       └────┴──────┬───────┘
//	                   │ DELETE (server: Delete), or engine
//	                   ▼ (its resource group is gone)
//	               Deleting ──▶ gone (the same writer, at once)
//
// A PUT of a deployment that is over replaces it (Accepted again, a new
// run); one that is Accepted or Running is refused (DeploymentActive), as
// are its DELETE (409) and, once over, its cancel
// (DeploymentCannotBeCancelled). Only the engine writes a run's progress
// (its operations, outputs and the end state); the server's Cancel writes
// Canceled and nothing else, and the engine, which sees it on its next
// write, starts no more resources and ends the waits of those in flight.
//
// The engine runs where the controller does (with the leader of a
// cluster), so one server drives each deployment. It learns of new ones
// from the server of its own process at once, and from the other servers
// by a small marker object it scans each second; on start it resumes
// every deployment left Accepted or Running (the PUTs of resources are
// idempotent).
//
// Secure parameters (securestring, secureObject) are sealed at rest, never
// shown by a read, and scrubbed from every message the engine keeps or
// logs (template errors quote values; a resource's error might).
package deployment

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
)

// Principal is who deployed: the ids of its identity, which the server
// turns back into the principal every resource request is made as.
type Principal struct {
	TenantID    string `json:"tenantId,omitempty"`
	ObjectID    string `json:"objectId,omitempty"`
	AppID       string `json:"appId,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	Admin       bool   `json:"admin,omitempty"`
}

// Reply is the answer to a resource request.
type Reply struct {
	// Status is the HTTP status the request was answered with.
	Status int
	// Body is the response: for a PUT whose operation ended, the
	// resource as its GET returns it then.
	Body []byte
	// Error is set when the request was refused (Status >= 400: its
	// error envelope), or when its long-running operation failed or was
	// canceled (Async).
	Error *api.ErrorBody
	Async bool
}

// Item is a resource a list found.
type Item struct {
	ID, Type string
}

// Resources is the API, as the engine acts on it. Every call is made as
// p, through the API's own authorization and handlers.
type Resources interface {
	// Put creates or updates the resource id (an ARM id) at apiVersion
	// and waits for its long-running operation to end.
	Put(ctx context.Context, p Principal, id, apiVersion string, body []byte) (Reply, error)
	Get(ctx context.Context, p Principal, id, apiVersion string) (Reply, error)
	// Delete deletes the resource id and waits for its operation to end.
	Delete(ctx context.Context, p Principal, id, apiVersion string) (Reply, error)
	// Post posts to a resource's action (id + "/listKeys").
	Post(ctx context.Context, p Principal, path, apiVersion string, body []byte) (Reply, error)
	// List lists the resources of a resource group that a deployment may
	// have made (the deployable top-level types), for Complete mode.
	List(ctx context.Context, p Principal, resourceGroupID string) ([]Item, error)
	// Types refuses a resource type (or its apiVersion) a template may
	// not deploy here; see template.Types.
	Types(resourceType, apiVersion string) error
}

// Config configures an Engine.
type Config struct {
	Store store.Store
	// Sealer seals secure parameters at rest.
	Sealer    *seal.Sealer
	Resources Resources
	Logger    *slog.Logger
	// Parallel bounds the resources one deployment deploys at once
	// (default 8).
	Parallel int
	// ScanInterval is how often Run looks for deployments accepted by
	// other servers and for cancels they wrote (default 1s).
	ScanInterval time.Duration
}

// Engine accepts, reads and runs deployments. Every server has one for
// its routes; Run drives them, in one process of a cluster at a time.
type Engine struct {
	cfg Config
	st  store.Store
	log *slog.Logger

	kick chan string // keys accepted by this process's server

	mu      sync.Mutex
	running map[string]*run // by key, while Run drives it
}

// New returns an engine.
func New(cfg Config) *Engine {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 8
	}
	if cfg.ScanInterval <= 0 {
		cfg.ScanInterval = time.Second
	}
	return &Engine{cfg: cfg, st: cfg.Store, log: cfg.Logger, kick: make(chan string, 64), running: map[string]*run{}}
}

// Target names a deployment.
type Target struct {
	Subscription, ResourceGroup, Name string
}

// ID is the deployment's ARM id.
func (t Target) ID() string {
	return ResourceGroupID(t.Subscription, t.ResourceGroup) + "/providers/" + api.DeploymentType + "/" + t.Name
}

// ResourceGroupID is a resource group's ARM id.
func ResourceGroupID(sub, rg string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + rg
}
