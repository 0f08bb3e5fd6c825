package server

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// groupJSON is a valid container group body; mutate changes its
// properties (as decoded JSON) before it is encoded.
func groupJSON(mutate func(p, c map[string]any)) string {
	c := map[string]any{
		"image": "busybox", "command": []string{"sleep", "3600"},
		"resources": map[string]any{"requests": map[string]any{"cpu": 1, "memoryInGB": 1}},
		"ports":     []map[string]any{{"port": 80}},
	}
	p := map[string]any{"osType": "Linux", "containers": []any{map[string]any{"name": "app", "properties": c}}}
	if mutate != nil {
		mutate(p, c)
	}
	b, _ := json.Marshal(map[string]any{"location": "local", "properties": p})
	return string(b)
}

func manyTags(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("t%d", i)] = "v"
	}
	return m
}

// Every bound: a clear 4xx with ARM's envelope and code, and nothing
// stored (a GET of the group still answers 404).
func TestBoundsRefuseWithoutStateChange(t *testing.T) {
	e := newTestEnv(t, nil)
	big := strings.Repeat("x", 5<<20)
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"body over 4 MiB", "PUT", e.cgPath("b1"), `{"location":"local","properties":{"x":"` + big + `"}}`, 413, "RequestContentTooLarge"},
		{"chunked body over 4 MiB", "PUT", e.cgPath("b2"), io.MultiReader(strings.NewReader(`{"x":"`), strings.NewReader(big)), 413, "RequestContentTooLarge"},
		{"51 tags", "PUT", e.cgPath("b3"), strings.Replace(groupJSON(nil), `"location"`, `"tags":`+mustJSON(manyTags(51))+`,"location"`, 1), 400, "InvalidTag"},
		{"tag value 257", "PUT", e.cgPath("b4"), strings.Replace(groupJSON(nil), `"location"`, `"tags":{"k":"`+strings.Repeat("v", 257)+`"},"location"`, 1), 400, "InvalidTag"},
		{"1001 env vars", "PUT", e.cgPath("b5"), groupJSON(func(_, c map[string]any) {
			var env []map[string]any
			for i := range 1001 {
				env = append(env, map[string]any{"name": fmt.Sprintf("E%d", i), "value": "v"})
			}
			c["environmentVariables"] = env
		}), 400, "TooManyEnvironmentVariables"},
		{"env value over 128 KiB", "PUT", e.cgPath("b6"), groupJSON(func(_, c map[string]any) {
			c["environmentVariables"] = []map[string]any{{"name": "E", "secureValue": strings.Repeat("s", 200<<10)}}
		}), 400, "InvalidEnvironmentVariable"},
		{"1001 command args", "PUT", e.cgPath("b7"), groupJSON(func(_, c map[string]any) {
			c["command"] = strings.Fields(strings.Repeat("a ", 1001))
		}), 400, "TooManyCommandArguments"},
		{"101 container ports", "PUT", e.cgPath("b8"), groupJSON(func(_, c map[string]any) {
			var ports []map[string]any
			for i := range 101 {
				ports = append(ports, map[string]any{"port": 1000 + i})
			}
			c["ports"] = ports
		}), 400, "TooManyContainerPorts"},
		{"six published ports", "PUT", e.cgPath("b9"), groupJSON(func(p, c map[string]any) {
			var ports []map[string]any
			for i := range 6 {
				ports = append(ports, map[string]any{"port": 8000 + i})
			}
			c["ports"] = ports
			p["ipAddress"] = map[string]any{"type": "Public", "ports": ports}
		}), 400, "TooManyIpAddressPorts"},
		{"resource group with 51 tags", "PUT", "/subscriptions/" + e.sub + "/resourceGroups/rg2",
			`{"location":"local","tags":` + mustJSON(manyTags(51)) + `}`, 400, "InvalidTag"},
	}
	for _, c := range cases {
		code, arm, body := e.do(t, c.method, c.path, c.body)
		if code != c.status || arm != c.code {
			t.Errorf("%s: got %d %s, want %d %s: %.300s", c.name, code, arm, c.status, c.code, body)
		}
		if code, _, _ := e.do(t, "GET", c.path, nil); code != 404 {
			t.Errorf("%s: refused, but a GET answers %d", c.name, code)
		}
	}
	// The server still answers on the same client after the 413s.
	if code, _, body := e.do(t, "GET", e.rgPath(), nil); code != 200 {
		t.Fatalf("after the refusals: %d %s", code, body)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// A tags PATCH beyond ARM's limits changes nothing.
func TestPatchTagsBounds(t *testing.T) {
	e := newTestEnv(t, nil)
	if code, _, body := e.do(t, "PUT", e.cgPath("g"), strings.Replace(groupJSON(nil), `"location"`, `"tags":{"a":"1"},"location"`, 1)); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	for _, patch := range []string{`{"tags":` + mustJSON(manyTags(51)) + `}`, `{"tags":{"a/b":"1"}}`, `{"tags":{"` + strings.Repeat("n", 513) + `":"1"}}`} {
		code, arm, body := e.do(t, "PATCH", e.cgPath("g"), patch)
		if code != 400 || !strings.HasPrefix(arm, "InvalidTag") {
			t.Errorf("patch %.60s: %d %s %.200s", patch, code, arm, body)
		}
	}
	var got struct{ Tags map[string]string }
	_, _, body := e.do(t, "GET", e.cgPath("g"), nil)
	if err := json.Unmarshal(body, &got); err != nil || len(got.Tags) != 1 || got.Tags["a"] != "1" {
		t.Fatalf("tags after refused patches: %s", body)
	}
}

// $skiptoken and $top: malformed ones (a negative one reset the connection
// with a panic) are a 400 on every GET, and paging still walks the list.
func TestListPaging(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, n := range []string{"g1", "g2", "g3"} {
		if code, _, body := e.do(t, "PUT", e.cgPath(n), groupJSON(func(_, c map[string]any) { delete(c, "ports") })); code != 201 {
			t.Fatalf("create %s: %d %s", n, code, body)
		}
	}
	list := e.rgPath() + "/providers/Microsoft.ContainerInstance/containerGroups"
	subList := "/subscriptions/" + e.sub + "/providers/Microsoft.ContainerInstance/containerGroups"
	for _, q := range []struct{ query, code string }{
		{"$skiptoken=-1", "InvalidSkipToken"},
		{"$skiptoken=abc", "InvalidSkipToken"},
		{"$skiptoken=99999999999999999999", "InvalidSkipToken"},
		{"$skiptoken=1&$skiptoken=2", "InvalidSkipToken"},
		{"$top=0", "InvalidParameter"},
		{"$top=-3", "InvalidParameter"},
		{"$top=101", "InvalidParameter"},
		{"$top=1e3", "InvalidParameter"},
	} {
		for _, p := range []string{list, subList, "/subscriptions/" + e.sub + "/resourcegroups", "/subscriptions"} {
			code, arm, body := e.do(t, "GET", p+"?"+q.query, nil)
			if code != 400 || arm != q.code {
				t.Errorf("GET %s?%s: %d %s %.200s", p, q.query, code, arm, body)
			}
		}
	}
	// Past the end: an empty page, no nextLink.
	code, _, body := e.do(t, "GET", list+"?$skiptoken=999999999", nil)
	if code != 200 || strings.Contains(string(body), "nextLink") || !strings.Contains(string(body), `"value":[]`) {
		t.Errorf("past the end: %d %s", code, body)
	}
	// Pages of two: the nextLink leads to the third group.
	var names []string
	next := list + "?$top=2"
	for i := 0; next != "" && i < 5; i++ {
		code, _, body := e.do(t, "GET", next, nil)
		if code != 200 {
			t.Fatalf("page %d: %d %s", i, code, body)
		}
		var page struct {
			Value    []struct{ Name string }
			NextLink string
		}
		json.Unmarshal(body, &page)
		for _, v := range page.Value {
			names = append(names, v.Name)
		}
		next = ""
		if page.NextLink != "" {
			u, _ := url.Parse(page.NextLink)
			q := u.Query()
			q.Del("api-version")
			next = u.Path + "?" + q.Encode()
		}
	}
	if strings.Join(names, ",") != "g1,g2,g3" {
		t.Errorf("paged names %v", names)
	}
}

// tail: negative, huge or not a number is a 400.
func TestLogsTailBounds(t *testing.T) {
	e := newTestEnv(t, nil)
	if code, _, body := e.do(t, "PUT", e.cgPath("g"), groupJSON(nil)); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	logs := e.cgPath("g") + "/containers/app/logs"
	for _, tail := range []string{"-1", "2147483648", "99999999999999999999", "abc", "1.5"} {
		if code, arm, body := e.do(t, "GET", logs+"?tail="+tail, nil); code != 400 || arm != "InvalidParameter" {
			t.Errorf("tail=%s: %d %s %.200s", tail, code, arm, body)
		}
	}
	if code, _, body := e.do(t, "GET", logs+"?tail=2147483647", nil); code != 200 {
		t.Errorf("tail=MaxInt32: %d %s", code, body)
	}
}

// An image archive above --max-image-import-size is a 413, whether its
// size is announced or not, and nothing is imported.
func TestImportSizeBound(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxImageImportSize = 1 << 10 })
	imp := "/subscriptions/" + e.sub + "/providers/Microsoft.ContainerInstance/locations/local/images/import"
	for name, body := range map[string]any{
		"with length": strings.Repeat("x", 4<<10),
		"chunked":     io.MultiReader(strings.NewReader(strings.Repeat("x", 1<<10)), strings.NewReader(strings.Repeat("y", 3<<10))),
	} {
		code, arm, resp := e.do(t, "POST", imp, body)
		if code != 413 || arm != "RequestContentTooLarge" || !strings.Contains(string(resp), "max-image-import-size") {
			t.Errorf("%s: %d %s %s", name, code, arm, resp)
		}
	}
	// Within the bound, a bad archive is a 400, not a 413.
	if code, arm, resp := e.do(t, "POST", imp, "not a tar"); code != 400 || arm != "InvalidImageArchive" {
		t.Errorf("small bad archive: %d %s %s", code, arm, resp)
	}
	_, _, resp := e.do(t, "GET", "/subscriptions/"+e.sub+"/providers/Microsoft.ContainerInstance/locations/local/cachedImages", nil)
	if !strings.Contains(string(resp), `"value":[]`) {
		t.Errorf("cached images after refused imports: %s", resp)
	}
}

