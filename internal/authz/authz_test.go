package authz

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
)

const (
	sub   = "00000000-0000-0000-0000-0000000000aa"
	other = "00000000-0000-0000-0000-0000000000bb"
	alice = "11111111-1111-1111-1111-111111111111"
	bob   = "22222222-2222-2222-2222-222222222222"
)

var (
	subScope = "/subscriptions/" + sub
	rgA      = subScope + "/resourceGroups/rg-a"
	rgB      = subScope + "/resourceGroups/rg-b"
	cgA      = rgA + "/providers/Microsoft.ContainerInstance/containerGroups/web"
)

func openStore(t testing.TB) *store.Bolt {
	t.Helper()
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize), "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "db"), store.BoltOptions{Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newAuthorizer(t testing.TB) *Authorizer {
	return New(Options{Store: openStore(t)})
}

// assign gives principal the role guid at scope and fails the test on an
// error.
func assign(t testing.TB, a *Authorizer, scope, roleGUID, principal string) *RoleAssignment {
	t.Helper()
	ra, created, err := a.CreateRoleAssignment(context.Background(), scope, uuid.NewString(),
		RoleAssignmentProperties{RoleDefinitionID: RoleDefinitionID(subscriptionOf(scope), roleGUID), PrincipalID: principal}, alice)
	if err != nil || !created {
		t.Fatalf("assign %s at %s to %s: created %v, %v", roleGUID, scope, principal, created, err)
	}
	return ra
}

func TestBuiltInRoles(t *testing.T) {
	roles := BuiltInRoles(sub)
	byName := map[string]RoleDefinition{}
	for _, r := range roles {
		byName[r.Properties.RoleName] = r
		if r.Type != RoleDefinitionType || r.Properties.Type != BuiltInRole || r.Properties.AssignableScopes[0] != "/" {
			t.Errorf("%s: type %q/%q, assignable %v", r.Properties.RoleName, r.Type, r.Properties.Type, r.Properties.AssignableScopes)
		}
		if want := "/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/" + r.Name; r.ID != want {
			t.Errorf("id %s, want %s", r.ID, want)
		}
		for _, p := range r.Properties.Permissions {
			if p.NotActions == nil || p.DataActions == nil || p.NotDataActions == nil {
				t.Errorf("%s: a nil list would be null on the wire: %+v", r.Properties.RoleName, p)
			}
		}
	}
	for name, id := range map[string]string{
		"Owner": OwnerRoleID, "Contributor": ContributorRoleID, "Reader": ReaderRoleID,
		"User Access Administrator":                  UserAccessAdministratorRoleID,
		"Azure Container Instances Contributor Role": ContainerInstancesContributorRoleID,
	} {
		if byName[name].Name != id {
			t.Errorf("%s has id %q, want Azure's %s", name, byName[name].Name, id)
		}
	}
	if got := BuiltInRoles("")[0].ID; got != "/providers/Microsoft.Authorization/roleDefinitions/"+OwnerRoleID {
		t.Errorf("tenant-level id %s", got)
	}

	// What each built-in role lets a principal do on a container group.
	ctx := context.Background()
	a := newAuthorizer(t)
	principals := map[string]string{}
	for name, id := range map[string]string{"Owner": OwnerRoleID, "Contributor": ContributorRoleID, "Reader": ReaderRoleID,
		"UAA": UserAccessAdministratorRoleID, "ACI": ContainerInstancesContributorRoleID} {
		principals[name] = uuid.NewString()
		assign(t, a, rgA, id, principals[name])
	}
	cases := []struct {
		action string
		scope  string
		allow  []string
	}{
		{ActionContainerGroupsWrite, cgA, []string{"Owner", "Contributor", "ACI"}},
		{ActionContainerGroupsRead, cgA, []string{"Owner", "Contributor", "Reader", "UAA", "ACI"}},
		{ActionContainerExec, cgA, []string{"Owner", "Contributor", "ACI"}},
		{ActionContainerLogsRead, cgA, []string{"Owner", "Contributor", "Reader", "UAA", "ACI"}},
		{ActionMetricsRead, cgA, []string{"Owner", "Contributor", "Reader", "UAA"}},
		{ActionResourceGroupsDelete, rgA, []string{"Owner", "Contributor"}},
		{ActionResourceGroupsRead, rgA, []string{"Owner", "Contributor", "Reader", "UAA", "ACI"}},
		{ActionRoleAssignmentsWrite, rgA + "/providers/Microsoft.Authorization/roleAssignments/x", []string{"Owner", "UAA"}},
		{ActionRoleAssignmentsDelete, rgA, []string{"Owner", "UAA"}},
		{ActionRoleAssignmentsRead, rgA, []string{"Owner", "Contributor", "Reader", "UAA", "ACI"}},
		{ActionRoleDefinitionsWrite, rgA, []string{"Owner", "UAA"}},
		{"Microsoft.Authorization/elevateAccess/Action", rgA, []string{"Owner", "UAA"}},
		{ActionImagesPull, rgA, []string{"Owner", "Contributor"}},
		// Nothing at the resource group reaches its subscription or a
		// sibling.
		{ActionContainerGroupsRead, rgB, nil},
		{ActionResourceGroupsWrite, subScope + "/resourceGroups/new", nil},
		{ActionSubscriptionsRead, subScope, nil},
	}
	for _, c := range cases {
		for name, p := range principals {
			want := false
			for _, n := range c.allow {
				want = want || n == name
			}
			if got := a.Can(ctx, p, c.action, c.scope); got != want {
				t.Errorf("%s: %s over %s: %v, want %v", name, c.action, c.scope, got, want)
			}
		}
	}
}

