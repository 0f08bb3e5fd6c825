package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
)

// The exec websocket's limits and deadlines. The agent pings every
// wsPingPeriod; any frame, a ping or a pong pushes a side's read deadline
// wsPongWait ahead, so a peer that is gone is dropped after wsPongWait. A
// peer that stops reading is dropped after wsWriteWait.
const (
	wsStartWait  = 30 * time.Second
	wsPongWait   = time.Minute
	wsPingPeriod = 20 * time.Second
	wsWriteWait  = 30 * time.Second
	// wsMaxMessage bounds a frame read; wsChunk bounds the data a frame
	// carries.
	wsMaxMessage = 1 << 20
	wsChunk      = 32 << 10
	// stdinQueue is how many stdin frames wait for a command that does not
	// read them before the agent stops reading frames.
	stdinQueue = 32
)

// wsConn is a websocket whose writes come from several goroutines.
type wsConn struct {
	conn *websocket.Conn
	mu   sync.Mutex
}

func (c *wsConn) send(typ int, b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
	return c.conn.WriteMessage(typ, b)
}

func (c *wsConn) control(m control) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.send(websocket.TextMessage, b)
}

// close sends a close frame and closes the connection.
func (c *wsConn) close(code int, reason string) {
	_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	_ = c.conn.Close()
}

// read reads the next data frame and pushes the read deadline ahead.
func (c *wsConn) read() (int, []byte, error) {
	typ, msg, err := c.conn.ReadMessage()
	if err == nil {
		_ = c.conn.SetReadDeadline(time.Now().Add(wsPongWait))
	}
	return typ, msg, err
}

// streamWriter writes to one stream of an exec, in frames of at most
// wsChunk bytes.
type streamWriter struct {
	c      *wsConn
	stream byte
}

func (s streamWriter) Write(p []byte) (int, error) {
	for sent := 0; sent < len(p); {
		n := min(len(p)-sent, wsChunk)
		frame := append([]byte{s.stream}, p[sent:sent+n]...)
		if err := s.c.send(websocket.BinaryMessage, frame); err != nil {
			return sent, err
		}
		sent += n
	}
	return len(p), nil
}

// exec runs a command on the websocket (see the package doc) on the
// request's context.
func (h *handler) exec(w http.ResponseWriter, r *http.Request) error {
	if !websocket.IsWebSocketUpgrade(r) {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "WebSocketRequired", "An exec is a websocket: the request must ask for the upgrade.")
	}
	up := websocket.Upgrader{Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
		writeJSON(w, status, envelope{Error: wireError{Class: "InvalidArgument", Code: "WebSocketRefused", Message: reason.Error()}})
	}}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return nil // answered by up.Error
	}
	ws := &wsConn{conn: conn}
	defer conn.Close()
	conn.SetReadLimit(wsMaxMessage)
	_ = conn.SetReadDeadline(time.Now().Add(wsStartWait))
	var start control
	typ, msg, err := ws.read()
	if err == nil && (typ != websocket.TextMessage || json.Unmarshal(msg, &start) != nil || start.Type != msgStart) {
		err = errors.New("the first frame must be the start message")
	}
	if err != nil {
		ws.close(websocket.ClosePolicyViolation, err.Error())
		return nil
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(wsPongWait)) })
	go func() {
		t := time.NewTicker(wsPingPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteWait)) != nil {
					return
				}
			}
		}
	}()

	o := hostapi.ExecOptions{Command: start.Command, TTY: start.TTY, Size: hostapi.WindowSize{Rows: start.Rows, Cols: start.Cols}}
	if start.Stdout {
		o.Stdout = streamWriter{ws, streamStdout}
	}
	if start.Stderr {
		o.Stderr = streamWriter{ws, streamStderr}
	}
	var stdin chan []byte
	if start.Stdin {
		// Through a bounded queue, so that a command that does not read
		// its input does not keep the frames (a resize, the peer's going)
		// from being read at once.
		stdin = make(chan []byte, stdinQueue)
		pr, pw := io.Pipe()
		defer pr.Close() // unblocks a write the command never read
		o.Stdin = pr
		go func() {
			for {
				select {
				case b, ok := <-stdin:
					if !ok { // the client's closeStdin
						pw.Close()
						return
					}
					if _, err := pw.Write(b); err != nil {
						return
					}
				case <-ctx.Done():
					return // not stdin's end: the session's, which kills the command
				}
			}
		}()
	}
	var resize chan hostapi.WindowSize
	if start.Resize {
		resize = make(chan hostapi.WindowSize, 4)
		o.Resize = resize
	}
	go readExecFrames(ctx, cancel, ws, stdin, resize)

	code, err := h.host.Exec(ctx, r.PathValue("id"), r.PathValue("name"), o)
	exit := control{Type: msgExit, ExitCode: code}
	if err != nil {
		we, _ := toWire(err)
		exit.Error = &we
		if ctx.Err() == nil { // the session's end is no failure to log
			h.report(r, err)
		}
	}
	if ws.control(exit) == nil {
		ws.close(websocket.CloseNormalClosure, "")
	}
	return nil
}

