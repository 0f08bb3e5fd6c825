// Package storetest is the behaviour test suite every store.Store
// implementation must pass.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

const (
	sub1 = "0b5e2a1c-9f3d-4c1e-8a7b-3d2f1e0c9b8a"
	sub2 = "1c6f3b2d-0a4e-4d2f-9b8c-4e3a2f1d0c9b"
)

// RunSuite runs the suite. open returns a store for the test t; called again
// with the same t (after Close) it must return a store over the same data,
// so that persistence can be tested. open registers its own cleanup.
func RunSuite(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) store.Store)
	}{
		{"Subscriptions", testSubscriptions},
		{"ResourceGroups", testResourceGroups},
		{"ContainerGroups", testContainerGroups},
		{"ListContainerGroupsOrder", testListContainerGroupsOrder},
		{"DeleteResourceGroupConflict", testDeleteResourceGroupConflict},
		{"UpdateContainerGroup", testUpdateContainerGroup},
		{"UpdateContainerGroupRollback", testUpdateContainerGroupRollback},
		{"ConcurrentWriters", testConcurrentWriters},
		{"UpdateResourceGroup", testUpdateResourceGroup},
		{"CreateOrUpdateContainerGroup", testCreateOrUpdateContainerGroup},
		{"DeletingResourceGroupTakesNoGroups", testDeletingResourceGroupTakesNoGroups},
		{"DeleteContainerGroupIf", testDeleteContainerGroupIf},
		{"HandOverContainerGroup", testHandOver},
		{"PutRacingDelete", testPutRacingDelete},
		{"Operations", testOperations},
		{"Meta", testMeta},
		{"Persistence", testPersistence},
		{"CanceledContext", testCanceledContext},
		{"Secrets", testSecrets},
		{"Watch", testWatch},
		{"SlowWatcher", testSlowWatcher},
		{"ObservedKeptByOtherWriters", testObservedKept},
		{"Hosts", testHosts},
		{"Heartbeat", testHeartbeat},
		{"Objects", testObjects},
		{"ObjectsCompareAndSwap", testObjectsCAS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantNotFound checks that err wraps ErrNotFound and names name.
func wantNotFound(t *testing.T, err error, name string) {
	t.Helper()
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("err = %v, want one wrapping ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), strconv.Quote(name)) {
		t.Fatalf("err = %q, want it to name %q", err, name)
	}
}

func putRG(t *testing.T, s store.Store, sub, name string) {
	t.Helper()
	ctx := t.Context()
	if _, err := s.PutResourceGroup(ctx, store.ResourceGroup{Subscription: sub, Name: name, Location: "westeurope"}); err != nil {
		t.Fatal(err)
	}
}

func newCG(sub, rg, name string) store.ContainerGroup {
	return store.ContainerGroup{
		Subscription:  sub,
		ResourceGroup: rg,
		RuntimeID:     "rt-" + strings.ToLower(name),
		Resource: api.ContainerGroup{
			Name:     name,
			Location: "westeurope",
			Properties: api.ContainerGroupProperties{
				ProvisioningState: "Creating",
				OSType:            "Linux",
				Containers: []api.Container{{
					Name: "app",
					Properties: api.ContainerProperties{
						Image:   "127.0.0.1:5000/busybox:latest",
						Command: []string{"sleep", "3600"},
					},
				}},
				ImageRegistryCredentials: []api.ImageRegistryCredential{{Server: "127.0.0.1:5000", Username: "u", Password: "secret"}},
			},
		},
		CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func putCG(t *testing.T, s store.Store, sub, rg, name string) {
	t.Helper()
	ctx := t.Context()
	if _, err := s.PutContainerGroup(ctx, newCG(sub, rg, name)); err != nil {
		t.Fatal(err)
	}
}

func cgNames(cgs []store.ContainerGroup) string {
	var names []string
	for _, cg := range cgs {
		names = append(names, cg.ResourceGroup+"/"+cg.Resource.Name)
	}
	return strings.Join(names, " ")
}

func testSubscriptions(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	created := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	upper := strings.ToUpper(sub1)
	must(t, s.PutSubscription(ctx, store.Subscription{ID: upper, DisplayName: "one", State: "Enabled", CreatedAt: created}))
	must(t, s.PutSubscription(ctx, store.Subscription{ID: sub2, DisplayName: "two", State: "Enabled"}))

	got, err := s.GetSubscription(ctx, sub1) // lower case finds the upper-case record
	must(t, err)
	if got.ID != upper || got.DisplayName != "one" || !got.CreatedAt.Equal(created) {
		t.Fatalf("GetSubscription = %+v", got)
	}

	// Replace in another case: data changes, ID case and CreatedAt stay.
	must(t, s.PutSubscription(ctx, store.Subscription{ID: sub1, DisplayName: "renamed", State: "Disabled"}))
	got, err = s.GetSubscription(ctx, upper)
	must(t, err)
	if got.ID != upper || got.DisplayName != "renamed" || got.State != "Disabled" || !got.CreatedAt.Equal(created) {
		t.Fatalf("after replace GetSubscription = %+v", got)
	}

	list, err := s.ListSubscriptions(ctx)
	must(t, err)
	if len(list) != 2 || list[0].ID != upper || list[1].ID != sub2 {
		t.Fatalf("ListSubscriptions = %+v", list)
	}

	_, err = s.GetSubscription(ctx, "no-such-sub")
	wantNotFound(t, err, "no-such-sub")
}

func testResourceGroups(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	if list, err := s.ListResourceGroups(ctx, sub1); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("ListResourceGroups on empty store = %#v, %v; want empty non-nil", list, err)
	}

	created, err := s.PutResourceGroup(ctx, store.ResourceGroup{Subscription: sub1, Name: "MyRG", Location: "westeurope",
		Tags: map[string]string{"env": "dev"}, CreatedAt: time.Unix(1000, 0).UTC()})
	must(t, err)
	if !created {
		t.Fatal("first PutResourceGroup: created = false")
	}
	created, err = s.PutResourceGroup(ctx, store.ResourceGroup{Subscription: strings.ToUpper(sub1), Name: "myrg", Location: "northeurope",
		CreatedAt: time.Unix(2000, 0).UTC()})
	must(t, err)
	if created {
		t.Fatal("second PutResourceGroup in another case: created = true")
	}

	for _, name := range []string{"MyRG", "myrg", "MYRG"} {
		rg, err := s.GetResourceGroup(ctx, strings.ToUpper(sub1), name)
		must(t, err)
		if rg.Name != "MyRG" || rg.Subscription != sub1 || rg.Location != "northeurope" || rg.Tags != nil ||
			!rg.CreatedAt.Equal(time.Unix(1000, 0)) {
			t.Fatalf("GetResourceGroup(%q) = %+v; want name/sub/createdAt of the first write, rest of the second", name, rg)
		}
	}

	putRG(t, s, sub1, "c-rg")
	putRG(t, s, sub1, "B-rg")
	putRG(t, s, sub1, "a-rg")
	putRG(t, s, sub2, "other")
	list, err := s.ListResourceGroups(ctx, sub1)
	must(t, err)
	var names []string
	for _, rg := range list {
		names = append(names, rg.Name)
	}
	if got, want := strings.Join(names, " "), "a-rg B-rg c-rg MyRG"; got != want {
		t.Fatalf("ListResourceGroups = %q, want %q", got, want)
	}

	_, err = s.GetResourceGroup(ctx, sub2, "MyRG") // other subscription
	wantNotFound(t, err, "MyRG")

	must(t, s.DeleteResourceGroup(ctx, sub1, "MYRG"))
	_, err = s.GetResourceGroup(ctx, sub1, "MyRG")
	wantNotFound(t, err, "MyRG")
	wantNotFound(t, s.DeleteResourceGroup(ctx, sub1, "rg1"), "rg1")
	if list, _ := s.ListResourceGroups(ctx, sub1); len(list) != 3 {
		t.Fatalf("after delete ListResourceGroups = %+v", list)
	}
}

func testContainerGroups(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)

	_, err := s.PutContainerGroup(ctx, newCG(sub1, "rg1", "cg1"))
	wantNotFound(t, err, "rg1")
	putRG(t, s, sub1, "RG1")

	cg := newCG(sub1, "rg1", "WebApp")
	created, err := s.PutContainerGroup(ctx, cg)
	must(t, err)
	if !created {
		t.Fatal("first PutContainerGroup: created = false")
	}
	got, err := s.GetContainerGroup(ctx, strings.ToUpper(sub1), "rg1", "webapp")
	must(t, err)
	if got.Resource.Name != "WebApp" || got.ResourceGroup != "RG1" || got.Subscription != sub1 || got.Generation != 1 ||
		got.RuntimeID != "rt-webapp" || !got.CreatedAt.Equal(cg.CreatedAt) ||
		len(got.Resource.Properties.Containers) != 1 || got.Resource.Properties.Containers[0].Properties.Image != cg.Resource.Properties.Containers[0].Properties.Image ||
		got.Resource.Properties.ImageRegistryCredentials[0].Password != "secret" {
		t.Fatalf("GetContainerGroup = %+v", got)
	}

	// Replace in another case: created=false, generation 2, first-write case and CreatedAt kept.
	cg2 := newCG(sub1, "Rg1", "WEBAPP")
	cg2.Resource.Properties.Containers[0].Properties.Image = "127.0.0.1:5000/busybox:v2"
	cg2.CreatedAt = time.Now()
	created, err = s.PutContainerGroup(ctx, cg2)
	must(t, err)
	if created {
		t.Fatal("second PutContainerGroup: created = true")
	}
	got, err = s.GetContainerGroup(ctx, sub1, "RG1", "WebApp")
	must(t, err)
	if got.Resource.Name != "WebApp" || got.Generation != 2 || !got.CreatedAt.Equal(cg.CreatedAt) ||
		got.Resource.Properties.Containers[0].Properties.Image != "127.0.0.1:5000/busybox:v2" {
		t.Fatalf("after replace GetContainerGroup = %+v", got)
	}

	putCG(t, s, sub1, "rg1", "api")
	list, err := s.ListContainerGroups(ctx, sub1, "rg1")
	must(t, err)
	if got, want := cgNames(list), "RG1/api RG1/WebApp"; got != want {
		t.Fatalf("ListContainerGroups = %q, want %q", got, want)
	}

	_, err = s.GetContainerGroup(ctx, sub1, "rg1", "nope")
	wantNotFound(t, err, "nope")
	_, err = s.GetContainerGroup(ctx, sub1, "rg-missing", "WebApp")
	wantNotFound(t, err, "rg-missing")
	_, err = s.ListContainerGroups(ctx, sub1, "rg-missing")
	wantNotFound(t, err, "rg-missing")
	putRG(t, s, sub1, "empty")
	if list, err := s.ListContainerGroups(ctx, sub1, "empty"); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("ListContainerGroups(empty rg) = %#v, %v; want empty non-nil", list, err)
	}

	must(t, s.DeleteContainerGroup(ctx, sub1, "rg1", "webapp"))
	_, err = s.GetContainerGroup(ctx, sub1, "rg1", "WebApp")
	wantNotFound(t, err, "WebApp")
	wantNotFound(t, s.DeleteContainerGroup(ctx, sub1, "rg1", "webapp"), "webapp")
	wantNotFound(t, s.DeleteContainerGroup(ctx, sub1, "rg-missing", "webapp"), "rg-missing")
	if list, _ := s.ListContainerGroups(ctx, sub1, "rg1"); cgNames(list) != "RG1/api" {
		t.Fatalf("after delete ListContainerGroups = %q", cgNames(list))
	}
}

func testListContainerGroupsOrder(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	if list, err := s.ListContainerGroups(ctx, sub1, ""); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("ListContainerGroups on empty store = %#v, %v; want empty non-nil", list, err)
	}
	for _, rg := range []string{"zeta", "Alpha", "mid"} {
		putRG(t, s, sub1, rg)
	}
	putRG(t, s, sub2, "alpha")
	for _, p := range [][2]string{{"zeta", "a"}, {"mid", "Z"}, {"alpha", "y"}, {"Alpha", "B"}, {"mid", "c"}, {"alpha", "a"}} {
		putCG(t, s, sub1, p[0], p[1])
	}
	putCG(t, s, sub2, "alpha", "elsewhere")

	list, err := s.ListContainerGroups(ctx, strings.ToUpper(sub1), "")
	must(t, err)
	if got, want := cgNames(list), "Alpha/a Alpha/B Alpha/y mid/c mid/Z zeta/a"; got != want {
		t.Fatalf("ListContainerGroups(sub, \"\") = %q, want %q", got, want)
	}
}

