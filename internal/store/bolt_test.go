package store_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
	"github.com/skiff-sh/skiff/internal/store/storetest"
)

var update = flag.Bool("update", false, "regenerate "+v1Fixture+" (only ever as version 1)")

const v1Fixture = "testdata/schema-v1.db"

func TestBolt(t *testing.T) {
	var paths sync.Map // *testing.T → database path: reopening finds the same data
	storetest.RunSuite(t, func(t *testing.T) store.Store {
		p, ok := paths.Load(t)
		if !ok {
			p, _ = paths.LoadOrStore(t, filepath.Join(t.TempDir(), "skiff.db"))
		}
		return openTestBolt(t, p.(string), store.BoltOptions{})
	})
}

// openTestBolt opens path and, at cleanup, closes it and checks the file's
// consistency (like bbolt's btesting).
func openTestBolt(t *testing.T, path string, opts store.BoltOptions) *store.Bolt {
	t.Helper()
	b, err := store.OpenBolt(path, withKey(t, path, opts))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		checkFile(t, path)
	})
	return b
}

// withKey sets opts.Sealer, if unset, to the key beside the database file
// (created on first use), as skiff server keeps it in its data dir.
func withKey(t *testing.T, path string, opts store.BoltOptions) store.BoltOptions {
	t.Helper()
	if opts.Sealer == nil {
		s, err := seal.LoadOrCreateKey(filepath.Join(filepath.Dir(path), seal.KeyFile))
		if err != nil {
			t.Fatal(err)
		}
		opts.Sealer = s
	}
	return opts
}

// checkFile runs bbolt's consistency check on a closed database file.
func checkFile(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Errorf("consistency check: %v", err)
		return
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Errorf("consistency check of %s: %v", path, err)
	}
}

// rawVersion reads meta/schemaVersion of a closed database file.
func rawVersion(t *testing.T, path string) string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket([]byte("meta")); meta != nil {
			v = string(meta.Get([]byte("schemaVersion")))
		}
		return nil
	})
	return v
}

