package container

import (
	"context"
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
)

type logsOptions struct {
	target
	container string
	follow    bool
	tail      int
}

func newLogsCmd(f *cmdutil.Factory) *cobra.Command {
	o := &logsOptions{}
	cmd := &cobra.Command{
		Use:   "logs -g GROUP -n NAME [--container-name C] [--follow] [--tail N]",
		Short: "Print the logs of a container",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if cmd.Flags().Changed("tail") && o.tail < 0 {
				return cmdutil.FlagErrorf("--tail must be 0 or more, not %d", o.tail)
			}
			if !cmd.Flags().Changed("tail") {
				o.tail = -1
			}
			return runLogs(cmd.Context(), f, o)
		},
	}
	o.target.flags(cmd)
	cmd.Flags().StringVar(&o.container, "container-name", "", "container of the group (default: the first)")
	cmd.Flags().BoolVar(&o.follow, "follow", false, "stream the log until the container stops or Ctrl-C")
	cmd.Flags().IntVar(&o.tail, "tail", 0, "print only the last N lines")
	return cmd
}

func runLogs(ctx context.Context, f *cmdutil.Factory, o *logsOptions) error {
	c, err := f.Client()
	if err != nil {
		return err
	}
	if o.container == "" {
		if o.container, err = firstContainer(ctx, c, o.target); err != nil {
			return err
		}
	}
	lo := client.LogOptions{Follow: o.follow}
	if o.tail >= 0 {
		lo.Tail = &o.tail
	}
	logs, err := c.Logs(ctx, o.rg, o.name, o.container, lo)
	if err != nil {
		return err
	}
	defer logs.Close()
	if !o.follow {
		b, err := io.ReadAll(logs)
		if err != nil {
			return err
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			b = append(b, '\n')
		}
		_, err = f.IO.Out.Write(b)
		return err
	}
	_, err = io.Copy(f.IO.Out, logs)
	if err != nil && ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
		return nil // Ctrl-C ends a follow
	}
	return err
}
