// Command skiff is Skiff's single binary: server, CLI and helpers. It
// composes them: the CLI's command tree (internal/cli), `skiff run`,
// `skiff server`, `skiff virtual-node` and the container shim.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/internal/cli"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	runcmd "github.com/skiff-sh/skiff/internal/cmd/run"
	servercmd "github.com/skiff-sh/skiff/internal/cmd/server"
	virtualnodecmd "github.com/skiff-sh/skiff/internal/cmd/virtualnode"
	"github.com/skiff-sh/skiff/internal/runtime/cgroup"
	"github.com/skiff-sh/skiff/internal/runtime/shim"
)

func main() {
	// The shim is started once per container run; keep it off cobra's path.
	if len(os.Args) > 1 && os.Args[1] == "shim" {
		os.Exit(shim.Main(os.Args[2:], cgroup.OOMKilled))
	}
	// SKIFF_CPU_PROFILE=FILE writes a CPU profile of this process (go tool
	// pprof) when it exits normally, %p in FILE replaced by its PID: how
	// the benchmarks' figures are profiled (README, Tests and benchmark).
	if f := os.Getenv("SKIFF_CPU_PROFILE"); f != "" {
		f = strings.ReplaceAll(f, "%p", strconv.Itoa(os.Getpid()))
		out, err := os.Create(f)
		if err == nil {
			if err = pprof.StartCPUProfile(out); err == nil {
				code := run()
				pprof.StopCPUProfile()
				out.Close()
				os.Exit(code)
			}
			out.Close()
		}
		fmt.Fprintf(os.Stderr, "skiff: SKIFF_CPU_PROFILE: %v (running without a profile)\n", err)
	}
	os.Exit(run())
}

func run() int {
	return cli.Main(os.Args[1:],
		func(*cmdutil.Factory) *cobra.Command { return runcmd.NewCmd() },
		func(*cmdutil.Factory) *cobra.Command { return servercmd.NewCmd() },
		func(*cmdutil.Factory) *cobra.Command { return servercmd.NewAgentCmd() },
		virtualnodecmd.NewCmd,
	)
}
