package storetest

import (
	"reflect"
	"testing"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/store"
)

// secretCG is newCG with every kind of secret api.WalkSecrets knows.
func secretCG(sub, rg, name string) store.ContainerGroup {
	cg := newCG(sub, rg, name)
	p := &cg.Resource.Properties
	p.Containers[0].Properties.EnvironmentVariables = []api.EnvironmentVariable{
		{Name: "MODE", Value: "prod"}, {Name: "TOKEN", SecureValue: "app-secure-value"},
	}
	p.InitContainers = []api.InitContainer{{Name: "init", Properties: api.InitContainerProperties{
		Image:                "127.0.0.1:5000/busybox:latest",
		EnvironmentVariables: []api.EnvironmentVariable{{Name: "INIT", SecureValue: "init-secure-value"}},
	}}}
	p.ImageRegistryCredentials[0].Password = "registry-password"
	p.Volumes = []api.Volume{
		{Name: "creds", Secret: map[string]string{"token": "c2VjcmV0LWZpbGU=", "empty": ""}},
		{Name: "share", AzureFile: &api.AzureFileVolume{ShareName: "s", StorageAccountName: "acct", StorageAccountKey: "storage-key"}},
	}
	return cg
}

// testSecrets: whatever a store does with secrets at rest, every read
// returns them as they were written, and the caller's record is not
// changed by a write.
func testSecrets(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	putRG(t, s, sub1, "rg")
	want := secretCG(sub1, "rg", "web")
	in := secretCG(sub1, "rg", "web")
	if _, err := s.PutContainerGroup(ctx, in); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, want) {
		t.Fatalf("PutContainerGroup changed its argument:\n%+v", in.Resource.Properties)
	}
	same := func(what string, got *store.ContainerGroup) {
		t.Helper()
		if !reflect.DeepEqual(got.Resource.Properties, want.Resource.Properties) {
			t.Fatalf("%s: properties\n got %+v\nwant %+v", what, got.Resource.Properties, want.Resource.Properties)
		}
	}
	got, err := s.GetContainerGroup(ctx, sub1, "rg", "web")
	must(t, err)
	same("get", got)
	for _, rg := range []string{"rg", ""} {
		list, err := s.ListContainerGroups(ctx, sub1, rg)
		must(t, err)
		if len(list) != 1 {
			t.Fatalf("list %q: %d groups", rg, len(list))
		}
		same("list "+rg, &list[0])
	}
	upd, err := s.UpdateContainerGroup(ctx, sub1, "rg", "web", func(cg *store.ContainerGroup) error {
		same("update sees", cg)
		cg.Resource.Properties.ProvisioningState = "Succeeded"
		return nil
	})
	must(t, err)
	want.Resource.Properties.ProvisioningState = "Succeeded"
	same("update returns", upd)
	_, _, err = s.CreateOrUpdateContainerGroup(ctx, sub1, "rg", "web", func(old *store.ContainerGroup) (*store.ContainerGroup, error) {
		same("create-or-update sees", old)
		return old, nil
	})
	must(t, err)

	// And after a reopen.
	must(t, s.Close())
	s = open(t)
	got, err = s.GetContainerGroup(ctx, sub1, "rg", "web")
	must(t, err)
	same("get after reopen", got)
	must(t, s.DeleteContainerGroupIf(ctx, sub1, "rg", "web", func(cg *store.ContainerGroup) error {
		same("delete-if sees", cg)
		return nil
	}))
}
