// Package clitest holds a stand-in for Skiff's server in the CLI's tests:
// an httptest server that speaks the HTTP contract of docs/api.md for the
// calls the CLI makes (auth, api-version, resource groups, container groups
// with long-running operations, logs with follow, exec websockets, the
// image routes), keeps what it is sent in memory and records every request.
//
// It is not the real server (internal/server, written separately); the
// CLI's end-to-end tests against `skiff server` come when that exists.
package clitest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/skiff-sh/skiff/api"
)

// Defaults of a new Server.
const (
	Token        = "test-token"
	Subscription = "00000000-0000-0000-0000-00000000c0de"
	GroupIP      = "10.201.0.7"
	ExecPassword = "exec-pw"
)

// Request is one recorded request.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
}

// Server is the stand-in server.
type Server struct {
	*httptest.Server

	// PollsBeforeDone is how many times an operation answers InProgress
	// before its final status.
	PollsBeforeDone int
	// FailPut, when set, makes the operation of every container group PUT
	// end Failed with this error.
	FailPut *api.ErrorBody
	// Override, when set, is asked first; it returns true when it answered.
	Override func(w http.ResponseWriter, r *http.Request) bool
	// Logs is the log content of every container.
	Logs string
	// FollowLogs, when set, serves logs?follow=true instead of Logs.
	FollowLogs func(w http.ResponseWriter, r *http.Request)
	// ExecSession, when set, serves the exec and attach websockets after the
	// password was checked (frames it reads are not recorded); the default writes "hello from exec\r\n", reads
	// frames until one holds ^D and closes with "exit code 3".
	ExecSession func(conn *websocket.Conn)

	t        testing.TB
	mu       sync.Mutex
	requests []Request
	frames   []Frame
	groups   map[string]map[string]any // lower(rg) → resource group
	cgs      map[string]map[string]any // lower(rg)/lower(name) → container group as PUT
	ops      map[string]*operation
	nextOp   int
}

// Frame is a websocket message the server received.
type Frame struct {
	Type int
	Data string
}

type operation struct {
	polls int
	fail  *api.ErrorBody
}

// New starts a Server; it is closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{
		t:      t,
		groups: map[string]map[string]any{},
		cgs:    map[string]map[string]any{},
		ops:    map[string]*operation{},
		Logs:   "line 1\nline 2\n",
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Requests returns the requests received so far, except operation polls
// when skipPolls is set.
func (s *Server) Requests(skipPolls bool) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if skipPolls && strings.Contains(strings.ToLower(r.Path), "/operations/") {
			continue
		}
		out = append(out, r)
	}
	return out
}

// Last returns the last request with this method whose path ends with
// suffix (case-insensitively), or fails the test.
func (s *Server) Last(method, suffix string) Request {
	s.t.Helper()
	reqs := s.Requests(false)
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Method == method && strings.HasSuffix(strings.ToLower(reqs[i].Path), strings.ToLower(suffix)) {
			return reqs[i]
		}
	}
	s.t.Fatalf("no %s request to …%s; got %v", method, suffix, reqs)
	return Request{}
}

// Frames returns the websocket frames received, the password first.
func (s *Server) Frames() []Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Frame(nil), s.frames...)
}

// AddGroup creates a resource group.
func (s *Server) AddGroup(name, location string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[strings.ToLower(name)] = rgJSON(name, location, nil)
}

