package agentapi_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/skiff-sh/skiff/internal/agentapi"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
)

// A log read through the API is the log read directly, tailed as asked;
// the options the caller gave are the ones the agent's Logs gets.
func TestLogsTail(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	id := e.group("web")
	e.agent.Print(sub, "rg", "web", "app", "one\ntwo\nthree\n")
	for _, tail := range []int{-1, 0, 2} {
		var got, want bytes.Buffer
		if err := e.client.Logs(t.Context(), id, "app", hostapi.LogOptions{Tail: tail}, &got); err != nil {
			t.Fatalf("tail %d: %v", tail, err)
		}
		if err := e.agent.Logs(t.Context(), id, "app", hostapi.LogOptions{Tail: tail}, &want); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("tail %d: %q through the API, %q directly", tail, got.String(), want.String())
		}
	}
	var last2 bytes.Buffer
	if err := e.client.Logs(t.Context(), id, "app", hostapi.LogOptions{Tail: 2}, &last2); err != nil || last2.String() != "two\nthree\n" {
		t.Fatalf("tail 2: %q, %v", last2.String(), err)
	}

	o := hostapi.LogOptions{Tail: 5, Timestamps: true, Previous: true, LimitBytes: 4096,
		Since: time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.FixedZone("X", 3600))}
	if err := e.client.Logs(t.Context(), id, "app", o, io.Discard); err != nil {
		t.Fatal(err)
	}
	got := e.direct.lastLogOptions()
	if !got.Since.Equal(o.Since) {
		t.Fatalf("since %v reached the agent as %v", o.Since, got.Since)
	}
	got.Since = o.Since
	if got != o {
		t.Fatalf("the agent got %+v, want %+v", got, o)
	}
}

// A follow delivers each line as it is printed, also when nothing was
// there at its start; it ends when the caller's context ends, and so does
// the agent's side. A follow also ends by itself when the run ends.
func TestLogsFollow(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	id := e.group("web")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := newStream()
	done := make(chan error, 1)
	go func() { done <- e.client.Logs(ctx, id, "app", hostapi.LogOptions{Tail: -1, Follow: true}, out) }()
	e.agent.Print(sub, "rg", "web", "app", "one\n")
	out.waitFor(t, "one\n")
	e.agent.Print(sub, "rg", "web", "app", "two\n")
	out.waitFor(t, "one\ntwo\n")
	select {
	case err := <-done:
		t.Fatalf("the follow returned (%v) while the group runs", err)
	default:
	}
	cancel()
	if err := receive(t, done, "a follow whose context ended"); err != nil {
		t.Fatalf("a follow the caller ended: %v, want nil as the agent's own Logs", err)
	}
	receive(t, e.direct.logsEnded, "the agent's follow")

	// The run ends: the follow returns with all of the log.
	e.agent.Print(sub, "rg", "web", "app", "three\n")
	out2 := newStream()
	go func() {
		done <- e.client.Logs(t.Context(), id, "app", hostapi.LogOptions{Tail: 1, Follow: true}, out2)
	}()
	out2.waitFor(t, "three\n")
	e.stop("web")
	if err := receive(t, done, "a follow whose run ended"); err != nil {
		t.Fatal(err)
	}
	if out2.String() != "three\n" {
		t.Fatalf("follow with tail 1: %q", out2.String())
	}
}

// The agent's errors come through as its Host gave them: one found before
// the first byte as the error response, one after it with what was
// written before.
func TestLogsErrors(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	id := e.group("web")
	var got bytes.Buffer
	err := e.client.Logs(t.Context(), "cg-00000000000000000000", "app", hostapi.LogOptions{Tail: -1}, &got)
	want := e.agent.Logs(t.Context(), "cg-00000000000000000000", "app", hostapi.LogOptions{Tail: -1}, io.Discard)
	sameError(t, err, want, errdefs.ErrNotFound)
	if got.Len() != 0 {
		t.Fatalf("an unknown group's log wrote %q", got.String())
	}

	got.Reset()
	err = e.client.Logs(t.Context(), id, "failing", hostapi.LogOptions{Tail: -1, Follow: true}, &got)
	want = e.direct.Logs(t.Context(), id, "failing", hostapi.LogOptions{Tail: -1, Follow: true}, io.Discard)
	sameError(t, err, want, errdefs.ErrUnavailable)
	if got.String() != "a line before the failure\n" {
		t.Fatalf("before the failure: %q", got.String())
	}
}

// Names are path segments: a container name with a slash, a space and a
// question mark reaches the agent as it is.
func TestLogsEscapedNames(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	id := e.group("web")
	const name = "side car/1?x=y#z"
	e.agent.Print(sub, "rg", "web", name, "odd name\n")
	e.agent.Print(sub, "rg", "web", "side car", "wrong one\n")
	var got bytes.Buffer
	if err := e.client.Logs(t.Context(), id, name, hostapi.LogOptions{Tail: -1}, &got); err != nil {
		t.Fatal(err)
	}
	if got.String() != "odd name\n" {
		t.Fatalf("log of %q: %q", name, got.String())
	}
}

