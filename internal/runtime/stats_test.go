package runtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime"
)

// Stats reads real cgroup figures: a container spinning in a shell loop
// accumulates about a core-second per second, one that filled 50 MiB of
// tmpfs shows it in its working set, and the idle one shows neither. A
// stopped group and an unknown one are typed errors.
func TestStatsCPUAndMemory(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.host.Stats(ctx, "nosuchgroup"); !errdefs.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Stats of an unknown group: %v, want ErrNotFound", err)
	}
	burn := container("burn", e.image, "sh", "-c", "while :; do :; done")
	burn.Properties.Resources.Requests.CPU = 1 // a request is also the quota: let it use a core
	fill := container("fill", e.image, "sh", "-c", "head -c 50m /dev/zero > /dev/shm/fill && echo filled && exec sleep 3600")
	e.create("stats", group("stats", burn, fill))
	e.waitState("stats", api.GroupRunning, 60*time.Second)
	e.waitLog("stats", "fill", "filled", 30*time.Second)

	first := sample(t, e, "stats")
	time.Sleep(2 * time.Second)
	second := sample(t, e, "stats")

	b1, b2 := first["burn"], second["burn"]
	wall := b2.Time.Sub(b1.Time)
	cpu := time.Duration(b2.CPUNanos - b1.CPUNanos)
	if b2.CPUNanos <= b1.CPUNanos || cpu < wall/2 {
		t.Errorf("burning container used %v of CPU in %v (cumulative %d → %d ns), want at least half a core", cpu, wall, b1.CPUNanos, b2.CPUNanos)
	}
	if b2.StartTime.IsZero() || b2.StartTime.After(b1.Time) {
		t.Errorf("burning container start time %v, sampled at %v", b2.StartTime, b1.Time)
	}
	f1, f2 := first["fill"], second["fill"]
	if idle := time.Duration(f2.CPUNanos - f1.CPUNanos); idle > wall/10 {
		t.Errorf("sleeping container used %v of CPU in %v", idle, wall)
	}
	const filled = 45 << 20
	if f2.MemoryWorkingSetBytes < filled || f2.MemoryUsageBytes < f2.MemoryWorkingSetBytes {
		t.Errorf("container that filled 50 MiB of tmpfs: working set %d, usage %d bytes; want working set ≥ %d ≤ usage",
			f2.MemoryWorkingSetBytes, f2.MemoryUsageBytes, filled)
	}
	if b2.MemoryWorkingSetBytes == 0 || b2.MemoryWorkingSetBytes > 20<<20 {
		t.Errorf("shell loop's working set = %d bytes, want some but under 20 MiB", b2.MemoryWorkingSetBytes)
	}

	if err := e.host.Stop(ctx, "stats"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.host.Stats(ctx, "stats"); !errdefs.Is(err, errdefs.ErrConflict) {
		t.Errorf("Stats of a stopped group: %v, want ErrConflict", err)
	}
}

func sample(t *testing.T, e *env, id string) map[string]runtime.ContainerStats {
	t.Helper()
	st, err := e.host.Stats(context.Background(), id)
	if err != nil {
		t.Fatalf("Stats(%s): %v", id, err)
	}
	out := map[string]runtime.ContainerStats{}
	for _, c := range st.Containers {
		out[c.Name] = c
	}
	if len(out) != 2 {
		t.Fatalf("Stats(%s) has containers %v, want burn and fill", id, dump(st))
	}
	return out
}