// rawWrite writes key=value into the nested buckets of a closed database
// file, creating them.
func rawWrite(t *testing.T, path string, kvs ...[]string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for _, kv := range kvs { // bucket..., key, value
			bk, err := tx.CreateBucketIfNotExists([]byte(kv[0]))
			for _, name := range kv[1 : len(kv)-2] {
				if err != nil {
					break
				}
				bk, err = bk.CreateBucketIfNotExists([]byte(name))
			}
			if err == nil {
				err = bk.Put([]byte(kv[len(kv)-2]), []byte(kv[len(kv)-1]))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFixture(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(v1Fixture)
	if err != nil {
		t.Fatalf("read fixture (regenerate with go test -run TestBoltUpgradeFromV1 -update): %v", err)
	}
	path := filepath.Join(t.TempDir(), "skiff.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBoltFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "skiff.db")
	openTestBolt(t, path, store.BoltOptions{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestBoltInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "skiff.db")
	first := openTestBolt(t, path, store.BoltOptions{})

	for _, tc := range []struct {
		opts store.BoltOptions
		want time.Duration
	}{
		{store.BoltOptions{Timeout: 300 * time.Millisecond}, 300 * time.Millisecond},
		{store.BoltOptions{}, time.Second}, // the default
	} {
		start := time.Now()
		b, err := store.OpenBolt(path, withKey(t, path, tc.opts))
		elapsed := time.Since(start)
		if err == nil {
			b.Close()
			t.Fatal("second OpenBolt on a locked file succeeded")
		}
		if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "database is in use by another process") {
			t.Fatalf("second OpenBolt: err = %v, want ErrConflict saying the database is in use", err)
		}
		if elapsed < tc.want-50*time.Millisecond || elapsed > tc.want+time.Second {
			t.Fatalf("second OpenBolt failed after %v, want about %v", elapsed, tc.want)
		}
	}

	// Once the holder closes, the file opens.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	openTestBolt(t, path, store.BoltOptions{Timeout: 300 * time.Millisecond})
}

func TestBoltSchemaNewerRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "skiff.db")
	newer := fmt.Sprint(store.CurrentSchemaVersion + 1)
	rawWrite(t, path, []string{"meta", "schemaVersion", newer})

	b, err := store.OpenBolt(path, withKey(t, path, store.BoltOptions{}))
	if err == nil {
		b.Close()
		t.Fatal("OpenBolt accepted a database of a newer schema version")
	}
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "schema version "+newer+" is newer") {
		t.Fatalf("OpenBolt: err = %v, want ErrConflict naming the newer version", err)
	}
	if v := rawVersion(t, path); v != newer {
		t.Fatalf("refused open changed the schema version to %q", v)
	}
	checkFile(t, path)
}

func TestBoltSchemaMissingInitialised(t *testing.T) {
	ctx := t.Context()
	want := fmt.Sprint(store.CurrentSchemaVersion)

	// A bbolt file without any bucket.
	empty := filepath.Join(t.TempDir(), "empty.db")
	rawWrite(t, empty)
	b := openTestBolt(t, empty, store.BoltOptions{})
	if _, err := b.PutResourceGroup(ctx, store.ResourceGroup{Subscription: "s", Name: "rg"}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if v := rawVersion(t, empty); v != want {
		t.Fatalf("schema version of an initialised empty file = %q, want %q", v, want)
	}

	// A meta bucket with a setting but no version: the setting survives.
	partial := filepath.Join(t.TempDir(), "partial.db")
	rawWrite(t, partial, []string{"meta", "defaultSubscription", `"s1"`})
	b = openTestBolt(t, partial, store.BoltOptions{})
	if v, err := b.GetMeta(ctx, "defaultSubscription"); err != nil || v != "s1" {
		t.Fatalf("setting after initialisation = %q, %v", v, err)
	}
	b.Close()
	if v := rawVersion(t, partial); v != want {
		t.Fatalf("schema version after initialisation = %q, want %q", v, want)
	}
}

// TestBoltUpgradeFromV1 opens the committed version-1 file.
func TestBoltUpgradeFromV1(t *testing.T) {
	if *update {
		writeV1Fixture(t)
	}
	ctx := t.Context()
	path := copyFixture(t)
	if v := rawVersion(t, path); v != "1" {
		t.Fatalf("fixture schema version = %q, want 1", v)
	}
	b := openTestBolt(t, path, store.BoltOptions{})

	sub, err := b.GetSubscription(ctx, v1Sub)
	if err != nil || sub.ID != strings.ToUpper(v1Sub) || sub.DisplayName != "Fixture" {
		t.Fatalf("subscription = %+v, %v", sub, err)
	}
	rg, err := b.GetResourceGroup(ctx, v1Sub, "PROD")
	if err != nil || rg.Name != "Prod" || rg.Tags["team"] != "infra" {
		t.Fatalf("resource group = %+v, %v", rg, err)
	}
	cgs, err := b.ListContainerGroups(ctx, v1Sub, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, cg := range cgs {
		names = append(names, cg.ResourceGroup+"/"+cg.Resource.Name)
	}
	if got, want := strings.Join(names, " "), "dev/job Prod/Api Prod/web"; got != want {
		t.Fatalf("container groups = %q, want %q", got, want)
	}
	web, err := b.GetContainerGroup(ctx, v1Sub, "prod", "WEB")
	if err != nil || web.Generation != 3 || web.RuntimeID != "skiff-web" ||
		web.Resource.Properties.ProvisioningState != "Succeeded" ||
		web.Resource.Properties.Containers[0].Properties.Image != "127.0.0.1:5000/busybox:latest" {
		t.Fatalf("container group web = %+v, %v", web, err)
	}
	ops, err := b.ListOperations(ctx, api.OperationInProgress)
	if err != nil || len(ops) != 1 || ops[0].Kind != "create" {
		t.Fatalf("in-progress operations = %+v, %v", ops, err)
	}
	if v, err := b.GetMeta(ctx, "defaultSubscription"); err != nil || v != strings.ToUpper(v1Sub) {
		t.Fatalf("defaultSubscription = %q, %v", v, err)
	}

	// And it takes writes.
	if created, err := b.PutContainerGroup(ctx, *web); err != nil || created {
		t.Fatalf("PutContainerGroup on the upgraded file: created=%v, %v", created, err)
	}
	b.Close()
	if v, want := rawVersion(t, path), fmt.Sprint(store.CurrentSchemaVersion); v != want {
		t.Fatalf("schema version after open = %q, want %q", v, want)
	}
}

func TestBoltMigrationHook(t *testing.T) {
	ctx := t.Context()
	path := copyFixture(t)
	next := fmt.Sprint(store.CurrentSchemaVersion + 1)

	// A failing migration leaves the file as it was.
	_, err := store.OpenBoltWithExtraMigrations(path, withKey(t, path, store.BoltOptions{}), func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("meta")).Put([]byte("half"), []byte(`"done"`)); err != nil {
			return err
		}
		return errors.New("disk on fire")
	})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("open with a failing migration: err = %v", err)
	}
	if v := rawVersion(t, path); v != "1" {
		t.Fatalf("failed migration changed the version to %q", v)
	}

	var runs int
	addSetting := func(tx *bolt.Tx) error {
		runs++
		return tx.Bucket([]byte("meta")).Put([]byte("migrated"), []byte(`"yes"`))
	}
	var logs bytes.Buffer
	b, err := store.OpenBoltWithExtraMigrations(path, withKey(t, path, store.BoltOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))}), addSetting)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := b.GetMeta(ctx, "migrated"); runs != 1 || err != nil || v != "yes" {
		t.Fatalf("after migration: runs=%d, migrated=%q, %v", runs, v, err)
	}
	if _, err := b.GetMeta(ctx, "half"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("write of the failed migration survived: %v", err)
	}
	if !strings.Contains(logs.String(), "migrating store schema") || !strings.Contains(logs.String(), "to="+next) {
		t.Fatalf("migration not logged: %q", logs.String())
	}
	b.Close()
	if v := rawVersion(t, path); v != next {
		t.Fatalf("version after migration = %q, want %q", v, next)
	}

	// Reopening does not run it again; the current code refuses the newer file.
	b, err = store.OpenBoltWithExtraMigrations(path, withKey(t, path, store.BoltOptions{}), addSetting)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if runs != 1 {
		t.Fatalf("migration ran %d times", runs)
	}
	if _, err := store.OpenBolt(path, withKey(t, path, store.BoltOptions{})); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("current code opened a migrated (newer) file: %v", err)
	}
	checkFile(t, path)
}

