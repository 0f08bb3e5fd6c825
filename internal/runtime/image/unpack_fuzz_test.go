package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/userns"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// fuzzLimits are small, so that the fuzzer reaches them.
var fuzzLimits = layerLimits{bytes: 64 << 10, entries: 512}

// escapeName is the file the seeds try to plant outside the layer root.
const escapeName = "skiff-unpack-escape"

type tarEntry struct {
	name, link string
	typ        byte
	body       string
	size       int64 // when not len(body): a header that lies
}

func layerTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		size := int64(len(e.body))
		if e.size != 0 {
			size = e.size
		}
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: size, Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			io.WriteString(tw, e.body)
		}
	}
	// A lying header leaves the writer short; the bytes are what matter.
	_ = tw.Close()
	return buf.Bytes()
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func unpackSeeds(t testing.TB) [][]byte {
	tmp := os.TempDir()
	return [][]byte{
		layerTar(t,
			tarEntry{name: "etc/", typ: tar.TypeDir},
			tarEntry{name: "etc/hostname", typ: tar.TypeReg, body: "box\n"},
			tarEntry{name: "etc/hosts", typ: tar.TypeLink, link: "etc/hostname"},
			tarEntry{name: "bin/sh", typ: tar.TypeSymlink, link: "/bin/busybox"},
			tarEntry{name: "var/.wh.cache", typ: tar.TypeReg},
			tarEntry{name: "opt/.wh..wh..opq", typ: tar.TypeReg},
			tarEntry{name: "dev/fifo", typ: tar.TypeFifo},
		),
		// Escapes: by "..", by a symlink out (relative and absolute), by a
		// hard link out, by a symlink chain.
		layerTar(t, tarEntry{name: "../outside/" + escapeName, typ: tar.TypeReg, body: "x"}),
		layerTar(t,
			tarEntry{name: "esc", typ: tar.TypeSymlink, link: "../outside"},
			tarEntry{name: "esc/" + escapeName, typ: tar.TypeReg, body: "x"}),
		layerTar(t,
			tarEntry{name: "abs", typ: tar.TypeSymlink, link: tmp},
			tarEntry{name: "abs/" + escapeName, typ: tar.TypeReg, body: "x"}),
		layerTar(t, tarEntry{name: "h", typ: tar.TypeLink, link: "../outside/canary"}),
		layerTar(t,
			tarEntry{name: "a", typ: tar.TypeSymlink, link: "b/.."},
			tarEntry{name: "b", typ: tar.TypeSymlink, link: ".."},
			tarEntry{name: "a/outside/" + escapeName, typ: tar.TypeReg, body: "x"}),
		layerTar(t,
			tarEntry{name: "d", typ: tar.TypeSymlink, link: "../outside"},
			tarEntry{name: "d/", typ: tar.TypeDir},
			tarEntry{name: "d/.wh.canary", typ: tar.TypeReg}),
		// Bounds: a file beyond the byte limit, a header that lies.
		layerTar(t,
			tarEntry{name: "big1", typ: tar.TypeReg, body: strings.Repeat("z", 40<<10)},
			tarEntry{name: "big2", typ: tar.TypeReg, body: strings.Repeat("z", 40<<10)}),
		layerTar(t, tarEntry{name: "liar", typ: tar.TypeReg, body: "short", size: 1 << 40}),
		gzipped(layerTar(t, tarEntry{name: "z/file", typ: tar.TypeReg, body: "gz"})),
		{},
	}
}

// FuzzUnpackLayer feeds arbitrary bytes, plain or compressed, to the layer
// unpacker: it must not panic, must write nothing outside its root (a
// sibling canary directory stays as it was, and nothing lands in the temp
// dir a symlink to it could reach), and must stay within its limits.
func FuzzUnpackLayer(f *testing.F) {
	for _, s := range unpackSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		root, outside := filepath.Join(parent, "root"), filepath.Join(parent, "outside")
		for _, d := range []string{root, outside} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(outside, "canary"), []byte("canary"), 0o644); err != nil {
			t.Fatal(err)
		}
		rc, err := decompress(bytes.NewReader(data))
		if err != nil {
			return
		}
		defer rc.Close()
		size, err := unpackWithin(context.Background(), rc, root, userns.Mapping{}, fuzzLimits)
		if err == nil && size > fuzzLimits.bytes {
			t.Fatalf("unpacked %d bytes, limit %d", size, fuzzLimits.bytes)
		}
		if err != nil && errors.Is(err, errdefs.ErrTooLarge) && !errdefs.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("ErrTooLarge is not a client error: %v", err)
		}

		// Nothing outside root: the parent holds root and the untouched
		// canary only, and no escape reached the temp dir.
		ents, _ := os.ReadDir(parent)
		if len(ents) != 2 {
			t.Fatalf("parent holds %v", ents)
		}
		got, err := os.ReadFile(filepath.Join(outside, "canary"))
		if err != nil || string(got) != "canary" {
			t.Fatalf("canary changed: %q %v", got, err)
		}
		if ents, _ := os.ReadDir(outside); len(ents) != 1 {
			t.Fatalf("outside holds %v", ents)
		}
		if _, err := os.Lstat(filepath.Join(os.TempDir(), escapeName)); err == nil {
			os.Remove(filepath.Join(os.TempDir(), escapeName))
			t.Fatalf("a file escaped to %s", os.TempDir())
		}

		// Within the limits, counting each inode once.
		var total int64
		entries := 0
		seen := map[uint64]bool{}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == root {
				return nil
			}
			entries++
			if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
				if st, ok := info.Sys().(*syscall.Stat_t); ok && !seen[st.Ino] {
					seen[st.Ino] = true
					total += info.Size()
				}
			}
			return nil
		})
		if total > fuzzLimits.bytes {
			t.Fatalf("root holds %d bytes, limit %d", total, fuzzLimits.bytes)
		}
		// Parents a layer names implicitly are created too: at most a
		// path's depth of directories per entry.
		if entries > fuzzLimits.entries*64 {
			t.Fatalf("root holds %d entries", entries)
		}
	})
}

