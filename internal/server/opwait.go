package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/store"
)

// No poll floor. ARM's long-running operations make a client poll, and
// its pollers cannot poll faster than Retry-After's whole seconds; a group
// that runs in a tenth of a second would still cost its creator a second.
// So the server waits for the operation itself, in two places:
//   - a PUT of a container group waits up to Config.SyncWindow for its
//     operation: if it succeeds by then, the PUT answers with the finished
//     resource (provisioningState Succeeded) and announces no operation,
//     which ARM's and the SDKs' pollers take as done. Otherwise it
//     announces the operation as before. A client that wants the
//     operation at once sends "Prefer: respond-async" (RFC 7240).
//   - GET of an operation status long-polls when the client sends
//     "Prefer: wait=N" (RFC 7240): it answers as soon as the operation ends,
//     or after N seconds (at most maxLongPoll) with InProgress.
// Both wait on one watch of the store per server (operations end by a
// store write, which the watch reports), with a slow poll behind it in case
// the watch is not running.

// DefaultSyncWindow is how long a PUT waits for its group to run before
// it answers with the operation instead.
const DefaultSyncWindow = 2 * time.Second

// maxLongPoll bounds the wait a client may ask of an operation status.
const maxLongPoll = 60 * time.Second

// opWaiters wakes the requests waiting for operations.
type opWaiters struct {
	once sync.Once
	mu   sync.Mutex
	m    map[string]map[chan struct{}]bool // by lower-case operation id
}

// watch starts, once, the store watch that wakes the waiters.
func (s *Server) watchOperations() {
	s.opWaits.once.Do(func() {
		ch := s.cfg.Store.Watch(context.Background())
		go func() {
			for c := range ch {
				if c.Kind == store.OperationChange {
					s.opWaits.wake(c.Name)
				}
			}
		}()
	})
}

func (o *opWaiters) add(id string) chan struct{} {
	ch := make(chan struct{}, 1)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string]map[chan struct{}]bool{}
	}
	id = strings.ToLower(id)
	if o.m[id] == nil {
		o.m[id] = map[chan struct{}]bool{}
	}
	o.m[id][ch] = true
	return ch
}

func (o *opWaiters) remove(id string, ch chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	id = strings.ToLower(id)
	delete(o.m[id], ch)
	if len(o.m[id]) == 0 {
		delete(o.m, id)
	}
}

func (o *opWaiters) wake(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for ch := range o.m[strings.ToLower(id)] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// awaitOperation returns the operation once it has ended, or as it is
// when d has passed or ctx ended.
func (s *Server) awaitOperation(ctx context.Context, id string, d time.Duration) (*store.Operation, error) {
	s.watchOperations()
	ch := s.opWaits.add(id)
	defer s.opWaits.remove(id, ch)
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		op, err := s.cfg.Store.GetOperation(ctx, id)
		if err != nil || op.Status != api.OperationInProgress {
			return op, err
		}
		select {
		case <-ch:
		case <-time.After(250 * time.Millisecond): // behind the watch
		case <-deadline.C:
			return op, nil
		case <-ctx.Done():
			return op, nil
		}
	}
}

// preference returns the value of an RFC 7240 preference of the request
// ("wait" → "5"; "respond-async" → "" with ok), case-insensitively.
func preference(r *http.Request, name string) (value string, ok bool) {
	for _, h := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(h, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), name) {
				return strings.Trim(strings.TrimSpace(v), `"`), true
			}
		}
	}
	return "", false
}

// longPoll is the wait a status request asks for with "Prefer: wait=N",
// bounded by maxLongPoll; 0 without one.
func longPoll(r *http.Request) time.Duration {
	v, ok := preference(r, "wait")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, maxLongPoll)
}

// syncWindow is how long a PUT waits for its operation: Config.SyncWindow,
// none when the client prefers respond-async.
func (s *Server) syncWindow(r *http.Request) time.Duration {
	if _, async := preference(r, "respond-async"); async || s.cfg.SyncWindow < 0 {
		return 0
	}
	if s.cfg.SyncWindow == 0 {
		return DefaultSyncWindow
	}
	return s.cfg.SyncWindow
}
