// Package cli builds the skiff command tree and maps errors to exit codes.
//
// The API commands (group, container, account, image, monitor, ad, role,
// login) are clients of a Skiff server through package client; each lives
// in its own package below this one and shares cmdutil (streams, client,
// output flags). The
// commands that compose a server or a virtual node are given by
// cmd/skiff, so that this tree holds commands only. `skiff run` drives the
// host runtime directly, without a server.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/internal/cli/account"
	"github.com/skiff-sh/skiff/internal/cli/ad"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	"github.com/skiff-sh/skiff/internal/cli/container"
	"github.com/skiff-sh/skiff/internal/cli/deployment"
	"github.com/skiff-sh/skiff/internal/cli/group"
	"github.com/skiff-sh/skiff/internal/cli/host"
	"github.com/skiff-sh/skiff/internal/cli/image"
	"github.com/skiff-sh/skiff/internal/cli/login"
	"github.com/skiff-sh/skiff/internal/cli/monitor"
	"github.com/skiff-sh/skiff/internal/cli/role"
	"github.com/skiff-sh/skiff/internal/cli/storage"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Exit codes.
const (
	ExitOK        = 0
	ExitError     = 1
	ExitUsage     = 2
	ExitNotFound  = 3
	ExitConflict  = 4
	ExitAuth      = 5
	ExitUnavail   = 6
	ExitInterrupt = 130
)

// Command makes a command of the tree on the Factory; cmd/skiff passes
// the commands that compose a server or a virtual node this way.
type Command func(*cmdutil.Factory) *cobra.Command

// Main runs the skiff command line, with the extra commands, on the
// process's streams and environment and returns the exit code.
func Main(args []string, extra ...Command) int {
	return Execute(context.Background(), args, cmdutil.New(cmdutil.System(), os.Getenv), extra...)
}

// Execute runs the command line args with f's streams and environment,
// prints an error as one line on stderr, and returns the exit code.
func Execute(ctx context.Context, args []string, f *cmdutil.Factory, extra ...Command) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := NewRootCmd(f, extra...)
	root.SetArgs(cmdutil.ExpandNargs(root, args))
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	err := root.ExecuteContext(ctx)
	var status *cmdutil.ExitStatusError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &status):
		return status.Code
	case errors.Is(err, context.Canceled):
		return ExitInterrupt
	}
	if isCobraUsage(err) {
		err = usageError{err}
	}
	fmt.Fprintln(f.IO.ErrOut, "error:", strings.TrimSpace(strings.NewReplacer("\r\n", " ", "\n", " ").Replace(err.Error())))
	return ExitCode(err)
}

// NewRootCmd returns the skiff command tree on f, with the extra commands.
func NewRootCmd(f *cmdutil.Factory, extra ...Command) *cobra.Command {
	root := &cobra.Command{
		Use:           "skiff",
		Short:         "Skiff runs container groups the way Azure Container Instances does, on machines you own",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		group.NewCmd(f),
		container.NewCmd(f),
		container.NewStandbyPoolCmd(f),
		deployment.NewCmd(f),
		account.NewCmd(f),
		image.NewCmd(f),
		host.NewCmd(f),
		monitor.NewCmd(f),
		ad.NewCmd(f),
		role.NewCmd(f),
		storage.NewCmd(f),
	)
	root.AddCommand(login.NewCmds(f)...)
	for _, c := range extra {
		root.AddCommand(c(f))
	}
	return root
}

// isCobraUsage tells cobra's own command-line errors, which it returns as
// plain errors.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "required flag", "unknown flag", "unknown shorthand flag", "flag needs an argument"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// ExitCode maps an error class to an exit code.
func ExitCode(err error) int {
	var ue usageError
	var status *cmdutil.ExitStatusError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &status):
		return status.Code
	case errors.As(err, &ue), errdefs.Is(err, errdefs.ErrInvalidArgument):
		return ExitUsage
	case errdefs.Is(err, errdefs.ErrNotFound):
		return ExitNotFound
	case errdefs.Is(err, errdefs.ErrConflict), errdefs.Is(err, errdefs.ErrAlreadyExists):
		return ExitConflict
	case errdefs.Is(err, errdefs.ErrUnauthorized):
		return ExitAuth
	case errdefs.Is(err, errdefs.ErrUnavailable):
		return ExitUnavail
	case errors.Is(err, context.Canceled):
		return ExitInterrupt
	}
	return ExitError
}

type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }
