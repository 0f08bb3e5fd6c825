package testenv

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// busyboxPath is Debian busybox-static's binary.
const busyboxPath = "/bin/busybox"

// DefaultPath is the PATH set in images built by BusyboxImage.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// epoch is the mtime of every entry in generated layers, so that the same
// options always give the same digests.
var epoch = time.Unix(1700000000, 0).UTC()

// ImageOptions configures BusyboxImage.
type ImageOptions struct {
	Entrypoint []string
	// Cmd defaults to ["sh"] when both Entrypoint and Cmd are empty.
	Cmd []string
	// Env is appended to DefaultPath.
	Env        []string
	WorkingDir string
	User       string
	// ExposedPorts such as "80/tcp".
	ExposedPorts []string
	// Layers are added on top of the busybox base layer, in order.
	Layers []LayerSpec
	// OCI gives the image OCI media types (manifest, config and layers)
	// instead of Docker's.
	OCI bool
	// Architecture defaults to "amd64".
	Architecture string
}

// LayerSpec describes a layer in terms a test cares about. Paths are
// absolute or relative to the image root; parent directories are created
// (mode 0755) as needed.
type LayerSpec struct {
	// Files maps a path to its content (mode 0644 unless Modes says
	// otherwise).
	Files map[string]string
	// Modes overrides the permission bits of paths in Files or Dirs.
	Modes map[string]int64
	// Dirs are created (mode 0755 unless Modes says otherwise).
	Dirs []string
	// Symlinks maps a path to its link target.
	Symlinks map[string]string
	// Deletions remove paths of lower layers (as ".wh.NAME" whiteouts).
	Deletions []string
	// OpaqueDirs hide everything lower layers put in these directories (as
	// ".wh..wh..opq" markers); the layer's own entries in them stay.
	OpaqueDirs []string
}

// BusyboxImage builds a small linux image: a base layer with /bin/busybox
// and a symlink for each of its applets in /bin, /usr/bin/env, /etc/passwd
// (root, app uid 1000, nobody uid 65534), /etc/group, /tmp, plus opts.Layers.
// It fails the test if /bin/busybox is missing.
func BusyboxImage(t testing.TB, opts ImageOptions) v1.Image {
	t.Helper()
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		t.Fatalf("testenv: read %s (install Debian's busybox-static package): %v", busyboxPath, err)
	}
	out, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		t.Fatalf("testenv: busybox --list: %v", err)
	}
	var entries []TarEntry
	dir := func(p string, mode int64, uid int) {
		entries = append(entries, TarEntry{Header: tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode, Uid: uid, Gid: uid}})
	}
	file := func(p string, mode int64, content []byte) {
		entries = append(entries, TarEntry{Header: tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode}, Content: content})
	}
	link := func(p, target string) {
		entries = append(entries, TarEntry{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: target, Mode: 0o777}})
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "usr", "usr/bin", "var"} {
		dir(d, 0o755, 0)
	}
	dir("root", 0o700, 0)
	dir("tmp", 0o1777, 0)
	dir("home", 0o755, 0)
	dir("home/app", 0o755, 1000)
	file("bin/busybox", 0o755, bb)
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		link("bin/"+applet, "busybox")
	}
	link("usr/bin/env", "/bin/busybox")
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"+
		"app:x:1000:1000:app:/home/app:/bin/sh\n"+
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	file("etc/group", 0o644, []byte("root:x:0:\napp:x:1000:\nnogroup:x:65534:\n"))
	file("etc/hostname", 0o644, []byte("busybox\n"))

	mt := types.DockerLayer
	if opts.OCI {
		mt = types.OCILayer
	}
	layers := []v1.Layer{TarLayer(t, entries, mt)}
	for _, spec := range opts.Layers {
		layers = append(layers, SpecLayer(t, spec, mt))
	}

	arch := opts.Architecture
	if arch == "" {
		arch = "amd64"
	}
	cmd := opts.Cmd
	if len(cmd) == 0 && len(opts.Entrypoint) == 0 {
		cmd = []string{"sh"}
	}
	cfg := v1.Config{
		Entrypoint: opts.Entrypoint,
		Cmd:        cmd,
		Env:        append([]string{DefaultPath}, opts.Env...),
		WorkingDir: opts.WorkingDir,
		User:       opts.User,
	}
	if len(opts.ExposedPorts) > 0 {
		cfg.ExposedPorts = map[string]struct{}{}
		for _, p := range opts.ExposedPorts {
			cfg.ExposedPorts[p] = struct{}{}
		}
	}
	base := empty.Image
	if opts.OCI {
		base = mutate.MediaType(base, types.OCIManifestSchema1)
		base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	}
	img, err := mutate.ConfigFile(base, &v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TarEntry is one entry of a layer built by TarLayer.
type TarEntry struct {
	Header  tar.Header
	Content []byte
}

// TarLayer builds a gzip layer of media type mt (types.DockerLayer when
// empty) from entries, written in order. Entries' sizes are taken from
// Content and zero mtimes become a fixed date, so output is reproducible.
func TarLayer(t testing.TB, entries []TarEntry, mt types.MediaType) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Header
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Content))
		}
		if h.ModTime.IsZero() {
			h.ModTime = epoch
		}
		if h.Format == tar.FormatUnknown && len(h.PAXRecords) == 0 {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("testenv: tar header %s: %v", h.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.Content); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	if mt == "" {
		mt = types.DockerLayer
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(mt), tarball.WithCompressedCaching)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// SpecLayer builds the layer a LayerSpec describes.
func SpecLayer(t testing.TB, spec LayerSpec, mt types.MediaType) v1.Layer {
	t.Helper()
	var entries []TarEntry
	seenDir := map[string]bool{}
	clean := func(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }
	modes := map[string]int64{}
	for p, m := range spec.Modes {
		modes[clean(p)] = m
	}
	var addDir func(p string)
	addDir = func(p string) {
		if p == "." || p == "" || seenDir[p] {
			return
		}
		addDir(path.Dir(p))
		seenDir[p] = true
		mode, ok := modes[p]
		if !ok {
			mode = 0o755
		}
		entries = append(entries, TarEntry{Header: tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode}})
	}

	for _, d := range sortedCopy(spec.Dirs) {
		addDir(clean(d))
	}
	for _, d := range sortedCopy(spec.OpaqueDirs) {
		d = clean(d)
		addDir(d)
		entries = append(entries, TarEntry{Header: tar.Header{Typeflag: tar.TypeReg, Name: d + "/.wh..wh..opq", Mode: 0o644}})
	}
	for _, p := range sortedCopy(spec.Deletions) {
		p = clean(p)
		addDir(path.Dir(p))
		entries = append(entries, TarEntry{Header: tar.Header{Typeflag: tar.TypeReg, Name: path.Join(path.Dir(p), ".wh."+path.Base(p)), Mode: 0o644}})
	}
	for _, p := range sortedKeys(spec.Files) {
		content := spec.Files[p]
		p = clean(p)
		addDir(path.Dir(p))
		mode, ok := modes[p]
		if !ok {
			mode = 0o644
		}
		entries = append(entries, TarEntry{Header: tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode}, Content: []byte(content)})
	}
	for _, p := range sortedKeys(spec.Symlinks) {
		target := spec.Symlinks[p]
		p = clean(p)
		addDir(path.Dir(p))
		entries = append(entries, TarEntry{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: target, Mode: 0o777}})
	}
	return TarLayer(t, entries, mt)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// remoteOpts returns go-containerregistry options carrying reg's credentials.
