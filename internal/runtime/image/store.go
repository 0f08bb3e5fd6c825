// Package image is Skiff's content-addressed image store. It pulls images
// from registries (and imports docker-archive and OCI-layout tarballs) with
// go-containerregistry, unpacks each layer once, keyed by its diffID, into a
// directory in overlayfs format, and keeps one small JSON record per image
// reference.
//
// Layout under the store root:
//
//	blobs/sha256/HEX          manifests and image configs
//	layers/sha256/HEX/fs      an unpacked layer (HEX = diffID), overlayfs format
//	layers/sha256/HEX/layer.json
//	images/HEX.json           an image record (HEX = sha256 of the reference)
//	tmp/                      work in progress; emptied by NewStore
//
// Layers appear under layers/ only complete (unpacked in tmp/, then renamed),
// and records are written to a temporary file and renamed, so a crash never
// leaves a half layer or a torn record behind.
package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skiff-sh/skiff/internal/atomicfile"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/userns"
)

// Options configures a Store. The zero value is usable.
type Options struct {
	// Logger receives debug and info messages; nil discards them.
	Logger *slog.Logger
	// DockerConfigPath is the docker config.json whose "auths" (and
	// credential helpers) provide registry credentials when a Pull is given
	// none for the registry. Default: $DOCKER_CONFIG/config.json, or
	// /root/.docker/config.json when DOCKER_CONFIG is unset. A missing file
	// means anonymous pulls.
	DockerConfigPath string
	// Platform that multi-platform indexes resolve to, "os/arch[/variant]".
	// Default: "linux/" + runtime.GOARCH (linux/amd64 on amd64 hosts).
	Platform string
	// DialTimeout bounds connecting to a registry. Default 10s.
	DialTimeout time.Duration
	// ResponseTimeout bounds the wait for a registry's response headers and
	// any pause while reading a response body. Default 30s.
	ResponseTimeout time.Duration
	// PullRetries is how often a pull whose registries answered 429 or 5xx
	// is tried again. Default 3; negative: never.
	PullRetries int
	// PullBackoff is the wait before the first retry; it doubles each time.
	// Default 1s.
	PullBackoff time.Duration
	// IDMap is the host's user namespace mapping (package userns): layers
	// are unpacked owned through it, and layers stored under another
	// mapping are shifted to it once, when the store opens.
	IDMap userns.Mapping
}

// Store is an on-disk image store. Its methods are safe for concurrent use
// by one process; two processes must not share a root.
type Store struct {
	root      string
	log       *slog.Logger
	keychain  *configKeychain
	platform  v1.Platform
	transport http.RoundTripper
	opts      Options

	regMu sync.RWMutex
	reg   *registryState

	// gcMu is held shared by Pull and Import and exclusively by GC, so that
	// GC never deletes a layer a pull has unpacked but not yet recorded.
	gcMu sync.RWMutex
	// recMu serialises writes of image records.
	recMu sync.Mutex
	// recCache holds decoded records by path (readRecord).
	recCache sync.Map

	pulls  singleflight.Group // key: reference + credentials
	layers singleflight.Group // key: diffID
}

// ImageConfig is the part of an image's config that a container runtime uses.
type ImageConfig struct {
	Entrypoint   []string `json:"entrypoint,omitempty"`
	Cmd          []string `json:"cmd,omitempty"`
	Env          []string `json:"env,omitempty"`
	WorkingDir   string   `json:"workingDir,omitempty"`
	User         string   `json:"user,omitempty"`
	ExposedPorts []string `json:"exposedPorts,omitempty"` // "80/tcp", sorted
}

