package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// LogOptions are the options of Logs.
type LogOptions struct {
	// Tail, when set, keeps only the last *Tail lines.
	Tail *int
	// Timestamps prefixes each line with its RFC 3339 time.
	Timestamps bool
	// Previous reads the log of the container's previous run.
	Previous bool
	// Follow streams the log until the container stops or ctx ends.
	Follow bool
}

// Logs reads the log of a container. Without Follow the server answers
// the whole (tailed) log at once and the reader holds it; with Follow the
// reader is the server's stream, which ends when the container stops or
// ctx ends. The caller closes it.
func (c *Client) Logs(ctx context.Context, rg, group, container string, o LogOptions) (io.ReadCloser, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if o.Tail != nil {
		q.Set("tail", strconv.Itoa(*o.Tail))
	}
	if o.Timestamps {
		q.Set("timestamps", "true")
	}
	if o.Previous {
		q.Set("previous", "true")
	}
	path := p.Container(rg, group, container) + "/logs"
	if o.Follow {
		q.Set("follow", "true")
		resp, err := c.Do(ctx, &Request{Method: http.MethodGet, Path: path, Query: q})
		if err != nil {
			return nil, err
		}
		return resp.Body, nil
	}
	var l api.Logs
	if _, err := c.call(ctx, http.MethodGet, path, q, nil, &l); err != nil {
		return nil, err
	}
	return io.NopCloser(strings.NewReader(l.Content)), nil
}

// Exec starts req.Command in a container, on a terminal, and connects to
// its session.
func (c *Client) Exec(ctx context.Context, rg, group, container string, req api.ExecRequest) (*Session, error) {
	return c.session(ctx, rg, group, container, "/exec", req)
}

// Attach connects to the output of a container: its log so far, then
// what it writes until it stops.
func (c *Client) Attach(ctx context.Context, rg, group, container string) (*Session, error) {
	return c.session(ctx, rg, group, container, "/attach", nil)
}

// ExecStreams is Exec for callers that pipe: the session speaks Skiff's
// channel protocol (ExecProtocol), so that with tty false the command
// runs without a terminal, its stderr comes apart from its stdout
// (Session.SetStderr) and the end of input is told (Session.CloseStdin)
// rather than typed. Only a Skiff server speaks it.
func (c *Client) ExecStreams(ctx context.Context, rg, group, container string, req api.ExecRequest, tty bool) (*Session, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	var ex api.ExecResponse
	if _, err := c.call(ctx, http.MethodPost, p.Container(rg, group, container)+"/exec", nil, req, &ex); err != nil {
		return nil, err
	}
	if !tty {
		u, err := url.Parse(ex.WebSocketURI)
		if err != nil {
			return nil, errdefs.WithCode(errdefs.ErrUnavailable, "", "the server's exec socket %q: %v", ex.WebSocketURI, err)
		}
		q := u.Query()
		q.Set("tty", "false")
		u.RawQuery = q.Encode()
		ex.WebSocketURI = u.String()
	}
	s, err := dialProtocol(ctx, ex, c.tls.config, ExecProtocol)
	if err != nil {
		return nil, err
	}
	if !s.channels {
		s.Close()
		return nil, errdefs.WithCode(errdefs.ErrNotImplemented, "", "the server does not speak %s: exec without a terminal needs a Skiff server", ExecProtocol)
	}
	return s, nil
}

// ExecProtocol is the websocket subprotocol of Skiff's exec channels: each
// binary frame starts with its channel (docs/api.md, "Exec").
const ExecProtocol = "skiff.exec.v1"

// The channels of ExecProtocol.
const (
	chanStdin byte = iota
	chanStdout
	chanStderr
	chanCloseStdin
	chanResize
)

func (c *Client) session(ctx context.Context, rg, group, container, action string, in any) (*Session, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	var ex api.ExecResponse
	if _, err := c.call(ctx, http.MethodPost, p.Container(rg, group, container)+action, nil, in, &ex); err != nil {
		return nil, err
	}
	return dial(ctx, ex, c.tls.config)
}

// Session is an exec or attach session, on the websocket the server hands
// out: the terminal's output is read from it, stdin written to it, and the
// terminal resized. It ends when the server closes the socket (Read then
// returns io.EOF and ExitCode the command's exit code) or when the context
// it was opened with ends.
type Session struct {
	ctx  context.Context
	conn *websocket.Conn
	stop func() bool

	wmu sync.Mutex

	// channels: the session speaks ExecProtocol; stderr gets its
	// stderr frames (nil: they are read as output).
	channels bool
	stderr   io.Writer

	// Read's state: the rest of the last frame, then how the session ended.
	buf  []byte
	end  error
	code int
}

// Dial connects to the session of an exec or attach answer and sends its
// password, the first frame of the protocol (docs/api.md, "Exec").
func Dial(ctx context.Context, ex api.ExecResponse) (*Session, error) { return dial(ctx, ex, nil) }

