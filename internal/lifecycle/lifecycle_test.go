package lifecycle

import (
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

var (
	states = []Provisioning{None, Pending, Creating, Succeeded, Failed, Deleting}
	actors = []Actor{Server, Controller, Agent}
)

// TestTransitionsAsDrawn walks every move by every actor and checks it
// against the diagram in the package comment, written out here from the
// user's side: what a PUT, a DELETE, placement and the agent may do.
func TestTransitionsAsDrawn(t *testing.T) {
	allowed := func(from, to Provisioning, by Actor) bool {
		switch {
		case from == to:
			return true // staying is always allowed
		case from == Deleting:
			return to == None && (by == Agent || by == Controller) // only the removal
		case to == Pending:
			return by == Server // a PUT: a new group, or other containers
		case to == Deleting:
			return from != None && (by == Server || by == Controller) // a DELETE, or a resource group's
		case from == Pending && to == Creating:
			return by == Controller // placed on a host
		case to == Succeeded || to == Failed:
			return from != None && by == Controller // what the agent observed, settled by the controller
		case from == Succeeded && to == None:
			return by == Server // a standby pool's ready group, handed over to a create
		}
		return false
	}
	for _, from := range states {
		for _, to := range states {
			for _, by := range actors {
				err := Transition(from, to, by)
				if want := allowed(from, to, by); want != (err == nil) {
					t.Errorf("%s by the %s: err %v, want allowed %v", edgeName(from, to), by, err, want)
				}
				if err != nil {
					assertRefusal(t, err, from, to, by)
				}
			}
		}
	}
}

// The cases a user meets, named.
func TestTransitionRefusals(t *testing.T) {
	for _, c := range []struct {
		name     string
		from, to Provisioning
		by       Actor
	}{
		{"a PUT while deleting", Deleting, Pending, Server},
		{"settling a deleting group", Deleting, Succeeded, Controller},
		{"failing a deleting group", Deleting, Failed, Controller},
		{"placing a deleting group", Deleting, Creating, Controller},
		{"the server removing a record", Deleting, None, Server},
		{"the agent placing a group", Pending, Creating, Agent},
		{"the agent settling a group", Creating, Succeeded, Agent},
		{"the agent deleting a group", Succeeded, Deleting, Agent},
		{"the server settling a group", Creating, Succeeded, Server},
		{"a record removed without a delete", Succeeded, None, Agent},
		{"creating past Pending", None, Creating, Controller},
		{"deleting what does not exist", None, Deleting, Server},
		{"back to Creating", Succeeded, Creating, Controller},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Transition(c.from, c.to, c.by)
			if err == nil {
				t.Fatalf("%s by the %s allowed", edgeName(c.from, c.to), c.by)
			}
			assertRefusal(t, err, c.from, c.to, c.by)
		})
	}
}

// assertRefusal checks what the API answers with a refusal: 409 with ARM
// code ContainerGroupTransitioning, and a message that says why.
func assertRefusal(t *testing.T, err error, from, to Provisioning, by Actor) {
	t.Helper()
	if !errdefs.Is(err, errdefs.ErrConflict) || errdefs.CodeOf(err) != "ContainerGroupTransitioning" {
		t.Errorf("%s by the %s: %v (code %q), want ErrConflict with code ContainerGroupTransitioning",
			edgeName(from, to), by, err, errdefs.CodeOf(err))
	}
	if from == Deleting && !strings.Contains(err.Error(), "being deleted") {
		t.Errorf("%s by the %s: %q does not say the group is being deleted", edgeName(from, to), by, err)
	}
}

func edgeName(from, to Provisioning) string { return name(from) + " → " + name(to) }

func TestFromObserved(t *testing.T) {
	for _, c := range []struct {
		state  GroupState
		failed bool
		want   Provisioning
		ok     bool
	}{
		{GroupPending, false, "", false}, // still starting: unchanged
		{GroupRunning, false, Succeeded, true},
		{GroupStopped, false, Succeeded, true},
		{GroupSucceeded, false, Succeeded, true}, // the containers exited 0
		{GroupFailed, false, Succeeded, true},    // the containers exited non-zero: the deployment still did its job
		{GroupPending, true, Failed, true},       // an image that cannot be pulled
		{GroupFailed, true, Failed, true},
	} {
		got, ok := FromObserved(c.state, c.failed)
		if got != c.want || ok != c.ok {
			t.Errorf("FromObserved(%s, failed %v) = %q, %v; want %q, %v", c.state, c.failed, got, ok, c.want, c.ok)
		}
	}
}
