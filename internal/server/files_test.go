package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// signSharedKey signs req as Azure Storage's Shared Key scheme prescribes
// (learn.microsoft.com, "Authorize with Shared Key": the verb, eleven
// standard headers, the x-ms- headers sorted, /account/path, the query
// parameters sorted), as the Azure SDKs do. test/az checks the same
// against the real az's signatures.
func signSharedKey(t *testing.T, req *http.Request, account, key string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(req.Method + "\n")
	for _, h := range []string{"Content-Encoding", "Content-Language", "Content-Length", "Content-MD5", "Content-Type",
		"Date", "If-Modified-Since", "If-Match", "If-None-Match", "If-Unmodified-Since", "Range"} {
		b.WriteString(req.Header.Get(h) + "\n")
	}
	var xms []string
	for k := range req.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-ms-") {
			xms = append(xms, strings.ToLower(k))
		}
	}
	sort.Strings(xms)
	for _, k := range xms {
		b.WriteString(k + ":" + req.Header.Get(k) + "\n")
	}
	b.WriteString("/" + account + req.URL.EscapedPath())
	q := req.URL.Query()
	var names []string
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b.WriteString("\n" + strings.ToLower(k) + ":" + q.Get(k))
	}
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, raw)
	mac.Write([]byte(b.String()))
	req.Header.Set("Authorization", "SharedKey "+account+":"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
}

// TestFilesDataPlane: the shares of an account through the Files API at
// its primaryEndpoints.file, authorized by the account's key: create (201,
// then 409 ShareAlreadyExists), properties, list, delete; the share is the
// one ARM serves. A wrong key, an unknown account, no signature and an old
// x-ms-date are the same 403 AuthenticationFailed, and create nothing.
func TestFilesDataPlane(t *testing.T) {
	e := newTestEnv(t, nil)
	acct := e.accountPath("rg", "filesacct")
	if code, _, body := e.do(t, "PUT", acct+"?api-version=2022-09-01", azAccountBody); code != 200 {
		t.Fatalf("PUT account: %d %s", code, body)
	}
	key := e.keysOf(t, "rg", "filesacct")[1].Value
	send := func(method, path, account, key string, date time.Time, h map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, e.http.URL+"/storage/file/"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("x-ms-version", "2021-06-08")
		req.Header.Set("x-ms-date", date.UTC().Format(http.TimeFormat))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		if key != "" {
			signSharedKey(t, req, account, key)
		}
		resp, err := e.http.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	now := time.Now()
	if resp, body := send("PUT", "filesacct/myacishare?restype=share", "filesacct", key, now, map[string]string{"x-ms-share-quota": "10"}); resp.StatusCode != 201 || resp.Header.Get("ETag") == "" {
		t.Fatalf("create share: %d %s", resp.StatusCode, body)
	}
	if resp, body := send("PUT", "filesacct/myacishare?restype=share", "filesacct", key, now, nil); resp.StatusCode != 409 ||
		resp.Header.Get("x-ms-error-code") != "ShareAlreadyExists" || !strings.Contains(body, "<Code>ShareAlreadyExists</Code>") {
		t.Errorf("create again: %d %s %s", resp.StatusCode, resp.Header.Get("x-ms-error-code"), body)
	}
	if resp, body := send("GET", "filesacct/myacishare?restype=share", "filesacct", key, now, nil); resp.StatusCode != 200 || resp.Header.Get("x-ms-share-quota") != "10" {
		t.Errorf("share properties: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if resp, body := send("GET", "filesacct?comp=list", "filesacct", key, now, nil); resp.StatusCode != 200 || !strings.Contains(body, "<Name>myacishare</Name>") {
		t.Errorf("list shares: %d %s", resp.StatusCode, body)
	}
	// The same share through ARM.
	if code, _, body := e.do(t, "GET", acct+"/fileServices/default/shares/myacishare?api-version=2022-09-01", nil); code != 200 || !strings.Contains(string(body), `"shareQuota":10`) {
		t.Errorf("the share through ARM: %d %s", code, body)
	}
	for name, tc := range map[string]struct {
		path, account, key string
		date               time.Time
	}{
		"wrong key":       {"filesacct/other?restype=share", "filesacct", base64.StdEncoding.EncodeToString(make([]byte, 64)), now},
		"unknown account": {"nosuchacct/other?restype=share", "nosuchacct", key, now},
		"no signature":    {"filesacct/other?restype=share", "filesacct", "", now},
		"old date":        {"filesacct/other?restype=share", "filesacct", key, now.Add(-time.Hour)},
	} {
		if resp, body := send("PUT", tc.path, tc.account, tc.key, tc.date, nil); resp.StatusCode != 403 || resp.Header.Get("x-ms-error-code") != "AuthenticationFailed" {
			t.Errorf("%s: %d %s, want 403 AuthenticationFailed", name, resp.StatusCode, body)
		}
	}
	if code, _, _ := e.do(t, "GET", acct+"/fileServices/default/shares/other?api-version=2022-09-01", nil); code != 404 {
		t.Errorf("a refused create made the share 'other': %d", code)
	}
	if resp, body := send("DELETE", "filesacct/myacishare?restype=share", "filesacct", key, now, nil); resp.StatusCode != 202 {
		t.Errorf("delete share: %d %s", resp.StatusCode, body)
	}
	if code, _, _ := e.do(t, "GET", acct+"/fileServices/default/shares/myacishare?api-version=2022-09-01", nil); code != 404 {
		t.Errorf("the deleted share through ARM: %d, want 404", code)
	}
	var sa struct {
		Properties struct{ PrimaryEndpoints struct{ File string } }
	}
	_, _, body := e.do(t, "GET", acct+"?api-version=2022-09-01", nil)
	if err := json.Unmarshal(body, &sa); err != nil || sa.Properties.PrimaryEndpoints.File != e.http.URL+"/storage/file/filesacct/" {
		t.Errorf("primaryEndpoints.file = %q (%v), want the server's Files endpoint", sa.Properties.PrimaryEndpoints.File, err)
	}
}
