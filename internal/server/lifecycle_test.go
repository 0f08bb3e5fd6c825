package server

import (
	"encoding/json"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/lifecycle"
	"github.com/skiff-sh/skiff/internal/store"
)

// The lifecycle through HTTP, as a client of the API sees it: the status
// codes, the Azure-AsyncOperation header, the operation's end and what a
// GET shows after it. The controller and the fake agent run behind the
// server (newTestEnv).

// send is e.do for a request that may start an operation: it returns the
// status, the path and query of the Azure-AsyncOperation URL ("" if
// there is none) and the body.
func (e *testEnv) send(t *testing.T, method, path, body string) (int, string, []byte) {
	t.Helper()
	code, h, data := e.roundTrip(t, method, path, body)
	op := h.Get("Azure-AsyncOperation")
	if op == "" {
		return code, "", data
	}
	u, err := url.Parse(op)
	if err != nil {
		t.Fatalf("%s %s: Azure-AsyncOperation %q: %v", method, path, op, err)
	}
	if u.Host != strings.TrimPrefix(e.http.URL, "http://") {
		t.Errorf("%s %s: Azure-AsyncOperation %q points at another host", method, path, op)
	}
	return code, u.Path, data
}

// accepted sends a request that must answer code with an operation, and
// returns the operation's path.
func (e *testEnv) accepted(t *testing.T, method, path, body string, code int) string {
	t.Helper()
	got, op, data := e.send(t, method, path, body)
	if got != code || op == "" {
		t.Fatalf("%s %s: %d with Azure-AsyncOperation %q: %s; want %d with the header", method, path, got, op, data, code)
	}
	return op
}

// operation polls an operation as a client does, until it ends (up to
// 10 s), and checks how it ended.
func (e *testEnv) operation(t *testing.T, op, status, code string) api.OperationStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, h, body := e.roundTrip(t, "GET", op, nil)
		if c != 200 {
			t.Fatalf("GET %s: %d %s", op, c, body)
		}
		var st api.OperationStatus
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatal(err)
		}
		// A poller waits what Retry-After says while the operation runs
		// (az and the SDKs: 30 s without it), and stops after.
		if ra := h.Get("Retry-After"); (st.Status == api.OperationInProgress) != (ra == "1") {
			t.Errorf("operation %s %s: Retry-After %q", op, st.Status, ra)
		}
		if st.Status != api.OperationInProgress {
			got := ""
			if st.Error != nil {
				got = st.Error.Code
			}
			if st.Status != status || got != code || st.EndTime == "" {
				t.Errorf("operation %s: %s", op, body)
				t.Errorf("want %s with code %q and an end time", status, code)
			}
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s still InProgress after 10 s: %s", op, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// group GETs a container group and fails unless it answers 200.
func (e *testEnv) group(t *testing.T, name string) api.ContainerGroup {
	t.Helper()
	code, _, body := e.do(t, "GET", e.cgPath(name), nil)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", name, code, body)
	}
	var cg api.ContainerGroup
	if err := json.Unmarshal(body, &cg); err != nil {
		t.Fatal(err)
	}
	return cg
}

// wantState checks a group's provisioning state and instanceView state.
func wantState(t *testing.T, cg api.ContainerGroup, prov lifecycle.Provisioning, state lifecycle.GroupState) {
	t.Helper()
	got := ""
	if v := cg.Properties.InstanceView; v != nil {
		got = v.State
	}
	if cg.Properties.ProvisioningState != string(prov) || got != string(state) {
		t.Errorf("%s: provisioningState %q, instanceView.state %q; want %s, %s", cg.Name, cg.Properties.ProvisioningState, got, prov, state)
	}
}

func provisioningOf(t *testing.T, body []byte) string {
	t.Helper()
	var cg api.ContainerGroup
	if err := json.Unmarshal(body, &cg); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return cg.Properties.ProvisioningState
}

// publicGroup is groupJSON with a public address on port 80 and image.
func publicGroup(image string) string {
	return groupJSON(func(p, c map[string]any) {
		c["image"] = image
		p["ipAddress"] = map[string]any{"type": "Public", "ports": []map[string]any{{"port": 80}}}
	})
}

