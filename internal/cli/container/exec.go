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
	// tty, noTTY force a terminal or none; by default the command gets a
	// terminal when stdin is one.
	tty, noTTY bool
}

func newExecCmd(f *cmdutil.Factory) *cobra.Command {
	o := &execOptions{}
	cmd := &cobra.Command{
		Use:   "exec -g GROUP -n NAME [--container-name C] --exec-command CMD [-t|-T]",
		Short: "Run a command in a running container (on a terminal when stdin is one)",
		Long: `Run a command in a running container.

When stdin is a terminal the command runs on one, as az container exec
does. Otherwise (a pipe, a file, a script) it runs without one, as kubectl
exec -i does: stdin is passed until it ends, stdout and stderr stay apart,
and the command's exit code is the exit code. -t forces a terminal, -T none.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if o.command == "" {
				return cmdutil.FlagErrorf("the following arguments are required: --exec-command")
			}
			if o.tty && o.noTTY {
				return cmdutil.FlagErrorf("--tty and --no-tty cannot be used together")
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
	cmd.Flags().BoolVarP(&o.tty, "tty", "t", false, "run the command on a terminal even when stdin is not one")
	cmd.Flags().BoolVarP(&o.noTTY, "no-tty", "T", false, "run the command without a terminal even when stdin is one")
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
	if tty := o.tty || (f.IO.StdinTTY && !o.noTTY); !tty {
		s, err := c.ExecStreams(ctx, o.rg, o.name, o.container, req, false)
		if err != nil {
			return err
		}
		return pipedSession(ctx, f.IO, s)
	}
	s, err := c.Exec(ctx, o.rg, o.name, o.container, req)
	if err != nil {
		return err
	}
	return session(ctx, f.IO, s, true)
}

// pipedSession connects stdin, stdout and stderr to a session without a
// terminal: stdin until it ends (then the command's input is closed), the
// command's stdout and stderr to ours. An exit code N ≠ 0 becomes an
// *cmdutil.ExitStatusError.
func pipedSession(ctx context.Context, streams *cmdutil.IOStreams, s *client.Session) error {
	defer s.Close()
	s.SetStderr(streams.ErrOut)
	go pumpStdin(streams, s, true)
	return copyOutput(streams, s)
}

// copyOutput copies the session's output to stdout until it ends; an exit
// code N ≠ 0 becomes an *cmdutil.ExitStatusError.
func copyOutput(streams *cmdutil.IOStreams, s *client.Session) error {
	if _, err := io.Copy(streams.Out, s); err != nil {
		return err
	}
	if n := s.ExitCode(); n != 0 {
		return &cmdutil.ExitStatusError{Code: n}
	}
	return nil
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
		go pumpStdin(streams, s, !streams.StdinTTY)
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
	return copyOutput(streams, s)
}

// pumpStdin sends stdin to the session. When stdin ends and closeAtEOF is
// set, it ends the command's input (Session.CloseStdin: ^D on a terminal),
// as for a piped stdin; a terminal's own end is left to the user.
func pumpStdin(streams *cmdutil.IOStreams, s *client.Session, closeAtEOF bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := streams.In.Read(buf)
		if n > 0 {
			if _, err := s.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			if closeAtEOF {
				_ = s.CloseStdin()
			}
			return
		}
	}
}