func TestWildcards(t *testing.T) {
	cases := []struct {
		pattern, action string
		want            bool
	}{
		{"*", "Microsoft.Anything/at/all", true},
		{"*/read", "Microsoft.ContainerInstance/containerGroups/read", true},
		{"*/read", "Microsoft.ContainerInstance/containerGroups/containers/exec/action", false},
		{"*/READ", "microsoft.insights/metrics/read", true},
		{"Microsoft.Authorization/*/Delete", "Microsoft.Authorization/roleAssignments/delete", true},
		{"Microsoft.Authorization/*/Delete", "Microsoft.Authorization/policyAssignments/exemptions/delete", true},
		{"Microsoft.Authorization/*/Delete", "Microsoft.Authorization/roleAssignments/read", false},
		{"Microsoft.Authorization/*/Delete", "Microsoft.Resources/subscriptions/resourceGroups/delete", false},
		{"Microsoft.ContainerInstance/containerGroups/*", "Microsoft.ContainerInstance/containerGroups/start/action", true},
		{"Microsoft.ContainerInstance/containerGroups/*", "Microsoft.ContainerInstance/containerGroups", false},
		{"Microsoft.ContainerInstance/containerGroups/*", "Microsoft.ContainerInstance/locations/usages/read", false},
		// A star inside a segment.
		{"Microsoft.ContainerInstance/containerGroups/containers/*/action", "Microsoft.ContainerInstance/containerGroups/containers/exec/action", true},
		{"Microsoft.ContainerInstance/container*/read", "Microsoft.ContainerInstance/containerGroups/read", true},
		{"Microsoft.ContainerInstance/container*/read", "Microsoft.ContainerInstance/locations/usages/read", false},
		{"Microsoft.*Instance/*/*/action", "Microsoft.ContainerInstance/containerGroups/stop/action", true},
		{"Microsoft.*Instance/*/*/action", "Microsoft.ContainerInstance/register/actions", false},
		{"a*b*b", "ab", false},
		{"a*b*b", "abb", true},
		{"Microsoft.Resources/subscriptions/resourceGroups/read", "MICROSOFT.RESOURCES/SUBSCRIPTIONS/RESOURCEGROUPS/READ", true},
		{"Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Resources/subscriptions/resourceGroups/write", false},
	}
	for _, c := range cases {
		if got := compile(c.pattern).match(strings.ToLower(c.action)); got != c.want {
			t.Errorf("%q matches %q: %v, want %v", c.pattern, c.action, got, c.want)
		}
	}
}

// TestNotActionsExceptFromTheirOwnPermission: Contributor's notActions
// keep it from role assignments, but a second role that grants them does,
// as ARM adds roles up rather than letting one's notActions deny.
func TestNotActionsExceptFromTheirOwnPermission(t *testing.T) {
	ctx := context.Background()
	a := newAuthorizer(t)
	assign(t, a, subScope, ContributorRoleID, alice)
	write := rgA + "/providers/Microsoft.Authorization/roleAssignments/" + uuid.NewString()
	if a.Can(ctx, alice, ActionRoleAssignmentsWrite, write) {
		t.Fatal("Contributor may write role assignments")
	}
	if !a.Can(ctx, alice, ActionRoleAssignmentsRead, write) {
		t.Fatal("Contributor may not read role assignments (only */Write and */Delete are excepted)")
	}
	if !a.Can(ctx, alice, ActionResourceGroupsDelete, rgA) {
		t.Fatal("Contributor may not delete a resource group")
	}
	assign(t, a, rgA, UserAccessAdministratorRoleID, alice)
	if !a.Can(ctx, alice, ActionRoleAssignmentsWrite, write) {
		t.Fatal("User Access Administrator at the resource group does not grant what Contributor's notActions except")
	}
	if a.Can(ctx, alice, ActionRoleAssignmentsWrite, rgB+"/providers/Microsoft.Authorization/roleAssignments/x") {
		t.Fatal("the resource group's User Access Administrator reaches another resource group")
	}
}

