// Package storage keeps Microsoft.Storage's storage accounts, their keys
// and their file shares, as records in the store's generic objects
// (store.ObjectStore), so that every server and agent of a cluster sees the
// same ones:
//
//	storage.accounts   <account>           Account: ARM identity, SKU, kind, tags, uid, two sealed keys
//	storage.shares     <account>/<share>   Share: the account's uid, the share's id, quota, tier, metadata
//
// Account names are unique in the whole Skiff, as in Azure: the record's
// key is the name, and a second account of that name anywhere is refused
// (StorageAccountAlreadyExists in the same subscription,
// StorageAccountAlreadyTaken elsewhere). Names are lower-case (ARM's rule),
// so keys need no folding.
//
// Each account has two random 512-bit keys (base64, 88 characters, as
// Azure's), sealed at rest with the store's sealer (package seal). They
// leave this package only through ListKeys and RegenerateKey, never in an
// Account, an error or a log; CheckKey compares a key in constant time.
//
// Each account and each share gets a random uid when it is created, so a
// share deleted and created again under the same name (or one of an
// account deleted and created again) is a new, empty share: its data lives
// in a directory named by the share's name and id (Share.Dir). A share
// record is the account's only while its AccountUID is the account's: one
// left by a delete that a crash cut short is read as absent.
//
// Writes are compare-and-swap on the records' revisions; deleting an
// account deletes its shares first, then the account.
package storage

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
)

// Object kinds in the store (see the package comment).
const (
	kindAccounts = "storage.accounts"
	kindShares   = "storage.shares"
)

// keyBytes is the length of an account key before base64: 512 bits.
const keyBytes = 64

// Key names, as ARM names an account's two keys.
const (
	Key1 = "key1"
	Key2 = "key2"
)

// Config configures a Service.
type Config struct {
	// Store keeps the records (required).
	Store store.ObjectStore
	// Sealer seals the account keys at rest (required).
	Sealer *seal.Sealer
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Service is the storage accounts and shares of one store. It is safe for
// concurrent use; several Services on one store (the servers and agents of
// a cluster) agree.
type Service struct {
	st     store.ObjectStore
	sealer *seal.Sealer
	now    func() time.Time
}

// New returns the Service of cfg.Store.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Sealer == nil {
		return nil, fmt.Errorf("storage: a store and a sealer are required: %w", errdefs.ErrInvalidArgument)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Service{st: cfg.Store, sealer: cfg.Sealer, now: now}, nil
}

// Account is a storage account, without its keys' values.
type Account struct {
	Name          string            `json:"name"`
	UID           string            `json:"uid"`
	Subscription  string            `json:"subscription"`
	ResourceGroup string            `json:"resourceGroup"`
	Location      string            `json:"location"`
	Tags          map[string]string `json:"tags,omitempty"`
	Sku           string            `json:"sku"`
	Kind          string            `json:"kind"`
	AccessTier    string            `json:"accessTier,omitempty"`
	MinimumTLS    string            `json:"minimumTlsVersion,omitempty"`
	CreatedAt     time.Time         `json:"createdAt"`
	// KeysCreatedAt is when key1 and key2 were made.
	KeysCreatedAt [2]time.Time `json:"-"`
}

// ID is the account's ARM resource id.
func (a *Account) ID() string {
	return AccountID(a.Subscription, a.ResourceGroup, a.Name)
}

// AccountID is the ARM id of an account.
func AccountID(sub, rg, name string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/" + api.StorageAccountType + "/" + name
}

// Premium reports whether the account's SKU is of the Premium tier.
func (a *Account) Premium() bool { return strings.HasPrefix(a.Sku, "Premium_") }

// KeyValue is one of an account's keys, in plain text: ListKeys' answer.
type KeyValue struct {
	Name      string
	Value     string
	CreatedAt time.Time
}

// accountRecord is an account as stored: the Account and its sealed keys.
type accountRecord struct {
	Account
	Keys []sealedKey `json:"keys"`
}

type sealedKey struct {
	Name      string    `json:"name"`
	Sealed    string    `json:"value"` // seal.Prefix...
	CreatedAt time.Time `json:"createdAt"`
}

func (r *accountRecord) account() *Account {
	a := r.Account
	a.Tags = cloneTags(a.Tags)
	for i, k := range r.Keys {
		if i < 2 {
			a.KeysCreatedAt[i] = k.CreatedAt
		}
	}
	return &a
}

