package cli_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/agent/fakeagent"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	"github.com/skiff-sh/skiff/internal/lifecycle"
	"github.com/skiff-sh/skiff/internal/store"
)

func TestRefusedConnection(t *testing.T) {
	h := newHarness(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	h.env[cmdutil.EnvEndpoint] = "http://" + addr
	for _, args := range [][]string{
		{"group", "list"},
		{"container", "create", "-g", "rg", "-n", "web", "--image", "nginx"},
		{"account", "show", "--endpoint", addr}, // scheme-less --endpoint wins over the environment
	} {
		r := h.fails(6, "error: the Skiff server is not running at http://"+addr+": start it with `skiff server` (or `make run`)", args...)
		if r.out != "" {
			t.Errorf("stdout %q", r.out)
		}
	}
}

func TestAPIErrorsAreOneLineWithExitCodes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// The agent never removes busy, so that it stays Deleting.
	h.srv.Agent.Hold = func(cg *store.ContainerGroup) bool {
		return cg.Resource.Name == "busy" && lifecycle.Provisioning(cg.Resource.Properties.ProvisioningState) == lifecycle.Deleting
	}
	h.addContainerGroup("rg", webGroup)

	h.fails(3, "error: (ResourceNotFound) The Resource 'Microsoft.ContainerInstance/containerGroups/nope' under resource group 'rg' was not found.\n",
		"container", "show", "-g", "rg", "-n", "nope")
	h.fails(3, "error: (ResourceGroupNotFound) Resource group 'nope' could not be found.\n", "group", "show", "-n", "nope")
	h.fails(3, "error: (ImageNotFound) The image 'missing:1' is not on this host.\n", "image", "rm", "missing:1")
	h.fails(3, "(SubscriptionNotFound)", "account", "show", "--subscription", "nope")

	h.env[cmdutil.EnvToken] = "wrong"
	h.fails(5, "error: (AuthenticationFailed) Authentication failed. The 'Authorization' header is missing or does not carry a valid bearer token.\n", "container", "list")

	// No token anywhere: the error says where one is looked for.
	delete(h.env, cmdutil.EnvToken)
	h.fails(5, "(no token: set SKIFF_TOKEN, or run where "+filepath.Join(h.env[cmdutil.EnvDataDir], "admin.token")+" is readable)", "group", "list")

	// The token file of the data dir is used when SKIFF_TOKEN is unset.
	if err := os.WriteFile(filepath.Join(h.env[cmdutil.EnvDataDir], "admin.token"), []byte(h.srv.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.ok("group", "list")

	// A PUT while the group is being deleted is a conflict.
	h.addContainerGroup("rg", strings.Replace(twoContainers, `"name":"pair"`, `"name":"busy"`, 1))
	h.seed(func(ctx context.Context, c *client.Client) error {
		_, err := c.DeleteContainerGroup(ctx, "rg", "busy", client.DeleteOptions{})
		return err
	})
	h.fails(4, "error: (ContainerGroupTransitioning) The container group 'busy' is still transitioning (being deleted); try again later.\n",
		"container", "create", "-g", "rg", "-n", "busy", "--image", "nginx")

	// The real server answers every error with an ARM envelope; these two
	// are injected to show what the CLI makes of an answer without one: a
	// proxy's HTML 500, and a 400 that names its code in x-ms-error-code
	// only.
	h.rec.setInject(func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/containerGroups/broken"):
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte("<html>\n oops\n</html>"))
			return true
		case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/containerGroups/bad"):
			w.Header().Set("x-ms-error-code", "InvalidContainerGroupUpdate")
			w.WriteHeader(http.StatusBadRequest)
			return true
		}
		return false
	})
	h.fails(6, "error: (InternalServerError) GET /subscriptions/"+h.srv.Subscription+"/resourcegroups/rg/providers/Microsoft.ContainerInstance/containerGroups/broken returned 500 Internal Server Error\n",
		"container", "show", "-g", "rg", "-n", "broken")
	h.fails(2, "error: (InvalidContainerGroupUpdate) ", "container", "create", "-g", "rg", "-n", "bad", "--image", "nginx")
}

func TestGroupCommands(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.ok("group", "create", "-n", "prod", "-l", "westeurope", "--tags", "env=prod", "team=core", "bare")
	assertJSON(t, h.rec.last(http.MethodPut, "/resourcegroups/prod").Body, `{"location":"westeurope","tags":{"env":"prod","team":"core","bare":""},"properties":{}}`)
	assertJSON(t, []byte(r.out), `{"id":"/subscriptions/`+h.srv.Subscription+`/resourceGroups/prod","name":"prod","type":"Microsoft.Resources/resourceGroups",
	  "location":"westeurope","tags":{"env":"prod","team":"core","bare":""},"properties":{"provisioningState":"Succeeded"}}`)

	// Without a terminal and without --yes, delete refuses and sends nothing.
	before := len(h.rec.requests())
	h.fails(2, `cannot ask for confirmation to delete resource group "prod": standard input is not a terminal; pass --yes`, "group", "delete", "-n", "prod")
	// On a terminal it asks; "n" cancels.
	h.stdinTTY, h.stdin = true, "n\n"
	r = h.run("group", "delete", "-n", "prod")
	if r.code != 1 || r.err != "Are you sure you want to perform this operation? (y/n): error: operation cancelled\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.err)
	}
	if n := len(h.rec.requests()); n != before {
		t.Fatalf("%d requests sent before confirmation", n-before)
	}
	// "y" deletes and waits for the operation.
	h.stdin = "maybe\ny\n"
	r = h.ok("group", "delete", "-n", "prod")
	if got := strings.Count(r.err, "Are you sure"); got != 2 {
		t.Errorf("asked %d times, want 2 (once more after an unclear answer)", got)
	}
	if !h.rec.polled(h.rec.last(http.MethodDelete, "/resourcegroups/prod")) {
		t.Errorf("group delete did not wait for its operation")
	}
	h.stdinTTY = false
	h.fails(3, "(ResourceGroupNotFound)", "group", "delete", "-n", "prod", "--yes")
	h.ok("group", "delete", "-n", "rg", "--yes", "--no-wait")
}

