package scheduler_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/scheduler"
	"github.com/skiff-sh/skiff/internal/store"
)

// BenchmarkSchedule1000Hosts places groups of 100 resource groups (one in
// ten publishing a port, some zoned, some mounting a share) on 1000 hosts,
// in three zones, half full, unassigning the oldest group once 10000 are
// placed so that the fleet never fills. It reports placements/s.
func BenchmarkSchedule1000Hosts(b *testing.B) {
	const hosts, live = 1000, 10000
	s := scheduler.New()
	for i := range hosts {
		h := readyHost(fmt.Sprintf("host-%04d", i), 64, 256)
		h.Zone = fmt.Sprint(1 + i%3)
		s.SetHost(h)
		s.Assign(scheduler.Request{Key: fmt.Sprintf("base/rg/g%d", i), ResourceGroup: "base/rg", CPU: 32, MemoryGB: 128}, h.Name)
	}
	reqs := make([]scheduler.Request, 4096)
	for i := range reqs {
		r := scheduler.Request{ResourceGroup: fmt.Sprint("sub/rg", i%100), CPU: 0.5 + float64(i%4)*0.5, MemoryGB: 1 + float64(i%8)}
		switch {
		case i%50 == 0:
			r.Shares = []string{fmt.Sprint("acct/share", i/50%40)}
		case i%10 == 1:
			r.Ports = []api.Port{{Protocol: api.ProtocolTCP, Port: int32(8000 + i%500)}}
		case i%7 == 3:
			r.Zones = []string{fmt.Sprint(1 + i%3)}
		}
		reqs[i] = r
	}
	keys := make([]string, live)
	for i := range keys {
		keys[i] = fmt.Sprint("sub/rg/k", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		r := reqs[i%len(reqs)]
		r.Key = keys[i%live]
		if i >= live {
			s.Unassign(r.Key) // the oldest, placed live placements ago
		}
		if _, err := s.Schedule(r); err != nil {
			b.Fatalf("placement %d: %v", i, err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "placements/s")
	var used store.Resources
	for i := range hosts {
		u, _ := s.Usage(fmt.Sprintf("host-%04d", i))
		used.CPU += u.CPU
	}
	if used.CPU > hosts*64 {
		b.Fatalf("fleet overcommitted: %v cpu", used.CPU)
	}
}