// AccountSpec is what a PUT or PATCH of an account asks for (SKU, kind
// and tiers in api's canonical case, validated).
type AccountSpec struct {
	Subscription, ResourceGroup, Name string
	Location                          string
	Tags                              map[string]string
	Sku, Kind, AccessTier, MinimumTLS string
}

// Errors, with Azure Storage's codes.

// AccountNotFound is the 404 of an account that does not exist (or not
// where it is asked for).
func AccountNotFound(name string) error {
	return errdefs.WithCode(errdefs.ErrNotFound, "StorageAccountNotFound", "The storage account '%s' was not found.", clip(name))
}

// ShareNotFound is the 404 of a share that does not exist.
func ShareNotFound(account, share string) error {
	return errdefs.WithCode(errdefs.ErrNotFound, "ShareNotFound", "The file share '%s' of storage account '%s' does not exist.", clip(share), clip(account))
}

// ErrKeyInvalid is CheckKey's answer to a key that is not one of the
// account's (class errdefs.ErrUnauthorized).
var ErrKeyInvalid = fmt.Errorf("the storage account key is not valid: %w", errdefs.ErrUnauthorized)

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func cloneTags(t map[string]string) map[string]string {
	if t == nil {
		return nil
	}
	out := make(map[string]string, len(t))
	for k, v := range t {
		out[k] = v
	}
	return out
}

// uid is a random id of 128 bits, hex.
func uid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// newKey is a random key as Azure's: 64 bytes, standard base64.
func newKey() string {
	b := make([]byte, keyBytes)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func (s *Service) sealedKey(name string, at time.Time) (sealedKey, error) {
	sealed, err := s.sealer.Seal(newKey())
	if err != nil {
		return sealedKey{}, fmt.Errorf("storage account key: %w", err)
	}
	return sealedKey{Name: name, Sealed: sealed, CreatedAt: at}, nil
}

// getRecord reads the account record of name (any subscription).
func (s *Service) getRecord(ctx context.Context, name string) (*accountRecord, int64, error) {
	if !api.StorageAccountNameOK(name) {
		return nil, 0, AccountNotFound(name)
	}
	o, err := s.st.GetObject(ctx, kindAccounts, name)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, 0, AccountNotFound(name)
	}
	if err != nil {
		return nil, 0, err
	}
	var r accountRecord
	if err := json.Unmarshal(o.Value, &r); err != nil {
		return nil, 0, fmt.Errorf("storage account %s: a damaged record: %w", name, err)
	}
	return &r, o.Revision, nil
}

// in reports whether the account is in sub/rg (rg "" any of sub).
func (a *Account) in(sub, rg string) bool {
	return strings.EqualFold(a.Subscription, sub) && (rg == "" || strings.EqualFold(a.ResourceGroup, rg))
}

// record reads the account name of sub/rg.
func (s *Service) record(ctx context.Context, sub, rg, name string) (*accountRecord, int64, error) {
	r, rev, err := s.getRecord(ctx, strings.ToLower(name))
	if err != nil {
		return nil, 0, err
	}
	if !r.in(sub, rg) {
		return nil, 0, AccountNotFound(name)
	}
	return r, rev, nil
}

func (s *Service) put(ctx context.Context, r *accountRecord, rev int64) (int64, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	return s.st.PutObject(ctx, kindAccounts, r.Name, b, rev)
}

