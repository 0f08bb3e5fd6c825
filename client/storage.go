package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/skiff-sh/skiff/api"
)

// StorageProvider is the resource provider of storage accounts.
const StorageProvider = "Microsoft.Storage"

// StorageAPIVersion is the api-version the client sends to
// Microsoft.Storage: az 2.45's.
const StorageAPIVersion = "2022-09-01"

var storageQuery = url.Values{"api-version": {StorageAPIVersion}}

// StorageAccountsPath lists the storage accounts of rg, or of the whole
// subscription when rg is empty.
func StorageAccountsPath(sub, rg string) string {
	if rg == "" {
		return SubscriptionPath(sub) + "/providers/" + StorageProvider + "/storageAccounts"
	}
	return ResourceGroupPath(sub, rg) + "/providers/" + StorageProvider + "/storageAccounts"
}

// StorageAccountPath is the path of one storage account.
func StorageAccountPath(sub, rg, name string) string {
	return StorageAccountsPath(sub, rg) + "/" + url.PathEscape(name)
}

// FileSharesPath lists the file shares of an account.
func FileSharesPath(sub, rg, account string) string {
	return StorageAccountPath(sub, rg, account) + "/fileServices/default/shares"
}

// FileSharePath is the path of one file share.
func FileSharePath(sub, rg, account, share string) string {
	return FileSharesPath(sub, rg, account) + "/" + url.PathEscape(share)
}

// CreateStorageAccount creates storage account name in rg, or updates it.
func (c *Client) CreateStorageAccount(ctx context.Context, rg, name string, sa api.StorageAccount) (*api.StorageAccount, error) {
	return c.storageAccount(ctx, http.MethodPut, rg, name, sa)
}

// GetStorageAccount reads a storage account.
func (c *Client) GetStorageAccount(ctx context.Context, rg, name string) (*api.StorageAccount, error) {
	return c.storageAccount(ctx, http.MethodGet, rg, name, nil)
}

func (c *Client) storageAccount(ctx context.Context, method, rg, name string, in any) (*api.StorageAccount, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	var out api.StorageAccount
	if _, err := c.call(ctx, method, StorageAccountPath(p.Sub, rg, name), storageQuery, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListStorageAccounts lists the storage accounts of rg ("" = all of the
// subscription).
func (c *Client) ListStorageAccounts(ctx context.Context, rg string) ([]api.StorageAccount, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	return listOf[api.StorageAccount](ctx, c, StorageAccountsPath(p.Sub, rg), storageQuery)
}

// StorageAccountResourceGroup finds the resource group of the account
// name in the subscription, as az does when --resource-group is not
// given (a StorageAccountNotFound error if there is none).
func (c *Client) StorageAccountResourceGroup(ctx context.Context, name string) (string, error) {
	l, err := c.ListStorageAccounts(ctx, "")
	if err != nil {
		return "", err
	}
	for _, a := range l {
		if strings.EqualFold(a.Name, name) {
			return ResourceGroupOf(a.ID), nil
		}
	}
	return "", &APIError{StatusCode: http.StatusNotFound, Code: "StorageAccountNotFound", Message: "The storage account '" + name + "' was not found."}
}

// DeleteStorageAccount deletes a storage account and its shares (nil if
// there is none).
func (c *Client) DeleteStorageAccount(ctx context.Context, rg, name string) error {
	p, err := c.In(ctx)
	if err != nil {
		return err
	}
	_, err = c.call(ctx, http.MethodDelete, StorageAccountPath(p.Sub, rg, name), storageQuery, nil, nil)
	return err
}

// ListStorageAccountKeys returns an account's two keys.
func (c *Client) ListStorageAccountKeys(ctx context.Context, rg, name string) ([]api.StorageAccountKey, error) {
	return c.storageKeys(ctx, "/listKeys", rg, name, nil)
}

// RegenerateStorageAccountKey replaces key1 or key2 and returns both keys.
func (c *Client) RegenerateStorageAccountKey(ctx context.Context, rg, name, keyName string) ([]api.StorageAccountKey, error) {
	return c.storageKeys(ctx, "/regenerateKey", rg, name, api.StorageAccountRegenerateKeyParameters{KeyName: keyName})
}

func (c *Client) storageKeys(ctx context.Context, action, rg, name string, in any) ([]api.StorageAccountKey, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	var out api.StorageAccountListKeysResult
	if _, err := c.call(ctx, http.MethodPost, StorageAccountPath(p.Sub, rg, name)+action, storageQuery, in, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

// CheckStorageAccountName asks whether an account name is free.
func (c *Client) CheckStorageAccountName(ctx context.Context, name string) (*api.StorageCheckNameResult, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	var out api.StorageCheckNameResult
	body := api.StorageCheckNameRequest{Name: name, Type: api.StorageAccountType}
	if _, err := c.call(ctx, http.MethodPost, p.Subscription()+"/providers/"+StorageProvider+"/checkNameAvailability", storageQuery, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateFileShare creates a file share of an account, or updates it.
func (c *Client) CreateFileShare(ctx context.Context, rg, account, share string, fs api.FileShare) (*api.FileShare, error) {
	return c.fileShare(ctx, http.MethodPut, rg, account, share, fs)
}

// GetFileShare reads a file share.
func (c *Client) GetFileShare(ctx context.Context, rg, account, share string) (*api.FileShare, error) {
	return c.fileShare(ctx, http.MethodGet, rg, account, share, nil)
}

func (c *Client) fileShare(ctx context.Context, method, rg, account, share string, in any) (*api.FileShare, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	var out api.FileShare
	if _, err := c.call(ctx, method, FileSharePath(p.Sub, rg, account, share), storageQuery, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListFileShares lists the file shares of an account.
func (c *Client) ListFileShares(ctx context.Context, rg, account string) ([]api.FileShare, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	return listOf[api.FileShare](ctx, c, FileSharesPath(p.Sub, rg, account), storageQuery)
}

// DeleteFileShare deletes a file share and its data (nil if there is
// none).
func (c *Client) DeleteFileShare(ctx context.Context, rg, account, share string) error {
	p, err := c.In(ctx)
	if err != nil {
		return err
	}
	_, err = c.call(ctx, http.MethodDelete, FileSharePath(p.Sub, rg, account, share), storageQuery, nil, nil)
	return err
}
