package e2e

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/store"
)

// TestStandbyPools: a standby pool (Microsoft.StandbyPool's api-versions)
// holds maxReadyCapacity running groups made from a profile, in its
// resource group and tagged with its name. A create in another resource
// group that names the pool is handed one of them: it answers at once
// with the group Running, isCreatedFromStandbyPool true, the config map
// the PUT gave in the running container's files, and its container not
// restarted (restart count 0, started before the PUT, the file it wrote
// as it started still there). The pool refills; the handed-over group
// outlives a restart of the server and is removed by its DELETE. An
// empty pool falls back to a normal create, or refuses it when
// failContainerGroupCreateOnReuseFailure is set. Bad references get
// their codes, and a DELETE removes the members, then the pool.
func TestStandbyPools(t *testing.T) {
	s := startServer(t)
	s.mustSkiff("image", "import", busyboxTar(t))
	s.mustSkiff("group", "create", "-n", "sp", "-l", "local")
	s.mustSkiff("group", "create", "-n", "apps", "-l", "local")
	sub := "/subscriptions/" + s.Subscription
	const v = "?api-version=2026-07-01"
	const pv = "?api-version=2025-03-01"
	profID := sub + "/resourceGroups/sp/providers/Microsoft.ContainerInstance/containerGroupProfiles/worker"
	poolID := sub + "/resourceGroups/sp/providers/Microsoft.StandbyPool/standbyContainerGroupPools/warm"
	if r := s.send("PUT", profID+v, map[string]any{"location": "local", "properties": map[string]any{
		"osType": "Linux", "restartPolicy": "Always",
		"containers": []map[string]any{{"name": "app", "properties": map[string]any{
			"image":     "busybox:local",
			"command":   []string{"sh", "-c", "date +%s > /tmp/started; exec sleep 3600"},
			"resources": map[string]any{"requests": map[string]any{"cpu": 0.1, "memoryInGB": 0.1}},
			"configMap": map[string]any{"keyValuePairs": map[string]string{"mode": "idle"}},
		}}},
	}}); r.Status >= 300 {
		t.Fatalf("PUT profile: %d %s", r.Status, r)
	}
	putPool := func(capacity int) reply {
		return s.send("PUT", poolID+pv, map[string]any{"location": "local", "properties": map[string]any{
			"elasticityProfile":        map[string]any{"maxReadyCapacity": capacity, "refillPolicy": "always"},
			"containerGroupProperties": map[string]any{"containerGroupProfile": map[string]any{"id": profID, "revision": 1}},
		}})
	}
	if r := putPool(2); r.Status != 201 || !strings.Contains(string(r.Body), `"provisioningState":"Succeeded"`) {
		t.Fatalf("PUT pool: %d %s", r.Status, r)
	}
	members := func() []string {
		t.Helper()
		var l struct {
			Value []struct {
				Name       string            `json:"name"`
				Tags       map[string]string `json:"tags"`
				Properties struct {
					ProvisioningState string `json:"provisioningState"`
				} `json:"properties"`
			}
		}
		r := s.send("GET", sub+"/resourceGroups/sp/providers/Microsoft.ContainerInstance/containerGroups"+v, nil)
		if err := json.Unmarshal(r.Body, &l); err != nil {
			t.Fatalf("list: %v %s", err, r)
		}
		var out []string
		for _, g := range l.Value {
			if g.Tags[api.StandbyPoolTag] == "warm" && g.Properties.ProvisioningState != "Deleting" {
				out = append(out, g.Name)
			}
		}
		sort.Strings(out)
		return out
	}
	type counts struct{ running, creating int }
	view := func() (counts, string) {
		t.Helper()
		var rv api.StandbyPoolRuntimeView
		r := s.send("GET", poolID+"/runtimeViews/latest"+pv, nil)
		if r.Status != 200 || json.Unmarshal(r.Body, &rv) != nil || len(rv.Properties.InstanceCountSummary) != 1 || rv.Properties.Status == nil {
			t.Fatalf("runtime view: %d %s", r.Status, r)
		}
		var c counts
		for _, sc := range rv.Properties.InstanceCountSummary[0].InstanceCountsByState {
			switch sc.State {
			case "Running":
				c.running = sc.Count
			case "Creating":
				c.creating = sc.Count
			}
		}
		return c, rv.Properties.Status.Code
	}
	waitReady := func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			c, health := view()
			ms := members()
			if c.running == n && len(ms) == n && (n == 0 || health == "HealthState/healthy") {
				return ms
			}
			if time.Now().After(deadline) {
				t.Fatalf("pool never held %d ready groups: counts %+v, health %s, members %v\n%s", n, c, health, ms, s.LogTail(30))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	before := waitReady(2)

	// A create in another resource group takes one.
	create := func(name string, failOnReuse bool, mode string) reply {
		ref := map[string]any{"id": poolID}
		if failOnReuse {
			ref["failContainerGroupCreateOnReuseFailure"] = true
		}
		return s.send("PUT", sub+"/resourceGroups/apps/providers/Microsoft.ContainerInstance/containerGroups/"+name+v, map[string]any{
			"location": "local", "properties": map[string]any{
				"containerGroupProfile": map[string]any{"id": profID, "revision": 1},
				"standbyPoolProfile":    ref,
				"containers":            []map[string]any{{"name": "app", "properties": map[string]any{"configMap": map[string]any{"keyValuePairs": map[string]string{"mode": mode}}}}},
			}})
	}
	asked := time.Now()
	r := create("job1", true, "busy")
	took := time.Since(asked)
	var got api.ContainerGroup
	if r.Status != 201 || json.Unmarshal(r.Body, &got) != nil {
		t.Fatalf("create from the pool: %d %s", r.Status, r)
	}
	if !got.Properties.IsCreatedFromStandbyPool || got.Properties.ProvisioningState != "Succeeded" || got.Properties.InstanceView == nil || got.Properties.InstanceView.State != "Running" {
		t.Fatalf("create from the pool answered isCreatedFromStandbyPool %v, provisioning %s, instance view %+v", got.Properties.IsCreatedFromStandbyPool,
			got.Properties.ProvisioningState, got.Properties.InstanceView)
	}
	if r.Header.Get("Azure-AsyncOperation") != "" {
		t.Errorf("a group handed over at once still came with an operation to poll")
	}
	t.Logf("create from the pool answered Running in %v", took)
	cat := func(name, file string) string {
		t.Helper()
		out, errOut, code := s.skiff("container", "exec", "-g", "apps", "-n", name, "--exec-command", `["cat","`+file+`"]`)
		if code != 0 {
			t.Fatalf("cat %s in %s: exit %d: %s", file, name, code, errOut)
		}
		return strings.TrimSpace(out)
	}
	if m := cat("job1", api.ConfigMapDir+"/app/mode"); m != "busy" {
		t.Errorf("the config map file of the handed-over group says %q, want busy", m)
	}
	// Started in the pool, before the PUT, and never again.
	c := got.Properties.Containers[0].Properties.InstanceView
	if c == nil || c.RestartCount != 0 || c.CurrentState == nil {
		t.Fatalf("container instance view %+v", c)
	}
	if st, err := time.Parse(time.RFC3339Nano, c.CurrentState.StartTime); err != nil || !st.Before(asked) {
		t.Errorf("the container started at %q, not before the create (%v)", c.CurrentState.StartTime, asked)
	}
	started := cat("job1", "/tmp/started")
	if ev := s.waitGroupEvent("apps", "job1", "StandbyPoolHandOver", "warm", 5*time.Second); ev.State != "Running" {
		t.Errorf("job1 is %s", ev.State)
	}
	// One member went, and the pool refills with a new one.
	after := waitReady(2)
	var taken []string
	for _, m := range before {
		if !slices.Contains(after, m) {
			taken = append(taken, m)
		}
	}
	if len(taken) != 1 {
		t.Fatalf("members before %v, after %v: want exactly one taken", before, after)
	}
	// job1's container is the one runc ran for the member it took.
	runcID := store.RuntimeID(s.Subscription, "sp", taken[0]) + "_app"
	if !slices.Contains(runcList(t, s.hostDir()), runcID) {
		t.Fatalf("runc does not list %s, the container of the member job1 took: %v", runcID, runcList(t, s.hostDir()))
	}

	// The handed-over group outlives a restart of the server, as it was.
	s.Stop(syscall.SIGKILL)
	s.Start()
	s.waitRunning("apps", "job1")
	if now := cat("job1", "/tmp/started"); now != started {
		t.Errorf("after a restart of the server the container started again (%s, was %s)", now, started)
	}
	waitReady(2)

	// An empty pool: a normal create, or none when asked so.
	if r := s.send("PATCH", poolID+pv, map[string]any{"properties": map[string]any{"elasticityProfile": map[string]any{"maxReadyCapacity": 0}}}); r.Status != 200 {
		t.Fatalf("PATCH pool: %d %s", r.Status, r)
	}
	waitReady(0)
	if r := create("job2", false, "calm"); r.Status != 201 || strings.Contains(string(r.Body), `"isCreatedFromStandbyPool":true`) {
		t.Fatalf("create from an empty pool: %d %s", r.Status, r)
	}
	s.waitRunning("apps", "job2")
	if m := cat("job2", api.ConfigMapDir+"/app/mode"); m != "calm" {
		t.Errorf("job2's config map says %q, want calm", m)
	}
	r = create("job3", true, "x")
	if r.Status != 409 || !strings.Contains(string(r.Body), "StandbyPoolReuseFailed") {
		t.Fatalf("create from an empty pool with failContainerGroupCreateOnReuseFailure: %d %s", r.Status, r)
	}
	if r := s.send("GET", sub+"/resourceGroups/apps/providers/Microsoft.ContainerInstance/containerGroups/job3"+v, nil); r.Status != 404 {
		t.Errorf("the refused create left job3: %d", r.Status)
	}

	// Bad input.
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"not a pool id", "PUT", sub + "/resourceGroups/apps/providers/Microsoft.ContainerInstance/containerGroups/bad1" + v,
			map[string]any{"location": "local", "properties": map[string]any{"standbyPoolProfile": map[string]any{"id": "/subscriptions/x/pools/p"}}}, 400, "InvalidStandbyPoolReference"},
		{"no such pool", "PUT", sub + "/resourceGroups/apps/providers/Microsoft.ContainerInstance/containerGroups/bad2" + v,
			map[string]any{"location": "local", "properties": map[string]any{"standbyPoolProfile": map[string]any{"id": poolID + "x"}}}, 400, "StandbyPoolNotFound"},
		{"refill never", "PUT", poolID + pv, map[string]any{"location": "local", "properties": map[string]any{
			"elasticityProfile":        map[string]any{"maxReadyCapacity": 1, "refillPolicy": "never"},
			"containerGroupProperties": map[string]any{"containerGroupProfile": map[string]any{"id": profID}}}}, 400, "InvalidRefillPolicy"},
		{"no capacity", "PUT", poolID + pv, map[string]any{"location": "local", "properties": map[string]any{
			"containerGroupProperties": map[string]any{"containerGroupProfile": map[string]any{"id": profID}}}}, 400, "InvalidElasticityProfile"},
		{"subnets", "PUT", poolID + pv, map[string]any{"location": "local", "properties": map[string]any{
			"elasticityProfile":        map[string]any{"maxReadyCapacity": 1},
			"containerGroupProperties": map[string]any{"containerGroupProfile": map[string]any{"id": profID}, "subnetIds": []map[string]string{{"id": "/x"}}}}}, 400, "SubnetIdsNotSupported"},
		{"pool name too short", "PUT", sub + "/resourceGroups/sp/providers/Microsoft.StandbyPool/standbyContainerGroupPools/ab" + pv, map[string]any{"location": "local", "properties": map[string]any{
			"elasticityProfile":        map[string]any{"maxReadyCapacity": 1},
			"containerGroupProperties": map[string]any{"containerGroupProfile": map[string]any{"id": profID}}}}, 400, "InvalidResourceName"},
		{"container api-version on a pool", "GET", poolID + v, nil, 400, "InvalidApiVersionParameter"},
		{"no such view", "GET", poolID + "/runtimeViews/other" + pv, nil, 404, "ResourceNotFound"},
	} {
		r := s.send(tc.method, tc.path, tc.body)
		if r.Status != tc.status || !strings.Contains(string(r.Body), `"code":"`+tc.code+`"`) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.Status, r, tc.status, tc.code)
		}
	}

	// The handed-over group's DELETE removes its containers.
	s.mustSkiff("container", "delete", "-g", "apps", "-n", "job1", "--yes")
	if slices.Contains(runcList(t, s.hostDir()), runcID) {
		t.Errorf("runc still lists %s after job1's delete", runcID)
	}
	// The pool's DELETE removes its members, then the pool.
	if r := putPool(1); r.Status != 200 {
		t.Fatalf("PUT pool again: %d %s", r.Status, r)
	}
	waitReady(1)
	if r := s.send("DELETE", poolID+pv, nil); r.Status != 202 {
		t.Fatalf("DELETE pool: %d %s", r.Status, r)
	}
	deadline := time.Now().Add(60 * time.Second)
	for s.send("GET", poolID+pv, nil).Status != 404 || len(members()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("pool or members left after the DELETE: %v", members())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := s.send("GET", sub+"/providers/Microsoft.StandbyPool/standbyContainerGroupPools"+pv, nil); r.Status != 200 || strings.Contains(string(r.Body), "warm") {
		t.Errorf("list after the DELETE: %d %s", r.Status, r)
	}
}

