package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"

	runc "github.com/containerd/go-runc"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
)

// ContainerStats is one sample of a running container's resource use, read
// from its cgroups by the OCI runtime (`runc events --stats`), which knows
// ContainerStats and GroupStats are the host seam's (package hostapi).
type (
	ContainerStats = hostapi.ContainerStats
	GroupStats     = hostapi.GroupStats
)

// Stats samples the CPU and memory use of a group's running containers. A
// group that does not exist is errdefs.ErrNotFound; one with no running
// container (stopped, finished, still starting) is errdefs.ErrConflict.
func (r *Runtime) Stats(ctx context.Context, id string) (*GroupStats, error) {
	g, err := r.get(id)
	if err != nil {
		return nil, err
	}
	st := g.status()
	out := &GroupStats{ID: id, Containers: []ContainerStats{}}
	var firstErr error
	running := 0
	for _, cs := range st.Containers {
		if cs.CurrentState.State != api.ContainerRunning {
			continue
		}
		running++
		s, err := r.ociStats(ctx, cs.ContainerID)
		now := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// It may have exited since the status was read.
			r.log.Debug("container stats", "group", id, "container", cs.Name, "err", err)
			if firstErr == nil {
				firstErr = fmt.Errorf("stats of container %q in group %q: %v", cs.Name, id, err)
			}
			continue
		}
		start, _ := time.Parse(time.RFC3339Nano, cs.CurrentState.StartTime)
		usage := s.Memory.Usage.Usage
		out.Containers = append(out.Containers, ContainerStats{
			Name: cs.Name, Init: cs.Init, Time: now, StartTime: start,
			CPUNanos:              s.Cpu.Usage.Total,
			MemoryUsageBytes:      usage,
			MemoryWorkingSetBytes: workingSet(usage, s.Memory.Raw),
		})
	}
	if len(out.Containers) > 0 {
		return out, nil
	}
	if running == 0 {
		return nil, fmt.Errorf("container group %q has no running container (state %s): %w", id, st.State, errdefs.ErrConflict)
	}
	// Every sample failed: a real failure if containers still run.
	if now := g.status(); now.State == api.GroupRunning && anyRunning(now) {
		return nil, fmt.Errorf("%w: %w", firstErr, errdefs.ErrUnavailable)
	}
	return nil, fmt.Errorf("container group %q stopped while sampled: %w", id, errdefs.ErrConflict)
}

// ociStats runs `runc events --stats ID` and decodes its one event with
// go-runc's types. It does not use go-runc's own Stats: with go-runc's default
// process monitor that method waits for runc (closing the stdout pipe) while
// it still decodes, and fails now and then with "file already closed".
func (r *Runtime) ociStats(ctx context.Context, id string) (*runc.Stats, error) {
	cmd := exec.CommandContext(ctx, r.oci.Command, "--root", r.oci.Root, "events", "--stats", id)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s events --stats %s: %v: %s", r.oci.Command, id, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var ev runc.Event
	if err := json.Unmarshal(out, &ev); err != nil {
		return nil, fmt.Errorf("%s events --stats %s: decode: %v", r.oci.Command, id, err)
	}
	if ev.Type != "stats" || ev.Stats == nil {
		return nil, fmt.Errorf("%s events --stats %s: got an event of type %q without stats", r.oci.Command, id, ev.Type)
	}
	return ev.Stats, nil
}

func anyRunning(st *GroupStatus) bool {
	for _, cs := range st.Containers {
		if cs.CurrentState.State == api.ContainerRunning {
			return true
		}
	}
	return false
}

// workingSet is usage minus the inactive file cache (cgroup v1's
// hierarchical total_inactive_file, cgroup v2's inactive_file), never below
// zero.
func workingSet(usage uint64, raw map[string]uint64) uint64 {
	inactive, ok := raw["total_inactive_file"]
	if !ok {
		inactive = raw["inactive_file"]
	}
	if inactive >= usage {
		return 0
	}
	return usage - inactive
}
