package api

import (
	"strings"
	"testing"
)

// azFileBody is what `az container create --file` PUTs: the YAML document
// as JSON, with apiVersion, type and name at the top level.
const azFileBody = `{
  "apiVersion": "2021-10-01",
  "name": "hello",
  "location": "westus",
  "type": "Microsoft.ContainerInstance/containerGroups",
  "tags": {"env": "dev"},
  "properties": {
    "osType": "Linux",
    "containers": [{
      "name": "web",
      "properties": {
        "image": "busybox",
        "command": ["httpd", "-f"],
        "ports": [{"port": 8080}],
        "environmentVariables": [{"name": "A", "secureValue": "s"}],
        "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.3}, "limits": {"cpu": 0.5}},
        "instanceView": {"restartCount": 3}
      }
    }],
    "ipAddress": {"type": "Public", "ports": [{"protocol": "TCP", "port": 8080}], "fqdn": "x.example"},
    "volumes": [{"name": "sec", "secret": {"k": "dg=="}}, {"name": "scratch", "emptyDir": {}}],
    "provisioningState": "Succeeded",
    "instanceView": {"state": "Running"},
    "someFutureField": {"x": [1, 2]}
  }
}`

func TestDecodeContainerGroup(t *testing.T) {
	cg, err := DecodeContainerGroup([]byte(azFileBody))
	if err != nil {
		t.Fatal(err)
	}
	c := cg.Properties.Containers[0]
	if cg.Name != "hello" || cg.Location != "westus" || cg.Tags["env"] != "dev" || c.Name != "web" ||
		c.Properties.Image != "busybox" || c.Properties.Resources.Requests.CPU != 0.5 ||
		c.Properties.Resources.Requests.MemoryInGB != 0.3 || c.Properties.Resources.Limits.CPU != 0.5 ||
		c.Properties.Ports[0].Port != 8080 || c.Properties.EnvironmentVariables[0].SecureValue != "s" ||
		cg.Properties.Volumes[0].Secret["k"] != "dg==" || cg.Properties.Volumes[1].EmptyDir == nil {
		t.Fatalf("decoded wrong: %+v", cg)
	}
	// Read-only fields the client sent are dropped.
	if cg.Properties.ProvisioningState != "" || cg.Properties.InstanceView != nil ||
		c.Properties.InstanceView != nil || cg.Properties.IPAddress.FQDN != "" {
		t.Fatalf("read-only fields kept: %+v", cg.Properties)
	}
	if err := ValidateContainerGroup(cg); err != nil {
		t.Fatalf("az --file body does not validate: %v", err)
	}
}

