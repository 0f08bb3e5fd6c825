package storage_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/store"
	"github.com/skiff-sh/skiff/internal/store/etcdstore"
	etcdenv "github.com/skiff-sh/skiff/internal/testenv/etcd"
)

func newSealer(t *testing.T) *seal.Sealer {
	t.Helper()
	key := make([]byte, seal.KeySize)
	rand.Read(key)
	s, err := seal.New(key, "test key")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stores opens each implementation: bbolt in the test's directory, and
// etcd (one real etcd, a prefix per test).
func stores(outer *testing.T) map[string]func(t *testing.T) store.ObjectStore {
	var (
		once sync.Once
		e    *etcdenv.Etcd
		n    int
		mu   sync.Mutex
	)
	return map[string]func(t *testing.T) store.ObjectStore{
		"bolt": func(t *testing.T) store.ObjectStore {
			st, err := store.OpenBolt(filepath.Join(t.TempDir(), "skiff.db"), store.BoltOptions{Sealer: newSealer(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
		"etcd": func(t *testing.T) store.ObjectStore {
			once.Do(func() { e = etcdenv.Start(outer) })
			mu.Lock()
			n++
			prefix := "/storage-test/" + strings.ReplaceAll(t.Name(), "/", "-") + "/" + string(rune('a'+n)) + "/"
			mu.Unlock()
			st, err := etcdstore.Open(context.Background(), etcdstore.Options{Endpoints: e.Endpoints, Prefix: prefix, Sealer: newSealer(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
}

func TestStorage(t *testing.T) {
	tests := map[string]func(*testing.T, store.ObjectStore){
		"accounts":        testAccounts,
		"keys":            testKeys,
		"shares":          testShares,
		"resource groups": testResourceGroupDelete,
		"races":           testRaces,
	}
	open := stores(t)
	for _, impl := range []string{"bolt", "etcd"} {
		t.Run(impl, func(t *testing.T) {
			for name, f := range tests {
				t.Run(name, func(t *testing.T) { f(t, open[impl](t)) })
			}
		})
	}
}

const sub, sub2 = "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"

func newService(t *testing.T, st store.ObjectStore) *storage.Service {
	t.Helper()
	s, err := storage.New(storage.Config{Store: st, Sealer: newSealer(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func spec(rg, name string) storage.AccountSpec {
	return storage.AccountSpec{Subscription: sub, ResourceGroup: rg, Name: name, Location: "local", Sku: "Standard_LRS", Kind: "StorageV2", AccessTier: "Hot"}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, err, class error, code string) {
	t.Helper()
	if !errdefs.Is(err, class) || errdefs.CodeOf(err) != code {
		t.Fatalf("err = %v (code %q), want %v %s", err, errdefs.CodeOf(err), class, code)
	}
}

func testAccounts(t *testing.T, st store.ObjectStore) {
	ctx := context.Background()
	s := newService(t, st)
	a, created, err := s.CreateOrUpdateAccount(ctx, spec("rg", "acct1"))
	must(t, err)
	if !created || a.Name != "acct1" || a.UID == "" || a.CreatedAt.IsZero() || a.KeysCreatedAt[0].IsZero() || a.KeysCreatedAt[1].IsZero() {
		t.Fatalf("created %v %+v", created, a)
	}
	if a.ID() != "/subscriptions/"+sub+"/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct1" {
		t.Fatalf("id %s", a.ID())
	}
	// The same PUT again updates (tags), keeping the uid and the keys.
	keys, err := s.ListKeys(ctx, sub, "rg", "acct1")
	must(t, err)
	upd := spec("RG", "acct1")
	upd.Tags, upd.Sku = map[string]string{"env": "test"}, "Standard_GRS"
	b, created, err := s.CreateOrUpdateAccount(ctx, upd)
	must(t, err)
	if created || b.UID != a.UID || b.Tags["env"] != "test" || b.Sku != "Standard_GRS" || b.ResourceGroup != "rg" {
		t.Fatalf("update: %v %+v", created, b)
	}
	keys2, err := s.ListKeys(ctx, sub, "rg", "acct1")
	must(t, err)
	if keys2[0].Value != keys[0].Value || keys2[1].Value != keys[1].Value {
		t.Fatal("an update changed the keys")
	}

	// One name in the whole Skiff.
	_, _, err = s.CreateOrUpdateAccount(ctx, spec("other", "acct1"))
	wantCode(t, err, errdefs.ErrConflict, "StorageAccountAlreadyExists")
	elsewhere := spec("rg", "acct1")
	elsewhere.Subscription = sub2
	_, _, err = s.CreateOrUpdateAccount(ctx, elsewhere)
	wantCode(t, err, errdefs.ErrConflict, "StorageAccountAlreadyTaken")
	moved := spec("rg", "acct1")
	moved.Location = "westus"
	_, _, err = s.CreateOrUpdateAccount(ctx, moved)
	wantCode(t, err, errdefs.ErrConflict, "InvalidResourceLocation")
	premium := spec("rg", "acct1")
	premium.Sku = "Premium_LRS"
	_, _, err = s.CreateOrUpdateAccount(ctx, premium)
	wantCode(t, err, errdefs.ErrInvalidArgument, "InvalidValuesForRequestParameters")
	_, _, err = s.CreateOrUpdateAccount(ctx, spec("rg", "Bad-Name"))
	wantCode(t, err, errdefs.ErrInvalidArgument, "AccountNameInvalid")

	// Reads are where the account is, and nowhere else.
	if _, err := s.GetAccount(ctx, sub, "RG", "acct1"); err != nil {
		t.Fatal(err)
	}
	for _, where := range [][2]string{{sub, "other"}, {sub2, "rg"}} {
		_, err := s.GetAccount(ctx, where[0], where[1], "acct1")
		wantCode(t, err, errdefs.ErrNotFound, "StorageAccountNotFound")
	}
	_, err = s.GetAccount(ctx, sub, "rg", "nope")
	wantCode(t, err, errdefs.ErrNotFound, "StorageAccountNotFound")
	if f, err := s.FindAccount(ctx, "ACCT1"); err != nil || f.UID != a.UID {
		t.Fatalf("FindAccount: %+v %v", f, err)
	}

	_, _, err = s.CreateOrUpdateAccount(ctx, spec("rg2", "acct2"))
	must(t, err)
	other := spec("rg", "acct3")
	other.Subscription = sub2
	_, _, err = s.CreateOrUpdateAccount(ctx, other)
	must(t, err)
	names := func(sub, rg string) string {
		l, err := s.ListAccounts(ctx, sub, rg)
		must(t, err)
		var n []string
		for _, a := range l {
			n = append(n, a.Name)
		}
		return strings.Join(n, " ")
	}
	if got := names(sub, ""); got != "acct1 acct2" {
		t.Errorf("subscription list: %q", got)
	}
	if got := names(sub, "rg"); got != "acct1" {
		t.Errorf("resource group list: %q", got)
	}
	if got := names(sub2, ""); got != "acct3" {
		t.Errorf("other subscription list: %q", got)
	}
	if r, err := s.CheckName(ctx, "acct1"); err != nil || r.NameAvailable || r.Reason != "AlreadyExists" {
		t.Errorf("CheckName taken: %+v %v", r, err)
	}
	if r, err := s.CheckName(ctx, "free1"); err != nil || !r.NameAvailable {
		t.Errorf("CheckName free: %+v %v", r, err)
	}
	if r, err := s.CheckName(ctx, "No"); err != nil || r.NameAvailable || r.Reason != "AccountNameInvalid" {
		t.Errorf("CheckName invalid: %+v %v", r, err)
	}

	// Kind: only the upgrade to StorageV2.
	old := spec("rg", "legacy1")
	old.Kind = "Storage"
	_, _, err = s.CreateOrUpdateAccount(ctx, old)
	must(t, err)
	old.Kind = "StorageV2"
	_, _, err = s.CreateOrUpdateAccount(ctx, old)
	must(t, err)
	old.Kind = "BlobStorage"
	_, _, err = s.CreateOrUpdateAccount(ctx, old)
	wantCode(t, err, errdefs.ErrInvalidArgument, "InvalidValuesForRequestParameters")

	_, err = s.DeleteAccount(ctx, sub, "other", "acct1")
	wantCode(t, err, errdefs.ErrNotFound, "StorageAccountNotFound")
	_, err = s.DeleteAccount(ctx, sub, "rg", "acct1")
	must(t, err)
	_, err = s.GetAccount(ctx, sub, "rg", "acct1")
	wantCode(t, err, errdefs.ErrNotFound, "StorageAccountNotFound")
	// The name is free again, anywhere; the new account is another.
	elsewhere.Name = "acct1"
	c, created, err := s.CreateOrUpdateAccount(ctx, elsewhere)
	must(t, err)
	if !created || c.UID == a.UID {
		t.Fatalf("re-created: %v %+v", created, c)
	}
}

func testKeys(t *testing.T, st store.ObjectStore) {
	ctx := context.Background()
	s := newService(t, st)
	_, _, err := s.CreateOrUpdateAccount(ctx, spec("rg", "keys1"))
	must(t, err)
	keys, err := s.ListKeys(ctx, sub, "rg", "keys1")
	must(t, err)
	if len(keys) != 2 || keys[0].Name != "key1" || keys[1].Name != "key2" || keys[0].Value == keys[1].Value {
		t.Fatalf("keys: %+v", keys)
	}
	for _, k := range keys {
		raw, err := base64.StdEncoding.DecodeString(k.Value)
		if len(k.Value) != 88 || err != nil || len(raw) != 64 {
			t.Fatalf("key %s is not 512 random bits in base64: %d chars, %v", k.Name, len(k.Value), err)
		}
	}
	// Sealed at rest: the record holds neither key.
	o, err := st.GetObject(ctx, "storage.accounts", "keys1")
	must(t, err)
	if strings.Contains(string(o.Value), keys[0].Value) || strings.Contains(string(o.Value), keys[1].Value) || !strings.Contains(string(o.Value), seal.Prefix) {
		t.Fatalf("the record holds a plain key or no sealed one: %s", o.Value)
	}
	for _, k := range keys {
		if a, err := s.CheckKey(ctx, "keys1", k.Value); err != nil || a.Name != "keys1" {
			t.Fatalf("CheckKey(%s): %v", k.Name, err)
		}
	}
	for _, bad := range []string{"", "nope", keys[0].Value[:87], keys[0].Value + "A", strings.ToLower(keys[0].Value)} {
		if _, err := s.CheckKey(ctx, "keys1", bad); !errors.Is(err, storage.ErrKeyInvalid) {
			t.Fatalf("CheckKey(%q) = %v, want ErrKeyInvalid", bad, err)
		}
	}
	_, err = s.CheckKey(ctx, "absent1", keys[0].Value)
	wantCode(t, err, errdefs.ErrNotFound, "StorageAccountNotFound")

	renewed, err := s.RegenerateKey(ctx, sub, "rg", "keys1", "KEY1")
	must(t, err)
	if renewed[0].Value == keys[0].Value || renewed[1].Value != keys[1].Value || !renewed[0].CreatedAt.After(keys[0].CreatedAt.Add(-1)) {
		t.Fatalf("regenerate key1: %+v", renewed)
	}
	if _, err := s.CheckKey(ctx, "keys1", keys[0].Value); !errors.Is(err, storage.ErrKeyInvalid) {
		t.Fatalf("the old key1 still checks: %v", err)
	}
	if _, err := s.CheckKey(ctx, "keys1", renewed[0].Value); err != nil {
		t.Fatal(err)
	}
	_, err = s.RegenerateKey(ctx, sub, "rg", "keys1", "kerb1")
	wantCode(t, err, errdefs.ErrInvalidArgument, "InvalidValuesForRequestParameters")
	_, err = s.RegenerateKey(ctx, sub, "other", "keys1", "key1")
	wantCode(t, err, errdefs.ErrNotFound, "StorageAccountNotFound")

	// Another sealer cannot read the keys (and says so).
	other := newService(t, st)
	if _, err := other.ListKeys(ctx, sub, "rg", "keys1"); !errors.Is(err, seal.ErrWrongKey) {
		t.Fatalf("ListKeys with another seal key: %v", err)
	}
}

func share(name string) storage.ShareSpec {
	return storage.ShareSpec{Name: name, Quota: 5120, Protocols: "SMB", AccessTier: "TransactionOptimized"}
}

func testShares(t *testing.T, st store.ObjectStore) {
	ctx := context.Background()
	s := newService(t, st)
	_, _, err := s.CreateOrUpdateAccount(ctx, spec("rg", "files1"))
	must(t, err)
	sh, created, err := s.CreateOrUpdateShare(ctx, sub, "rg", "files1", share("data"))
	must(t, err)
	if !created || sh.ID == "" || sh.Account != "files1" || sh.Quota != 5120 {
		t.Fatalf("create: %v %+v", created, sh)
	}
	if name, id, ok := storage.ParseDir(sh.Dir()); !ok || name != "data" || id != sh.ID {
		t.Fatalf("ParseDir(%q) = %q %q %v", sh.Dir(), name, id, ok)
	}
	for _, d := range []string{"data", "data.", "Data." + sh.ID, "data." + sh.ID[:31], "a." + sh.ID} {
		if _, _, ok := storage.ParseDir(d); ok {
			t.Errorf("ParseDir(%q) accepted", d)
		}
	}
	upd := share("data")
	upd.Quota, upd.Metadata = 10, map[string]string{"k": "v"}
	again, created, err := s.CreateOrUpdateShare(ctx, sub, "RG", "files1", upd)
	must(t, err)
	if created || again.ID != sh.ID || again.Quota != 10 || again.Metadata["k"] != "v" {
		t.Fatalf("update: %v %+v", created, again)
	}
	nfs := share("data")
	nfs.Protocols = "NFS"
	_, _, err = s.CreateOrUpdateShare(ctx, sub, "rg", "files1", nfs)
	wantCode(t, err, errdefs.ErrInvalidArgument, "InvalidValuesForRequestParameters")
	_, _, err = s.CreateOrUpdateShare(ctx, sub, "rg", "files1", share("Bad_Share"))
	wantCode(t, err, errdefs.ErrInvalidArgument, "InvalidResourceName")
	_, _, err = s.CreateOrUpdateShare(ctx, sub, "other", "files1", share("data"))
	wantCode(t, err, errdefs.ErrNotFound, "StorageAccountNotFound")
	_, _, err = s.CreateOrUpdateShare(ctx, sub, "rg", "files1", share("data2"))
	must(t, err)

	l, err := s.ListShares(ctx, sub, "rg", "files1")
	must(t, err)
	if len(l) != 2 || l[0].Name != "data" || l[1].Name != "data2" {
		t.Fatalf("list: %+v", l)
	}
	if got, err := s.GetShare(ctx, sub, "rg", "files1", "data"); err != nil || got.ID != sh.ID {
		t.Fatalf("get: %+v %v", got, err)
	}
	_, err = s.GetShare(ctx, sub, "rg", "files1", "absent")
	wantCode(t, err, errdefs.ErrNotFound, "ShareNotFound")

	// Deleted and created again: another share (another directory).
	gone, err := s.DeleteShare(ctx, sub, "rg", "files1", "data")
	must(t, err)
	if gone.ID != sh.ID {
		t.Fatalf("deleted %+v", gone)
	}
	_, err = s.DeleteShare(ctx, sub, "rg", "files1", "data")
	wantCode(t, err, errdefs.ErrNotFound, "ShareNotFound")
	fresh, created, err := s.CreateOrUpdateShare(ctx, sub, "rg", "files1", share("data"))
	must(t, err)
	if !created || fresh.ID == sh.ID || fresh.Quota != 5120 {
		t.Fatalf("re-created: %v %+v", created, fresh)
	}

	// Shares lists the live shares of every account.
	_, _, err = s.CreateOrUpdateAccount(ctx, spec("rg2", "files2"))
	must(t, err)
	_, _, err = s.CreateOrUpdateShare(ctx, sub, "rg2", "files2", share("other"))
	must(t, err)
	all, err := s.Shares(ctx)
	must(t, err)
	if len(all) != 3 {
		t.Fatalf("Shares: %+v", all)
	}

	// Deleting the account deletes its shares; an account of the same
	// name has none of them.
	deleted, err := s.DeleteAccount(ctx, sub, "rg", "files1")
	must(t, err)
	if len(deleted) != 2 {
		t.Fatalf("DeleteAccount deleted %+v", deleted)
	}
	_, _, err = s.CreateOrUpdateAccount(ctx, spec("rg", "files1"))
	must(t, err)
	if l, err := s.ListShares(ctx, sub, "rg", "files1"); err != nil || len(l) != 0 {
		t.Fatalf("the new account has shares: %+v %v", l, err)
	}
	if all, err := s.Shares(ctx); err != nil || len(all) != 1 || all[0].Name != "other" {
		t.Fatalf("Shares after the delete: %+v %v", all, err)
	}
}

// A share record left by an account delete that a crash cut short is not
// the new namesake account's.
func testStaleShare(t *testing.T, st store.ObjectStore) {
	ctx := context.Background()
	s := newService(t, st)
	_, _, err := s.CreateOrUpdateAccount(ctx, spec("rg", "stale1"))
	must(t, err)
	sh, _, err := s.CreateOrUpdateShare(ctx, sub, "rg", "stale1", share("data"))
	must(t, err)
	// The account goes but the share's record stays, as a crash between
	// the two deletes would leave it.
	o, err := st.GetObject(ctx, "storage.accounts", "stale1")
	must(t, err)
	must(t, st.DeleteObject(ctx, "storage.accounts", "stale1", o.Revision))
	_, _, err = s.CreateOrUpdateAccount(ctx, spec("rg", "stale1"))
	must(t, err)
	_, err = s.GetShare(ctx, sub, "rg", "stale1", "data")
	wantCode(t, err, errdefs.ErrNotFound, "ShareNotFound")
	if l, err := s.ListShares(ctx, sub, "rg", "stale1"); err != nil || len(l) != 0 {
		t.Fatalf("stale share listed: %+v %v", l, err)
	}
	fresh, created, err := s.CreateOrUpdateShare(ctx, sub, "rg", "stale1", share("data"))
	must(t, err)
	if !created || fresh.ID == sh.ID {
		t.Fatalf("over the stale record: %v %+v", created, fresh)
	}
}

func testResourceGroupDelete(t *testing.T, st store.ObjectStore) {
	ctx := context.Background()
	s := newService(t, st)
	for _, n := range []string{"rga1", "rga2"} {
		_, _, err := s.CreateOrUpdateAccount(ctx, spec("a", n))
		must(t, err)
		_, _, err = s.CreateOrUpdateShare(ctx, sub, "a", n, share("sh1"))
		must(t, err)
	}
	_, _, err := s.CreateOrUpdateAccount(ctx, spec("b", "rgb1"))
	must(t, err)
	gone, err := s.DeleteResourceGroup(ctx, sub, "A")
	must(t, err)
	if len(gone) != 2 {
		t.Fatalf("deleted shares %+v", gone)
	}
	if l, err := s.ListAccounts(ctx, sub, ""); err != nil || len(l) != 1 || l[0].Name != "rgb1" {
		t.Fatalf("left: %+v %v", l, err)
	}
	testStaleShare(t, st)
}

// Concurrent creates of one name in several resource groups: one wins,
// the others are refused; concurrent key renewals each take effect once.
func testRaces(t *testing.T, st store.ObjectStore) {
	ctx := context.Background()
	s := newService(t, st)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			_, _, errs[i] = s.CreateOrUpdateAccount(ctx, spec("rg"+string(rune('a'+i)), "race1"))
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case errdefs.CodeOf(err) != "StorageAccountAlreadyExists":
			t.Fatalf("a loser got %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d creates won", won)
	}
	a, err := s.FindAccount(ctx, "race1")
	must(t, err)
	before, err := s.ListKeys(ctx, sub, a.ResourceGroup, "race1")
	must(t, err)
	for range 4 {
		wg.Go(func() {
			if _, err := s.RegenerateKey(ctx, sub, a.ResourceGroup, "race1", "key2"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	after, err := s.ListKeys(ctx, sub, a.ResourceGroup, "race1")
	must(t, err)
	if after[0].Value != before[0].Value || after[1].Value == before[1].Value {
		t.Fatal("concurrent renewals of key2 changed key1 or not key2")
	}
}
