package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

// The directory: applications and their service principals, the objects
// of Microsoft Graph that `az ad app|sp` manages. An application holds the
// identity's definition (appId, name); its service principal is the
// instance in the tenant that signs in, that role assignments name (by its
// object id) and that tokens carry as oid. Password credentials (client
// secrets) may sit on either, as in Entra; both sign in.
//
// Errors carry Graph's codes (Request_ResourceNotFound, Request_BadRequest,
// Request_MultipleObjectsWithSameKeyValue) so that the Graph handler
// passes them on as they are.

// PasswordCredential is a client secret's metadata, in Graph's shape.
// SecretText is set only in AddPassword's result: the secret itself is
// never stored.
type PasswordCredential struct {
	CustomKeyIdentifier *string   `json:"customKeyIdentifier"`
	DisplayName         *string   `json:"displayName"`
	EndDateTime         time.Time `json:"endDateTime"`
	Hint                string    `json:"hint"`
	KeyID               string    `json:"keyId"`
	SecretText          *string   `json:"secretText"`
	StartDateTime       time.Time `json:"startDateTime"`
}

// String describes the credential without its secret.
func (c PasswordCredential) String() string {
	return fmt.Sprintf("passwordCredential %s (hint %s..., until %s)", c.KeyID, c.Hint, c.EndDateTime.Format(time.RFC3339))
}

// Application is an application object, in Graph's shape.
type Application struct {
	ID                  string
	AppID               string
	DisplayName         string
	CreatedDateTime     time.Time
	IdentifierURIs      []string
	SignInAudience      string
	KeyCredentials      []json.RawMessage
	PasswordCredentials []PasswordCredential
	// Extra holds the other Graph properties a client set (web, api,
	// tags…), kept as given and returned as they are.
	Extra map[string]json.RawMessage
}

// ServicePrincipal is a service principal object, in Graph's shape.
type ServicePrincipal struct {
	ID                     string
	AppID                  string
	DisplayName            string
	AppDisplayName         string
	AccountEnabled         bool
	AppOwnerOrganizationID string
	ServicePrincipalNames  []string
	PasswordCredentials    []PasswordCredential
	// Extra holds the other Graph properties a client set (tags…).
	Extra map[string]json.RawMessage
}

// AppSpec is what a client chooses of a new application.
type AppSpec struct {
	DisplayName    string
	IdentifierURIs []string
	SignInAudience string
	KeyCredentials []json.RawMessage
	Extra          map[string]json.RawMessage
}

// SPSpec is what a client chooses of a new service principal.
type SPSpec struct {
	AppID string
	// AccountDisabled creates it disabled (Graph's accountEnabled: false).
	AccountDisabled bool
	Extra           map[string]json.RawMessage
}

// PasswordSpec is what a client chooses of a new client secret.
type PasswordSpec struct {
	DisplayName string
	// Start is when it becomes valid (zero: now).
	Start time.Time
	// End is when it expires (zero: two years after Start, as Graph).
	End time.Time
}

// Records as stored.
type appRecord struct {
	ID             string                     `json:"id"`
	AppID          string                     `json:"appId"`
	DisplayName    string                     `json:"displayName"`
	Created        time.Time                  `json:"createdDateTime"`
	IdentifierURIs []string                   `json:"identifierUris,omitempty"`
	SignInAudience string                     `json:"signInAudience,omitempty"`
	KeyCredentials []json.RawMessage          `json:"keyCredentials,omitempty"`
	Passwords      []passwordRecord           `json:"passwords,omitempty"`
	Extra          map[string]json.RawMessage `json:"extra,omitempty"`
}

type spRecord struct {
	ID             string                     `json:"id"`
	AppID          string                     `json:"appId"`
	DisplayName    string                     `json:"displayName"`
	AppDisplayName string                     `json:"appDisplayName"`
	AccountEnabled bool                       `json:"accountEnabled"`
	Created        time.Time                  `json:"createdDateTime"`
	Names          []string                   `json:"servicePrincipalNames"`
	Passwords      []passwordRecord           `json:"passwords,omitempty"`
	Extra          map[string]json.RawMessage `json:"extra,omitempty"`
}

type indexRecord struct {
	ID string `json:"id"`
}

