package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/skiff-sh/skiff/api"
)

const twoContainers = `{"name":"pair","location":"eastus","properties":{"osType":"Linux",
 "containers":[{"name":"app","properties":{"image":"nginx","resources":{"requests":{"cpu":1,"memoryInGB":1}}}},
               {"name":"sidecar","properties":{"image":"busybox","resources":{"requests":{"cpu":1,"memoryInGB":1}}}}]}}`

func TestLogs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addContainerGroup("rg", twoContainers)
	h.srv.Agent.Print(h.srv.Subscription, "rg", "pair", "app", "one\ntwo")

	r := h.ok("container", "logs", "-g", "rg", "-n", "pair")
	if r.out != "one\ntwo\n" {
		t.Errorf("logs printed %q", r.out)
	}
	req := h.rec.last(http.MethodGet, "/logs")
	if !strings.HasSuffix(req.Path, "/containerGroups/pair/containers/app/logs") || req.Query["tail"] != nil {
		t.Errorf("logs of the first container without tail: got %s %v", req.Path, req.Query)
	}

	h.ok("container", "logs", "-g", "rg", "-n", "pair", "--container-name", "sidecar", "--tail", "5")
	req = h.rec.last(http.MethodGet, "/logs")
	if !strings.HasSuffix(req.Path, "/containers/sidecar/logs") || req.Query.Get("tail") != "5" {
		t.Errorf("got %s %v", req.Path, req.Query)
	}
	h.fails(3, "(ResourceNotFound)", "container", "logs", "-g", "rg", "-n", "nope")
}

// untilPrinted runs f once out reads want, or after ten seconds.
func untilPrinted(out *syncBuffer, want string, f func()) {
	go func() {
		waitFor(func() bool { return out.String() == want })
		f()
	}()
}

// stop stops a group of rg, which ends the log streams of its run.
func (h *harness) stop(name string) {
	if _, err := h.srv.Client(h.t).StopContainerGroup(context.Background(), "rg", name); err != nil {
		h.t.Errorf("stop %s: %v", name, err)
	}
}

func TestLogsFollowStreams(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addContainerGroup("rg", twoContainers)
	print := func(text string) { h.srv.Agent.Print(h.srv.Subscription, "rg", "pair", "app", text) }
	print("first line\n")
	// The second line comes only once the CLI has shown the first while
	// the stream is open; the stream ends with the run.
	h.out = &syncBuffer{}
	untilPrinted(h.out, "first line\n", func() {
		print("second line\n")
		untilPrinted(h.out, "first line\nsecond line\n", func() { h.stop("pair") })
	})
	r := h.ok("container", "logs", "-g", "rg", "-n", "pair", "--follow", "--tail", "10")
	if r.out != "first line\nsecond line\n" {
		t.Errorf("follow printed %q", r.out)
	}
	req := h.rec.last(http.MethodGet, "/logs")
	if req.Query.Get("follow") != "true" || req.Query.Get("tail") != "10" {
		t.Errorf("follow query %v", req.Query)
	}
}

