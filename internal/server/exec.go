package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
)

const maxLogBytes = 4 << 20 // ACI returns up to 4 MB of logs

func boolParam(v string) bool { b, _ := strconv.ParseBool(v); return b }

func (s *Server) checkContainer(cgName string, spec api.ContainerGroupProperties, name string) error {
	for _, c := range spec.Containers {
		if c.Name == name {
			return nil
		}
	}
	for _, c := range spec.InitContainers {
		if c.Name == name {
			return nil
		}
	}
	return errdefs.WithCode(errdefs.ErrNotFound, "ContainerNotFound", "The container '%s' could not be found in container group '%s'.", name, cgName)
}

func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request, p params) error {
	cg, err := s.containerGroup(r.Context(), p)
	if err != nil {
		return err
	}
	if err := s.checkContainer(cg.Resource.Name, cg.Resource.Properties, p["container"]); err != nil {
		return err
	}
	host, err := s.hostOf(r.Context(), cg)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	opts := hostapi.LogOptions{Tail: -1, Timestamps: boolParam(q.Get("timestamps")), Previous: boolParam(q.Get("previous"))}
	if t := q.Get("tail"); t != "" {
		n, err := strconv.ParseInt(t, 10, 32) // ACI's tail is an int32
		if err != nil || n < 0 {
			return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidParameter",
				"The value '%s' of the query parameter 'tail' is invalid. It must be a whole number from 0 to %d.", clip(t), math.MaxInt32)
		}
		opts.Tail = int(n)
	}
	if boolParam(q.Get("follow")) {
		opts.Follow = true
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		fw := &flushWriter{w: w}
		if err := host.Logs(r.Context(), cg.RuntimeID, p["container"], opts, fw); err != nil && r.Context().Err() == nil {
			s.log.Debug("log stream ended", "err", err)
		}
		return nil
	}
	opts.LimitBytes = maxLogBytes
	var buf bytes.Buffer
	if err := host.Logs(r.Context(), cg.RuntimeID, p["container"], opts, &buf); err != nil {
		if errdefs.Is(err, errdefs.ErrNotFound) && !opts.Previous {
			buf.Reset() // not started yet: no logs
		} else {
			return err
		}
	}
	writeJSON(w, http.StatusOK, api.Logs{Content: buf.String()})
	return nil
}

type flushWriter struct{ w http.ResponseWriter }

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	http.NewResponseController(f.w).Flush()
	return n, err
}

// An execSession is a one-time websocket for an exec or an attach.
type execSession struct {
	host                 hostapi.Host // the agent of the group's host
	runtimeID, container string
	command              []string // nil for attach
	size                 hostapi.WindowSize
	password             string
	expires              time.Time
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// parseCommand: ACI takes one string. Skiff splits it on spaces, and takes a
// JSON array as exec form.
func parseCommand(cmd string) ([]string, error) {
	cmd = strings.TrimSpace(cmd)
	if strings.HasPrefix(cmd, "[") {
		var argv []string
		if err := json.Unmarshal([]byte(cmd), &argv); err == nil && len(argv) > 0 {
			return argv, nil
		}
	}
	argv := strings.Fields(cmd)
	if len(argv) == 0 {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidCommand", "The command to execute must not be empty.")
	}
	return argv, nil
}

// DefaultExecSessionsPerGroup bounds the exec sessions of one container
// group when Config.ExecSessionsPerGroup is zero.
const DefaultExecSessionsPerGroup = 8

// newSession records a one-time session. An exec session takes one of its
// group's Config.ExecSessionsPerGroup slots from here on: while its token
// is unused (until it expires) and while its websocket is open. Attach
// sessions start no process and take none.
func (s *Server) newSession(r *http.Request, sess *execSession) (api.ExecResponse, error) {
	token := randomHex(16)
	sess.password = randomHex(16)
	sess.expires = time.Now().Add(2 * time.Minute)
	s.execMu.Lock()
	used := s.execActive[sess.runtimeID]
	for k, v := range s.sessions {
		if time.Now().After(v.expires) {
			delete(s.sessions, k)
		} else if v.command != nil && v.runtimeID == sess.runtimeID {
			used++
		}
	}
	if limit := s.execLimit(); sess.command != nil && used >= limit {
		s.execMu.Unlock()
		return api.ExecResponse{}, errdefs.WithCode(errdefs.ErrConflict, "ExecSessionLimitReached",
			"The container group already has %d exec sessions, the most it may have at once. Close one and try again.", limit)
	}
	s.sessions[token] = sess
	s.execMu.Unlock()
	scheme := "ws"
	if r.TLS != nil {
		scheme = "wss"
	}
	return api.ExecResponse{WebSocketURI: scheme + "://" + r.Host + "/exec/" + token, Password: sess.password}, nil
}

func (s *Server) execLimit() int {
	if s.cfg.ExecSessionsPerGroup > 0 {
		return s.cfg.ExecSessionsPerGroup
	}
	return DefaultExecSessionsPerGroup
}

func (s *Server) containerExec(w http.ResponseWriter, r *http.Request, p params) error {
	cg, err := s.containerGroup(r.Context(), p)
	if err != nil {
		return err
	}
	if err := s.checkContainer(cg.Resource.Name, cg.Resource.Properties, p["container"]); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := api.DecodeExecRequest(body)
	if err != nil {
		return err
	}
	argv, err := parseCommand(req.Command)
	if err != nil {
		return err
	}
	host, err := s.hostOf(r.Context(), cg)
	if err != nil {
		return err
	}
	sess := &execSession{host: host, runtimeID: cg.RuntimeID, container: p["container"], command: argv, size: hostapi.WindowSize{Rows: 24, Cols: 80}}
	if ts := req.TerminalSize; ts != nil && ts.Rows > 0 && ts.Cols > 0 {
		sess.size = hostapi.WindowSize{Rows: uint16(ts.Rows), Cols: uint16(ts.Cols)}
	}
	resp, err := s.newSession(r, sess)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) containerAttach(w http.ResponseWriter, r *http.Request, p params) error {
	cg, err := s.containerGroup(r.Context(), p)
	if err != nil {
		return err
	}
	if err := s.checkContainer(cg.Resource.Name, cg.Resource.Properties, p["container"]); err != nil {
		return err
	}
	host, err := s.hostOf(r.Context(), cg)
	if err != nil {
		return err
	}
	resp, err := s.newSession(r, &execSession{host: host, runtimeID: cg.RuntimeID, container: p["container"]})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// Stdin of an exec session is queued in chunks of stdinChunk bytes, at most
// stdinQueueChunks of them (1 MiB).
const (
	stdinChunk       = 32 << 10
	stdinQueueChunks = 32
)

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }, Subprotocols: []string{ExecProtocol}}

