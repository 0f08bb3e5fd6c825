package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
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
	c, err := f.Client()
	if err != nil {
		return err
	}
	if o.container == "" {
		if o.container, err = firstContainer(ctx, c, o.target); err != nil {
			return err
		}
	}
	req := api.ExecRequest{Command: o.command, TerminalSize: &api.TerminalSize{Rows: int32(o.rows), Cols: int32(o.cols)}}
	s, err := c.Exec(ctx, o.rg, o.name, o.container, req)
	if err != nil {
		return err
	}
	return session(ctx, f.IO, s, true)
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
			c, err := f.Client()
			if err != nil {
				return err
			}
			if container == "" {
				if container, err = firstContainer(ctx, c, t); err != nil {
					return err
				}
			}
			s, err := c.Attach(ctx, t.rg, t.name, container)
			if err != nil {
				return err
			}
			err = session(ctx, f.IO, s, false)
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

// session connects the terminal to an exec or attach session (the
// protocol is the client's): stdin goes in (when interactive), with a
// resize when the terminal's size changes, and the output comes out until
// the server closes the session. An exit code N ≠ 0 becomes an
// *cmdutil.ExitStatusError.
func session(ctx context.Context, streams *cmdutil.IOStreams, s *client.Session, interactive bool) error {
	defer s.Close()
	if interactive {
		restore, err := streams.MakeRaw()
		if err != nil {
			return fmt.Errorf("put the terminal in raw mode: %w", err)
		}
		defer restore()
		go pumpStdin(streams, s)
		if streams.StdoutTTY {
			done := make(chan struct{})
			defer close(done)
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
							_ = s.Resize(rows, cols)
						}
					}
				}
			}()
		}
	}
	if _, err := io.Copy(streams.Out, s); err != nil {
		return err
	}
	if n := s.ExitCode(); n != 0 {
		return &cmdutil.ExitStatusError{Code: n}
	}
	return nil
}

// pumpStdin sends stdin to the session. When a piped stdin ends it sends
// ^D, which the remote terminal reads as end of input.
func pumpStdin(streams *cmdutil.IOStreams, s *client.Session) {
	buf := make([]byte, 4096)
	for {
		n, err := streams.In.Read(buf)
		if n > 0 {
			if _, err := s.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			if !streams.StdinTTY {
				_, _ = s.Write([]byte{0x04})
			}
			return
		}
	}
}
