package server

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// handlerFunc is a handler that returns its error; serveHTTP turns errors
// into the ARM error envelope.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p params) error

// params are the path variables of a matched route.
type params map[string]string

type route struct {
	method  string
	segs    []string // lower-case literals, or "{name}"
	handler handlerFunc
	noAuth  bool
	// rawBody: the handler streams its body with its own size limit and
	// deadlines (see idleReader) instead of the JSON body limits.
	rawBody bool
}

// A routeOption changes how the router treats a route's requests.
type routeOption func(*route)

// rawBody marks a route whose body is a stream (an image archive), not a
// JSON document.
func rawBody(r *route) { r.rawBody = true }

// router matches ARM paths. Literal segments compare case-insensitively, as
// ARM's do ("resourcegroups" and "resourceGroups").
type router struct {
	routes []route
	// bodyTimeout is the time a client has to send a JSON body
	// (bodyReadTimeout; tests shorten it).
	bodyTimeout time.Duration
}

// handle adds a route. Before its handler runs, every request gets the
// bounds of bounded: a body limit and read deadline, and checked paging
// parameters.
func (rt *router) handle(method, pattern string, h handlerFunc, opts ...routeOption) {
	r := route{method: method, segs: split(strings.ToLower(pattern))}
	for _, o := range opts {
		o(&r)
	}
	r.handler = rt.bounded(r.rawBody, h)
	rt.routes = append(rt.routes, r)
}

// Bounds on a request, so that no client holds the server's memory or
// connections without end.
const (
	// bodyReadTimeout is the time a client has to send a JSON body (at
	// most maxBody bytes).
	bodyReadTimeout = time.Minute
	// streamIdleTimeout is the longest pause in a streamed upload.
	streamIdleTimeout = time.Minute
	// maxPageSize is the largest page ($top) of a list.
	maxPageSize = 100
)

// bounded wraps h: a JSON body is limited to maxBody bytes (413
// RequestContentTooLarge) and to bodyReadTimeout; $skiptoken and $top are
// checked (400) on every GET, so no handler sees a malformed one.
//
// The read deadline is set only when there is a body: net/http reads the
// connection in the background once the body is consumed (or at once when
// there is none), and a deadline hit by that read would cancel the
// request's context, ending a log stream. That background read clears the
// deadline itself when it starts.
func (rt *router) bounded(rawBody bool, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, req *http.Request, p params) error {
		if !rawBody && req.Body != nil && req.Body != http.NoBody {
			if req.ContentLength > maxBody {
				return errTooLarge()
			}
			req.Body = http.MaxBytesReader(w, req.Body, maxBody)
			timeout := rt.bodyTimeout
			if timeout <= 0 {
				timeout = bodyReadTimeout
			}
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
		}
		if req.Method == http.MethodGet {
			if _, err := pageOf(req); err != nil {
				return err
			}
		}
		return h(w, req, p)
	}
}

func errTooLarge() error {
	return errdefs.WithCode(errdefs.ErrTooLarge, "RequestContentTooLarge", "The request content size exceeds the maximum size of 4 MB.")
}

// page is the window of a list: $skiptoken, the offset a nextLink carries,
// and $top, the page size.
type page struct{ skip, top int }

// skipTokenRE: the offsets Skiff writes into nextLinks.
var skipTokenRE = regexp.MustCompile(`^[0-9]{1,9}$`)

// pageOf reads $skiptoken (default 0) and $top (default and maximum
// maxPageSize). A malformed one is refused with InvalidSkipToken or
// InvalidParameter rather than guessed at.
func pageOf(r *http.Request) (page, error) {
	q := r.URL.Query()
	pg := page{top: maxPageSize}
	if v, ok := q["$skiptoken"]; ok {
		if len(v) != 1 || !skipTokenRE.MatchString(v[0]) {
			return pg, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidSkipToken",
				"The $skiptoken '%s' is invalid. Use the nextLink of the previous page as it is.", clip(strings.Join(v, ",")))
		}
		pg.skip, _ = strconv.Atoi(v[0])
	}
	if v, ok := q["$top"]; ok {
		n, err := strconv.Atoi(strings.Join(v, ","))
		if err != nil || n < 1 || n > maxPageSize {
			return pg, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidParameter",
				"The value '%s' of the query parameter '$top' is invalid. It must be a whole number from 1 to %d.",
				clip(strings.Join(v, ",")), maxPageSize)
		}
		pg.top = n
	}
	return pg, nil
}

// clip shortens a client's value for an error message.
func clip(s string) string {
	const n = 64
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// idleReader reads a streamed request body, pushing the connection's read
// deadline streamIdleTimeout ahead before each read: an upload may take as
// long as it needs, but one that stalls is cut off.
type idleReader struct {
	r  io.Reader
	rc *http.ResponseController
}

func newIdleReader(w http.ResponseWriter, r io.Reader) *idleReader {
	return &idleReader{r: r, rc: http.NewResponseController(w)}
}

func (ir *idleReader) Read(p []byte) (int, error) {
	_ = ir.rc.SetReadDeadline(time.Now().Add(streamIdleTimeout))
	return ir.r.Read(p)
}

func split(path string) []string {
	path = strings.Trim(path, "/")
	if path == "" {
		return nil
	}
	return strings.Split(path, "/")
}

// match returns the route for method and path; methodOK reports whether
// the path matched with another method.
func (rt *router) match(method, path string) (*route, params, bool) {
	segs := split(path)
	pathMatched := false
	for i := range rt.routes {
		r := &rt.routes[i]
		if len(r.segs) != len(segs) {
			continue
		}
		p := params{}
		ok := true
		for j, s := range r.segs {
			if strings.HasPrefix(s, "{") {
				if segs[j] == "" {
					ok = false
					break
				}
				p[strings.Trim(s, "{}")] = segs[j]
				continue
			}
			if !strings.EqualFold(s, segs[j]) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		pathMatched = true
		if r.method == method {
			return r, p, true
		}
	}
	return nil, nil, pathMatched
}