// AddContainerGroup stores a container group as if it had been PUT (body
// is the ARM JSON).
func (s *Server) AddContainerGroup(rg, body string) {
	var cg map[string]any
	if err := json.Unmarshal([]byte(body), &cg); err != nil {
		s.t.Fatalf("AddContainerGroup: %v", err)
	}
	name, _ := cg["name"].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	cg["id"] = cgID(rg, name)
	cg["type"] = api.ResourceType
	s.cgs[strings.ToLower(rg)+"/"+strings.ToLower(name)] = cg
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
	s.mu.Unlock()
	r.Body = io.NopCloser(strings.NewReader(string(body)))

	if strings.HasPrefix(r.URL.Path, "/exec/") {
		s.serveWebsocket(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+Token {
		writeError(w, http.StatusUnauthorized, "AuthenticationFailed", "the bearer token is missing or wrong")
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		writeError(w, http.StatusBadRequest, "MissingApiVersionParameter", "the api-version query parameter is required")
		return
	}
	if s.Override != nil && s.Override(w, r) {
		return
	}
	s.route(w, r)
}

// match compares path segments with a pattern whose "*" segments match
// anything; literals compare case-insensitively. It returns the wildcards.
func match(path, pattern string) ([]string, bool) {
	ps := strings.Split(strings.Trim(path, "/"), "/")
	pp := strings.Split(strings.Trim(pattern, "/"), "/")
	if len(ps) != len(pp) {
		return nil, false
	}
	var vars []string
	for i := range pp {
		switch {
		case pp[i] == "*":
			vars = append(vars, ps[i])
		case !strings.EqualFold(pp[i], ps[i]):
			return nil, false
		}
	}
	return vars, true
}

const (
	pSub   = "/subscriptions/*"
	pRG    = pSub + "/resourcegroups/*"
	pCGs   = pRG + "/providers/Microsoft.ContainerInstance/containerGroups"
	pCG    = pCGs + "/*"
	pCont  = pCG + "/containers/*"
	pLoc   = pSub + "/providers/Microsoft.ContainerInstance/locations/*"
	pAllCG = pSub + "/providers/Microsoft.ContainerInstance/containerGroups"
)

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	p, m := r.URL.Path, r.Method
	if _, ok := match(p, "/subscriptions"); ok && m == http.MethodGet {
		writeJSON(w, http.StatusOK, map[string]any{"value": []any{subJSON()}})
		return
	}
	if v, ok := match(p, pSub); ok && m == http.MethodGet {
		if v[0] != Subscription {
			writeError(w, http.StatusNotFound, "SubscriptionNotFound", fmt.Sprintf("The subscription '%s' could not be found.", v[0]))
			return
		}
		writeJSON(w, http.StatusOK, subJSON())
		return
	}
	if v, ok := match(p, pSub+"/*"); ok && v[0] != Subscription {
		writeError(w, http.StatusNotFound, "SubscriptionNotFound", fmt.Sprintf("The subscription '%s' could not be found.", v[0]))
		return
	}
	if v, ok := match(p, pLoc+"/operations/*"); ok && m == http.MethodGet {
		s.serveOperation(w, v[2])
		return
	}
	if _, ok := match(p, pSub+"/resourcegroups"); ok && m == http.MethodGet {
		s.mu.Lock()
		list := []any{}
		for _, k := range slices.Sorted(maps.Keys(s.groups)) {
			list = append(list, s.groups[k])
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"value": list})
		return
	}
	if v, ok := match(p, pRG); ok {
		s.serveGroup(w, r, v[1])
		return
	}
	if _, ok := match(p, pAllCG); ok && m == http.MethodGet {
		s.listCG(w, "")
		return
	}
	if v, ok := match(p, pCGs); ok && m == http.MethodGet {
		s.listCG(w, v[1])
		return
	}
	if v, ok := match(p, pCG); ok {
		s.serveCG(w, r, v[1], v[2])
		return
	}
	if v, ok := match(p, pCG+"/*"); ok && m == http.MethodPost {
		s.serveAction(w, r, v[1], v[2], strings.ToLower(v[3]))
		return
	}
	if v, ok := match(p, pCont+"/logs"); ok && m == http.MethodGet {
		if !s.exists(v[1], v[2]) {
			writeError(w, http.StatusNotFound, "ResourceNotFound", "container group not found")
			return
		}
		if r.URL.Query().Get("follow") == "true" && s.FollowLogs != nil {
			s.FollowLogs(w, r)
			return
		}
		writeJSON(w, http.StatusOK, api.Logs{Content: s.Logs})
		return
	}
	if v, ok := match(p, pCont+"/*"); ok && m == http.MethodPost && (v[4] == "exec" || v[4] == "attach") {
		writeJSON(w, http.StatusOK, api.ExecResponse{WebSocketURI: "ws" + strings.TrimPrefix(s.URL, "http") + "/exec/" + v[4], Password: ExecPassword})
		return
	}
	if _, ok := match(p, pLoc+"/cachedImages"); ok && m == http.MethodGet {
		writeJSON(w, http.StatusOK, map[string]any{"value": []any{
			map[string]any{"osType": "Linux", "image": "busybox:local"},
			map[string]any{"osType": "Linux", "image": "nginx:latest"},
		}})
		return
	}
	if _, ok := match(p, pLoc+"/images/pull"); ok && m == http.MethodPost {
		var req struct{ Image string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		writeJSON(w, http.StatusOK, map[string]any{"image": req.Image, "digest": "sha256:abc"})
		return
	}
	if _, ok := match(p, pLoc+"/images/import"); ok && m == http.MethodPost {
		writeJSON(w, http.StatusOK, map[string]any{"value": []any{map[string]any{"image": "busybox:local", "digest": "sha256:abc"}}})
		return
	}
	if _, ok := match(p, pLoc+"/images"); ok && m == http.MethodDelete {
		if r.URL.Query().Get("image") == "missing:1" {
			writeError(w, http.StatusNotFound, "ImageNotFound", "image missing:1 is not on this host")
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeError(w, http.StatusNotFound, "NotFound", "no route for "+m+" "+p)
}

func (s *Server) serveGroup(w http.ResponseWriter, r *http.Request, name string) {
	key := strings.ToLower(name)
	s.mu.Lock()
	g, ok := s.groups[key]
	s.mu.Unlock()
	switch r.Method {
	case http.MethodPut:
		var in api.ResourceGroup
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Location == "" {
			writeError(w, http.StatusBadRequest, "LocationRequired", "The location property is required for this definition.")
			return
		}
		g = rgJSON(name, in.Location, in.Tags)
		s.mu.Lock()
		s.groups[key] = g
		s.mu.Unlock()
		status := http.StatusCreated
		if ok {
			status = http.StatusOK
		}
		writeJSON(w, status, g)
	case http.MethodGet, http.MethodHead:
		if !ok {
			writeError(w, http.StatusNotFound, "ResourceGroupNotFound", fmt.Sprintf("Resource group '%s' could not be found.", name))
			return
		}
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, g)
	case http.MethodDelete:
		if !ok {
			writeError(w, http.StatusNotFound, "ResourceGroupNotFound", fmt.Sprintf("Resource group '%s' could not be found.", name))
			return
		}
		s.mu.Lock()
		delete(s.groups, key)
		s.mu.Unlock()
		s.accepted(w, "eastus", nil)
	default:
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
	}
}

func (s *Server) exists(rg, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.cgs[strings.ToLower(rg)+"/"+strings.ToLower(name)]
	return ok
}

func (s *Server) serveCG(w http.ResponseWriter, r *http.Request, rg, name string) {
	key := strings.ToLower(rg) + "/" + strings.ToLower(name)
	s.mu.Lock()
	cg, ok := s.cgs[key]
	_, rgOK := s.groups[strings.ToLower(rg)]
	s.mu.Unlock()
	switch r.Method {
	case http.MethodPut:
		if !rgOK {
			writeError(w, http.StatusNotFound, "ResourceGroupNotFound", fmt.Sprintf("Resource group '%s' could not be found.", rg))
			return
		}
		var in map[string]any
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			writeError(w, http.StatusBadRequest, "InvalidRequestContent", err.Error())
			return
		}
		in["id"], in["type"] = cgID(rg, name), api.ResourceType
		s.mu.Lock()
		s.cgs[key] = in
		s.mu.Unlock()
		out := view(in, "Pending", false)
		loc, _ := in["location"].(string)
		s.startOp(w, loc, s.FailPut)
		status := http.StatusCreated
		if ok {
			status = http.StatusOK
		}
		writeJSON(w, status, out)
	case http.MethodGet:
		if !ok {
			writeError(w, http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("The Resource 'Microsoft.ContainerInstance/containerGroups/%s' under resource group '%s' was not found.", name, rg))
			return
		}
		writeJSON(w, http.StatusOK, view(cg, "Succeeded", true))
	case http.MethodDelete:
		if !ok {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		s.mu.Lock()
		delete(s.cgs, key)
		s.mu.Unlock()
		loc, _ := cg["location"].(string)
		s.accepted(w, loc, nil)
	default:
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
	}
}

func (s *Server) serveAction(w http.ResponseWriter, r *http.Request, rg, name, action string) {
	if !s.exists(rg, name) {
		writeError(w, http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("container group %s not found", name))
		return
	}
	switch action {
	case "stop":
		w.WriteHeader(http.StatusNoContent)
	case "start", "restart":
		s.accepted(w, "eastus", nil)
	default:
		writeError(w, http.StatusNotFound, "NotFound", "no action "+action)
	}
}

func (s *Server) listCG(w http.ResponseWriter, rg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := []any{}
	for _, k := range slices.Sorted(maps.Keys(s.cgs)) {
		if rg == "" || strings.HasPrefix(k, strings.ToLower(rg)+"/") {
			list = append(list, view(s.cgs[k], "Succeeded", false))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": list})
}

// startOp sets the Azure-AsyncOperation and Retry-After headers of a new
// operation.
func (s *Server) startOp(w http.ResponseWriter, loc string, fail *api.ErrorBody) {
	s.mu.Lock()
	s.nextOp++
	id := fmt.Sprintf("op-%d", s.nextOp)
	s.ops[id] = &operation{fail: fail}
	s.mu.Unlock()
	if loc == "" {
		loc = "eastus"
	}
	w.Header().Set("Azure-AsyncOperation", fmt.Sprintf("%s/subscriptions/%s/providers/Microsoft.ContainerInstance/locations/%s/operations/%s?api-version=2023-05-01", s.URL, Subscription, loc, id))
	w.Header().Set("Retry-After", "0")
}

func (s *Server) accepted(w http.ResponseWriter, loc string, fail *api.ErrorBody) {
	s.startOp(w, loc, fail)
	w.WriteHeader(http.StatusAccepted)
}

var events = []api.Event{
	{Count: 1, Name: "Pulling", Message: `pulling image "busybox:local"`, Type: api.EventNormal, FirstTimestamp: "2026-01-01T00:00:00Z", LastTimestamp: "2026-01-01T00:00:00Z"},
	{Count: 1, Name: "Pulled", Message: `Successfully pulled image "busybox:local"`, Type: api.EventNormal, FirstTimestamp: "2026-01-01T00:00:01Z", LastTimestamp: "2026-01-01T00:00:01Z"},
	{Count: 1, Name: "Started", Message: "Started container", Type: api.EventNormal, FirstTimestamp: "2026-01-01T00:00:02Z", LastTimestamp: "2026-01-01T00:00:02Z"},
}

func (s *Server) serveOperation(w http.ResponseWriter, id string) {
	s.mu.Lock()
	op, ok := s.ops[id]
	var polls int
	if ok {
		op.polls++
		polls = op.polls
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "OperationNotFound", "no operation "+id)
		return
	}
	st := api.OperationStatus{ID: id, Status: api.OperationInProgress, StartTime: "2026-01-01T00:00:00Z"}
	n := min(polls, len(events))
	if polls > s.PollsBeforeDone {
		st.Status, st.EndTime = api.OperationSucceeded, "2026-01-01T00:00:03Z"
		n = len(events)
		if op.fail != nil {
			st.Status, st.Error, n = api.OperationFailed, op.fail, 1
		}
	}
	st.Properties = &api.OperationStatusDetails{Events: events[:n]}
	w.Header().Set("Retry-After", "0")
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) serveWebsocket(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	kind, data, err := conn.ReadMessage()
	if err != nil {
		return
	}
	s.record(kind, data)
	if kind != websocket.TextMessage || string(data) != ExecPassword {
		_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "wrong password"))
		return
	}
	if s.ExecSession != nil {
		s.ExecSession(conn)
		return
	}
	_ = conn.WriteMessage(websocket.BinaryMessage, []byte("hello from exec\r\n"))
	for {
		kind, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		s.record(kind, data)
		if kind == websocket.BinaryMessage && strings.Contains(string(data), "\x04") {
			break
		}
	}
	_ = conn.WriteMessage(websocket.BinaryMessage, []byte("bye\r\n"))
	_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "exit code 3"))
}

