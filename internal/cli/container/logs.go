package container

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/api"
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
	c, p, err := f.Connect(ctx)
	if err != nil {
		return err
	}
	if o.container == "" {
		if o.container, err = firstContainer(ctx, c, p, o.target); err != nil {
			return err
		}
	}
	q := url.Values{}
	if o.tail >= 0 {
		q.Set("tail", strconv.Itoa(o.tail))
	}
	path := p.Container(o.rg, o.name, o.container) + "/logs"
	if !o.follow {
		r, err := c.Call(ctx, http.MethodGet, path, q, nil)
		if err != nil {
			return err
		}
		var l api.Logs
		if err := r.Decode(&l); err != nil {
			return err
		}
		if l.Content != "" && !strings.HasSuffix(l.Content, "\n") {
			l.Content += "\n"
		}
		_, err = io.WriteString(f.IO.Out, l.Content)
		return err
	}
	q.Set("follow", "true")
	resp, err := c.Do(ctx, &client.Request{Method: http.MethodGet, Path: path, Query: q})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(f.IO.Out, resp.Body)
	if err != nil && ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
		return nil // Ctrl-C ends a follow
	}
	return err
}
