package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// The Microsoft Graph v1.0 subset that az 2.45's `az ad app|sp` sends
// (azure/cli/command_modules/role/_msgrpah/_graph_client.py):
//
//	GET    /v1.0/applications[?$filter=…]             list
//	POST   /v1.0/applications                         create {"displayName",…}
//	GET    /v1.0/applications/{id}                    show
//	PATCH  /v1.0/applications/{id}                    update (204)
//	DELETE /v1.0/applications/{id}                    delete, with its service principal (204)
//	POST   /v1.0/applications/{id}/addPassword        {"passwordCredential":{…}} → the credential with secretText
//	POST   /v1.0/applications/{id}/removePassword     {"keyId"} (204)
//	GET    /v1.0/servicePrincipals[?$filter=…]        list
//	POST   /v1.0/servicePrincipals                    create {"appId","accountEnabled"}
//	GET    /v1.0/servicePrincipals/{id}               show
//	PATCH  /v1.0/servicePrincipals/{id}               update (204)
//	DELETE /v1.0/servicePrincipals/{id}               delete (204)
//	POST   /v1.0/servicePrincipals/{id}/addPassword   as applications' (`az ad sp credential reset`)
//	POST   /v1.0/servicePrincipals/{id}/removePassword
//	POST   /v1.0/directoryObjects/getByIds            {"ids","types"} (az role assignment list|create)
//
// Every route needs an authenticated caller whom Allow grants the
// route's action. Errors are in Graph's shape:
// {"error":{"code":"Request_ResourceNotFound","message":…,"innerError":{…}}}.

const maxGraphBody = 1 << 20

type graphAPI struct {
	p *Provider
	h *Handler
}

// graphReply is a handler's result: a status and a body (nil: none).
type graphReply struct {
	status int
	body   any
}

type graphRoute struct {
	action string
	fn     func(r *http.Request, id string, body map[string]json.RawMessage) (graphReply, error)
}

func methodNotAllowed() error {
	return errdefs.WithCode(errdefs.ErrInvalidArgument, "Request_BadRequest", "Specified HTTP method is not allowed for the request uri.")
}

// route picks the handler of a Graph path (after /v1.0/).
func (g *graphAPI) route(method string, segs []string) (graphRoute, string, error) {
	if len(segs) == 0 || segs[0] == "" {
		return graphRoute{}, "", errdefs.WithCode(errdefs.ErrInvalidArgument, "BadRequest", "Resource not found for the segment ''.")
	}
	coll := segs[0]
	var read, write, del string
	switch {
	case strings.EqualFold(coll, "applications"):
		read, write, del = ActionApplicationsRead, ActionApplicationsWrite, ActionApplicationsDelete
	case strings.EqualFold(coll, "servicePrincipals"):
		read, write, del = ActionServicePrincipalsRead, ActionServicePrincipalsWrite, ActionServicePrincipalsDelete
	case strings.EqualFold(coll, "directoryObjects") && len(segs) == 2 && strings.EqualFold(segs[1], "getByIds"):
		if method != http.MethodPost {
			return graphRoute{}, "", methodNotAllowed()
		}
		return graphRoute{ActionDirectoryObjectsRead, g.getByIDs}, "", nil
	default:
		return graphRoute{}, "", errdefs.WithCode(errdefs.ErrInvalidArgument, "BadRequest", "Resource not found for the segment '%s'.", coll)
	}
	apps := read == ActionApplicationsRead
	pick := func(m map[string]graphRoute) (graphRoute, error) {
		if rt, ok := m[method]; ok {
			return rt, nil
		}
		return graphRoute{}, methodNotAllowed()
	}
	switch len(segs) {
	case 1:
		if apps {
			rt, err := pick(map[string]graphRoute{http.MethodGet: {read, g.listApps}, http.MethodPost: {write, g.createApp}})
			return rt, "", err
		}
		rt, err := pick(map[string]graphRoute{http.MethodGet: {read, g.listSPs}, http.MethodPost: {write, g.createSP}})
		return rt, "", err
	case 2:
		if apps {
			rt, err := pick(map[string]graphRoute{http.MethodGet: {read, g.getApp}, http.MethodPatch: {write, g.patchApp},
				http.MethodDelete: {del, g.deleteApp}})
			return rt, segs[1], err
		}
		rt, err := pick(map[string]graphRoute{http.MethodGet: {read, g.getSP}, http.MethodPatch: {write, g.patchSP},
			http.MethodDelete: {del, g.deleteSP}})
		return rt, segs[1], err
	case 3:
		var rt graphRoute
		switch {
		case strings.EqualFold(segs[2], "addPassword"):
			rt = graphRoute{write, g.addPassword(apps)}
		case strings.EqualFold(segs[2], "removePassword"):
			rt = graphRoute{write, g.removePassword(apps)}
		default:
			return graphRoute{}, "", errdefs.WithCode(errdefs.ErrInvalidArgument, "BadRequest", "Resource not found for the segment '%s'.", segs[2])
		}
		if method != http.MethodPost {
			return graphRoute{}, "", methodNotAllowed()
		}
		return rt, segs[1], nil
	}
	return graphRoute{}, "", errdefs.WithCode(errdefs.ErrInvalidArgument, "BadRequest", "Resource not found for the segment '%s'.", segs[len(segs)-1])
}