// ExecProtocol is Skiff's exec websocket subprotocol, for clients that pipe
// (docs/api.md, "Exec"). ACI's protocol, without a subprotocol, is a
// terminal: frames are its raw bytes. With ExecProtocol each binary frame
// starts with a channel byte, and the socket URL's tty=false runs the
// command without a terminal, stdout and stderr apart:
//   - client → server: chanStdin data, chanCloseStdin (end of input),
//     chanResize {"rows","cols"};
//   - server → client: chanStdout, chanStderr.
//
// Either way the server closes the socket with "exit code N".
const ExecProtocol = "skiff.exec.v1"

// The channels of ExecProtocol.
const (
	chanStdin byte = iota
	chanStdout
	chanStderr
	chanCloseStdin
	chanResize
)

// chanWriter writes a stream of ExecProtocol, one channel-tagged frame per
// write.
type chanWriter struct {
	w  *wsWriter
	ch byte
}

func (c chanWriter) Write(p []byte) (int, error) {
	frame := make([]byte, 1+len(p))
	frame[0] = c.ch
	copy(frame[1:], p)
	if _, err := c.w.Write(frame); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Websocket deadlines. The server pings every wsPingPeriod; any frame from
// the peer, its pongs included, pushes the read deadline wsPongWait ahead.
// A quiet shell whose client answers pings lives on; a peer that is gone is
// dropped after wsPongWait and its session ends. A peer that stops reading
// output is dropped after wsWriteWait.
const (
	wsPongWait   = time.Minute
	wsPingPeriod = 20 * time.Second
	wsWriteWait  = 30 * time.Second
	// wsMaxMessage bounds one frame from the peer (stdin, a resize).
	wsMaxMessage = 1 << 20
)

// keepAlive arms conn's read deadline (pongWait ahead), read limit and pong
// handler, and pings every pingPeriod until ctx ends or a ping cannot be
// sent.
func keepAlive(ctx context.Context, conn *websocket.Conn, pongWait, pingPeriod time.Duration) {
	conn.SetReadLimit(wsMaxMessage)
	_ = conn.SetReadDeadline(time.Now().Add(pongWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(pongWait)) })
	go func() {
		t := time.NewTicker(pingPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				// WriteControl may run concurrently with WriteMessage.
				if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteWait)); err != nil {
					return
				}
			}
		}
	}()
}

// readFrame reads the next data frame and pushes the read deadline
// pongWait ahead.
func readFrame(conn *websocket.Conn, pongWait time.Duration) (int, []byte, error) {
	typ, msg, err := conn.ReadMessage()
	if err == nil {
		_ = conn.SetReadDeadline(time.Now().Add(pongWait))
	}
	return typ, msg, err
}

// wsWriter sends output as binary frames.
type wsWriter struct {
	mu   sync.Mutex
	conn *websocket.Conn
}