func TestDecodeContainerGroupCaseInsensitiveKeys(t *testing.T) {
	cg, err := DecodeContainerGroup([]byte(`{"Location":"westus","Properties":{"Containers":[{"Name":"a"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if cg.Location != "westus" || len(cg.Properties.Containers) != 1 || cg.Properties.Containers[0].Name != "a" {
		t.Fatalf("got %+v", cg)
	}
}

// TestDecodePortStrings: api-version 2017-08-01-preview's templates (seed
// 000) give a published port as a string; it decodes as the number, and a
// string that is not a port number is refused.
func TestDecodePortStrings(t *testing.T) {
	cg, err := DecodeContainerGroup([]byte(`{"location":"westus","properties":{"osType":"Linux","containers":[{"name":"a",
		"properties":{"image":"x","resources":{"requests":{"cpu":1,"memoryInGb":1.5}},"ports":[{"port":"8080"}]}}],
		"ipAddress":{"type":"Public","ports":[{"protocol":"tcp","port":"80"}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cg.Properties.IPAddress.Ports[0]; got.Port != 80 || got.Protocol != "tcp" {
		t.Errorf("ipAddress port = %+v, want 80/tcp", got)
	}
	c := cg.Properties.Containers[0].Properties
	if c.Ports[0].Port != 8080 || c.Resources.Requests.MemoryInGB != 1.5 {
		t.Errorf("container = %+v, want port 8080 and 1.5 GB", c)
	}
	for _, bad := range []string{`"eighty"`, `"80.5"`, `"99999999999"`, `true`} {
		_, err := DecodeContainerGroup([]byte(`{"properties":{"ipAddress":{"ports":[{"port":` + bad + `}]}}}`))
		checkErr(t, err, "InvalidRequestContent", nil, "port")
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name, body, inMsg string
	}{
		{"empty", "", "empty"},
		{"whitespace", " \n\t", "empty"},
		{"array", `[1]`, "JSON object"},
		{"null", `null`, "JSON object"},
		{"truncated", `{"properties": {"containers": [`, "unexpected end of JSON input"},
		{"syntax with position", "{\n  \"location\": \"westus\",\n  \"properties\": {,}\n}", "Line 3, position 18"},
		{"garbage", `hello`, "Line 1, position 1"},
		{"trailing data", `{"properties":{}} x`, "after top-level value"},
		{"wrong type", "{\"properties\": {\"containers\": [{\"name\": \"a\", \"properties\": {\"resources\": {\"requests\": {\"cpu\": \"one\"}}}}]}}",
			"Path 'properties.containers.properties.resources.requests.cpu'"},
		{"port overflow", `{"properties": {"ipAddress": {"ports": [{"port": 99999999999}]}}}`, "integer"},
		{"no properties", `{"location": "westus", "name": "x"}`, "'properties' are required"},
		{"null properties", `{"properties": null}`, "'properties' are required"},
		{"properties not object", `{"properties": 5}`, "Path 'properties'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cg, err := DecodeContainerGroup([]byte(tc.body))
			if cg != nil {
				t.Fatalf("got a group with error %v", err)
			}
			checkErr(t, err, "InvalidRequestContent", nil, tc.inMsg)
		})
	}
}

func TestDecodeBOM(t *testing.T) {
	if _, err := DecodeContainerGroup([]byte("\xef\xbb\xbf" + azFileBody)); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeResourceGroup(t *testing.T) {
	rg, err := DecodeResourceGroup([]byte(`{"location":"westus","tags":{"a":"b"},"id":"/x","properties":{"provisioningState":"Succeeded"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if rg.Location != "westus" || rg.Tags["a"] != "b" || rg.ID != "" || rg.Properties.ProvisioningState != "" {
		t.Fatalf("got %+v", rg)
	}
	_, err = DecodeResourceGroup([]byte(`{"location":`))
	checkErr(t, err, "InvalidRequestContent", nil, "")
	_, err = DecodeResourceGroup(nil)
	checkErr(t, err, "InvalidRequestContent", nil, "empty")
}

func TestDecodeTagsPatch(t *testing.T) {
	tags, err := DecodeTagsPatch([]byte(`{"tags":{"a":"1","b":""}}`))
	if err != nil || len(tags) != 2 || tags["a"] != "1" {
		t.Fatalf("got %v, %v", tags, err)
	}
	tags, err = DecodeTagsPatch([]byte(`{"tags":{}}`))
	if err != nil || tags == nil || len(tags) != 0 {
		t.Fatalf("empty tags must be a non-nil empty map: %#v, %v", tags, err)
	}
	tags, err = DecodeTagsPatch([]byte(`{"location":"westus"}`))
	if err != nil || tags != nil {
		t.Fatalf("absent tags must be nil: %#v, %v", tags, err)
	}
	_, err = DecodeTagsPatch([]byte(`{"tags":{"a":1}}`))
	checkErr(t, err, "InvalidRequestContent", nil, "Path 'tags'")
	_, err = DecodeTagsPatch([]byte(`{"tags":["a"]}`))
	checkErr(t, err, "InvalidRequestContent", nil, "")
	_, err = DecodeTagsPatch(nil)
	checkErr(t, err, "InvalidRequestContent", nil, "")
}

func TestDecodeExecRequest(t *testing.T) {
	req, err := DecodeExecRequest([]byte(`{"command":"/bin/sh","terminalSize":{"rows":24,"cols":80}}`))
	if err != nil || req.Command != "/bin/sh" || req.TerminalSize.Rows != 24 || req.TerminalSize.Cols != 80 {
		t.Fatalf("got %+v, %v", req, err)
	}
	if req, err := DecodeExecRequest([]byte(`{"command":"ls"}`)); err != nil || req.TerminalSize != nil {
		t.Fatalf("got %+v, %v", req, err)
	}
	for _, body := range []string{
		``, `{}`, `{"command":"  "}`, `{"command":["sh"]}`,
		`{"command":"sh","terminalSize":{"rows":-1,"cols":80}}`,
		`{"command":"sh","terminalSize":{"rows":24,"cols":70000}}`,
	} {
		_, err := DecodeExecRequest([]byte(body))
		checkErr(t, err, "InvalidRequestContent", nil, "")
	}
}

func TestPosition(t *testing.T) {
	body := []byte("ab\ncd\nef")
	for _, tc := range []struct {
		off        int64
		line, char int
	}{{0, 1, 0}, {1, 1, 1}, {4, 2, 1}, {8, 3, 2}, {100, 3, 2}, {-1, 1, 0}} {
		if l, c := position(body, tc.off); l != tc.line || c != tc.char {
			t.Errorf("position(%d) = %d,%d, want %d,%d", tc.off, l, c, tc.line, tc.char)
		}
	}
	if !strings.Contains(jsonKind(nil), "value") {
		t.Error("jsonKind(nil)")
	}
}
