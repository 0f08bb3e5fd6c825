package cli_test

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
)

// TestExecOnATerminal runs exec with stdin and stdout on a pseudo-terminal:
// the terminal size is sent with the exec, the terminal is raw during the
// session and restored after, typed bytes go as binary frames (^D too: the
// agent's command ends on it), and a SIGWINCH sends a resize text frame.
func TestExecOnATerminal(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addContainerGroup("rg", twoContainers)

	pty, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatalf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { pty.Close() })
	slave, err := os.OpenFile(slavePath, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	if err := pty.Resize(console.WinSize{Height: 40, Width: 100}); err != nil {
		t.Fatal(err)
	}
	echo := func() bool {
		tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		if err != nil {
			t.Errorf("termios: %v", err)
			return false
		}
		return tio.Lflag&unix.ECHO != 0
	}
	if !echo() {
		t.Fatalf("a fresh terminal does not echo")
	}
	h.streams = cmdutil.Files(slave, slave, slave)

	type seen struct {
		rawDuringSession bool
		typed            string
		resize           api.TerminalSize
	}
	frames := func(typ int) []string {
		var out []string
		for _, f := range h.rec.received()[1:] { // after the password
			if f.Type == typ {
				out = append(out, f.Data)
			}
		}
		return out
	}
	got := make(chan seen, 1)
	go func() {
		var s seen
		defer func() {
			got <- s
			_, _ = pty.Write([]byte{0x04}) // ^D: the agent's command ends, and the session with it
		}()
		if !waitFor(func() bool { return len(h.rec.received()) > 0 }) { // the password: the session is open
			return
		}
		s.rawDuringSession = waitFor(func() bool { return !echo() })
		_, _ = pty.Write([]byte("x"))
		waitFor(func() bool { return len(frames(websocket.BinaryMessage)) > 0 })
		s.typed = strings.Join(frames(websocket.BinaryMessage), "")
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for deadline := time.After(10 * time.Second); ; {
			if resizes := frames(websocket.TextMessage); len(resizes) > 0 {
				_ = json.Unmarshal([]byte(resizes[len(resizes)-1]), &s.resize)
				return
			}
			select {
			case <-tick.C:
				_ = pty.Resize(console.WinSize{Height: 50, Width: 132})
				_ = syscall.Kill(os.Getpid(), syscall.SIGWINCH)
			case <-deadline:
				return
			}
		}
	}()

	h.ok("container", "exec", "-g", "rg", "-n", "pair", "--exec-command", "sh")
	s := <-got
	assertJSON(t, h.rec.last(http.MethodPost, "/containers/app/exec").Body, `{"command":"sh","terminalSize":{"rows":40,"cols":100}}`)
	if !s.rawDuringSession {
		t.Errorf("the terminal was not in raw mode during the session")
	}
	if !echo() {
		t.Errorf("the terminal was not restored after the session")
	}
	if s.typed != "x" {
		t.Errorf("typed %q, want x as a binary frame", s.typed)
	}
	if s.resize != (api.TerminalSize{Rows: 50, Cols: 132}) {
		t.Errorf("resize frame %+v, want 50x132", s.resize)
	}
}
