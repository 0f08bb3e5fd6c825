package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// spCredentials is DATA-DIR/admin-sp.json, az's create-for-rbac shape.
type spCredentials struct{ AppID, Password, Tenant string }

// adminSP reads the bootstrap Owner's credentials, checking the file is
// the owner's only.
func adminSP(t *testing.T, s *server) spCredentials {
	t.Helper()
	path := filepath.Join(s.DataDir, "admin-sp.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	var c spCredentials
	if err := json.Unmarshal(readBytes(t, path), &c); err != nil || c.AppID == "" || c.Password == "" || c.Tenant == "" {
		t.Fatalf("%s: %v %+v", path, err, c)
	}
	return c
}

// httpsTo is a transport trusting the server's CA.
func httpsTo(t *testing.T, s *server) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool(t, s.CAFile)}}, Timeout: time.Minute}
}

// sdkCredential is azidentity's ClientSecretCredential for c, its
// authority host pointed at Skiff.
func sdkCredential(t *testing.T, s *server, c spCredentials) azcore.TokenCredential {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(c.Tenant, c.AppID, c.Password, &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: s.TLSEndpoint + "/"}, Transport: httpsTo(t, s)},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// sdkClientOptions point an ARM client at Skiff over HTTPS, with Skiff as
// the token audience.
func sdkClientOptions(t *testing.T, s *server) *arm.ClientOptions {
	return &arm.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Cloud: cloud.Configuration{
				ActiveDirectoryAuthorityHost: s.TLSEndpoint + "/",
				Services:                     map[cloud.ServiceName]cloud.ServiceConfiguration{cloud.ResourceManager: {Endpoint: s.TLSEndpoint, Audience: s.TLSEndpoint + "/"}},
			},
			Transport: httpsTo(t, s),
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
		DisableRPRegistration: true,
	}
}