func credentialsOf(rs []passwordRecord) []PasswordCredential {
	out := make([]PasswordCredential, 0, len(rs))
	for _, r := range rs {
		c := PasswordCredential{EndDateTime: r.End, Hint: r.Hint, KeyID: r.KeyID, StartDateTime: r.Start}
		if r.DisplayName != "" {
			c.DisplayName = &r.DisplayName
		}
		out = append(out, c)
	}
	return out
}

func (r *appRecord) view() *Application {
	return &Application{
		ID: r.ID, AppID: r.AppID, DisplayName: r.DisplayName, CreatedDateTime: r.Created,
		IdentifierURIs: slices.Clone(r.IdentifierURIs), SignInAudience: r.SignInAudience,
		KeyCredentials: slices.Clone(r.KeyCredentials), PasswordCredentials: credentialsOf(r.Passwords),
		Extra: cloneExtra(r.Extra),
	}
}

func (p *Provider) spView(r *spRecord) *ServicePrincipal {
	return &ServicePrincipal{
		ID: r.ID, AppID: r.AppID, DisplayName: r.DisplayName, AppDisplayName: r.AppDisplayName,
		AccountEnabled: r.AccountEnabled, AppOwnerOrganizationID: p.tenant,
		ServicePrincipalNames: slices.Clone(r.Names), PasswordCredentials: credentialsOf(r.Passwords),
		Extra: cloneExtra(r.Extra),
	}
}

func cloneExtra(m map[string]json.RawMessage) map[string]json.RawMessage {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

// Errors in Graph's codes.

func notFound(id string) error {
	return errdefs.WithCode(errdefs.ErrNotFound, "Request_ResourceNotFound",
		"Resource '%s' does not exist or one of its queried reference-property objects are not present.", id)
}

func badRequest(format string, a ...any) error {
	return errdefs.WithCode(errdefs.ErrInvalidArgument, "Request_BadRequest", format, a...)
}

// objectKey checks a Graph object id (a uuid) and returns its store key.
func objectKey(id string) (string, error) {
	u, err := uuid.Parse(id)
	if err != nil || len(id) != 36 {
		return "", badRequest("Invalid object identifier '%s'.", id)
	}
	return u.String(), nil
}

func getRecord[T any](ctx context.Context, p *Provider, kind, id string) (*T, int64, error) {
	key, err := objectKey(id)
	if err != nil {
		return nil, 0, err
	}
	o, err := p.st.GetObject(ctx, kind, key)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, 0, notFound(id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("identity: %s %s: %w", kind, id, err)
	}
	var rec T
	if err := json.Unmarshal(o.Value, &rec); err != nil {
		return nil, 0, fmt.Errorf("identity: %s %s: damaged record: %w", kind, id, errdefs.ErrUnavailable)
	}
	return &rec, o.Revision, nil
}

func putRecord(ctx context.Context, p *Provider, kind, key string, rec any, rev int64) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := p.st.PutObject(ctx, kind, key, raw, rev); err != nil {
		return fmt.Errorf("identity: %s %s: %w", kind, key, err)
	}
	return nil
}

// updateRecord applies fn to a record and writes it back, again if another
// write came in between.
func updateRecord[T any](ctx context.Context, p *Provider, kind, id string, fn func(*T) error) (*T, error) {
	for range 8 {
		rec, rev, err := getRecord[T](ctx, p, kind, id)
		if err != nil {
			return nil, err
		}
		if err := fn(rec); err != nil {
			return nil, err
		}
		err = putRecord(ctx, p, kind, strings.ToLower(id), rec, rev)
		if err == nil {
			return rec, nil
		}
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return nil, notFound(id)
		}
		if !errdefs.Is(err, errdefs.ErrConflict) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("identity: %s %s keeps changing: %w", kind, id, errdefs.ErrConflict)
}

