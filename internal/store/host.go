package store

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Host states. The agent moves NotReady → Ready once it removed what it no
// longer owns; the controller moves a host whose heartbeat stopped to Lost
// (and re-places its groups); a Lost host's agent, back, starts again at
// NotReady.
const (
	HostNotReady = "NotReady"
	HostReady    = "Ready"
	HostLost     = "Lost"
)

// Resources are an amount of CPU (cores) and memory (GB, as ACI counts
// it).
type Resources struct {
	CPU      float64 `json:"cpu"`
	MemoryGB float64 `json:"memoryInGB"`
}

// Host is a host agent's record: written when the agent joins, and as its
// state changes. Its liveness is not in the record but in its heartbeat
// (Store.Heartbeat); reads fill Alive.
type Host struct {
	Name string `json:"name"`
	// AgentURL is the base URL of the agent's API (logs, exec, metrics,
	// images); "" for the embedded mode's in-process agent.
	AgentURL string `json:"agentURL,omitempty"`
	// PublicAddress is the address its groups' published ports answer on.
	PublicAddress string `json:"publicAddress,omitempty"`
	// OSType is "Linux".
	OSType string `json:"osType"`
	// Zone is the availability zone a group's zones are matched to ("" none).
	Zone   string            `json:"zone,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// Capacity is the machine's; Allocatable what groups may request of it.
	Capacity    Resources `json:"capacity"`
	Allocatable Resources `json:"allocatable"`
	// SharedShares says its shares directory is shared by every host (an
	// NFS mount): a group mounting a persistent share may run anywhere.
	SharedShares bool `json:"sharedShares,omitempty"`
	// State is HostNotReady, HostReady or HostLost.
	State string `json:"state"`
	// Message says why a host is in its state (lost: since when).
	Message   string    `json:"message,omitempty"`
	JoinedAt  time.Time `json:"joinedAt"`
	UpdatedAt time.Time `json:"updatedAt"`

	// Alive reports a current heartbeat. It is not stored: GetHost and
	// ListHosts fill it.
	Alive bool `json:"-"`
}

// HostStore keeps the hosts (part of Store).
type HostStore interface {
	// PutHost creates or replaces a host's record (Alive is ignored).
	PutHost(ctx context.Context, h Host) error
	GetHost(ctx context.Context, name string) (*Host, error)
	// ListHosts lists the hosts by name.
	ListHosts(ctx context.Context) ([]Host, error)
	// UpdateHost applies f to the stored record atomically; if f fails
	// nothing is written and its error is returned as is.
	UpdateHost(ctx context.Context, name string, f func(*Host) error) (*Host, error)
	DeleteHost(ctx context.Context, name string) error
	// Heartbeat makes the host Alive and keeps it so until ctx ends or the
	// store is lost (then it returns why; it never returns nil). Once the
	// heartbeat stops, the host stays Alive for ttl, then is not. Watch
	// reports every change of Alive as a HostChange.
	Heartbeat(ctx context.Context, name string, ttl time.Duration) error
}

// HostChangeFor names a host.
func HostChangeFor(name string) Change {
	return Change{Kind: HostChange, Name: strings.ToLower(name)}
}

// liveness is an in-process heartbeat table, for stores of one process
// (bbolt): a host is alive until ttl after its last beat.
type liveness struct {
	mu     sync.Mutex
	until  map[string]time.Time
	timers map[string]*time.Timer
}

func (l *liveness) alive(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Now().Before(l.until[strings.ToLower(name)])
}

// beat keeps name alive until ttl from now; expired is called (once per
// expiry) when it stops being alive.
func (l *liveness) beat(name string, ttl time.Duration, expired func()) (becameAlive bool) {
	k := strings.ToLower(name)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.until == nil {
		l.until, l.timers = map[string]time.Time{}, map[string]*time.Timer{}
	}
	now := time.Now()
	becameAlive = !now.Before(l.until[k])
	l.until[k] = now.Add(ttl)
	if t := l.timers[k]; t != nil {
		t.Stop()
	}
	l.timers[k] = time.AfterFunc(ttl, func() {
		l.mu.Lock()
		dead := !time.Now().Before(l.until[k])
		l.mu.Unlock()
		if dead {
			expired()
		}
	})
	return becameAlive
}

// heartbeat beats every ttl/3 until ctx ends.
func (l *liveness) heartbeat(ctx context.Context, name string, ttl time.Duration, publish func()) error {
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	for {
		if l.beat(name, ttl, publish) {
			publish()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
