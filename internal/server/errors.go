package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// status maps an error class to an HTTP status and a default ARM code.
func status(err error) (int, string) {
	switch {
	case errdefs.Is(err, errdefs.ErrTooLarge): // before ErrInvalidArgument, which it is too
		return http.StatusRequestEntityTooLarge, "RequestContentTooLarge"
	case errdefs.Is(err, errdefs.ErrInvalidArgument):
		return http.StatusBadRequest, "InvalidRequest"
	case errdefs.Is(err, errdefs.ErrNotImplemented):
		return http.StatusBadRequest, "NotSupported"
	case errdefs.Is(err, errdefs.ErrNotFound):
		return http.StatusNotFound, "ResourceNotFound"
	case errdefs.Is(err, errdefs.ErrAlreadyExists):
		return http.StatusConflict, "Conflict"
	case errdefs.Is(err, errdefs.ErrConflict):
		return http.StatusConflict, "Conflict"
	case errdefs.Is(err, errdefs.ErrForbidden): // before ErrUnauthorized, which it is too
		return http.StatusForbidden, "AuthorizationFailed"
	case errdefs.Is(err, errdefs.ErrUnauthorized):
		return http.StatusUnauthorized, "AuthenticationFailed"
	case errdefs.Is(err, errdefs.ErrUnavailable):
		return http.StatusServiceUnavailable, "ServiceUnavailable"
	}
	return http.StatusInternalServerError, "InternalServerError"
}

// writeError writes the ARM error envelope. 5xx are logged as errors, 4xx
// at debug: the client has them already.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code, arm := status(err)
	if c := errdefs.CodeOf(err); c != "" {
		arm = c
	}
	msg := err.Error()
	if code >= 500 {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		var coded *errdefs.Coded
		if !errors.As(err, &coded) {
			msg = "The server could not complete the request: " + msg
		}
	} else {
		log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	}
	w.Header().Set("x-ms-error-code", arm)
	writeJSON(w, code, api.ErrorResponse{Error: api.ErrorBody{Code: arm, Message: msg}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}