func (r *Registry) remoteOpts() []remote.Option {
	if r.Username == "" {
		return nil
	}
	return []remote.Option{remote.WithAuth(&authn.Basic{Username: r.Username, Password: r.Password})}
}

// Push pushes img to reg as repoTag ("repo:tag" or "repo") and returns the
// full reference "127.0.0.1:PORT/repo:tag".
func Push(t testing.TB, reg *Registry, repoTag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(reg.Addr + "/" + repoTag)
	if err != nil {
		t.Fatalf("testenv: bad reference %q: %v", repoTag, err)
	}
	if err := remote.Write(ref, img, reg.remoteOpts()...); err != nil {
		t.Fatalf("testenv: push %s: %v", ref, err)
	}
	return ref.String()
}

// PushIndex pushes a multi-platform image index to reg as repoTag and
// returns the full reference. images maps a platform ("linux/amd64",
// "linux/arm64", "linux/arm/v7") to its image; each image's config is
// rewritten to that OS and architecture, so the entries have distinct
// digests.
func PushIndex(t testing.TB, reg *Registry, repoTag string, images map[string]v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(reg.Addr + "/" + repoTag)
	if err != nil {
		t.Fatalf("testenv: bad reference %q: %v", repoTag, err)
	}
	platforms := make([]string, 0, len(images))
	for p := range images {
		platforms = append(platforms, p)
	}
	sort.Strings(platforms)
	var idx v1.ImageIndex = empty.Index
	for _, ps := range platforms {
		p, err := v1.ParsePlatform(ps)
		if err != nil {
			t.Fatalf("testenv: platform %q: %v", ps, err)
		}
		img := PlatformImage(t, images[ps], *p)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: p},
		})
	}
	if err := remote.WriteIndex(ref, idx, reg.remoteOpts()...); err != nil {
		t.Fatalf("testenv: push index %s: %v", ref, err)
	}
	return ref.String()
}

// PlatformImage returns img with its config's OS, architecture and variant
// set to p.
func PlatformImage(t testing.TB, img v1.Image, p v1.Platform) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	out, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
