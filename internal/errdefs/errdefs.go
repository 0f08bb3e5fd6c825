// Package errdefs holds Skiff's error classes. Packages wrap them with %w;
// only the edges (HTTP server, CLI) translate them into status codes, ARM
// error codes and exit codes.
package errdefs

import "errors"

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
)

// Is reports whether err is of class target.
func Is(err, target error) bool { return errors.Is(err, target) }