// A PUT answers 201 with an operation that ends Succeeded; the group then
// runs, with an address. The same PUT again is 200 and leaves it
// Succeeded; a PUT with other containers goes Pending and back to
// Succeeded once the host runs them.
func TestPutLifecycle(t *testing.T) {
	e := newTestEnv(t, nil)
	code, op, body := e.send(t, "PUT", e.cgPath("web"), publicGroup("nginx"))
	if code != 201 || op == "" {
		t.Fatalf("PUT: %d with Azure-AsyncOperation %q: %s; want 201 with the header", code, op, body)
	}
	if got := provisioningOf(t, body); got != string(lifecycle.Pending) {
		t.Errorf("PUT answered provisioningState %q, want Pending", got)
	}
	e.operation(t, op, api.OperationSucceeded, "")
	cg := e.group(t, "web")
	wantState(t, cg, lifecycle.Succeeded, lifecycle.GroupRunning)
	if ip := cg.Properties.IPAddress; ip == nil || ip.IP == "" {
		t.Errorf("a running public group without ipAddress.ip: %+v", ip)
	}
	if v := cg.Properties.Containers[0].Properties.InstanceView; v == nil || v.CurrentState == nil || v.CurrentState.State != string(lifecycle.ContainerRunning) {
		t.Errorf("container instanceView %+v, want Running", v)
	}

	code, op, body = e.send(t, "PUT", e.cgPath("web"), publicGroup("nginx"))
	if code != 200 || op == "" || provisioningOf(t, body) != string(lifecycle.Succeeded) {
		t.Fatalf("the same PUT again: %d with Azure-AsyncOperation %q: %s; want 200, Succeeded, with the header", code, op, body)
	}
	e.operation(t, op, api.OperationSucceeded, "")
	wantState(t, e.group(t, "web"), lifecycle.Succeeded, lifecycle.GroupRunning)

	code, op, body = e.send(t, "PUT", e.cgPath("web"), publicGroup("nginx:2"))
	if code != 200 || op == "" || provisioningOf(t, body) != string(lifecycle.Pending) {
		t.Fatalf("a PUT with another image: %d with Azure-AsyncOperation %q: %s; want 200, Pending, with the header", code, op, body)
	}
	e.operation(t, op, api.OperationSucceeded, "")
	cg = e.group(t, "web")
	wantState(t, cg, lifecycle.Succeeded, lifecycle.GroupRunning)
	if img := cg.Properties.Containers[0].Properties.Image; img != "nginx:2" {
		t.Errorf("image %q after the update, want nginx:2", img)
	}
	rec, err := e.srv.cfg.Store.GetContainerGroup(t.Context(), e.sub, "rg", "web")
	if err != nil || rec.Observed == nil || rec.Observed.Generation != rec.Generation {
		t.Errorf("after the update the host runs %+v, want generation %d", rec.Observed, rec.Generation)
	}
}

// A group the host cannot start: the operation fails with the host's
// error, and GET shows Failed.
func TestPutFails(t *testing.T) {
	e := newTestEnv(t, nil)
	e.host.Fail = func(*store.ContainerGroup) *api.ErrorBody {
		return &api.ErrorBody{Code: "InaccessibleImage", Message: "The image 'nginx' is not accessible."}
	}
	op := e.accepted(t, "PUT", e.cgPath("web"), groupJSON(nil), 201)
	e.operation(t, op, api.OperationFailed, "InaccessibleImage")
	if cg := e.group(t, "web"); cg.Properties.ProvisioningState != string(lifecycle.Failed) {
		t.Errorf("provisioningState %q, want Failed", cg.Properties.ProvisioningState)
	}
}

// DELETE answers 202 with an operation that ends Succeeded; then the
// group is 404, and deleting it again is 204.
func TestDeleteLifecycle(t *testing.T) {
	e := newTestEnv(t, nil)
	e.operation(t, e.accepted(t, "PUT", e.cgPath("web"), groupJSON(nil), 201), api.OperationSucceeded, "")
	e.operation(t, e.accepted(t, "DELETE", e.cgPath("web"), "", 202), api.OperationSucceeded, "")
	if code, arm, body := e.do(t, "GET", e.cgPath("web"), nil); code != 404 || arm != "ResourceNotFound" {
		t.Errorf("GET of a deleted group: %d %s", code, body)
	}
	if code, _, body := e.do(t, "DELETE", e.cgPath("web"), nil); code != 204 {
		t.Errorf("DELETE of a deleted group: %d %s, want 204", code, body)
	}
}

