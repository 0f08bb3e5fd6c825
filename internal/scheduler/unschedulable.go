package scheduler

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// CodeUnschedulable is the ARM code of an Unschedulable error.
const CodeUnschedulable = "Unschedulable"

// Unschedulable says that no host can take a group, and why each was
// refused, in the shape of Kubernetes' FailedScheduling event:
//
//	0/3 hosts are available: 2 Insufficient cpu, 1 port TCP/80 is in use.
//
// It is of class errdefs.ErrConflict with code CodeUnschedulable.
type Unschedulable struct {
	// Hosts is how many hosts have joined.
	Hosts int
	// Reasons, sorted by text, count the hosts each filter refused. A host
	// short of both cpu and memory counts in both.
	Reasons []Reason
}

// Reason is one reason for refusing hosts and how many it refused.
type Reason struct {
	Text  string
	Hosts int
}

func (e *Unschedulable) Error() string {
	if e.Hosts == 0 {
		return "0/0 hosts are available: no host has joined."
	}
	parts := make([]string, len(e.Reasons))
	for i, r := range e.Reasons {
		parts[i] = strconv.Itoa(r.Hosts) + " " + r.Text
	}
	return fmt.Sprintf("0/%d hosts are available: %s.", e.Hosts, strings.Join(parts, ", "))
}

// Unwrap gives the error its class and ARM code.
func (e *Unschedulable) Unwrap() error {
	return &errdefs.Coded{Code: CodeUnschedulable, Message: e.Error(), Class: errdefs.ErrConflict}
}

// unschedulable explains why no host passes p's filters (the slow path,
// taken only when Schedule fails).
func (s *Scheduler) unschedulable(p *prepared, rules []shareRule) *Unschedulable {
	counts := map[string]int{}
	for _, h := range s.hosts {
		if h == nil || !h.joined {
			continue
		}
		f := check(h, p, rules)
		switch f.kind {
		case failNotReady:
			counts["not ready"]++
		case failOS:
			counts["osType "+p.osText+" not offered"]++
		case failZone:
			counts["not in zone(s) "+strings.Join(p.zones, ", ")]++
		case failShare:
			counts[s.shareReason(&rules[f.idx])]++
		case failResources:
			if f.cpuShort {
				counts["Insufficient cpu"]++
			}
			if f.memShort {
				counts["Insufficient memory"]++
			}
		case failPort:
			k := p.ports[f.idx]
			counts["port "+protocolName(k)+"/"+strconv.Itoa(int(int32(uint32(k))))+" is in use"]++
		case failRefused:
			counts["refused the ports"]++
		}
	}
	e := &Unschedulable{Hosts: s.joined}
	for text, n := range counts {
		e.Reasons = append(e.Reasons, Reason{Text: text, Hosts: n})
	}
	slices.SortFunc(e.Reasons, func(a, b Reason) int { return strings.Compare(a.Text, b.Text) })
	return e
}

// shareReason says where a share is held.
func (s *Scheduler) shareReason(r *shareRule) string {
	if len(r.pinned) == 0 {
		return "share " + r.share + " is on the hosts with shared shares"
	}
	names := make([]string, len(r.pinned))
	for i, slot := range r.pinned {
		names[i] = s.hosts[slot].name
	}
	slices.Sort(names)
	if len(names) == 1 {
		return "share " + r.share + " is on host " + names[0]
	}
	return "share " + r.share + " is on hosts " + strings.Join(names, ", ")
}
