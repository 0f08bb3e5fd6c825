// Package runcmd is `skiff run -f group.yaml`: one container group in the
// foreground, as `docker run` does it. It starts an embedded skiff server
// on the data dir (loopback only, on a port of its own) and drives it
// through the public client, so the group gets the API's defaults,
// validation and policy exactly as `az container create --file` would.
package runcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	servercmd "github.com/skiff-sh/skiff/internal/cmd/server"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/lifecycle"
)

type options struct {
	file, resourceGroup       string
	imports                   []string
	keep                      bool
	server                    servercmd.Options
	allowPriv, allowCustomSec bool
}

// NewCmd returns `skiff run`.
func NewCmd() *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "run -f FILE",
		Short: "Run a container group from an `az container create --file` YAML in the foreground",
		Long: "Run a container group from an `az container create --file` YAML in the foreground, until it ends or Ctrl-C.\n" +
			"An embedded skiff server on --data-dir runs it (no other server may use that data dir at the same time),\n" +
			"with the same defaults, validation and policy as the API. Without --keep the group is deleted at the end.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return run(cmd.Context(), o, cmd.OutOrStdout()) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "YAML file in the format of az container create --file")
	f.StringVarP(&o.resourceGroup, "resource-group", "g", "skiff-run", "resource group the group is created in")
	f.StringVar(&o.server.DataDir, "data-dir", "/var/lib/skiff", "where images, volumes and groups live")
	f.StringVar(&o.server.PublicAddress, "public-address", "127.0.0.1", "host address that published ports bind to")
	f.StringVar(&o.server.Runtime, "runtime", "runc", "OCI runtime: runc or crun")
	f.StringVar(&o.server.UsernsRemap, "userns-remap", "default", "user namespace mapping, as for skiff server (default, none, a /etc/subuid name or UID:GID:SIZE)")
	f.StringVar(&o.server.Bridge, "bridge", "skiff0", "Linux bridge the group is attached to")
	f.StringVar(&o.server.Subnet, "subnet", "10.201.0.0/16", "private range the group's IP comes from")
	f.StringSliceVar(&o.imports, "import", nil, "docker-archive or OCI-layout tarball to import first (repeatable)")
	f.BoolVar(&o.keep, "keep", false, "leave the group running when skiff run exits")
	f.BoolVar(&o.server.AllowPrivileged, "allow-privileged", false, "accept securityContext.privileged and capabilities beyond the default set")
	f.BoolVar(&o.server.AllowCustomSeccomp, "allow-custom-seccomp", false, "accept a custom securityContext.seccompProfile")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func run(ctx context.Context, o *options, out io.Writer) error {
	data, err := os.ReadFile(o.file)
	if err != nil {
		return fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	var cg api.ContainerGroup
	if err := yaml.Unmarshal(data, &cg); err != nil {
		return fmt.Errorf("%s: %v: %w", o.file, err, errdefs.ErrInvalidArgument)
	}
	if cg.Name == "" {
		return fmt.Errorf("%s: the group needs a name: %w", o.file, errdefs.ErrInvalidArgument)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	o.server.Listen, o.server.Location, o.server.LogLevel, o.server.Quiet = "127.0.0.1:0", "local", "warn", true
	o.server.StopGrace, o.server.ImageGCHigh, o.server.ImageGCLow, o.server.ImageGCInterval = 10*time.Second, 85, 80, 5*time.Minute
	srv, err := servercmd.Start(srvCtx, o.server)
	if err != nil {
		stopServer()
		return err
	}
	defer func() {
		stopServer()
		if err := srv.Wait(); err != nil {
			fmt.Fprintln(os.Stderr, "error: embedded server:", err)
		}
	}()
	cl, err := client.New(client.Options{Endpoint: srv.Endpoint, Token: srv.Token, Subscription: srv.Subscription})
	if err != nil {
		return err
	}
	for _, tar := range o.imports {
		if err := importImage(ctx, cl, tar, out); err != nil {
			return err
		}
	}
	if _, err := cl.CreateResourceGroup(ctx, o.resourceGroup, api.ResourceGroup{Location: "local"}); err != nil {
		return err
	}
	var created *client.Poller
	if _, err := cl.GetContainerGroup(ctx, o.resourceGroup, cg.Name); errdefs.Is(err, errdefs.ErrNotFound) {
		_, created, err = cl.CreateOrUpdateContainerGroup(ctx, o.resourceGroup, cg.Name, &cg)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "created container group %s\n", cg.Name)
	} else if err != nil {
		return err
	} else {
		fmt.Fprintf(out, "attached to running container group %s\n", cg.Name)
	}
	if !o.keep {
		defer func() {
			fmt.Fprintf(out, "deleting container group %s\n", cg.Name)
			bg := context.WithoutCancel(ctx)
			p, err := cl.DeleteContainerGroup(bg, o.resourceGroup, cg.Name, client.DeleteOptions{})
			if err == nil {
				err = p.Wait(bg, nil)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "error:", err)
			}
		}()
	}
	return follow(ctx, cl, o.resourceGroup, cg.Name, created, out)
}

