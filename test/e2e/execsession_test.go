package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// hostProcs counts the host's processes whose command line is argv (a
// container's processes are the host's too).
func hostProcs(argv ...string) int {
	want := strings.Join(argv, "\x00") + "\x00"
	n := 0
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil && string(data) == want {
			n++
		}
	}
	return n
}

func waitProcs(t *testing.T, want int, timeout time.Duration, argv ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := hostProcs(argv...)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d processes %q after %s, want %d", n, argv, timeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An exec session through the API ends with its websocket: the processes it
// started (a child in the background too) are killed when the client goes
// away without a word, or closes the socket properly. A group has at most 8
// exec sessions at once (the default of --exec-sessions-per-group): the 9th
// is refused with 409 ExecSessionLimitReached in the ARM error envelope,
// and a session that ends, however it ends, frees its slot.
func TestExecSessionsEndAndAreBounded(t *testing.T) {
	s := startServer(t)
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	if r := s.send("PUT", "/subscriptions/"+s.Subscription+"/resourcegroups/ex", `{"location":"local"}`); r.Status != 201 {
		t.Fatalf("rg: %d %s", r.Status, r)
	}
	cgPath := "/subscriptions/" + s.Subscription + "/resourcegroups/ex/providers/Microsoft.ContainerInstance/containerGroups/shell"
	body := groupBody(image, func(p map[string]any) { delete(container0(p), "ports") })
	if r := s.send("PUT", cgPath, body); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r)
	}
	s.waitRunning("ex", "shell")

	type session struct {
		URI      string `json:"webSocketUri"`
		Password string `json:"password"`
	}
	exec := func(cmd string) (int, session, []byte) {
		t.Helper()
		r := s.send("POST", cgPath+"/containers/app/exec",
			map[string]any{"command": cmd, "terminalSize": map[string]int{"rows": 24, "cols": 80}})
		var sess session
		json.Unmarshal(r.Body, &sess)
		return r.Status, sess, r.Body
	}
	open := func(sess session) *websocket.Conn {
		t.Helper()
		conn, _, err := websocket.DefaultDialer.Dial(sess.URI, nil)
		if err != nil {
			t.Fatalf("dial %s: %v", sess.URI, err)
		}
		if err := conn.WriteMessage(websocket.TextMessage, []byte(sess.Password)); err != nil {
			t.Fatal(err)
		}
		go func() { // read output, as a client does
			for {
				if _, _, err := conn.ReadMessage(); err != nil {
					return
				}
			}
		}()
		return conn
	}

	var sessions []session
	for i := 0; i < 8; i++ {
		cmd := fmt.Sprintf(`["sh","-c","sleep 300%d & sleep 200%d"]`, i, i)
		code, sess, out := exec(cmd)
		if code != 200 || sess.URI == "" {
			t.Fatalf("exec session %d: %d %s", i+1, code, out)
		}
		sessions = append(sessions, sess)
	}
	code, _, out := exec("sleep 1")
	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(out, &env); code != 409 || env.Error.Code != "ExecSessionLimitReached" || env.Error.Message == "" {
		t.Fatalf("9th exec session: %d %s, want 409 ExecSessionLimitReached", code, out)
	}

	// Client gone: the connection drops without a close frame.
	c0 := open(sessions[0])
	waitProcs(t, 1, 20*time.Second, "sleep", "3000")
	waitProcs(t, 1, 5*time.Second, "sleep", "2000")
	c0.UnderlyingConn().Close()
	waitProcs(t, 0, 5*time.Second, "sleep", "3000")
	waitProcs(t, 0, 5*time.Second, "sleep", "2000")

	// A proper close.
	c1 := open(sessions[1])
	waitProcs(t, 1, 20*time.Second, "sleep", "3001")
	c1.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	c1.Close()
	waitProcs(t, 0, 5*time.Second, "sleep", "3001")
	waitProcs(t, 0, 5*time.Second, "sleep", "2001")

	// Two slots are free again: two more sessions, then the limit again.
	// A slot is freed once the runtime's exec has returned, which can be
	// a moment after its processes are gone.
	for i := 0; i < 2; i++ {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			code, _, out := exec("sleep 1")
			if code == 200 {
				break
			}
			if code != 409 || time.Now().After(deadline) {
				t.Fatalf("exec after sessions ended: %d %s", code, out)
			}
		}
	}
	if code, _, out := exec("sleep 1"); code != 409 {
		t.Fatalf("exec over the limit again: %d %s", code, out)
	}
}