// A client that sends a JSON body slower than the server allows is cut off
// with a 400 (here with a 1 s deadline); a GET that outlives the deadline
// is not (it is only armed when there is a body).
func TestBodyReadDeadline(t *testing.T) {
	e := newTestEnv(t, nil)
	e.srv.routes.bodyTimeout = time.Second
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		pw.Write([]byte(`{"location":`))
		time.Sleep(5 * time.Second)
	}()
	start := time.Now()
	code, arm, body := e.do(t, "PUT", e.cgPath("slow"), pr)
	if d := time.Since(start); d > 4*time.Second || code != 400 || arm != "InvalidRequestContent" {
		t.Fatalf("slow body: %d %s after %v: %s", code, arm, d, body)
	}
	if code, _, _ := e.do(t, "GET", e.cgPath("slow"), nil); code != 404 {
		t.Fatalf("slow body stored a group: %d", code)
	}
}

// /metrics keeps the same series whatever methods and paths clients send.
func TestMetricsLabelsBounded(t *testing.T) {
	e := newTestEnv(t, nil)
	rnd := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~"
		b := make([]byte, 1+rnd.IntN(12))
		for i := range b {
			b[i] = letters[rnd.IntN(len(letters))]
		}
		return string(b)
	}
	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "BREW"}
	send := func(method, path string, auth bool) {
		req, _ := http.NewRequest(method, e.http.URL+path+"?api-version=2023-05-01", nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+testToken)
		}
		resp, err := e.http.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	series := func() map[string]bool {
		resp, err := http.Get(e.http.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		out := map[string]bool{}
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "skiff_http_requests_total{") || strings.HasPrefix(l, "skiff_http_request_duration_seconds_count{") {
				out[l[:strings.LastIndexByte(l, '}')+1]] = true
			}
		}
		return out
	}
	// Every kind of method, with and without a token, once, and a scrape.
	series()
	for _, m := range methods {
		send(m, "/nowhere", true)
		send(m, "/nowhere", false)
	}
	first := series()
	// Then 200 random methods and paths.
	for range 200 {
		m := methods[rnd.IntN(len(methods))]
		if rnd.IntN(2) == 0 {
			m = strings.ToUpper(word()) // a method no route has
		}
		path := ""
		for range 1 + rnd.IntN(6) {
			path += "/" + word()
		}
		send(m, path, rnd.IntN(4) != 0)
	}
	second := series()
	if len(first) == 0 || len(first) != len(second) {
		t.Fatalf("series grew from %d to %d: %v", len(first), len(second), second)
	}
	// 8 methods × 2 routes (unmatched, unauthorized) × one code each, per
	// metric, plus /metrics and the resource group PUT of the set-up.
	if len(second) > 2*(8*2+2) {
		t.Errorf("%d series: %v", len(second), second)
	}
	for s := range second {
		if !strings.Contains(s, `route="unmatched"`) && !strings.Contains(s, `route="unauthorized"`) && !strings.Contains(s, `route="/metrics"`) &&
			!strings.Contains(s, `route="/subscriptions/{sub}/resourcegroups/{rg}"`) {
			t.Errorf("unexpected series %s", s)
		}
	}
}
