package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/agent/fakeagent"
	"github.com/skiff-sh/skiff/internal/hostapi"
)

const webGroup = `{"name":"web","location":"eastus","properties":{"osType":"Linux","restartPolicy":"Always","initContainers":null,
 "containers":[{"name":"web","properties":{"image":"nginx","ports":[{"port":80}],
   "environmentVariables":[{"name":"A","value":"1"}],"resources":{"requests":{"cpu":1,"memoryInGB":1.5}}}}],
 "ipAddress":{"type":"Public","ports":[{"protocol":"TCP","port":80}]}}}`

const jobGroup = `{"name":"job","location":"westus","properties":{"osType":"Linux","restartPolicy":"Never",
 "containers":[
   {"name":"a","properties":{"image":"busybox:local","resources":{"requests":{"cpu":0.5,"memoryInGB":0.2}}}},
   {"name":"b","properties":{"image":"alpine:3","resources":{"requests":{"cpu":0.1,"memoryInGB":0.5}}}},
   {"name":"c","properties":{"image":"busybox:local","resources":{"requests":{"cpu":0.2,"memoryInGB":0.3}}}}]}}`

func outputHarness(t *testing.T) *harness {
	h := newHarness(t)
	h.addGroup("other", "westus")
	h.addGroup("nothing-here", "eastus")
	h.addContainerGroup("rg", webGroup)
	h.addContainerGroup("other", jobGroup)
	for _, img := range []string{"busybox:local", "nginx:latest"} {
		h.srv.Agent.AddImage(hostapi.Image{Name: img, Ref: "index.docker.io/library/" + img, Digest: "sha256:abc"})
	}
	return h
}

func TestOutputFormats(t *testing.T) {
	t.Parallel()
	h := outputHarness(t)
	show := []string{"container", "show", "-g", "rg", "-n", "web"}
	list := []string{"container", "list"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"show table", append(show, "-o", "table"), "" +
			"Name    ResourceGroup    Status    Image    IP:ports      Network    CPU/Memory       OsType    Location\n" +
			"------  ---------------  --------  -------  ------------  ---------  ---------------  --------  ----------\n" +
			"web     rg               Running   nginx    127.0.0.1:80  Public     1.0 core/1.5 gb  Linux     eastus\n"},
		{"list table: status from provisioningState, images deduplicated, requests summed", append(list, "-o", "table"), "" +
			"Name    ResourceGroup    Status     Image                   IP:ports      Network    CPU/Memory       OsType    Location\n" +
			"------  ---------------  ---------  ----------------------  ------------  ---------  ---------------  --------  ----------\n" +
			"job     other            Succeeded  busybox:local,alpine:3                           0.8 core/1.0 gb  Linux     westus\n" +
			"web     rg               Succeeded  nginx                   127.0.0.1:80  Public     1.0 core/1.5 gb  Linux     eastus\n"},
		{"list -g", append(list, "-g", "rg", "--query", "[].name", "-o", "tsv"), "web\n"},
		{"query scalar tsv", append(show, "--query", "ipAddress.ip", "-o", "tsv"), fakeagent.PublicIP + "\n"},
		{"query scalar json", append(show, "--query", "containers[0].image"), "\"nginx\"\n"},
		{"query hash tsv keeps the query's order", append(list, "--query", "[].{s:provisioningState, n:name, cpu:containers[0].resources.requests.cpu}", "-o", "tsv"),
			"Succeeded\tjob\t0.5\nSucceeded\tweb\t1\n"},
		{"query hash table keeps the query's order", append(list, "--query", "[].{Name:name, IP:ipAddress.ip, Policy:restartPolicy}", "-o", "table"), "" +
			"Name    IP         Policy\n" +
			"------  ---------  --------\n" +
			"job                Never\n" +
			"web     127.0.0.1  Always\n"},
		{"query hash yaml", append(show, "--query", "{name:name, cpu:containers[0].resources.requests.cpu, ports:ipAddress.ports[].port}", "-o", "yaml"),
			"cpu: 1\nname: web\nports:\n- 80\n"},
		{"query hash json, sorted keys", append(show, "--query", "{name:name, state:instanceView.state}"),
			"{\n  \"name\": \"web\",\n  \"state\": \"Running\"\n}\n"},
		{"tsv of objects: nested values empty, lists as length, sorted keys", append(list, "-g", "rg", "--query", "[].{b:ipAddress, a:containers, c:name, d:osType}", "-o", "tsv"),
			"\t1\tweb\tLinux\n"},
		{"jsonc", append(show, "--query", "{n:name, c:containers[0].resources.requests.cpu}", "-o", "jsonc"),
			"{\n  \x1b[94m\"c\"\x1b[0m: \x1b[36m1\x1b[0m,\n  \x1b[94m\"n\"\x1b[0m: \x1b[32m\"web\"\x1b[0m\n}\n"},
		{"none", append(show, "-o", "none"), ""},
		{"empty list", []string{"container", "list", "-g", "nothing-here"}, "[]\n"},
		{"group list table", []string{"group", "list", "-o", "table"}, "" +
			"Name          Location    Status\n" +
			"------------  ----------  ---------\n" +
			"nothing-here  eastus      Succeeded\n" +
			"other         westus      Succeeded\n" +
			"rg            eastus      Succeeded\n"},
		{"group show tsv", []string{"group", "show", "-n", "rg", "-o", "tsv"},
			"/subscriptions/" + h.srv.Subscription + "/resourceGroups/rg\teastus\trg\t\tMicrosoft.Resources/resourceGroups\n"},
		{"group exists", []string{"group", "exists", "-n", "rg"}, "true\n"},
		{"group exists not", []string{"group", "exists", "-n", "nope"}, "false\n"},
		{"image list table", []string{"image", "list", "-o", "table"}, "" +
			"Digest      Image          OsType    Reference\n" +
			"----------  -------------  --------  -------------------------------------\n" +
			"sha256:abc  busybox:local  Linux     index.docker.io/library/busybox:local\n" +
			"sha256:abc  nginx:latest   Linux     index.docker.io/library/nginx:latest\n"},
		{"tsv of a list of scalars: one per line, as az", []string{"account", "show", "--query", "[subscriptionId, displayName, state]", "-o", "tsv"},
			h.srv.Subscription + "\nSkiff\nEnabled\n"},
		{"tsv of a list of lists: one row each", []string{"container", "list", "--query", "[].[name, location]", "-o", "tsv"},
			"job\twestus\nweb\teastus\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.ok(tc.args...)
			if r.out != tc.want {
				t.Errorf("skiff %s:\n got: %q\nwant: %q\n%s", strings.Join(tc.args, " "), r.out, tc.want, r.out)
			}
		})
	}
}