func TestExecOverWebsocket(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var exitCode atomic.Int32
	exitCode.Store(3)
	h.srv.Agent.ExitCode = func([]string) int { return int(exitCode.Load()) }
	h.addContainerGroup("rg", twoContainers)
	h.stdin = "ls /\n"

	// On a terminal (-t: ACI's protocol) the agent echoes the command and
	// exits 3 once it read ^D, which the CLI sends when its stdin ends.
	r := h.run("container", "exec", "-t", "-g", "rg", "-n", "pair", "--container-name", "sidecar", "--exec-command", "/bin/sh")
	if r.code != 3 || r.err != "" {
		t.Errorf("exit %d (want the remote 3), stderr %q", r.code, r.err)
	}
	if r.out != "/bin/sh\n" {
		t.Errorf("stdout %q", r.out)
	}
	exec := h.rec.last(http.MethodPost, "/containers/sidecar/exec")
	assertJSON(t, exec.Body, `{"command":"/bin/sh","terminalSize":{"rows":24,"cols":80}}`)
	want := []frame{
		{Type: websocket.TextMessage, Data: h.execPassword(exec)},
		{Type: websocket.BinaryMessage, Data: "ls /\n"},
		{Type: websocket.BinaryMessage, Data: "\x04"},
	}
	if got := h.rec.received(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("frames %+v, want %+v", got, want)
	}

	// With stdin not a terminal and no -t, the session speaks Skiff's
	// channels without a terminal: stdin in chanStdin frames, then the
	// end of input, and the exit code is the CLI's.
	before := len(h.rec.received())
	r = h.run("container", "exec", "-g", "rg", "-n", "pair", "--container-name", "sidecar", "--exec-command", "/bin/sh")
	if r.code != 3 || r.err != "" || r.out != "/bin/sh\n" {
		t.Errorf("piped exec: exit %d (want the remote 3), stdout %q, stderr %q", r.code, r.out, r.err)
	}
	exec = h.rec.last(http.MethodPost, "/containers/sidecar/exec")
	want = []frame{
		{Type: websocket.TextMessage, Data: h.execPassword(exec)},
		{Type: websocket.BinaryMessage, Data: "\x00ls /\n"},
		{Type: websocket.BinaryMessage, Data: "\x03"},
	}
	if got := h.rec.received()[before:]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("piped frames %+v, want %+v", got, want)
	}

	// Exit code 0 from the close frame is success; the default container is
	// the first; terminal size flags are sent.
	exitCode.Store(0)
	r = h.ok("container", "exec", "-t", "-g", "rg", "-n", "pair", "--exec-command", `["sh","-c","echo ok"]`, "--terminal-row-size", "50", "--terminal-col-size", "132")
	if r.out != "sh -c echo ok\n" {
		t.Errorf("stdout %q", r.out)
	}
	assertJSON(t, h.rec.last(http.MethodPost, "/containers/app/exec").Body, `{"command":"[\"sh\",\"-c\",\"echo ok\"]","terminalSize":{"rows":50,"cols":132}}`)

	// A socket that drops without an exit code is an error. The real
	// server always closes with one, so the drop is injected: the session
	// socket is accepted, takes the password and is cut.
	h.rec.setInject(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasPrefix(r.URL.Path, "/exec/") {
			return false
		}
		if c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil); err == nil {
			_, _, _ = c.ReadMessage()
			c.NetConn().Close()
		}
		return true
	})
	h.fails(6, "the session ended without an exit code", "container", "exec", "-t", "-g", "rg", "-n", "pair", "--exec-command", "sh")
	// A server that does not speak the channels (ACI) cannot run a piped
	// exec: one clear line.
	r = h.run("container", "exec", "-g", "rg", "-n", "pair", "--exec-command", "sh")
	if r.code == 0 || !strings.Contains(r.err, "exec without a terminal needs a Skiff server") || strings.Count(strings.TrimSpace(r.err), "\n") != 0 {
		t.Errorf("piped exec against a server without the channels: exit %d, stderr %q", r.code, r.err)
	}
}

// execPassword is the session password the server answered req with.
func (h *harness) execPassword(req request) string {
	h.t.Helper()
	var ex api.ExecResponse
	if err := json.Unmarshal(req.Answer, &ex); err != nil || ex.Password == "" {
		h.t.Fatalf("%s %s answered no session: %v %s", req.Method, req.Path, err, req.Answer)
	}
	return ex.Password
}

func TestAttachPrintsTheStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addContainerGroup("rg", twoContainers)
	h.srv.Agent.Print(h.srv.Subscription, "rg", "pair", "app", "log a\nlog b\n")
	// The session streams the log until the run ends.
	h.out = &syncBuffer{}
	untilPrinted(h.out, "log a\nlog b\n", func() { h.stop("pair") })
	r := h.ok("container", "attach", "-g", "rg", "-n", "pair")
	if r.out != "log a\nlog b\n" {
		t.Errorf("attach printed %q", r.out)
	}
	want := []frame{{Type: websocket.TextMessage, Data: h.execPassword(h.rec.last(http.MethodPost, "/containers/app/attach"))}}
	if f := h.rec.received(); fmt.Sprint(f) != fmt.Sprint(want) {
		t.Errorf("attach frames %+v, want only the password %+v", f, want)
	}
}