func (w *wsWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
	if err := w.conn.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *Server) serveExecSocket(w http.ResponseWriter, r *http.Request, token string) {
	s.execMu.Lock()
	sess, ok := s.sessions[token]
	if ok {
		delete(s.sessions, token) // one use
	}
	live := ok && !time.Now().After(sess.expires)
	release := func() {}
	if live && sess.command != nil {
		// The token's slot becomes the open session's, until its command
		// has ended or this returns, however it ends.
		s.execActive[sess.runtimeID]++
		var once sync.Once
		release = func() {
			once.Do(func() {
				s.execMu.Lock()
				if s.execActive[sess.runtimeID]--; s.execActive[sess.runtimeID] <= 0 {
					delete(s.execActive, sess.runtimeID)
				}
				s.execMu.Unlock()
			})
		}
		defer release()
	}
	s.execMu.Unlock()
	if !live {
		writeError(w, r, s.log, errdefs.WithCode(errdefs.ErrNotFound, "ExecSessionNotFound", "The exec session does not exist or has expired."))
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	// The password comes as the first text frame (or, for attach, in the
	// Authorization header, as the ACI spec says).
	authed := subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(sess.password)) == 1
	if !authed {
		conn.SetReadLimit(wsMaxMessage)
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		typ, msg, err := conn.ReadMessage()
		if err != nil || typ != websocket.TextMessage || subtle.ConstantTimeCompare(bytes.TrimSpace(msg), []byte(sess.password)) != 1 {
			conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "invalid password"), time.Now().Add(time.Second))
			return
		}
		conn.SetReadDeadline(time.Time{})
	}
	out := &wsWriter{conn: conn}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keepAlive(ctx, conn, wsPongWait, wsPingPeriod)
	if sess.command == nil { // attach: stream the container's output
		go func() {
			for {
				if _, _, err := readFrame(conn, wsPongWait); err != nil {
					cancel()
					return
				}
			}
		}()
		_ = sess.host.Logs(ctx, sess.runtimeID, sess.container, hostapi.LogOptions{Tail: -1, Follow: true}, out)
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "container stopped"), time.Now().Add(time.Second))
		return
	}
	stdinR, stdinW := io.Pipe()
	defer stdinR.Close() // unblocks a stdin write the command never read
	// Stdin goes through a bounded queue, so that the frame reader is not
	// held up by a command that does not read its input and still sees the
	// peer go (which ends the session and kills its processes).
	stdinQ := make(chan []byte, stdinQueueChunks)
	go func() {
		defer stdinW.Close()
		for b := range stdinQ {
			if _, err := stdinW.Write(b); err != nil {
				return
			}
		}
	}()
	// channels: the client speaks ExecProtocol; tty: the command gets a
	// terminal (always, in ACI's protocol).
	channels := conn.Subprotocol() == ExecProtocol
	tty := !channels || r.URL.Query().Get("tty") != "false"
	resize := make(chan hostapi.WindowSize, 4)
	go func() {
		var closeStdin sync.Once
		defer closeStdin.Do(func() { close(stdinQ) })
		for {
			typ, msg, err := readFrame(conn, wsPongWait)
			if err != nil {
				cancel() // the peer closed the session, or is gone
				return
			}
			if channels && typ == websocket.BinaryMessage && len(msg) > 0 {
				switch ch := msg[0]; ch {
				case chanStdin:
					msg = msg[1:]
				case chanCloseStdin:
					closeStdin.Do(func() { close(stdinQ) })
					continue
				case chanResize:
					typ, msg = websocket.TextMessage, msg[1:]
				default:
					continue
				}
			}
			if typ == websocket.BinaryMessage {
				for len(msg) > 0 {
					n := min(len(msg), stdinChunk)
					select {
					case stdinQ <- msg[:n]:
					case <-ctx.Done():
						return
					}
					msg = msg[n:]
				}
				continue
			}
			var ts api.TerminalSize
			if json.Unmarshal(msg, &ts) == nil && ts.Rows > 0 && ts.Cols > 0 {
				select {
				case resize <- hostapi.WindowSize{Rows: uint16(ts.Rows), Cols: uint16(ts.Cols)}:
				default:
				}
			}
		}
	}()
	var stdout, stderr io.Writer = out, nil
	if channels {
		stdout, stderr = chanWriter{out, chanStdout}, chanWriter{out, chanStderr}
	}
	if tty {
		stderr = nil
	}
	code, err := sess.host.Exec(ctx, sess.runtimeID, sess.container, hostapi.ExecOptions{
		Command: sess.command, TTY: tty, Size: sess.size, Resize: resize, Stdin: stdinR, Stdout: stdout, Stderr: stderr,
	})
	release()
	msg := fmt.Sprintf("exit code %d", code)
	if err != nil {
		msg = "error: " + err.Error()
		if channels && !tty {
			stderr.Write([]byte(msg + "\n"))
		} else {
			stdout.Write([]byte(msg + "\r\n"))
		}
	}
	out.mu.Lock()
	conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, msg), time.Now().Add(time.Second))
	out.mu.Unlock()
}