// CreateOrUpdateAccount creates the account, or updates the one of that
// name in the same resource group (tags, SKU, access tier, TLS version;
// the kind only from Storage or BlobStorage to StorageV2, as Azure
// upgrades), and returns it and whether it is new.
func (s *Service) CreateOrUpdateAccount(ctx context.Context, spec AccountSpec) (*Account, bool, error) {
	if err := api.ValidateStorageAccountName(spec.Name); err != nil {
		return nil, false, err
	}
	for {
		r, rev, err := s.getRecord(ctx, spec.Name)
		switch {
		case errdefs.Is(err, errdefs.ErrNotFound):
			a, err := s.create(ctx, spec)
			if errdefs.Is(err, errdefs.ErrConflict) {
				continue // created meanwhile: update it, or refuse
			}
			return a, err == nil, err
		case err != nil:
			return nil, false, err
		}
		if !r.in(spec.Subscription, spec.ResourceGroup) {
			if strings.EqualFold(r.Subscription, spec.Subscription) {
				return nil, false, errdefs.WithCode(errdefs.ErrConflict, "StorageAccountAlreadyExists",
					"The storage account named %s already exists under the subscription.", spec.Name)
			}
			return nil, false, errdefs.WithCode(errdefs.ErrConflict, "StorageAccountAlreadyTaken",
				"The storage account named %s is already taken.", spec.Name)
		}
		if !strings.EqualFold(r.Location, spec.Location) {
			return nil, false, errdefs.WithCode(errdefs.ErrConflict, "InvalidResourceLocation",
				"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
				spec.Name, r.Location, r.ResourceGroup, clip(spec.Location))
		}
		if spec.Kind != r.Kind && !(spec.Kind == "StorageV2" && (r.Kind == "Storage" || r.Kind == "BlobStorage")) {
			return nil, false, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidValuesForRequestParameters",
				"The kind of storage account %s cannot be changed from '%s' to '%s'.", spec.Name, r.Kind, spec.Kind)
		}
		if strings.HasPrefix(spec.Sku, "Premium_") != r.Premium() {
			return nil, false, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidValuesForRequestParameters",
				"The SKU of storage account %s cannot be changed between the Standard and Premium tiers ('%s' to '%s').", spec.Name, r.Sku, spec.Sku)
		}
		r.Tags, r.Sku, r.Kind, r.AccessTier, r.MinimumTLS = cloneTags(spec.Tags), spec.Sku, spec.Kind, spec.AccessTier, spec.MinimumTLS
		if _, err := s.put(ctx, r, rev); errdefs.Is(err, errdefs.ErrConflict) || errdefs.Is(err, errdefs.ErrNotFound) {
			continue // changed or deleted meanwhile: decide again
		} else if err != nil {
			return nil, false, err
		}
		return r.account(), false, nil
	}
}

func (s *Service) create(ctx context.Context, spec AccountSpec) (*Account, error) {
	now := s.now().UTC()
	r := &accountRecord{Account: Account{
		Name: spec.Name, UID: uid(), Subscription: spec.Subscription, ResourceGroup: spec.ResourceGroup, Location: spec.Location,
		Tags: cloneTags(spec.Tags), Sku: spec.Sku, Kind: spec.Kind, AccessTier: spec.AccessTier, MinimumTLS: spec.MinimumTLS, CreatedAt: now,
	}}
	for _, name := range []string{Key1, Key2} {
		k, err := s.sealedKey(name, now)
		if err != nil {
			return nil, err
		}
		r.Keys = append(r.Keys, k)
	}
	if _, err := s.put(ctx, r, 0); err != nil {
		return nil, err
	}
	return r.account(), nil
}

// GetAccount reads the account name of sub/rg (StorageAccountNotFound if
// there is none there).
func (s *Service) GetAccount(ctx context.Context, sub, rg, name string) (*Account, error) {
	r, _, err := s.record(ctx, sub, rg, name)
	if err != nil {
		return nil, err
	}
	return r.account(), nil
}

// FindAccount reads the account name wherever it is (the name is unique
// in the whole Skiff), as an azureFile volume names it.
func (s *Service) FindAccount(ctx context.Context, name string) (*Account, error) {
	r, _, err := s.getRecord(ctx, strings.ToLower(name))
	if err != nil {
		return nil, err
	}
	return r.account(), nil
}

// ListAccounts lists the accounts of a resource group, or of the whole
// subscription when rg is "", by name.
func (s *Service) ListAccounts(ctx context.Context, sub, rg string) ([]Account, error) {
	objs, err := s.st.ListObjects(ctx, kindAccounts, "")
	if err != nil {
		return nil, err
	}
	out := []Account{}
	for _, o := range objs {
		var r accountRecord
		if err := json.Unmarshal(o.Value, &r); err != nil {
			return nil, fmt.Errorf("storage account %s: a damaged record: %w", o.Key, err)
		}
		if r.in(sub, rg) {
			out = append(out, *r.account())
		}
	}
	return out, nil
}

