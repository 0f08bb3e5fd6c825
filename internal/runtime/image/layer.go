package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skiff-sh/skiff/internal/runtime/userns"
)

// readLayerMeta returns the metadata of a stored layer.
func (s *Store) readLayerMeta(diffID string) (*layerMeta, bool) {
	b, err := os.ReadFile(filepath.Join(s.layerDir(diffID), layerJSON))
	if err != nil {
		return nil, false
	}
	var m layerMeta
	if json.Unmarshal(b, &m) != nil {
		return nil, false
	}
	return &m, true
}

// ensureLayer makes sure layer l (diffID) is unpacked in the store and
// returns its unpacked size. Concurrent calls for one diffID share the work.
func (s *Store) ensureLayer(ctx context.Context, l v1.Layer, diffID v1.Hash, blobs *blobFetcher, report func(Progress)) (int64, error) {
	var digest string
	if blobs != nil {
		d, err := l.Digest()
		if err != nil {
			return 0, err
		}
		digest = d.String()
	}
	if m, ok := s.readLayerMeta(diffID.String()); ok {
		report(Progress{Layer: digest, Status: ProgressExists, Complete: m.Size, Total: m.Size})
		return m.Size, nil
	}
	for {
		ch := s.layers.DoChan(diffID.String(), func() (any, error) {
			if m, ok := s.readLayerMeta(diffID.String()); ok {
				return m.Size, nil
			}
			return s.fetchLayer(ctx, l, diffID, digest, blobs, report)
		})
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case res := <-ch:
			if res.Err != nil && res.Shared && errors.Is(res.Err, context.Canceled) && ctx.Err() == nil {
				continue
			}
			if res.Err != nil {
				return 0, res.Err
			}
			return res.Val.(int64), nil
		}
	}
}

// fetchLayer downloads (or reads) layer l, verifies it and unpacks it into
// a temporary directory that is then renamed into place.
func (s *Store) fetchLayer(ctx context.Context, l v1.Layer, diffID v1.Hash, digest string, blobs *blobFetcher, report func(Progress)) (int64, error) {
	start := time.Now()
	tmp, err := os.MkdirTemp(filepath.Join(s.root, dirTmp), "layer-")
	if err != nil {
		return 0, err
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = os.RemoveAll(tmp)
		}
	}()
	fsDir := filepath.Join(tmp, layerFS)
	if err := os.Mkdir(fsDir, 0o755); err != nil {
		return 0, err
	}
	// The layer's root is container root's, unless its tar says otherwise.
	if err := s.opts.IDMap.Chown(fsDir); err != nil {
		return 0, err
	}

	var (
		stream  io.Reader
		closers []io.Closer
		raw     io.Reader // the compressed stream, drained at the end to verify its digest
	)
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i].Close()
		}
	}()
	if blobs != nil {
		total, _ := l.Size()
		rc, err := blobs.open(ctx, digest, total, report)
		if err != nil {
			return 0, fmt.Errorf("layer %s: %w", digest, err)
		}
		closers = append(closers, rc)
		pr := &progressReader{r: rc, report: report, p: Progress{Layer: digest, Status: ProgressDownloading, Total: total}}
		raw = pr
		dec, err := decompress(pr)
		if err != nil {
			return 0, fmt.Errorf("layer %s: %w", digest, err)
		}
		closers = append(closers, dec)
		stream = dec
	} else {
		rc, err := l.Uncompressed()
		if err != nil {
			return 0, fmt.Errorf("layer %s: %w", diffID, err)
		}
		closers = append(closers, rc)
		stream = rc
	}

	h := sha256.New()
	tee := io.TeeReader(stream, h)
	size, err := unpack(ctx, tee, fsDir, s.opts.IDMap)
	if err != nil {
		return 0, fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	// Read to the end: the tar may have trailing padding, and the
	// verifying readers check digests at EOF.
	if err := drain(tee); err != nil {
		return 0, fmt.Errorf("layer %s: %w", diffID, err)
	}
	if raw != nil {
		if err := drain(raw); err != nil {
			return 0, fmt.Errorf("layer %s: %w", digest, err)
		}
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diffID.String() {
		return 0, fmt.Errorf("layer %s: content has diffID %s, config says %s", digest, got, diffID)
	}

	meta, err := json.Marshal(layerMeta{DiffID: diffID.String(), Digest: digest, Size: size, IDMap: s.opts.IDMap})
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(tmp, layerJSON), meta, 0o600); err != nil {
		return 0, err
	}
	// Make the layer durable before it becomes visible.
	if err := syncFS(tmp); err != nil {
		return 0, err
	}
	dst := s.layerDir(diffID.String())
	if err := os.Rename(tmp, dst); err != nil {
		if _, ok := s.readLayerMeta(diffID.String()); ok && (errors.Is(err, fs.ErrExist) || errors.Is(err, unix.ENOTEMPTY)) {
			return size, nil // stored meanwhile by someone else
		}
		return 0, fmt.Errorf("store layer %s: %w", diffID, err)
	}
	renamed = true
	report(Progress{Layer: digest, Status: ProgressDone, Complete: size, Total: size})
	// Make the rename durable too.
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	s.log.Debug("layer stored", "diffID", diffID.String(), "digest", digest, "size", size, "duration", time.Since(start))
	return size, nil
}

// syncFS flushes the filesystem holding path.
func syncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	return nil
}

// decompress detects gzip or zstd by magic number; anything else is read as
// an uncompressed tar.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return gzip.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	default:
		return io.NopCloser(br), nil
	}
}

// progressReader reports bytes read, at most every 512 KiB and at EOF.
type progressReader struct {
	r        io.Reader
	report   func(Progress)
	p        Progress
	reported int64
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.Complete += int64(n)
	if pr.p.Complete-pr.reported >= 512<<10 || (errors.Is(err, io.EOF) && pr.p.Complete != pr.reported) {
		pr.reported = pr.p.Complete
		pr.report(pr.p)
	}
	return n, err
}

// shiftLayers gives every stored layer unpacked under another user namespace
// mapping the ownership of ids (userns.Mapping.Shift), once: the new mapping
// is recorded in its layer.json after its files are shifted (a crash in
// between shifts it again; files already moved are skipped). A layer whose
// shift fails is removed, to be pulled again.
func shiftLayers(root string, ids userns.Mapping, log *slog.Logger) error {
	dir := filepath.Join(root, dirLayers, "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		metaPath := filepath.Join(dir, e.Name(), layerJSON)
		b, err := os.ReadFile(metaPath)
		if err != nil {
			continue
		}
		var m layerMeta
		if json.Unmarshal(b, &m) != nil || m.IDMap == ids {
			continue
		}
		start := time.Now()
		if err := ids.Shift(filepath.Join(dir, e.Name(), layerFS), m.IDMap); err != nil {
			log.Warn("layer: cannot shift to the host's ID mapping; removing it", "diffID", m.DiffID, "err", err)
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
			continue
		}
		m.IDMap = ids
		nb, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(metaPath, nb); err != nil {
			return err
		}
		log.Info("layer shifted to the host's ID mapping", "diffID", m.DiffID, "idMap", ids.String(), "took", time.Since(start))
	}
	return nil
}
