package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/storage"
)

// The Files data plane, as much of it as seed 000's
// `az storage share create -n myacishare` uses (with the connection string
// of `az storage account show-connection-string` in
// AZURE_STORAGE_CONNECTION_STRING): create, read, delete and list the
// shares of an account, at the account's file endpoint
// {base}/storage/file/{account}/ (primaryEndpoints.file). A share made here
// is the same record as one made through ARM (fileServices/default/shares).
//
// Requests are authorized by Azure Storage's Shared Key: an HMAC-SHA256,
// with one of the account's two keys, of the request's canonical form
// (docs: "Authorize with Shared Key"), which the Azure SDKs compute and
// which is checked here against both keys in constant time. The request's
// x-ms-date must be within 15 minutes of the server's clock. Errors are
// Azure Storage's XML <Error><Code>…</Code><Message>…</Message></Error> with
// an x-ms-error-code header. Blobs, queues, tables, directories, files and
// SAS tokens are not served.
const filesPrefix = "/storage/file/"

// filesClockSkew is how far a request's x-ms-date may be from the
// server's clock, as in Azure Storage.
const filesClockSkew = 15 * time.Minute

// fileEndpoint is the file endpoint of account as a client reaches this
// server.
func fileEndpoint(r *http.Request, account string) string {
	return baseURL(r) + filesPrefix + account + "/"
}

// filesError is an error of the Files data plane.
type filesError struct {
	status  int
	code    string
	message string
}

func (e *filesError) Error() string { return e.message }

func filesErr(status int, code, format string, a ...any) *filesError {
	return &filesError{status: status, code: code, message: fmt.Sprintf(format, a...)}
}

// filesErrorOf maps an error of the storage service to the data plane's.
func filesErrorOf(err error) *filesError {
	if fe, ok := err.(*filesError); ok {
		return fe
	}
	switch {
	case errdefs.CodeOf(err) == "ShareNotFound":
		return filesErr(http.StatusNotFound, "ShareNotFound", "The specified share does not exist.")
	case errdefs.Is(err, errdefs.ErrInvalidArgument):
		return filesErr(http.StatusBadRequest, "InvalidResourceName", "%s", err.Error())
	case errdefs.Is(err, errdefs.ErrNotFound):
		return filesErr(http.StatusNotFound, "ResourceNotFound", "The specified resource does not exist.")
	case errdefs.Is(err, errdefs.ErrConflict), errdefs.Is(err, errdefs.ErrAlreadyExists):
		return filesErr(http.StatusConflict, "ShareBeingDeleted", "%s", err.Error())
	}
	return filesErr(http.StatusInternalServerError, "InternalError", "The server encountered an internal error. Please retry the request.")
}