// listViews lists a kind's records, oldest first, as views; with a
// displayName, only those of that name (without regard to case, as
// Graph's eq).
func listViews[T, V any](ctx context.Context, p *Provider, kind, displayName string,
	meta func(*T) (name string, created time.Time), view func(*T) *V) ([]V, error) {
	objs, err := p.st.ListObjects(ctx, kind, "")
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", kind, err)
	}
	recs := make([]*T, 0, len(objs))
	for _, o := range objs {
		var rec T
		if err := json.Unmarshal(o.Value, &rec); err != nil {
			return nil, fmt.Errorf("identity: %s %s: damaged record: %w", kind, o.Key, errdefs.ErrUnavailable)
		}
		if name, _ := meta(&rec); displayName == "" || strings.EqualFold(name, displayName) {
			recs = append(recs, &rec)
		}
	}
	sort.SliceStable(recs, func(i, j int) bool {
		_, ti := meta(recs[i])
		_, tj := meta(recs[j])
		return ti.Before(tj)
	})
	out := make([]V, 0, len(recs))
	for _, r := range recs {
		out = append(out, *view(r))
	}
	return out, nil
}

// lookupIndex returns the object id an appId index names, or
// Request_ResourceNotFound.
func (p *Provider) lookupIndex(ctx context.Context, kind, appID string) (string, error) {
	key, err := objectKey(appID)
	if err != nil {
		return "", notFound(appID)
	}
	o, err := p.st.GetObject(ctx, kind, key)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return "", notFound(appID)
	}
	if err != nil {
		return "", fmt.Errorf("identity: %s %s: %w", kind, appID, err)
	}
	var ix indexRecord
	if err := json.Unmarshal(o.Value, &ix); err != nil || ix.ID == "" {
		return "", fmt.Errorf("identity: %s %s: damaged record: %w", kind, appID, errdefs.ErrUnavailable)
	}
	return ix.ID, nil
}

// recordByAppID returns the record an appId index names.
func recordByAppID[T any](ctx context.Context, p *Provider, indexKind, kind, appID string) (*T, error) {
	id, err := p.lookupIndex(ctx, indexKind, appID)
	if err != nil {
		return nil, err
	}
	rec, _, err := getRecord[T](ctx, p, kind, id)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, notFound(appID)
	}
	return rec, err
}

// deleteObject deletes an object that may be gone already.
func (p *Provider) deleteObject(ctx context.Context, kind, key string) error {
	err := p.st.DeleteObject(ctx, kind, key, store.AnyRevision)
	if err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("identity: delete %s %s: %w", kind, key, err)
	}
	return nil
}

// credentialed records hold password credentials.
type credentialed[T any] interface {
	*T
	passwords() *[]passwordRecord
}

func (r *appRecord) passwords() *[]passwordRecord { return &r.Passwords }
func (r *spRecord) passwords() *[]passwordRecord  { return &r.Passwords }