// The Azure SDK for Go, signed in with azidentity.NewClientSecretCredential
// as the bootstrap Owner, does full CRUD; as a Contributor of one resource
// group (a principal the Owner made through Graph and a role assignment,
// the calls of az ad sp create-for-rbac) it works there and is refused
// elsewhere with AuthorizationFailed. No secret is in the server's log.
func TestAzureSDKWithServicePrincipals(t *testing.T) {
	s := newServer(t, testenv.SkiffServerOptions{TLS: true})
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	for _, rg := range []string{"team", "other"} {
		if r := s.send("PUT", "/subscriptions/"+s.Subscription+"/resourcegroups/"+rg, `{"location":"local"}`); r.Status != 201 {
			t.Fatalf("rg %s: %d %s", rg, r.Status, r)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	owner := adminSP(t, s)

	groups, err := armcontainerinstance.NewContainerGroupsClient(s.Subscription, sdkCredential(t, s, owner), sdkClientOptions(t, s))
	if err != nil {
		t.Fatal(err)
	}
	cg := func(echo string) armcontainerinstance.ContainerGroup {
		return armcontainerinstance.ContainerGroup{Location: to.Ptr("local"), Properties: &armcontainerinstance.ContainerGroupPropertiesProperties{
			OSType: to.Ptr(armcontainerinstance.OperatingSystemTypesLinux),
			Containers: []*armcontainerinstance.Container{{Name: to.Ptr("app"), Properties: &armcontainerinstance.ContainerProperties{
				Image: to.Ptr(image), Command: []*string{to.Ptr("sh"), to.Ptr("-c"), to.Ptr("echo " + echo + "; sleep 3600")},
				Resources: &armcontainerinstance.ResourceRequirements{Requests: &armcontainerinstance.ResourceRequests{CPU: to.Ptr(0.5), MemoryInGB: to.Ptr(0.5)}},
			}}},
		}}
	}
	poller, err := groups.BeginCreateOrUpdate(ctx, "other", "owned", cg("owner"), nil)
	if err != nil {
		t.Fatalf("the Owner's create: %v", err)
	}
	if _, err := poller.PollUntilDone(ctx, &runtimePollOpts); err != nil {
		t.Fatalf("the Owner's create: %v", err)
	}
	if g, err := groups.Get(ctx, "other", "owned", nil); err != nil || *g.Properties.InstanceView.State != "Running" {
		t.Fatalf("the Owner's get: %v", err)
	}
	if _, err := groups.Update(ctx, "other", "owned", armcontainerinstance.Resource{Tags: map[string]*string{"by": to.Ptr("owner")}}, nil); err != nil {
		t.Fatalf("the Owner's update: %v", err)
	}

	// The Owner makes a principal with Contributor on "team", as az ad sp
	// create-for-rbac does (az-cli.md: the Graph calls, then the role
	// assignment PUT).
	hc, tok := httpsTo(t, s), ownerToken(t, s, owner)
	call := func(method, path string, body any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, method, s.TLSEndpoint+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
		}
		var out map[string]any
		_ = json.Unmarshal(data, &out)
		return out
	}
	app := call("POST", "/v1.0/applications", map[string]any{"displayName": "team-bot", "keyCredentials": []any{}})
	pw := call("POST", "/v1.0/applications/"+app["id"].(string)+"/addPassword", map[string]any{"passwordCredential": map[string]any{"displayName": "rbac"}})
	sp := call("POST", "/v1.0/servicePrincipals", map[string]any{"appId": app["appId"], "accountEnabled": true})
	teamScope := "/subscriptions/" + s.Subscription + "/resourceGroups/team"
	call("PUT", teamScope+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString()+"?api-version=2020-04-01-preview", map[string]any{
		"properties": map[string]any{"roleDefinitionId": "/subscriptions/" + s.Subscription + "/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c",
			"principalId": sp["id"], "principalType": "ServicePrincipal"}})
	bot := spCredentials{AppID: app["appId"].(string), Password: pw["secretText"].(string), Tenant: owner.Tenant}

	botGroups, err := armcontainerinstance.NewContainerGroupsClient(s.Subscription, sdkCredential(t, s, bot), sdkClientOptions(t, s))
	if err != nil {
		t.Fatal(err)
	}
	poller, err = botGroups.BeginCreateOrUpdate(ctx, "team", "web", cg("bot"), nil)
	if err != nil {
		t.Fatalf("the Contributor's create in its resource group: %v", err)
	}
	if _, err := poller.PollUntilDone(ctx, &runtimePollOpts); err != nil {
		t.Fatalf("the Contributor's create in its resource group: %v", err)
	}
	pager := botGroups.NewListPager(nil)
	page, err := pager.NextPage(ctx)
	if err != nil || len(page.Value) != 1 || *page.Value[0].Name != "web" {
		t.Errorf("the Contributor lists the subscription's groups: %v, %d (want its own only)", err, len(page.Value))
	}
	for what, err := range map[string]error{
		"get in another resource group":    second(botGroups.Get(ctx, "other", "owned", nil)),
		"create in another resource group": second(botGroups.BeginCreateOrUpdate(ctx, "other", "mine", cg("no"), nil)),
		"delete in another resource group": second(botGroups.BeginDelete(ctx, "other", "owned", nil)),
	} {
		if err == nil || !strings.Contains(err.Error(), "AuthorizationFailed") || !strings.Contains(err.Error(), "403") {
			t.Errorf("the Contributor's %s: %v, want 403 AuthorizationFailed", what, err)
		}
	}

	// The Owner deletes both; the bot's principal goes, and its token
	// with it.
	for _, g := range [][2]string{{"other", "owned"}, {"team", "web"}} {
		dp, err := groups.BeginDelete(ctx, g[0], g[1], nil)
		if err != nil {
			t.Fatalf("delete %s: %v", g[1], err)
		}
		if _, err := dp.PollUntilDone(ctx, &runtimePollOpts); err != nil {
			t.Fatalf("delete %s: %v", g[1], err)
		}
	}
	call("DELETE", "/v1.0/applications/"+app["id"].(string), nil)
	if _, err := botGroups.Get(ctx, "team", "web", nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a deleted principal's token: %v, want 401", err)
	}

	log := s.Log()
	for _, secret := range []string{owner.Password, bot.Password, tok} {
		if strings.Contains(log, secret) {
			t.Errorf("the server's log holds a secret")
		}
	}
	if !strings.Contains(log, `"component":"audit"`) || !strings.Contains(log, "Microsoft.ContainerInstance/containerGroups/write") {
		t.Errorf("the server's log has no audit line of the creates")
	}
}

// ownerToken gets a token for c from the token endpoint, as az does.
func ownerToken(t *testing.T, s *server, c spCredentials) string {
	t.Helper()
	tok, err := sdkCredential(t, s, c).GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{s.TLSEndpoint + "/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

func second[T any](_ T, err error) error { return err }
