package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

type execOptions struct {
	target
	container  string
	command    string
	rows, cols int
}

func newExecCmd(f *cmdutil.Factory) *cobra.Command {
	o := &execOptions{}
	cmd := &cobra.Command{
		Use:   "exec -g GROUP -n NAME [--container-name C] --exec-command CMD",
		Short: "Run a command in a running container, on a terminal",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if o.command == "" {
				return cmdutil.FlagErrorf("the following arguments are required: --exec-command")
			}
			if o.rows <= 0 || o.cols <= 0 {
				return cmdutil.FlagErrorf("--terminal-row-size and --terminal-col-size must be more than 0")
			}
			if rows, cols, ok := f.IO.TerminalSize(); ok {
				o.rows, o.cols = rows, cols
			}
			return runExec(cmd.Context(), f, o)
		},
	}
	o.target.flags(cmd)
	cmd.Flags().StringVar(&o.container, "container-name", "", "container of the group (default: the first)")
	cmd.Flags().StringVar(&o.command, "exec-command", "", `command to run ("sh", or a JSON array for arguments: '["sh","-c","ls /"]')`)
	cmd.Flags().IntVar(&o.rows, "terminal-row-size", 24, "rows of the terminal when stdout is not one")
	cmd.Flags().IntVar(&o.cols, "terminal-col-size", 80, "columns of the terminal when stdout is not one")
	return cmd
}

func runExec(ctx context.Context, f *cmdutil.Factory, o *execOptions) error {
	c, p, err := f.Connect(ctx)
	if err != nil {
		return err
	}
	if o.container == "" {
		if o.container, err = firstContainer(ctx, c, p, o.target); err != nil {
			return err
		}
	}
	req := api.ExecRequest{Command: o.command, TerminalSize: &api.TerminalSize{Rows: int32(o.rows), Cols: int32(o.cols)}}
	r, err := c.Call(ctx, http.MethodPost, p.Container(o.rg, o.name, o.container)+"/exec", nil, req)
	if err != nil {
		return err
	}
	var ex api.ExecResponse
	if err := r.Decode(&ex); err != nil {
		return err
	}
	return session(ctx, f.IO, ex, true)
}

func newAttachCmd(f *cmdutil.Factory) *cobra.Command {
	var t target
	var container string
	cmd := &cobra.Command{
		Use:   "attach -g GROUP -n NAME [--container-name C]",
		Short: "Stream the output of a container until it stops or Ctrl-C",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			ctx := cmd.Context()
			c, p, err := f.Connect(ctx)
			if err != nil {
				return err
			}
			if container == "" {
				if container, err = firstContainer(ctx, c, p, t); err != nil {
					return err
				}
			}
			r, err := c.Call(ctx, http.MethodPost, p.Container(t.rg, t.name, container)+"/attach", nil, nil)
			if err != nil {
				return err
			}
			var ex api.ExecResponse
			if err := r.Decode(&ex); err != nil {
				return err
			}
			err = session(ctx, f.IO, ex, false)
			if errors.Is(err, context.Canceled) {
				return nil // Ctrl-C detaches
			}
			return err
		},
	}
	t.flags(cmd)
	cmd.Flags().StringVar(&container, "container-name", "", "container of the group (default: the first)")
	return cmd
}

var exitCodeRE = regexp.MustCompile(`exit code (-?\d+)`)

// session speaks the exec websocket protocol: the password as the first
// text frame, stdin as binary frames (when interactive), output frames to
// stdout, a {"rows","cols"} text frame when the terminal is resized. It
// ends when the server closes the socket; a close text "exit code N" with
// N ≠ 0 becomes an *cmdutil.ExitStatusError.
func session(ctx context.Context, streams *cmdutil.IOStreams, ex api.ExecResponse, interactive bool) error {
	dialer := websocket.Dialer{HandshakeTimeout: 30 * time.Second, Proxy: http.ProxyFromEnvironment}
	conn, resp, err := dialer.DialContext(ctx, ex.WebSocketURI, nil)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		detail := err.Error()
		if resp != nil {
			detail = resp.Status
		}
		return errdefs.WithCode(errdefs.ErrUnavailable, "", "connect to %s: %s", ex.WebSocketURI, detail)
	}
	defer conn.Close()

	var wmu sync.Mutex
	write := func(kind int, b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		return conn.WriteMessage(kind, b)
	}
	if interactive {
		restore, err := streams.MakeRaw()
		if err != nil {
			return fmt.Errorf("put the terminal in raw mode: %w", err)
		}
		defer restore()
	}
	if err := write(websocket.TextMessage, []byte(ex.Password)); err != nil {
		return errdefs.WithCode(errdefs.ErrUnavailable, "", "send the exec password: %v", err)
	}

	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = conn.Close()
		case <-done:
		}
	}()

	if interactive {
		go pumpStdin(streams, write)
		if streams.StdoutTTY {
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGWINCH)
			defer signal.Stop(sig)
			go func() {
				for {
					select {
					case <-done:
						return
					case <-sig:
						if rows, cols, ok := streams.TerminalSize(); ok {
							b, _ := json.Marshal(api.TerminalSize{Rows: int32(rows), Cols: int32(cols)})
							_ = write(websocket.TextMessage, b)
						}
					}
				}
			}()
		}
	}

	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				if m := exitCodeRE.FindStringSubmatch(ce.Text); m != nil {
					if n, _ := strconv.Atoi(m[1]); n != 0 {
						return &cmdutil.ExitStatusError{Code: n}
					}
					return nil
				}
				if ce.Code == websocket.CloseNormalClosure {
					return nil
				}
			}
			return errdefs.WithCode(errdefs.ErrUnavailable, "", "the session ended without an exit code: %v", err)
		}
		if _, err := streams.Out.Write(data); err != nil {
			return err
		}
	}
}

// pumpStdin sends stdin as binary frames. When a piped stdin ends it sends
// ^D, which the remote terminal reads as end of input.
func pumpStdin(streams *cmdutil.IOStreams, write func(int, []byte) error) {
	buf := make([]byte, 4096)
	for {
		n, err := streams.In.Read(buf)
		if n > 0 {
			if write(websocket.BinaryMessage, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			if !streams.StdinTTY {
				_ = write(websocket.BinaryMessage, []byte{0x04})
			}
			return
		}
	}
}
