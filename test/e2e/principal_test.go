package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/client/azcred"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// principalCLI runs the skiff CLI as a user away from the server does:
// the https endpoint, the server's CA, a config dir of its own and a data
// dir without the admin token, so that only the stored login signs it in.
type principalCLI struct {
	s         *server
	configDir string
	noData    string
	// env is added to the environment.
	env []string
}

func newPrincipalCLI(t *testing.T, s *server) *principalCLI {
	return &principalCLI{s: s, configDir: t.TempDir(), noData: t.TempDir()}
}

func (p *principalCLI) run(args ...string) (string, string, int) {
	p.s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, skiffBin, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SKIFF_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "SKIFF_ENDPOINT="+p.s.TLSEndpoint, "SKIFF_CA_FILE="+p.s.CAFile,
		"SKIFF_CONFIG_DIR="+p.configDir, "SKIFF_DATA_DIR="+p.noData)
	cmd.Env = append(cmd.Env, p.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		p.s.t.Fatalf("skiff %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func (p *principalCLI) must(args ...string) string {
	p.s.t.Helper()
	out, errOut, code := p.run(args...)
	if code != 0 {
		p.s.t.Fatalf("skiff %s: exit %d\nstdout: %s\nstderr: %s\nserver log: %s", strings.Join(args, " "), code, out, errOut, p.s.LogTail(20))
	}
	return out
}

// The CLI as the seeds use az: skiff login --service-principal with the
// bootstrap Owner (az's login JSON, the secret stored 0600 and never
// printed), then group and container commands; skiff ad sp
// create-for-rbac of a Contributor on one resource group, logged in as it:
// containers in its group, the auth exit code and AuthorizationFailed
// elsewhere; role assignment list and delete; ad sp list, credential
// reset and delete; logout; cloud-config for az cloud register.
func TestCLIServicePrincipalLogin(t *testing.T) {
	s := newServer(t, testenv.SkiffServerOptions{TLS: true})
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	owner := adminSP(t, s)
	cli := newPrincipalCLI(t, s)

	// Without a login (and no admin token) the CLI is refused.
	if _, errOut, code := cli.run("group", "list"); code != 5 {
		t.Errorf("group list before login: exit %d, want 5 (auth): %s", code, errOut)
	}
	// A wrong secret: one line, the auth exit code, nothing stored.
	if _, errOut, code := cli.run("login", "--service-principal", "-u", owner.AppID, "-p", "wrong", "--tenant", owner.Tenant); code != 5 ||
		strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "invalid_client") {
		t.Errorf("login with a wrong secret: exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(cli.configDir, "login.json")); err == nil {
		t.Error("a failed login was stored")
	}

	out := cli.must("login", "--service-principal", "-u", owner.AppID, "-p", owner.Password, "--tenant", owner.Tenant)
	var subs []struct {
		ID, TenantID, State string
		IsDefault           bool
		User                struct{ Name, Type string }
	}
	if err := json.Unmarshal([]byte(out), &subs); err != nil || len(subs) == 0 {
		t.Fatalf("login printed %v: %s", err, out)
	}
	if subs[0].ID != s.Subscription || subs[0].TenantID != owner.Tenant || subs[0].State != "Enabled" || !subs[0].IsDefault ||
		subs[0].User.Name != owner.AppID || subs[0].User.Type != "servicePrincipal" {
		t.Errorf("login printed %+v", subs)
	}
	if strings.Contains(out, owner.Password) {
		t.Error("login printed the secret")
	}
	if fi, err := os.Stat(filepath.Join(cli.configDir, "login.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the stored login: %v %v", err, fi)
	}

	cli.must("group", "create", "-n", "team", "-l", "local")
	cli.must("group", "create", "-n", "other", "-l", "local")
	cli.must("container", "create", "-g", "other", "-n", "byowner", "--image", image, "--command-line", "sleep 3600")
	if out := cli.must("container", "list", "-g", "other", "--query", "[].name", "-o", "tsv"); strings.TrimSpace(out) != "byowner" {
		t.Errorf("container list as the Owner: %q", out)
	}

	// A Contributor of "team", as seed 001 makes it.
	rgID := "/subscriptions/" + s.Subscription + "/resourceGroups/team"
	out = cli.must("ad", "sp", "create-for-rbac", "-n", "teamsp", "--role", "contributor", "--scopes", rgID)
	var sp struct{ AppID, DisplayName, Password, Tenant string }
	if err := json.Unmarshal([]byte(out), &sp); err != nil || sp.AppID == "" || sp.Password == "" || sp.DisplayName != "teamsp" || sp.Tenant != owner.Tenant {
		t.Fatalf("create-for-rbac printed %v: %s", err, out)
	}
	if out := cli.must("ad", "sp", "list", "--display-name", "teamsp", "--query", "[].appId", "-o", "tsv"); strings.TrimSpace(out) != sp.AppID {
		t.Errorf("ad sp list --display-name: %q", out)
	}
	out = cli.must("role", "assignment", "list", "--assignee", sp.AppID, "--scope", rgID)
	var assigns []struct {
		ID         string
		Properties struct{ RoleDefinitionID, Scope string }
	}
	if err := json.Unmarshal([]byte(out), &assigns); err != nil || len(assigns) != 1 || !strings.EqualFold(assigns[0].Properties.Scope, rgID) {
		t.Fatalf("role assignment list: %v %s", err, out)
	}
	if out := cli.must("role", "definition", "list", "--name", "Contributor", "--query", "[].id", "-o", "tsv"); !strings.EqualFold(strings.TrimSpace(out), assigns[0].Properties.RoleDefinitionID) &&
		!strings.HasSuffix(strings.ToLower(assigns[0].Properties.RoleDefinitionID), strings.ToLower(lastPathSegment(strings.TrimSpace(out)))) {
		t.Errorf("role definition list --name Contributor: %q, the assignment's role %s", out, assigns[0].Properties.RoleDefinitionID)
	}

	// Logged in as the Contributor.
	team := newPrincipalCLI(t, s)
	team.must("login", "--service-principal", "-u", sp.AppID, "-p", sp.Password, "--tenant", sp.Tenant)
	team.must("container", "create", "-g", "team", "-n", "byteam", "--image", image, "--command-line", "sleep 3600")
	if out := team.must("container", "list", "-g", "team", "--query", "[].name", "-o", "tsv"); strings.TrimSpace(out) != "byteam" {
		t.Errorf("container list as the Contributor: %q", out)
	}
	for _, args := range [][]string{
		{"container", "create", "-g", "other", "-n", "intruder", "--image", image},
		{"group", "create", "-n", "mine", "-l", "local"},
	} {
		_, errOut, code := team.run(args...)
		if code != 5 || !strings.Contains(errOut, "AuthorizationFailed") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("skiff %s as the Contributor: exit %d, stderr %q; want 5 and one AuthorizationFailed line", strings.Join(args, " "), code, errOut)
		}
	}
	// SKIFF_TOKEN wins over the stored login: the admin token may create
	// a resource group.
	team.env = []string{"SKIFF_TOKEN=" + s.Token}
	team.must("group", "create", "-n", "bytoken", "-l", "local")
	team.env = nil

	// A new secret: the old one stops working for a new login.
	out = cli.must("ad", "sp", "credential", "reset", "--id", sp.AppID)
	var reset struct{ AppID, Password string }
	if err := json.Unmarshal([]byte(out), &reset); err != nil || reset.AppID != sp.AppID || reset.Password == "" || reset.Password == sp.Password {
		t.Fatalf("credential reset printed %v: %s", err, out)
	}
	again := newPrincipalCLI(t, s)
	if _, errOut, code := again.run("login", "--service-principal", "-u", sp.AppID, "-p", sp.Password, "--tenant", sp.Tenant); code != 5 {
		t.Errorf("login with the old secret: exit %d %s", code, errOut)
	}
	again.must("login", "--service-principal", "-u", sp.AppID, "-p", reset.Password, "--tenant", sp.Tenant)

	// Revoked, the Contributor is refused in its own group.
	cli.must("role", "assignment", "delete", "--assignee", sp.AppID, "--role", "Contributor", "--scope", rgID)
	if out := cli.must("role", "assignment", "list", "--assignee", sp.AppID, "--all"); strings.TrimSpace(out) != "[]" {
		t.Errorf("assignments left after delete: %s", out)
	}
	if _, errOut, code := again.run("container", "create", "-g", "team", "-n", "revoked", "--image", image); code != 5 || !strings.Contains(errOut, "AuthorizationFailed") {
		t.Errorf("create after the assignment was deleted: exit %d %s", code, errOut)
	}
	cli.must("ad", "sp", "delete", "--id", sp.AppID)
	if out := cli.must("ad", "sp", "list", "--display-name", "teamsp"); strings.TrimSpace(out) != "[]" {
		t.Errorf("ad sp list after delete: %s", out)
	}

	// cloud-config: the file of az cloud register --cloud-config.
	out = cli.must("cloud-config")
	var cc struct{ Endpoints map[string]string }
	if err := json.Unmarshal([]byte(out), &cc); err != nil {
		t.Fatalf("cloud-config printed %v: %s", err, out)
	}
	base := s.TLSEndpoint
	for k, want := range map[string]string{"resourceManager": base + "/", "activeDirectory": base + "/adfs",
		"activeDirectoryResourceId": base + "/", "microsoftGraphResourceId": base + "/"} {
		if cc.Endpoints[k] != want {
			t.Errorf("cloud-config %s = %q, want %q", k, cc.Endpoints[k], want)
		}
	}

	cli.must("logout")
	if _, err := os.Stat(filepath.Join(cli.configDir, "login.json")); err == nil {
		t.Error("logout left the stored login")
	}
	if _, _, code := cli.run("group", "list"); code != 5 {
		t.Errorf("group list after logout: exit %d, want 5", code)
	}
	if _, _, code := cli.run("logout"); code != 3 {
		t.Errorf("a second logout: exit %d, want 3 (nothing to log out of)", code)
	}
	if strings.Contains(s.Log(), owner.Password) || strings.Contains(s.Log(), reset.Password) {
		t.Error("a secret is in the server's log")
	}
}

