package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// The seed's storage flow through the CLI, as az prints it: account
// create, keys list --query "[0].value" -o tsv, show-connection-string,
// share-rm create (the resource group found from the account), keys
// renew, and the deletes.
func TestStorageAccountAndShares(t *testing.T) {
	h := newHarness(t)
	out := h.ok("storage", "account", "create", "-n", "mycontainerstorage", "-g", "rg", "--sku", "Standard_LRS").out
	var acct map[string]any
	if err := json.Unmarshal([]byte(out), &acct); err != nil {
		t.Fatalf("create printed %v: %s", err, out)
	}
	if acct["name"] != "mycontainerstorage" || acct["resourceGroup"] != "rg" || acct["provisioningState"] != "Succeeded" ||
		acct["location"] != "eastus" || acct["kind"] != "StorageV2" || acct["sku"].(map[string]any)["name"] != "Standard_LRS" {
		t.Fatalf("create printed %s", out)
	}
	if req := h.rec.last("PUT", "/storageAccounts/mycontainerstorage"); req.Query.Get("api-version") != "2022-09-01" {
		t.Errorf("the PUT's api-version is %q, want az's 2022-09-01", req.Query.Get("api-version"))
	}

	key := strings.TrimSpace(h.ok("storage", "account", "keys", "list", "--resource-group", "rg", "--account-name", "mycontainerstorage",
		"--query", "[0].value", "-o", "tsv").out)
	if len(key) != 88 {
		t.Fatalf("keys list --query [0].value -o tsv printed %q", key)
	}
	var keys []map[string]any
	if err := json.Unmarshal([]byte(h.ok("storage", "account", "keys", "list", "-g", "rg", "-n", "mycontainerstorage").out), &keys); err != nil ||
		len(keys) != 2 || keys[0]["keyName"] != "key1" || keys[1]["permissions"] != "FULL" || keys[0]["value"] != key {
		t.Fatalf("keys list: %v %v", keys, err)
	}
	for _, show := range [][]string{
		{"storage", "account", "show", "-n", "mycontainerstorage", "-g", "rg"},
		{"storage", "account", "show", "-n", "mycontainerstorage"},
		{"storage", "account", "list"},
		{"storage", "account", "list", "-g", "rg", "-o", "table"},
	} {
		if out := h.ok(show...).out; strings.Contains(out, key) || !strings.Contains(out, "mycontainerstorage") {
			t.Errorf("skiff %s printed %s", strings.Join(show, " "), out)
		}
	}
	cs := strings.TrimSpace(h.ok("storage", "account", "show-connection-string", "-n", "mycontainerstorage", "-g", "rg", "-o", "tsv").out)
	want := "DefaultEndpointsProtocol=https;EndpointSuffix=core.skiff.local;AccountName=mycontainerstorage;AccountKey=" + key +
		";BlobEndpoint=https://mycontainerstorage.blob.core.skiff.local/;FileEndpoint=" + h.srv.URL + "/storage/file/mycontainerstorage/" +
		";QueueEndpoint=https://mycontainerstorage.queue.core.skiff.local/;TableEndpoint=https://mycontainerstorage.table.core.skiff.local/"
	if cs != want {
		t.Fatalf("show-connection-string -o tsv:\n got %s\nwant %s", cs, want)
	}
	if out := h.ok("storage", "account", "show-connection-string", "-n", "mycontainerstorage", "-g", "rg").out; !strings.HasPrefix(out, `{`) ||
		!strings.Contains(out, `"connectionString": "DefaultEndpointsProtocol=https;`) {
		t.Fatalf("show-connection-string: %s", out)
	}

	out = h.ok("storage", "share-rm", "create", "--storage-account", "mycontainerstorage", "-n", "myacishare", "--quota", "10").out
	var share map[string]any
	if err := json.Unmarshal([]byte(out), &share); err != nil || share["name"] != "myacishare" || share["shareQuota"] != 10.0 ||
		share["resourceGroup"] != "rg" || share["enabledProtocols"] != "SMB" {
		t.Fatalf("share-rm create printed %v: %s", err, out)
	}
	if out := h.ok("storage", "share-rm", "list", "--storage-account", "mycontainerstorage", "--query", "[].name", "-o", "tsv").out; out != "myacishare\n" {
		t.Fatalf("share-rm list: %q", out)
	}
	h.ok("storage", "share-rm", "show", "--storage-account", "mycontainerstorage", "-g", "rg", "-n", "myacishare")
	h.ok("storage", "share-rm", "delete", "--storage-account", "mycontainerstorage", "-n", "myacishare", "--yes")
	h.fails(3, "(ShareNotFound)", "storage", "share-rm", "show", "--storage-account", "mycontainerstorage", "-n", "myacishare")

	renewed := strings.TrimSpace(h.ok("storage", "account", "keys", "renew", "-g", "rg", "--account-name", "mycontainerstorage",
		"--key", "primary", "--query", "[0].value", "-o", "tsv").out)
	if len(renewed) != 88 || renewed == key {
		t.Fatalf("keys renew --key primary printed %q (the old key was %q)", renewed, key)
	}

	h.ok("storage", "account", "delete", "-n", "mycontainerstorage", "-g", "rg", "--yes")
	if out := h.ok("storage", "account", "list", "-o", "tsv").out; out != "" {
		t.Fatalf("list after the delete: %q", out)
	}
}

// Bad flags are caught before a request, and the server's refusals are one
// line with az's code and the exit code of their class.
func TestStorageErrors(t *testing.T) {
	h := newHarness(t)
	h.fails(2, "--resource-group/-g", "storage", "account", "create", "-n", "acct1")
	h.fails(2, "(AccountNameInvalid)", "storage", "account", "create", "-n", "Bad-Name", "-g", "rg")
	h.fails(2, "(InvalidValuesForRequestParameters)", "storage", "account", "create", "-n", "acct1", "-g", "rg", "--sku", "Gold")
	h.fails(3, "(ResourceGroupNotFound)", "storage", "account", "create", "-n", "acct1", "-g", "nope")
	h.ok("storage", "account", "create", "-n", "acct1", "-g", "rg")
	h.addGroup("rg2", "eastus")
	h.fails(4, "(StorageAccountAlreadyExists)", "storage", "account", "create", "-n", "acct1", "-g", "rg2")
	h.fails(3, "(StorageAccountNotFound)", "storage", "account", "show", "-n", "absent1")
	h.fails(3, "(StorageAccountNotFound)", "storage", "account", "show", "-n", "acct1", "-g", "rg2")
	h.fails(2, "invalid choice: 'tertiary'", "storage", "account", "keys", "renew", "-n", "acct1", "--key", "tertiary")
	h.fails(2, "--key", "storage", "account", "keys", "renew", "-n", "acct1")
	h.fails(2, "pass --yes", "storage", "account", "delete", "-n", "acct1", "-g", "rg")
	h.fails(2, "(InvalidResourceName)", "storage", "share-rm", "create", "--storage-account", "acct1", "-n", "Bad_Share")
	h.fails(2, "--storage-account", "storage", "share-rm", "create", "-n", "share1")
	h.fails(3, "(StorageAccountNotFound)", "storage", "share-rm", "create", "--storage-account", "absent1", "-n", "share1")
	if out := h.ok("storage", "account", "check-name", "-n", "acct1").out; !strings.Contains(out, `"reason": "AlreadyExists"`) {
		t.Fatalf("check-name: %s", out)
	}
}
