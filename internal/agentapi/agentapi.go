// Package agentapi carries hostapi.Host over the network. NewHandler serves
// a host agent's Host as an authenticated HTTP API; NewClient is a
// hostapi.Host that calls one. The control plane (package server) reaches an
// agent on another host through the client exactly as it reaches the
// in-process agent: the same return values and the same errdefs classes.
//
// # Routes
//
// Every route is under /v1. A group is named by its runtime id (cg-…), a
// container by its name in the group; both are escaped as path segments.
//
//	GET    /v1/groups                               {"count":n}             GroupCount
//	GET    /v1/groups/{id}/stats                    hostapi.GroupStats      Stats
//	GET    /v1/groups/{id}/containers/{name}/logs   the log (text/plain)    Logs
//	GET    /v1/groups/{id}/containers/{name}/exec   a websocket             Exec
//	POST   /v1/ports/check    body []api.Port       204                     CheckPorts
//	DELETE /v1/shares/{account}/{dir}               204                     RemoveShare
//	GET    /v1/images                               []hostapi.ImageSummary  Images().List
//	GET    /v1/image?ref=R                          hostapi.Image           Images().Get
//	DELETE /v1/image?ref=R                          204                     Images().Remove
//	POST   /v1/images/pull    body (below)          NDJSON (below)          Images().Pull
//	PUT    /v1/images/import  body the tarball      []hostapi.Image         Images().Import
//
// Bodies are the JSON encoding of the hostapi and api types (hostapi.Image,
// ImageSummary and ImageProgress have no tags: their keys are the Go field
// names).
//
// # Framing
//
// Logs takes hostapi.LogOptions in the query: tail (a whole number,
// negative for all; all when absent), timestamps, follow, previous (true or
// false), since (RFC 3339 with nanoseconds), limitBytes. The answer's status
// is written at the first byte of the log or when Logs returns, so an error
// found before the first byte (no such group: 404) is an error response; an
// error after it comes in the Skiff-Error trailer, as an error envelope.
// Every write of Logs is flushed, so a follow delivers lines as they come;
// the request's context is Logs' context, so a client that goes ends it.
//
// A pull's body is {"ref":R,"credentials":[api.ImageRegistryCredential],
// "progress":true if the caller wants progress}. It answers 200 at once
// with one JSON object a line (NDJSON):
// {"progress":hostapi.ImageProgress} while it pulls, then a last line,
// {"image":hostapi.Image} or {"error":{…}}. An import streams the tarball as
// the body (Expect: 100-continue): the agent spools it to
// HandlerOptions.TempDir, refuses more than MaxImportSize bytes (413),
// imports the spool and removes it.
//
// An exec is a websocket. The client's first frame is a text frame, the
// control message {"type":"start","command":[…],"tty":…,"rows":…,"cols":…,
// "stdin":…,"stdout":…,"stderr":…,"resize":…} (which streams the caller
// gave). Binary frames carry the streams, their first byte naming the
// stream: 0 stdin (client to agent), 1 stdout and 2 stderr (agent to
// client). The other text frames are control messages: {"type":"resize",
// "rows","cols"} and {"type":"closeStdin"} (stdin's end: the command's
// stdin is closed, its output goes on) from the client; {"type":"exit",
// "exitCode":n,"error":{…}} from the agent, last, before its close frame.
// The agent pings; either side drops a peer silent for a minute. The
// command runs on the upgrade request's context: it is killed when the
// client's context ends (the client closes the socket) or the connection
// drops.
//
// # Errors
//
// A refusal is a JSON envelope {"error":{"class":C,"code":A,"message":M}}:
// C names the errdefs class (NotFound, Conflict, InvalidArgument, TooLarge,
// …; none for an error of no class), A the ARM code errdefs.WithCode gave it
// (if any), M the error's text. The HTTP status follows the class. The
// client rebuilds an error of the same class, code and message. A failure
// to reach the agent (refused, reset, a response that is not the agent's)
// is errdefs.ErrUnavailable with a message naming the agent's URL; the end
// of the caller's context is the context's error.
//
// # Auth
//
// Every request, the websocket upgrade included, carries
// "Authorization: Bearer <token>"; the agent compares the token in constant
// time and answers 401 with an error envelope to a request without it or
// with another one, before it looks at the route.
package agentapi

import (
	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/hostapi"
)

// The API's version prefix.
const prefix = "/v1"

// errorTrailer is the trailer of a log stream that failed after its first
// byte: an error envelope.
const errorTrailer = "Skiff-Error"

// Media types.
const (
	jsonType   = "application/json"
	ndjsonType = "application/x-ndjson"
	tarType    = "application/x-tar"
)

// countBody is the answer of GET /v1/groups.
type countBody struct {
	Count int `json:"count"`
}

// pullRequest is the body of POST /v1/images/pull.
type pullRequest struct {
	Ref         string                        `json:"ref"`
	Credentials []api.ImageRegistryCredential `json:"credentials,omitempty"`
	// Progress asks for progress lines (the caller gave a progress func).
	Progress bool `json:"progress,omitempty"`
}

// pullLine is one line of a pull's answer: progress, or the last line with
// the image or the error.
type pullLine struct {
	Progress *hostapi.ImageProgress `json:"progress,omitempty"`
	Image    *hostapi.Image         `json:"image,omitempty"`
	Error    *wireError             `json:"error,omitempty"`
}

// Exec control message types.
const (
	msgStart      = "start"
	msgResize     = "resize"
	msgCloseStdin = "closeStdin"
	msgExit       = "exit"
)

// Exec stream ids: the first byte of a binary frame.
const (
	streamStdin  byte = 0
	streamStdout byte = 1
	streamStderr byte = 2
)

// control is an exec control message (a text frame); Type says which
// fields it uses.
type control struct {
	Type string `json:"type"`
	// start
	Command []string `json:"command,omitempty"`
	TTY     bool     `json:"tty,omitempty"`
	Stdin   bool     `json:"stdin,omitempty"`
	Stdout  bool     `json:"stdout,omitempty"`
	Stderr  bool     `json:"stderr,omitempty"`
	Resize  bool     `json:"resize,omitempty"`
	// start and resize
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
	// exit
	ExitCode int        `json:"exitCode,omitempty"`
	Error    *wireError `json:"error,omitempty"`
}
