package az

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// helloImage pushes the test's stand-in for microsoft/aci-helloworld to a
// registry of the test: busybox that prints a line and serves a page on
// port, and returns its reference.
func helloImage(t *testing.T, port int) string {
	t.Helper()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	p := strconv.Itoa(port)
	return testenv.Push(t, reg, "aci-helloworld:latest", testenv.BusyboxImage(t, testenv.ImageOptions{
		Cmd:          []string{"sh", "-c", "echo listening on port " + p + "; exec httpd -f -v -p " + p + " -h /www"},
		ExposedPorts: []string{p + "/tcp"},
		Layers:       []testenv.LayerSpec{{Files: map[string]string{"/www/index.html": "<h1>Welcome to Skiff</h1>\n"}}},
	}))
}

// publishPort is the seed's port 80 when it is free on 127.0.0.1 (the
// server's public address), else a free port: the one part of the quick
// start that the host may not allow as written.
func publishPort(t *testing.T) int {
	t.Helper()
	if l, err := net.Listen("tcp4", "127.0.0.1:80"); err == nil {
		l.Close()
		return 80
	}
	_, port, _ := net.SplitHostPort(testenv.FreeLoopbackAddr(t, "127.0.0.1"))
	n, _ := strconv.Atoi(port)
	t.Logf("port 80 is in use on 127.0.0.1: the container publishes %d", n)
	return n
}

// The bootstrap principal of DATA-DIR/admin-sp.json logs in with az's own
// grammar, and az account show shows the server's subscription in its
// tenant.
func TestLoginAsTheBootstrapPrincipal(t *testing.T) {
	s := startServer(t)
	admin := adminCredentials(t, s)
	az := newCLI(t, s)
	az.login(admin)
	var account struct {
		ID, TenantID, State string
		User                struct{ Name, Type string }
		EnvironmentName     string
	}
	az.mustJSON(&account, "account", "show")
	if account.ID != s.Subscription || account.TenantID != admin.Tenant || account.State != "Enabled" ||
		account.EnvironmentName != "skiff" || account.User.Name != admin.AppID || account.User.Type != "servicePrincipal" {
		t.Errorf("az account show: %+v; want subscription %s of tenant %s, Enabled, cloud skiff, servicePrincipal %s",
			account, s.Subscription, admin.Tenant, admin.AppID)
	}
}

// Seed 000's quick start, as the bootstrap principal: a resource group, a
// container with a public port, its table, its logs, the list, the delete.
func TestQuickStart(t *testing.T) {
	s := startServer(t)
	port := publishPort(t)
	image := helloImage(t, port)
	az := newCLI(t, s)
	az.login(adminCredentials(t, s))

	az.must("group", "create", "--name", "myResourceGroup", "--location", "local")
	az.must("container", "create", "--resource-group", "myResourceGroup", "--name", "mycontainer", "--image", image,
		"--dns-name-label", "aci-demo", "--ip-address", "public", "--ports", strconv.Itoa(port))
	if body := testenv.WaitHTTP(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/", 30*time.Second); !strings.Contains(body, "Welcome to Skiff") {
		t.Errorf("the container's published port served %q", body)
	}

	table := az.must("container", "show", "--resource-group", "myResourceGroup", "--name", "mycontainer", "-o", "table")
	for _, want := range []string{"Name", "ResourceGroup", "Status", "mycontainer", "myResourceGroup", "Running", image} {
		if !strings.Contains(table, want) {
			t.Errorf("az container show -o table lacks %q:\n%s", want, table)
		}
	}
	var logs string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !strings.Contains(logs, "listening on port"); {
		logs = az.must("container", "logs", "--resource-group", "myResourceGroup", "--name", "mycontainer")
	}
	if !strings.Contains(logs, "listening on port "+strconv.Itoa(port)) {
		t.Errorf("az container logs = %q", logs)
	}
	list := az.must("container", "list", "-o", "table")
	for _, want := range []string{"mycontainer", "myResourceGroup", "Succeeded", image} {
		if !strings.Contains(list, want) {
			t.Errorf("az container list -o table lacks %q:\n%s", want, list)
		}
	}
	az.must("container", "delete", "--resource-group", "myResourceGroup", "--name", "mycontainer", "--yes")
	az.fails("ResourceNotFound", "container", "show", "--resource-group", "myResourceGroup", "--name", "mycontainer")
}

// principal is the part of a Graph servicePrincipal the tests read.
type principal struct {
	ID          string `json:"id"`
	AppID       string `json:"appId"`
	DisplayName string `json:"displayName"`
}

// createForRBAC runs seed 001's command as az's logged-in user and checks
// what it prints: the new principal's appId, password and tenant.
func createForRBAC(t *testing.T, az *cli, name, scope string) credentials {
	t.Helper()
	var sp credentials
	az.mustJSON(&sp, "ad", "sp", "create-for-rbac", "-n", name, "--role", "contributor", "--scopes", scope)
	if sp.AppID == "" || sp.Password == "" || sp.Tenant == "" || sp.DisplayName != name {
		t.Fatalf("create-for-rbac printed %+v; want appId, password and tenant of %s", sp, name)
	}
	return sp
}

