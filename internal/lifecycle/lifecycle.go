// Package lifecycle is the one lifecycle of a container group: its typed
// states, the transitions between provisioning states and who owns each,
// and how the runtime's observed state maps onto provisioning states.
//
// Provisioning states (ARM's, as ACI uses them) and their owners:
//
//	              server            controller          controller
//	PUT ──────────▶ Pending ──────────▶ Creating ──────────▶ Succeeded ◀─┐
//	                 ▲  │   (placed on      │   (observed:        │      │ controller
//	PUT that changes │  │    a host)        │    settled)         ▼      │ (ran again)
//	the containers ──┘  │                   └──────────────────▶ Failed ─┘
//	(server)            │                     controller (observed: failed for good)
//	                    ▼
//	DELETE ─────────▶ Deleting ───────────▶ (record removed)
//	server, from any    │     agent: once the runtime removed the group;
//	state; controller   │     controller: a group never placed on a host
//	for a resource      │
//	group's delete      └─ refuses every other transition (409
//	                       ContainerGroupTransitioning)
//
//	Succeeded ──────────────────────────────▶ (record removed)
//	server: a standby pool's ready group handed over to a create, whose
//	new record (Pending, on the same host) takes its runtime group
//
// A group's own states (its instanceView state), which the host's runtime
// moves and the agent reports as store.Observed; GroupTransition refuses
// the arrows not drawn:
//
//	        Create / Start
//	             │
//	             ▼
//	       ┌──────────┐  image, volume, network or init container failure
//	       │ Pending  │──────────────────────────────────┐
//	       └──────────┘                                  │
//	             │ app containers started                │
//	             ▼                                       ▼
//	       ┌──────────┐  all exited, none to restart ┌─────────────────────┐
//	       │ Running  │─────────────────────────────▶│ Succeeded / Failed  │
//	       └──────────┘                              └─────────────────────┘
//	Stop │   ▲ Restart (through Pending)        Stop │   │ Start, Restart
//	     ▼   │                                       ▼   └──────▶ Pending
//	       ┌──────────┐ ◀─────────────────────────────
//	       │ Stopped  │ ── Start ──▶ Pending
//	       └──────────┘
//
// Crash-looping containers (restart back-off) keep the group Running, as in
// ACI. Restart in place goes Running → Pending → Running and keeps the
// group's IP address and volumes.
//
// The group states map onto provisioning states so:
//
//	observed                         provisioning
//	Pending                          (unchanged: Pending or Creating)
//	Running, Stopped,                Succeeded: the deployment did its job,
//	Succeeded, Failed                  whatever the containers' exit codes
//	an error (image, volume,         Failed, with the error's code
//	network, start failure)
//
// A transition the table does not hold is an error (errdefs.ErrConflict);
// staying in a state is always allowed.
package lifecycle

import (
	"fmt"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Provisioning is a container group's provisioning state.
type Provisioning string

// Provisioning states. None is a group that has no record (yet, or any
// more).
const (
	None      Provisioning = ""
	Pending   Provisioning = "Pending"
	Creating  Provisioning = "Creating"
	Succeeded Provisioning = "Succeeded"
	Failed    Provisioning = "Failed"
	Deleting  Provisioning = "Deleting"
)

// Final reports whether nothing is under way: the group settled.
func (p Provisioning) Final() bool { return p == Succeeded || p == Failed }

// GroupState is a container group's instanceView state.
type GroupState string

// Group states (instanceView.state).
const (
	GroupPending   GroupState = "Pending"
	GroupRunning   GroupState = "Running"
	GroupStopped   GroupState = "Stopped"
	GroupSucceeded GroupState = "Succeeded"
	GroupFailed    GroupState = "Failed"
)

// Settled reports whether the group is no longer starting.
func (s GroupState) Settled() bool {
	return s == GroupRunning || s == GroupStopped || s == GroupSucceeded || s == GroupFailed
}

// ContainerState is a container's instanceView currentState.state.
type ContainerState string

// Container states.
const (
	ContainerWaiting    ContainerState = "Waiting"
	ContainerRunning    ContainerState = "Running"
	ContainerTerminated ContainerState = "Terminated"
)

// groupTransitions holds the arrows of the group states.
var groupTransitions = map[GroupState][]GroupState{
	"":             {GroupPending, GroupStopped},
	GroupPending:   {GroupPending, GroupRunning, GroupFailed, GroupStopped},
	GroupRunning:   {GroupSucceeded, GroupFailed, GroupStopped, GroupPending},
	GroupSucceeded: {GroupStopped, GroupPending},
	GroupFailed:    {GroupStopped, GroupPending},
	GroupStopped:   {GroupPending, GroupStopped},
}

// GroupTransition checks an arrow of the group states (the runtime's,
// the one owner of them); a refusal is an errdefs.ErrConflict.
func GroupTransition(from, to GroupState) error {
	for _, s := range groupTransitions[from] {
		if s == to {
			return nil
		}
	}
	return fmt.Errorf("group cannot go from %q to %q: %w", from, to, errdefs.ErrConflict)
}

// Actor is who moves a state.
type Actor string

// The actors: the API server (desired state), the controller (placement,
// settling, resource group deletes) and a host's agent (what runs).
const (
	Server     Actor = "server"
	Controller Actor = "controller"
	Agent      Actor = "agent"
)

type edge struct{ from, to Provisioning }

// transitions holds every allowed move and its owners.
var transitions = map[edge][]Actor{
	{None, Pending}:      {Server},
	{Creating, Pending}:  {Server},
	{Succeeded, Pending}: {Server},
	{Failed, Pending}:    {Server},

	{Pending, Creating}: {Controller},

	{Pending, Succeeded}:  {Controller},
	{Pending, Failed}:     {Controller},
	{Creating, Succeeded}: {Controller},
	{Creating, Failed}:    {Controller},
	{Succeeded, Failed}:   {Controller},
	{Failed, Succeeded}:   {Controller},

	{Pending, Deleting}:   {Server, Controller},
	{Creating, Deleting}:  {Server, Controller},
	{Succeeded, Deleting}: {Server, Controller},
	{Failed, Deleting}:    {Server, Controller},

	{Deleting, None}: {Agent, Controller},
	// A standby pool's member handed over (store.HandOverContainerGroup).
	{Succeeded, None}: {Server},
}

// Transition checks that by may move a group from one provisioning state
// to another. A refusal is an errdefs.ErrConflict with ARM's code
// ContainerGroupTransitioning.
func Transition(from, to Provisioning, by Actor) error {
	if from == to {
		return nil
	}
	for _, a := range transitions[edge{from, to}] {
		if a == by {
			return nil
		}
	}
	if from == Deleting {
		return errdefs.WithCode(errdefs.ErrConflict, "ContainerGroupTransitioning",
			"The container group is being deleted; it cannot become %s.", name(to))
	}
	return errdefs.WithCode(errdefs.ErrConflict, "ContainerGroupTransitioning",
		"The container group cannot go from %s to %s (asked by the %s).", name(from), name(to), by)
}

func name(p Provisioning) string {
	if p == None {
		return "gone"
	}
	return string(p)
}

// FromObserved maps what the runtime reports onto a provisioning state: ok
// is false while the group is still starting (the state stays as it is).
func FromObserved(state GroupState, failed bool) (p Provisioning, ok bool) {
	switch {
	case failed:
		return Failed, true
	case state.Settled():
		return Succeeded, true
	}
	return "", false
}

// String is the state as ARM writes it.
func (p Provisioning) String() string { return string(p) }
