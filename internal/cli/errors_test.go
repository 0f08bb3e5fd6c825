package cli_test

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/cli/clitest"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
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
	h := newHarness(t)
	h.srv.AddContainerGroup("rg", webGroup)

	h.fails(3, "error: (ResourceNotFound) The Resource 'Microsoft.ContainerInstance/containerGroups/nope' under resource group 'rg' was not found.\n",
		"container", "show", "-g", "rg", "-n", "nope")
	h.fails(3, "error: (ResourceGroupNotFound) Resource group 'nope' could not be found.\n", "group", "show", "-n", "nope")
	h.fails(3, "error: (ImageNotFound) image missing:1 is not on this host\n", "image", "rm", "missing:1")
	h.fails(3, "(SubscriptionNotFound)", "account", "show", "--subscription", "nope")

	h.env[cmdutil.EnvToken] = "wrong"
	h.fails(5, "error: (AuthenticationFailed) the bearer token is missing or wrong\n", "container", "list")

	// No token anywhere: the error says where one is looked for.
	delete(h.env, cmdutil.EnvToken)
	h.fails(5, "(no token: set SKIFF_TOKEN, or run where "+filepath.Join(h.env[cmdutil.EnvDataDir], "admin.token")+" is readable)", "group", "list")

	// The token file of the data dir is used when SKIFF_TOKEN is unset.
	if err := os.WriteFile(filepath.Join(h.env[cmdutil.EnvDataDir], "admin.token"), []byte(clitest.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.ok("group", "list")

	h.srv.Override = func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/containerGroups/busy"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"error":{"code":"ContainerGroupTransitioning","message":"The container group 'busy' is still transitioning, please retry later."}}`))
			return true
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
	}
	h.fails(4, "error: (ContainerGroupTransitioning) The container group 'busy' is still transitioning, please retry later.\n",
		"container", "create", "-g", "rg", "-n", "busy", "--image", "nginx")
	h.fails(6, "error: (InternalServerError) GET /subscriptions/"+clitest.Subscription+"/resourcegroups/rg/providers/Microsoft.ContainerInstance/containerGroups/broken returned 500 Internal Server Error\n",
		"container", "show", "-g", "rg", "-n", "broken")
	h.fails(2, "error: (InvalidContainerGroupUpdate) ", "container", "create", "-g", "rg", "-n", "bad", "--image", "nginx")
}

func TestGroupCommands(t *testing.T) {
	h := newHarness(t)
	r := h.ok("group", "create", "-n", "prod", "-l", "westeurope", "--tags", "env=prod", "team=core", "bare")
	assertJSON(t, h.srv.Last(http.MethodPut, "/resourcegroups/prod").Body, `{"location":"westeurope","tags":{"env":"prod","team":"core","bare":""},"properties":{}}`)
	assertJSON(t, []byte(r.out), `{"id":"/subscriptions/`+clitest.Subscription+`/resourceGroups/prod","name":"prod","type":"Microsoft.Resources/resourceGroups",
	  "location":"westeurope","tags":{"env":"prod","team":"core","bare":""},"properties":{"provisioningState":"Succeeded"}}`)

	// Without a terminal and without --yes, delete refuses and sends nothing.
	before := len(h.srv.Requests(false))
	h.fails(2, `cannot ask for confirmation to delete resource group "prod": standard input is not a terminal; pass --yes`, "group", "delete", "-n", "prod")
	// On a terminal it asks; "n" cancels.
	h.stdinTTY, h.stdin = true, "n\n"
	r = h.run("group", "delete", "-n", "prod")
	if r.code != 1 || r.err != "Are you sure you want to perform this operation? (y/n): error: operation cancelled\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.err)
	}
	if n := len(h.srv.Requests(false)); n != before {
		t.Fatalf("%d requests sent before confirmation", n-before)
	}
	// "y" deletes and waits for the operation.
	h.stdin = "maybe\ny\n"
	r = h.ok("group", "delete", "-n", "prod")
	if got := strings.Count(r.err, "Are you sure"); got != 2 {
		t.Errorf("asked %d times, want 2 (once more after an unclear answer)", got)
	}
	h.srv.Last(http.MethodDelete, "/resourcegroups/prod")
	h.srv.Last(http.MethodGet, "/operations/op-1")
	h.stdinTTY = false
	h.fails(3, "(ResourceGroupNotFound)", "group", "delete", "-n", "prod", "--yes")
	h.ok("group", "delete", "-n", "rg", "--yes", "--no-wait")
}