// Image is a pulled or imported image, ready to be mounted.
type Image struct {
	// Name is the reference as the user wrote it ("busybox"); it is Ref
	// for imported images.
	Name string
	// Ref is the normalised reference it was stored under
	// ("127.0.0.1:5000/app:v1", "index.docker.io/library/busybox:latest",
	// "repo@sha256:..."), or its ID when it has no name.
	Ref string
	// Digest is the digest of the image manifest (for a multi-platform
	// index, of the platform's manifest).
	Digest string
	// IndexDigest is the digest of the index the image was chosen from, if
	// any.
	IndexDigest string
	// ID is the digest of the image config.
	ID     string
	Config ImageConfig
	// Layers are absolute paths of the unpacked layer directories, bottom
	// layer first.
	Layers []string
	// Size is the unpacked size of all layers in bytes.
	Size int64
	// Private: the image was pulled from its registry with a container
	// group's own credentials (imageRegistryCredentials), not the
	// operator's or none. GetFor hands it out only to a caller whose
	// credentials the registry accepts for it.
	Private bool
}

// ImageSummary is one entry of List.
type ImageSummary struct {
	// Name is the reference as last written by a user ("busybox").
	Name     string
	Ref      string
	Digest   string
	ID       string
	Size     int64
	StoredAt time.Time
	// Private is Image.Private.
	Private bool
}

// GCResult reports what GC deleted.
type GCResult struct {
	RemovedLayers int
	FreedBytes    int64
}

// ProgressStatus is the state of one layer in a Progress report.
type ProgressStatus string

// Layer states reported during Pull.
const (
	// ProgressExists: the layer is in the store already; nothing to fetch.
	ProgressExists ProgressStatus = "exists"
	// ProgressDownloading: Complete of Total compressed bytes are read.
	ProgressDownloading ProgressStatus = "downloading"
	// ProgressDone: the layer is downloaded, verified and unpacked.
	ProgressDone ProgressStatus = "done"
	// ProgressBackOff: every endpoint failed, the last with a 429 or a
	// 5xx; the pull is tried again after Delay (Attempt counts from 1).
	ProgressBackOff ProgressStatus = "backoff"
	// ProgressResumed: a layer download was cut and resumes at Complete.
	ProgressResumed ProgressStatus = "resumed"
)

// Progress reports the state of one layer of a Pull.
type Progress struct {
	Ref      string
	Layer    string // compressed layer digest
	Status   ProgressStatus
	Complete int64
	Total    int64
	// Attempt, Delay and Message describe a ProgressBackOff.
	Attempt int
	Delay   time.Duration
	Message string
}

// record is an image record as stored in images/HEX.json.
type record struct {
	Ref         string      `json:"ref"`
	Name        string      `json:"name,omitempty"`
	Digest      string      `json:"digest"`
	IndexDigest string      `json:"indexDigest,omitempty"`
	ID          string      `json:"id"`
	Config      ImageConfig `json:"config"`
	Layers      []string    `json:"layers"` // diffIDs, bottom first
	Size        int64       `json:"size"`
	StoredAt    time.Time   `json:"storedAt"`
	// Private is Image.Private.
	Private bool `json:"private,omitempty"`
}

// layerMeta is layers/sha256/HEX/layer.json.
type layerMeta struct {
	DiffID string `json:"diffID"`
	Digest string `json:"digest,omitempty"` // compressed digest it came from
	Size   int64  `json:"size"`             // unpacked bytes
	// IDMap is the user namespace mapping the files are owned through
	// (zero: the tar's own IDs).
	IDMap userns.Mapping `json:"idMap,omitzero"`
}

const (
	dirBlobs  = "blobs"
	dirLayers = "layers"
	dirImages = "images"
	dirTmp    = "tmp"
	layerFS   = "fs"
	layerJSON = "layer.json"
)

