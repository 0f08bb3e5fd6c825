package agent

import (
	"bufio"
	"context"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

// Machine returns this machine's CPU count and memory (GB), what a host
// offers unless its operator says otherwise.
func Machine() store.Resources {
	r := store.Resources{CPU: float64(goruntime.NumCPU())}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return r
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			r.MemoryGB = float64(int(kb/1024/1024*10)) / 10 // GiB, one decimal, rounded down
		}
	}
	return r
}

// register writes the host's record as NotReady: a host that was Lost is
// not given groups until resync removed what it no longer owns.
func (a *Agent) register(ctx context.Context) error {
	h := store.Host{OSType: "Linux"}
	if a.cfg.Register != nil {
		h = *a.cfg.Register
	}
	if h.Capacity == (store.Resources{}) {
		h.Capacity = Machine()
	}
	if h.Allocatable == (store.Resources{}) {
		h.Allocatable = h.Capacity
	}
	if h.OSType == "" {
		h.OSType = "Linux"
	}
	if h.PublicAddress == "" && a.rt != nil {
		h.PublicAddress = a.rt.Network.Config().PublicAddress
	}
	now := time.Now().UTC()
	h.Name, h.State, h.Message, h.JoinedAt, h.UpdatedAt = a.cfg.Name, store.HostNotReady, "starting: removing what this host no longer owns", now, now
	if old, err := a.st.GetHost(ctx, a.cfg.Name); err == nil {
		h.JoinedAt = old.JoinedAt
	} else if !errdefs.Is(err, errdefs.ErrNotFound) {
		return err
	}
	return a.st.PutHost(ctx, h)
}

// heartbeat keeps the host alive until ctx ends, beating again after the
// store was lost for a while (etcd restarted).
func (a *Agent) heartbeat(ctx context.Context) {
	for ctx.Err() == nil {
		err := a.st.Heartbeat(ctx, a.cfg.Name, a.cfg.HeartbeatTTL)
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("heartbeat lost; beating again", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkSelf answers the controller marking this live host Lost (its
// heartbeat missed the deadline, say while etcd restarted): its movable
// groups were placed elsewhere, so it resyncs — removing them here — and
// reports Ready again.
func (a *Agent) checkSelf(ctx context.Context) {
	if !a.checking.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer a.checking.Store(false)
		h, err := a.st.GetHost(ctx, a.cfg.Name)
		if err != nil || h.State != store.HostLost {
			return
		}
		a.log.Warn("this host was marked lost; removing the groups that moved away", "message", h.Message)
		if err := a.resync(ctx); err != nil {
			a.log.Warn("resync after lost", "err", err)
		}
	}()
}