// readExecFrames reads the client's frames into stdin (closed at the
// client's closeStdin) and resize until the connection ends, and then
// cancels the exec.
func readExecFrames(ctx context.Context, cancel context.CancelFunc, ws *wsConn, stdin chan []byte, resize chan hostapi.WindowSize) {
	defer cancel()
	for {
		typ, msg, err := ws.read()
		if err != nil {
			return // the client closed the session, or is gone
		}
		if typ == websocket.BinaryMessage {
			if len(msg) < 2 || msg[0] != streamStdin || stdin == nil {
				continue
			}
			select {
			case stdin <- msg[1:]:
			case <-ctx.Done():
				return
			}
			continue
		}
		var m control
		if json.Unmarshal(msg, &m) != nil {
			continue
		}
		switch {
		case m.Type == msgCloseStdin && stdin != nil:
			close(stdin)
			stdin = nil
		case m.Type == msgResize && resize != nil && m.Rows > 0 && m.Cols > 0:
			latest(resize, hostapi.WindowSize{Rows: m.Rows, Cols: m.Cols})
		}
	}
}

// latest queues s on c, dropping the oldest size waiting if c is full:
// the last size is the one that counts.
func latest(c chan hostapi.WindowSize, s hostapi.WindowSize) {
	for {
		select {
		case c <- s:
			return
		default:
		}
		select {
		case <-c:
		default:
		}
	}
}

// Exec runs a command over the exec websocket (see the package doc).
func (c *client) Exec(ctx context.Context, id, container string, o hostapi.ExecOptions) (int, error) {
	if c.baseErr != nil {
		return -1, c.baseErr
	}
	path := groupPath(id) + "/containers/" + escape(container) + "/exec"
	conn, resp, err := c.ws.DialContext(ctx, c.wsBase+path, http.Header{"Authorization": {"Bearer " + c.token}})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			defer resp.Body.Close()
			return -1, c.responseErr(resp, "exec")
		}
		return -1, c.netErr(ctx, "exec", err)
	}
	ws := &wsConn{conn: conn}
	defer conn.Close()
	conn.SetReadLimit(wsMaxMessage)
	_ = conn.SetReadDeadline(time.Now().Add(wsPongWait))
	conn.SetPingHandler(func(data string) error {
		_ = conn.SetReadDeadline(time.Now().Add(wsPongWait))
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(wsWriteWait))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	start := control{Type: msgStart, Command: o.Command, TTY: o.TTY, Rows: o.Size.Rows, Cols: o.Size.Cols,
		Stdin: o.Stdin != nil, Stdout: o.Stdout != nil, Stderr: o.Stderr != nil, Resize: o.Resize != nil}
	if err := ws.control(start); err != nil {
		return -1, c.netErr(ctx, "exec", err)
	}

	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			ws.close(websocket.CloseNormalClosure, "session ended")
		case <-done:
		}
	}()
	if o.Stdin != nil {
		// The reader's end or failure is stdin's end, as for a command the
		// agent runs itself; a reader that never returns keeps this
		// goroutine until it does, as it would keep the agent's.
		go func() {
			_, _ = io.Copy(streamWriter{ws, streamStdin}, o.Stdin)
			_ = ws.control(control{Type: msgCloseStdin})
		}()
	}
	if o.Resize != nil {
		go func() {
			for {
				select {
				case s, ok := <-o.Resize:
					if !ok {
						return
					}
					_ = ws.control(control{Type: msgResize, Rows: s.Rows, Cols: s.Cols})
				case <-done:
					return
				}
			}
		}()
	}

	// Output the caller's writer refuses is dropped; the command runs on.
	stdout, stderr := &dropWriter{w: o.Stdout}, &dropWriter{w: o.Stderr}
	for {
		typ, msg, err := ws.read()
		if err != nil {
			if ctx.Err() != nil {
				return -1, fmt.Errorf("exec in %q: session ended: %w", container, ctx.Err())
			}
			return -1, fmt.Errorf("agent %s: exec in %q: the session ended before the command: %v: %w", c.base, container, err, errdefs.ErrUnavailable)
		}
		switch {
		case typ == websocket.BinaryMessage && len(msg) > 1 && msg[0] == streamStdout:
			stdout.write(msg[1:])
		case typ == websocket.BinaryMessage && len(msg) > 1 && msg[0] == streamStderr:
			stderr.write(msg[1:])
		case typ == websocket.TextMessage:
			var m control
			if json.Unmarshal(msg, &m) != nil || m.Type != msgExit {
				continue
			}
			ws.close(websocket.CloseNormalClosure, "")
			if m.Error != nil {
				return m.ExitCode, m.Error.err()
			}
			return m.ExitCode, nil
		}
	}
}

// dropWriter writes to w (if not nil) until a write fails.
type dropWriter struct {
	w      io.Writer
	broken bool
}

func (d *dropWriter) write(p []byte) {
	if d.w != nil && !d.broken {
		_, err := d.w.Write(p)
		d.broken = err != nil
	}
}
