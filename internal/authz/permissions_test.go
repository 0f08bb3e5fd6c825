package authz

import (
	"context"
	"slices"
	"testing"
)

func TestPermissionsAtAScope(t *testing.T) {
	a := newAuthorizer(t)
	ctx := context.Background()
	assign(t, a, rgA, ContributorRoleID, alice)
	assign(t, a, subScope, ReaderRoleID, bob)

	// alice: Contributor at rg-a applies there and under it, not at rg-b.
	perms, err := a.Permissions(ctx, alice, cgA)
	if err != nil || len(perms) != 1 || !slices.Equal(perms[0].Actions, []string{"*"}) ||
		!slices.Contains(perms[0].NotActions, "Microsoft.Authorization/*/Write") {
		t.Fatalf("alice at %s: %+v, %v; want Contributor's", cgA, perms, err)
	}
	if perms, _ := a.Permissions(ctx, alice, rgB); perms == nil || len(perms) != 0 {
		t.Errorf("alice at rg-b: %#v, want []", perms)
	}
	// bob: Reader from the subscription, at rg-a.
	perms, _ = a.Permissions(ctx, bob, rgA)
	if len(perms) != 1 || !slices.Equal(perms[0].Actions, []string{"*/read"}) {
		t.Errorf("bob at rg-a: %+v, want Reader's", perms)
	}
	if perms[0].NotActions == nil || perms[0].DataActions == nil {
		t.Errorf("lists are [] on the wire, not null: %+v", perms[0])
	}
}