func importImage(ctx context.Context, cl *client.Client, tar string, out io.Writer) error {
	f, err := os.Open(tar)
	if err != nil {
		return fmt.Errorf("import: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	imgs, err := cl.ImportImage(ctx, "local", f, st.Size())
	if err != nil {
		return fmt.Errorf("import %s: %w", tar, err)
	}
	for _, img := range imgs {
		fmt.Fprintf(out, "imported %s\n", img.Image)
	}
	return nil
}

// follow prints the group's events and state changes, and its containers'
// logs once it runs, until the group ends or ctx ends. The API has no
// watch: like az, it polls.
func follow(ctx context.Context, cl *client.Client, rg, name string, created *client.Poller, out io.Writer) error {
	failed := make(chan error, 1)
	if created != nil {
		go func() {
			if err := created.Wait(ctx, nil); err != nil && ctx.Err() == nil {
				failed <- err
			}
		}()
	}
	seen := map[string]bool{}
	state := ""
	var logs *sync.WaitGroup
	w := &lineWriter{out: out}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		g, err := cl.GetContainerGroup(ctx, rg, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, c := range g.Properties.Containers {
			if iv := c.Properties.InstanceView; iv != nil {
				for _, ev := range iv.Events {
					key := fmt.Sprintf("%s/%s/%s/%d", c.Name, ev.Name, ev.Message, ev.Count)
					if !seen[key] {
						seen[key] = true
						w.print("", fmt.Sprintf("%s  %-8s %-10s %s\n", ev.LastTimestamp, c.Name, ev.Name, ev.Message))
					}
				}
			}
		}
		var cur lifecycle.GroupState
		if g.Properties.InstanceView != nil {
			cur = lifecycle.GroupState(g.Properties.InstanceView.State)
		}
		if string(cur) != state {
			state = string(cur)
			line := fmt.Sprintf("group %s is %s", name, state)
			if ip := g.Properties.IPAddress; ip != nil && ip.IP != "" {
				line += fmt.Sprintf(" (ip %s)", ip.IP)
			}
			w.print("", line+"\n")
		}
		if cur == lifecycle.GroupRunning && logs == nil {
			logs = followLogs(ctx, cl, rg, g, w, true)
		}
		if cur == lifecycle.GroupSucceeded || cur == lifecycle.GroupFailed {
			// The logs to their end: those followed end with their run;
			// a group that ended before it was seen running prints them now.
			if logs == nil {
				logs = followLogs(ctx, cl, rg, g, w, false)
			}
			waitAtMost(logs, 5*time.Second)
		}
		switch {
		case cur == lifecycle.GroupSucceeded:
			return nil
		case cur == lifecycle.GroupFailed && lifecycle.Provisioning(g.Properties.ProvisioningState) != lifecycle.Failed:
			return errors.New("container group failed: a container exited with an error")
		case cur == lifecycle.GroupFailed && created == nil:
			return errors.New("container group failed (provisioningState Failed)")
		}
		select {
		case err := <-failed:
			return err
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// followLogs copies each container's log to w, following it if follow.
func followLogs(ctx context.Context, cl *client.Client, rg string, g *api.ContainerGroup, w *lineWriter, follow bool) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, c := range g.Properties.Containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := cl.Logs(ctx, rg, g.Name, c.Name, client.LogOptions{Follow: follow})
			if err != nil {
				return
			}
			defer r.Close()
			_, _ = io.Copy(prefixed{w, "[" + c.Name + "] "}, r)
		}()
	}
	return &wg
}

func waitAtMost(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// lineWriter writes whole lines from several goroutines.
type lineWriter struct {
	mu  sync.Mutex
	out io.Writer
}

func (l *lineWriter) print(prefix, s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.SplitAfter(s, "\n") {
		if line != "" {
			fmt.Fprint(l.out, prefix+line)
		}
	}
}

type prefixed struct {
	w      *lineWriter
	prefix string
}

func (p prefixed) Write(b []byte) (int, error) {
	p.w.print(p.prefix, string(b))
	return len(b), nil
}