// TestStandbyPoolCommands: the standby pool commands as a user types them
// (az's standby-container-group-pool grammar), and container create's
// --container-group-profile-id, --standby-pool-profile-id and
// --fail-container-group-create-on-reuse-failure.
func TestStandbyPoolCommands(t *testing.T) {
	s := startServer(t)
	s.mustSkiff("image", "import", busyboxTar(t))
	s.mustSkiff("group", "create", "-n", "cli", "-l", "local")
	s.mustSkiff("container", "profile", "create", "-g", "cli", "-n", "worker", "--image", "busybox:local",
		"--command-line", "sleep 3600", "--cpu", "0.1", "--memory", "0.1", "--config-map", "mode=idle")
	if _, errOut, code := s.skiff("standby-container-group-pool", "create", "-g", "cli", "-n", "warm"); code == 0 || !strings.Contains(errOut, "--max-ready-capacity") {
		t.Errorf("create without capacity: exit %d, %q", code, errOut)
	}
	out := s.mustSkiff("standby-container-group-pool", "create", "-g", "cli", "-n", "warm", "--max-ready-capacity", "1",
		"--refill-policy", "always", "--container-profile-id", "worker", "--profile-revision", "1", "-o", "json")
	if !strings.Contains(out, `"maxReadyCapacity": 1`) {
		t.Errorf("create: %s", out)
	}
	ready := func() string {
		return strings.TrimSpace(s.mustSkiff("standby-container-group-pool", "status", "-g", "cli", "-n", "warm",
			"--query", "properties.instanceCountSummary[0].instanceCountsByState[?state=='Running'].count | [0]", "-o", "tsv"))
	}
	deadline := time.Now().Add(60 * time.Second)
	for ready() != "1" {
		if time.Now().After(deadline) {
			t.Fatalf("the pool never held a ready group: %s", s.mustSkiff("standby-container-group-pool", "status", "-g", "cli", "-n", "warm"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	out = s.mustSkiff("container", "create", "-g", "cli", "-n", "job", "--container-group-profile-id", "worker",
		"--standby-pool-profile-id", "warm", "--config-map", "mode=busy", "-o", "json")
	if !strings.Contains(out, `"isCreatedFromStandbyPool": true`) {
		t.Errorf("container create from the pool: %s", out)
	}
	if m, _, code := s.skiff("container", "exec", "-g", "cli", "-n", "job", "--exec-command", `["cat","`+api.ConfigMapDir+`/worker/mode"]`); code != 0 || m != "busy" {
		t.Errorf("the config map of the group from the pool: exit %d, %q", code, m)
	}
	s.mustSkiff("standby-container-group-pool", "update", "-g", "cli", "-n", "warm", "--max-ready-capacity", "0")
	for ready() != "0" || strings.TrimSpace(s.mustSkiff("container", "list", "-g", "cli", "--query", `length([?tags."skiff.standbyPool"=='warm'])`, "-o", "tsv")) != "0" {
		if time.Now().After(deadline) {
			t.Fatalf("the pool never emptied")
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, errOut, code := s.skiff("container", "create", "-g", "cli", "-n", "job2", "--container-group-profile-id", "worker",
		"--standby-pool-profile-id", "warm", "--fail-container-group-create-on-reuse-failure")
	if code == 0 || !strings.Contains(errOut, "StandbyPoolReuseFailed") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("create from an empty pool with --fail-container-group-create-on-reuse-failure: exit %d, %q", code, errOut)
	}
	if out := s.mustSkiff("standby-container-group-pool", "list", "-g", "cli", "--query", "[].name", "-o", "tsv"); strings.TrimSpace(out) != "warm" {
		t.Errorf("list: %q", out)
	}
	s.mustSkiff("standby-container-group-pool", "delete", "-g", "cli", "-n", "warm", "--yes")
	for {
		_, errOut, code := s.skiff("standby-container-group-pool", "show", "-g", "cli", "-n", "warm")
		if code != 0 {
			if !strings.Contains(errOut, "ResourceNotFound") {
				t.Errorf("show after delete: %q", errOut)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pool was never deleted")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A resource group's delete takes its pools and their members with it.
	s.mustSkiff("standby-container-group-pool", "create", "-g", "cli", "-n", "warm2", "--max-ready-capacity", "1", "--container-profile-id", "worker")
	s.mustSkiff("group", "delete", "-n", "cli", "--yes")
	if out := s.mustSkiff("standby-container-group-pool", "list", "--query", "[].name", "-o", "tsv"); strings.TrimSpace(out) != "" {
		t.Errorf("pools left after their resource group's delete: %q", out)
	}
}