func (g *graphAPI) serve(w http.ResponseWriter, r *http.Request, segs []string) {
	pr, err := g.h.opts.Authenticate(r)
	if err != nil {
		if errdefs.Is(err, errdefs.ErrUnauthorized) {
			// Graph says InvalidAuthenticationToken for every refused token.
			err = errdefs.WithCode(errdefs.ErrUnauthorized, CodeInvalidToken, "%s", err.Error())
		}
		g.writeError(w, r, err)
		return
	}
	rt, id, err := g.route(r.Method, segs)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := g.h.opts.Allow(r.Context(), pr, rt.action); err != nil {
		if errdefs.Is(err, errdefs.ErrUnauthorized) {
			g.h.log.Debug("identity: graph request denied", "principal", pr, "action", rt.action, "err", err)
			err = errdefs.WithCode(errdefs.ErrForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		}
		g.writeError(w, r, err)
		return
	}
	var body map[string]json.RawMessage
	if r.Method == http.MethodPost || r.Method == http.MethodPatch {
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxGraphBody))
		if err != nil {
			g.writeError(w, r, badRequest("The request body could not be read (at most %d bytes).", maxGraphBody))
			return
		}
		if len(bytes.TrimSpace(raw)) > 0 {
			if err := json.Unmarshal(raw, &body); err != nil {
				g.writeError(w, r, badRequest("Unable to read JSON request payload: %v", err))
				return
			}
		}
	}
	rep, err := rt.fn(r, id, body)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	w.Header().Set("request-id", uuid.NewString())
	if rep.body == nil {
		w.WriteHeader(rep.status)
		return
	}
	writeJSON(w, rep.status, rep.body)
}

// writeError writes err in Graph's error shape.
func (g *graphAPI) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := http.StatusInternalServerError, "InternalServerError"
	switch {
	case errdefs.Is(err, errdefs.ErrForbidden):
		status, code = http.StatusForbidden, "Authorization_RequestDenied"
	case errdefs.Is(err, errdefs.ErrUnauthorized):
		status, code = http.StatusUnauthorized, CodeInvalidToken
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="", authorization_uri="%s/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`, g.p.Authority()))
	case errdefs.Is(err, errdefs.ErrNotFound):
		status, code = http.StatusNotFound, "Request_ResourceNotFound"
	case errdefs.Is(err, errdefs.ErrAlreadyExists), errdefs.Is(err, errdefs.ErrConflict):
		status, code = http.StatusConflict, "Request_MultipleObjectsWithSameKeyValue"
	case errdefs.Is(err, errdefs.ErrInvalidArgument):
		status, code = http.StatusBadRequest, "Request_BadRequest"
	case errdefs.Is(err, errdefs.ErrUnavailable):
		status, code = http.StatusServiceUnavailable, "ServiceUnavailable"
	}
	if c := errdefs.CodeOf(err); c != "" {
		code = c
	}
	msg := err.Error()
	if status >= 500 {
		g.h.log.Error("identity: graph request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		var coded *errdefs.Coded
		if !errors.As(err, &coded) {
			msg = "The server could not complete the request; see its log."
		}
	} else {
		g.h.log.Debug("identity: graph request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	rid := uuid.NewString()
	w.Header().Set("request-id", rid)
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"innerError": map[string]string{
			"date": time.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": rid,
			"client-request-id": r.Header.Get("client-request-id"),
		},
	}})
}