func testDeleteResourceGroupConflict(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	putRG(t, s, sub1, "rg1")
	putCG(t, s, sub1, "rg1", "cg1")
	putCG(t, s, sub1, "rg1", "cg2")

	err := s.DeleteResourceGroup(ctx, sub1, "rg1")
	if !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("DeleteResourceGroup with groups: err = %v, want ErrConflict", err)
	}
	if _, err := s.GetContainerGroup(ctx, sub1, "rg1", "cg1"); err != nil {
		t.Fatalf("refused delete removed a container group: %v", err)
	}
	if _, err := s.GetResourceGroup(ctx, sub1, "rg1"); err != nil {
		t.Fatalf("refused delete removed the resource group: %v", err)
	}

	must(t, s.DeleteContainerGroup(ctx, sub1, "rg1", "cg1"))
	must(t, s.DeleteContainerGroup(ctx, sub1, "rg1", "cg2"))
	must(t, s.DeleteResourceGroup(ctx, sub1, "rg1"))

	// A new group of the same name starts empty.
	putRG(t, s, sub1, "RG1")
	if list, err := s.ListContainerGroups(ctx, sub1, "rg1"); err != nil || len(list) != 0 {
		t.Fatalf("recreated resource group lists %q, %v", cgNames(list), err)
	}
}