func (s *Server) record(kind int, data []byte) {
	s.mu.Lock()
	s.frames = append(s.frames, Frame{Type: kind, Data: string(data)})
	s.mu.Unlock()
}

func subJSON() api.Subscription {
	return api.Subscription{ID: "/subscriptions/" + Subscription, SubscriptionID: Subscription, DisplayName: "Skiff", State: "Enabled"}
}

func rgJSON(name, loc string, tags map[string]string) map[string]any {
	g := map[string]any{
		"id": "/subscriptions/" + Subscription + "/resourceGroups/" + name, "name": name,
		"type": "Microsoft.Resources/resourceGroups", "location": loc,
		"properties": map[string]any{"provisioningState": "Succeeded"},
	}
	if tags != nil {
		g["tags"] = tags
	}
	return g
}

func cgID(rg, name string) string {
	return "/subscriptions/" + Subscription + "/resourceGroups/" + rg + "/providers/Microsoft.ContainerInstance/containerGroups/" + name
}

// view is a stored group as a read returns it: redacted, with a state, and
// with instance views and an IP when full.
func view(stored map[string]any, state string, full bool) map[string]any {
	b, _ := json.Marshal(stored)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	delete(out, "apiVersion")
	props, _ := out["properties"].(map[string]any)
	if props == nil {
		props = map[string]any{}
		out["properties"] = props
	}
	props["provisioningState"] = state
	props["sku"] = "Standard"
	if ip, ok := props["ipAddress"].(map[string]any); ok && state == "Succeeded" {
		ip["ip"] = GroupIP
	}
	for _, c := range list(props["containers"]) {
		cp, _ := c.(map[string]any)["properties"].(map[string]any)
		for _, e := range list(cp["environmentVariables"]) {
			delete(e.(map[string]any), "secureValue")
		}
		if full {
			cp["instanceView"] = map[string]any{"restartCount": 0, "currentState": map[string]any{"state": "Running", "startTime": "2026-01-01T00:00:02Z"}, "events": events}
		}
	}
	for _, c := range list(props["imageRegistryCredentials"]) {
		delete(c.(map[string]any), "password")
	}
	for _, v := range list(props["volumes"]) {
		vm := v.(map[string]any)
		if af, ok := vm["azureFile"].(map[string]any); ok {
			delete(af, "storageAccountKey")
		}
		if _, ok := vm["secret"]; ok {
			vm["secret"] = map[string]any{}
		}
	}
	if full {
		props["instanceView"] = map[string]any{"state": "Running", "events": []any{}}
	}
	return out
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("x-ms-error-code", code)
	writeJSON(w, status, api.ErrorResponse{Error: api.ErrorBody{Code: code, Message: msg}})
}