func TestShowJSONIsFlattenedLikeAz(t *testing.T) {
	t.Parallel()
	h := outputHarness(t)
	r := h.ok("container", "show", "-g", "rg", "-n", "web")
	assertJSON(t, []byte(r.out), `{
	  "id": "/subscriptions/`+h.srv.Subscription+`/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web",
	  "name": "web", "type": "Microsoft.ContainerInstance/containerGroups", "location": "eastus", "resourceGroup": "rg",
	  "osType": "Linux", "restartPolicy": "Always", "provisioningState": "Succeeded", "sku": "Standard", "initContainers": [],
	  "instanceView": {"state": "Running", "events": [], "host": "local"},
	  "ipAddress": {"type": "Public", "ip": "127.0.0.1", "privateIp": "10.0.0.2", "ports": [{"protocol": "TCP", "port": 80}]},
	  "containers": [{"name": "web", "image": "nginx", "command": [], "ports": [{"protocol": "TCP", "port": 80}],
	    "environmentVariables": [{"name": "A", "value": "1"}],
	    "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
	    "instanceView": {"restartCount": 0, "currentState": {"state": "Running", "startTime": "2026-01-01T00:00:00Z"}, "ready": true,
	      "events": [
	        {"count":1,"name":"Pulling","message":"pulling image \"nginx\"","type":"Normal","firstTimestamp":"2026-01-01T00:00:00Z","lastTimestamp":"2026-01-01T00:00:00Z"},
	        {"count":1,"name":"Pulled","message":"Successfully pulled image \"nginx\"","type":"Normal","firstTimestamp":"2026-01-01T00:00:00Z","lastTimestamp":"2026-01-01T00:00:00Z"},
	        {"count":1,"name":"Started","message":"Started container","type":"Normal","firstTimestamp":"2026-01-01T00:00:00Z","lastTimestamp":"2026-01-01T00:00:00Z"}]}}]
	}`)
	if !strings.HasPrefix(r.out, "{\n  \"containers\": [\n") {
		t.Errorf("json is not az's sorted two-space layout:\n%s", r.out)
	}
}

func TestExportThenCreateFromTheFile(t *testing.T) {
	t.Parallel()
	h := outputHarness(t)
	file := filepath.Join(t.TempDir(), "web.yaml")
	h.ok("container", "export", "-g", "rg", "-n", "web", "-f", file)
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := `apiVersion: "2023-05-01"
location: eastus
name: web
properties:
  containers:
  - name: web
    properties:
      command: []
      environmentVariables:
      - name: A
        value: "1"
      image: nginx
      ports:
      - port: 80
        protocol: TCP
      resources:
        requests:
          cpu: 1
          memoryInGB: 1.5
  initContainers: []
  ipAddress:
    ip: 127.0.0.1
    ports:
    - port: 80
      protocol: TCP
    privateIp: 10.0.0.2
    type: Public
  osType: Linux
  restartPolicy: Always
type: Microsoft.ContainerInstance/containerGroups
`
	if string(got) != want {
		t.Fatalf("export:\n%s\nwant:\n%s", got, want)
	}

	// The export is what create --file takes back.
	h.ok("container", "delete", "-g", "rg", "-n", "web", "--yes")
	h.ok("container", "create", "-g", "rg", "-f", file, "-o", "none")
	put := h.rec.last("PUT", "/containerGroups/web")
	assertJSON(t, put.Body, `{"apiVersion":"2023-05-01","location":"eastus","name":"web","type":"Microsoft.ContainerInstance/containerGroups",
	  "properties":{"osType":"Linux","restartPolicy":"Always",
	    "containers":[{"name":"web","properties":{"image":"nginx","command":[],"ports":[{"protocol":"TCP","port":80}],"environmentVariables":[{"name":"A","value":"1"}],
	      "resources":{"requests":{"cpu":1,"memoryInGB":1.5}}}}],
	    "initContainers":[],
	    "ipAddress":{"ip":"127.0.0.1","privateIp":"10.0.0.2","type":"Public","ports":[{"protocol":"TCP","port":80}]}}}`)
}
