package az

import (
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// Seed 000's persistent storage, with the real az: the account, its
// connection string, its key from `keys list --query "[0].value" -o tsv`,
// the seed's `az storage share create` (the Files data plane, with that
// connection string), the same share by `az storage share-rm create`
// (ARM; the resource group found from the account, as az finds it), and a
// container group that mounts the share with that key.
func TestStorageAccountFlow(t *testing.T) {
	s := startServer(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	image := testenv.Push(t, reg, "hellofiles:1", testenv.BusyboxImage(t, testenv.ImageOptions{
		Cmd: []string{"sh", "-c", "echo hello > /aci/logs/hello.txt && ls /aci/logs && sleep 3600"},
	}))
	az := newCLI(t, s)
	az.login(adminCredentials(t, s))
	az.must("group", "create", "--name", "myResourceGroup", "--location", "local")

	var acct struct {
		Name, ProvisioningState, Kind, ResourceGroup string
		Sku                                          struct{ Name string }
		PrimaryEndpoints                             struct{ File string }
	}
	az.mustJSON(&acct, "storage", "account", "create", "-n", "mycontainerstorage", "-g", "myResourceGroup", "--sku", "Standard_LRS")
	if acct.Name != "mycontainerstorage" || acct.ProvisioningState != "Succeeded" || acct.Sku.Name != "Standard_LRS" ||
		acct.Kind != "StorageV2" || acct.ResourceGroup != "myResourceGroup" || acct.PrimaryEndpoints.File != s.TLSEndpoint+"/storage/file/mycontainerstorage/" {
		t.Errorf("az storage account create: %+v", acct)
	}

	cs := strings.TrimSpace(az.must("storage", "account", "show-connection-string", "-n", "mycontainerstorage", "-g", "myResourceGroup", "-o", "tsv"))
	key := strings.TrimSpace(az.must("storage", "account", "keys", "list", "--resource-group", "myResourceGroup",
		"--account-name", "mycontainerstorage", "--query", "[0].value", "-o", "tsv"))
	if len(key) != 88 {
		t.Fatalf("az storage account keys list --query [0].value -o tsv printed %q", key)
	}
	if want := "DefaultEndpointsProtocol=https;EndpointSuffix=core.skiff.local;AccountName=mycontainerstorage;AccountKey=" + key + ";"; !strings.HasPrefix(cs, want) {
		t.Errorf("az storage account show-connection-string -o tsv: %q, want it to start with %q", cs, want)
	}

	// The seed's own command: the share through the Files data plane, with
	// the connection string in AZURE_STORAGE_CONNECTION_STRING (az signs
	// its requests with the account key: Shared Key).
	plain := az.env
	az.env = append(plain, "AZURE_STORAGE_CONNECTION_STRING="+cs)
	if out := az.must("storage", "share", "create", "-n", "myacishare"); !strings.Contains(out, `"created": true`) {
		t.Errorf("az storage share create -n myacishare: %s", out)
	}
	if out := az.must("storage", "share", "create", "-n", "myacishare"); !strings.Contains(out, `"created": false`) {
		t.Errorf("az storage share create of an existing share: %s, want created false", out)
	}
	if out := strings.TrimSpace(az.must("storage", "share", "list", "--query", "[].name", "-o", "tsv")); out != "myacishare" {
		t.Errorf("az storage share list: %q, want myacishare", out)
	}
	wrong := strings.Replace(cs, "AccountKey="+key, "AccountKey="+strings.Repeat("A", 86)+"==", 1)
	az.env = append(plain, "AZURE_STORAGE_CONNECTION_STRING="+wrong)
	az.fails("AuthenticationFailed", "storage", "share", "create", "-n", "other")
	az.env = plain

	var share struct {
		Name, EnabledProtocols, ResourceGroup string
		ShareQuota                            int
	}
	az.mustJSON(&share, "storage", "share-rm", "create", "--storage-account", "mycontainerstorage", "-n", "myacishare")
	if share.Name != "myacishare" || share.ShareQuota != 5120 || share.EnabledProtocols != "SMB" {
		t.Errorf("az storage share-rm create: %+v", share)
	}

	// The share mounts with the account's key; a wrong key fails clearly.
	az.must("container", "create", "-g", "myResourceGroup", "-n", "hellofiles", "--image", image,
		"--azure-file-volume-account-name", "mycontainerstorage", "--azure-file-volume-account-key", key,
		"--azure-file-volume-share-name", "myacishare", "--azure-file-volume-mount-path", "/aci/logs/")
	if out := az.must("container", "logs", "-g", "myResourceGroup", "-n", "hellofiles"); !strings.Contains(out, "hello.txt") {
		t.Errorf("the container's log is %q, want it to list hello.txt", out)
	}
	az.fails("the storage account key is not valid for account 'mycontainerstorage'", "container", "create", "-g", "myResourceGroup",
		"-n", "badkey", "--image", image, "--azure-file-volume-account-name", "mycontainerstorage", "--azure-file-volume-account-key", "bm9wZQ==",
		"--azure-file-volume-share-name", "myacishare", "--azure-file-volume-mount-path", "/aci/logs/")
}
