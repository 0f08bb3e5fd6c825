package identity

import (
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// The Azure SDK for Go signs in with azidentity.NewClientSecretCredential,
// its authority host pointed at Skiff: with the tenant id (Entra's paths,
// instance discovery off, as it must be off the public cloud) and with
// "adfs" (MSAL skips instance discovery for it by itself).
func TestAzidentityClientSecretCredential(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.newSP("sdk")
	for _, tc := range []struct {
		name, tenant string
		noDiscovery  bool
		scope        string
	}{
		{"tenant id", e.p.TenantID(), true, e.base + "/.default"},
		{"adfs", "adfs", false, e.base + "//.default"},
		{"public cloud audience", e.p.TenantID(), true, "https://management.azure.com//.default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cred, err := azidentity.NewClientSecretCredential(tc.tenant, c.AppID, c.Password, &azidentity.ClientSecretCredentialOptions{
				ClientOptions: azcore.ClientOptions{
					Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: e.base + "/"},
					Transport: e.client,
				},
				DisableInstanceDiscovery: tc.noDiscovery,
			})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := cred.GetToken(e.ctx, policy.TokenRequestOptions{Scopes: []string{tc.scope}})
			if err != nil {
				t.Fatal(err)
			}
			pr, err := e.p.Verify(e.ctx, tok.Token)
			if err != nil {
				t.Fatal(err)
			}
			if pr.ObjectID != c.ObjectID || pr.AppID != c.AppID {
				t.Errorf("principal %v", pr)
			}
			if d := tok.ExpiresOn.Sub(e.clock.Now()); d < 59*60e9 || d > 61*60e9 {
				t.Errorf("expires in %v", d)
			}
			// A second call is served from MSAL's cache: the same token.
			again, err := cred.GetToken(e.ctx, policy.TokenRequestOptions{Scopes: []string{tc.scope}})
			if err != nil || again.Token != tok.Token {
				t.Errorf("cached token: %v", err)
			}
		})
	}

	t.Run("wrong secret", func(t *testing.T) {
		cred, err := azidentity.NewClientSecretCredential(e.p.TenantID(), c.AppID, "wrong", &azidentity.ClientSecretCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: e.base + "/"}, Transport: e.client},
			DisableInstanceDiscovery: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(e.ctx, policy.TokenRequestOptions{Scopes: []string{e.base + "/.default"}})
		if err == nil || !strings.Contains(err.Error(), "invalid_client") || !strings.Contains(err.Error(), "AADSTS7000215") {
			t.Fatalf("err %v", err)
		}
		if strings.Contains(err.Error(), c.Password) {
			t.Error("the error carries the secret")
		}
	})
}

var _ policy.Transporter = (*http.Client)(nil)
