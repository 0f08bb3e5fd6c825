package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
)

// lockedBuffer is a log sink for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (e *testEnv) accountPath(rg, name string) string {
	return "/subscriptions/" + e.sub + "/resourceGroups/" + rg + "/providers/Microsoft.Storage/storageAccounts/" + name
}

const azAccountBody = `{"sku":{"name":"Standard_LRS"},"kind":"StorageV2","location":"local","properties":{"encryption":{"services":{"blob":{}},"keySource":"Microsoft.Storage"}}}`

// keysOf lists an account's keys through the API.
func (e *testEnv) keysOf(t *testing.T, rg, name string) []api.StorageAccountKey {
	t.Helper()
	code, _, body := e.do(t, "POST", e.accountPath(rg, name)+"/listKeys?api-version=2022-09-01", nil)
	var keys api.StorageAccountListKeysResult
	if code != 200 || json.Unmarshal(body, &keys) != nil || len(keys.Keys) != 2 {
		t.Fatalf("listKeys: %d %s", code, body)
	}
	return keys.Keys
}

// The account's life through the API, as az 2.45 drives it: PUT answers
// 200 (never 201), reads never show a key, listKeys and regenerateKey
// do, a second PUT updates, DELETE answers 200 then 204.
func TestStorageAccountLifecycle(t *testing.T) {
	logs := &lockedBuffer{}
	e := newTestEnv(t, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	acct := e.accountPath("rg", "mystore1")
	code, _, body := e.do(t, "PUT", acct+"?api-version=2022-09-01", azAccountBody)
	if code != 200 {
		t.Fatalf("PUT: %d %s, want 200", code, body)
	}
	var sa api.StorageAccount
	if err := json.Unmarshal(body, &sa); err != nil {
		t.Fatal(err)
	}
	p := sa.Properties
	if sa.ID != acct || sa.Name != "mystore1" || sa.Type != "Microsoft.Storage/storageAccounts" || sa.Kind != "StorageV2" ||
		sa.Sku.Name != "Standard_LRS" || sa.Sku.Tier != "Standard" || sa.Location != "local" || p.ProvisioningState != "Succeeded" ||
		p.PrimaryEndpoints.File != e.http.URL+"/storage/file/mystore1/" || p.PrimaryLocation != "local" || p.StatusOfPrimary != "available" ||
		p.CreationTime == nil || p.AccessTier != "Hot" {
		t.Fatalf("PUT answered %s", body)
	}
	keys := e.keysOf(t, "rg", "mystore1")
	for i, k := range keys {
		if k.KeyName != []string{"key1", "key2"}[i] || len(k.Value) != 88 || k.Permissions != "FULL" || k.CreationTime == nil {
			t.Fatalf("key %d: %+v", i, k)
		}
	}
	secrets := []string{keys[0].Value, keys[1].Value}
	noKey := func(what string, b []byte) {
		t.Helper()
		for _, k := range secrets {
			if strings.Contains(string(b), k) {
				t.Fatalf("%s holds a key: %s", what, b)
			}
		}
	}
	noKey("the PUT", body)

	code, _, body = e.do(t, "GET", acct, nil)
	if code != 200 || !strings.Contains(string(body), `"provisioningState":"Succeeded"`) {
		t.Fatalf("GET: %d %s", code, body)
	}
	noKey("GET", body)
	for _, list := range []string{"/subscriptions/" + e.sub + "/providers/Microsoft.Storage/storageAccounts", e.rgPath() + "/providers/Microsoft.Storage/storageAccounts"} {
		code, _, body = e.do(t, "GET", list, nil)
		var l api.List[api.StorageAccount]
		if code != 200 || json.Unmarshal(body, &l) != nil || len(l.Value) != 1 || l.Value[0].Name != "mystore1" {
			t.Fatalf("GET %s: %d %s", list, code, body)
		}
		noKey("a list", body)
	}

	// A PUT again updates; tags by PATCH; the keys stay.
	code, _, body = e.do(t, "PUT", acct, `{"sku":{"name":"Standard_GRS"},"location":"local","tags":{"a":"b"}}`)
	if code != 200 || !strings.Contains(string(body), `"Standard_GRS"`) || !strings.Contains(string(body), `"a":"b"`) {
		t.Fatalf("PUT again: %d %s", code, body)
	}
	code, _, body = e.do(t, "PATCH", acct, `{"tags":{"c":"d"}}`)
	if code != 200 || !strings.Contains(string(body), `"tags":{"c":"d"}`) || !strings.Contains(string(body), `"Standard_GRS"`) {
		t.Fatalf("PATCH: %d %s", code, body)
	}
	if k := e.keysOf(t, "rg", "mystore1"); k[0].Value != keys[0].Value || k[1].Value != keys[1].Value {
		t.Fatal("an update changed the keys")
	}

	// regenerateKey: key1 changes, key2 not.
	code, _, body = e.do(t, "POST", acct+"/regenerateKey", `{"keyName":"key1"}`)
	var renewed api.StorageAccountListKeysResult
	if code != 200 || json.Unmarshal(body, &renewed) != nil || len(renewed.Keys) != 2 ||
		renewed.Keys[0].Value == keys[0].Value || renewed.Keys[1].Value != keys[1].Value {
		t.Fatalf("regenerateKey: %d %s", code, body)
	}
	secrets = append(secrets, renewed.Keys[0].Value)
	if code, arm, body := e.do(t, "POST", acct+"/regenerateKey", `{"keyName":"kerb1"}`); code != 400 || arm != "InvalidValuesForRequestParameters" {
		t.Fatalf("regenerateKey kerb1: %d %s", code, body)
	}
	// api-version 2015-06-15's shapes: key1/key2, accountType.
	code, _, body = e.do(t, "POST", acct+"/listKeys?api-version=2015-06-15", nil)
	var old api.StorageAccountKeysV2015
	if code != 200 || json.Unmarshal(body, &old) != nil || old.Key1 != renewed.Keys[0].Value || old.Key2 != keys[1].Value {
		t.Fatalf("listKeys of 2015-06-15: %d %s", code, body)
	}
	if code, _, body := e.do(t, "GET", acct+"?api-version=2015-06-15", nil); code != 200 || !strings.Contains(string(body), `"accountType":"Standard_GRS"`) {
		t.Fatalf("GET of 2015-06-15: %d %s", code, body)
	}

	// The file service.
	if code, _, body := e.do(t, "GET", acct+"/fileServices/default", nil); code != 200 || !strings.Contains(string(body), `"name":"default"`) {
		t.Fatalf("GET fileServices/default: %d %s", code, body)
	}
	if code, _, body := e.do(t, "GET", acct+"/fileServices", nil); code != 200 || !strings.Contains(string(body), `"value":[{`) {
		t.Fatalf("GET fileServices: %d %s", code, body)
	}

	// checkNameAvailability.
	check := "/subscriptions/" + e.sub + "/providers/Microsoft.Storage/checkNameAvailability"
	for name, want := range map[string]string{"mystore1": `"nameAvailable":false,"reason":"AlreadyExists"`, "free1": `"nameAvailable":true`, "No": `"reason":"AccountNameInvalid"`} {
		code, _, body := e.do(t, "POST", check, `{"name":"`+name+`","type":"Microsoft.Storage/storageAccounts"}`)
		if code != 200 || !strings.Contains(string(body), want) {
			t.Errorf("checkNameAvailability %s: %d %s", name, code, body)
		}
	}

	if code, _, body := e.do(t, "DELETE", acct, nil); code != 200 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if code, arm, body := e.do(t, "GET", acct, nil); code != 404 || arm != "StorageAccountNotFound" {
		t.Fatalf("GET after DELETE: %d %s", code, body)
	}
	if code, _, body := e.do(t, "DELETE", acct, nil); code != 204 {
		t.Fatalf("DELETE again: %d %s", code, body)
	}
	for _, k := range secrets {
		if strings.Contains(logs.String(), k) {
			t.Fatal("a key reached the server's log")
		}
	}
}

// Bad requests get ARM's codes and change nothing.
func TestStorageAccountErrors(t *testing.T) {
	e := newTestEnv(t, nil)
	if code, _, body := e.do(t, "PUT", e.accountPath("rg", "taken1"), azAccountBody); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if code, _, body := e.do(t, "PUT", "/subscriptions/"+e.sub+"/resourceGroups/rg2", `{"location":"local"}`); code != 201 {
		t.Fatalf("rg2: %d %s", code, body)
	}
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"bad name", "PUT", e.accountPath("rg", "Bad-Name"), azAccountBody, 400, "AccountNameInvalid"},
		{"short name", "PUT", e.accountPath("rg", "ab"), azAccountBody, 400, "AccountNameInvalid"},
		{"no sku", "PUT", e.accountPath("rg", "nosku1"), `{"location":"local"}`, 400, "InvalidRequestContent"},
		{"bad sku", "PUT", e.accountPath("rg", "badsku1"), `{"sku":{"name":"Gold"}}`, 400, "InvalidValuesForRequestParameters"},
		{"malformed", "PUT", e.accountPath("rg", "bad1"), `{"sku":`, 400, "InvalidRequestContent"},
		{"no resource group", "PUT", e.accountPath("nope", "fresh1"), azAccountBody, 404, "ResourceGroupNotFound"},
		{"taken in the subscription", "PUT", e.accountPath("rg2", "taken1"), azAccountBody, 409, "StorageAccountAlreadyExists"},
		{"old api-version", "PUT", e.accountPath("rg", "fresh1") + "?api-version=2014-01-01", azAccountBody, 400, "InvalidApiVersionParameter"},
		{"get absent", "GET", e.accountPath("rg", "absent1"), "", 404, "StorageAccountNotFound"},
		{"get in another resource group", "GET", e.accountPath("rg2", "taken1"), "", 404, "StorageAccountNotFound"},
		{"keys of absent", "POST", e.accountPath("rg", "absent1") + "/listKeys", "", 404, "StorageAccountNotFound"},
		{"patch absent", "PATCH", e.accountPath("rg", "absent1"), `{"tags":{}}`, 404, "StorageAccountNotFound"},
		{"share of absent", "PUT", e.accountPath("rg", "absent1") + "/fileServices/default/shares/data", `{}`, 404, "StorageAccountNotFound"},
		{"bad share name", "PUT", e.accountPath("rg", "taken1") + "/fileServices/default/shares/Bad_Share", `{}`, 400, "InvalidResourceName"},
		{"share quota", "PUT", e.accountPath("rg", "taken1") + "/fileServices/default/shares/big", `{"properties":{"shareQuota":200000}}`, 400, "InvalidValuesForRequestParameters"},
		{"share absent", "GET", e.accountPath("rg", "taken1") + "/fileServices/default/shares/absent", "", 404, "ShareNotFound"},
		{"another file service", "GET", e.accountPath("rg", "taken1") + "/fileServices/other/shares", "", 404, "InvalidResourceType"},
		{"check name of another type", "POST", "/subscriptions/" + e.sub + "/providers/Microsoft.Storage/checkNameAvailability", `{"name":"x","type":"Microsoft.Web/sites"}`, 400, "InvalidValuesForRequestParameters"},
	}
	for _, c := range cases {
		var body any
		if c.body != "" {
			body = c.body
		}
		code, arm, data := e.do(t, c.method, c.path, body)
		if code != c.status || arm != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, code, data, c.status, c.code)
		}
	}
	code, _, body := e.do(t, "GET", "/subscriptions/"+e.sub+"/providers/Microsoft.Storage/storageAccounts", nil)
	var l api.List[api.StorageAccount]
	if code != 200 || json.Unmarshal(body, &l) != nil || len(l.Value) != 1 {
		t.Fatalf("after the refusals the subscription lists: %s", body)
	}
}