func testUpdateContainerGroup(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	putRG(t, s, sub1, "rg1")
	putCG(t, s, sub1, "rg1", "Web")

	got, err := s.UpdateContainerGroup(ctx, sub1, "RG1", "web", func(cg *store.ContainerGroup) error {
		cg.Resource.Properties.ProvisioningState = "Succeeded"
		cg.UpdatedAt = time.Unix(3000, 0).UTC()
		return nil
	})
	must(t, err)
	if got.Resource.Properties.ProvisioningState != "Succeeded" || got.Resource.Name != "Web" || got.Generation != 1 {
		t.Fatalf("UpdateContainerGroup returned %+v", got)
	}
	stored, err := s.GetContainerGroup(ctx, sub1, "rg1", "Web")
	must(t, err)
	if stored.Resource.Properties.ProvisioningState != "Succeeded" || !stored.UpdatedAt.Equal(time.Unix(3000, 0)) {
		t.Fatalf("update not stored: %+v", stored)
	}

	_, err = s.UpdateContainerGroup(ctx, sub1, "rg1", "ghost", func(*store.ContainerGroup) error {
		t.Error("f called for a missing group")
		return nil
	})
	wantNotFound(t, err, "ghost")

	_, err = s.UpdateContainerGroup(ctx, sub1, "rg1", "web", func(cg *store.ContainerGroup) error {
		cg.Resource.Name = "other"
		return nil
	})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("rename through UpdateContainerGroup: err = %v, want ErrInvalidArgument", err)
	}
	if _, err := s.GetContainerGroup(ctx, sub1, "rg1", "other"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("refused rename created %q: %v", "other", err)
	}
}

