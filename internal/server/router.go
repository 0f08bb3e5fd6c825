package server

import (
	"net/http"
	"strings"
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
}

// router matches ARM paths. Literal segments compare case-insensitively, as
// ARM's do ("resourcegroups" and "resourceGroups").
type router struct {
	routes []route
}

func (rt *router) handle(method, pattern string, h handlerFunc) {
	rt.routes = append(rt.routes, route{method: method, segs: split(strings.ToLower(pattern)), handler: h})
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