// groupID creates a resource group as az's logged-in user and returns its
// id.
func groupID(t *testing.T, az *cli, name string) string {
	t.Helper()
	var rg struct{ ID string }
	az.mustJSON(&rg, "group", "create", "--name", name, "--location", "local")
	if !strings.HasSuffix(rg.ID, "/resourceGroups/"+name) {
		t.Fatalf("az group create %s printed id %q", name, rg.ID)
	}
	return rg.ID
}

// Seed 001's create-for-rbac gives a colleague a Contributor on one
// resource group: logged in as that principal, az creates containers
// there, and gets AuthorizationFailed in another resource group and for a
// new one.
func TestCreateForRBACScopesAPrincipalToOneResourceGroup(t *testing.T) {
	s := startServer(t)
	image := helloImage(t, 18580)
	admin := newCLI(t, s)
	admin.login(adminCredentials(t, s))
	team := groupID(t, admin, "teamRG")
	groupID(t, admin, "otherRG")
	sp := createForRBAC(t, admin, "aci-connector", team)

	colleague := newCLI(t, s)
	colleague.login(sp)
	var account struct{ ID, TenantID string }
	if colleague.mustJSON(&account, "account", "show"); account.ID != s.Subscription || account.TenantID != sp.Tenant {
		t.Errorf("the colleague's az account show: %+v, want subscription %s of tenant %s", account, s.Subscription, sp.Tenant)
	}
	var created struct {
		ProvisioningState string
		ResourceGroup     string
	}
	colleague.mustJSON(&created, "container", "create", "--resource-group", "teamRG", "--name", "mine", "--image", image)
	if created.ProvisioningState != "Succeeded" || created.ResourceGroup != "teamRG" {
		t.Errorf("the colleague's container in teamRG: %+v", created)
	}
	colleague.fails("AuthorizationFailed", "container", "create", "--resource-group", "otherRG", "--name", "theirs", "--image", image)
	colleague.fails("AuthorizationFailed", "group", "create", "--name", "newRG", "--location", "local")
	if g, err := s.Client.GetContainerGroup(t.Context(), "otherRG", "theirs"); err == nil {
		t.Errorf("the refused create made a group in otherRG: %+v", g)
	}
}

// The principal's life cycle with az ad and az role: listed by name, its
// role assignment listed, its secret reset (the new one logs in, the old
// one no longer does), and deleted (its token stops working).
func TestServicePrincipalLifecycle(t *testing.T) {
	s := startServer(t)
	admin := newCLI(t, s)
	admin.login(adminCredentials(t, s))
	team := groupID(t, admin, "teamRG")
	sp := createForRBAC(t, admin, "rotating-sp", team)

	var found []principal
	admin.mustJSON(&found, "ad", "sp", "list", "--display-name", "rotating-sp")
	if len(found) != 1 || found[0].AppID != sp.AppID || found[0].DisplayName != "rotating-sp" {
		t.Errorf("az ad sp list --display-name rotating-sp: %+v, want the one principal %s", found, sp.AppID)
	}
	// Without --all (or a scope), az lists the assignments at the
	// subscription's scope only, as it does against Azure.
	type assignment struct{ PrincipalID, RoleDefinitionName, Scope string }
	var atSubscription, all []assignment
	if admin.mustJSON(&atSubscription, "role", "assignment", "list", "--assignee", sp.AppID); len(atSubscription) != 0 {
		t.Errorf("az role assignment list --assignee: %+v, want none at the subscription's scope", atSubscription)
	}
	admin.mustJSON(&all, "role", "assignment", "list", "--assignee", sp.AppID, "--all")
	if len(all) != 1 || all[0].RoleDefinitionName != "Contributor" || !strings.EqualFold(all[0].Scope, team) ||
		len(found) == 1 && all[0].PrincipalID != found[0].ID {
		t.Errorf("az role assignment list --assignee --all: %+v, want Contributor at %s", all, team)
	}

	// az ad sp credential reset replaces the service principal's own
	// secrets; create-for-rbac's is the application's, and stays valid, as
	// in Azure (MicrosoftDocs/azure-docs-cli#2076). az ad app credential
	// reset replaces the application's.
	var reset credentials
	admin.mustJSON(&reset, "ad", "sp", "credential", "reset", "--id", sp.AppID)
	if reset.AppID != sp.AppID || reset.Password == "" || reset.Password == sp.Password || reset.Tenant != sp.Tenant {
		t.Fatalf("az ad sp credential reset printed %+v", reset)
	}
	colleague := newCLI(t, s)
	colleague.login(reset)
	colleague.must("container", "list", "--resource-group", "teamRG")
	stale := newCLI(t, s)
	stale.login(sp)
	var appReset credentials
	admin.mustJSON(&appReset, "ad", "app", "credential", "reset", "--id", sp.AppID)
	if appReset.AppID != sp.AppID || appReset.Password == "" || appReset.Password == sp.Password {
		t.Fatalf("az ad app credential reset printed %+v", appReset)
	}
	stale.fails("AADSTS7000215", "login", "--service-principal", "-u", sp.AppID, "-p", sp.Password, "--tenant", sp.Tenant)
	stale.login(appReset)

	admin.must("ad", "sp", "delete", "--id", sp.AppID)
	colleague.fails("InvalidAuthenticationToken", "container", "list", "--resource-group", "teamRG")
}
