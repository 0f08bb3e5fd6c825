package cli_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/skiff-sh/skiff/internal/cli/clitest"
)

const twoContainers = `{"name":"pair","location":"eastus","properties":{"osType":"Linux",
 "containers":[{"name":"app","properties":{"image":"nginx","resources":{"requests":{"cpu":1,"memoryInGB":1}}}},
               {"name":"sidecar","properties":{"image":"busybox","resources":{"requests":{"cpu":1,"memoryInGB":1}}}}]}}`

func TestLogs(t *testing.T) {
	h := newHarness(t)
	h.srv.AddContainerGroup("rg", twoContainers)
	h.srv.Logs = "one\ntwo"

	r := h.ok("container", "logs", "-g", "rg", "-n", "pair")
	if r.out != "one\ntwo\n" {
		t.Errorf("logs printed %q", r.out)
	}
	req := h.srv.Last(http.MethodGet, "/logs")
	if !strings.HasSuffix(req.Path, "/containerGroups/pair/containers/app/logs") || req.Query["tail"] != nil {
		t.Errorf("logs of the first container without tail: got %s %v", req.Path, req.Query)
	}

	h.ok("container", "logs", "-g", "rg", "-n", "pair", "--container-name", "sidecar", "--tail", "5")
	req = h.srv.Last(http.MethodGet, "/logs")
	if !strings.HasSuffix(req.Path, "/containers/sidecar/logs") || req.Query.Get("tail") != "5" {
		t.Errorf("got %s %v", req.Path, req.Query)
	}
	h.fails(3, "(ResourceNotFound)", "container", "logs", "-g", "rg", "-n", "nope")
}

func TestLogsFollowStreams(t *testing.T) {
	h := newHarness(t)
	h.srv.AddContainerGroup("rg", twoContainers)
	release := make(chan struct{})
	h.srv.FollowLogs = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "first line\n")
		w.(http.Flusher).Flush()
		select { // the rest only once the CLI has shown the first line
		case <-release:
		case <-time.After(10 * time.Second):
			fmt.Fprint(w, "TIMEOUT: the CLI did not print the first line while the stream was open\n")
			return
		}
		fmt.Fprint(w, "second line\n")
	}
	h.out = &syncBuffer{}
	go func() {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if h.out.String() == "first line\n" {
				close(release)
				return
			}
		}
	}()
	r := h.ok("container", "logs", "-g", "rg", "-n", "pair", "--follow", "--tail", "10")
	if r.out != "first line\nsecond line\n" {
		t.Errorf("follow printed %q", r.out)
	}
	req := h.srv.Last(http.MethodGet, "/logs")
	if req.Query.Get("follow") != "true" || req.Query.Get("tail") != "10" {
		t.Errorf("follow query %v", req.Query)
	}
}

func TestExecOverWebsocket(t *testing.T) {
	h := newHarness(t)
	h.srv.AddContainerGroup("rg", twoContainers)
	h.stdin = "ls /\n"

	r := h.run("container", "exec", "-g", "rg", "-n", "pair", "--container-name", "sidecar", "--exec-command", "/bin/sh")
	if r.code != 3 || r.err != "" {
		t.Errorf("exit %d (want the remote 3), stderr %q", r.code, r.err)
	}
	if r.out != "hello from exec\r\nbye\r\n" {
		t.Errorf("stdout %q", r.out)
	}
	exec := h.srv.Last(http.MethodPost, "/containers/sidecar/exec")
	assertJSON(t, exec.Body, `{"command":"/bin/sh","terminalSize":{"rows":24,"cols":80}}`)
	want := []clitest.Frame{
		{Type: websocket.TextMessage, Data: clitest.ExecPassword},
		{Type: websocket.BinaryMessage, Data: "ls /\n"},
		{Type: websocket.BinaryMessage, Data: "\x04"},
	}
	if got := h.srv.Frames(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("frames %+v, want %+v", got, want)
	}

	// Exit code 0 from the close frame is success; the default container is
	// the first; terminal size flags are sent.
	h.srv.ExecSession = func(c *websocket.Conn) {
		_ = c.WriteMessage(websocket.BinaryMessage, []byte("ok\n"))
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "exit code 0"))
	}
	r = h.ok("container", "exec", "-g", "rg", "-n", "pair", "--exec-command", `["sh","-c","echo ok"]`, "--terminal-row-size", "50", "--terminal-col-size", "132")
	if r.out != "ok\n" {
		t.Errorf("stdout %q", r.out)
	}
	assertJSON(t, h.srv.Last(http.MethodPost, "/containers/app/exec").Body, `{"command":"[\"sh\",\"-c\",\"echo ok\"]","terminalSize":{"rows":50,"cols":132}}`)

	// A socket that drops without an exit code is an error.
	h.srv.ExecSession = func(c *websocket.Conn) { c.Close() }
	h.fails(6, "the session ended without an exit code", "container", "exec", "-g", "rg", "-n", "pair", "--exec-command", "sh")
}

func TestAttachPrintsTheStream(t *testing.T) {
	h := newHarness(t)
	h.srv.AddContainerGroup("rg", twoContainers)
	h.srv.ExecSession = func(c *websocket.Conn) {
		for _, l := range []string{"log a\n", "log b\n"} {
			_ = c.WriteMessage(websocket.BinaryMessage, []byte(l))
		}
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	}
	r := h.ok("container", "attach", "-g", "rg", "-n", "pair")
	if r.out != "log a\nlog b\n" {
		t.Errorf("attach printed %q", r.out)
	}
	h.srv.Last(http.MethodPost, "/containers/app/attach")
	if f := h.srv.Frames(); len(f) != 1 || f[0].Data != clitest.ExecPassword {
		t.Errorf("attach frames %+v, want only the password", f)
	}
}