// A delete the host fails: the operation fails with the host's error, the
// group stays Deleting and refuses a PUT and a start (409).
func TestDeleteFails(t *testing.T) {
	e := newTestEnv(t, nil)
	e.host.FailDelete = func(*store.ContainerGroup) *api.ErrorBody {
		return &api.ErrorBody{Code: "ContainerGroupDeletionFailed", Message: "device or resource busy"}
	}
	e.operation(t, e.accepted(t, "PUT", e.cgPath("web"), groupJSON(nil), 201), api.OperationSucceeded, "")
	e.operation(t, e.accepted(t, "DELETE", e.cgPath("web"), "", 202), api.OperationFailed, "ContainerGroupDeletionFailed")
	if cg := e.group(t, "web"); cg.Properties.ProvisioningState != string(lifecycle.Deleting) {
		t.Errorf("provisioningState %q after a failed delete, want Deleting", cg.Properties.ProvisioningState)
	}
	if code, arm, body := e.do(t, "PUT", e.cgPath("web"), groupJSON(nil)); code != 409 || arm != "ContainerGroupTransitioning" {
		t.Errorf("PUT of a Deleting group: %d %s, want 409 ContainerGroupTransitioning", code, body)
	}
	if code, arm, body := e.do(t, "POST", e.cgPath("web")+"/start", nil); code != 409 || arm != "ContainerGroupTransitioning" {
		t.Errorf("start of a Deleting group: %d %s, want 409 ContainerGroupTransitioning", code, body)
	}
}

// Stop answers 204 once the group stopped; start answers 202 with an
// operation and restart 204 with one, each ending Succeeded with the group
// running again.
func TestStopStartRestart(t *testing.T) {
	e := newTestEnv(t, nil)
	e.operation(t, e.accepted(t, "PUT", e.cgPath("web"), groupJSON(nil), 201), api.OperationSucceeded, "")

	if code, _, body := e.do(t, "POST", e.cgPath("web")+"/stop", nil); code != 204 {
		t.Fatalf("stop: %d %s, want 204", code, body)
	}
	wantState(t, e.group(t, "web"), lifecycle.Succeeded, lifecycle.GroupStopped) // no wait: stop is synchronous

	e.operation(t, e.accepted(t, "POST", e.cgPath("web")+"/start", "", 202), api.OperationSucceeded, "")
	wantState(t, e.group(t, "web"), lifecycle.Succeeded, lifecycle.GroupRunning)

	e.operation(t, e.accepted(t, "POST", e.cgPath("web")+"/restart", "", 204), api.OperationSucceeded, "")
	wantState(t, e.group(t, "web"), lifecycle.Succeeded, lifecycle.GroupRunning)
}

// DELETE of a resource group answers 202 with an operation; while it runs
// the resource group takes no PUT (409 ResourceGroupBeingDeleted); once it
// ends Succeeded the resource group and its groups are gone.
func TestResourceGroupDeleteLifecycle(t *testing.T) {
	e := newTestEnv(t, nil)
	var holding atomic.Bool
	holding.Store(true)
	e.host.Hold = func(cg *store.ContainerGroup) bool {
		return holding.Load() && cg.Resource.Properties.ProvisioningState == string(lifecycle.Deleting)
	}
	for _, name := range []string{"a", "b"} {
		e.operation(t, e.accepted(t, "PUT", e.cgPath(name), groupJSON(nil), 201), api.OperationSucceeded, "")
	}
	op := e.accepted(t, "DELETE", e.rgPath(), "", 202)

	for what, path := range map[string]string{"a new group": e.cgPath("c"), "an existing group": e.cgPath("a")} {
		if code, arm, body := e.do(t, "PUT", path, groupJSON(nil)); code != 409 || arm != "ResourceGroupBeingDeleted" {
			t.Errorf("PUT of %s during the resource group's delete: %d %s, want 409 ResourceGroupBeingDeleted", what, code, body)
		}
	}
	if code, arm, body := e.do(t, "PUT", e.rgPath(), `{"location":"local"}`); code != 409 || arm != "ResourceGroupBeingDeleted" {
		t.Errorf("PUT of the resource group during its delete: %d %s, want 409 ResourceGroupBeingDeleted", code, body)
	}

	holding.Store(false)
	for _, name := range []string{"a", "b"} {
		e.host.Kick(t.Context(), e.sub, "rg", name)
	}
	e.operation(t, op, api.OperationSucceeded, "")
	if code, _, body := e.do(t, "GET", e.rgPath(), nil); code != 404 {
		t.Errorf("GET of a deleted resource group: %d %s", code, body)
	}
	code, _, body := e.do(t, "GET", "/subscriptions/"+e.sub+"/providers/Microsoft.ContainerInstance/containerGroups", nil)
	var list api.List[api.ContainerGroup]
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list.Value) != 0 {
		t.Errorf("groups of the subscription after its only resource group was deleted: %d %s, want none", code, body)
	}
}

