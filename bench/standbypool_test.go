package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// BenchmarkStandbyPoolCreateToRunning times create→Running (PUT until GET
// shows Running) of a group handed over from a standby pool, against a
// cold create of the same group through the API and against `runc run -d`,
// in one run: samples of each, the pool's and the cold creates
// alternating, the pool refilled (maxReadyCapacity ready) before each.
func BenchmarkStandbyPoolCreateToRunning(b *testing.B) {
	testenv.RequireRoot(b)
	reg := testenv.StartRegistry(b, testenv.RegistryOptions{})
	img := testenv.BusyboxImage(b, testenv.ImageOptions{Cmd: []string{"sleep", "3600"}})
	ref := testenv.Push(b, reg, "bench/busybox:1", img)
	s := testenv.StartSkiffServer(b, testenv.SkiffServerOptions{Binary: skiffBinary(b), LogLevel: "error", StopGrace: time.Second})
	c := s.Client
	ctx := context.Background()
	if _, err := c.CreateResourceGroup(ctx, "bench", api.ResourceGroup{Location: "local"}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.PullImage(ctx, "local", client.PullRequest{Image: ref}, nil); err != nil {
		b.Fatalf("pre-pull: %v", err)
	}
	sub, err := c.Subscription(ctx)
	if err != nil {
		b.Fatal(err)
	}
	rg := client.ResourceGroupPath(sub, "bench")
	profile := rg + "/providers/" + api.ProfileResourceType + "/warm"
	if _, err := c.Call(ctx, http.MethodPut, profile, nil, &api.ContainerGroup{Location: "local", Properties: benchGroup(ref)}); err != nil {
		b.Fatalf("PUT profile: %v", err)
	}
	pool := rg + "/providers/" + api.StandbyPoolResourceType + "/warm"
	poolQuery := url.Values{"api-version": {api.MaxStandbyPoolAPIVersion}}
	const capacity = 3
	if _, err := c.Call(ctx, http.MethodPut, pool, poolQuery, map[string]any{"location": "local", "properties": map[string]any{
		"elasticityProfile":        map[string]any{"maxReadyCapacity": capacity},
		"containerGroupProperties": map[string]any{"containerGroupProfile": map[string]any{"id": profile}},
	}}); err != nil {
		b.Fatalf("PUT pool: %v", err)
	}
	waitFull := func() {
		deadline := time.Now().Add(time.Minute)
		for {
			var rv api.StandbyPoolRuntimeView
			if err := c.Get(ctx, pool+"/runtimeViews/latest?api-version="+api.MaxStandbyPoolAPIVersion, &rv); err != nil {
				b.Fatal(err)
			}
			if rv.Properties.Status != nil && rv.Properties.Status.Code == "HealthState/healthy" {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("the pool did not refill: %+v", rv.Properties)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var fromPool, cold []time.Duration
	for i := 0; i < samples; i++ {
		waitFull()
		name := fmt.Sprintf("pool%d", i)
		fromPool = append(fromPool, putRunning(b, c, name, &api.ContainerGroup{Location: "local", Properties: api.ContainerGroupProperties{
			ContainerGroupProfile: &api.ProfileReference{ID: profile},
			StandbyPoolProfile:    &api.StandbyPoolReference{ID: pool, FailContainerGroupCreateOnReuseFailure: true},
		}}))
		deleteAndWait(b, c, name)
		name = fmt.Sprintf("cold%d", i)
		cold = append(cold, createRunning(b, c, name, ref))
		deleteAndWait(b, c, name)
	}
	bare := runcRun(b, img, samples)
	rp, rc, rr := percentiles("standby pool", fromPool), percentiles("cold API create", cold), percentiles("runc run -d", bare)
	ms := func(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
	ratio := func(a, b time.Duration) float64 { return float64(a) / float64(b) }
	b.Logf("create->Running p50/p99: from the pool %v/%v, cold %v/%v, runc run -d %v/%v", rp.p50, rp.p99, rc.p50, rc.p99, rr.p50, rr.p99)
	testenv.BenchRow("API create->Running p50 from a standby pool vs a cold create", ms(rp.p50), ms(rc.p50), ratio(rp.p50, rc.p50), "(issue 15: reported)")
	testenv.BenchRow("API create->Running p50 from a standby pool vs runc run -d", ms(rp.p50), ms(rr.p50), ratio(rp.p50, rr.p50), "(issue 15: reported)")
}