const v1Sub = "0b5e2a1c-9f3d-4c1e-8a7b-3d2f1e0c9b8a"

// writeV1Fixture writes v1Fixture in the version-1 layout, from literal
// JSON so that later changes to the Go types cannot change it.
func writeV1Fixture(t *testing.T) {
	t.Helper()
	if err := os.Remove(v1Fixture); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(v1Fixture), 0o755); err != nil {
		t.Fatal(err)
	}
	const (
		sub     = v1Sub
		SUB     = "0B5E2A1C-9F3D-4C1E-8A7B-3D2F1E0C9B8A"
		created = `"createdAt":"2025-01-01T00:00:00Z"`
		spec    = `"properties":{"provisioningState":"Succeeded","containers":[{"name":"app","properties":{"image":"127.0.0.1:5000/busybox:latest","command":["sleep","3600"],"ports":null,"environmentVariables":null,"resources":{"requests":{"memoryInGB":0.5,"cpu":1}}}}],"initContainers":null,"restartPolicy":"Always","osType":"Linux"}`
	)
	cg := func(rg, name string, gen int) string {
		return fmt.Sprintf(`{"subscription":%q,"resourceGroup":%q,"runtimeID":"skiff-%s","resource":{"name":%q,"location":"westeurope",%s},"generation":%d,%s,"updatedAt":"2025-01-02T00:00:00Z"}`,
			SUB, rg, strings.ToLower(name), name, spec, gen, created)
	}
	rawWrite(t, v1Fixture,
		[]string{"meta", "schemaVersion", "1"},
		[]string{"meta", "defaultSubscription", `"` + SUB + `"`},
		[]string{"subscriptions", sub, `{"id":"` + SUB + `","displayName":"Fixture","state":"Enabled",` + created + `}`},
		[]string{"resourcegroups", sub, "prod", `{"subscription":"` + SUB + `","name":"Prod","location":"westeurope","tags":{"team":"infra"},` + created + `}`},
		[]string{"resourcegroups", sub, "dev", `{"subscription":"` + SUB + `","name":"dev","location":"westeurope",` + created + `}`},
		[]string{"containergroups", sub, "prod", "web", cg("Prod", "web", 3)},
		[]string{"containergroups", sub, "prod", "api", cg("Prod", "Api", 1)},
		[]string{"containergroups", sub, "dev", "job", cg("dev", "job", 1)},
		[]string{"operations", "7d9e8f00-1111-4222-8333-944455556666", `{"id":"7d9e8f00-1111-4222-8333-944455556666","subscription":"` + SUB + `","location":"westeurope","resourceID":"/subscriptions/` + SUB + `/resourceGroups/dev/providers/Microsoft.ContainerInstance/containerGroups/job","kind":"create","status":"InProgress","startTime":"2025-01-02T00:00:00Z"}`},
		[]string{"operations", "8e0f9a11-2222-4333-8444-a55566667777", `{"id":"8e0f9a11-2222-4333-8444-a55566667777","subscription":"` + SUB + `","location":"westeurope","resourceID":"/subscriptions/` + SUB + `/resourceGroups/Prod/providers/Microsoft.ContainerInstance/containerGroups/web","kind":"update","status":"Succeeded","startTime":"2025-01-01T00:00:00Z","endTime":"2025-01-01T00:00:05Z"}`},
	)
	t.Logf("wrote %s", v1Fixture)
}