func TestScopeInheritanceAndCase(t *testing.T) {
	ctx := context.Background()
	a := newAuthorizer(t)
	assign(t, a, rgA, ReaderRoleID, alice)
	assign(t, a, cgA, ContributorRoleID, bob)

	cases := []struct {
		principal, action, scope string
		want                     bool
	}{
		{alice, ActionContainerGroupsRead, rgA, true},
		{alice, ActionContainerGroupsRead, cgA, true},
		{alice, ActionContainerLogsRead, cgA + "/containers/app", true},
		{alice, ActionContainerGroupsRead, strings.ToUpper(cgA), true},
		{strings.ToUpper(alice), "MICROSOFT.CONTAINERINSTANCE/CONTAINERGROUPS/READ", strings.ToLower(cgA), true},
		{alice, ActionContainerGroupsRead, rgA + "/", true},
		{alice, ActionContainerGroupsRead, subScope + "/resourceGroups/rg-a2", false}, // a prefix of the name is not a parent
		{alice, ActionContainerGroupsRead, subScope, false},
		{alice, ActionContainerGroupsWrite, cgA, false},
		{bob, ActionContainerGroupsWrite, cgA, true},
		{bob, ActionContainerExec, cgA + "/containers/app", true},
		{bob, ActionContainerGroupsWrite, rgA + "/providers/Microsoft.ContainerInstance/containerGroups/web2", false},
		{bob, ActionContainerGroupsRead, rgA, false},
		{"", ActionContainerGroupsRead, cgA, false},
		{uuid.NewString(), ActionContainerGroupsRead, cgA, false},
	}
	for _, c := range cases {
		if got := a.Can(ctx, c.principal, c.action, c.scope); got != c.want {
			t.Errorf("%s: %s over %s: %v, want %v", c.principal, c.action, c.scope, got, c.want)
		}
	}

	// A role at the root applies everywhere.
	carol := uuid.NewString()
	if _, _, err := a.CreateRoleAssignment(ctx, "/", uuid.NewString(), RoleAssignmentProperties{RoleDefinitionID: OwnerRoleID, PrincipalID: carol}, ""); err != nil {
		t.Fatal(err)
	}
	for _, scope := range []string{"/", subScope, "/subscriptions/" + other + "/resourceGroups/x", "/providers/Skiff.Cluster/hosts"} {
		if !a.Can(ctx, carol, ActionHostsRead, scope) {
			t.Errorf("root Owner denied over %s", scope)
		}
	}
	if a.Can(ctx, alice, ActionHostsRead, "/providers/Skiff.Cluster/hosts") {
		t.Error("a resource group's reader reads the hosts")
	}
}

func TestDeniedMessageIsARMs(t *testing.T) {
	a := newAuthorizer(t)
	err := a.Authorize(context.Background(), alice, ActionContainerGroupsWrite, cgA)
	if !errdefs.Is(err, errdefs.ErrForbidden) || errdefs.CodeOf(err) != "AuthorizationFailed" {
		t.Fatalf("got %v (code %q), want ErrForbidden AuthorizationFailed", err, errdefs.CodeOf(err))
	}
	want := "The client '" + alice + "' with object id '" + alice + "' does not have authorization to perform action " +
		"'Microsoft.ContainerInstance/containerGroups/write' over scope '" + cgA + "' or the scope is invalid. " +
		"If access was recently granted, please refresh your credentials."
	if err.Error() != want {
		t.Fatalf("message\n%s\nwant\n%s", err, want)
	}
	assign(t, a, rgA, ContributorRoleID, alice)
	if err := a.Authorize(context.Background(), alice, ActionContainerGroupsWrite, cgA); err != nil {
		t.Fatal(err)
	}
}

func TestDuplicateAssignment(t *testing.T) {
	ctx := context.Background()
	a := newAuthorizer(t)
	first := assign(t, a, rgA, ContributorRoleID, alice)

	// The same role, principal and scope under another name, the scope
	// and ids in other cases: 409 RoleAssignmentExists, naming the first.
	_, _, err := a.CreateRoleAssignment(ctx, strings.ToUpper(rgA), uuid.NewString(), RoleAssignmentProperties{
		RoleDefinitionID: "/providers/Microsoft.Authorization/roleDefinitions/" + strings.ToUpper(ContributorRoleID),
		PrincipalID:      strings.ToUpper(alice), PrincipalType: "ServicePrincipal"}, "")
	if !errdefs.Is(err, errdefs.ErrConflict) || errdefs.CodeOf(err) != "RoleAssignmentExists" {
		t.Fatalf("duplicate: %v (%s), want 409 RoleAssignmentExists", err, errdefs.CodeOf(err))
	}
	if !strings.Contains(err.Error(), strings.ReplaceAll(first.Name, "-", "")) {
		t.Errorf("message %q does not name the existing assignment %s", err, first.Name)
	}

	// The same PUT again is the same assignment.
	again, created, err := a.CreateRoleAssignment(ctx, rgA, first.Name, RoleAssignmentProperties{
		RoleDefinitionID: first.Properties.RoleDefinitionID, PrincipalID: alice}, "")
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("same PUT again: %+v created %v, %v", again, created, err)
	}
	// Its name for another principal: not an update ARM allows.
	_, _, err = a.CreateRoleAssignment(ctx, rgA, first.Name, RoleAssignmentProperties{RoleDefinitionID: first.Properties.RoleDefinitionID, PrincipalID: bob}, "")
	if errdefs.CodeOf(err) != "RoleAssignmentUpdateNotPermitted" || !errdefs.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("rename of principal: %v", err)
	}

	// Another role, another principal or another scope is no duplicate.
	assign(t, a, rgA, ReaderRoleID, alice)
	assign(t, a, rgA, ContributorRoleID, bob)
	assign(t, a, rgB, ContributorRoleID, alice)

	// Once the first is deleted, the pair can be assigned again.
	if _, err := a.DeleteRoleAssignment(ctx, rgA, first.Name); err != nil {
		t.Fatal(err)
	}
	assign(t, a, rgA, ContributorRoleID, alice)
}

