package store

import (
	"context"
	"strings"
	"sync"
)

// ChangeKind is the kind of record a Change names.
type ChangeKind int

// Kinds of records a write changes.
const (
	ContainerGroupChange ChangeKind = iota + 1
	ResourceGroupChange
	OperationChange
	// HostChange: a host's record or its liveness (Name is the host's).
	HostChange
)

// Change names a record a committed write created, changed or deleted.
// Names are lower-cased (ARM names fold case). A Change carries no record:
// the watcher reads the record as it is now, so that a burst of writes to
// one record is one read.
type Change struct {
	Kind          ChangeKind
	Subscription  string
	ResourceGroup string
	// Name is the container group's name, the operation's id or the
	// host's name.
	Name string
}

// GroupChange names a container group.
func GroupChange(sub, rg, name string) Change {
	return Change{Kind: ContainerGroupChange, Subscription: strings.ToLower(sub), ResourceGroup: strings.ToLower(rg), Name: strings.ToLower(name)}
}

// RGChange names a resource group.
func RGChange(sub, rg string) Change {
	return Change{Kind: ResourceGroupChange, Subscription: strings.ToLower(sub), ResourceGroup: strings.ToLower(rg)}
}

// OpChange names an operation (its id keeps its case: it is a GUID).
func OpChange(sub, id string) Change {
	return Change{Kind: OperationChange, Subscription: strings.ToLower(sub), Name: id}
}

// hub fans committed changes out to watchers. A watcher that reads slowly
// never blocks a writer: each watcher has a queue of its own.
type hub struct {
	mu       sync.Mutex
	watchers map[*watcher]struct{}
}

type watcher struct {
	mu    sync.Mutex
	queue []Change
	ready chan struct{} // capacity 1: something is queued
	out   chan Change
}

// watch returns the changes committed from now on, in commit order, until
// ctx ends; then the channel is closed.
func (h *hub) watch(ctx context.Context) <-chan Change {
	w := &watcher{ready: make(chan struct{}, 1), out: make(chan Change)}
	h.mu.Lock()
	if h.watchers == nil {
		h.watchers = map[*watcher]struct{}{}
	}
	h.watchers[w] = struct{}{}
	h.mu.Unlock()
	go func() {
		defer close(w.out)
		defer func() {
			h.mu.Lock()
			delete(h.watchers, w)
			h.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.ready:
			}
			w.mu.Lock()
			batch := w.queue
			w.queue = nil
			w.mu.Unlock()
			for _, c := range batch {
				select {
				case w.out <- c:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return w.out
}

func (h *hub) publish(cs ...Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		w.mu.Lock()
		w.queue = append(w.queue, cs...)
		w.mu.Unlock()
		select {
		case w.ready <- struct{}{}:
		default:
		}
	}
}