// NewStore opens (creating if needed) the store at root and removes work
// left in its tmp directory by an earlier crash.
func NewStore(root string, opts Options) (*Store, error) {
	if root == "" {
		return nil, fmt.Errorf("image store: empty root: %w", errdefs.ErrInvalidArgument)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("image store: root %q: %w", root, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	platform := opts.Platform
	if platform == "" {
		platform = "linux/" + runtime.GOARCH
	}
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, fmt.Errorf("image store: platform %q: %w: %w", platform, errdefs.ErrInvalidArgument, err)
	}
	cfgPath := opts.DockerConfigPath
	if cfgPath == "" {
		if d := os.Getenv("DOCKER_CONFIG"); d != "" {
			cfgPath = filepath.Join(d, "config.json")
		} else {
			cfgPath = "/root/.docker/config.json"
		}
	}
	if err := os.RemoveAll(filepath.Join(abs, dirTmp)); err != nil {
		return nil, fmt.Errorf("image store: clean tmp: %w", err)
	}
	for _, d := range []string{dirBlobs + "/sha256", dirLayers + "/sha256", dirImages, dirTmp} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	if err := shiftLayers(abs, opts.IDMap, log); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	return &Store{
		root:      abs,
		log:       log,
		keychain:  &configKeychain{path: cfgPath},
		platform:  *p,
		transport: newTransport(opts.DialTimeout, opts.ResponseTimeout),
		opts:      opts,
	}, nil
}

// Get returns the stored image for ref without contacting any registry. ref
// is a reference ("app:v1", "registry/app@sha256:..."), or a bare manifest
// digest or image ID ("sha256:..."). It returns an error wrapping
// errdefs.ErrNotFound if no such image is stored.
//
// Get waits for a running GC: an image found here is one GC has counted
// in use (see ApplyGCPolicy) or has not run over yet.
func (s *Store) Get(ref string) (*Image, error) {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	recs, err := s.resolve(ref)
	if err != nil {
		return nil, err
	}
	return s.toImage(recs[0]), nil
}

// List returns a summary of every stored image record, sorted by Ref.
func (s *Store) List() ([]ImageSummary, error) {
	recs, err := s.records()
	if err != nil {
		return nil, err
	}
	out := make([]ImageSummary, 0, len(recs))
	for _, r := range recs {
		out = append(out, ImageSummary{Name: r.displayName(), Ref: r.Ref, Digest: r.Digest, ID: r.ID, Size: r.Size, StoredAt: r.StoredAt, Private: r.Private})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

// Remove deletes the image record(s) ref resolves to (see Get). Layers and
// blobs stay until GC finds them unreferenced.
func (s *Store) Remove(ref string) error {
	recs, err := s.resolve(ref)
	if err != nil {
		return err
	}
	s.recMu.Lock()
	defer s.recMu.Unlock()
	for _, r := range recs {
		if err := os.Remove(s.recordPath(r.Ref)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove image %s: %w", r.Ref, err)
		}
		s.log.Info("image removed", "ref", r.Ref, "digest", r.Digest)
	}
	return nil
}

// GC deletes layers and blobs that no image record references and that no
// image in inUse needs. inUse entries are references, manifest digests or
// image IDs (as Get accepts); a manifest digest or ID protects its image's
// layers even after Remove deleted its record. GC waits for running pulls
// and imports to finish, and blocks new ones while it runs.
func (s *Store) GC(ctx context.Context, inUse []string) (GCResult, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	return s.gcLocked(ctx, inUse)
}

// gcLocked is GC; the caller holds gcMu.
func (s *Store) gcLocked(ctx context.Context, inUse []string) (GCResult, error) {
	var res GCResult

	recs, err := s.records()
	if err != nil {
		return res, err
	}
	keepLayers := map[string]bool{}
	keepBlobs := map[string]bool{}
	keepRecord := func(r *record) {
		for _, l := range r.Layers {
			keepLayers[l] = true
		}
		keepBlobs[r.Digest] = true
		keepBlobs[r.ID] = true
	}
	for _, r := range recs {
		keepRecord(r)
	}
	for _, ref := range inUse {
		if rs, err := s.resolve(ref); err == nil {
			for _, r := range rs {
				keepRecord(r)
			}
			continue
		}
		// No record: follow the blobs, if the digest's manifest is still here.
		if d := digestOf(ref); d != "" {
			s.keepFromBlob(d, keepLayers, keepBlobs)
		}
	}

	// Layers.
	layersDir := filepath.Join(s.root, dirLayers, "sha256")
	entries, err := os.ReadDir(layersDir)
	if err != nil {
		return res, fmt.Errorf("image gc: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		diffID := "sha256:" + e.Name()
		if keepLayers[diffID] {
			continue
		}
		dir := filepath.Join(layersDir, e.Name())
		var meta layerMeta
		if b, err := os.ReadFile(filepath.Join(dir, layerJSON)); err == nil {
			_ = json.Unmarshal(b, &meta)
		}
		if err := s.removeDir(dir); err != nil {
			return res, fmt.Errorf("image gc: remove layer %s: %w", diffID, err)
		}
		res.RemovedLayers++
		res.FreedBytes += meta.Size
		s.log.Debug("layer removed", "diffID", diffID, "size", meta.Size)
	}

	// Blobs.
	blobsDir := filepath.Join(s.root, dirBlobs, "sha256")
	entries, err = os.ReadDir(blobsDir)
	if err != nil {
		return res, fmt.Errorf("image gc: %w", err)
	}
	for _, e := range entries {
		if keepBlobs["sha256:"+e.Name()] {
			continue
		}
		p := filepath.Join(blobsDir, e.Name())
		if fi, err := os.Lstat(p); err == nil {
			res.FreedBytes += fi.Size()
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("image gc: remove blob: %w", err)
		}
	}

	// Leftovers of interrupted work (no pull or import runs now).
	tmp := filepath.Join(s.root, dirTmp)
	if entries, err := os.ReadDir(tmp); err == nil {
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(tmp, e.Name()))
		}
	}
	s.log.Info("image gc done", "removedLayers", res.RemovedLayers, "freedBytes", res.FreedBytes)
	return res, nil
}

// digestOf returns the digest in "sha256:..." or "repo@sha256:...", or "".
func digestOf(ref string) string {
	if h, err := v1.NewHash(ref); err == nil {
		return h.String()
	}
	if d, err := name.NewDigest(ref); err == nil {
		return d.DigestStr()
	}
	return ""
}

// keepFromBlob marks a manifest or config blob (and what it references) as
// in use, when it is still stored.
func (s *Store) keepFromBlob(digest string, keepLayers, keepBlobs map[string]bool) {
	b, err := os.ReadFile(s.blobPath(digest))
	if err != nil {
		return
	}
	keepBlobs[digest] = true
	var m struct {
		Config *struct {
			Digest string `json:"digest"`
		} `json:"config"`
		RootFS *struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if json.Unmarshal(b, &m) != nil {
		return
	}
	if m.Config != nil && m.Config.Digest != "" && m.Config.Digest != digest {
		s.keepFromBlob(m.Config.Digest, keepLayers, keepBlobs)
	}
	if m.RootFS != nil {
		for _, d := range m.RootFS.DiffIDs {
			keepLayers[d] = true
		}
	}
}

// removeDir moves dir into tmp/ (so it disappears at once) and deletes it.
func (s *Store) removeDir(dir string) error {
	trash, err := os.MkdirTemp(filepath.Join(s.root, dirTmp), "trash-")
	if err != nil {
		return err
	}
	if err := os.Rename(dir, filepath.Join(trash, "x")); err != nil {
		os.Remove(trash)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return os.RemoveAll(trash)
}

// toImage turns a record into an Image with absolute layer paths.
func (s *Store) toImage(r *record) *Image {
	img := &Image{
		Name:        r.displayName(),
		Ref:         r.Ref,
		Digest:      r.Digest,
		IndexDigest: r.IndexDigest,
		ID:          r.ID,
		Config:      r.Config,
		Size:        r.Size,
		Private:     r.Private,
	}
	for _, d := range r.Layers {
		img.Layers = append(img.Layers, s.layerFSPath(d))
	}
	return img.clone()
}

// displayName is the name as written, else the stored reference.
func (r *record) displayName() string {
	if r.Name != "" {
		return r.Name
	}
	return r.Ref
}

// clone returns a deep copy of img.
func (img *Image) clone() *Image {
	c := *img
	c.Config.Entrypoint = cloneStrings(img.Config.Entrypoint)
	c.Config.Cmd = cloneStrings(img.Config.Cmd)
	c.Config.Env = cloneStrings(img.Config.Env)
	c.Config.ExposedPorts = cloneStrings(img.Config.ExposedPorts)
	c.Layers = cloneStrings(img.Layers)
	return &c
}

func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s...)
}

// layerDir is layers/sha256/HEX for a diffID "sha256:HEX".
func (s *Store) layerDir(diffID string) string {
	return filepath.Join(s.root, dirLayers, strings.Replace(diffID, ":", string(filepath.Separator), 1))
}

func (s *Store) layerFSPath(diffID string) string {
	return filepath.Join(s.layerDir(diffID), layerFS)
}

func (s *Store) blobPath(digest string) string {
	return filepath.Join(s.root, dirBlobs, strings.Replace(digest, ":", string(filepath.Separator), 1))
}

func (s *Store) recordPath(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(s.root, dirImages, hex.EncodeToString(sum[:])+".json")
}

// records reads every image record.
func (s *Store) records() ([]*record, error) {
	dir := filepath.Join(s.root, dirImages)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	var out []*record
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			s.log.Warn("skipping unreadable image record", "file", e.Name(), "err", err)
			continue
		}
		out = append(out, &r)
	}
	return out, nil
}