// TestDuplicateAssignmentRace: servers sharing a store that create the same
// pair at once make one assignment; the others get RoleAssignmentExists.
func TestDuplicateAssignmentRace(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	const n = 8
	errs := make(chan error, n)
	for range n {
		a := New(Options{Store: st})
		go func() {
			_, _, err := a.CreateRoleAssignment(ctx, rgA, uuid.NewString(), RoleAssignmentProperties{RoleDefinitionID: ContributorRoleID, PrincipalID: alice}, "")
			errs <- err
		}()
	}
	created := 0
	for range n {
		switch err := <-errs; {
		case err == nil:
			created++
		case errdefs.CodeOf(err) != "RoleAssignmentExists":
			t.Errorf("unexpected error: %v", err)
		}
	}
	list, err := New(Options{Store: st}).ListRoleAssignments(ctx, rgA, RoleAssignmentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if created != 1 || len(list) != 1 {
		t.Fatalf("%d created, %d stored; want 1", created, len(list))
	}
}

// TestStaleClaimIsTakenOver: a uniqueness record left by a create that
// failed after it (no assignment behind it) stops blocking after the grace.
func TestStaleClaimIsTakenOver(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	a := New(Options{Store: openStore(t), Now: func() time.Time { return now }})
	ghost := uuid.NewString()
	if _, err := a.claim(ctx, kindUnique, uniqueKey(rgA, ContributorRoleID, alice), ghost, a.objectExists(kindAssignments)); err != nil {
		t.Fatal(err)
	}
	props := RoleAssignmentProperties{RoleDefinitionID: ContributorRoleID, PrincipalID: alice}
	if _, _, err := a.CreateRoleAssignment(ctx, rgA, uuid.NewString(), props, ""); errdefs.CodeOf(err) != "RoleAssignmentExists" {
		t.Fatalf("within the grace: %v", err)
	}
	now = now.Add(claimGrace + time.Second)
	if _, _, err := a.CreateRoleAssignment(ctx, rgA, uuid.NewString(), props, ""); err != nil {
		t.Fatalf("after the grace: %v", err)
	}
}

func TestAssignmentValidation(t *testing.T) {
	ctx := context.Background()
	a := newAuthorizer(t)
	good := RoleAssignmentProperties{RoleDefinitionID: RoleDefinitionID(sub, ReaderRoleID), PrincipalID: alice}
	cases := []struct {
		name, scope, id string
		props           RoleAssignmentProperties
		code            string
	}{
		{"name not a GUID", rgA, "not-a-guid", good, "InvalidRoleAssignmentId"},
		{"bad scope", "/subscriptions/" + sub + "/resourceGroups", uuid.NewString(), good, "InvalidScope"},
		{"bad scope", "resourceGroups/x", uuid.NewString(), good, "InvalidScope"},
		{"unknown role", rgA, uuid.NewString(), RoleAssignmentProperties{RoleDefinitionID: RoleDefinitionID(sub, uuid.NewString()), PrincipalID: alice}, "RoleDefinitionDoesNotExist"},
		{"malformed role id", rgA, uuid.NewString(), RoleAssignmentProperties{RoleDefinitionID: "/subscriptions/x/resourceGroups/y/providers/Microsoft.Authorization/roleDefinitions/" + ReaderRoleID, PrincipalID: alice}, "InvalidRoleDefinitionId"},
		{"no principal", rgA, uuid.NewString(), RoleAssignmentProperties{RoleDefinitionID: ReaderRoleID}, "InvalidPrincipalId"},
		{"bad type", rgA, uuid.NewString(), RoleAssignmentProperties{RoleDefinitionID: ReaderRoleID, PrincipalID: alice, PrincipalType: "Robot"}, "InvalidPrincipalType"},
		{"condition", rgA, uuid.NewString(), RoleAssignmentProperties{RoleDefinitionID: ReaderRoleID, PrincipalID: alice, Condition: "@Resource[x] StringEquals 'y'"}, "RoleAssignmentConditionNotSupported"},
	}
	for _, c := range cases {
		_, _, err := a.CreateRoleAssignment(ctx, c.scope, c.id, c.props, "")
		if errdefs.CodeOf(err) != c.code || !errdefs.Is(err, errdefs.ErrInvalidArgument) && !errdefs.Is(err, errdefs.ErrNotImplemented) {
			t.Errorf("%s: %v (%s), want 400 %s", c.name, err, errdefs.CodeOf(err), c.code)
		}
	}
	ra, _, err := a.CreateRoleAssignment(ctx, rgA+"/", uuid.NewString(), RoleAssignmentProperties{RoleDefinitionID: ReaderRoleID, PrincipalID: alice, PrincipalType: "user"}, bob)
	if err != nil {
		t.Fatal(err)
	}
	p := ra.Properties
	if p.Scope != rgA || p.PrincipalType != "User" || p.RoleDefinitionID != RoleDefinitionID(sub, ReaderRoleID) ||
		p.CreatedBy != bob || p.CreatedOn == nil || ra.ID != rgA+"/providers/Microsoft.Authorization/roleAssignments/"+ra.Name {
		t.Errorf("stored %+v", ra)
	}

	// The principal lookup, when there is one, names the type and refuses
	// unknown principals.
	missing := errdefs.WithCode(errdefs.ErrInvalidArgument, "PrincipalNotFound", "Principal %s does not exist in the directory.", bob)
	a = New(Options{Store: openStore(t), LookupPrincipal: func(_ context.Context, id string) (string, error) {
		if id == alice {
			return "ServicePrincipal", nil
		}
		return "", missing
	}})
	ra, _, err = a.CreateRoleAssignment(ctx, rgA, uuid.NewString(), RoleAssignmentProperties{RoleDefinitionID: ReaderRoleID, PrincipalID: alice, PrincipalType: "User"}, "")
	if err != nil || ra.Properties.PrincipalType != "ServicePrincipal" {
		t.Fatalf("looked-up type: %+v %v", ra, err)
	}
	if _, _, err := a.CreateRoleAssignment(ctx, rgA, uuid.NewString(), RoleAssignmentProperties{RoleDefinitionID: ReaderRoleID, PrincipalID: bob}, ""); err != missing {
		t.Fatalf("unknown principal: %v", err)
	}
}

func TestCustomRoles(t *testing.T) {
	ctx := context.Background()
	a := newAuthorizer(t)
	id := uuid.NewString()
	restarter := RoleDefinitionProperties{
		RoleName: "Container Restarter", Description: "Reads and restarts container groups.",
		Permissions: []Permission{{
			Actions:    []string{"Microsoft.ContainerInstance/containerGroups/*"},
			NotActions: []string{"Microsoft.ContainerInstance/containerGroups/write", "Microsoft.ContainerInstance/containerGroups/delete"},
		}},
		AssignableScopes: []string{rgA},
	}
	def, created, err := a.PutRoleDefinition(ctx, subScope, id, restarter, alice)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if def.ID != RoleDefinitionID(sub, id) || def.Properties.Type != CustomRole || def.Properties.CreatedBy != alice ||
		def.Properties.Permissions[0].DataActions == nil {
		t.Fatalf("created %+v", def)
	}

	// It can be found by name, without case, where it is assignable, and
	// (with atScopeAndBelow) above.
	for _, c := range []struct {
		scope string
		f     RoleDefinitionFilter
		want  int
	}{
		{rgA, RoleDefinitionFilter{RoleName: "container restarter"}, 1},
		{cgA, RoleDefinitionFilter{RoleName: "CONTAINER RESTARTER"}, 1},
		{rgB, RoleDefinitionFilter{RoleName: "container restarter"}, 0},
		{subScope, RoleDefinitionFilter{RoleName: "container restarter"}, 0},
		{subScope, RoleDefinitionFilter{RoleName: "container restarter", AtScopeAndBelow: true}, 1},
		{rgA, RoleDefinitionFilter{Type: CustomRole}, 1},
		{rgA, RoleDefinitionFilter{Type: "builtinrole"}, len(builtIns)},
		{rgA, RoleDefinitionFilter{RoleName: "contributor"}, 1},
	} {
		got, err := a.ListRoleDefinitions(ctx, c.scope, c.f)
		if err != nil || len(got) != c.want {
			t.Errorf("list at %s with %+v: %d roles (%v), want %d", c.scope, c.f, len(got), err, c.want)
		}
	}
	if got, err := a.RoleDefinition(ctx, rgA, RoleDefinitionID(sub, id)); err != nil || got.Properties.RoleName != restarter.RoleName {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := a.RoleDefinition(ctx, "/subscriptions/"+other, id); errdefs.CodeOf(err) != "RoleDefinitionDoesNotExist" {
		t.Fatalf("get from another subscription: %v", err)
	}
	if _, _, err := a.PutRoleDefinition(ctx, "/subscriptions/"+other, id, restarter, ""); errdefs.CodeOf(err) != "RoleDefinitionDoesNotExist" {
		t.Fatalf("put from another subscription: %v", err)
	}
	if d, err := a.DeleteRoleDefinition(ctx, "/subscriptions/"+other, id); d != nil || err != nil {
		t.Fatalf("delete from another subscription: %v %v", d, err)
	}

	// Assigned, it allows what it lists less its notActions.
	if _, _, err := a.CreateRoleAssignment(ctx, rgB, uuid.NewString(), RoleAssignmentProperties{RoleDefinitionID: RoleDefinitionID(sub, id), PrincipalID: bob}, ""); errdefs.CodeOf(err) != "RoleDefinitionNotAssignableAtScope" {
		t.Fatalf("assigned outside its assignable scopes: %v", err)
	}
	ra := assign(t, a, rgA, id, bob)
	for action, want := range map[string]bool{ActionContainerGroupsRestart: true, ActionContainerGroupsRead: true, ActionContainerGroupsWrite: false, ActionContainerGroupsDelete: false} {
		if got := a.Can(ctx, bob, action, cgA); got != want {
			t.Errorf("custom role: %s: %v, want %v", action, got, want)
		}
	}

	// An update takes effect at once; the name stays unique.
	restarter.Permissions[0].NotActions = append(restarter.Permissions[0].NotActions, "*/restart/action")
	if _, created, err := a.PutRoleDefinition(ctx, rgA, id, restarter, bob); err != nil || created {
		t.Fatalf("update: %v %v", created, err)
	}
	if a.Can(ctx, bob, ActionContainerGroupsRestart, cgA) {
		t.Error("the updated role still allows restart")
	}
	for _, name := range []string{"container RESTARTER", "Reader"} {
		dup := restarter
		dup.RoleName = name
		if _, _, err := a.PutRoleDefinition(ctx, subScope, uuid.NewString(), dup, ""); errdefs.CodeOf(err) != "RoleDefinitionWithSameNameExists" || !errdefs.Is(err, errdefs.ErrConflict) {
			t.Errorf("second role named %q: %v", name, err)
		}
	}

	// Renamed, its old name is free.
	renamed := restarter
	renamed.RoleName = "Container Operator"
	if _, _, err := a.PutRoleDefinition(ctx, subScope, id, renamed, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.PutRoleDefinition(ctx, subScope, uuid.NewString(), restarter, ""); err != nil {
		t.Fatalf("the old name after a rename: %v", err)
	}

	// Built-in roles cannot be changed; assigned roles cannot be deleted.
	if _, _, err := a.PutRoleDefinition(ctx, subScope, ReaderRoleID, restarter, ""); errdefs.CodeOf(err) != "BuiltInRoleCannotBeModified" {
		t.Errorf("put over Reader: %v", err)
	}
	if _, err := a.DeleteRoleDefinition(ctx, subScope, OwnerRoleID); errdefs.CodeOf(err) != "BuiltInRoleCannotBeModified" {
		t.Errorf("delete Owner: %v", err)
	}
	if _, err := a.DeleteRoleDefinition(ctx, subScope, id); errdefs.CodeOf(err) != "RoleDefinitionHasAssignments" {
		t.Fatalf("delete an assigned role: %v", err)
	}
	if _, err := a.DeleteRoleAssignment(ctx, rgA, ra.Name); err != nil {
		t.Fatal(err)
	}
	if d, err := a.DeleteRoleDefinition(ctx, subScope, id); err != nil || d == nil {
		t.Fatalf("delete: %v %v", d, err)
	}
	if d, err := a.DeleteRoleDefinition(ctx, subScope, id); err != nil || d != nil {
		t.Fatalf("delete again: %v %v, want nothing", d, err)
	}
}

func TestCustomRoleValidation(t *testing.T) {
	ctx := context.Background()
	a := newAuthorizer(t)
	ok := RoleDefinitionProperties{RoleName: "x", Permissions: []Permission{{Actions: []string{"*/read"}}}, AssignableScopes: []string{subScope}}
	mod := func(f func(*RoleDefinitionProperties)) RoleDefinitionProperties {
		p := ok
		p.Permissions = append([]Permission{}, ok.Permissions...)
		f(&p)
		return p
	}
	cases := []struct {
		name, scope, id string
		props           RoleDefinitionProperties
		code            string
	}{
		{"id", subScope, "abc", ok, "InvalidRoleDefinitionId"},
		{"tenant level", "/", uuid.NewString(), ok, "InvalidScope"},
		{"no name", subScope, uuid.NewString(), mod(func(p *RoleDefinitionProperties) { p.RoleName = " " }), "InvalidRoleDefinition"},
		{"built-in type", subScope, uuid.NewString(), mod(func(p *RoleDefinitionProperties) { p.Type = BuiltInRole }), "InvalidRoleDefinition"},
		{"no permissions", subScope, uuid.NewString(), mod(func(p *RoleDefinitionProperties) { p.Permissions = nil }), "InvalidRoleDefinition"},
		{"only notActions", subScope, uuid.NewString(), mod(func(p *RoleDefinitionProperties) { p.Permissions = []Permission{{NotActions: []string{"*"}}} }), "InvalidRoleDefinition"},
		{"spaced action", subScope, uuid.NewString(), mod(func(p *RoleDefinitionProperties) { p.Permissions = []Permission{{Actions: []string{"a b"}}} }), "InvalidRoleDefinition"},
		{"no scopes", subScope, uuid.NewString(), mod(func(p *RoleDefinitionProperties) { p.AssignableScopes = nil }), "InvalidRoleDefinition"},
		{"root scope", subScope, uuid.NewString(), mod(func(p *RoleDefinitionProperties) { p.AssignableScopes = []string{"/"} }), "InvalidRoleDefinition"},
		{"bad scope", subScope, uuid.NewString(), mod(func(p *RoleDefinitionProperties) { p.AssignableScopes = []string{"/foo"} }), "InvalidScope"},
		{"another subscription", subScope, uuid.NewString(), mod(func(p *RoleDefinitionProperties) { p.AssignableScopes = []string{"/subscriptions/" + other} }), "InvalidRoleDefinition"},
	}
	for _, c := range cases {
		if _, _, err := a.PutRoleDefinition(ctx, c.scope, c.id, c.props, ""); errdefs.CodeOf(err) != c.code || !errdefs.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want 400 %s", c.name, err, c.code)
		}
	}
}

func TestListsAndFilters(t *testing.T) {
	ctx := context.Background()
	a := newAuthorizer(t)
	atSub := assign(t, a, subScope, ReaderRoleID, alice)
	atRG := assign(t, a, rgA, ContributorRoleID, bob)
	atCG := assign(t, a, cgA, ContributorRoleID, alice)
	assign(t, a, rgB, ReaderRoleID, bob)

	names := func(ras []RoleAssignment) []string {
		var out []string
		for _, ra := range ras {
			out = append(out, ra.Name)
		}
		return out
	}
	for _, c := range []struct {
		scope, filter string
		want          []string
	}{
		{rgA, "atScope()", []string{atSub.Name, atRG.Name}},
		{rgA, "", []string{atSub.Name, atRG.Name, atCG.Name}},
		{rgA, "principalId eq '" + alice + "'", []string{atSub.Name, atCG.Name}},
		{rgA, "atScope() and assignedTo('" + strings.ToUpper(alice) + "')", []string{atSub.Name}},
		{"/", "principalId eq '" + alice + "'", []string{atSub.Name, atCG.Name}},
	} {
		f, err := ParseRoleAssignmentFilter(c.filter)
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.ListRoleAssignments(ctx, c.scope, f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(names(got), ",") != strings.Join(c.want, ",") {
			t.Errorf("at %s filter %q: %v, want %v", c.scope, c.filter, names(got), c.want)
		}
	}

	// The scopes a principal may list container groups in.
	scopes, err := a.AllowedScopes(ctx, bob, ActionContainerGroupsRead, subScope)
	if err != nil || strings.Join(scopes, ",") != rgA+","+rgB {
		t.Errorf("bob's readable scopes: %v %v", scopes, err)
	}
	if !InScopes(scopes, cgA) || InScopes(scopes, subScope+"/resourceGroups/rg-c/providers/x/y/z") {
		t.Error("InScopes")
	}
	if scopes, _ := a.AllowedScopes(ctx, bob, ActionContainerGroupsDelete, subScope); strings.Join(scopes, ",") != rgA {
		t.Errorf("bob's deletable scopes: %v", scopes)
	}
	if scopes, _ := a.AllowedScopes(ctx, alice, ActionContainerGroupsRead, rgA); strings.Join(scopes, ",") != rgA {
		t.Errorf("alice's readable scopes in rg-a (a subscription reader): %v", scopes)
	}
	if scopes, _ := a.AllowedScopes(ctx, alice, ActionContainerGroupsWrite, subScope); strings.Join(scopes, ",") != cgA {
		t.Errorf("alice's writable scopes: %v", scopes)
	}

	// Subscriptions: where a principal has a role at or under them.
	assign(t, a, "/subscriptions/"+other+"/resourceGroups/x", ReaderRoleID, bob)
	all, subs, err := a.Subscriptions(ctx, bob)
	if err != nil || all || strings.Join(subs, ",") != sub+","+other {
		t.Errorf("bob's subscriptions: %v %v %v", all, subs, err)
	}
	if in, _ := a.InSubscription(ctx, alice, strings.ToUpper(other)); in {
		t.Error("alice is in the other subscription")
	}
	if in, _ := a.InSubscription(ctx, bob, strings.ToUpper(other)); !in {
		t.Error("bob is not in the other subscription")
	}
}

// TestDeleteAssignmentsUnder: what the server does when a resource group
// goes: its assignments and its groups' go, its neighbours' stay.
func TestDeleteAssignmentsUnder(t *testing.T) {
	ctx := context.Background()
	a := newAuthorizer(t)
	assign(t, a, rgA, ContributorRoleID, alice)
	assign(t, a, cgA, ReaderRoleID, bob)
	kept := assign(t, a, subScope+"/resourceGroups/rg-a2", ReaderRoleID, bob)
	atSub := assign(t, a, subScope, ReaderRoleID, alice)
	n, err := a.DeleteRoleAssignmentsUnder(ctx, strings.ToUpper(rgA))
	if err != nil || n != 2 {
		t.Fatalf("deleted %d, %v; want 2", n, err)
	}
	list, _ := a.ListRoleAssignments(ctx, "/", RoleAssignmentFilter{})
	if len(list) != 2 || list[0].Name != atSub.Name || list[1].Name != kept.Name {
		t.Fatalf("left %+v", list)
	}
	if a.Can(ctx, alice, ActionContainerGroupsWrite, cgA) {
		t.Fatal("the deleted resource group's Contributor still works")
	}
	// The pair may be assigned again (the uniqueness records went too).
	assign(t, a, rgA, ContributorRoleID, alice)
}

func TestFilterGrammar(t *testing.T) {
	for _, c := range []struct {
		in   string
		want RoleDefinitionFilter
	}{
		{"roleName eq 'contributor'", RoleDefinitionFilter{RoleName: "contributor"}},
		{"RoleName  eq  'It''s mine' and atScopeAndBelow()", RoleDefinitionFilter{RoleName: "It's mine", AtScopeAndBelow: true}},
		{"roleName eq 'a and b' and type eq 'CustomRole'", RoleDefinitionFilter{RoleName: "a and b", Type: "CustomRole"}},
		{"", RoleDefinitionFilter{}},
	} {
		got, err := ParseRoleDefinitionFilter(c.in)
		if err != nil || got != c.want {
			t.Errorf("%q: %+v %v, want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"roleName eq contributor", "roleName ne 'x'", "atScope()", "roleName eq 'x' or type eq 'y'", "roleName eq 'x", "(", "type eq 'x' and"} {
		if _, err := ParseRoleDefinitionFilter(bad); errdefs.CodeOf(err) != "InvalidFilter" {
			t.Errorf("%q: %v, want InvalidFilter", bad, err)
		}
	}
	if _, err := ParseRoleAssignmentFilter("roleName eq 'x'"); errdefs.CodeOf(err) != "InvalidFilter" {
		t.Errorf("a role definition filter on assignments: %v", err)
	}
}

// TestWritesAreSeenAtOnceHereAndWithinTheTTLElsewhere: a write through one
// Authorizer takes effect on it at once; another Authorizer on the same
// store (another server of a cluster) sees it within its CacheTTL.
func TestWritesAreSeenAtOnceHereAndWithinTheTTLElsewhere(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	here := New(Options{Store: st, CacheTTL: time.Hour})
	const ttl = 100 * time.Millisecond
	there := New(Options{Store: st, CacheTTL: ttl})
	if there.Can(ctx, alice, ActionContainerGroupsRead, cgA) || here.Can(ctx, alice, ActionContainerGroupsRead, cgA) {
		t.Fatal("allowed before any assignment")
	}
	ra := assign(t, here, rgA, ReaderRoleID, alice)
	if !here.Can(ctx, alice, ActionContainerGroupsRead, cgA) {
		t.Fatal("a write is not seen at once by the Authorizer that made it")
	}
	waitFor := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(ttl + 2*time.Second)
		for there.Can(ctx, alice, ActionContainerGroupsRead, cgA) != want {
			if time.Now().After(deadline) {
				t.Fatalf("the other Authorizer does not see the change (want %v) after its TTL", want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(true)
	if _, err := here.DeleteRoleAssignment(ctx, rgA, ra.Name); err != nil {
		t.Fatal(err)
	}
	if here.Can(ctx, alice, ActionContainerGroupsRead, cgA) {
		t.Fatal("a revoked role still works on the Authorizer that revoked it")
	}
	start := time.Now()
	waitFor(false)
	if d := time.Since(start); d > ttl+time.Second {
		t.Errorf("revocation took %v elsewhere, TTL %v", d, ttl)
	}
}

func TestCleanScope(t *testing.T) {
	for in, want := range map[string]string{
		"/": "/", subScope + "/": subScope, rgA: rgA, cgA: cgA,
		cgA + "/containers/app": cgA + "/containers/app",
	} {
		if got, err := CleanScope(in); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "subscriptions/x", "/subscriptions", "/subscriptions//resourceGroups/x", "/tenants/x",
		rgA + "/providers", rgA + "/providers/Microsoft.ContainerInstance/containerGroups", subScope + "/resourceGroups/a|b"} {
		if _, err := CleanScope(bad); errdefs.CodeOf(err) != "InvalidScope" {
			t.Errorf("%q: %v, want InvalidScope", bad, err)
		}
	}
}

func TestRouteTable(t *testing.T) {
	for _, c := range []struct{ method, pattern, action string }{
		{"PUT", "/subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.containerinstance/containergroups/{name}", ActionContainerGroupsWrite},
		{"post", "/subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.containerinstance/containergroups/{name}/containers/{container}/exec", ActionContainerExec},
		{"GET", "/subscriptions/{sub}/providers/microsoft.containerinstance/locations/{loc}/operations/{op}", ActionLocationOperationsRead},
		{"PUT", "/subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.authorization/roleassignments/{roleassignmentname}", ActionRoleAssignmentsWrite},
		{"GET", "/providers/microsoft.authorization/roledefinitions", ActionRoleDefinitionsRead},
	} {
		r, ok := RouteFor(c.method, c.pattern)
		if !ok || r.Action != c.action {
			t.Errorf("%s %s: %+v %v, want %s", c.method, c.pattern, r, ok, c.action)
		}
	}
	if _, ok := RouteFor("PUT", "/providers/microsoft.authorization/roledefinitions/{roledefinitionid}"); ok {
		t.Error("a tenant-level role definition PUT")
	}
	seen := map[string]bool{}
	for _, r := range Routes {
		k := routeKey(r.Method, r.Pattern)
		if seen[k] {
			t.Errorf("%s twice", k)
		}
		seen[k] = true
	}
}

// BenchmarkAuthorize: one check against a store of 1000 assignments (100
// principals with 10 each at subscriptions, resource groups and groups),
// for a principal whose allowing role is its last.
func BenchmarkAuthorize(b *testing.B) {
	ctx := context.Background()
	a := New(Options{Store: openStore(b), CacheTTL: time.Hour})
	principals := make([]string, 100)
	for i := range principals {
		principals[i] = uuid.NewString()
		for j := range 10 {
			scope := fmt.Sprintf("/subscriptions/%s/resourceGroups/rg-%d-%d", sub, i, j)
			role := ReaderRoleID
			if j == 9 {
				role, scope = ContributorRoleID, scope+"/providers/Microsoft.ContainerInstance/containerGroups/web"
			}
			assign(b, a, scope, role, principals[i])
		}
	}
	p := principals[42]
	target := fmt.Sprintf("/subscriptions/%s/resourceGroups/RG-42-9/providers/Microsoft.ContainerInstance/containerGroups/web/containers/app", sub)
	if err := a.Authorize(ctx, p, ActionContainerExec, target); err != nil {
		b.Fatal(err)
	}
	b.Run("allowed", func(b *testing.B) {
		for b.Loop() {
			if err := a.Authorize(ctx, p, ActionContainerExec, target); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("denied", func(b *testing.B) {
		other := strings.Replace(target, "RG-42-9", "rg-43-9", 1)
		for b.Loop() {
			if a.Can(ctx, p, ActionContainerExec, other) {
				b.Fatal("allowed")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !a.Can(ctx, p, ActionContainerExec, target) {
					b.Fatal("denied")
				}
			}
		})
	})
}
