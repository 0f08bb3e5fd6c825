// Package scheduler places container groups on hosts, as kube-scheduler
// places pods on nodes: filters drop the hosts a group cannot run on, a
// score ranks the others, and the best is chosen (ties: the lower name).
//
// Filters, in the order a refused host is reported (Unschedulable):
//
//  1. the host is Ready and Alive ("not ready");
//  2. its osType is the group's, "" being Linux ("osType Windows not offered");
//  3. if the group names zones, the host's zone is one of them
//     ("not in zone(s) 1, 2");
//  4. a persistent share the group mounts that a group on a host without
//     SharedShares uses already pins the group to that host; one used only
//     on SharedShares hosts admits every SharedShares host ("share acct/s
//     is on host h", "share acct/s is on the hosts with shared shares");
//  5. the group's cpu and memory requests fit the host's allocatable less
//     what its groups request ("Insufficient cpu", "Insufficient memory");
//  6. no group on the host publishes one of the group's public ports
//     ("port TCP/80 is in use"), and the host did not refuse them when the
//     group was accepted ("refused the ports": a host process listens on
//     one, or the host publishes other ports only).
//
// Score: the mean of the free cpu and free memory fractions the host would
// have with the group (least allocated), less SpreadPenalty for every group
// of the same resource group on it already.
//
// The Scheduler is a snapshot kept up to date by its caller (SetHost,
// RemoveHost, Assign, Unassign); it does no I/O. Schedule chooses and
// records under one lock, so concurrent callers never overcommit a host.
package scheduler

import (
	"slices"
	"strings"
	"sync"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

// SpreadPenalty is subtracted from a host's score (at most 1, the free
// fraction) for each group of the same resource group it runs: a host with
// one of them must be a quarter freer than a host with none to be chosen.
const SpreadPenalty = 0.25

// Scheduler keeps the hosts and the groups assigned to them. It is safe for
// concurrent use.
type Scheduler struct {
	mu sync.Mutex
	// hosts is indexed by slot; a removed host's slot is nil until reused.
	hosts  []*hostState
	slots  map[string]int // lower-cased host name → slot
	free   []int
	joined int // hosts set by SetHost (not placeholders)

	groups map[string]*assignment // Request.Key → where it is
	// byRG and byShare count, per slot, the groups of a resource group and
	// the groups mounting a share.
	byRG    map[string]map[int]int32
	byShare map[string]map[int]int32

	spread []int32 // scratch: the scheduled group's resource group, per slot
}

// hostState is a host and the sums of what is assigned to it.
type hostState struct {
	slot int
	key  string // lower-cased name, the tie-break
	name string
	// joined: set by SetHost; a placeholder (Assign to a host not set) is
	// not offered and not counted among the hosts.
	joined   bool
	ready    bool // joined, Ready and Alive
	os, zone string
	shared   bool

	allocCPU, allocMem int64
	usedCPU, usedMem   int64
	groups             int
	ports              map[uint64]int32
}

type assignment struct {
	req  prepared
	slot int
}

// New returns a Scheduler without hosts.
func New() *Scheduler {
	return &Scheduler{
		slots:   map[string]int{},
		groups:  map[string]*assignment{},
		byRG:    map[string]map[int]int32{},
		byShare: map[string]map[int]int32{},
	}
}

// SetHost adds h or updates it. A host that is not Ready or not Alive takes
// no new groups; the groups assigned to it stay counted.
func (s *Scheduler) SetHost(h store.Host) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hs := s.host(h.Name)
	if !hs.joined {
		s.joined++
	}
	hs.name, hs.joined = h.Name, true
	hs.ready = h.State == store.HostReady && h.Alive
	hs.os, hs.zone, hs.shared = osOf(h.OSType), strings.ToLower(h.Zone), h.SharedShares
	hs.allocCPU, hs.allocMem = milli(h.Allocatable.CPU), milli(h.Allocatable.MemoryGB)
}

// RemoveHost forgets a host and the groups assigned to it: they are to be
// placed again, and the shares they held are held there no more.
func (s *Scheduler) RemoveHost(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	slot, ok := s.slots[strings.ToLower(name)]
	if !ok {
		return
	}
	for key, a := range s.groups {
		if a.slot == slot {
			s.unrecord(a)
			delete(s.groups, key)
		}
	}
	if s.hosts[slot].joined {
		s.joined--
	}
	delete(s.slots, s.hosts[slot].key)
	s.hosts[slot] = nil
	s.free = append(s.free, slot)
}