func testUpdateContainerGroupRollback(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	putRG(t, s, sub1, "rg1")
	putCG(t, s, sub1, "rg1", "web")
	before, err := s.GetContainerGroup(ctx, sub1, "rg1", "web")
	must(t, err)

	boom := errors.New("boom")
	got, err := s.UpdateContainerGroup(ctx, sub1, "rg1", "web", func(cg *store.ContainerGroup) error {
		cg.Resource.Properties.ProvisioningState = "Failed"
		cg.RuntimeID = "changed"
		cg.Error = &api.ErrorBody{Code: "X", Message: "should not be stored"}
		return fmt.Errorf("reconcile: %w", boom)
	})
	if !errors.Is(err, boom) || got != nil {
		t.Fatalf("UpdateContainerGroup with failing f = %v, %v; want nil and f's error", got, err)
	}
	after, err := s.GetContainerGroup(ctx, sub1, "rg1", "web")
	must(t, err)
	if after.Resource.Properties.ProvisioningState != before.Resource.Properties.ProvisioningState ||
		after.RuntimeID != before.RuntimeID || after.Error != nil {
		t.Fatalf("failed update was written: before %+v, after %+v", before, after)
	}
}

func testConcurrentWriters(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	putRG(t, s, sub1, "rg1")
	putCG(t, s, sub1, "rg1", "counter")

	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				_, err := s.UpdateContainerGroup(ctx, sub1, "rg1", "counter", func(cg *store.ContainerGroup) error {
					n, _ := strconv.Atoi(cg.Resource.Tags["n"])
					if cg.Resource.Tags == nil {
						cg.Resource.Tags = map[string]string{}
					}
					cg.Resource.Tags["n"] = strconv.Itoa(n + 1)
					return nil
				})
				if err != nil {
					errs <- err
				}
				// Interleave creations and reads with the updates.
				if _, err := s.PutResourceGroup(ctx, store.ResourceGroup{Subscription: sub1, Name: fmt.Sprintf("w%d-%d", w, i)}); err != nil {
					errs <- err
				}
				if _, err := s.ListContainerGroups(ctx, sub1, ""); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	cg, err := s.GetContainerGroup(ctx, sub1, "rg1", "counter")
	must(t, err)
	if got := cg.Resource.Tags["n"]; got != strconv.Itoa(workers*rounds) {
		t.Fatalf("counter = %s after %d concurrent increments: updates were lost", got, workers*rounds)
	}
	list, err := s.ListResourceGroups(ctx, sub1)
	must(t, err)
	if len(list) != workers*rounds+1 {
		t.Fatalf("%d resource groups after %d concurrent creations, want %d", len(list), workers*rounds, workers*rounds+1)
	}
}

func testOperations(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	ops := []store.Operation{
		{ID: "c3f1a0de-0000-4000-8000-000000000003", Subscription: sub1, Kind: "create", Status: api.OperationInProgress, StartTime: t0.Add(2 * time.Minute)},
		{ID: "a1f1a0de-0000-4000-8000-000000000001", Subscription: sub1, Kind: "delete", Status: api.OperationSucceeded, StartTime: t0, EndTime: t0.Add(time.Second)},
		{ID: "b2f1a0de-0000-4000-8000-000000000002", Subscription: sub1, Kind: "restart", Status: api.OperationInProgress, StartTime: t0.Add(time.Minute),
			ResourceID: "/subscriptions/" + sub1 + "/resourceGroups/rg1/providers/Microsoft.ContainerInstance/containerGroups/web"},
	}
	for _, op := range ops {
		must(t, s.PutOperation(ctx, op))
	}

	got, err := s.GetOperation(ctx, strings.ToUpper(ops[2].ID))
	must(t, err)
	if got.ID != ops[2].ID || got.Kind != "restart" || got.ResourceID != ops[2].ResourceID || !got.StartTime.Equal(ops[2].StartTime) || !got.EndTime.IsZero() {
		t.Fatalf("GetOperation = %+v", got)
	}

	ids := func(ops []store.Operation) string {
		var s []string
		for _, op := range ops {
			s = append(s, op.ID[:2])
		}
		return strings.Join(s, " ")
	}
	inProgress, err := s.ListOperations(ctx, api.OperationInProgress)
	must(t, err)
	if got, want := ids(inProgress), "b2 c3"; got != want {
		t.Fatalf("ListOperations(InProgress) = %q, want %q (by start time)", got, want)
	}
	all, err := s.ListOperations(ctx, "")
	must(t, err)
	if got, want := ids(all), "a1 b2 c3"; got != want {
		t.Fatalf("ListOperations(\"\") = %q, want %q", got, want)
	}

	// Finish one: it leaves the InProgress list.
	done := ops[0]
	done.Status, done.EndTime = api.OperationFailed, t0.Add(time.Hour)
	done.Error = &api.ErrorBody{Code: "ImagePullFailed", Message: "pull failed"}
	must(t, s.PutOperation(ctx, done))
	inProgress, err = s.ListOperations(ctx, api.OperationInProgress)
	must(t, err)
	if got, want := ids(inProgress), "b2"; got != want {
		t.Fatalf("after finishing, ListOperations(InProgress) = %q, want %q", got, want)
	}
	got, err = s.GetOperation(ctx, done.ID)
	must(t, err)
	if got.Status != api.OperationFailed || got.Error == nil || got.Error.Code != "ImagePullFailed" {
		t.Fatalf("finished operation = %+v", got)
	}

	_, err = s.GetOperation(ctx, "00000000-dead-beef-0000-000000000000")
	wantNotFound(t, err, "00000000-dead-beef-0000-000000000000")
}

