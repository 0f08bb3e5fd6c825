package runtime_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/runtime/cgroup"
)

// procs lists the command lines of the live processes in a container, as a
// second exec sees them (a zombie has an empty command line).
func (e *env) procs(id, name string) string {
	e.t.Helper()
	out, code := e.exec(id, name, "sh", "-c", `for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < $f; echo; done`)
	if code != 0 {
		e.t.Fatalf("list processes of %s/%s: exit %d: %s", id, name, code, out)
	}
	return out
}

func (e *env) waitProcs(id, name string, timeout time.Duration, what string, cond func(string) bool) string {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ps := e.procs(id, name)
		if cond(ps) {
			return ps
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s/%s: timed out after %s waiting for %s; processes:\n%s", id, name, timeout, what, ps)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A process started by exec does not outlive its session: when the
// session's context ends (the websocket closed, the client went away, a
// server-side deadline), the command, its children, and a daemon that left
// its session with setsid are killed within seconds, with a terminal and
// without; when the command returns by itself, what it left running in the
// background is killed too. No exec cgroup is left behind.
func TestExecSessionEndKillsItsProcesses(t *testing.T) {
	e := newEnv(t)
	e.create("ex", group("ex", container("app", e.image, "sh", "-c", "while true; do sleep 1; done")))
	e.waitState("ex", api.GroupRunning, 60*time.Second)
	execCgroups := func() []string {
		subs, err := cgroup.SubCgroups("/skiff/ex/app", "skiff-exec-")
		if err != nil {
			t.Fatal(err)
		}
		return subs
	}

	for _, tty := range []bool{false, true} {
		name := map[bool]string{false: "pipes", true: "tty"}[tty]
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stdin, stdinW := io.Pipe() // never closed: a client that is still "typing"
			defer stdinW.Close()
			type result struct {
				code int
				err  error
			}
			done := make(chan result, 1)
			go func() {
				code, err := e.host.Exec(ctx, "ex", "app", runtime.ExecOptions{
					Command: []string{"sh", "-c", "sleep 1001 & setsid sleep 1002 & sleep 1003"},
					TTY:     tty, Stdin: stdin, Stdout: io.Discard, Stderr: io.Discard,
				})
				done <- result{code, err}
			}()
			e.waitProcs("ex", "app", 20*time.Second, "the exec'd processes", func(ps string) bool {
				return strings.Contains(ps, "sleep 1001") && strings.Contains(ps, "sleep 1002") && strings.Contains(ps, "sleep 1003")
			})
			if n := len(execCgroups()); n != 1 {
				t.Errorf("%d exec cgroups during one session, want 1", n)
			}
			start := time.Now()
			cancel() // the session ends
			select {
			case r := <-done:
				if r.err == nil {
					t.Errorf("Exec of an ended session returned %d and no error", r.code)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("Exec did not return after its session ended")
			}
			ps := e.waitProcs("ex", "app", 5*time.Second, "the exec'd processes to be gone", func(ps string) bool {
				return !strings.Contains(ps, "sleep 100")
			})
			t.Logf("all gone %s after the session ended; left:\n%s", time.Since(start).Round(time.Millisecond), ps)
			if subs := execCgroups(); len(subs) != 0 {
				t.Errorf("exec cgroups left after the session: %v", subs)
			}
		})
	}

	// A command that returns leaves nothing running, and returns at once
	// although its background processes hold its output open.
	for _, tty := range []bool{false, true} {
		start := time.Now()
		code, err := e.host.Exec(context.Background(), "ex", "app", runtime.ExecOptions{
			Command: []string{"sh", "-c", "sleep 1004 & setsid sleep 1005 & echo started; exit 3"}, TTY: tty,
			Stdout: io.Discard, Stderr: io.Discard,
		})
		if err != nil || code != 3 {
			t.Fatalf("exec (tty %v): %d %v, want exit code 3", tty, code, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("exec (tty %v) of a command that returns at once took %s", tty, d)
		}
		e.waitProcs("ex", "app", 5*time.Second, "the background processes of a finished exec to be gone", func(ps string) bool {
			return !strings.Contains(ps, "sleep 100")
		})
		if subs := execCgroups(); len(subs) != 0 {
			t.Errorf("exec cgroups left after the command returned: %v", subs)
		}
	}
	// The container itself is untouched.
	if st, _ := e.host.Status("ex"); st.State != api.GroupRunning || st.Containers[0].RestartCount != 0 {
		t.Errorf("the container was disturbed: %s", dump(st))
	}
}

// The processes of all of a group's containers together stay within the
// group's pids limit (its cgroup /skiff/<group>), well below each
// container's own limit. Container a takes 41 processes; then container b
// forks as fast as it can: it gets what is left of the group's limit and no
// more, while a keeps its own. The refused forks show in pids.events:
// b's on cgroup v1 (which counts the forks that failed in a cgroup, whatever
// limit refused them), the group's on cgroup2 (which counts at the cgroup
// whose limit was hit).
func TestGroupPidsLimit(t *testing.T) {
	const limit = 60
	e := newEnvWith(t, func(o *runtime.HostOptions) { o.GroupPidsLimit = limit })
	a := "i=0; while [ $i -lt 40 ]; do sleep 1000 & i=$((i+1)); done; touch /sync/a-done; exec sleep 1000"
	// watch runs its command every 0.1 s and, unlike a shell, lives on when
	// a fork fails.
	b := "while [ ! -e /sync/a-done ]; do sleep 0.2; done; exec watch -n 0.1 'sleep 1000 & sleep 1000 & sleep 1000 &' >/dev/null"
	spec := group("pids", container("a", e.image, "sh", "-c", a), container("b", e.image, "sh", "-c", b))
	spec.Properties.Volumes = []api.Volume{{Name: "sync", EmptyDir: &api.EmptyDirVolume{}}}
	for i := range spec.Properties.Containers {
		spec.Properties.Containers[i].Properties.VolumeMounts = []api.VolumeMount{{Name: "sync", MountPath: "/sync"}}
	}
	e.create("pids", spec)
	e.waitState("pids", api.GroupRunning, 60*time.Second)

	_, gmax, err := cgroup.Pids("/skiff/pids")
	if err != nil {
		t.Fatal(err)
	}
	if gmax != limit {
		t.Fatalf("group cgroup pids.max = %d, want %d", gmax, limit)
	}
	for _, c := range []string{"a", "b"} {
		if _, cmax, err := cgroup.Pids("/skiff/pids/" + c); err != nil || cmax != 4096 {
			t.Fatalf("container %s pids.max = %d, %v; want 4096", c, cmax, err)
		}
	}
	var peak, hits int64
	aCount := func() int64 { n, _, _ := cgroup.Pids("/skiff/pids/a"); return n }
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		cur, _, err := cgroup.Pids("/skiff/pids")
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, cur)
		if cur > limit {
			t.Fatalf("the group has %d processes, over its limit of %d", cur, limit)
		}
		ng, err := cgroup.PidsMaxEvents("/skiff/pids")
		if err != nil {
			t.Fatal(err)
		}
		nb, err := cgroup.PidsMaxEvents("/skiff/pids/b")
		if err != nil {
			t.Fatal(err)
		}
		hits = int64(max(ng, nb))
		if bn, _, _ := cgroup.Pids("/skiff/pids/b"); bn > limit-41 {
			t.Fatalf("container b has %d processes, more than the %d the group's limit leaves it", bn, limit-41)
		}
		if hits >= 3 && aCount() == 41 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("group pids peak %d of %d; forks refused by the group's limit: %d; a has %d", peak, limit, hits, aCount())
	if hits < 3 {
		t.Fatalf("forks were refused %d times: b's fork loop never reached the group's limit", hits)
	}
	if n := aCount(); n != 41 {
		t.Errorf("container a has %d processes, want its 41: b's fork bomb took from it", n)
	}
}