// Assign records that the group r is placed on host: a placement made
// before (loaded at start) or elsewhere. It is not filtered: what is, is
// counted. Assigning a Key again moves it; host "" unassigns it. A host not
// set yet is remembered, offered nothing, until SetHost sets it.
func (s *Scheduler) Assign(r Request, host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := prepare(r)
	s.drop(p.key)
	if host == "" {
		return
	}
	a := &assignment{req: p, slot: s.host(host).slot}
	s.record(a)
	s.groups[p.key] = a
}

// Unassign forgets the group key (Request.Key); an unknown key is a no-op.
func (s *Scheduler) Unassign(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop(strings.ToLower(key))
}

// Placement returns the host the group key is assigned to.
func (s *Scheduler) Placement(key string) (host string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.groups[strings.ToLower(key)]
	if !ok {
		return "", false
	}
	return s.hosts[a.slot].name, true
}

// Usage returns what the groups assigned to host request and how many they
// are (zero for an unknown host).
func (s *Scheduler) Usage(host string) (used store.Resources, groups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	slot, ok := s.slots[strings.ToLower(host)]
	if !ok {
		return store.Resources{}, 0
	}
	h := s.hosts[slot]
	return store.Resources{CPU: unmilli(h.usedCPU), MemoryGB: unmilli(h.usedMem)}, h.groups
}

