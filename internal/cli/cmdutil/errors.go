package cmdutil

import (
	"fmt"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// FlagError is a mistake in the command line, caught before any request:
// exit code 2 (it is of class errdefs.ErrInvalidArgument).
type FlagError struct{ msg string }

// FlagErrorf returns a *FlagError.
func FlagErrorf(format string, a ...any) error { return &FlagError{msg: fmt.Sprintf(format, a...)} }

func (e *FlagError) Error() string { return e.msg }

// Is makes a FlagError an errdefs.ErrInvalidArgument.
func (e *FlagError) Is(target error) bool { return target == errdefs.ErrInvalidArgument }

// ExitStatusError ends the CLI with Code and prints nothing (the exit code
// of a remote command, for exec).
type ExitStatusError struct{ Code int }

func (e *ExitStatusError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }
