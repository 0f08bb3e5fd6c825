package cli_test

import (
	"encoding/json"
	"net/http"
	"os"
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
// session and restored after, typed bytes go as binary frames, and a
// SIGWINCH sends a resize text frame.
func TestExecOnATerminal(t *testing.T) {
	h := newHarness(t)
	h.srv.AddContainerGroup("rg", twoContainers)

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
	got := make(chan seen, 1)
	h.srv.ExecSession = func(c *websocket.Conn) {
		var s seen
		s.rawDuringSession = !echo()
		defer func() {
			got <- s
			_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "exit code 0"))
		}()
		_, _ = pty.Write([]byte("x"))
		frames := make(chan []any, 8)
		go func() {
			for {
				kind, data, err := c.ReadMessage()
				if err != nil {
					close(frames)
					return
				}
				frames <- []any{kind, data}
			}
		}()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(10 * time.Second)
		for s.typed == "" || s.resize.Rows == 0 {
			select {
			case f, ok := <-frames:
				if !ok {
					return
				}
				switch f[0].(int) {
				case websocket.BinaryMessage:
					s.typed += string(f[1].([]byte))
				case websocket.TextMessage:
					_ = json.Unmarshal(f[1].([]byte), &s.resize)
				}
			case <-tick.C:
				_ = pty.Resize(console.WinSize{Height: 50, Width: 132})
				_ = syscall.Kill(os.Getpid(), syscall.SIGWINCH)
			case <-deadline:
				return
			}
		}
	}

	h.ok("container", "exec", "-g", "rg", "-n", "pair", "--exec-command", "sh")
	s := <-got
	assertJSON(t, h.srv.Last(http.MethodPost, "/containers/app/exec").Body, `{"command":"sh","terminalSize":{"rows":40,"cols":100}}`)
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
