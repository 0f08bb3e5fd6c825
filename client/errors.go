package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// The error classes an *APIError unwraps to, by its HTTP status, for
// errors.Is outside this module: errors.Is(err, client.ErrNotFound) holds
// for a 404.
var (
	ErrInvalidArgument = errdefs.ErrInvalidArgument // 400
	ErrUnauthorized    = errdefs.ErrUnauthorized    // 401, 403
	ErrForbidden       = errdefs.ErrForbidden       // 403 (also ErrUnauthorized)
	ErrNotFound        = errdefs.ErrNotFound        // 404
	ErrConflict        = errdefs.ErrConflict        // 409
	ErrTooLarge        = errdefs.ErrTooLarge        // 413
	ErrUnavailable     = errdefs.ErrUnavailable     // 5xx, or the server not reachable
)

// APIError is an ARM error returned by the server, or the error of a failed
// long-running operation (StatusCode 0).
type APIError struct {
	StatusCode int
	Code       string
	Message    string
}

// Error reads "(Code) message", as az prints it.
func (e *APIError) Error() string { return fmt.Sprintf("(%s) %s", e.Code, e.Message) }

// Unwrap returns the error class of the HTTP status.
func (e *APIError) Unwrap() error { return classOf(e.StatusCode) }

func classOf(status int) error {
	switch {
	case status == http.StatusBadRequest:
		return errdefs.ErrInvalidArgument
	case status == http.StatusRequestEntityTooLarge:
		return errdefs.ErrTooLarge
	case status == http.StatusForbidden:
		return errdefs.ErrForbidden
	case status == http.StatusUnauthorized:
		return errdefs.ErrUnauthorized
	case status == http.StatusNotFound:
		return errdefs.ErrNotFound
	case status == http.StatusConflict:
		return errdefs.ErrConflict
	case status >= 500:
		return errdefs.ErrUnavailable
	}
	return nil
}

// NotRunningError says that nothing listens at the endpoint. It is of class
// ErrUnavailable.
type NotRunningError struct{ Endpoint string }

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("the Skiff server is not running at %s: start it with `skiff server` (or `make run`), or point --endpoint/SKIFF_ENDPOINT at one", e.Endpoint)
}

// Unwrap returns ErrUnavailable.
func (e *NotRunningError) Unwrap() error { return errdefs.ErrUnavailable }

// decodeError reads an ARM error envelope from a failed response.
func (c *Client) decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var env api.ErrorResponse
	_ = json.Unmarshal(b, &env)
	e := &APIError{StatusCode: resp.StatusCode, Code: env.Error.Code, Message: env.Error.Message}
	if e.Code == "" {
		e.Code = resp.Header.Get("x-ms-error-code")
	}
	if e.Code == "" {
		e.Code = strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "")
	}
	if e.Message == "" {
		e.Message = strings.TrimSpace(string(b))
		if e.Message == "" || strings.ContainsAny(e.Message, "\n{<") {
			e.Message = fmt.Sprintf("%s %s returned %s", resp.Request.Method, resp.Request.URL.Path, resp.Status)
		}
	}
	if resp.StatusCode == http.StatusUnauthorized && c.token == "" && c.creds == nil && c.tokenHint != "" {
		e.Message += " (no token: " + c.tokenHint + ")"
	}
	return e
}