func TestContainerLifecycleCommands(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addContainerGroup("rg", webGroup)
	h.ok("container", "stop", "-g", "rg", "-n", "web")
	h.rec.last(http.MethodPost, "/containerGroups/web/stop")
	h.ok("container", "start", "-g", "rg", "-n", "web")
	if !h.rec.polled(h.rec.last(http.MethodPost, "/containerGroups/web/start")) {
		t.Errorf("start did not wait for its operation")
	}
	h.ok("container", "restart", "-g", "rg", "-n", "web", "--no-wait")
	if h.rec.polled(h.rec.last(http.MethodPost, "/containerGroups/web/restart")) {
		t.Errorf("restart --no-wait polled its operation")
	}
	h.fails(3, "(ResourceNotFound)", "container", "restart", "-g", "rg", "-n", "nope")

	h.fails(2, "pass --yes", "container", "delete", "-g", "rg", "-n", "web")
	r := h.ok("container", "delete", "-g", "rg", "-n", "web", "--yes")
	if r.out != "" {
		t.Errorf("stdout %q", r.out)
	}
	if !h.rec.polled(h.rec.last(http.MethodDelete, "/containerGroups/web")) {
		t.Errorf("delete did not wait for its operation")
	}
	h.fails(3, "(ResourceNotFound)", "container", "show", "-g", "rg", "-n", "web")
	// Deleting what is gone is not an error (204), as in az.
	h.ok("container", "delete", "-g", "rg", "-n", "web", "--yes")
}

// dockerArchive is a docker archive (`docker save`) of one image tagged
// tag, without layers, and the digest the fake agent gives it (its config
// blob's).
func dockerArchive(t *testing.T, tag string) ([]byte, string) {
	t.Helper()
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	sum := sha256.Sum256(config)
	files := []struct{ name, body string }{
		{"config.json", string(config)},
		{"manifest.json", `[{"Config":"config.json","RepoTags":["` + tag + `"],"Layers":[]}]`},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), "sha256:" + hex.EncodeToString(sum[:])
}

func TestImageCommands(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	archive, digest := dockerArchive(t, "busybox:local")
	tar := writeFile(t, "img.tar", string(archive))
	r := h.ok("image", "import", tar)
	imp := h.rec.last(http.MethodPost, "/locations/local/images/import")
	if !bytes.Equal(imp.Body, archive) || imp.Header.Get("Content-Type") != "application/x-tar" {
		t.Errorf("import sent %d bytes (want the archive's %d) as %q", len(imp.Body), len(archive), imp.Header.Get("Content-Type"))
	}
	assertJSON(t, []byte(r.out), `[{"image":"busybox:local","digest":"`+digest+`"}]`)
	h.fails(2, "no such file", "image", "import", filepath.Join(t.TempDir(), "missing.tar"))

	h.ok("image", "pull", "reg.example.com/team/app:1", "-l", "eastus", "--registry-username", "u", "--registry-password", "p")
	assertJSON(t, h.rec.last(http.MethodPost, "/locations/eastus/images/pull").Body,
		`{"image":"reg.example.com/team/app:1","credentials":[{"server":"reg.example.com","username":"u","password":"p"}]}`)
	r = h.ok("image", "pull", "busybox:1.36", "--query", "digest", "-o", "tsv")
	assertJSON(t, h.rec.last(http.MethodPost, "/locations/local/images/pull").Body, `{"image":"busybox:1.36"}`)
	if r.out != fakeagent.Digest("busybox:1.36")+"\n" {
		t.Errorf("pull printed %q", r.out)
	}

	r = h.ok("image", "rm", "busybox:local")
	del := h.rec.last(http.MethodDelete, "/locations/local/images")
	if del.Query["image"][0] != "busybox:local" || r.out != "" {
		t.Errorf("rm sent %v, printed %q", del.Query, r.out)
	}
}

func TestSubscriptionChoice(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.ok("account", "show", "--query", "subscriptionId", "-o", "tsv")
	if r.out != h.srv.Subscription+"\n" {
		t.Errorf("account show: %q", r.out)
	}
	if reqs := h.rec.requests(); reqs[0].Path != "/subscriptions" {
		t.Errorf("first request %s, want GET /subscriptions", reqs[0].Path)
	}
	h.env[cmdutil.EnvSubscription] = "from-env"
	h.fails(3, "The subscription 'from-env' could not be found.", "group", "list")
	h.fails(3, "The subscription 'from-flag' could not be found.", "group", "list", "--subscription", "from-flag")
}
