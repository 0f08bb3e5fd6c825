package az

import (
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// Seed 000's persistent storage from beginning to end with the real az, as
// the seed types it: the account, its connection string into
// AZURE_STORAGE_CONNECTION_STRING, `az storage share create -n myacishare`
// (the Files data plane), the key from `keys list --query "[0].value" -o
// tsv`, then `az group deployment create` of the hellofiles template (word
// for word, test/e2e/testdata) with both parameters. The group writes into
// the share; deleted and deployed again, it reads what the first wrote. The
// secure key never comes back from the deployment.
func TestDeploymentHellofiles(t *testing.T) {
	if publishPort(t) != 80 {
		t.Fatalf("the hellofiles template publishes port 80, which is in use on 127.0.0.1")
	}
	s := deploymentServer(t)
	az := newCLI(t, s)
	az.login(adminCredentials(t, s))
	az.must("group", "create", "--name", "myResourceGroup", "--location", "local")
	az.must("storage", "account", "create", "-n", "mycontainerstorage", "-g", "myResourceGroup", "--sku", "Standard_LRS")
	cs := strings.TrimSpace(az.must("storage", "account", "show-connection-string", "-n", "mycontainerstorage", "-g", "myResourceGroup", "-o", "tsv"))
	plain := az.env
	az.env = append(plain, "AZURE_STORAGE_CONNECTION_STRING="+cs)
	az.must("storage", "share", "create", "-n", "myacishare")
	az.env = plain
	key := strings.TrimSpace(az.must("storage", "account", "keys", "list", "--resource-group", "myResourceGroup",
		"--account-name", "mycontainerstorage", "--query", "[0].value", "-o", "tsv"))
	deploy := func() {
		t.Helper()
		var d deployment
		az.mustJSON(&d, "group", "deployment", "create", "--name", "hellofilesdeployment", "--template-file", "../e2e/testdata/hellofiles.json",
			"--resource-group", "myResourceGroup", "--parameters", "storageaccountname=mycontainerstorage", "storageaccountkey="+key)
		if d.Properties.ProvisioningState != "Succeeded" || d.Properties.Parameters["storageaccountkey"].Value != nil {
			t.Fatalf("az group deployment create: %+v", d.Properties)
		}
	}
	deploy()
	if body := testenv.WaitHTTP(t, "http://127.0.0.1:80/", 30*time.Second); body != "run 1\n" {
		t.Fatalf("the first group served %q", body)
	}
	if out := az.must("container", "list", "-g", "myResourceGroup", "-o", "table"); !strings.Contains(out, "hellofiles") {
		t.Errorf("az container list -g myResourceGroup -o table:\n%s", out)
	}
	az.must("container", "delete", "--name", "hellofiles", "--resource-group", "myResourceGroup", "--yes")
	deploy()
	if body := testenv.WaitHTTP(t, "http://127.0.0.1:80/", 30*time.Second); body != "run 1\nrun 2\n" {
		t.Errorf("the second group served %q: it must read what the first wrote", body)
	}
	if out := az.must("deployment", "group", "show", "-g", "myResourceGroup", "-n", "hellofilesdeployment"); strings.Contains(out, key) {
		t.Errorf("az deployment group show holds the storage key: %s", out)
	}
}