// DeleteAccount deletes the account name of sub/rg and its shares, and
// returns the shares it deleted (whose data the hosts remove).
func (s *Service) DeleteAccount(ctx context.Context, sub, rg, name string) ([]Share, error) {
	r, rev, err := s.record(ctx, sub, rg, name)
	if err != nil {
		return nil, err
	}
	shares, err := s.shareRecords(ctx, r.Name, "")
	if err != nil {
		return nil, err
	}
	var gone []Share
	for _, sh := range shares {
		if err := s.st.DeleteObject(ctx, kindShares, shareKey(sh.Account, sh.Name), sh.revision); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			return gone, err
		}
		gone = append(gone, sh) // a stale one's data too
	}
	if err := s.st.DeleteObject(ctx, kindAccounts, r.Name, rev); err != nil {
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return gone, AccountNotFound(name)
		}
		return gone, err
	}
	return gone, nil
}

// DeleteResourceGroup deletes every account of sub/rg with its shares, and
// returns the shares it deleted.
func (s *Service) DeleteResourceGroup(ctx context.Context, sub, rg string) ([]Share, error) {
	accts, err := s.ListAccounts(ctx, sub, rg)
	if err != nil {
		return nil, err
	}
	var gone []Share
	for _, a := range accts {
		shares, err := s.DeleteAccount(ctx, sub, rg, a.Name)
		gone = append(gone, shares...)
		if err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			return gone, err
		}
	}
	return gone, nil
}

// ListKeys returns the account's two keys in plain text.
func (s *Service) ListKeys(ctx context.Context, sub, rg, name string) ([]KeyValue, error) {
	r, _, err := s.record(ctx, sub, rg, name)
	if err != nil {
		return nil, err
	}
	return s.open(r)
}

func (s *Service) open(r *accountRecord) ([]KeyValue, error) {
	out := make([]KeyValue, 0, len(r.Keys))
	for _, k := range r.Keys {
		v, err := s.sealer.Open(k.Sealed)
		if err != nil {
			return nil, fmt.Errorf("storage account %s: key %s: %w", r.Name, k.Name, err)
		}
		out = append(out, KeyValue{Name: k.Name, Value: v, CreatedAt: k.CreatedAt})
	}
	return out, nil
}

// RegenerateKey replaces key1 or key2 of the account with a new random key
// and returns both keys; the old one is no longer valid.
func (s *Service) RegenerateKey(ctx context.Context, sub, rg, name, keyName string) ([]KeyValue, error) {
	for {
		r, rev, err := s.record(ctx, sub, rg, name)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(r.Keys, func(k sealedKey) bool { return strings.EqualFold(k.Name, keyName) })
		if i < 0 {
			return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidValuesForRequestParameters",
				"The 'keyName' '%s' is invalid: it must be 'key1' or 'key2'.", clip(keyName))
		}
		k, err := s.sealedKey(r.Keys[i].Name, s.now().UTC())
		if err != nil {
			return nil, err
		}
		r.Keys[i] = k
		if _, err := s.put(ctx, r, rev); errdefs.Is(err, errdefs.ErrConflict) {
			continue
		} else if errdefs.Is(err, errdefs.ErrNotFound) {
			return nil, AccountNotFound(name)
		} else if err != nil {
			return nil, err
		}
		return s.open(r)
	}
}

// CheckKey returns the account name (wherever it is) if key is one of its
// two current keys; StorageAccountNotFound if there is no such account,
// ErrKeyInvalid if the key is not one of them. Keys are compared in
// constant time, both always.
func (s *Service) CheckKey(ctx context.Context, name, key string) (*Account, error) {
	r, _, err := s.getRecord(ctx, strings.ToLower(name))
	if err != nil {
		return nil, err
	}
	keys, err := s.open(r)
	if err != nil {
		return nil, err
	}
	ok := 0
	for _, k := range keys {
		ok |= subtle.ConstantTimeCompare([]byte(k.Value), []byte(key))
	}
	if ok != 1 {
		return nil, ErrKeyInvalid
	}
	return r.account(), nil
}

// CheckName answers checkNameAvailability for an account name.
func (s *Service) CheckName(ctx context.Context, name string) (api.StorageCheckNameResult, error) {
	if err := api.ValidateStorageAccountName(name); err != nil {
		return api.StorageCheckNameResult{Reason: "AccountNameInvalid", Message: err.Error()}, nil
	}
	_, _, err := s.getRecord(ctx, name)
	switch {
	case err == nil:
		return api.StorageCheckNameResult{Reason: "AlreadyExists", Message: "The storage account named " + name + " is already taken."}, nil
	case errdefs.Is(err, errdefs.ErrNotFound):
		return api.StorageCheckNameResult{NameAvailable: true}, nil
	}
	return api.StorageCheckNameResult{}, err
}
