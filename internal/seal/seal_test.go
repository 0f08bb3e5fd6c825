package seal_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/seal"
)

func TestSealOpenRoundTrip(t *testing.T) {
	s, err := seal.LoadOrCreateKey(filepath.Join(t.TempDir(), seal.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{"p@ss:word", "", strings.Repeat("x", 100000), "ünï\x00code"} {
		a, err := s.Seal(plain)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := s.Seal(plain)
		if a == b {
			t.Fatalf("two seals of %q are equal: the nonce is not fresh", plain)
		}
		if !strings.HasPrefix(a, seal.Prefix+s.KeyID()+":") || !seal.IsSealed(a) {
			t.Fatalf("sealed form %q lacks the versioned header", a)
		}
		if plain != "" && strings.Contains(a, plain) {
			t.Fatalf("sealed form contains the plain value")
		}
		got, err := s.Open(a)
		if err != nil || got != plain {
			t.Fatalf("Open = %q, %v; want %q", got, err, plain)
		}
	}
}

func TestKeyFileCreatedOnceMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", seal.KeyFile)
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := seal.LoadOrCreateKey(path)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = s.KeyID()
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent first starts made different keys: %v", ids)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != seal.KeySize {
		t.Fatalf("key file mode %v size %d, want 0600 and 32 bytes", fi.Mode().Perm(), fi.Size())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("data dir holds %d entries, want only the key", len(entries))
	}
	again, err := seal.LoadOrCreateKey(path)
	if err != nil || again.KeyID() != ids[0] {
		t.Fatalf("second start: %v, key %s want %s", err, again.KeyID(), ids[0])
	}
}

func TestWrongKeyIsAClearError(t *testing.T) {
	dir := t.TempDir()
	a, _ := seal.LoadOrCreateKey(filepath.Join(dir, "a.key"))
	b, _ := seal.LoadOrCreateKey(filepath.Join(dir, "b.key"))
	v, _ := a.Seal("hunter2")
	_, err := b.Open(v)
	if !errors.Is(err, seal.ErrWrongKey) || !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Fatalf("Open with the wrong key: %v, want ErrWrongKey", err)
	}
	if !strings.Contains(err.Error(), a.KeyID()) || !strings.Contains(err.Error(), b.KeyID()) ||
		!strings.Contains(err.Error(), "b.key") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error should name both key ids and the key file, never the value: %v", err)
	}
}

func TestDamagedOrForeignValues(t *testing.T) {
	s, _ := seal.LoadOrCreateKey(filepath.Join(t.TempDir(), seal.KeyFile))
	v, _ := s.Seal("hunter2")
	flip := []byte(v)
	flip[len(flip)-3] ^= 1 // inside the ciphertext
	for name, in := range map[string]string{
		"plain":        "hunter2",
		"future":       "skiff-sealed:v9:abc:def",
		"no key id":    seal.Prefix + "nocolon",
		"bad base64":   seal.Prefix + s.KeyID() + ":!!!",
		"short":        seal.Prefix + s.KeyID() + ":AAAA",
		"bit flipped":  string(flip),
		"header moved": strings.Replace(v, seal.Prefix, "skiff-sealed:v1:", 1) + "AA",
	} {
		got, err := s.Open(in)
		if err == nil {
			t.Errorf("%s: Open succeeded with %q", name, got)
			continue
		}
		if !errors.Is(err, errdefs.ErrInvalidArgument) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: err = %v, want ErrInvalidArgument without the value", name, err)
		}
	}
}

func TestOperatorKeyFile(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{7}, seal.KeySize)
	raw := filepath.Join(dir, "raw.key")
	hexed := filepath.Join(dir, "hex.key")
	os.WriteFile(raw, key, 0o600)
	os.WriteFile(hexed, []byte(hex.EncodeToString(key)+"\n"), 0o400)
	a, err := seal.LoadKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := seal.LoadKey(hexed)
	if err != nil {
		t.Fatal(err)
	}
	if a.KeyID() != b.KeyID() {
		t.Fatal("raw and hex forms of one key differ")
	}
	v, _ := a.Seal("x")
	if got, err := b.Open(v); err != nil || got != "x" {
		t.Fatalf("Open = %q, %v", got, err)
	}

	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte("tooshort"), 0o600)
	open := filepath.Join(dir, "open.key")
	os.WriteFile(open, key, 0o644)
	for path, want := range map[string]string{
		short:                     "8 bytes, want 32",
		open:                      "others may read it",
		filepath.Join(dir, "nil"): "does not exist",
		dir:                       "not a regular file",
	} {
		if _, err := seal.LoadKey(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadKey(%s) = %v, want %q", filepath.Base(path), err, want)
		}
	}
	// An operator's key is never created.
	if _, err := os.Stat(filepath.Join(dir, "nil")); err == nil {
		t.Error("LoadKey created a missing key")
	}
}