func testMeta(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	_, err := s.GetMeta(ctx, "defaultSubscription")
	wantNotFound(t, err, "defaultSubscription")
	must(t, s.PutMeta(ctx, "defaultSubscription", sub1))
	must(t, s.PutMeta(ctx, "other", "x"))
	must(t, s.PutMeta(ctx, "defaultSubscription", sub2))
	if v, err := s.GetMeta(ctx, "defaultSubscription"); err != nil || v != sub2 {
		t.Fatalf("GetMeta = %q, %v; want %q", v, err, sub2)
	}
	if v, err := s.GetMeta(ctx, "other"); err != nil || v != "x" {
		t.Fatalf("GetMeta(other) = %q, %v", v, err)
	}
	if err := s.PutMeta(ctx, "", "x"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("PutMeta with empty key: err = %v, want ErrInvalidArgument", err)
	}
}

func testPersistence(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	must(t, s.PutSubscription(ctx, store.Subscription{ID: sub1, State: "Enabled"}))
	putRG(t, s, sub1, "Keep")
	putCG(t, s, sub1, "keep", "Web")
	must(t, s.PutOperation(ctx, store.Operation{ID: "op-1", Status: api.OperationInProgress}))
	must(t, s.PutMeta(ctx, "k", "v"))
	_, err := s.UpdateContainerGroup(ctx, sub1, "keep", "web", func(cg *store.ContainerGroup) error {
		cg.Resource.Properties.ProvisioningState = "Succeeded"
		return nil
	})
	must(t, err)
	must(t, s.Close())

	s = open(t)
	if _, err := s.GetSubscription(ctx, sub1); err != nil {
		t.Errorf("subscription lost: %v", err)
	}
	if rg, err := s.GetResourceGroup(ctx, sub1, "KEEP"); err != nil || rg.Name != "Keep" {
		t.Errorf("resource group after reopen = %+v, %v", rg, err)
	}
	if cg, err := s.GetContainerGroup(ctx, sub1, "keep", "web"); err != nil || cg.Resource.Name != "Web" ||
		cg.Resource.Properties.ProvisioningState != "Succeeded" {
		t.Errorf("container group after reopen = %+v, %v", cg, err)
	}
	if ops, err := s.ListOperations(ctx, api.OperationInProgress); err != nil || len(ops) != 1 || ops[0].ID != "op-1" {
		t.Errorf("operations after reopen = %+v, %v", ops, err)
	}
	if v, err := s.GetMeta(ctx, "k"); err != nil || v != "v" {
		t.Errorf("meta after reopen = %q, %v", v, err)
	}
	// Writes still work after a reopen.
	if created, err := s.PutContainerGroup(ctx, newCG(sub1, "keep", "web")); err != nil || created {
		t.Errorf("PutContainerGroup after reopen: created=%v, %v", created, err)
	}
}

func testCanceledContext(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.PutResourceGroup(cctx, store.ResourceGroup{Subscription: sub1, Name: "rg1"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("PutResourceGroup with canceled ctx: err = %v", err)
	}
	if _, err := s.GetResourceGroup(ctx, sub1, "rg1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a canceled PutResourceGroup was written: %v", err)
	}
	if _, err := s.ListResourceGroups(cctx, sub1); !errors.Is(err, context.Canceled) {
		t.Fatalf("ListResourceGroups with canceled ctx: err = %v", err)
	}
}

