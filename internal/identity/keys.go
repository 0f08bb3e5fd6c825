package identity

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"sort"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

// Signing keys. One is current (identity.meta/signing names it); it signs
// every new token. Rotate makes a new one current and retires the old one,
// which stays in the store and in the JWKS, and keeps verifying, until
// every token it can have signed has expired (DropAfter: the retirement
// plus a token lifetime plus the clock skew); Prune then deletes it.
//
// Servers sharing the store agree on the current key through the signing
// record's revision: a rotation that loses the race deletes its own key.
// Verify reads a key it does not know from the store and caches it, so a
// key made by another server verifies at once.

// keySize is the RSA modulus size, as Entra's signing keys.
const keySize = 2048

// keyRecord is a signing key as stored.
type keyRecord struct {
	KID     string    `json:"kid"`
	Created time.Time `json:"created"`
	// RetiredAt is when a newer key became current (zero while current).
	RetiredAt time.Time `json:"retiredAt,omitzero"`
	// DropAfter is when every token the key signed has expired.
	DropAfter time.Time `json:"dropAfter,omitzero"`
	// Public is the PKIX public key, PEM.
	Public string `json:"public"`
	// Private is the PKCS #8 private key, PEM, sealed.
	Private string `json:"private"`
}

// signingRecord names the current key.
type signingRecord struct {
	KID   string    `json:"kid"`
	Since time.Time `json:"since"`
}

// signingKey is a loaded key.
type signingKey struct {
	kid       string
	created   time.Time
	dropAfter time.Time // zero: not retired when loaded
	pub       *rsa.PublicKey
	priv      *rsa.PrivateKey
}

// KeyInfo describes a published signing key (no key material).
type KeyInfo struct {
	KID       string
	Created   time.Time
	Current   bool
	RetiredAt time.Time // zero for the current key
	DropAfter time.Time // zero for the current key
}

// newKeyRecord generates a key and seals its private half.
func (p *Provider) newKeyRecord() (*keyRecord, *signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, keySize)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: signing key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: signing key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: signing key: %w", err)
	}
	sum := sha256.Sum256(pubDER)
	kid := base64.RawURLEncoding.EncodeToString(sum[:20])
	sealed, err := p.sealer.Seal(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})))
	if err != nil {
		return nil, nil, fmt.Errorf("identity: signing key: %w", err)
	}
	now := p.now().UTC()
	rec := &keyRecord{
		KID:     kid,
		Created: now,
		Public:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
		Private: sealed,
	}
	return rec, &signingKey{kid: kid, created: now, pub: &priv.PublicKey, priv: priv}, nil
}

// loadKeyRecord parses a stored key, opening its private half.
func (p *Provider) loadKeyRecord(rec *keyRecord) (*signingKey, error) {
	blk, _ := pem.Decode([]byte(rec.Public))
	if blk == nil {
		return nil, fmt.Errorf("identity: signing key %s: damaged public key: %w", rec.KID, errdefs.ErrUnavailable)
	}
	pubAny, err := x509.ParsePKIXPublicKey(blk.Bytes)
	pub, ok := pubAny.(*rsa.PublicKey)
	if err != nil || !ok {
		return nil, fmt.Errorf("identity: signing key %s: damaged public key: %w", rec.KID, errdefs.ErrUnavailable)
	}
	privPEM, err := p.sealer.Open(rec.Private)
	if err != nil {
		return nil, fmt.Errorf("identity: signing key %s: %w", rec.KID, err)
	}
	blk, _ = pem.Decode([]byte(privPEM))
	if blk == nil {
		return nil, fmt.Errorf("identity: signing key %s: damaged private key: %w", rec.KID, errdefs.ErrUnavailable)
	}
	privAny, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	priv, ok := privAny.(*rsa.PrivateKey)
	if err != nil || !ok || !priv.PublicKey.Equal(pub) {
		return nil, fmt.Errorf("identity: signing key %s: damaged private key: %w", rec.KID, errdefs.ErrUnavailable)
	}
	return &signingKey{kid: rec.KID, created: rec.Created, dropAfter: rec.DropAfter, pub: pub, priv: priv}, nil
}

func (p *Provider) putKeyRecord(ctx context.Context, rec *keyRecord, rev int64) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = p.st.PutObject(ctx, kindKeys, rec.KID, raw, rev)
	return err
}