func TestContainerLifecycleCommands(t *testing.T) {
	h := newHarness(t)
	h.srv.AddContainerGroup("rg", webGroup)
	h.ok("container", "stop", "-g", "rg", "-n", "web")
	h.srv.Last(http.MethodPost, "/containerGroups/web/stop")
	h.ok("container", "start", "-g", "rg", "-n", "web")
	h.srv.Last(http.MethodPost, "/containerGroups/web/start")
	h.srv.Last(http.MethodGet, "/operations/op-1")
	h.ok("container", "restart", "-g", "rg", "-n", "web", "--no-wait")
	h.srv.Last(http.MethodPost, "/containerGroups/web/restart")
	for _, r := range h.srv.Requests(false) {
		if strings.HasSuffix(r.Path, "/operations/op-2") {
			t.Errorf("restart --no-wait polled its operation")
		}
	}
	h.fails(3, "(ResourceNotFound)", "container", "restart", "-g", "rg", "-n", "nope")

	h.fails(2, "pass --yes", "container", "delete", "-g", "rg", "-n", "web")
	r := h.ok("container", "delete", "-g", "rg", "-n", "web", "--yes")
	if r.out != "" {
		t.Errorf("stdout %q", r.out)
	}
	h.srv.Last(http.MethodGet, "/operations/op-3")
	h.fails(3, "(ResourceNotFound)", "container", "show", "-g", "rg", "-n", "web")
	// Deleting what is gone is not an error (204), as in az.
	h.ok("container", "delete", "-g", "rg", "-n", "web", "--yes")
}

func TestImageCommands(t *testing.T) {
	h := newHarness(t)
	tar := writeFile(t, "img.tar", "not really a tarball, but bytes the server gets as sent")
	r := h.ok("image", "import", tar)
	imp := h.srv.Last(http.MethodPost, "/locations/local/images/import")
	if string(imp.Body) != "not really a tarball, but bytes the server gets as sent" || imp.Header.Get("Content-Type") != "application/x-tar" {
		t.Errorf("import sent %q as %q", imp.Body, imp.Header.Get("Content-Type"))
	}
	assertJSON(t, []byte(r.out), `[{"image":"busybox:local","digest":"sha256:abc"}]`)
	h.fails(2, "no such file", "image", "import", filepath.Join(t.TempDir(), "missing.tar"))

	h.ok("image", "pull", "reg.example.com/team/app:1", "-l", "eastus", "--registry-username", "u", "--registry-password", "p")
	assertJSON(t, h.srv.Last(http.MethodPost, "/locations/eastus/images/pull").Body,
		`{"image":"reg.example.com/team/app:1","credentials":[{"server":"reg.example.com","username":"u","password":"p"}]}`)
	r = h.ok("image", "pull", "busybox:1.36", "--query", "digest", "-o", "tsv")
	assertJSON(t, h.srv.Last(http.MethodPost, "/locations/local/images/pull").Body, `{"image":"busybox:1.36"}`)
	if r.out != "sha256:abc\n" {
		t.Errorf("pull printed %q", r.out)
	}

	r = h.ok("image", "rm", "busybox:local")
	del := h.srv.Last(http.MethodDelete, "/locations/local/images")
	if del.Query["image"][0] != "busybox:local" || r.out != "" {
		t.Errorf("rm sent %v, printed %q", del.Query, r.out)
	}
}

func TestSubscriptionChoice(t *testing.T) {
	h := newHarness(t)
	r := h.ok("account", "show", "--query", "subscriptionId", "-o", "tsv")
	if r.out != clitest.Subscription+"\n" {
		t.Errorf("account show: %q", r.out)
	}
	if reqs := h.srv.Requests(false); reqs[0].Path != "/subscriptions" {
		t.Errorf("first request %s, want GET /subscriptions", reqs[0].Path)
	}
	h.env[cmdutil.EnvSubscription] = "from-env"
	h.fails(3, "The subscription 'from-env' could not be found.", "group", "list")
	h.fails(3, "The subscription 'from-flag' could not be found.", "group", "list", "--subscription", "from-flag")
}
