// Package azcred lets a Skiff client sign in with a credential of the
// Azure SDK for Go (an azcore.TokenCredential, such as
// azidentity.ClientSecretCredential with its ActiveDirectoryAuthorityHost
// set to the Skiff server's URL + "/" and DisableInstanceDiscovery). It is
// a package of its own so that package client does not depend on the SDK.
package azcred

import (
	"context"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/skiff-sh/skiff/client"
)

// TokenSource returns a client.TokenSource that asks cred for tokens of
// scope {endpoint}/.default. The credential caches and refreshes them.
func TokenSource(cred azcore.TokenCredential) client.TokenSource { return source{cred} }

type source struct{ cred azcore.TokenCredential }

func (s source) Token(ctx context.Context, _ *http.Client, endpoint string) (string, error) {
	tok, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{endpoint + "/.default"}})
	if err != nil {
		return "", &client.APIError{StatusCode: http.StatusUnauthorized, Code: "InvalidAuthenticationToken", Message: "sign-in failed: " + err.Error()}
	}
	return tok.Token, nil
}