func (p *Provider) getKeyRecord(ctx context.Context, kid string) (*keyRecord, int64, error) {
	o, err := p.st.GetObject(ctx, kindKeys, kid)
	if err != nil {
		return nil, 0, err
	}
	var rec keyRecord
	if err := json.Unmarshal(o.Value, &rec); err != nil {
		return nil, 0, fmt.Errorf("identity: signing key %s: damaged record: %w", kid, errdefs.ErrUnavailable)
	}
	return &rec, o.Revision, nil
}

// signing returns the record naming the current key and its revision
// (0: none yet).
func (p *Provider) signing(ctx context.Context) (signingRecord, int64, error) {
	var s signingRecord
	o, err := p.st.GetObject(ctx, kindMeta, metaSigning)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return s, 0, nil
	}
	if err != nil {
		return s, 0, fmt.Errorf("identity: signing key: %w", err)
	}
	if err := json.Unmarshal(o.Value, &s); err != nil || s.KID == "" {
		return s, 0, fmt.Errorf("identity: stored signing record is damaged: %w", errdefs.ErrUnavailable)
	}
	return s, o.Revision, nil
}

// currentKey returns the key that signs new tokens, making the first one
// if there is none.
func (p *Provider) currentKey(ctx context.Context) (*signingKey, error) {
	s, rev, err := p.signing(ctx)
	if err != nil {
		return nil, err
	}
	if rev == 0 {
		return p.install(ctx, 0, signingRecord{})
	}
	k, err := p.key(ctx, s.KID)
	if err != nil {
		return nil, fmt.Errorf("identity: current signing key %s: %w", s.KID, err)
	}
	return k, nil
}

// install makes a new key and, if the signing record is still at rev,
// makes it current and retires old; otherwise another server rotated
// first, its key is current, and the new key is deleted.
func (p *Provider) install(ctx context.Context, rev int64, old signingRecord) (*signingKey, error) {
	rec, k, err := p.newKeyRecord()
	if err != nil {
		return nil, err
	}
	if err := p.putKeyRecord(ctx, rec, 0); err != nil {
		return nil, fmt.Errorf("identity: signing key: %w", err)
	}
	raw, _ := json.Marshal(signingRecord{KID: rec.KID, Since: rec.Created})
	if _, err := p.st.PutObject(ctx, kindMeta, metaSigning, raw, rev); err != nil {
		_ = p.st.DeleteObject(context.WithoutCancel(ctx), kindKeys, rec.KID, store.AnyRevision)
		if errdefs.Is(err, errdefs.ErrConflict) || (rev > 0 && errdefs.Is(err, errdefs.ErrNotFound)) {
			return p.currentKey(ctx) // another server's key won
		}
		return nil, fmt.Errorf("identity: signing key: %w", err)
	}
	p.mu.Lock()
	p.keys[k.kid] = k
	p.mu.Unlock()
	if old.KID != "" {
		if err := p.retire(ctx, old.KID, rec.Created); err != nil {
			// The key is retired all the same (it is no longer current);
			// dropAfterOf then counts from the signing record's since.
			p.log.Warn("identity: could not mark the old signing key retired", "kid", old.KID, "err", err)
		}
	}
	p.log.Info("identity: new signing key", "kid", k.kid)
	return k, nil
}

// retire records when key kid stopped signing and when it may be dropped.
func (p *Provider) retire(ctx context.Context, kid string, at time.Time) error {
	rec, rev, err := p.getKeyRecord(ctx, kid)
	if err != nil {
		return err
	}
	rec.RetiredAt, rec.DropAfter = at, at.Add(p.lifetime+p.skew)
	if err := p.putKeyRecord(ctx, rec, rev); err != nil {
		return err
	}
	p.mu.Lock()
	if k := p.keys[kid]; k != nil {
		k.dropAfter = rec.DropAfter
	}
	p.mu.Unlock()
	return nil
}

// key returns the key kid, from the cache or the store. A key past its
// DropAfter is refused as unknown.
func (p *Provider) key(ctx context.Context, kid string) (*signingKey, error) {
	p.mu.Lock()
	k := p.keys[kid]
	p.mu.Unlock()
	if k == nil {
		rec, _, err := p.getKeyRecord(ctx, kid)
		if err != nil {
			return nil, err
		}
		if k, err = p.loadKeyRecord(rec); err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.keys[kid] = k
		p.mu.Unlock()
	}
	if !k.dropAfter.IsZero() && p.now().After(k.dropAfter) {
		return nil, store.ObjectNotFound(kindKeys, kid)
	}
	return k, nil
}

