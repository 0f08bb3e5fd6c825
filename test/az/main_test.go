// Package az drives Debian's real az CLI (apt azure-cli, 2.45; installed by
// hack/install-deps.sh) against `skiff server --tls-listen`: a custom cloud
// registered from the server's https URL, service-principal logins through
// Skiff's identity provider, seed 000's quick start and seed 001's
// create-for-rbac, each command as the seeds write it with only endpoints
// and image names changed. The tests fail, never skip, when az is missing.
package az

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// skiffBin is the binary built once for the whole package.
var skiffBin string

func TestMain(m *testing.M) { os.Exit(testenv.RunWithSkiff(m, &skiffBin)) }

// The package's container network: no other package uses it.
const (
	azBridge = "skaz0"
	azSubnet = "10.235.0.0/16"
)

// azBin is Debian's az launcher; its first line names the Python that has
// az's modules (the PATH's python3 may be another one).
const azBin = "/usr/bin/az"

// startServer starts a skiff server that serves HTTPS with its own CA, on
// the package's network.
func startServer(t *testing.T) *testenv.SkiffServer {
	t.Helper()
	return testenv.StartSkiffServer(t, testenv.SkiffServerOptions{Binary: skiffBin, Bridge: azBridge, Subnet: azSubnet,
		StopGrace: 2 * time.Second, TLS: true})
}

// credentials are a service principal's, as admin-sp.json and
// `az ad sp create-for-rbac` print them.
type credentials struct {
	AppID       string `json:"appId"`
	DisplayName string `json:"displayName"`
	Password    string `json:"password"`
	Tenant      string `json:"tenant"`
}

// adminCredentials reads the bootstrap Owner's DATA-DIR/admin-sp.json.
func adminCredentials(t *testing.T, s *testenv.SkiffServer) credentials {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.DataDir, "admin-sp.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c credentials
	if err := json.Unmarshal(data, &c); err != nil || c.AppID == "" || c.Password == "" || c.Tenant == "" {
		t.Fatalf("admin-sp.json: %v %s", err, data)
	}
	return c
}

// cli is the az CLI with a config dir of its own (AZURE_CONFIG_DIR), so
// that nothing touches ~/.azure and each login stays apart.
type cli struct {
	t               *testing.T
	python, wrapper string
	env             []string
}

// authzFix is run in place of /usr/bin/az. It fixes the client, not
// Skiff: Debian pairs az 2.45 with azure-mgmt-authorization 3.0.0, whose
// operations classes name `config` `_config`, so az's role code (`az role
// assignment create|list`, create-for-rbac's assignment) crashes with
// "'RoleAssignmentsOperations' object has no attribute 'config'" (upstream
// azure-cli #24959, #23933). The wrapper adds `config` as a property that
// returns `_config` to those classes as they are imported, then runs az's
// main as /usr/bin/az does; the requests az sends are upstream 2.45's.
const authzFix = `import importlib.abc, importlib.machinery, os, runpy, sys

class AddConfig(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if not (name.startswith("azure.mgmt.authorization.v") and name.endswith("operations")):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            for k, v in list(vars(module).items()):
                if isinstance(v, type) and k.endswith("Operations") and not hasattr(v, "config"):
                    v.config = property(lambda self: self._config)
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, AddConfig())
os.environ["AZ_INSTALLER"] = "DEB"
runpy.run_module("azure.cli")
`

// newCLI is az with a fresh config dir, trusting the server's CA, with the
// server registered as the cloud "skiff" and set as the current one.
func newCLI(t *testing.T, s *testenv.SkiffServer) *cli {
	t.Helper()
	python := azPython(t)
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "az.py")
	if err := os.WriteFile(wrapper, []byte(authzFix), 0o644); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "config")
	env := append(os.Environ(), "AZURE_CONFIG_DIR="+config, "AZURE_CORE_COLLECT_TELEMETRY=false",
		"AZURE_CORE_NO_COLOR=true", "REQUESTS_CA_BUNDLE="+s.CAFile)
	c := &cli{t: t, python: python, wrapper: wrapper, env: env}

	// Every endpoint is set, so that az sends nothing to register the
	// cloud: /metadata/endpoints lacks the Graph resource id az ad needs.
	// The storage suffix is what az storage account show-connection-string
	// prints (without it az refuses: "The suffix 'storage_endpoint' for
	// this cloud is not set"), as `skiff cloud-config` gives it.
	base := s.TLSEndpoint + "/"
	cloud := map[string]any{"endpoints": map[string]string{
		"resourceManager":                base,
		"activeDirectory":                s.TLSEndpoint + "/adfs",
		"activeDirectoryResourceId":      base,
		"activeDirectoryGraphResourceId": base,
		"microsoftGraphResourceId":       base,
	}, "suffixes": map[string]string{"storageEndpoint": api.StorageEndpointSuffix}}
	data, _ := json.Marshal(cloud)
	file := filepath.Join(dir, "skiff-cloud.json")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	c.must("cloud", "register", "-n", "skiff", "--cloud-config", "@"+file)
	c.must("cloud", "set", "-n", "skiff")
	return c
}

// azPython is the interpreter of /usr/bin/az's first line; the test fails
// when az is not installed.
func azPython(t *testing.T) string {
	t.Helper()
	f, err := os.Open(azBin)
	if err != nil {
		t.Fatalf("the az CLI is not installed (%v): run hack/install-deps.sh (apt-get install azure-cli)", err)
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	python := strings.TrimSpace(strings.TrimPrefix(line, "#!"))
	if !strings.HasPrefix(line, "#!") || python == "" {
		t.Fatalf("%s does not start with a #! line: %q", azBin, line)
	}
	return python
}

// run runs az with args and returns its stdout, stderr and exit code.
func (c *cli) run(args ...string) (string, string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.python, append([]string{c.wrapper}, args...)...)
	cmd.Env = c.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	c.t.Logf("az %s: %s", shown(args), time.Since(start).Round(time.Millisecond))
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("az %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// must runs az and fails the test unless it exits 0; it returns stdout.
func (c *cli) must(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("az %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// mustJSON runs az and decodes its JSON output into v.
func (c *cli) mustJSON(v any, args ...string) {
	c.t.Helper()
	out := c.must(args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("az %s printed no JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fails runs az, which must fail: a non-zero exit with want in stderr.
func (c *cli) fails(want string, args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code == 0 || !strings.Contains(errOut, want) {
		c.t.Errorf("az %s: exit %d, want a failure naming %q\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
	}
	return errOut
}

// login logs in as the service principal p, as its users do.
func (c *cli) login(p credentials) {
	c.t.Helper()
	c.must("login", "--service-principal", "-u", p.AppID, "-p", p.Password, "--tenant", p.Tenant)
}

// shown is a command line for the test's log, with passwords and storage
// keys elided.
func shown(args []string) string {
	out := slices.Clone(args)
	for i := 1; i < len(out); i++ {
		if out[i-1] == "-p" || out[i-1] == "--azure-file-volume-account-key" {
			out[i] = "***"
		}
	}
	return strings.Join(out, " ")
}