// The fake's own exec: its command line on stdout, stdin read until ^D,
// the exit code ExitCode gives, as a direct call has them.
func TestExecExitCode(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	e.agent.ExitCode = func(cmd []string) int {
		if cmd[0] == "false" {
			return 1
		}
		return 3
	}
	id := e.group("web")
	for _, o := range []hostapi.ExecOptions{
		{Command: []string{"sh", "-c", "exit 3"}, TTY: true, Size: hostapi.WindowSize{Rows: 24, Cols: 80}, Stdin: strings.NewReader("ls\n\x04")},
		{Command: []string{"false"}},
	} {
		var got, want bytes.Buffer
		o.Stdout = &got
		code, err := execWithin(t, e.client, id, o)
		if err != nil {
			t.Fatalf("%v: %v", o.Command, err)
		}
		if o.Stdin != nil {
			o.Stdin = strings.NewReader("ls\n\x04")
		}
		o.Stdout = &want
		wantCode, _ := e.agent.Exec(t.Context(), id, "app", o)
		if code != wantCode || got.String() != want.String() {
			t.Fatalf("%v: exit %d with %q through the API, exit %d with %q directly", o.Command, code, got.String(), wantCode, want.String())
		}
		if want.String() != strings.Join(o.Command, " ")+"\n" || wantCode == 0 {
			t.Fatalf("%v: the fake exited %d with %q", o.Command, wantCode, want.String())
		}
	}
}

// Without a terminal stdout and stderr stay apart; stdin's end reaches the
// command (cat ends) while its output goes on (what it writes after).
func TestExecStreams(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	id := e.group("web")
	in := strings.Repeat("0123456789abcdef", 10<<10) + "\nthe end\n" // 160 KiB: several frames
	var stdout, stderr bytes.Buffer
	code, err := execWithin(t, e.client, id, hostapi.ExecOptions{Command: []string{"cat"},
		Stdin: strings.NewReader(in), Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	if code != 7 {
		t.Fatalf("exit code %d, want 7", code)
	}
	if stdout.String() != in+"after\n" {
		t.Fatalf("stdout: %d bytes ending %q, want %d ending in \"after\\n\"", stdout.Len(), stdout.String()[max(0, stdout.Len()-20):], len(in)+6)
	}
	if stderr.String() != "stdin closed\n" {
		t.Fatalf("stderr: %q", stderr.String())
	}
}

// On a terminal the initial size and every resize reach the command.
func TestExecResize(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	id := e.group("web")
	pr, pw := io.Pipe()
	defer pw.Close()
	resize := make(chan hostapi.WindowSize)
	out := newStream()
	done := startExec(t.Context(), e.client, id, hostapi.ExecOptions{Command: []string{"stty"}, TTY: true,
		Size: hostapi.WindowSize{Rows: 24, Cols: 80}, Resize: resize, Stdin: pr, Stdout: out})
	out.waitFor(t, "24 80\r\n")
	resize <- hostapi.WindowSize{Rows: 50, Cols: 132}
	out.waitFor(t, "24 80\r\n50 132\r\n")
	resize <- hostapi.WindowSize{Rows: 10, Cols: 40}
	out.waitFor(t, "50 132\r\n10 40\r\n")
	pw.Close()
	if r := receive(t, done, "stty after stdin's end"); r.code != 0 || r.err != nil {
		t.Fatalf("exit %d, %v", r.code, r.err)
	}
}

// The end of the caller's context ends the command on the agent.
func TestExecCancel(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	id := e.group("web")
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := newStream()
	done := startExec(ctx, e.client, id, hostapi.ExecOptions{Command: []string{"sh"}, TTY: true, Stdin: pr, Stdout: out})
	out.waitFor(t, "sh\n")
	cancel()
	if r := receive(t, done, "an exec whose context ended"); r.code != -1 || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("exit %d, %v; want -1 and the context's end", r.code, r.err)
	}
	if err := receive(t, e.direct.execEnded, "the agent's exec"); !errors.Is(err, context.Canceled) {
		t.Fatalf("the agent's exec ended with %v, want its context's end", err)
	}
}

// A connection that drops (no close frame) ends the command on the agent.
func TestExecConnectionDrops(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	conn := e.dialExec(e.group("web"))
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"start","command":["sh"],"tty":true,"stdin":true,"stdout":true}`)); err != nil {
		t.Fatal(err)
	}
	typ, msg, err := conn.ReadMessage()
	if err != nil || typ != websocket.BinaryMessage || string(msg) != "\x01sh\n" {
		t.Fatalf("first frame: %d %q %v, want stdout's \"sh\\n\"", typ, msg, err)
	}
	conn.NetConn().Close()
	if err := receive(t, e.direct.execEnded, "the agent's exec"); !errors.Is(err, context.Canceled) {
		t.Fatalf("the agent's exec ended with %v, want its context's end", err)
	}
}

// A session that does not begin with the start message is closed, and
// runs nothing.
func TestExecNeedsStart(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	id := e.group("web")
	for _, first := range []struct {
		typ  int
		data string
	}{{websocket.BinaryMessage, "\x00ls\n"}, {websocket.TextMessage, `{"type":"resize","rows":5,"cols":5}`}, {websocket.TextMessage, "sh"}} {
		conn := e.dialExec(id)
		if err := conn.WriteMessage(first.typ, []byte(first.data)); err != nil {
			t.Fatal(err)
		}
		_, _, err := conn.ReadMessage()
		if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
			t.Fatalf("first frame %q: %v, want a close for a policy violation", first.data, err)
		}
	}
	select {
	case err := <-e.direct.execEnded:
		t.Fatalf("an exec ran (%v)", err)
	default:
	}
}

// An exec in a group the agent does not have, or one that does not run,
// fails as it does directly.
func TestExecErrors(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	id := e.group("web")
	e.stop("web")
	for _, c := range []struct {
		id    string
		class error
	}{{"cg-00000000000000000000", errdefs.ErrNotFound}, {id, errdefs.ErrConflict}} {
		code, err := execWithin(t, e.client, c.id, hostapi.ExecOptions{Command: []string{"sh"}, Stdin: strings.NewReader("")})
		_, want := e.agent.Exec(t.Context(), c.id, "app", hostapi.ExecOptions{Command: []string{"sh"}})
		sameError(t, err, want, c.class)
		if code != -1 {
			t.Fatalf("exit code %d, want -1", code)
		}
	}
}