// Shares: PUT 201 then 200, list, GET, DELETE (its data removed from the
// host) then 204; created again, a share is another one.
func TestFileShares(t *testing.T) {
	e := newTestEnv(t, nil)
	acct := e.accountPath("rg", "files1")
	if code, _, body := e.do(t, "PUT", acct, azAccountBody); code != 200 {
		t.Fatalf("PUT account: %d %s", code, body)
	}
	share := acct + "/fileServices/default/shares/myacishare"
	code, _, body := e.do(t, "PUT", share+"?api-version=2022-09-01", `{}`)
	var sh api.FileShare
	if code != 201 || json.Unmarshal(body, &sh) != nil || sh.ID != share || sh.Name != "myacishare" || sh.Type != api.FileShareType ||
		sh.Properties.ShareQuota != 5120 || sh.Properties.EnabledProtocols != "SMB" || sh.Properties.AccessTier != "TransactionOptimized" ||
		sh.Etag == "" || sh.Properties.LastModifiedTime == nil {
		t.Fatalf("PUT share: %d %s", code, body)
	}
	if code, _, body := e.do(t, "PUT", share, `{"properties":{"shareQuota":10,"metadata":{"k":"v"}}}`); code != 200 || !strings.Contains(string(body), `"shareQuota":10`) {
		t.Fatalf("PUT share again: %d %s", code, body)
	}
	if code, _, body := e.do(t, "GET", share, nil); code != 200 || !strings.Contains(string(body), `"metadata":{"k":"v"}`) {
		t.Fatalf("GET share: %d %s", code, body)
	}
	if code, _, body := e.do(t, "PUT", acct+"/fileServices/default/shares/second", ``); code != 201 {
		t.Fatalf("PUT second: %d %s", code, body)
	}
	code, _, body = e.do(t, "GET", acct+"/fileServices/default/shares", nil)
	var l api.List[api.FileShare]
	if code != 200 || json.Unmarshal(body, &l) != nil || len(l.Value) != 2 || l.Value[0].Name != "myacishare" {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, _, body := e.do(t, "DELETE", share, nil); code != 200 {
		t.Fatalf("DELETE share: %d %s", code, body)
	}
	removed := e.host.RemovedShares()
	if len(removed) != 1 || !strings.HasPrefix(removed[0], "files1/myacishare.") {
		t.Fatalf("the host was asked to remove %v", removed)
	}
	if code, _, body := e.do(t, "DELETE", share, nil); code != 204 {
		t.Fatalf("DELETE again: %d %s", code, body)
	}
	if code, arm, body := e.do(t, "GET", share, nil); code != 404 || arm != "ShareNotFound" {
		t.Fatalf("GET deleted share: %d %s", code, body)
	}
	if code, _, body := e.do(t, "PUT", share, `{}`); code != 201 || !strings.Contains(string(body), `"shareQuota":5120`) {
		t.Fatalf("PUT share again after the delete: %d %s", code, body)
	}

	// Deleting the account removes its shares' data too.
	if code, _, body := e.do(t, "DELETE", acct, nil); code != 200 {
		t.Fatalf("DELETE account: %d %s", code, body)
	}
	removed = e.host.RemovedShares()
	if len(removed) != 3 || removed[0] == removed[1] || slices.Index(removed[1:], removed[0]) >= 0 {
		t.Fatalf("after the account's delete the host was asked to remove %v", removed)
	}
}

// Deleting a resource group deletes its storage accounts and their
// shares: the name is free again.
func TestResourceGroupDeleteDeletesStorage(t *testing.T) {
	e := newTestEnv(t, nil)
	if code, _, body := e.do(t, "PUT", e.accountPath("rg", "gone1"), azAccountBody); code != 200 {
		t.Fatalf("PUT account: %d %s", code, body)
	}
	if code, _, body := e.do(t, "PUT", e.accountPath("rg", "gone1")+"/fileServices/default/shares/data", `{}`); code != 201 {
		t.Fatalf("PUT share: %d %s", code, body)
	}
	op := e.accepted(t, "DELETE", e.rgPath(), "", 202)
	e.operation(t, op, "Succeeded", "")
	if removed := e.host.RemovedShares(); len(removed) != 1 || !strings.HasPrefix(removed[0], "gone1/data.") {
		t.Fatalf("the host was asked to remove %v", removed)
	}
	if code, _, body := e.do(t, "PUT", "/subscriptions/"+e.sub+"/resourceGroups/other", `{"location":"local"}`); code != 201 {
		t.Fatalf("rg: %d %s", code, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _, body := e.do(t, "PUT", e.accountPath("other", "gone1"), azAccountBody)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the name of an account of a deleted resource group is still taken: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _, body := e.do(t, "GET", e.accountPath("other", "gone1")+"/fileServices/default/shares", nil); code != 200 || strings.Contains(string(body), `"data"`) {
		t.Fatalf("the new account has the old share: %d %s", code, body)
	}
}