func writeFilesError(w http.ResponseWriter, r *http.Request, e *filesError) {
	id := w.Header().Get("x-ms-request-id")
	w.Header().Set("x-ms-error-code", e.code)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(e.status)
	if r.Method == http.MethodHead {
		return
	}
	body := struct {
		XMLName xml.Name `xml:"Error"`
		Code    string   `xml:"Code"`
		Message string   `xml:"Message"`
	}{Code: e.code, Message: e.message + "\nRequestId:" + id + "\nTime:" + time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z")}
	out, _ := xml.Marshal(body)
	w.Write([]byte(xml.Header))
	w.Write(out)
}

// serveFiles serves a request of the Files data plane.
func (s *Server) serveFiles(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-ms-request-id", uuid.NewString())
	if v := r.Header.Get("x-ms-version"); v != "" {
		w.Header().Set("x-ms-version", v)
	}
	code, action, scope, err := s.files(w, r)
	if err != nil {
		fe := filesErrorOf(err)
		if fe.status >= 500 {
			s.log.Error("files request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		writeFilesError(w, r, fe)
		code = fe.status
	}
	if action != "" {
		s.auditLog.Info("request", "principal", map[string]string{"storageAccountKey": scope}, "action", action,
			"scope", r.URL.Path, "status", code)
	}
}

// files does a request; action and scope are what the audit line says
// once the caller is known.
func (s *Server) files(w http.ResponseWriter, r *http.Request) (code int, action, scope string, err error) {
	rest := strings.TrimPrefix(r.URL.Path, filesPrefix)
	accountName, share, _ := strings.Cut(rest, "/")
	share = strings.TrimSuffix(share, "/")
	if strings.Contains(share, "/") {
		return 0, "", "", filesErr(http.StatusBadRequest, "UnsupportedOperation", "Skiff serves the shares of the Files API, not their directories or files.")
	}
	st, err := s.storageOn()
	if err != nil {
		return 0, "", "", err
	}
	a, err := s.sharedKeyAccount(r, st, accountName)
	if err != nil {
		return 0, "", "", err
	}
	q := r.URL.Query()
	ctx := r.Context()
	switch {
	case share == "" && q.Get("comp") == "list" && r.Method == http.MethodGet:
		shares, err := st.ListShares(ctx, a.Subscription, a.ResourceGroup, a.Name)
		if err != nil {
			return 0, "", "", err
		}
		writeShareList(w, r, a.Name, shares)
		return http.StatusOK, "Microsoft.Storage/storageAccounts/fileServices/shares/read", a.Name, nil
	case share != "" && q.Get("restype") == "share" && q.Get("comp") == "":
	default:
		return 0, "", "", filesErr(http.StatusBadRequest, "UnsupportedOperation",
			"Skiff's Files API serves shares only: PUT, GET, HEAD and DELETE of ?restype=share, and GET ?comp=list of the account.")
	}
	switch r.Method {
	case http.MethodPut:
		if _, err := st.GetShare(ctx, a.Subscription, a.ResourceGroup, a.Name, share); err == nil {
			return 0, "", "", filesErr(http.StatusConflict, "ShareAlreadyExists", "The specified share already exists.")
		}
		fs := &api.FileShare{}
		if v := r.Header.Get("x-ms-share-quota"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return 0, "", "", filesErr(http.StatusBadRequest, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format: x-ms-share-quota %q.", v)
			}
			fs.Properties.ShareQuota = n
		}
		fs.Properties.AccessTier = r.Header.Get("x-ms-access-tier")
		fs.Properties.EnabledProtocols = r.Header.Get("x-ms-enabled-protocols")
		for k, vs := range r.Header {
			if name, ok := strings.CutPrefix(strings.ToLower(k), "x-ms-meta-"); ok && len(vs) > 0 {
				if fs.Properties.Metadata == nil {
					fs.Properties.Metadata = map[string]string{}
				}
				fs.Properties.Metadata[name] = vs[0]
			}
		}
		if err := api.ValidateFileShare(fs, a.Premium()); err != nil {
			return 0, "", "", filesErr(http.StatusBadRequest, "InvalidHeaderValue", "%s", err.Error())
		}
		sh, _, err := st.CreateOrUpdateShare(ctx, a.Subscription, a.ResourceGroup, a.Name, shareSpec(share, fs.Properties))
		if err != nil {
			return 0, "", "", err
		}
		shareHeaders(w, sh)
		w.WriteHeader(http.StatusCreated)
		return http.StatusCreated, "Microsoft.Storage/storageAccounts/fileServices/shares/write", a.Name, nil
	case http.MethodGet, http.MethodHead:
		sh, err := st.GetShare(ctx, a.Subscription, a.ResourceGroup, a.Name, share)
		if err != nil {
			return 0, "", "", err
		}
		shareHeaders(w, sh)
		w.Header().Set("x-ms-share-quota", strconv.Itoa(sh.Quota))
		w.Header().Set("x-ms-access-tier", sh.AccessTier)
		w.Header().Set("x-ms-enabled-protocols", sh.Protocols)
		for k, v := range sh.Metadata {
			w.Header().Set("x-ms-meta-"+k, v)
		}
		w.WriteHeader(http.StatusOK)
		return http.StatusOK, "", "", nil
	case http.MethodDelete:
		sh, err := st.DeleteShare(ctx, a.Subscription, a.ResourceGroup, a.Name, share)
		if err != nil {
			return 0, "", "", err
		}
		s.removeShareData(ctx, []storage.Share{*sh})
		w.WriteHeader(http.StatusAccepted)
		return http.StatusAccepted, "Microsoft.Storage/storageAccounts/fileServices/shares/delete", a.Name, nil
	}
	return 0, "", "", filesErr(http.StatusMethodNotAllowed, "UnsupportedHttpVerb", "The resource doesn't support the specified HTTP verb %s.", r.Method)
}

// shareHeaders are the ETag and Last-Modified of a share.
func shareHeaders(w http.ResponseWriter, sh *storage.Share) {
	w.Header().Set("ETag", shareETag(sh))
	w.Header().Set("Last-Modified", sh.ModifiedAt.UTC().Format(http.TimeFormat))
}

func writeShareList(w http.ResponseWriter, r *http.Request, account string, shares []storage.Share) {
	type props struct {
		LastModified string `xml:"Last-Modified"`
		Etag         string `xml:"Etag"`
		Quota        int    `xml:"Quota"`
		AccessTier   string `xml:"AccessTier,omitempty"`
		Protocols    string `xml:"EnabledProtocols,omitempty"`
	}
	type item struct {
		Name       string `xml:"Name"`
		Properties props  `xml:"Properties"`
	}
	out := struct {
		XMLName         xml.Name `xml:"EnumerationResults"`
		ServiceEndpoint string   `xml:"ServiceEndpoint,attr"`
		Shares          []item   `xml:"Shares>Share"`
		NextMarker      string   `xml:"NextMarker"`
	}{ServiceEndpoint: fileEndpoint(r, account)}
	for _, sh := range shares {
		out.Shares = append(out.Shares, item{Name: sh.Name, Properties: props{
			LastModified: sh.ModifiedAt.UTC().Format(http.TimeFormat), Etag: shareETag(&sh),
			Quota: sh.Quota, AccessTier: sh.AccessTier, Protocols: sh.Protocols}})
	}
	b, _ := xml.Marshal(out)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(xml.Header))
	w.Write(b)
}

// sharedKeyAccount authenticates a request signed with Shared Key by one
// of the keys of account name, and returns the account. Any failure is
// the same 403 AuthenticationFailed, so that nothing tells an account that
// exists from one that does not.
func (s *Server) sharedKeyAccount(r *http.Request, st *storage.Service, name string) (*storage.Account, error) {
	denied := filesErr(http.StatusForbidden, "AuthenticationFailed",
		"Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.")
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || scheme != "SharedKey" {
		return nil, denied
	}
	signer, sig, ok := strings.Cut(cred, ":")
	if !ok || !strings.EqualFold(signer, name) {
		return nil, denied
	}
	date := r.Header.Get("x-ms-date")
	if date == "" {
		date = r.Header.Get("Date")
	}
	at, err := http.ParseTime(date)
	if err != nil || time.Since(at).Abs() > filesClockSkew {
		return nil, filesErr(http.StatusForbidden, "AuthenticationFailed",
			"Server failed to authenticate the request: x-ms-date %q is missing, malformed or more than 15 minutes from the server's time.", date)
	}
	a, err := st.FindAccount(r.Context(), name)
	if err != nil {
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return nil, denied
		}
		return nil, err
	}
	keys, err := st.ListKeys(r.Context(), a.Subscription, a.ResourceGroup, a.Name)
	if err != nil {
		return nil, err
	}
	want, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return nil, denied
	}
	toSign := sharedKeyString(r, signer)
	match := false
	for _, k := range keys {
		key, err := base64.StdEncoding.DecodeString(k.Value)
		if err != nil {
			continue
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(toSign))
		if hmac.Equal(mac.Sum(nil), want) {
			match = true
		}
	}
	if !match {
		return nil, denied
	}
	return a, nil
}

// sharedKeyString is the string a Shared Key signs for a request (Azure
// Storage's canonical form, as the Azure SDKs build it): the verb, the
// standard headers, the x-ms- headers sorted, the account and path, and
// the query parameters sorted.
func sharedKeyString(r *http.Request, account string) string {
	header := func(name string) string {
		if name == "content-length" {
			if r.ContentLength > 0 {
				return strconv.FormatInt(r.ContentLength, 10)
			}
			return ""
		}
		return r.Header.Get(name)
	}
	var b strings.Builder
	b.WriteString(r.Method + "\n")
	for _, h := range []string{"content-encoding", "content-language", "content-length", "content-md5", "content-type",
		"date", "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range"} {
		b.WriteString(header(h) + "\n")
	}
	var names []string
	for k := range r.Header {
		if l := strings.ToLower(k); strings.HasPrefix(l, "x-ms-") {
			names = append(names, l)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		b.WriteString(n + ":" + strings.Join(r.Header.Values(n), ",") + "\n")
	}
	b.WriteString("/" + account + r.URL.EscapedPath())
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString("\n" + strings.ToLower(k) + ":" + strings.Join(q[k], ","))
	}
	return b.String()
}