// addPasswordTo adds a fresh secret to a record's credentials.
func addPasswordTo[T any, PT credentialed[T]](ctx context.Context, p *Provider, kind, id string, spec PasswordSpec) (*PasswordCredential, error) {
	var c *PasswordCredential
	_, err := updateRecord(ctx, p, kind, id, func(r *T) (err error) {
		c, err = p.addPassword(PT(r).passwords(), spec)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// removePasswordFrom removes a credential of a record.
func removePasswordFrom[T any, PT credentialed[T]](ctx context.Context, p *Provider, kind, id, keyID string) error {
	_, err := updateRecord(ctx, p, kind, id, func(r *T) error {
		return removePassword(PT(r).passwords(), keyID)
	})
	return err
}

// --- applications ---

// CreateApp registers an application with a new appId. It has no
// credentials and no service principal yet.
func (p *Provider) CreateApp(ctx context.Context, spec AppSpec) (*Application, error) {
	if strings.TrimSpace(spec.DisplayName) == "" {
		return nil, badRequest("Property 'displayName' is required.")
	}
	rec := &appRecord{
		ID: uuid.NewString(), AppID: uuid.NewString(), DisplayName: spec.DisplayName, Created: p.now().UTC(),
		IdentifierURIs: spec.IdentifierURIs, SignInAudience: spec.SignInAudience,
		KeyCredentials: spec.KeyCredentials, Extra: spec.Extra,
	}
	if rec.SignInAudience == "" {
		rec.SignInAudience = "AzureADMyOrg"
	}
	if err := putRecord(ctx, p, kindAppIndex, rec.AppID, indexRecord{ID: rec.ID}, 0); err != nil {
		return nil, err
	}
	if err := putRecord(ctx, p, kindApps, rec.ID, rec, 0); err != nil {
		_ = p.st.DeleteObject(context.WithoutCancel(ctx), kindAppIndex, rec.AppID, store.AnyRevision)
		return nil, err
	}
	p.log.Debug("identity: created an application", "id", rec.ID, "appId", rec.AppID, "name", rec.DisplayName)
	return rec.view(), nil
}

// GetApp returns the application with object id id.
func (p *Provider) GetApp(ctx context.Context, id string) (*Application, error) {
	rec, _, err := getRecord[appRecord](ctx, p, kindApps, id)
	if err != nil {
		return nil, err
	}
	return rec.view(), nil
}

func (p *Provider) appRecordByAppID(ctx context.Context, appID string) (*appRecord, error) {
	return recordByAppID[appRecord](ctx, p, kindAppIndex, kindApps, appID)
}

// AppByAppID returns the application whose appId (client id) is appID.
func (p *Provider) AppByAppID(ctx context.Context, appID string) (*Application, error) {
	rec, err := p.appRecordByAppID(ctx, appID)
	if err != nil {
		return nil, err
	}
	return rec.view(), nil
}

// ListApps lists the applications, oldest first; with a displayName, only
// those of that name (without regard to case, as Graph's eq).
func (p *Provider) ListApps(ctx context.Context, displayName string) ([]Application, error) {
	return listViews(ctx, p, kindApps, displayName,
		func(r *appRecord) (string, time.Time) { return r.DisplayName, r.Created }, (*appRecord).view)
}

// UpdateApp changes an application: fn may change DisplayName,
// IdentifierURIs, SignInAudience, KeyCredentials and Extra; other fields
// are kept.
func (p *Provider) UpdateApp(ctx context.Context, id string, fn func(*Application) error) (*Application, error) {
	rec, err := updateRecord(ctx, p, kindApps, id, func(r *appRecord) error {
		v := r.view()
		if err := fn(v); err != nil {
			return err
		}
		if strings.TrimSpace(v.DisplayName) == "" {
			return badRequest("Property 'displayName' cannot be empty.")
		}
		r.DisplayName, r.IdentifierURIs, r.SignInAudience = v.DisplayName, v.IdentifierURIs, v.SignInAudience
		r.KeyCredentials, r.Extra = v.KeyCredentials, v.Extra
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rec.view(), nil
}

// DeleteApp deletes an application and its service principal; tokens
// issued to it stop verifying at once.
func (p *Provider) DeleteApp(ctx context.Context, id string) error {
	rec, _, err := getRecord[appRecord](ctx, p, kindApps, id)
	if err != nil {
		return err
	}
	if spID, err := p.lookupIndex(ctx, kindSPIndex, rec.AppID); err == nil {
		if err := p.DeleteServicePrincipal(ctx, spID); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			return err
		}
	} else if !errdefs.Is(err, errdefs.ErrNotFound) {
		return err
	}
	if err := p.deleteObject(ctx, kindApps, rec.ID); err != nil {
		return err
	}
	if err := p.deleteObject(ctx, kindAppIndex, rec.AppID); err != nil {
		return err
	}
	p.log.Debug("identity: deleted an application", "id", rec.ID, "appId", rec.AppID)
	return nil
}

// addPassword adds a fresh secret to creds and returns its credential
// with SecretText set.
func (p *Provider) addPassword(creds *[]passwordRecord, spec PasswordSpec) (*PasswordCredential, error) {
	if len(*creds) >= maxSecrets {
		return nil, badRequest("Too many password credentials: at most %d are allowed.", maxSecrets)
	}
	start, end := spec.Start, spec.End
	if start.IsZero() {
		start = p.now()
	}
	if end.IsZero() {
		end = start.AddDate(2, 0, 0)
	}
	if !end.After(start) {
		return nil, badRequest("Invalid value specified for property 'endDateTime' of resource 'PasswordCredential'.")
	}
	secret := newSecret()
	rec := newPasswordRecord(uuid.NewString(), spec.DisplayName, secret, start, end)
	*creds = append(*creds, rec)
	c := credentialsOf([]passwordRecord{rec})[0]
	c.SecretText = &secret
	return &c, nil
}

func removePassword(creds *[]passwordRecord, keyID string) error {
	i := slices.IndexFunc(*creds, func(r passwordRecord) bool { return strings.EqualFold(r.KeyID, keyID) })
	if i < 0 {
		return errdefs.WithCode(errdefs.ErrNotFound, "Request_ResourceNotFound",
			"No password credential with keyId '%s' was found.", keyID)
	}
	*creds = slices.Delete(*creds, i, i+1)
	return nil
}

// AddPassword adds a client secret to an application. The result is the
// only place the secret ever appears (SecretText).
func (p *Provider) AddPassword(ctx context.Context, appObjectID string, spec PasswordSpec) (*PasswordCredential, error) {
	return addPasswordTo[appRecord](ctx, p, kindApps, appObjectID, spec)
}

// RemovePassword removes an application's client secret.
func (p *Provider) RemovePassword(ctx context.Context, appObjectID, keyID string) error {
	return removePasswordFrom[appRecord](ctx, p, kindApps, appObjectID, keyID)
}

// --- service principals ---

func doesNotReference(appID string) error {
	// Graph's wording; az retries on it, as Graph replicates lazily.
	return badRequest("The appId '%s' of the service principal does not reference a valid application object.", appID)
}

// CreateServicePrincipal makes the service principal of an application
// (one per application).
func (p *Provider) CreateServicePrincipal(ctx context.Context, spec SPSpec) (*ServicePrincipal, error) {
	app, err := p.appRecordByAppID(ctx, spec.AppID)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, doesNotReference(spec.AppID)
	}
	if err != nil {
		return nil, err
	}
	rec := &spRecord{
		ID: uuid.NewString(), AppID: app.AppID, DisplayName: app.DisplayName, AppDisplayName: app.DisplayName,
		AccountEnabled: !spec.AccountDisabled, Created: p.now().UTC(),
		Names: append([]string{app.AppID}, app.IdentifierURIs...), Extra: spec.Extra,
	}
	if err := putRecord(ctx, p, kindSPIndex, app.AppID, indexRecord{ID: rec.ID}, 0); err != nil {
		if errdefs.Is(err, errdefs.ErrConflict) {
			return nil, errdefs.WithCode(errdefs.ErrAlreadyExists, "Request_MultipleObjectsWithSameKeyValue",
				"The service principal cannot be created, updated, or restored because the service principal name %s is already in use.", app.AppID)
		}
		return nil, err
	}
	undo := func() {
		bg := context.WithoutCancel(ctx)
		_ = p.st.DeleteObject(bg, kindSPs, rec.ID, store.AnyRevision)
		_ = p.st.DeleteObject(bg, kindSPIndex, app.AppID, store.AnyRevision)
	}
	if err := putRecord(ctx, p, kindSPs, rec.ID, rec, 0); err != nil {
		undo()
		return nil, err
	}
	// The application may have been deleted meanwhile (its delete did not
	// see this service principal): then this one must not exist either.
	if _, err := p.appRecordByAppID(ctx, app.AppID); err != nil {
		undo()
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return nil, doesNotReference(spec.AppID)
		}
		return nil, err
	}
	p.log.Debug("identity: created a service principal", "id", rec.ID, "appId", rec.AppID)
	return p.spView(rec), nil
}

// GetServicePrincipal returns the service principal with object id id.
func (p *Provider) GetServicePrincipal(ctx context.Context, id string) (*ServicePrincipal, error) {
	rec, _, err := getRecord[spRecord](ctx, p, kindSPs, id)
	if err != nil {
		return nil, err
	}
	return p.spView(rec), nil
}

func (p *Provider) spRecordByAppID(ctx context.Context, appID string) (*spRecord, error) {
	return recordByAppID[spRecord](ctx, p, kindSPIndex, kindSPs, appID)
}

// ServicePrincipalByAppID returns the service principal of the
// application whose appId is appID.
func (p *Provider) ServicePrincipalByAppID(ctx context.Context, appID string) (*ServicePrincipal, error) {
	rec, err := p.spRecordByAppID(ctx, appID)
	if err != nil {
		return nil, err
	}
	return p.spView(rec), nil
}

// ListServicePrincipals lists the service principals, oldest first; with
// a displayName, only those of that name (without regard to case).
func (p *Provider) ListServicePrincipals(ctx context.Context, displayName string) ([]ServicePrincipal, error) {
	return listViews(ctx, p, kindSPs, displayName,
		func(r *spRecord) (string, time.Time) { return r.DisplayName, r.Created }, p.spView)
}

// UpdateServicePrincipal changes a service principal: fn may change
// DisplayName, AccountEnabled and Extra. A disabled one gets no tokens
// and its tokens stop verifying.
func (p *Provider) UpdateServicePrincipal(ctx context.Context, id string, fn func(*ServicePrincipal) error) (*ServicePrincipal, error) {
	rec, err := updateRecord(ctx, p, kindSPs, id, func(r *spRecord) error {
		v := p.spView(r)
		if err := fn(v); err != nil {
			return err
		}
		if strings.TrimSpace(v.DisplayName) == "" {
			return badRequest("Property 'displayName' cannot be empty.")
		}
		r.DisplayName, r.AccountEnabled, r.Extra = v.DisplayName, v.AccountEnabled, v.Extra
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p.spView(rec), nil
}

// DeleteServicePrincipal deletes a service principal (not its
// application); its tokens stop verifying at once.
func (p *Provider) DeleteServicePrincipal(ctx context.Context, id string) error {
	rec, _, err := getRecord[spRecord](ctx, p, kindSPs, id)
	if err != nil {
		return err
	}
	if err := p.deleteObject(ctx, kindSPs, rec.ID); err != nil {
		return err
	}
	if ixID, err := p.lookupIndex(ctx, kindSPIndex, rec.AppID); err == nil && ixID == rec.ID {
		if err := p.deleteObject(ctx, kindSPIndex, rec.AppID); err != nil {
			return err
		}
	}
	p.log.Debug("identity: deleted a service principal", "id", rec.ID, "appId", rec.AppID)
	return nil
}

// AddServicePrincipalPassword adds a client secret to a service principal
// (what `az ad sp credential reset` does).
func (p *Provider) AddServicePrincipalPassword(ctx context.Context, spObjectID string, spec PasswordSpec) (*PasswordCredential, error) {
	return addPasswordTo[spRecord](ctx, p, kindSPs, spObjectID, spec)
}

// RemoveServicePrincipalPassword removes a service principal's client
// secret.
func (p *Provider) RemoveServicePrincipalPassword(ctx context.Context, spObjectID, keyID string) error {
	return removePasswordFrom[spRecord](ctx, p, kindSPs, spObjectID, keyID)
}

// Credentials are a new service principal's sign-in, as
// <data-dir>/admin-sp.json and `create-for-rbac` print them.
type Credentials struct {
	AppID       string `json:"appId"`
	Password    string `json:"password"`
	Tenant      string `json:"tenant"`
	DisplayName string `json:"displayName,omitempty"`
	// ObjectID is the service principal's object id (what role
	// assignments name); not in the file az prints.
	ObjectID string `json:"-"`
}

// String describes the credentials without the password.
func (c Credentials) String() string {
	return fmt.Sprintf("credentials of %q (appId=%s tenant=%s password=REDACTED)", c.DisplayName, c.AppID, c.Tenant)
}

// GoString keeps %#v from printing the password.
func (c Credentials) GoString() string { return c.String() }

// CreateServicePrincipalWithSecret makes an application, a client secret
// valid for validFor (0: a year, as create-for-rbac) and its service
// principal, as `az ad sp create-for-rbac` does. On failure it deletes
// what it made.
func (p *Provider) CreateServicePrincipalWithSecret(ctx context.Context, displayName string, validFor time.Duration) (_ *Credentials, retErr error) {
	app, err := p.CreateApp(ctx, AppSpec{DisplayName: displayName})
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			_ = p.DeleteApp(context.WithoutCancel(ctx), app.ID)
		}
	}()
	start := p.now()
	end := start.AddDate(1, 0, 0)
	if validFor > 0 {
		end = start.Add(validFor)
	}
	cred, err := p.AddPassword(ctx, app.ID, PasswordSpec{DisplayName: "rbac", Start: start, End: end})
	if err != nil {
		return nil, err
	}
	sp, err := p.CreateServicePrincipal(ctx, SPSpec{AppID: app.AppID})
	if err != nil {
		return nil, err
	}
	return &Credentials{AppID: app.AppID, Password: *cred.SecretText, Tenant: p.tenant, DisplayName: displayName, ObjectID: sp.ID}, nil
}