// dial is Dial, trusting a wss: server as tc says (nil: the system's roots).
func dial(ctx context.Context, ex api.ExecResponse, tc *tls.Config) (*Session, error) {
	return dialProtocol(ctx, ex, tc, "")
}

// dialProtocol is dial, offering a subprotocol when not "".
func dialProtocol(ctx context.Context, ex api.ExecResponse, tc *tls.Config, protocol string) (*Session, error) {
	dialer := websocket.Dialer{HandshakeTimeout: 30 * time.Second, Proxy: http.ProxyFromEnvironment}
	if protocol != "" {
		dialer.Subprotocols = []string{protocol}
	}
	if tc != nil {
		dialer.TLSClientConfig = tc.Clone()
		dialer.TLSClientConfig.NextProtos = nil // a websocket is HTTP/1.1
	}
	conn, resp, err := dialer.DialContext(ctx, ex.WebSocketURI, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		detail := err.Error()
		if resp != nil {
			detail = resp.Status
		}
		return nil, errdefs.WithCode(errdefs.ErrUnavailable, "", "connect to %s: %s", ex.WebSocketURI, detail)
	}
	s := &Session{ctx: ctx, conn: conn, channels: protocol != "" && conn.Subprotocol() == protocol}
	// Closing the socket is what unblocks a Read when ctx ends.
	s.stop = context.AfterFunc(ctx, func() { _ = conn.Close() })
	if err := s.write(websocket.TextMessage, []byte(ex.Password)); err != nil {
		s.Close()
		return nil, errdefs.WithCode(errdefs.ErrUnavailable, "", "send the exec password: %v", err)
	}
	return s, nil
}

func (s *Session) write(kind int, b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	return s.conn.WriteMessage(kind, b)
}

// Write sends p as input of the command. A terminal reads ^D (0x04) as
// the end of input; see CloseStdin.
func (s *Session) Write(p []byte) (int, error) {
	frame := p
	if s.channels {
		frame = append([]byte{chanStdin}, p...)
	}
	if err := s.write(websocket.BinaryMessage, frame); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseStdin ends the command's input: on ExecProtocol its stdin is
// closed; on a terminal of ACI's protocol ^D is typed.
func (s *Session) CloseStdin() error {
	if s.channels {
		return s.write(websocket.BinaryMessage, []byte{chanCloseStdin})
	}
	return s.write(websocket.BinaryMessage, []byte{0x04})
}

// SetStderr sends the command's stderr to w (an ExecStreams session
// without a terminal); without it stderr is read with the output.
func (s *Session) SetStderr(w io.Writer) { s.stderr = w }

// Resize tells the server the terminal's new size.
func (s *Session) Resize(rows, cols int) error {
	b, _ := json.Marshal(api.TerminalSize{Rows: int32(rows), Cols: int32(cols)})
	if s.channels {
		return s.write(websocket.BinaryMessage, append([]byte{chanResize}, b...))
	}
	return s.write(websocket.TextMessage, b)
}

var exitCodeRE = regexp.MustCompile(`exit code (-?\d+)`)

// Read reads the terminal's output. It returns io.EOF once the server has
// closed the session normally, ctx's error once ctx has ended, and an error
// of class ErrUnavailable when the session broke off without an exit code.
func (s *Session) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.end != nil {
			return 0, s.end
		}
		_, data, err := s.conn.ReadMessage()
		if err != nil {
			s.end = s.ended(err)
			return 0, s.end
		}
		if s.channels {
			if len(data) == 0 {
				continue
			}
			switch data[0] {
			case chanStdout:
			case chanStderr:
				if s.stderr != nil {
					if _, err := s.stderr.Write(data[1:]); err != nil {
						s.end = err
						return 0, err
					}
					continue
				}
			default:
				continue
			}
			data = data[1:]
		}
		s.buf = data
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// ended turns the error that ended the socket into Read's error, and
// keeps the exit code of a close "exit code N".
func (s *Session) ended(err error) error {
	if s.ctx.Err() != nil {
		return s.ctx.Err()
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		if m := exitCodeRE.FindStringSubmatch(ce.Text); m != nil {
			s.code, _ = strconv.Atoi(m[1])
			return io.EOF
		}
		if ce.Code == websocket.CloseNormalClosure {
			return io.EOF
		}
	}
	return errdefs.WithCode(errdefs.ErrUnavailable, "", "the session ended without an exit code: %v", err)
}

// ExitCode is the exit code of the command once Read has returned io.EOF;
// 0 when the server named none (an attach, or an exec that failed to
// start: the server writes why to the terminal).
func (s *Session) ExitCode() int { return s.code }

// Close ends the session.
func (s *Session) Close() error {
	s.stop()
	return s.conn.Close()
}