// readRecord reads the record stored under a normalised reference.
//
// A create reads its image's record every time: records are kept decoded
// in memory, keyed by file and checked against the file's inode, size and
// modification time (a stat), so a record written since, by this store or
// another process (records are replaced by rename), is read again.
func (s *Store) readRecord(ref string) (*record, error) {
	path := s.recordPath(ref)
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	key := recordStamp(st)
	if c, ok := s.recCache.Load(path); ok && c.(cachedRecord).stamp == key {
		r := *c.(cachedRecord).r
		return &r, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("image record %s: %w", ref, err)
	}
	if st2, err := os.Stat(path); err == nil && recordStamp(st2) == key {
		c := r
		s.recCache.Store(path, cachedRecord{stamp: key, r: &c})
	}
	return &r, nil
}

// cachedRecord is a decoded record and the stamp of the file it came from.
type cachedRecord struct {
	stamp fileStamp
	r     *record
}

type fileStamp struct {
	ino, size uint64
	mtime     int64
}

func recordStamp(st fs.FileInfo) fileStamp {
	k := fileStamp{size: uint64(st.Size()), mtime: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		k.ino = sys.Ino
	}
	return k
}

// writeRecord stores r atomically.
func (s *Store) writeRecord(r *record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	s.recMu.Lock()
	defer s.recMu.Unlock()
	return writeFileAtomic(s.recordPath(r.Ref), b)
}

