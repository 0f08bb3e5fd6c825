package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/runtime/userns"
)

type runOptions struct {
	file, dataDir, publicAddress, ociRuntime, usernsRemap string
	imports                                               []string
	keep                                                  bool
	// security is what the operator allows beyond the default
	// securityContext, as skiff server's flags of the same names.
	security api.SecurityPolicy
}

// newRunCmd is `skiff run -f group.yaml`: run one container group in the
// foreground on this host, without a server, until Ctrl-C.
func newRunCmd() *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run -f FILE",
		Short: "Run a container group from an `az container create --file` YAML in the foreground",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runRun(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "YAML file in the format of az container create --file")
	f.StringVar(&o.dataDir, "data-dir", "/var/lib/skiff", "where images, volumes and groups live")
	f.StringVar(&o.publicAddress, "public-address", "127.0.0.1", "host address that published ports bind to")
	f.StringVar(&o.ociRuntime, "runtime", "runc", "OCI runtime: runc or crun")
	f.StringVar(&o.usernsRemap, "userns-remap", "default", "user namespace mapping, as for skiff server (default, none, a /etc/subuid name or UID:GID:SIZE)")
	f.StringSliceVar(&o.imports, "import", nil, "docker-archive or OCI-layout tarball to import first (repeatable)")
	f.BoolVar(&o.keep, "keep", false, "leave the group running when skiff run exits")
	f.BoolVar(&o.security.AllowPrivileged, "allow-privileged", false, "accept securityContext.privileged and capabilities beyond the default set")
	f.BoolVar(&o.security.AllowCustomSeccomp, "allow-custom-seccomp", false, "accept a custom securityContext.seccompProfile")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func runRun(ctx context.Context, o *runOptions) error {
	data, err := os.ReadFile(o.file)
	if err != nil {
		return usageError{err}
	}
	var cg api.ContainerGroup
	if err := yaml.Unmarshal(data, &cg); err != nil {
		return fmt.Errorf("%s: %v: %w", o.file, err, errdefs.ErrInvalidArgument)
	}
	if cg.Name == "" {
		return fmt.Errorf("%s: the group needs a name: %w", o.file, errdefs.ErrInvalidArgument)
	}
	idmap, err := userns.Parse(o.usernsRemap)
	if err != nil {
		return fmt.Errorf("--userns-remap: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h, err := runtime.Open(ctx, runtime.HostOptions{
		DataDir: o.dataDir, PublicAddress: o.publicAddress, OCIRuntime: o.ociRuntime, IDMap: idmap, Security: o.security,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer h.Close()
	for _, tar := range o.imports {
		imgs, err := h.Images.Import(ctx, tar)
		if err != nil {
			return fmt.Errorf("import %s: %w", tar, err)
		}
		for _, img := range imgs {
			fmt.Printf("imported %s\n", img.Ref)
		}
	}
	id := cg.Name
	if _, err := h.Status(id); err != nil {
		if err := h.Create(ctx, id, runtime.GroupSpec{Name: cg.Name, Properties: cg.Properties}); err != nil {
			return err
		}
		fmt.Printf("created container group %s\n", id)
	} else {
		fmt.Printf("attached to running container group %s\n", id)
	}
	defer func() {
		if o.keep {
			return
		}
		fmt.Printf("deleting container group %s\n", id)
		if err := h.Delete(context.WithoutCancel(ctx), id, -1); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
		}
	}()

	seen := map[string]bool{}
	state := ""
	var logs sync.Once
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := h.Status(id)
		if err != nil {
			return err
		}
		for _, c := range st.Containers {
			for _, ev := range c.Events {
				key := fmt.Sprintf("%s/%s/%s/%d", c.Name, ev.Name, ev.Message, ev.Count)
				if !seen[key] {
					seen[key] = true
					fmt.Printf("%s  %-8s %-10s %s\n", ev.LastTimestamp, c.Name, ev.Name, ev.Message)
				}
			}
		}
		if st.State != state {
			state = st.State
			fmt.Printf("group %s is %s", id, state)
			if st.IP != "" {
				fmt.Printf(" (ip %s)", st.IP)
			}
			fmt.Println()
		}
		if state == api.GroupRunning {
			logs.Do(func() { followLogs(ctx, h, id, st) })
		}
		switch state {
		case api.GroupSucceeded:
			return nil
		case api.GroupFailed:
			if st.Error != nil {
				return fmt.Errorf("%s: %s", st.Error.Code, st.Error.Message)
			}
			return errors.New("container group failed")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func followLogs(ctx context.Context, h *runtime.Host, id string, st *runtime.GroupStatus) {
	for _, c := range st.Containers {
		if c.Init {
			continue
		}
		go func() {
			w := &prefixWriter{prefix: "[" + c.Name + "] "}
			_ = h.Logs(ctx, id, c.Name, runtime.LogOptions{Tail: -1, Follow: true}, w)
		}()
	}
}

type prefixWriter struct {
	mu     sync.Mutex
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			fmt.Print(p.prefix + line)
		}
	}
	return len(b), nil
}
