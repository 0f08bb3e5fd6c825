package identity

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// jwksKids fetches the JWKS as a client does and returns its key ids.
func (e *env) jwksKids(path string) []string {
	e.t.Helper()
	rep := e.call(http.MethodGet, path, "", nil)
	if rep.status != http.StatusOK {
		e.t.Fatalf("%s: status %d: %s", path, rep.status, rep.body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(rep.body, &set); err != nil {
		e.t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		if !k.Valid() || !k.IsPublic() || k.Algorithm != "RS256" || k.Use != "sig" {
			e.t.Errorf("key %s: not a public RS256 signing key", k.KeyID)
		}
		kids = append(kids, k.KeyID)
	}
	return kids
}

func kidOf(t *testing.T, tok string) string {
	hdr, _ := unverifiedClaims(t, tok)
	return hdr["kid"].(string)
}

func TestRotationKeepsOldTokensUntilTheyExpire(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.newSP("rotating")
	old := e.token(c)
	oldKid := kidOf(t, old)
	if kids := e.jwksKids("/adfs/discovery/keys"); !slices.Equal(kids, []string{oldKid}) {
		t.Fatalf("JWKS %v, want [%s]", kids, oldKid)
	}

	e.clock.Advance(10 * time.Minute)
	if err := e.p.Rotate(e.ctx); err != nil {
		t.Fatal(err)
	}
	fresh := e.token(c)
	newKid := kidOf(t, fresh)
	if newKid == oldKid {
		t.Fatal("Rotate did not change the signing key")
	}
	// Both keys are published (current first) and both tokens verify.
	for _, path := range []string{"/adfs/discovery/keys", "/" + e.p.TenantID() + "/discovery/v2.0/keys"} {
		if kids := e.jwksKids(path); !slices.Equal(kids, []string{newKid, oldKid}) {
			t.Errorf("%s: JWKS %v, want [%s %s]", path, kids, newKid, oldKid)
		}
	}
	for _, tok := range []string{old, fresh} {
		if _, err := e.p.Verify(e.ctx, tok); err != nil {
			t.Errorf("after rotation: %v", err)
		}
	}

	// Once every token of the old key has expired, it is dropped.
	e.clock.Advance(time.Hour + DefaultClockSkew + time.Second)
	if err := e.p.Prune(e.ctx); err != nil {
		t.Fatal(err)
	}
	if kids := e.jwksKids("/adfs/discovery/keys"); !slices.Equal(kids, []string{newKid}) {
		t.Errorf("JWKS after expiry %v, want [%s]", kids, newKid)
	}
	if _, err := e.st.GetObject(e.ctx, kindKeys, oldKid); !errdefs.Is(err, errdefs.ErrNotFound) {
		t.Errorf("the old key is still stored: %v", err)
	}
	if _, err := e.p.Verify(e.ctx, old); !errdefs.Is(err, errdefs.ErrUnauthorized) {
		t.Errorf("the old token: %v", err)
	}
	// The new key goes on signing and verifying.
	later := e.token(c)
	if kidOf(t, later) != newKid {
		t.Error("a token after the drop is not signed by the new key")
	}
	if _, err := e.p.Verify(e.ctx, later); err != nil {
		t.Errorf("a token of the new key: %v", err)
	}
}

func TestKeysSharedByServersOfOneStore(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.newSP("shared")
	// A second server on the same store (as etcd in a cluster).
	p2, err := New(e.ctx, Config{Store: e.st, Sealer: e.sealer, BaseURL: e.base, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if p2.TenantID() != e.p.TenantID() {
		t.Fatalf("tenants %s and %s", p2.TenantID(), e.p.TenantID())
	}
	tok := e.token(c)
	if _, err := p2.Verify(e.ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Rotate(e.ctx); err != nil {
		t.Fatal(err)
	}
	// p2 has not seen the new key: it reads it from the store.
	fresh := e.token(c)
	if _, err := p2.Verify(e.ctx, fresh); err != nil {
		t.Fatalf("a key made by another server: %v", err)
	}
	// And signs with it.
	sp, err := p2.spRecordByAppID(e.ctx, c.AppID)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := p2.sign(e.ctx, sp, e.base+"/", p2.Authority())
	if err != nil {
		t.Fatal(err)
	}
	if kidOf(t, t2.AccessToken) != kidOf(t, fresh) {
		t.Error("the second server signs with the old key")
	}
}

func TestAutomaticRotation(t *testing.T) {
	e := newEnv(t, Config{RotationPeriod: 24 * time.Hour})
	first, err := e.p.currentKey(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.maintainKeys(e.ctx); err != nil {
		t.Fatal(err)
	}
	if k, _ := e.p.currentKey(e.ctx); k.kid != first.kid {
		t.Fatal("rotated before the period")
	}
	e.clock.Advance(24 * time.Hour)
	if err := e.p.maintainKeys(e.ctx); err != nil {
		t.Fatal(err)
	}
	second, _ := e.p.currentKey(e.ctx)
	if second.kid == first.kid {
		t.Fatal("not rotated after the period")
	}
	keys, err := e.p.Keys(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !keys[0].Current || keys[1].KID != first.kid || keys[1].DropAfter.IsZero() {
		t.Errorf("keys %+v", keys)
	}
	e.clock.Advance(2 * time.Hour)
	if err := e.p.maintainKeys(e.ctx); err != nil {
		t.Fatal(err)
	}
	if keys, _ := e.p.Keys(e.ctx); len(keys) != 1 || keys[0].KID != second.kid {
		t.Errorf("keys after the old one's tokens expired %+v", keys)
	}
}

// The raw database holds no client secret and no private key in clear.
func TestSecretsAtRest(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.newSP("at-rest")
	spCred, err := e.p.AddServicePrincipalPassword(e.ctx, c.ObjectID, PasswordSpec{DisplayName: "second"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.Rotate(e.ctx); err != nil {
		t.Fatal(err)
	}
	// Both secrets sign in: they are kept, hashed.
	for _, secret := range []string{c.Password, *spCred.SecretText} {
		if _, err := e.p.IssueToken(e.ctx, c.AppID, secret, e.base+"/"); err != nil {
			t.Fatal(err)
		}
	}
	// Graph never shows a secret again.
	rep := e.call(http.MethodGet, "/v1.0/servicePrincipals/"+c.ObjectID, adminToken, nil)
	if strings.Contains(string(rep.body), *spCred.SecretText) || !strings.Contains(string(rep.body), `"secretText":null`) {
		t.Errorf("Graph shows %s", rep.body)
	}
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{"app secret": c.Password, "sp secret": *spCred.SecretText, "private key": "PRIVATE KEY"} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("the database holds the %s in clear", name)
		}
	}
	if !bytes.Contains(raw, []byte(c.AppID)) {
		t.Error("the scan found no application at all: wrong file?")
	}
}