// The Go client signs in with client credentials (built in, and through
// an azidentity credential): a token is fetched once and reused; a wrong
// secret is an *APIError of class ErrUnauthorized.
func TestClientServicePrincipal(t *testing.T) {
	s := newServer(t, testenv.SkiffServerOptions{TLS: true})
	owner := adminSP(t, s)
	ctx := t.Context()

	sp := &client.ServicePrincipal{AppID: owner.AppID, Secret: owner.Password, Tenant: owner.Tenant}
	c, err := client.New(client.Options{Endpoint: s.TLSEndpoint, CAFile: s.CAFile, Credentials: sp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateResourceGroup(ctx, "sp", api.ResourceGroup{Location: "local"}); err != nil {
		t.Fatalf("create resource group as the Owner: %v", err)
	}
	first, err := sp.Token(ctx, nil, c.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListResourceGroups(ctx); err != nil {
		t.Fatal(err)
	}
	if again, _ := sp.Token(ctx, nil, c.Endpoint()); again != first {
		t.Error("the token was not reused")
	}

	for _, tc := range []struct {
		name  string
		creds client.TokenSource
	}{
		{"no tenant", &client.ServicePrincipal{AppID: owner.AppID, Secret: owner.Password}},
		{"azidentity", azcred.TokenSource(sdkCredential(t, s, owner))},
	} {
		c, err := client.New(client.Options{Endpoint: s.TLSEndpoint, CAFile: s.CAFile, Credentials: tc.creds})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetResourceGroup(ctx, "sp"); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}

	bad, err := client.New(client.Options{Endpoint: s.TLSEndpoint, CAFile: s.CAFile,
		Credentials: &client.ServicePrincipal{AppID: owner.AppID, Secret: "wrong", Tenant: owner.Tenant}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.ListResourceGroups(ctx)
	var ae *client.APIError
	if !errors.Is(err, client.ErrUnauthorized) || !errors.As(err, &ae) || ae.StatusCode != 401 {
		t.Errorf("a wrong secret: %v, want a 401 of class ErrUnauthorized", err)
	}
}

func lastPathSegment(id string) string { return id[strings.LastIndex(id, "/")+1:] }
