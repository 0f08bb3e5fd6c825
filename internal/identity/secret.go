package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"time"
)

// Client secrets are made here, never chosen by a client: 40 characters
// of a 64-letter alphabet (240 random bits), the first three of which are
// the hint Graph shows, as Entra's.
//
// They are stored as SHA-256(salt | secret) with a 16-byte random salt per
// credential. A slow password hash (bcrypt, argon2) protects guessable
// human passwords; a 240-bit random secret cannot be guessed from its hash
// by any amount of hashing, so a slow hash would only add latency to every
// token request. The salt keeps equal secrets (there are none in practice)
// from having equal hashes. Comparison is constant-time.

const (
	secretLen  = 40
	hintLen    = 3
	saltLen    = 16
	secretABC  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~."
	maxSecrets = 16 // password credentials per application or service principal
)

// newSecret returns a fresh client secret.
func newSecret() string {
	b := make([]byte, secretLen)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	for i := range b {
		b[i] = secretABC[int(b[i])%len(secretABC)] // 256 % 64 == 0: no bias
	}
	return string(b)
}

// passwordRecord is a password credential as stored: Graph's fields and
// the salted hash, never the secret.
type passwordRecord struct {
	KeyID       string    `json:"keyId"`
	DisplayName string    `json:"displayName,omitempty"`
	Hint        string    `json:"hint"`
	Start       time.Time `json:"startDateTime"`
	End         time.Time `json:"endDateTime"`
	Salt        string    `json:"salt"` // base64
	Hash        string    `json:"hash"` // base64 of SHA-256(salt | secret)
}

func hashSecret(salt []byte, secret string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(secret))
	return h.Sum(nil)
}

// newPasswordRecord hashes a fresh secret into a record.
func newPasswordRecord(keyID, displayName, secret string, start, end time.Time) passwordRecord {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		panic(err)
	}
	return passwordRecord{
		KeyID:       keyID,
		DisplayName: displayName,
		Hint:        secret[:hintLen],
		Start:       start.UTC(),
		End:         end.UTC(),
		Salt:        base64.StdEncoding.EncodeToString(salt),
		Hash:        base64.StdEncoding.EncodeToString(hashSecret(salt, secret)),
	}
}

// matches reports, in constant time for the record, whether secret is its
// secret.
func (r passwordRecord) matches(secret string) bool {
	salt, err1 := base64.StdEncoding.DecodeString(r.Salt)
	want, err2 := base64.StdEncoding.DecodeString(r.Hash)
	if err1 != nil || err2 != nil {
		return false
	}
	return subtle.ConstantTimeCompare(hashSecret(salt, secret), want) == 1
}

// secretMatch is the outcome of checking a secret against credentials.
type secretMatch int

const (
	secretWrong secretMatch = iota
	secretOK
	secretExpired // it matches a credential outside its validity
)

// checkSecret checks secret against every credential (all of them, so
// the time taken does not say which matched).
func checkSecret(creds []passwordRecord, secret string, now time.Time) secretMatch {
	res := secretWrong
	for _, c := range creds {
		if !c.matches(secret) {
			continue
		}
		if now.Before(c.Start.Add(-DefaultClockSkew)) || now.After(c.End) {
			if res == secretWrong {
				res = secretExpired
			}
			continue
		}
		res = secretOK
	}
	return res
}
