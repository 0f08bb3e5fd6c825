package api

import (
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

func TestStorageAccountNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"abc": true, "mycontainerstorage": true, "a1b2c3": true, strings.Repeat("a", 24): true,
		"ab": false, strings.Repeat("a", 25): false, "MyAccount": false, "my-account": false, "my_acct": false,
		"": false, "acct.1": false, "ünï": false,
	} {
		err := ValidateStorageAccountName(name)
		if (err == nil) != ok {
			t.Errorf("%q: %v, want ok=%v", name, err, ok)
		}
		if err != nil && (errdefs.CodeOf(err) != "AccountNameInvalid" || !errdefs.Is(err, errdefs.ErrInvalidArgument)) {
			t.Errorf("%q: %v (code %q), want AccountNameInvalid", name, err, errdefs.CodeOf(err))
		}
	}
}

func TestFileShareNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"myacishare": true, "abc": true, "a-b-c": true, "share1": true, strings.Repeat("a", 63): true,
		"ab": false, strings.Repeat("a", 64): false, "-abc": false, "abc-": false, "a--b": false, "MyShare": false,
		"a_b": false, "a.b": false, "": false,
	} {
		err := ValidateFileShareName(name)
		if (err == nil) != ok {
			t.Errorf("%q: %v, want ok=%v", name, err, ok)
		}
		if err != nil && errdefs.CodeOf(err) != "InvalidResourceName" {
			t.Errorf("%q: code %q, want InvalidResourceName", name, errdefs.CodeOf(err))
		}
	}
}

func TestDecodeValidateStorageAccount(t *testing.T) {
	cases := []struct {
		name, body string
		code       string // "" valid
		check      func(*testing.T, *StorageAccount)
	}{
		{"az's body", `{"sku":{"name":"Standard_LRS"},"kind":"StorageV2","location":"local","properties":{"encryption":{"services":{"blob":{}},"keySource":"Microsoft.Storage"}}}`, "",
			func(t *testing.T, sa *StorageAccount) {
				if sa.Sku.Name != "Standard_LRS" || sa.Sku.Tier != "Standard" || sa.Kind != "StorageV2" || sa.Properties.AccessTier != "Hot" || sa.Location != "local" {
					t.Errorf("got %+v %+v", sa, sa.Properties)
				}
			}},
		{"defaults and case", `{"sku":{"name":"premium_lrs"},"kind":"filestorage","location":"local"}`, "",
			func(t *testing.T, sa *StorageAccount) {
				if sa.Sku.Name != "Premium_LRS" || sa.Sku.Tier != "Premium" || sa.Kind != "FileStorage" || sa.Properties.AccessTier != "" {
					t.Errorf("got %+v %+v", sa.Sku, sa.Properties)
				}
			}},
		{"no kind", `{"sku":{"name":"Standard_GRS"},"location":"local"}`, "",
			func(t *testing.T, sa *StorageAccount) {
				if sa.Kind != "StorageV2" {
					t.Errorf("kind %q", sa.Kind)
				}
			}},
		{"2015-06-15 accountType", `{"location":"local","properties":{"accountType":"Standard_RAGRS"}}`, "",
			func(t *testing.T, sa *StorageAccount) {
				if sa.Sku.Name != "Standard_RAGRS" {
					t.Errorf("sku %+v", sa.Sku)
				}
			}},
		{"read-only fields dropped", `{"id":"/x","name":"y","sku":{"name":"Standard_LRS"},"properties":{"provisioningState":"Failed","primaryEndpoints":{"file":"https://evil/"},"creationTime":"2020-01-01T00:00:00Z"}}`, "",
			func(t *testing.T, sa *StorageAccount) {
				if sa.ID != "" || sa.Name != "" || sa.Properties.ProvisioningState != "" || sa.Properties.PrimaryEndpoints != nil || sa.Properties.CreationTime != nil {
					t.Errorf("kept read-only fields: %+v %+v", sa, sa.Properties)
				}
			}},
		{"no sku", `{"location":"local","kind":"StorageV2"}`, "InvalidRequestContent", nil},
		{"bad sku", `{"sku":{"name":"Gold_LRS"}}`, "InvalidValuesForRequestParameters", nil},
		{"sku tier mismatch", `{"sku":{"name":"Standard_LRS","tier":"Premium"}}`, "InvalidValuesForRequestParameters", nil},
		{"bad kind", `{"sku":{"name":"Standard_LRS"},"kind":"Tape"}`, "InvalidValuesForRequestParameters", nil},
		{"file storage needs premium", `{"sku":{"name":"Standard_LRS"},"kind":"FileStorage"}`, "InvalidValuesForRequestParameters", nil},
		{"bad tier", `{"sku":{"name":"Standard_LRS"},"properties":{"accessTier":"Frozen"}}`, "InvalidValuesForRequestParameters", nil},
		{"bad tls", `{"sku":{"name":"Standard_LRS"},"properties":{"minimumTlsVersion":"SSL3"}}`, "InvalidValuesForRequestParameters", nil},
		{"bad tag", `{"sku":{"name":"Standard_LRS"},"tags":{"a/b":"c"}}`, "InvalidTagNameCharacters", nil},
		{"malformed", `{"sku":`, "InvalidRequestContent", nil},
		{"not an object", `[1]`, "InvalidRequestContent", nil},
		{"sku of the wrong type", `{"sku":"Standard_LRS"}`, "InvalidRequestContent", nil},
		{"empty", ``, "InvalidRequestContent", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sa, err := DecodeStorageAccount([]byte(c.body))
			if err == nil {
				err = ValidateStorageAccount(sa)
			}
			if c.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				c.check(t, sa)
				return
			}
			if errdefs.CodeOf(err) != c.code || !errdefs.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("got %v (code %q), want %s", err, errdefs.CodeOf(err), c.code)
			}
		})
	}
}