func testUpdateResourceGroup(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	putRG(t, s, sub1, "Rg1")
	got, err := s.UpdateResourceGroup(ctx, sub1, "rg1", func(rg *store.ResourceGroup) error {
		rg.ProvisioningState = store.ResourceGroupDeleting
		return nil
	})
	must(t, err)
	if got.Name != "Rg1" || got.ProvisioningState != store.ResourceGroupDeleting {
		t.Fatalf("UpdateResourceGroup returned %+v", got)
	}
	stored, err := s.GetResourceGroup(ctx, sub1, "RG1")
	must(t, err)
	if stored.ProvisioningState != store.ResourceGroupDeleting || stored.Location != "westeurope" {
		t.Fatalf("update not stored: %+v", stored)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateResourceGroup(ctx, sub1, "rg1", func(rg *store.ResourceGroup) error {
		rg.ProvisioningState = ""
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("failing f: err = %v", err)
	}
	if _, err := s.UpdateResourceGroup(ctx, sub1, "rg1", func(rg *store.ResourceGroup) error {
		rg.Name = "other"
		return nil
	}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("rename: err = %v, want ErrInvalidArgument", err)
	}
	if stored, _ := s.GetResourceGroup(ctx, sub1, "rg1"); stored.ProvisioningState != store.ResourceGroupDeleting {
		t.Fatalf("refused updates were written: %+v", stored)
	}
	_, err = s.UpdateResourceGroup(ctx, sub1, "ghost", func(*store.ResourceGroup) error {
		t.Error("f called for a missing resource group")
		return nil
	})
	wantNotFound(t, err, "ghost")
}

func testCreateOrUpdateContainerGroup(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	putRG(t, s, sub1, "rg1")
	put := func(name string, f func(old *store.ContainerGroup) error) (*store.ContainerGroup, bool, error) {
		return s.CreateOrUpdateContainerGroup(ctx, sub1, "RG1", name, func(old *store.ContainerGroup) (*store.ContainerGroup, error) {
			if err := f(old); err != nil {
				return nil, err
			}
			cg := newCG(sub1, "rg1", name)
			return &cg, nil
		})
	}
	cg, created, err := put("Web", func(old *store.ContainerGroup) error {
		if old != nil {
			t.Errorf("old = %+v for a new group", old)
		}
		return nil
	})
	must(t, err)
	if !created || cg.Generation != 1 || cg.ResourceGroup != "rg1" || cg.Resource.Name != "Web" {
		t.Fatalf("create: created=%v %+v", created, cg)
	}
	cg, created, err = put("web", func(old *store.ContainerGroup) error {
		if old == nil || old.Generation != 1 || old.Resource.Name != "Web" {
			t.Errorf("old = %+v, want generation 1 of Web", old)
		} else if pw := old.Resource.Properties.ImageRegistryCredentials[0].Password; pw != "secret" {
			t.Errorf("old's registry password reads %q, want it as written", pw)
		}
		return nil
	})
	must(t, err)
	if created || cg.Generation != 2 || cg.Resource.Name != "Web" {
		t.Fatalf("replace: created=%v %+v", created, cg)
	}
	if got, err := s.GetContainerGroup(ctx, sub1, "rg1", "web"); err != nil || got.Resource.Properties.ImageRegistryCredentials[0].Password != "secret" {
		t.Fatalf("read back after CreateOrUpdateContainerGroup: %v, %+v", err, got)
	}
	// A refusal writes nothing: no new record, no new generation.
	refused := errdefs.WithCode(errdefs.ErrConflict, "ContainerGroupTransitioning", "no")
	if _, _, err := put("web", func(*store.ContainerGroup) error { return refused }); !errors.Is(err, refused) {
		t.Fatalf("refused replace: err = %v", err)
	}
	if _, _, err := put("new", func(*store.ContainerGroup) error { return refused }); !errors.Is(err, refused) {
		t.Fatalf("refused create: err = %v", err)
	}
	if got, _ := s.GetContainerGroup(ctx, sub1, "rg1", "web"); got.Generation != 2 {
		t.Fatalf("refused replace wrote generation %d", got.Generation)
	}
	if _, err := s.GetContainerGroup(ctx, sub1, "rg1", "new"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("refused create stored a record: %v", err)
	}
	_, _, err = s.CreateOrUpdateContainerGroup(ctx, sub1, "nope", "web", func(*store.ContainerGroup) (*store.ContainerGroup, error) {
		t.Error("f called in a missing resource group")
		return nil, nil
	})
	wantNotFound(t, err, "nope")

	// Concurrent creates of one name: exactly one sees no record.
	var wg sync.WaitGroup
	var mu sync.Mutex
	creators := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, created, err := put("race", func(*store.ContainerGroup) error { return nil })
			if err != nil {
				t.Error(err)
			}
			if created {
				mu.Lock()
				creators++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got, _ := s.GetContainerGroup(ctx, sub1, "rg1", "race"); creators != 1 || got.Generation != 8 {
		t.Fatalf("8 concurrent puts: %d created, generation %d; want 1 and 8", creators, got.Generation)
	}
}

func testDeletingResourceGroupTakesNoGroups(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	putRG(t, s, sub1, "rg1")
	putCG(t, s, sub1, "rg1", "old")
	_, err := s.UpdateResourceGroup(ctx, sub1, "rg1", func(rg *store.ResourceGroup) error {
		rg.ProvisioningState = store.ResourceGroupDeleting
		return nil
	})
	must(t, err)
	for _, name := range []string{"new", "old"} {
		_, _, err := s.CreateOrUpdateContainerGroup(ctx, sub1, "rg1", name, func(*store.ContainerGroup) (*store.ContainerGroup, error) {
			t.Errorf("f called for %s in a Deleting resource group", name)
			cg := newCG(sub1, "rg1", name)
			return &cg, nil
		})
		if !errors.Is(err, errdefs.ErrConflict) || errdefs.CodeOf(err) != "ResourceGroupBeingDeleted" {
			t.Fatalf("put %s in a Deleting resource group: err = %v (%s), want ErrConflict ResourceGroupBeingDeleted", name, err, errdefs.CodeOf(err))
		}
	}
	if list, _ := s.ListContainerGroups(ctx, sub1, "rg1"); cgNames(list) != "rg1/old" {
		t.Fatalf("Deleting resource group holds %q", cgNames(list))
	}
}

func testDeleteContainerGroupIf(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	putRG(t, s, sub1, "rg1")
	putCG(t, s, sub1, "rg1", "web")
	notDeleting := errors.New("not deleting")
	onlyDeleting := func(cg *store.ContainerGroup) error {
		if cg.Resource.Properties.ProvisioningState != "Deleting" {
			return notDeleting
		}
		return nil
	}
	if err := s.DeleteContainerGroupIf(ctx, sub1, "rg1", "web", onlyDeleting); !errors.Is(err, notDeleting) {
		t.Fatalf("refused delete: err = %v", err)
	}
	if _, err := s.GetContainerGroup(ctx, sub1, "rg1", "web"); err != nil {
		t.Fatalf("refused delete removed the record: %v", err)
	}
	_, err := s.UpdateContainerGroup(ctx, sub1, "rg1", "web", func(cg *store.ContainerGroup) error {
		cg.Resource.Properties.ProvisioningState = "Deleting"
		return nil
	})
	must(t, err)
	must(t, s.DeleteContainerGroupIf(ctx, sub1, "RG1", "WEB", onlyDeleting))
	if _, err := s.GetContainerGroup(ctx, sub1, "rg1", "web"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("record still there after DeleteContainerGroupIf: %v", err)
	}
	wantNotFound(t, s.DeleteContainerGroupIf(ctx, sub1, "rg1", "web", onlyDeleting), "web")
}

// testHandOver: a group's record is handed to a new name in another
// resource group in one transaction (the old record goes, the new one is
// a create that keeps what f copied), both changes are heard, and every
// refusal leaves both records as they were.
func testHandOver(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	putRG(t, s, sub1, "pool")
	putRG(t, s, sub1, "apps")
	putCG(t, s, sub1, "pool", "member")
	putCG(t, s, sub1, "apps", "taken")
	_, err := s.UpdateContainerGroup(ctx, sub1, "pool", "member", func(cg *store.ContainerGroup) error {
		cg.Host, cg.Observed = "local", &store.Observed{Generation: 1, State: "Running", IP: "10.0.0.7"}
		return nil
	})
	must(t, err)
	ch := s.Watch(ctx)
	give := func(from *store.ContainerGroup) (*store.ContainerGroup, error) {
		cg := newCG(sub1, "apps", "Web")
		cg.RuntimeID, cg.Host, cg.Observed = from.RuntimeID, from.Host, from.Observed
		cg.Resource.Properties.IsCreatedFromStandbyPool = true
		return &cg, nil
	}
	refused := errors.New("not ready")
	if _, err := s.HandOverContainerGroup(ctx, sub1, "pool", "member", "apps", "web", func(*store.ContainerGroup) (*store.ContainerGroup, error) { return nil, refused }); !errors.Is(err, refused) {
		t.Fatalf("refused hand-over: err = %v", err)
	}
	if _, err := s.HandOverContainerGroup(ctx, sub1, "pool", "member", "apps", "taken", give); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("hand-over to a taken name: err = %v, want ErrAlreadyExists", err)
	}
	if _, err := s.HandOverContainerGroup(ctx, sub1, "pool", "absent", "apps", "web", give); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("hand-over of an absent group: err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetContainerGroup(ctx, sub1, "pool", "member"); err != nil {
		t.Fatalf("a refused hand-over removed the record: %v", err)
	}
	got, err := s.HandOverContainerGroup(ctx, sub1, "POOL", "MEMBER", "apps", "Web", give)
	must(t, err)
	if got.Generation != 1 || got.RuntimeID != "rt-member" || got.ResourceGroup != "apps" {
		t.Fatalf("handed-over record: generation %d, runtime %q, resource group %q", got.Generation, got.RuntimeID, got.ResourceGroup)
	}
	if _, err := s.GetContainerGroup(ctx, sub1, "pool", "member"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("the handed-over record is still there: %v", err)
	}
	now, err := s.GetContainerGroup(ctx, sub1, "apps", "web")
	must(t, err)
	if now.Host != "local" || now.Observed == nil || now.Observed.IP != "10.0.0.7" || !now.Resource.Properties.IsCreatedFromStandbyPool || now.Resource.Name != "Web" {
		t.Fatalf("stored record: host %q, observed %+v, fromPool %v, name %q", now.Host, now.Observed, now.Resource.Properties.IsCreatedFromStandbyPool, now.Resource.Name)
	}
	wantChanges(t, ch, []store.Change{store.GroupChange(sub1, "apps", "web"), store.GroupChange(sub1, "pool", "member")})
}

// testPutRacingDelete runs the server's protocol against the store: PUTs
// refuse a Deleting record, a delete marks the record Deleting and then
// removes it only while it is still the Deleting one. Every PUT that
// succeeded after the mark must have created a new record, never revived
// the Deleting one.
func testPutRacingDelete(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	putRG(t, s, sub1, "rg1")
	errDeleting := errors.New("being deleted")
	put := func() (*store.ContainerGroup, bool, error) {
		return s.CreateOrUpdateContainerGroup(ctx, sub1, "rg1", "web", func(old *store.ContainerGroup) (*store.ContainerGroup, error) {
			if old != nil && old.Resource.Properties.ProvisioningState == "Deleting" {
				return nil, errDeleting
			}
			cg := newCG(sub1, "rg1", "web")
			cg.Resource.Properties.ProvisioningState = "Pending"
			return &cg, nil
		})
	}
	for round := range 50 {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 5 {
				if _, _, err := put(); err != nil && !errors.Is(err, errDeleting) {
					t.Error(err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			marked, err := s.UpdateContainerGroup(ctx, sub1, "rg1", "web", func(cg *store.ContainerGroup) error {
				cg.Resource.Properties.ProvisioningState = "Deleting"
				return nil
			})
			if errors.Is(err, errdefs.ErrNotFound) {
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			err = s.DeleteContainerGroupIf(ctx, sub1, "rg1", "web", func(cg *store.ContainerGroup) error {
				if cg.Resource.Properties.ProvisioningState != "Deleting" || cg.Generation != marked.Generation {
					return fmt.Errorf("round %d: the Deleting record (generation %d) was replaced by generation %d, state %s",
						round, marked.Generation, cg.Generation, cg.Resource.Properties.ProvisioningState)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		if cg, err := s.GetContainerGroup(ctx, sub1, "rg1", "web"); err == nil && cg.Resource.Properties.ProvisioningState != "Pending" {
			t.Fatalf("round %d: left a %s record", round, cg.Resource.Properties.ProvisioningState)
		}
	}
}

// testWatch: every committed write of a container group, resource group or
// operation is heard, in commit order, with lower-cased names; a write that
// fails is not; the channel closes when the watch's context ends.
func testWatch(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx, cancel := context.WithCancel(t.Context())
	ch := s.Watch(ctx)
	putRG(t, s, "sub", "RG")
	putCG(t, s, "sub", "RG", "Web")
	if _, err := s.UpdateContainerGroup(t.Context(), "sub", "rg", "web", func(*store.ContainerGroup) error { return errors.New("refused") }); err == nil {
		t.Fatal("a refused update succeeded")
	}
	must(t, s.PutOperation(t.Context(), store.Operation{ID: "op1", Subscription: "Sub", Status: "InProgress"}))
	must(t, s.DeleteContainerGroup(t.Context(), "sub", "rg", "web"))
	want := []store.Change{
		{Kind: store.ResourceGroupChange, Subscription: "sub", ResourceGroup: "rg"},
		store.GroupChange("sub", "rg", "web"),
		{Kind: store.OperationChange, Subscription: "sub", Name: "op1"},
		store.GroupChange("sub", "rg", "web"),
	}
	wantChanges(t, ch, want)
	select {
	case got := <-ch:
		t.Fatalf("an extra change: %+v (a failed write is not a change)", got)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("a change after the watch ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the channel stays open after the watch's context ended")
	}
}

// testSlowWatcher: a watcher that does not read holds no writer up, and
// later hears every write, in order.
func testSlowWatcher(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx := t.Context()
	ch := s.Watch(ctx) // not read until every write is done
	const n = 200
	for i := range n {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := s.PutResourceGroup(wctx, store.ResourceGroup{Subscription: "sub", Name: fmt.Sprintf("rg-%03d", i)})
		cancel()
		if err != nil {
			t.Fatalf("write %d with a watcher that does not read: %v", i, err)
		}
	}
	want := make([]store.Change, n)
	for i := range want {
		want[i] = store.RGChange("sub", fmt.Sprintf("rg-%03d", i))
	}
	wantChanges(t, ch, want)
}

// wantChanges reads len(want) changes from ch and fails the test unless
// they are want, in order, each within 5 s.
func wantChanges(t *testing.T, ch <-chan store.Change, want []store.Change) {
	t.Helper()
	for i, w := range want {
		select {
		case got := <-ch:
			if got != w {
				t.Fatalf("change %d: got %+v, want %+v", i, got, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("change %d (%+v) never heard", i, w)
		}
	}
}

// testObservedKept: the fields the controller and the agent own (Host,
// Action, Observed) survive another writer's update (tags).
func testObservedKept(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx := t.Context()
	putRG(t, s, "sub", "rg")
	putCG(t, s, "sub", "rg", "web")
	obs := &store.Observed{Generation: 1, State: "Running", IP: "10.0.0.9", Containers: []store.ObservedContainer{{Name: "app"}}}
	_, err := s.UpdateContainerGroup(ctx, "sub", "rg", "web", func(c *store.ContainerGroup) error {
		c.Host, c.Action, c.Observed = "local", store.Action{Kind: store.ActionStop, Seq: 2}, obs
		return nil
	})
	must(t, err)
	_, err = s.UpdateContainerGroup(ctx, "sub", "rg", "web", func(c *store.ContainerGroup) error {
		c.Resource.Tags = map[string]string{"a": "b"}
		return nil
	})
	must(t, err)
	got, err := s.GetContainerGroup(ctx, "sub", "rg", "web")
	must(t, err)
	if got.Host != "local" || got.Action.Seq != 2 || got.Observed == nil || got.Observed.IP != "10.0.0.9" || got.Observed.Container("app") == nil {
		t.Fatalf("owned fields lost: host %q action %+v observed %+v", got.Host, got.Action, got.Observed)
	}
}
