package api

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Microsoft.Storage as ARM serves it (specification/storage in
// azure-rest-api-specs; the JSON names the Python SDK of az 2.45 reads,
// azure.mgmt.storage v2022_09_01): storage accounts, their keys, the file
// service and its shares. Only what Skiff does is modelled: an account is
// a name, a SKU and two keys; a share is a directory on a host that
// azureFile volumes mount.

// Resource types of Microsoft.Storage.
const (
	StorageAccountType = "Microsoft.Storage/storageAccounts"
	FileServiceType    = "Microsoft.Storage/storageAccounts/fileServices"
	FileShareType      = "Microsoft.Storage/storageAccounts/fileServices/shares"
)

// StorageEndpointSuffix is the DNS suffix of the storage endpoints Skiff
// names (https://ACCOUNT.file.SUFFIX/): the "core.windows.net" of a Skiff
// cloud. Nothing answers there (Skiff serves no storage data plane); it is
// what connection strings and az's cloud configuration carry.
const StorageEndpointSuffix = "core.skiff.local"

// The api-versions of Microsoft.Storage the server accepts: ARM's first
// (2015-06-15, whose accounts name the SKU properties.accountType and list
// their keys as key1 and key2) to the current ones, which az 2.45
// (2022-09-01) and the Go SDK send.
const (
	MinStorageAPIVersion = "2015-06-15"
	MaxStorageAPIVersion = "2025-06-01"
	// storageKeysListVersion is the first api-version whose listKeys
	// answers {"keys": [...]}.
	storageKeysListVersion = "2016-01-01"
)

// StorageAccount is a Microsoft.Storage/storageAccounts resource.
type StorageAccount struct {
	ID         string                    `json:"id,omitempty"`
	Name       string                    `json:"name,omitempty"`
	Type       string                    `json:"type,omitempty"`
	Location   string                    `json:"location"`
	Tags       map[string]string         `json:"tags,omitempty"`
	Sku        *StorageSku               `json:"sku,omitempty"`
	Kind       string                    `json:"kind,omitempty"`
	Properties *StorageAccountProperties `json:"properties,omitempty"`
}

// StorageSku is an account's redundancy (name) and performance tier.
type StorageSku struct {
	Name string `json:"name"`
	Tier string `json:"tier,omitempty"`
}

// StorageAccountProperties are the properties Skiff keeps or reports.
type StorageAccountProperties struct {
	ProvisioningState string                  `json:"provisioningState,omitempty"`
	PrimaryEndpoints  *StorageEndpoints       `json:"primaryEndpoints,omitempty"`
	PrimaryLocation   string                  `json:"primaryLocation,omitempty"`
	StatusOfPrimary   string                  `json:"statusOfPrimary,omitempty"`
	CreationTime      *time.Time              `json:"creationTime,omitempty"`
	KeyCreationTime   *StorageKeyCreationTime `json:"keyCreationTime,omitempty"`
	AccessTier        string                  `json:"accessTier,omitempty"`
	// SupportsHTTPSTrafficOnly and Encryption describe endpoints Skiff
	// does not serve; they are reported as Azure reports a new account's.
	SupportsHTTPSTrafficOnly *bool              `json:"supportsHttpsTrafficOnly,omitempty"`
	MinimumTLSVersion        string             `json:"minimumTlsVersion,omitempty"`
	Encryption               *StorageEncryption `json:"encryption,omitempty"`
	// AccountType is the SKU's name in api-version 2015-06-15.
	AccountType string `json:"accountType,omitempty"`
}

// StorageEndpoints are an account's service URLs.
type StorageEndpoints struct {
	Blob  string `json:"blob,omitempty"`
	Queue string `json:"queue,omitempty"`
	Table string `json:"table,omitempty"`
	File  string `json:"file,omitempty"`
	Web   string `json:"web,omitempty"`
	Dfs   string `json:"dfs,omitempty"`
}

// StorageKeyCreationTime is when each key was made.
type StorageKeyCreationTime struct {
	Key1 *time.Time `json:"key1,omitempty"`
	Key2 *time.Time `json:"key2,omitempty"`
}

// StorageEncryption is an account's encryption at rest.
type StorageEncryption struct {
	Services  *StorageEncryptionServices `json:"services,omitempty"`
	KeySource string                     `json:"keySource,omitempty"`
}

// StorageEncryptionServices are the services encryption covers.
type StorageEncryptionServices struct {
	Blob *StorageEncryptionService `json:"blob,omitempty"`
	File *StorageEncryptionService `json:"file,omitempty"`
}

// StorageEncryptionService is one service's encryption.
type StorageEncryptionService struct {
	Enabled         bool       `json:"enabled"`
	KeyType         string     `json:"keyType,omitempty"`
	LastEnabledTime *time.Time `json:"lastEnabledTime,omitempty"`
}

// StorageAccountKey is one key of StorageAccounts_ListKeys.
type StorageAccountKey struct {
	KeyName      string     `json:"keyName"`
	Value        string     `json:"value"`
	Permissions  string     `json:"permissions"`
	CreationTime *time.Time `json:"creationTime,omitempty"`
}

// StorageAccountListKeysResult is the answer of listKeys and
// regenerateKey.
type StorageAccountListKeysResult struct {
	Keys []StorageAccountKey `json:"keys"`
}

// StorageAccountKeysV2015 is listKeys' answer in api-version 2015-06-15.
type StorageAccountKeysV2015 struct {
	Key1 string `json:"key1"`
	Key2 string `json:"key2"`
}

// StorageAccountRegenerateKeyParameters is regenerateKey's body.
type StorageAccountRegenerateKeyParameters struct {
	KeyName string `json:"keyName"`
}

// StorageCheckNameRequest is the body of checkNameAvailability.
type StorageCheckNameRequest struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// StorageCheckNameResult is checkNameAvailability's answer; Reason is
// AccountNameInvalid or AlreadyExists when the name is not available.
type StorageCheckNameResult struct {
	NameAvailable bool   `json:"nameAvailable"`
	Reason        string `json:"reason,omitempty"`
	Message       string `json:"message,omitempty"`
}

// FileService is an account's one file service, "default".
type FileService struct {
	ID         string                `json:"id"`
	Name       string                `json:"name"`
	Type       string                `json:"type"`
	Sku        *StorageSku           `json:"sku,omitempty"`
	Properties FileServiceProperties `json:"properties"`
}

// FileServiceProperties are the file service's settings, as a new
// account's: no CORS rules, no soft delete.
type FileServiceProperties struct {
	Cors                       *StorageCors         `json:"cors,omitempty"`
	ShareDeleteRetentionPolicy *StorageDeletePolicy `json:"shareDeleteRetentionPolicy,omitempty"`
}

// StorageCors are CORS rules (always none).
type StorageCors struct {
	CorsRules []json.RawMessage `json:"corsRules"`
}

// StorageDeletePolicy is a soft-delete policy (always disabled: a deleted
// share is gone).
type StorageDeletePolicy struct {
	Enabled bool `json:"enabled"`
}

// FileShare is a Microsoft.Storage/storageAccounts/fileServices/shares
// resource.
type FileShare struct {
	ID         string              `json:"id,omitempty"`
	Name       string              `json:"name,omitempty"`
	Type       string              `json:"type,omitempty"`
	Etag       string              `json:"etag,omitempty"`
	Properties FileShareProperties `json:"properties"`
}

// FileShareProperties are a share's properties.
type FileShareProperties struct {
	LastModifiedTime *time.Time        `json:"lastModifiedTime,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	// ShareQuota is the share's size in GiB (1 to MaxShareQuota; default
	// DefaultShareQuota). Skiff records it; it does not enforce it.
	ShareQuota       int    `json:"shareQuota,omitempty"`
	EnabledProtocols string `json:"enabledProtocols,omitempty"`
	AccessTier       string `json:"accessTier,omitempty"`
	LeaseStatus      string `json:"leaseStatus,omitempty"`
	LeaseState       string `json:"leaseState,omitempty"`
}

// Share quotas in GiB: Azure's default and its largest (a large file
// share's).
const (
	DefaultShareQuota = 5120
	MaxShareQuota     = 102400
)

// The SKU names, kinds and tiers Azure offers, canonical case.
var (
	storageSkus  = []string{"Standard_LRS", "Standard_GRS", "Standard_RAGRS", "Standard_ZRS", "Premium_LRS", "Premium_ZRS", "Standard_GZRS", "Standard_RAGZRS"}
	storageKinds = []string{"Storage", "StorageV2", "BlobStorage", "FileStorage", "BlockBlobStorage"}
	accessTiers  = []string{"Hot", "Cool", "Premium"}
	shareTiers   = []string{"TransactionOptimized", "Hot", "Cool", "Premium"}
	tlsVersions  = []string{"TLS1_0", "TLS1_1", "TLS1_2"}
)

// DefaultStorageKind is the kind of an account created without one.
const DefaultStorageKind = "StorageV2"

// CheckStorageAPIVersion checks an api-version of a Microsoft.Storage route,
// as CheckAPIVersion does the container groups' (same codes).
func CheckStorageAPIVersion(v string) error {
	return checkAPIVersionRange(v, MinStorageAPIVersion, MaxStorageAPIVersion)
}

// StorageKeysAsList reports whether listKeys answers api-version v with
// {"keys": [...]} (every version but 2015-06-15, which answers key1 and
// key2).
func StorageKeysAsList(v string) bool {
	return strings.ToLower(v) >= storageKeysListVersion
}

// ValidateStorageAccountName checks a storage account name: 3 to 24
// lower-case letters and digits (code AccountNameInvalid).
func ValidateStorageAccountName(name string) error {
	if !validStorageAccountName(name) {
		return invalid("AccountNameInvalid",
			"%s is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only.",
			quoteName(name))
	}
	return nil
}

func validStorageAccountName(name string) bool {
	if len(name) < 3 || len(name) > 24 {
		return false
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// StorageAccountNameOK reports whether name is a valid account name.
func StorageAccountNameOK(name string) bool { return validStorageAccountName(name) }

// ValidateFileShareName checks a file share name as ARM does: 3 to 63
// lower-case letters, digits and hyphens, starting and ending with a
// letter or digit, without two hyphens in a row (code
// InvalidResourceName).
func ValidateFileShareName(name string) error {
	if !validFileShareName(name) {
		return invalid("InvalidResourceName",
			"The share name %s is invalid. A share name must be 3 to 63 characters of lower-case letters, digits and single hyphens, and start and end with a letter or digit.",
			quoteName(name))
	}
	return nil
}

func validFileShareName(name string) bool {
	if len(name) < 3 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' || strings.Contains(name, "--") {
		return false
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// quoteName is a name as a message shows it: quoted and clipped.
func quoteName(name string) string { return "'" + truncate(name, 64) + "'" }

// DecodeStorageAccount decodes the body of StorageAccounts_Create (and of
// a PUT that updates). Names match case-insensitively; unknown keys and
// the read-only properties a client echoes from a GET are dropped; an
// api-version 2015-06-15 body's properties.accountType becomes the SKU.
// Errors are as DecodeContainerGroup's. See ValidateStorageAccount.
func DecodeStorageAccount(body []byte) (*StorageAccount, error) {
	body, err := objectBody(body)
	if err != nil {
		return nil, err
	}
	var in StorageAccount
	if err := unmarshal(body, &in); err != nil {
		return nil, err
	}
	out := &StorageAccount{Location: in.Location, Tags: in.Tags, Sku: in.Sku, Kind: in.Kind}
	if p := in.Properties; p != nil {
		out.Properties = &StorageAccountProperties{AccessTier: p.AccessTier, MinimumTLSVersion: p.MinimumTLSVersion}
		if out.Sku == nil && p.AccountType != "" {
			out.Sku = &StorageSku{Name: p.AccountType}
		}
	}
	return out, nil
}

// ValidateStorageAccount checks a decoded account and puts its values in
// canonical case, filling the defaults: kind StorageV2, the SKU's tier,
// access tier Hot for the kinds that have one. The SKU is required.
// DecodeStorageAccount also decodes a PATCH (StorageAccounts_Update):
// merge what it gives into the stored account, then validate that.
func ValidateStorageAccount(sa *StorageAccount) error {
	if sa.Sku == nil || strings.TrimSpace(sa.Sku.Name) == "" {
		return invalid(codeInvalidRequestContent, "The request content was invalid: the storage account's 'sku.name' is required (one of %s).",
			strings.Join(storageSkus, ", "))
	}
	name := canon(sa.Sku.Name, storageSkus...)
	if name == "" {
		return invalid("InvalidValuesForRequestParameters", "The value '%s' of 'sku.name' is not valid; it must be one of %s.",
			truncate(sa.Sku.Name, 64), strings.Join(storageSkus, ", "))
	}
	tier, _, _ := strings.Cut(name, "_")
	if sa.Sku.Tier != "" && !strings.EqualFold(sa.Sku.Tier, tier) {
		return invalid("InvalidValuesForRequestParameters", "The 'sku.tier' '%s' does not match the SKU '%s', whose tier is '%s'.",
			truncate(sa.Sku.Tier, 64), name, tier)
	}
	sa.Sku = &StorageSku{Name: name, Tier: tier}
	if sa.Kind == "" {
		sa.Kind = DefaultStorageKind
	}
	kind := canon(sa.Kind, storageKinds...)
	if kind == "" {
		return invalid("InvalidValuesForRequestParameters", "The value '%s' of 'kind' is not valid; it must be one of %s.",
			truncate(sa.Kind, 64), strings.Join(storageKinds, ", "))
	}
	sa.Kind = kind
	if (kind == "FileStorage" || kind == "BlockBlobStorage") && tier != "Premium" {
		return invalid("InvalidValuesForRequestParameters", "A storage account of kind '%s' needs a Premium SKU, not '%s'.", kind, name)
	}
	if err := ValidateTags(sa.Tags); err != nil {
		return err
	}
	if sa.Properties == nil {
		sa.Properties = &StorageAccountProperties{}
	}
	p := sa.Properties
	if p.AccessTier != "" {
		if p.AccessTier = canon(p.AccessTier, accessTiers...); p.AccessTier == "" {
			return invalid("InvalidValuesForRequestParameters", "The 'accessTier' must be one of %s.", strings.Join(accessTiers, ", "))
		}
	}
	if p.AccessTier == "" && (kind == "StorageV2" || kind == "BlobStorage") {
		p.AccessTier = "Hot"
		if tier == "Premium" {
			p.AccessTier = "Premium"
		}
	}
	if p.MinimumTLSVersion != "" {
		if p.MinimumTLSVersion = canon(p.MinimumTLSVersion, tlsVersions...); p.MinimumTLSVersion == "" {
			return invalid("InvalidValuesForRequestParameters", "The 'minimumTlsVersion' must be one of %s.", strings.Join(tlsVersions, ", "))
		}
	}
	return nil
}

// DecodeRegenerateKey decodes regenerateKey's body and returns the key's
// name, "key1" or "key2" (code InvalidValuesForRequestParameters
// otherwise).
func DecodeRegenerateKey(body []byte) (string, error) {
	body, err := objectBody(body)
	if err != nil {
		return "", err
	}
	var in StorageAccountRegenerateKeyParameters
	if err := unmarshal(body, &in); err != nil {
		return "", err
	}
	switch strings.ToLower(strings.TrimSpace(in.KeyName)) {
	case "key1":
		return "key1", nil
	case "key2":
		return "key2", nil
	}
	return "", invalid("InvalidValuesForRequestParameters", "The 'keyName' '%s' is invalid: it must be 'key1' or 'key2'.", truncate(in.KeyName, 64))
}

// DecodeCheckName decodes checkNameAvailability's body.
func DecodeCheckName(body []byte) (*StorageCheckNameRequest, error) {
	body, err := objectBody(body)
	if err != nil {
		return nil, err
	}
	var in StorageCheckNameRequest
	if err := unmarshal(body, &in); err != nil {
		return nil, err
	}
	if in.Type != "" && !strings.EqualFold(in.Type, StorageAccountType) {
		return nil, invalid("InvalidValuesForRequestParameters", "The 'type' '%s' is invalid: it must be '%s'.", truncate(in.Type, 64), StorageAccountType)
	}
	return &in, nil
}

// DecodeFileShare decodes the body of FileShares_Create or _Update (an
// empty body is a share with the defaults). See ValidateFileShare.
func DecodeFileShare(body []byte) (*FileShare, error) {
	var in FileShare
	if len(strings.TrimSpace(string(body))) == 0 {
		return &in, nil
	}
	body, err := objectBody(body)
	if err != nil {
		return nil, err
	}
	if err := unmarshal(body, &in); err != nil {
		return nil, err
	}
	p := in.Properties
	return &FileShare{Properties: FileShareProperties{Metadata: p.Metadata, ShareQuota: p.ShareQuota,
		EnabledProtocols: p.EnabledProtocols, AccessTier: p.AccessTier}}, nil
}

// ValidateFileShare checks a decoded share and fills its defaults: quota
// DefaultShareQuota, protocol SMB, tier TransactionOptimized (Premium on a
// Premium account, premium says).
func ValidateFileShare(fs *FileShare, premium bool) error {
	p := &fs.Properties
	switch {
	case p.ShareQuota == 0:
		p.ShareQuota = DefaultShareQuota
	case p.ShareQuota < 1 || p.ShareQuota > MaxShareQuota:
		return invalid("InvalidValuesForRequestParameters", "The 'shareQuota' %d is invalid: it must be from 1 to %d (GiB).", p.ShareQuota, MaxShareQuota)
	}
	switch strings.ToUpper(p.EnabledProtocols) {
	case "", "SMB":
		p.EnabledProtocols = "SMB"
	case "NFS":
		return invalid("InvalidValuesForRequestParameters", "NFS file shares are not supported here: the shares of Skiff are mounted by azureFile volumes, over SMB in Azure.")
	default:
		return invalid("InvalidValuesForRequestParameters", "The 'enabledProtocols' '%s' is invalid: it must be 'SMB'.", truncate(p.EnabledProtocols, 64))
	}
	if p.AccessTier != "" {
		if p.AccessTier = canon(p.AccessTier, shareTiers...); p.AccessTier == "" {
			return invalid("InvalidValuesForRequestParameters", "The share 'accessTier' must be one of %s.", strings.Join(shareTiers, ", "))
		}
	} else if premium {
		p.AccessTier = "Premium"
	} else {
		p.AccessTier = "TransactionOptimized"
	}
	if len(p.Metadata) > MaxTags {
		return invalid("InvalidValuesForRequestParameters", "A share has at most %d metadata entries, not %d.", MaxTags, len(p.Metadata))
	}
	for k, v := range p.Metadata {
		if k == "" || len(k) > MaxTagNameLength || len(v) > MaxTagValueLength {
			return invalid("InvalidValuesForRequestParameters", "The share metadata '%s' is invalid: names of 1 to %d and values of at most %d characters.",
				truncate(k, 40), MaxTagNameLength, MaxTagValueLength)
		}
	}
	return nil
}

// checkAPIVersionRange is CheckAPIVersion's test against a range.
func checkAPIVersionRange(v, lo, hi string) error {
	if v == "" {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests.")
	}
	date := v
	if len(date) > len(previewSuffix) && strings.EqualFold(date[len(date)-len(previewSuffix):], previewSuffix) {
		date = date[:len(date)-len(previewSuffix)]
	}
	if _, err := time.Parse(time.DateOnly, date); err != nil || len(date) != len(time.DateOnly) || date < lo || date > hi {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidApiVersionParameter",
			"The api-version '%s' is invalid. The supported versions are '%s' through '%s', optionally with a '%s' suffix.",
			v, lo, hi, previewSuffix)
	}
	return nil
}