func TestDecodeFileShare(t *testing.T) {
	cases := []struct {
		name, body string
		premium    bool
		code       string
		want       FileShareProperties
	}{
		{"empty body", ``, false, "", FileShareProperties{ShareQuota: DefaultShareQuota, EnabledProtocols: "SMB", AccessTier: "TransactionOptimized"}},
		{"az's body", `{"properties":{"shareQuota":10}}`, false, "", FileShareProperties{ShareQuota: 10, EnabledProtocols: "SMB", AccessTier: "TransactionOptimized"}},
		{"premium", `{}`, true, "", FileShareProperties{ShareQuota: DefaultShareQuota, EnabledProtocols: "SMB", AccessTier: "Premium"}},
		{"tier", `{"properties":{"accessTier":"cool","enabledProtocols":"smb"}}`, false, "", FileShareProperties{ShareQuota: DefaultShareQuota, EnabledProtocols: "SMB", AccessTier: "Cool"}},
		{"read-only dropped", `{"properties":{"lastModifiedTime":"2020-01-01T00:00:00Z","leaseState":"leased"}}`, false, "", FileShareProperties{ShareQuota: DefaultShareQuota, EnabledProtocols: "SMB", AccessTier: "TransactionOptimized"}},
		{"quota too big", `{"properties":{"shareQuota":102401}}`, false, "InvalidValuesForRequestParameters", FileShareProperties{}},
		{"quota negative", `{"properties":{"shareQuota":-1}}`, false, "InvalidValuesForRequestParameters", FileShareProperties{}},
		{"nfs", `{"properties":{"enabledProtocols":"NFS"}}`, false, "InvalidValuesForRequestParameters", FileShareProperties{}},
		{"bad protocol", `{"properties":{"enabledProtocols":"FTP"}}`, false, "InvalidValuesForRequestParameters", FileShareProperties{}},
		{"bad tier", `{"properties":{"accessTier":"Glacier"}}`, false, "InvalidValuesForRequestParameters", FileShareProperties{}},
		{"quota of the wrong type", `{"properties":{"shareQuota":"lots"}}`, false, "InvalidRequestContent", FileShareProperties{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs, err := DecodeFileShare([]byte(c.body))
			if err == nil {
				err = ValidateFileShare(fs, c.premium)
			}
			if c.code != "" {
				if errdefs.CodeOf(err) != c.code {
					t.Fatalf("got %v (code %q), want %s", err, errdefs.CodeOf(err), c.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := fs.Properties
			if p.ShareQuota != c.want.ShareQuota || p.EnabledProtocols != c.want.EnabledProtocols || p.AccessTier != c.want.AccessTier ||
				p.LastModifiedTime != nil || p.LeaseState != "" {
				t.Fatalf("got %+v, want %+v", p, c.want)
			}
		})
	}
}

func TestDecodeRegenerateKeyAndCheckName(t *testing.T) {
	for body, want := range map[string]string{`{"keyName":"key1"}`: "key1", `{"keyName":"KEY2"}`: "key2", `{"keyName":"kerb1"}`: "", `{}`: "", `{"keyName":1}`: ""} {
		got, err := DecodeRegenerateKey([]byte(body))
		if got != want || (want == "" && err == nil) {
			t.Errorf("%s: %q %v, want %q", body, got, err, want)
		}
	}
	if r, err := DecodeCheckName([]byte(`{"name":"abc","type":"Microsoft.Storage/storageAccounts"}`)); err != nil || r.Name != "abc" {
		t.Errorf("check name: %+v %v", r, err)
	}
	if _, err := DecodeCheckName([]byte(`{"name":"abc","type":"Microsoft.Web/sites"}`)); errdefs.CodeOf(err) != "InvalidValuesForRequestParameters" {
		t.Errorf("another type: %v", err)
	}
}

func TestStorageAPIVersions(t *testing.T) {
	for v, ok := range map[string]bool{
		"2015-06-15": true, "2016-01-01": true, "2019-06-01": true, "2022-09-01": true, "2023-05-01": true, "2025-01-01": true,
		"2020-08-01-preview": true, "2015-05-01-preview": false, "2030-01-01": false, "": false, "latest": false,
	} {
		if err := CheckStorageAPIVersion(v); (err == nil) != ok {
			t.Errorf("%q: %v, want ok=%v", v, err, ok)
		}
	}
	if StorageKeysAsList("2015-06-15") || !StorageKeysAsList("2016-01-01") || !StorageKeysAsList("2022-09-01") {
		t.Error("StorageKeysAsList")
	}
}
