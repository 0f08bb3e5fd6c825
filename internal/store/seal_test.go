package store_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
)

// Plain secrets, each findable in a file's bytes.
var plainSecrets = []string{
	"zz-app-secure-value", "zz-init-secure-value", "zz-registry-password", "zz-storage-key",
	"enotc2VjcmV0LWZpbGU=", // base64 of "zz-secret-file", as the API takes it
}

func secretGroup(sub, rg, name string) store.ContainerGroup {
	return store.ContainerGroup{
		Subscription: sub, ResourceGroup: rg, RuntimeID: "skiff-" + name,
		Resource: api.ContainerGroup{Name: name, Location: "local", Properties: api.ContainerGroupProperties{
			OSType: "Linux",
			Containers: []api.Container{{Name: "app", Properties: api.ContainerProperties{
				Image: "127.0.0.1:5000/busybox:1",
				EnvironmentVariables: []api.EnvironmentVariable{
					{Name: "MODE", Value: "prod"}, {Name: "TOKEN", SecureValue: "zz-app-secure-value"},
				},
			}}},
			InitContainers: []api.InitContainer{{Name: "init", Properties: api.InitContainerProperties{
				Image:                "127.0.0.1:5000/busybox:1",
				EnvironmentVariables: []api.EnvironmentVariable{{Name: "INIT", SecureValue: "zz-init-secure-value"}},
			}}},
			ImageRegistryCredentials: []api.ImageRegistryCredential{{Server: "127.0.0.1:5000", Username: "u", Password: "zz-registry-password"}},
			Volumes: []api.Volume{
				{Name: "creds", Secret: map[string]string{"token": "enotc2VjcmV0LWZpbGU="}},
				{Name: "share", AzureFile: &api.AzureFileVolume{ShareName: "s", StorageAccountName: "acct", StorageAccountKey: "zz-storage-key"}},
			},
		}},
	}
}

// plainIn returns the plain secrets found in a file's bytes.
func plainIn(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, s := range append(plainSecrets, "zz-secret-file") {
		if bytes.Contains(data, []byte(s)) {
			found = append(found, s)
		}
	}
	return found
}

func checkPlain(t *testing.T, got store.ContainerGroup) {
	t.Helper()
	want := secretGroup(got.Subscription, got.ResourceGroup, got.Resource.Name).Resource.Properties
	g := got.Resource.Properties
	if g.Containers[0].Properties.EnvironmentVariables[1].SecureValue != "zz-app-secure-value" ||
		g.InitContainers[0].Properties.EnvironmentVariables[0].SecureValue != "zz-init-secure-value" ||
		g.ImageRegistryCredentials[0].Password != want.ImageRegistryCredentials[0].Password ||
		g.Volumes[0].Secret["token"] != want.Volumes[0].Secret["token"] ||
		g.Volumes[1].AzureFile.StorageAccountKey != "zz-storage-key" {
		t.Fatalf("read back %+v, want the plain secrets", g)
	}
}

// TestBoltSealsSecretsAtRest: the file holds none of the secrets; a read
// gives them back plain.
func TestBoltSealsSecretsAtRest(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "skiff.db")
	b := openTestBolt(t, path, store.BoltOptions{})
	if _, err := b.PutResourceGroup(ctx, store.ResourceGroup{Subscription: "s", Name: "rg"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutContainerGroup(ctx, secretGroup("s", "rg", "web")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.UpdateContainerGroup(ctx, "s", "rg", "web", func(cg *store.ContainerGroup) error {
		cg.Resource.Properties.ProvisioningState = "Succeeded"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if found := plainIn(t, path); len(found) > 0 {
		t.Fatalf("skiff.db holds %v in clear", found)
	}
	if data, _ := os.ReadFile(path); !bytes.Contains(data, []byte(seal.Prefix)) {
		t.Fatal("skiff.db holds no sealed value")
	}
	b = openTestBolt(t, path, store.BoltOptions{})
	got, err := b.GetContainerGroup(ctx, "s", "rg", "web")
	if err != nil {
		t.Fatal(err)
	}
	checkPlain(t, *got)
}

// TestBoltWrongSealKey: another key is refused at open, clearly, and the
// file is left as it was.
func TestBoltWrongSealKey(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "skiff.db")
	b := openTestBolt(t, path, store.BoltOptions{})
	if _, err := b.PutResourceGroup(ctx, store.ResourceGroup{Subscription: "s", Name: "rg"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutContainerGroup(ctx, secretGroup("s", "rg", "web")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	before := fileSum(t, path)

	other, err := seal.LoadOrCreateKey(filepath.Join(dir, "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	b2, err := store.OpenBolt(path, store.BoltOptions{Sealer: other})
	if err == nil {
		b2.Close()
		t.Fatal("OpenBolt with another seal key succeeded")
	}
	if !errors.Is(err, seal.ErrWrongKey) || !errors.Is(err, errdefs.ErrUnauthorized) ||
		!strings.Contains(err.Error(), "other.key") || !strings.Contains(err.Error(), "seal key") {
		t.Fatalf("OpenBolt with another key: %v, want ErrWrongKey naming the key file", err)
	}
	if fileSum(t, path) != before {
		t.Fatal("a refused open changed the file")
	}

	// Without a key at all: refused, and no file is made.
	missing := filepath.Join(dir, "none.db")
	if _, err := store.OpenBolt(missing, store.BoltOptions{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("OpenBolt without a seal key: %v", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("OpenBolt without a seal key created the file")
	}
}

// TestBoltUpgradeSealsV1Secrets: a version-1 file with secrets in clear
// opens, reads them plain, and no longer holds them in any page.
func TestBoltUpgradeSealsV1Secrets(t *testing.T) {
	ctx := t.Context()
	path := copyFixture(t)
	cg := secretGroup(strings.ToUpper(v1Sub), "Prod", "vault")
	cg.Generation = 1
	raw := mustJSONBytes(t, cg)
	rawWrite(t, path, []string{"containergroups", v1Sub, "prod", "vault", string(raw)})
	if found := plainIn(t, path); len(found) != len(plainSecrets) {
		t.Fatalf("fixture holds %v, want every plain secret", found)
	}

	b := openTestBolt(t, path, store.BoltOptions{})
	got, err := b.GetContainerGroup(ctx, v1Sub, "prod", "vault")
	if err != nil {
		t.Fatal(err)
	}
	checkPlain(t, *got)
	// The fixture's other groups are still there.
	if cgs, err := b.ListContainerGroups(ctx, v1Sub, ""); err != nil || len(cgs) != 4 {
		t.Fatalf("groups after upgrade: %d, %v", len(cgs), err)
	}
	b.Close()
	if found := plainIn(t, path); len(found) > 0 {
		t.Fatalf("upgraded skiff.db still holds %v (freed pages not compacted?)", found)
	}
	if v, want := rawVersion(t, path), fmt.Sprint(store.CurrentSchemaVersion); v != want {
		t.Fatalf("schema version after upgrade = %q, want %q", v, want)
	}
	if _, err := os.Stat(path + ".compact"); err == nil {
		t.Fatal("compaction left its temporary file")
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("compacted file: %v, %v", fi.Mode(), err)
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

func mustJSONBytes(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
