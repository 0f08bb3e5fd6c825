package agentapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// wireError is the body of the error envelope.
type wireError struct {
	// Class names the errdefs class ("" for none).
	Class string `json:"class,omitempty"`
	// Code is the ARM code of an errdefs.Coded error.
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// envelope is the error envelope: {"error":{…}}.
type envelope struct {
	Error wireError `json:"error"`
}

// classes names the error classes on the wire, with the status each is
// answered with, most specific first: an ErrTooLarge is an
// ErrInvalidArgument too.
var classes = []struct {
	name   string
	class  error
	status int
}{
	{"TooLarge", errdefs.ErrTooLarge, http.StatusRequestEntityTooLarge},
	{"InvalidArgument", errdefs.ErrInvalidArgument, http.StatusBadRequest},
	{"NotFound", errdefs.ErrNotFound, http.StatusNotFound},
	{"AlreadyExists", errdefs.ErrAlreadyExists, http.StatusConflict},
	{"Conflict", errdefs.ErrConflict, http.StatusConflict},
	{"Unauthorized", errdefs.ErrUnauthorized, http.StatusUnauthorized},
	{"Unavailable", errdefs.ErrUnavailable, http.StatusServiceUnavailable},
	{"NotImplemented", errdefs.ErrNotImplemented, http.StatusNotImplemented},
	{"DeadlineExceeded", context.DeadlineExceeded, http.StatusGatewayTimeout},
	{"Canceled", context.Canceled, http.StatusInternalServerError},
}

// toWire is err on the wire, and the status to answer it with.
func toWire(err error) (wireError, int) {
	we := wireError{Code: errdefs.CodeOf(err), Message: err.Error()}
	for _, c := range classes {
		if errors.Is(err, c.class) {
			we.Class = c.name
			return we, c.status
		}
	}
	return we, http.StatusInternalServerError
}

// err rebuilds the error: of the class, with the code and the message.
func (we *wireError) err() error {
	var class error
	for _, c := range classes {
		if c.name == we.Class {
			class = c.class
			break
		}
	}
	switch {
	case we.Code != "":
		return errdefs.WithCode(class, we.Code, "%s", we.Message)
	case class != nil:
		return &remoteError{msg: we.Message, class: class}
	}
	return errors.New(we.Message)
}

// remoteError is an error of a class without an ARM code, as the agent
// reported it.
type remoteError struct {
	msg   string
	class error
}

func (e *remoteError) Error() string { return e.msg }

// Unwrap returns the error class.
func (e *remoteError) Unwrap() error { return e.class }