// resolve finds the records ref names: by exact reference, by repository and
// digest, or (for a bare digest) by manifest digest, index digest or ID.
func (s *Store) resolve(ref string) ([]*record, error) {
	notFound := fmt.Errorf("image %s: %w", ref, errdefs.ErrNotFound)
	if h, err := v1.NewHash(ref); err == nil {
		d := h.String()
		recs, err := s.records()
		if err != nil {
			return nil, err
		}
		var out []*record
		for _, r := range recs {
			if r.Digest == d || r.ID == d || r.IndexDigest == d {
				out = append(out, r)
			}
		}
		if len(out) == 0 {
			return nil, notFound
		}
		return out, nil
	}
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w: %w", ref, errdefs.ErrInvalidArgument, err)
	}
	if r, err := s.readRecord(parsed.Name()); err == nil {
		return []*record{r}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	dig, ok := parsed.(name.Digest)
	if !ok {
		return nil, notFound
	}
	recs, err := s.records()
	if err != nil {
		return nil, err
	}
	repo := dig.Context().Name()
	var out []*record
	for _, r := range recs {
		rr, err := name.ParseReference(r.Ref)
		if err != nil || rr.Context().Name() != repo {
			continue
		}
		if r.Digest == dig.DigestStr() || r.IndexDigest == dig.DigestStr() {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, notFound
	}
	return out, nil
}

// writeFileAtomic writes data to path, mode 0600, atomically and durably.
func writeFileAtomic(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o600)
}

// writeBlob stores a manifest or config blob if it is not there yet.
func (s *Store) writeBlob(digest string, data []byte) error {
	p := s.blobPath(digest)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	return writeFileAtomic(p, data)
}

// drain reads r to its end (so verifying readers check their digest).
func drain(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
