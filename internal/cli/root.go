// Package cli builds the skiff command tree and maps errors to exit codes.
package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/oci"
	"github.com/skiff-sh/skiff/internal/runtime/shim"
)

// Exit codes.
const (
	ExitOK       = 0
	ExitError    = 1
	ExitUsage    = 2
	ExitNotFound = 3
	ExitConflict = 4
	ExitAuth     = 5
	ExitUnavail  = 6
)

// Main runs the skiff command line and returns the exit code.
func Main(args []string) int {
	// The shim is started once per container run; keep it off cobra's path.
	if len(args) > 0 && args[0] == "shim" {
		return shim.Main(args[1:], oci.OOMKilled)
	}
	root := NewRootCmd()
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return ExitCode(err)
	}
	return ExitOK
}

// NewRootCmd returns the skiff command tree.
func NewRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "skiff",
		Short:         "Skiff runs container groups the way Azure Container Instances does, on machines you own",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCmd())
	return root
}

// ExitCode maps an error class to an exit code.
func ExitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return ExitOK
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
	}
	return ExitError
}

type usageError struct{ error }