// The limits refuse before writing: the entry that crosses them is not on
// disk, and the error is a clear ErrTooLarge.
func TestUnpackLimits(t *testing.T) {
	lim := layerLimits{bytes: 10, entries: 3}
	cases := []struct {
		name, notWritten string
		layer            []byte
		msg              string
	}{
		{"bytes", "b", layerTar(t,
			tarEntry{name: "a", typ: tar.TypeReg, body: "12345"},
			tarEntry{name: "b", typ: tar.TypeReg, body: "123456"}), "more than 10 bytes"},
		{"entries", "d", layerTar(t,
			tarEntry{name: "a", typ: tar.TypeReg}, tarEntry{name: "b", typ: tar.TypeReg},
			tarEntry{name: "c", typ: tar.TypeReg}, tarEntry{name: "d", typ: tar.TypeReg}), "more than 3 entries"},
		{"lying header", "b", layerTar(t, tarEntry{name: "b", typ: tar.TypeReg, body: "x", size: 1 << 50}), "more than 10 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := unpackWithin(context.Background(), bytes.NewReader(c.layer), dir, userns.Mapping{}, lim)
			if !errdefs.Is(err, errdefs.ErrTooLarge) || !errdefs.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v, want ErrTooLarge with %q", err, c.msg)
			}
			if _, err := os.Lstat(filepath.Join(dir, c.notWritten)); err == nil {
				t.Errorf("%s was written", c.notWritten)
			}
		})
	}
}

// Every escape seed is refused or stays inside; the legitimate layer
// unpacks whole.
func TestUnpackSeeds(t *testing.T) {
	seeds := unpackSeeds(t)
	dir := t.TempDir()
	if _, err := unpackWithin(context.Background(), bytes.NewReader(seeds[0]), dir, userns.Mapping{}, fuzzLimits); err != nil {
		t.Fatalf("a valid layer: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "etc/hosts")); err != nil || string(got) != "box\n" {
		t.Fatalf("hard link: %q %v", got, err)
	}
	for i, s := range seeds[1:7] {
		parent := t.TempDir()
		root := filepath.Join(parent, "root")
		os.Mkdir(root, 0o755)
		os.Mkdir(filepath.Join(parent, "outside"), 0o755)
		os.WriteFile(filepath.Join(parent, "outside", "canary"), []byte("canary"), 0o644)
		_, err := unpackWithin(context.Background(), bytes.NewReader(s), root, userns.Mapping{}, fuzzLimits)
		ents, _ := os.ReadDir(filepath.Join(parent, "outside"))
		if len(ents) != 1 {
			t.Errorf("escape seed %d: outside holds %v (err %v)", i+1, ents, err)
		}
		if _, err := os.Lstat(filepath.Join(os.TempDir(), escapeName)); err == nil {
			t.Errorf("escape seed %d reached %s", i+1, os.TempDir())
		}
	}
}

// A layer the unpacker refuses leaves nothing behind in the store: no
// layer, and no half-unpacked work in its temp dir.
func TestRefusedLayerLeavesNothing(t *testing.T) {
	testenv.RequireRoot(t)
	root := t.TempDir()
	s, err := NewStore(root, Options{DockerConfigPath: filepath.Join(t.TempDir(), "none.json")})
	if err != nil {
		t.Fatal(err)
	}
	data := layerTar(t,
		tarEntry{name: "ok/", typ: tar.TypeDir},
		tarEntry{name: "ok/file", typ: tar.TypeReg, body: "written before the bad entry"},
		tarEntry{name: "../" + escapeName, typ: tar.TypeReg, body: "x"})
	sum := sha256.Sum256(data)
	diffID := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	_, err = s.fetchLayer(context.Background(), static.NewLayer(data, types.DockerLayer), diffID, "", nil, func(Progress) {})
	if !errdefs.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("fetchLayer = %v, want a refusal", err)
	}
	if ents, err := os.ReadDir(filepath.Join(root, dirTmp)); err != nil || len(ents) != 0 {
		t.Errorf("tmp holds %v (%v)", ents, err)
	}
	if _, ok := s.readLayerMeta(diffID.String()); ok {
		t.Error("the refused layer is recorded")
	}
	if _, err := os.Lstat(s.layerDir(diffID.String())); err == nil {
		t.Error("the refused layer's directory exists")
	}
}
