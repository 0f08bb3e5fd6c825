package store_test

import (
	"path/filepath"
	"testing"

	"github.com/skiff-sh/skiff/internal/store"
)

// TestBoltCASSealsSecrets: the compare-and-swap writes seal secrets as
// PutContainerGroup does, and hand f the stored record opened.
func TestBoltCASSealsSecrets(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "skiff.db")
	b := openTestBolt(t, path, store.BoltOptions{})
	if _, err := b.PutResourceGroup(ctx, store.ResourceGroup{Subscription: "s", Name: "rg"}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a create, then a replace
		_, _, err := b.CreateOrUpdateContainerGroup(ctx, "s", "rg", "web", func(old *store.ContainerGroup) (*store.ContainerGroup, error) {
			if old != nil {
				checkPlain(t, *old)
			}
			cg := secretGroup("s", "rg", "web")
			return &cg, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	if found := plainIn(t, path); len(found) > 0 {
		t.Fatalf("skiff.db holds %v in clear", found)
	}
	b = openTestBolt(t, path, store.BoltOptions{})
	got, err := b.GetContainerGroup(ctx, "s", "rg", "web")
	if err != nil {
		t.Fatal(err)
	}
	checkPlain(t, *got)
	if err := b.DeleteContainerGroupIf(ctx, "s", "rg", "web", func(cg *store.ContainerGroup) error {
		checkPlain(t, *cg)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