// An operation is found only in its own subscription.
func TestOperationOfAnotherSubscription(t *testing.T) {
	e := newTestEnv(t, nil)
	other := "00000000-0000-0000-0000-00000000beef"
	if err := e.srv.cfg.Store.PutSubscription(t.Context(), store.Subscription{ID: other, DisplayName: "other", State: "Enabled"}); err != nil {
		t.Fatal(err)
	}
	op := e.accepted(t, "PUT", e.cgPath("web"), groupJSON(nil), 201)
	if !strings.HasPrefix(op, "/subscriptions/"+e.sub+"/") {
		t.Fatalf("operation %s not under the subscription %s", op, e.sub)
	}
	if code, arm, body := e.do(t, "GET", strings.Replace(op, e.sub, other, 1), nil); code != 404 || arm != "OperationNotFound" {
		t.Errorf("GET of an operation under another subscription: %d %s, want 404 OperationNotFound", code, body)
	}
	e.operation(t, op, api.OperationSucceeded, "")
}

// ARM ids fold case, and so do the store's lookups: a client that writes
// the subscription in upper case finds its group, and its operation too.
func TestOperationSubscriptionFoldsCase(t *testing.T) {
	e := newTestEnv(t, nil)
	op := e.accepted(t, "PUT", e.cgPath("web"), groupJSON(nil), 201)
	upper := strings.ToUpper(e.sub)
	if code, _, body := e.do(t, "GET", strings.Replace(e.cgPath("web"), e.sub, upper, 1), nil); code != 200 {
		t.Fatalf("GET of the group with the subscription in upper case: %d %s", code, body)
	}
	if code, _, body := e.do(t, "GET", strings.Replace(op, e.sub, upper, 1), nil); code != 200 {
		t.Errorf("GET of its operation with the subscription in upper case: %d %s, want 200", code, body)
	}
}

// TestListExpandInstanceView: a list shows no instance views, as ACI's
// does, unless it asks for them with Skiff's $expand=instanceView (the
// virtual node reads all its pods' states in one request); the next page
// asks again.
func TestListExpandInstanceView(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, n := range []string{"a", "b"} {
		e.operation(t, e.accepted(t, "PUT", e.cgPath(n), groupJSON(nil), 201), api.OperationSucceeded, "")
	}
	list := e.rgPath() + "/providers/Microsoft.ContainerInstance/containerGroups?api-version=2023-05-01"
	var plain, expanded api.List[api.ContainerGroup]
	_, _, body := e.do(t, "GET", list, nil)
	if err := json.Unmarshal(body, &plain); err != nil || len(plain.Value) != 2 || plain.Value[0].Properties.InstanceView != nil {
		t.Fatalf("plain list: %s", body)
	}
	_, _, body = e.do(t, "GET", list+"&$expand=instanceView&$top=1", nil)
	if err := json.Unmarshal(body, &expanded); err != nil || len(expanded.Value) != 1 || expanded.Value[0].Properties.InstanceView == nil ||
		expanded.Value[0].Properties.InstanceView.State != api.GroupRunning || !strings.Contains(expanded.NextLink, "instanceView") {
		t.Fatalf("expanded list: %s", body)
	}
}
