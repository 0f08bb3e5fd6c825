package cli_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/agent/fakeagent"
	"github.com/skiff-sh/skiff/internal/store"
)

// body wraps the properties of a one-container group named web in eastus.
func body(container, group string) string {
	return `{"name":"web","location":"eastus","properties":{` + group +
		`"restartPolicy":"Always","osType":"Linux","containers":[{"name":"web","properties":{` + container +
		`"image":"nginx","resources":{"requests":{"cpu":1,"memoryInGB":1.5}}}}]}}`
}

func TestCreateRequestBodies(t *testing.T) {
	t.Parallel()
	base := []string{"container", "create", "-g", "rg", "-n", "web", "--image", "nginx", "-o", "none"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"defaults: no IP, so no ports", nil, body("", "")},
		{"public IP with ports and protocol",
			[]string{"--ip-address", "public", "--ports", "80", "443", "--protocol", "udp"},
			body(`"ports":[{"protocol":"UDP","port":80},{"protocol":"UDP","port":443}],`,
				`"ipAddress":{"type":"Public","ports":[{"protocol":"UDP","port":80},{"protocol":"UDP","port":443}]},`)},
		{"a DNS name label alone makes a public IP on the default port",
			[]string{"--dns-name-label", "web-one"},
			body(`"ports":[{"protocol":"TCP","port":80}],`,
				`"ipAddress":{"type":"Public","dnsNameLabel":"web-one","ports":[{"protocol":"TCP","port":80}]},`)},
		{"plain and secure environment variables",
			[]string{"-e", "A=1", "B=x=y", "--secure-environment-variables", "PW=s3cret", "--environment-variables", "C="},
			body(`"environmentVariables":[{"name":"A","value":"1"},{"name":"B","value":"x=y"},{"name":"C"},{"name":"PW","secureValue":"s3cret"}],`, "")},
		{"command line split like a shell",
			[]string{"--command-line", `/bin/sh -c 'echo "hello world"; sleep 10' x\ y`},
			body(`"command":["/bin/sh","-c","echo \"hello world\"; sleep 10","x y"],`, "")},
		{"registry inferred from the image host",
			[]string{"--image", "reg.example.com:5000/team/app:1", "--registry-username", "u", "--registry-password", "p"},
			strings.Replace(body("", `"imageRegistryCredentials":[{"server":"reg.example.com:5000","username":"u","password":"p"}],`),
				`"image":"nginx"`, `"image":"reg.example.com:5000/team/app:1"`, 1)},
		{"registry login server given",
			[]string{"--registry-login-server", "mirror.example.com", "--registry-username", "u", "--registry-password", "p"},
			body("", `"imageRegistryCredentials":[{"server":"mirror.example.com","username":"u","password":"p"}],`)},
		{"azure file volume",
			[]string{"--azure-file-volume-share-name", "share", "--azure-file-volume-account-name", "acct",
				"--azure-file-volume-account-key", "key==", "--azure-file-volume-mount-path", "/mnt/share"},
			body(`"volumeMounts":[{"name":"azurefile","mountPath":"/mnt/share"}],`,
				`"volumes":[{"name":"azurefile","azureFile":{"shareName":"share","storageAccountName":"acct","storageAccountKey":"key=="}}],`)},
		{"secrets volume, base64",
			[]string{"--secrets", "a=hello", "b=wörld", "--secrets-mount-path", "/mnt/secrets"},
			body(`"volumeMounts":[{"name":"secrets","mountPath":"/mnt/secrets"}],`,
				`"volumes":[{"name":"secrets","secret":{"a":"aGVsbG8=","b":"d8O2cmxk"}}],`)},
		{"git repo volume, directory defaults to .",
			[]string{"--gitrepo-url", "https://example.com/r.git", "--gitrepo-mount-path", "/src"},
			body(`"volumeMounts":[{"name":"gitrepo","mountPath":"/src"}],`,
				`"volumes":[{"name":"gitrepo","gitRepo":{"repository":"https://example.com/r.git","directory":"."}}],`)},
		{"all three volumes, in az's order",
			[]string{"--gitrepo-url", "https://example.com/r.git", "--gitrepo-dir", "r", "--gitrepo-revision", "abc123", "--gitrepo-mount-path", "/src",
				"--secrets", "k=v", "--secrets-mount-path", "/s",
				"--azure-file-volume-share-name", "share", "--azure-file-volume-account-name", "acct", "--azure-file-volume-mount-path", "/f"},
			body(`"volumeMounts":[{"name":"azurefile","mountPath":"/f"},{"name":"secrets","mountPath":"/s"},{"name":"gitrepo","mountPath":"/src"}],`,
				`"volumes":[{"name":"azurefile","azureFile":{"shareName":"share","storageAccountName":"acct"}},`+
					`{"name":"secrets","secret":{"k":"dg=="}},`+
					`{"name":"gitrepo","gitRepo":{"repository":"https://example.com/r.git","directory":"r","revision":"abc123"}}],`)},
		{"sizes, policy, OS and location",
			[]string{"--cpu", "0.5", "--memory", "0.3", "--restart-policy", "never", "--os-type", "linux", "-l", "westus"},
			`{"name":"web","location":"westus","properties":{"restartPolicy":"Never","osType":"Linux",
			  "containers":[{"name":"web","properties":{"image":"nginx","resources":{"requests":{"cpu":0.5,"memoryInGB":0.3}}}}]}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each waits for its operation, about a second
			h := newHarness(t)
			h.ok(append(append([]string{}, base...), tc.args...)...)
			put := h.rec.last(http.MethodPut, "/containerGroups/web")
			if got := put.Query["api-version"]; len(got) != 1 || got[0] != "2023-05-01" {
				t.Errorf("api-version %v, want 2023-05-01", got)
			}
			assertJSON(t, put.Body, tc.want)
		})
	}
}

func TestCreateLocationComesFromTheGroupUnlessGiven(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ok("container", "create", "-g", "rg", "-n", "web", "--image", "nginx", "-l", "westus", "-o", "none")
	for _, r := range h.rec.requests() {
		if r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/resourcegroups/rg") {
			t.Fatalf("read the resource group although -l was given")
		}
	}
	h.ok("container", "create", "-g", "rg", "-n", "web2", "--image", "nginx", "-o", "none")
	h.rec.last(http.MethodGet, "/resourcegroups/rg")
	h.fails(3, "error: (ResourceGroupNotFound) Resource group 'nope' could not be found.",
		"container", "create", "-g", "nope", "-n", "web", "--image", "nginx")
}

const groupYAML = `apiVersion: '2021-10-01'
name: fromfile
type: Microsoft.ContainerInstance/containerGroups
tags: {team: core}
properties:
  osType: Linux
  restartPolicy: OnFailure
  containers:
  - name: web
    properties:
      image: busybox:local
      command: ["httpd", "-f", "-p", "8080"]
      ports: [{port: 8080}]
      environmentVariables: [{name: A, value: "1"}, {name: PW, secureValue: pw}]
      resources: {requests: {cpu: 0.5, memoryInGB: 0.3}}
  ipAddress: {type: Public, ports: [{protocol: TCP, port: 8080}]}
`

const groupYAMLAsJSON = `{"apiVersion":"2021-10-01","name":"fromfile","type":"Microsoft.ContainerInstance/containerGroups",
  "tags":{"team":"core"},"location":%q,
  "properties":{"osType":"Linux","restartPolicy":"OnFailure",
    "containers":[{"name":"web","properties":{"image":"busybox:local","command":["httpd","-f","-p","8080"],
      "ports":[{"port":8080}],"environmentVariables":[{"name":"A","value":"1"},{"name":"PW","secureValue":"pw"}],
      "resources":{"requests":{"cpu":0.5,"memoryInGB":0.3}}}}],
    "ipAddress":{"type":"Public","ports":[{"protocol":"TCP","port":8080}]}}}`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCreateFromFile(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	file := writeFile(t, "g.yaml", groupYAML)

	// The whole YAML is PUT as JSON, at the YAML's apiVersion, with the
	// resource group's location.
	r := h.ok("container", "create", "-g", "rg", "-f", file, "-o", "tsv", "--query", "name")
	if r.out != "fromfile\n" {
		t.Errorf("stdout %q", r.out)
	}
	put := h.rec.last(http.MethodPut, "/containerGroups/fromfile")
	if got := put.Query["api-version"]; len(got) != 1 || got[0] != "2021-10-01" {
		t.Errorf("api-version %v, want the YAML's 2021-10-01", got)
	}
	assertJSON(t, put.Body, sprintf(groupYAMLAsJSON, "eastus"))

	// --location fills in a YAML without one…
	h.ok("container", "create", "-g", "rg", "-f", file, "-l", "westus", "-n", "fromfile", "-o", "none")
	assertJSON(t, h.rec.last(http.MethodPut, "/containerGroups/fromfile").Body, sprintf(groupYAMLAsJSON, "westus"))

	// …but a location in the YAML wins.
	withLoc := writeFile(t, "l.yaml", strings.Replace(groupYAML, "name: fromfile\n", "name: fromfile\nlocation: westeurope\n", 1))
	h.ok("container", "create", "-g", "rg", "-f", withLoc, "-l", "westus", "-o", "none")
	assertJSON(t, h.rec.last(http.MethodPut, "/containerGroups/fromfile").Body, sprintf(groupYAMLAsJSON, "westeurope"))

	// A YAML without a name takes --name.
	noName := writeFile(t, "n.yaml", strings.Replace(groupYAML, "name: fromfile\n", "", 1))
	h.ok("container", "create", "-g", "rg", "-f", noName, "-n", "fromfile", "-o", "none")
	assertJSON(t, h.rec.last(http.MethodPut, "/containerGroups/fromfile").Body, sprintf(groupYAMLAsJSON, "eastus"))

	// --name must match the YAML's; nothing is sent otherwise.
	before := len(h.rec.requests())
	h.fails(2, `the name parameter ("other") and the name in `+file+` ("fromfile") must match`,
		"container", "create", "-g", "rg", "-f", file, "-n", "other")
	h.fails(2, "has no name", "container", "create", "-g", "rg", "-f", noName)
	h.fails(2, "not valid YAML", "container", "create", "-g", "rg", "-f", writeFile(t, "bad.yaml", "name: [unclosed\n"))
	h.fails(2, "no such file", "container", "create", "-g", "rg", "-f", filepath.Join(t.TempDir(), "missing.yaml"))
	if after := len(h.rec.requests()); after != before {
		t.Errorf("%d requests sent for bad --file invocations", after-before)
	}
}

// isPoll reports whether r polled an operation.
func isPoll(r *request) bool { return strings.Contains(r.Path, "/operations/") }

func TestCreateWaitsForTheOperation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// The agent leaves web alone until its operation was polled twice, so
	// that the CLI sees it InProgress twice first.
	var polls atomic.Int32
	h.srv.Agent.Hold = func(cg *store.ContainerGroup) bool { return polls.Load() < 2 }
	h.rec.setServed(func(r *request) {
		if isPoll(r) && polls.Add(1) == 2 {
			h.srv.Agent.Kick(context.Background(), h.srv.Subscription, "rg", "web")
		}
	})
	r := h.ok("container", "create", "-g", "rg", "-n", "web", "--image", "nginx", "--ip-address", "Public")

	var n int
	var sawGetAfterPolls bool
	for _, req := range h.rec.requests() {
		switch {
		case isPoll(&req):
			n++
		case req.Method == http.MethodGet && strings.HasSuffix(req.Path, "/containerGroups/web"):
			sawGetAfterPolls = n == 3
		}
	}
	if n != 3 || !sawGetAfterPolls {
		t.Errorf("polled %d times (want 2 InProgress + 1 Succeeded), then GET: %v", n, sawGetAfterPolls)
	}
	// Printed flattened, as az does: no "properties", resourceGroup added.
	for _, want := range []string{`"ipAddress": {`, `"ip": "` + fakeagent.PublicIP + `"`, `"resourceGroup": "rg"`, `"provisioningState": "Succeeded"`, `"image": "nginx"`} {
		if !strings.Contains(r.out, want) {
			t.Errorf("stdout lacks %s:\n%s", want, r.out)
		}
	}
	if strings.Contains(r.out, `"properties"`) {
		t.Errorf("stdout is not flattened:\n%s", r.out)
	}
	if r.err != "" {
		t.Errorf("progress printed although stderr is not a terminal: %q", r.err)
	}

	// On a terminal, each event is shown once, as it appears: the two
	// polls while the agent holds the update show the events of the run
	// before, the last one the same events again.
	polls.Store(0)
	h.stderrTTY = true
	r = h.ok("container", "create", "-g", "rg", "-n", "web", "--image", "nginx", "-o", "none")
	want := "Pulling  pulling image \"nginx\"\nPulled   Successfully pulled image \"nginx\"\nStarted  Started container\n"
	if r.err != want {
		t.Errorf("progress on stderr:\n%q\nwant\n%q", r.err, want)
	}
}

func TestCreateNoWaitDoesNotPoll(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.ok("container", "create", "-g", "rg", "-n", "web", "--image", "nginx", "--no-wait")
	if r.out != "" {
		t.Errorf("stdout %q", r.out)
	}
	for _, req := range h.rec.requests() {
		if isPoll(&req) {
			t.Fatalf("polled the operation with --no-wait")
		}
	}
}

func TestCreateFailedOperation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.srv.Agent.Fail = func(*store.ContainerGroup) *api.ErrorBody {
		return &api.ErrorBody{Code: "InaccessibleImage", Message: "The image 'nope:1' in container group 'web' is not accessible."}
	}
	r := h.fails(1, "", "container", "create", "-g", "rg", "-n", "web", "--image", "nope:1")
	if r.err != "error: (InaccessibleImage) The image 'nope:1' in container group 'web' is not accessible.\n" || r.out != "" {
		t.Errorf("stdout %q stderr %q", r.out, r.err)
	}
}

func TestBadFlagsAreCaughtLocally(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	create := []string{"container", "create", "-g", "rg", "-n", "web", "--image", "nginx"}
	cases := []struct {
		args []string
		want string
	}{
		{append(create, "--restart-policy", "Sometimes"), `--restart-policy: "Sometimes" is not one of: Always, OnFailure, Never`},
		{append(create, "--cpu", "abc"), `invalid argument "abc" for "--cpu" flag`},
		{append(create, "--cpu", "0"), "--cpu must be more than 0"},
		{append(create, "--memory", "-1"), "--memory must be more than 0"},
		{append(create, "--ports", "70000", "--ip-address", "Public"), "--ports: 70000 is not a port"},
		{append(create, "--protocol", "SCTP"), `--protocol: "SCTP" is not one of: TCP, UDP`},
		{append(create, "--ip-address", "Private", "--dns-name-label", "web-1a"), "--dns-name-label needs --ip-address Public"},
		{append(create, "--ip-address", "Elastic"), `--ip-address: "Elastic" is not one of: Public, Private`},
		{append(create, "-e", "NOVALUE"), `--environment-variables: "NOVALUE" is not of the form KEY=VALUE`},
		{append(create, "--secrets", "a=b"), "needs both --secrets and --secrets-mount-path"},
		{append(create, "--gitrepo-url", "https://x/r.git"), "needs both --gitrepo-url and --gitrepo-mount-path"},
		{append(create, "--azure-file-volume-share-name", "s"), "an Azure file volume needs"},
		{append(create, "--registry-username", "u"), "--registry-username and --registry-password go together"},
		{append(create, "--command-line", `sh -c "unclosed`), "--command-line"},
		{append(create, "-o", "xml"), `--output "xml": allowed values: json, jsonc, yaml, table, tsv, none`},
		{append(create, "stray"), "unrecognized arguments: stray"},
		{[]string{"container", "create", "-g", "rg", "-n", "web"}, "the following arguments are required: --image (or --file)"},
		{[]string{"container", "create", "--image", "nginx"}, "--resource-group/-g, --name/-n"},
		{[]string{"container", "show", "-g", "rg"}, "the following arguments are required: --name/-n"},
		{[]string{"container", "logs", "-g", "rg", "-n", "web", "--tail", "-3"}, "--tail must be 0 or more"},
		{[]string{"container", "exec", "-g", "rg", "-n", "web"}, "--exec-command"},
		{[]string{"container", "bogus"}, `"bogus" is not a skiff container command`},
		{[]string{"container", "create", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"bogus"}, `unknown command "bogus" for "skiff"`},
		{[]string{"group", "create", "-n", "rg"}, "--location/-l"},
		{[]string{"group", "create", "-n", "rg", "-l", "eastus", "--tags", "=x"}, "--tags"},
		{[]string{"image", "pull"}, "missing IMAGE"},
		{[]string{"container", "export", "-g", "rg", "-n", "web"}, "--file/-f"},
	}
	for _, tc := range cases {
		h.fails(2, tc.want, tc.args...)
	}
	if reqs := h.rec.requests(); len(reqs) != 0 {
		t.Errorf("%d requests sent for bad command lines: %v", len(reqs), reqs)
	}
}
