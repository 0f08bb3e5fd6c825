// Package seal encrypts secret values at rest: environment variables'
// secure values, registry passwords, storage account keys and secret volume
// contents, wherever Skiff records them on disk (the store, the runtime's
// group records).
//
// A sealed value is a self-describing string,
//
//	skiff-sealed:v1:<key id>:<base64 of nonce | AES-256-GCM ciphertext and tag>
//
// with a fresh random 96-bit nonce per value, and the "skiff-sealed:v1:<key
// id>:" header bound to the ciphertext as additional data. The key id is
// derived from the key (an HMAC, so it says nothing about the key) and lets
// a wrong key be named as such instead of failing as corruption. The
// version lets a later format (or key rotation) read this one.
//
// AES-GCM comes from the standard library (crypto/aes, crypto/cipher): it
// is the well-kept choice, constant-time with AES-NI, and authenticated, so
// that a wrong key or a damaged value is an error, never garbage.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/skiff-sh/skiff/internal/atomicfile"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

const (
	// Prefix starts every sealed value of format version 1.
	Prefix = "skiff-sealed:v1:"
	// KeySize is the length of a key: AES-256.
	KeySize = 32
	// KeyFile is the key's file name in a data dir.
	KeyFile = "seal.key"

	keyIDLen = 8 // hex digits
)

// ErrWrongKey: a value was sealed with another key than the one loaded.
var ErrWrongKey = fmt.Errorf("sealed with another key: %w", errdefs.ErrUnauthorized)

// Sealer seals and opens values with one key. It is safe for concurrent
// use.
type Sealer struct {
	id     string
	aead   cipher.AEAD
	source string // where the key came from, for error messages
}

// New returns a Sealer for a 32-byte key; source names where the key came
// from in error messages (a path, or "" for "the seal key").
func New(key []byte, source string) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("seal key %s: %d bytes, want %d (32 random bytes, or 64 hex digits): %w",
			source, len(key), KeySize, errdefs.ErrInvalidArgument)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal key %s: %v: %w", source, err, errdefs.ErrInvalidArgument)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal key %s: %v: %w", source, err, errdefs.ErrInvalidArgument)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("skiff seal key id"))
	id := hex.EncodeToString(mac.Sum(nil))[:keyIDLen]
	if source == "" {
		source = "(given)"
	}
	return &Sealer{id: id, aead: aead, source: source}, nil
}

// LoadKey reads the key an operator gave. The file holds 32 bytes, or 64
// hex digits (what `openssl rand -hex 32` prints), and must not be readable
// or writable by anyone but its owner.
func LoadKey(path string) (*Sealer, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("seal key %s does not exist: %w", path, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("seal key %s is not a regular file: %w", path, errdefs.ErrInvalidArgument)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("seal key %s has mode %04o: others may read it; chmod 600 it: %w",
			path, perm, errdefs.ErrInvalidArgument)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	return New(DecodeKey(data), path)
}

// LoadOrCreateKey loads the key at path, creating it first (32 random
// bytes, mode 0600) if there is none.
func LoadOrCreateKey(path string) (*Sealer, error) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("seal key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("seal key: %w", err)
		}
		// Through a temporary file and a hard link: two processes creating
		// the key at once end up with the same one, and a crash leaves no
		// half-written key.
		tmp := fmt.Sprintf("%s.new-%s", path, rand.Text())
		if err := atomicfile.WriteFile(tmp, key, 0o600); err != nil {
			return nil, fmt.Errorf("seal key: %w", err)
		}
		err := os.Link(tmp, path)
		os.Remove(tmp)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("seal key: %w", err)
		}
		if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("seal key: %w", err)
		}
	}
	return LoadKey(path)
}

// DecodeKey accepts raw bytes or hex digits (with surrounding white space).
func DecodeKey(data []byte) []byte {
	if len(data) == KeySize {
		return data
	}
	t := bytes.TrimSpace(data)
	if k, err := hex.DecodeString(string(t)); err == nil {
		return k
	}
	return data
}

// KeyID identifies the key (not secret).
func (s *Sealer) KeyID() string { return s.id }

// Source is where the key came from.
func (s *Sealer) Source() string { return s.source }

func (s *Sealer) header() string { return Prefix + s.id + ":" }

// Seal encrypts plain. Each call uses a fresh nonce, so sealing a value
// twice gives two different strings.
func (s *Sealer) Seal(plain string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	h := s.header()
	out := s.aead.Seal(nonce, nonce, []byte(plain), []byte(h))
	return h + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts a sealed value. A value sealed with another key fails with
// ErrWrongKey; one that is not a sealed value, or does not authenticate
// (damaged), fails with errdefs.ErrInvalidArgument. Errors never carry the
// value.
func (s *Sealer) Open(sealed string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, Prefix)
	if !ok {
		if strings.HasPrefix(sealed, "skiff-sealed:") {
			return "", fmt.Errorf("sealed value of an unknown format version (a newer skiff?): %w", errdefs.ErrInvalidArgument)
		}
		return "", fmt.Errorf("value is not sealed: %w", errdefs.ErrInvalidArgument)
	}
	id, body, ok := strings.Cut(rest, ":")
	if !ok {
		return "", fmt.Errorf("sealed value has no key id: %w", errdefs.ErrInvalidArgument)
	}
	if id != s.id {
		return "", fmt.Errorf("value sealed with key %s, but the seal key %s is key %s (wrong --seal-key-file?): %w",
			id, s.source, s.id, ErrWrongKey)
	}
	raw, err := base64.RawStdEncoding.DecodeString(body)
	if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
		return "", fmt.Errorf("sealed value is damaged: %w", errdefs.ErrInvalidArgument)
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(s.header()))
	if err != nil {
		return "", fmt.Errorf("sealed value does not authenticate with key %s (damaged): %w", s.id, errdefs.ErrInvalidArgument)
	}
	return string(plain), nil
}

// IsSealed reports whether v has the form of a sealed value (of any
// version).
func IsSealed(v string) bool { return strings.HasPrefix(v, "skiff-sealed:") }