// Schedule chooses a host for r and assigns r to it, in one step. A group
// assigned already is scheduled as if it were not (its own cpu, memory,
// ports and shares do not count against it) and moves to the host chosen;
// if none is, it stays where it was. The error is an *Unschedulable (class
// errdefs.ErrConflict) when no host passes the filters, of class
// errdefs.ErrInvalidArgument when r has no Key.
func (s *Scheduler) Schedule(r Request) (host string, err error) {
	p := prepare(r)
	if p.key == "" {
		return "", errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidRequest", "scheduler: the request has no key")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.groups[p.key]
	if old != nil {
		s.unrecord(old)
	}
	rules := s.shareRules(p.shares)
	best := s.best(&p, rules)
	if best == nil {
		if old != nil {
			s.record(old)
		}
		return "", s.unschedulable(&p, rules)
	}
	a := &assignment{req: p, slot: best.slot}
	s.record(a)
	s.groups[p.key] = a
	return best.name, nil
}

// best is the highest scored host that passes the filters, or nil.
func (s *Scheduler) best(p *prepared, rules []shareRule) *hostState {
	spread := s.spreadOf(p.rg)
	var best *hostState
	var bestScore float64
	for _, h := range s.hosts {
		if h == nil || !h.joined || check(h, p, rules).kind != fits {
			continue
		}
		score := (free(h.allocCPU, h.usedCPU+p.cpu)+free(h.allocMem, h.usedMem+p.mem))/2 -
			SpreadPenalty*float64(spread[h.slot])
		if best == nil || score > bestScore || score == bestScore && h.key < best.key {
			best, bestScore = h, score
		}
	}
	return best
}

// spreadOf returns, per slot, how many groups of rg each host has (a
// scratch slice, valid until the next call).
func (s *Scheduler) spreadOf(rg string) []int32 {
	if cap(s.spread) < len(s.hosts) {
		s.spread = make([]int32, len(s.hosts), cap(s.hosts))
	}
	s.spread = s.spread[:len(s.hosts)]
	clear(s.spread)
	for slot, n := range s.byRG[rg] {
		s.spread[slot] = n
	}
	return s.spread
}

// free is the fraction of alloc left when used is taken (0 without alloc).
func free(alloc, used int64) float64 {
	if alloc <= 0 {
		return 0
	}
	return float64(alloc-used) / float64(alloc)
}

// failKind is the filter a host failed.
type failKind uint8

const (
	fits failKind = iota
	failNotReady
	failOS
	failZone
	failShare
	failResources
	failPort
	failRefused
)

// failure is why a host is refused: kind, and for a share or a port its
// index in the request; for resources which are short.
type failure struct {
	kind     failKind
	idx      int
	cpuShort bool
	memShort bool
}

// check runs the filters on h, in the order the package doc lists them.
func check(h *hostState, p *prepared, rules []shareRule) failure {
	if !h.ready {
		return failure{kind: failNotReady}
	}
	if h.os != p.os {
		return failure{kind: failOS}
	}
	if len(p.zones) > 0 && !slices.Contains(p.zones, h.zone) {
		return failure{kind: failZone}
	}
	for i := range rules {
		if !rules[i].admits(h) {
			return failure{kind: failShare, idx: i}
		}
	}
	cpuShort, memShort := h.usedCPU+p.cpu > h.allocCPU, h.usedMem+p.mem > h.allocMem
	if cpuShort || memShort {
		return failure{kind: failResources, cpuShort: cpuShort, memShort: memShort}
	}
	if slices.Contains(p.refused, h.key) {
		return failure{kind: failRefused}
	}
	if len(h.ports) > 0 {
		for i, k := range p.ports {
			if h.ports[k] > 0 {
				return failure{kind: failPort, idx: i}
			}
		}
	}
	return failure{}
}

// shareRule is where a share the group mounts is held already.
type shareRule struct {
	share string
	// pinned are the slots of the hosts without SharedShares that hold it;
	// if none, shared says it is held (on SharedShares hosts only).
	pinned []int
	shared bool
}

func (r *shareRule) admits(h *hostState) bool {
	if len(r.pinned) > 0 {
		return slices.Contains(r.pinned, h.slot)
	}
	return !r.shared || h.shared
}

// shareRules returns the rules of the shares held somewhere already.
func (s *Scheduler) shareRules(shares []string) []shareRule {
	var rules []shareRule
	for _, share := range shares {
		holders := s.byShare[share]
		if len(holders) == 0 {
			continue
		}
		r := shareRule{share: share, shared: true}
		for slot := range holders {
			if !s.hosts[slot].shared {
				r.pinned = append(r.pinned, slot)
			}
		}
		slices.Sort(r.pinned)
		rules = append(rules, r)
	}
	return rules
}

// host returns the state of the host name, a placeholder if it is not set.
func (s *Scheduler) host(name string) *hostState {
	key := strings.ToLower(name)
	if slot, ok := s.slots[key]; ok {
		return s.hosts[slot]
	}
	h := &hostState{key: key, name: name}
	if n := len(s.free); n > 0 {
		h.slot, s.free = s.free[n-1], s.free[:n-1]
		s.hosts[h.slot] = h
	} else {
		h.slot = len(s.hosts)
		s.hosts = append(s.hosts, h)
	}
	s.slots[key] = h.slot
	return h
}

// drop forgets the assignment of key, if any.
func (s *Scheduler) drop(key string) {
	if a, ok := s.groups[key]; ok {
		s.unrecord(a)
		delete(s.groups, key)
	}
}

// record adds a's requests to its host's sums; unrecord takes them away.
func (s *Scheduler) record(a *assignment) { s.count(a, 1) }

func (s *Scheduler) unrecord(a *assignment) { s.count(a, -1) }

func (s *Scheduler) count(a *assignment, sign int32) {
	h, p := s.hosts[a.slot], &a.req
	h.usedCPU += int64(sign) * p.cpu
	h.usedMem += int64(sign) * p.mem
	h.groups += int(sign)
	for _, k := range p.ports {
		if h.ports == nil {
			h.ports = map[uint64]int32{}
		}
		bump(h.ports, k, sign)
	}
	bumpIn(s.byRG, p.rg, a.slot, sign)
	for _, share := range p.shares {
		bumpIn(s.byShare, share, a.slot, sign)
	}
}

// bump adds d to m[k], deleting it at zero.
func bump[K comparable](m map[K]int32, k K, d int32) {
	if m[k] += d; m[k] <= 0 {
		delete(m, k)
	}
}

// bumpIn adds d to m[outer][slot], deleting what reaches zero.
func bumpIn(m map[string]map[int]int32, outer string, slot int, d int32) {
	in := m[outer]
	if in == nil {
		in = map[int]int32{}
		m[outer] = in
	}
	if bump(in, slot, d); len(in) == 0 {
		delete(m, outer)
	}
}