// Rotate makes a new signing key current. The old one keeps verifying the
// tokens it signed until they have expired. If another server rotates at
// the same time, its key may be the one that becomes current.
func (p *Provider) Rotate(ctx context.Context) error {
	s, rev, err := p.signing(ctx)
	if err != nil {
		return err
	}
	if _, err := p.install(ctx, rev, s); err != nil {
		return err
	}
	return p.Prune(ctx)
}

// Keys lists the published signing keys, the current one first.
func (p *Provider) Keys(ctx context.Context) ([]KeyInfo, error) {
	recs, cur, err := p.keyRecords(ctx)
	if err != nil {
		return nil, err
	}
	now := p.now()
	var out []KeyInfo
	for _, r := range recs {
		info := KeyInfo{KID: r.KID, Created: r.Created, Current: r.KID == cur.KID}
		if !info.Current {
			info.RetiredAt, info.DropAfter = p.retirementOf(r, cur)
			if now.After(info.DropAfter) {
				continue
			}
		}
		out = append(out, info)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Current && !out[j].Current })
	return out, nil
}

// retirementOf is when a non-current key was retired and may be dropped;
// a key whose retirement was not recorded (a crash in Rotate) counts from
// the current key's start, which is later, so no token is cut short.
func (p *Provider) retirementOf(r keyRecord, cur signingRecord) (retired, drop time.Time) {
	if !r.DropAfter.IsZero() {
		return r.RetiredAt, r.DropAfter
	}
	return cur.Since, cur.Since.Add(p.lifetime + p.skew)
}

func (p *Provider) keyRecords(ctx context.Context) ([]keyRecord, signingRecord, error) {
	cur, _, err := p.signing(ctx)
	if err != nil {
		return nil, cur, err
	}
	objs, err := p.st.ListObjects(ctx, kindKeys, "")
	if err != nil {
		return nil, cur, fmt.Errorf("identity: signing keys: %w", err)
	}
	recs := make([]keyRecord, 0, len(objs))
	for _, o := range objs {
		var r keyRecord
		if err := json.Unmarshal(o.Value, &r); err != nil {
			return nil, cur, fmt.Errorf("identity: signing key %s: damaged record: %w", o.Key, errdefs.ErrUnavailable)
		}
		recs = append(recs, r)
	}
	return recs, cur, nil
}

// Prune deletes the retired keys whose tokens have all expired.
func (p *Provider) Prune(ctx context.Context) error {
	recs, cur, err := p.keyRecords(ctx)
	if err != nil {
		return err
	}
	now := p.now()
	for _, r := range recs {
		if r.KID == cur.KID {
			continue
		}
		if _, drop := p.retirementOf(r, cur); now.After(drop) {
			err := p.st.DeleteObject(ctx, kindKeys, r.KID, store.AnyRevision)
			if err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
				return fmt.Errorf("identity: drop signing key %s: %w", r.KID, err)
			}
			p.mu.Lock()
			delete(p.keys, r.KID)
			p.mu.Unlock()
			p.log.Info("identity: dropped a retired signing key", "kid", r.KID)
		}
	}
	return nil
}

// JWKS returns the published public keys as a JSON Web Key Set.
func (p *Provider) JWKS(ctx context.Context) (*jose.JSONWebKeySet, error) {
	infos, err := p.Keys(ctx)
	if err != nil {
		return nil, err
	}
	set := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, info := range infos {
		k, err := p.key(ctx, info.KID)
		if errdefs.Is(err, errdefs.ErrNotFound) {
			continue // dropped meanwhile
		}
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.pub, KeyID: k.kid, Algorithm: string(jose.RS256), Use: "sig"})
	}
	return set, nil
}

// Run rotates the signing key every RotationPeriod (if set) and prunes
// expired keys, until ctx ends. One server of a cluster or all may run it.
func (p *Provider) Run(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		if err := p.maintainKeys(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("identity: signing key upkeep failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *Provider) maintainKeys(ctx context.Context) error {
	if p.rotation > 0 {
		k, err := p.currentKey(ctx)
		if err != nil {
			return err
		}
		if !p.now().Before(k.created.Add(p.rotation)) {
			return p.Rotate(ctx)
		}
	}
	return p.Prune(ctx)
}