// --- shapes ---

func (g *graphAPI) context(what string) string { return g.p.base + "/v1.0/$metadata#" + what }

// entity renders v (a Graph object) with its @odata.context.
func entity(v any, context string) (map[string]any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	m["@odata.context"] = context
	return m, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// MarshalJSON renders an application as Graph does.
func (a Application) MarshalJSON() ([]byte, error) {
	m := map[string]any{"tags": []string{}, "requiredResourceAccess": []any{}}
	for k, v := range a.Extra {
		m[k] = v
	}
	m["id"], m["appId"], m["displayName"] = a.ID, a.AppID, a.DisplayName
	m["createdDateTime"], m["deletedDateTime"] = a.CreatedDateTime, nil
	m["identifierUris"], m["signInAudience"] = nonNil(a.IdentifierURIs), a.SignInAudience
	m["keyCredentials"], m["passwordCredentials"] = nonNil(a.KeyCredentials), nonNil(a.PasswordCredentials)
	return json.Marshal(m)
}

// MarshalJSON renders a service principal as Graph does.
func (s ServicePrincipal) MarshalJSON() ([]byte, error) {
	m := map[string]any{"tags": []string{}, "alternativeNames": []string{}, "appRoles": []any{},
		"oauth2PermissionScopes": []any{}, "replyUrls": []string{}, "keyCredentials": []any{}}
	for k, v := range s.Extra {
		m[k] = v
	}
	m["id"], m["appId"], m["displayName"], m["appDisplayName"] = s.ID, s.AppID, s.DisplayName, s.AppDisplayName
	m["accountEnabled"], m["appOwnerOrganizationId"] = s.AccountEnabled, s.AppOwnerOrganizationID
	m["servicePrincipalNames"], m["servicePrincipalType"] = nonNil(s.ServicePrincipalNames), "Application"
	m["passwordCredentials"], m["deletedDateTime"], m["signInAudience"] = nonNil(s.PasswordCredentials), nil, "AzureADMyOrg"
	return json.Marshal(m)
}

// --- bodies ---

// Properties that a client does not set: ignored in bodies (Graph's
// read-only ones, and OData annotations).
var readOnlyProps = map[string]bool{
	"id": true, "appId": true, "createdDateTime": true, "deletedDateTime": true, "publisherDomain": true,
	"appOwnerOrganizationId": true, "servicePrincipalNames": true, "servicePrincipalType": true, "appDisplayName": true,
}

func invalidProp(prop, resource string) error {
	return badRequest("Invalid value specified for property '%s' of resource '%s'.", prop, resource)
}

// splitBody takes the known properties of a body into dst (pointers to
// decode into, by name) and returns the others; a null other removes it.
func splitBody(body map[string]json.RawMessage, resource string, dst map[string]any) (extra map[string]json.RawMessage, removed []string, _ error) {
	extra = map[string]json.RawMessage{}
	for k, v := range body {
		if readOnlyProps[k] || strings.HasPrefix(k, "@odata.") || k == "passwordCredentials" {
			if k == "passwordCredentials" && string(bytes.TrimSpace(v)) != "[]" && string(bytes.TrimSpace(v)) != "null" {
				return nil, nil, badRequest("Property 'passwordCredentials' cannot be set; use addPassword.")
			}
			continue
		}
		if d, ok := dst[k]; ok {
			if string(bytes.TrimSpace(v)) == "null" {
				continue
			}
			if err := json.Unmarshal(v, d); err != nil {
				return nil, nil, invalidProp(k, resource)
			}
			continue
		}
		if string(bytes.TrimSpace(v)) == "null" {
			removed = append(removed, k)
			continue
		}
		extra[k] = v
	}
	return extra, removed, nil
}

// appProps are the settable properties of an application in a body.
type appProps struct {
	displayName    *string
	identifierURIs *[]string
	signInAudience *string
	keyCredentials *[]json.RawMessage
	extra          map[string]json.RawMessage
	removed        []string
}

func decodeAppProps(body map[string]json.RawMessage) (*appProps, error) {
	var p appProps
	var dn, sia string
	var ids []string
	var kc []json.RawMessage
	dst := map[string]any{"displayName": &dn, "identifierUris": &ids, "signInAudience": &sia, "keyCredentials": &kc}
	extra, removed, err := splitBody(body, "Application", dst)
	if err != nil {
		return nil, err
	}
	p.extra, p.removed = extra, removed
	if _, ok := body["displayName"]; ok {
		p.displayName = &dn
	}
	if _, ok := body["identifierUris"]; ok {
		p.identifierURIs = &ids
	}
	if _, ok := body["signInAudience"]; ok && sia != "" {
		p.signInAudience = &sia
	}
	if _, ok := body["keyCredentials"]; ok {
		p.keyCredentials = &kc
	}
	return &p, nil
}

// setIf sets *dst to *v if v is given.
func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func (ap *appProps) apply(a *Application) {
	setIf(&a.DisplayName, ap.displayName)
	setIf(&a.IdentifierURIs, ap.identifierURIs)
	setIf(&a.SignInAudience, ap.signInAudience)
	setIf(&a.KeyCredentials, ap.keyCredentials)
	a.Extra = mergeExtra(a.Extra, ap.extra, ap.removed)
}

func mergeExtra(old, set map[string]json.RawMessage, removed []string) map[string]json.RawMessage {
	out := cloneExtra(old)
	if out == nil {
		out = map[string]json.RawMessage{}
	}
	for k, v := range set {
		out[k] = v
	}
	for _, k := range removed {
		delete(out, k)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// spProps are the settable properties of a service principal in a body.
type spProps struct {
	appID          string
	accountEnabled *bool
	displayName    *string
	extra          map[string]json.RawMessage
	removed        []string
}

func decodeSPProps(body map[string]json.RawMessage, create bool) (*spProps, error) {
	var p spProps
	var enabled bool
	var dn string
	dst := map[string]any{"accountEnabled": &enabled, "displayName": &dn}
	if create {
		// appId is read-only once created, but names the application here.
		if v, ok := body["appId"]; ok {
			if err := json.Unmarshal(v, &p.appID); err != nil {
				return nil, invalidProp("appId", "ServicePrincipal")
			}
		}
		if p.appID == "" {
			return nil, badRequest("Property 'appId' is required.")
		}
	}
	extra, removed, err := splitBody(body, "ServicePrincipal", dst)
	if err != nil {
		return nil, err
	}
	p.extra, p.removed = extra, removed
	if v, ok := body["accountEnabled"]; ok && string(bytes.TrimSpace(v)) != "null" {
		p.accountEnabled = &enabled
	}
	if _, ok := body["displayName"]; ok && !create {
		p.displayName = &dn
	}
	return &p, nil
}

// --- applications ---

var appFilterProps = map[string]bool{"displayName": false, "appId": false, "id": false, "identifierUris": true}
var spFilterProps = map[string]bool{"displayName": false, "appId": false, "id": false, "servicePrincipalNames": true}

// listFiltered lists a collection, with az's $filter applied; fields
// gives an object's filterable properties.
func listFiltered[V any](r *http.Request, g *graphAPI, resource, collection string, props map[string]bool,
	list func() ([]V, error), fields func(*V) (displayName, appID, id string, coll []string)) (graphReply, error) {
	var f odataFilter
	if q := r.URL.Query().Get("$filter"); q != "" {
		var err error
		if f, err = parseFilter(q, resource, props); err != nil {
			return graphReply{}, err
		}
	}
	all, err := list()
	if err != nil {
		return graphReply{}, err
	}
	out := []V{}
	for i := range all {
		name, appID, id, coll := fields(&all[i])
		scalar := func(p string) string {
			switch p {
			case "displayName":
				return name
			case "appId":
				return appID
			}
			return id
		}
		if f.match(scalar, func(string) []string { return coll }) {
			out = append(out, all[i])
		}
	}
	return graphReply{http.StatusOK, map[string]any{"@odata.context": g.context(collection), "value": out}}, nil
}

// reply renders an object, or passes on err.
func (g *graphAPI) reply(status int, what string, v any, err error) (graphReply, error) {
	if err != nil {
		return graphReply{}, err
	}
	m, err := entity(v, g.context(what))
	return graphReply{status, m}, err
}

func (g *graphAPI) listApps(r *http.Request, _ string, _ map[string]json.RawMessage) (graphReply, error) {
	return listFiltered(r, g, "Application", "applications", appFilterProps,
		func() ([]Application, error) { return g.p.ListApps(r.Context(), "") },
		func(a *Application) (string, string, string, []string) {
			return a.DisplayName, a.AppID, a.ID, a.IdentifierURIs
		})
}

func (g *graphAPI) createApp(r *http.Request, _ string, body map[string]json.RawMessage) (graphReply, error) {
	props, err := decodeAppProps(body)
	if err != nil {
		return graphReply{}, err
	}
	var a Application
	props.apply(&a)
	app, err := g.p.CreateApp(r.Context(), AppSpec{DisplayName: a.DisplayName, IdentifierURIs: a.IdentifierURIs,
		SignInAudience: a.SignInAudience, KeyCredentials: a.KeyCredentials, Extra: a.Extra})
	return g.reply(http.StatusCreated, "applications/$entity", app, err)
}

func (g *graphAPI) getApp(r *http.Request, id string, _ map[string]json.RawMessage) (graphReply, error) {
	app, err := g.p.GetApp(r.Context(), id)
	return g.reply(http.StatusOK, "applications/$entity", app, err)
}

func (g *graphAPI) patchApp(r *http.Request, id string, body map[string]json.RawMessage) (graphReply, error) {
	props, err := decodeAppProps(body)
	if err != nil {
		return graphReply{}, err
	}
	_, err = g.p.UpdateApp(r.Context(), id, func(a *Application) error { props.apply(a); return nil })
	return graphReply{status: http.StatusNoContent}, err
}

func (g *graphAPI) deleteApp(r *http.Request, id string, _ map[string]json.RawMessage) (graphReply, error) {
	return graphReply{status: http.StatusNoContent}, g.p.DeleteApp(r.Context(), id)
}

// passwordBody is addPassword's body.
type passwordBody struct {
	PasswordCredential *struct {
		DisplayName   *string    `json:"displayName"`
		StartDateTime *time.Time `json:"startDateTime"`
		EndDateTime   *time.Time `json:"endDateTime"`
	} `json:"passwordCredential"`
}

func decodeInto(body map[string]json.RawMessage, v any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return badRequest("Unable to read JSON request payload: %v", err)
	}
	return nil
}

func (g *graphAPI) addPassword(apps bool) func(*http.Request, string, map[string]json.RawMessage) (graphReply, error) {
	return func(r *http.Request, id string, body map[string]json.RawMessage) (graphReply, error) {
		var b passwordBody
		if err := decodeInto(body, &b); err != nil {
			return graphReply{}, err
		}
		var spec PasswordSpec
		if pc := b.PasswordCredential; pc != nil {
			setIf(&spec.DisplayName, pc.DisplayName)
			setIf(&spec.Start, pc.StartDateTime)
			setIf(&spec.End, pc.EndDateTime)
		}
		var c *PasswordCredential
		var err error
		if apps {
			c, err = g.p.AddPassword(r.Context(), id, spec)
		} else {
			c, err = g.p.AddServicePrincipalPassword(r.Context(), id, spec)
		}
		return g.reply(http.StatusOK, "microsoft.graph.passwordCredential", c, err)
	}
}

func (g *graphAPI) removePassword(apps bool) func(*http.Request, string, map[string]json.RawMessage) (graphReply, error) {
	return func(r *http.Request, id string, body map[string]json.RawMessage) (graphReply, error) {
		var b struct {
			KeyID string `json:"keyId"`
		}
		if err := decodeInto(body, &b); err != nil {
			return graphReply{}, err
		}
		if b.KeyID == "" {
			return graphReply{}, badRequest("Property 'keyId' is required.")
		}
		var err error
		if apps {
			err = g.p.RemovePassword(r.Context(), id, b.KeyID)
		} else {
			err = g.p.RemoveServicePrincipalPassword(r.Context(), id, b.KeyID)
		}
		return graphReply{status: http.StatusNoContent}, err
	}
}

// --- service principals ---

func (g *graphAPI) listSPs(r *http.Request, _ string, _ map[string]json.RawMessage) (graphReply, error) {
	return listFiltered(r, g, "ServicePrincipal", "servicePrincipals", spFilterProps,
		func() ([]ServicePrincipal, error) { return g.p.ListServicePrincipals(r.Context(), "") },
		func(s *ServicePrincipal) (string, string, string, []string) {
			return s.DisplayName, s.AppID, s.ID, s.ServicePrincipalNames
		})
}

func (g *graphAPI) createSP(r *http.Request, _ string, body map[string]json.RawMessage) (graphReply, error) {
	props, err := decodeSPProps(body, true)
	if err != nil {
		return graphReply{}, err
	}
	spec := SPSpec{AppID: props.appID, Extra: mergeExtra(nil, props.extra, nil)}
	if props.accountEnabled != nil {
		spec.AccountDisabled = !*props.accountEnabled
	}
	sp, err := g.p.CreateServicePrincipal(r.Context(), spec)
	return g.reply(http.StatusCreated, "servicePrincipals/$entity", sp, err)
}

func (g *graphAPI) getSP(r *http.Request, id string, _ map[string]json.RawMessage) (graphReply, error) {
	sp, err := g.p.GetServicePrincipal(r.Context(), id)
	return g.reply(http.StatusOK, "servicePrincipals/$entity", sp, err)
}

func (g *graphAPI) patchSP(r *http.Request, id string, body map[string]json.RawMessage) (graphReply, error) {
	props, err := decodeSPProps(body, false)
	if err != nil {
		return graphReply{}, err
	}
	_, err = g.p.UpdateServicePrincipal(r.Context(), id, func(s *ServicePrincipal) error {
		setIf(&s.AccountEnabled, props.accountEnabled)
		setIf(&s.DisplayName, props.displayName)
		s.Extra = mergeExtra(s.Extra, props.extra, props.removed)
		return nil
	})
	return graphReply{status: http.StatusNoContent}, err
}

func (g *graphAPI) deleteSP(r *http.Request, id string, _ map[string]json.RawMessage) (graphReply, error) {
	return graphReply{status: http.StatusNoContent}, g.p.DeleteServicePrincipal(r.Context(), id)
}

// getByIDs resolves object ids to service principals and applications
// (this directory has no users or groups).
func (g *graphAPI) getByIDs(r *http.Request, _ string, body map[string]json.RawMessage) (graphReply, error) {
	var b struct {
		IDs   []string `json:"ids"`
		Types []string `json:"types"`
	}
	if err := decodeInto(body, &b); err != nil {
		return graphReply{}, err
	}
	if len(b.IDs) > 1000 {
		return graphReply{}, badRequest("At most 1000 ids may be given.")
	}
	wants := func(t string) bool {
		return len(b.Types) == 0 || slices.ContainsFunc(b.Types, func(x string) bool { return strings.EqualFold(x, t) })
	}
	out := []map[string]any{}
	for _, id := range b.IDs {
		if _, err := uuid.Parse(id); err != nil {
			return graphReply{}, badRequest("Invalid object identifier '%s'.", id)
		}
		var obj any
		var typ string
		if wants("servicePrincipal") {
			if sp, err := g.p.GetServicePrincipal(r.Context(), id); err == nil {
				obj, typ = sp, "#microsoft.graph.servicePrincipal"
			} else if !errdefs.Is(err, errdefs.ErrNotFound) {
				return graphReply{}, err
			}
		}
		if obj == nil && wants("application") {
			if app, err := g.p.GetApp(r.Context(), id); err == nil {
				obj, typ = app, "#microsoft.graph.application"
			} else if !errdefs.Is(err, errdefs.ErrNotFound) {
				return graphReply{}, err
			}
		}
		if obj == nil {
			continue
		}
		m, err := entity(obj, "")
		if err != nil {
			return graphReply{}, err
		}
		delete(m, "@odata.context")
		m["@odata.type"] = typ
		out = append(out, m)
	}
	return graphReply{http.StatusOK, map[string]any{"@odata.context": g.context("directoryObjects"), "value": out}}, nil
}
