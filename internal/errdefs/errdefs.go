// Package errdefs holds Skiff's error classes. Packages wrap them with %w;
// only the edges (HTTP server, CLI) translate them into status codes, ARM
// error codes and exit codes.
package errdefs

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidArgument: the request or spec is malformed or out of range.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: the named thing does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a thing with that name exists already.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: the thing is in a state that forbids the operation.
	ErrConflict = errors.New("conflict")
	// ErrUnauthorized: credentials are missing or wrong.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUnavailable: a dependency (registry, network) could not be reached.
	ErrUnavailable = errors.New("unavailable")
	// ErrNotImplemented: the feature is not supported on this host.
	ErrNotImplemented = errors.New("not implemented")
	// ErrTooLarge: a request or its content is larger than a limit. It is
	// also of class ErrInvalidArgument.
	ErrTooLarge = fmt.Errorf("too large: %w", ErrInvalidArgument)
	// ErrForbidden: the caller is known but not allowed the action. It is
	// also of class ErrUnauthorized.
	ErrForbidden = fmt.Errorf("forbidden: %w", ErrUnauthorized)
)

// Is reports whether err is of class target.
func Is(err, target error) bool { return errors.Is(err, target) }

// Coded is an error with an ARM error code (e.g. "InvalidResourceName"),
// still of an error class for HTTP status and exit code.
type Coded struct {
	Code    string
	Message string
	Class   error
}

func (e *Coded) Error() string { return e.Message }

// Unwrap returns the error class.
func (e *Coded) Unwrap() error { return e.Class }

// WithCode returns an error of class with an ARM code and a message.
func WithCode(class error, code, format string, a ...any) error {
	return &Coded{Code: code, Message: fmt.Sprintf(format, a...), Class: class}
}

// CodeOf returns the ARM code carried by err, or "".
func CodeOf(err error) string {
	var c *Coded
	if errors.As(err, &c) {
		return c.Code
	}
	return ""
}
