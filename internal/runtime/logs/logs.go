// Package logs writes and reads container log files in the CRI log format
// (one line per record: "<RFC3339Nano> <stream> <P|F> <content>"), the format
// the kubelet and containerd use. A run's log is capped: when the active file
// passes half the cap it is rotated to "<path>.1", so a run keeps at most the
// cap on disk.
package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// Streams.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// maxLine is the longest record; longer lines are split into partial records.
const maxLine = 16 * 1024

// Writer appends records to a capped log file. It is safe for concurrent use
// by the copiers of stdout and stderr.
type Writer struct {
	mu       sync.Mutex
	path     string
	maxBytes int64
	f        *os.File
	size     int64
	now      func() time.Time
}

// NewWriter opens (appending) the log file at path. maxBytes caps the run's
// log on disk (0 means 10 MiB).
func NewWriter(path string, maxBytes int64) (*Writer, error) {
	if maxBytes <= 0 {
		maxBytes = 10 << 20
	}
	w := &Writer{path: path, maxBytes: maxBytes, now: time.Now}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat log: %w", err)
	}
	w.f, w.size = f, st.Size()
	return nil
}

// Copy reads r until EOF and writes each line as a record of stream.
func (w *Writer) Copy(stream string, r io.Reader) error {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			tag := "P"
			if line[len(line)-1] == '\n' {
				tag = "F"
				line = line[:len(line)-1]
			}
			if werr := w.write(stream, tag, line); werr != nil {
				return werr
			}
		}
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return err
		}
	}
}

func (w *Writer) write(stream, tag string, content []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b bytes.Buffer
	b.WriteString(w.now().UTC().Format(time.RFC3339Nano))
	b.WriteByte(' ')
	b.WriteString(stream)
	b.WriteByte(' ')
	b.WriteString(tag)
	b.WriteByte(' ')
	b.Write(content)
	b.WriteByte('\n')
	if w.size+int64(b.Len()) > w.maxBytes/2 && w.size > 0 {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(b.Bytes())
	w.size += int64(n)
	return err
}

func (w *Writer) rotate() error {
	w.f.Close()
	if err := os.Rename(w.path, w.path+".1"); err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	return w.open()
}

// Close closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// Options select what Read returns.
type Options struct {
	// Tail is the number of last lines; negative means all.
	Tail int
	// Timestamps prefixes each line with its RFC3339Nano time.
	Timestamps bool
	// Since drops records older than this time.
	Since time.Time
	// Follow keeps reading new records until ctx ends or Done reports true.
	Follow bool
	// Done reports that the run has ended (no more records will come).
	Done func() bool
	// LimitBytes stops after this many bytes of output (0: no limit).
	LimitBytes int64
}

// Record is one parsed log line.
type Record struct {
	Time    time.Time
	Stream  string
	Partial bool
	Content []byte
}

// Parse parses one line of the log format.
func Parse(line []byte) (Record, error) {
	var r Record
	parts := bytes.SplitN(line, []byte{' '}, 4)
	if len(parts) < 3 {
		return r, fmt.Errorf("malformed log line %q", line)
	}
	t, err := time.Parse(time.RFC3339Nano, string(parts[0]))
	if err != nil {
		return r, fmt.Errorf("malformed log time: %w", err)
	}
	r.Time, r.Stream, r.Partial = t, string(parts[1]), string(parts[2]) == "P"
	if len(parts) == 4 {
		r.Content = parts[3]
	}
	return r, nil
}

// Read writes the records of the run whose active file is path (with its
// rotated segment path+".1") to out, per opts.
func Read(ctx context.Context, path string, opts Options, out io.Writer) error {
	r := &reader{opts: opts, out: &limitWriter{w: out, left: opts.LimitBytes}}
	if err := r.read(ctx, path); err != nil && !errors.Is(err, ErrLimit) {
		return err
	}
	return nil
}

// pollInterval is how often follow looks for new records.
const pollInterval = 100 * time.Millisecond

// reader carries the state of one Read from the initial pass into follow.
type reader struct {
	opts Options
	out  io.Writer
	// partial: the last record written out was a partial one, so the next
	// record continues its line (and gets no timestamp of its own).
	partial bool
}

func (r *reader) read(ctx context.Context, path string) error {
	seg, cur, err := openRun(path)
	if err != nil {
		return err
	}
	defer func() {
		if seg != nil {
			seg.Close()
		}
		if cur != nil {
			cur.Close()
		}
	}()
	var lines [][]byte
	if seg != nil {
		data, err := io.ReadAll(seg)
		if err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		lines = splitLines(data)
	}
	// pending is what follows the last complete record of the active file:
	// a record the writer has not finished yet.
	var pending []byte
	if cur != nil {
		data, err := io.ReadAll(cur)
		if err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		end := bytes.LastIndexByte(data, '\n') + 1
		lines = append(lines, splitLines(data[:end])...)
		pending = append([]byte(nil), data[end:]...)
	}
	for _, l := range tail(lines, r.opts.Tail) {
		if err := r.emit(l); err != nil {
			return err
		}
	}
	if !r.opts.Follow {
		return nil
	}
	// follow goes on from exactly what was consumed, through the same handle.
	f := cur
	cur = nil
	return r.follow(ctx, path, f, pending)
}

// openRun opens the rotated segment and the active file of a run (either may
// be nil if missing) as one consistent pair: if the writer rotated between the
// two opens, it tries again.
func openRun(path string) (seg, cur *os.File, err error) {
	for attempt := 0; ; attempt++ {
		if cur, err = openIfExists(path); err != nil {
			return nil, nil, err
		}
		if seg, err = openIfExists(path + ".1"); err != nil {
			closeFile(cur)
			return nil, nil, err
		}
		same, err := isAt(path, cur)
		if err != nil {
			closeFile(seg)
			closeFile(cur)
			return nil, nil, err
		}
		if same || attempt >= 10 {
			if seg != nil && cur != nil && isSame(seg, cur) {
				// Still rotating under us after all attempts: do not read
				// one file twice.
				seg.Close()
				seg = nil
			}
			return seg, cur, nil
		}
		closeFile(seg)
		closeFile(cur)
	}
}

func openIfExists(path string) (*os.File, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return f, nil
}

func closeFile(f *os.File) {
	if f != nil {
		f.Close()
	}
}

// isAt reports whether f (nil: no file) is the file at path.
func isAt(path string, f *os.File) (bool, error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return f == nil, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat log: %w", err)
	}
	if f == nil {
		return false, nil
	}
	mine, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat log: %w", err)
	}
	return os.SameFile(st, mine), nil
}

func isSame(a, b *os.File) bool {
	sa, err1 := a.Stat()
	sb, err2 := b.Stat()
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// follow reads what is appended to the run's log through f (nil: the active
// file did not exist yet), after the bytes already consumed; pending holds an
// unfinished record read so far. It keeps its file open, so when a restart
// renames the run's file away it still drains the run it started with; when
// the writer rotates to a new segment within the run, it moves on to that one.
func (r *reader) follow(ctx context.Context, path string, f *os.File, pending []byte) error {
	defer func() { closeFile(f) }()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		// Sampled before draining: whatever the run wrote before it ended
		// is read below.
		done := r.opts.Done != nil && r.opts.Done()
		if f == nil {
			nf, err := openIfExists(path)
			if err != nil {
				return err
			}
			f, pending = nf, nil
		}
		if f != nil {
			var err error
			if pending, err = r.drain(f, pending); err != nil {
				return err
			}
			next, err := successor(path, f)
			if err != nil {
				return err
			}
			if next != nil {
				// A record may have gone to the old segment after the drain
				// above and before the rotation: read it before moving on.
				if _, err := r.drain(f, pending); err != nil {
					next.Close()
					return err
				}
				f.Close()
				f, pending = next, nil
				continue // drain the new segment now, even if done
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// drain reads f to its end and writes the complete records; it returns what
// is left of an unfinished record.
func (r *reader) drain(f *os.File, pending []byte) ([]byte, error) {
	data, err := io.ReadAll(f)
	if err != nil {
		return pending, fmt.Errorf("read log: %w", err)
	}
	pending = append(pending, data...)
	end := bytes.LastIndexByte(pending, '\n') + 1
	if end == 0 {
		return pending, nil
	}
	for _, l := range splitLines(pending[:end]) {
		if err := r.emit(l); err != nil {
			return pending, err
		}
	}
	return append(pending[:0], pending[end:]...), nil
}

// successor returns the segment of the run that comes after f, opened, or
// nil if f is still the one to read: still the active file, or renamed away
// by a restart (the run it belongs to goes on in f alone).
func successor(path string, f *os.File) (*os.File, error) {
	mine, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat log: %w", err)
	}
	for attempt := 0; attempt < 3; attempt++ {
		if st, err := os.Stat(path); err == nil && os.SameFile(st, mine) {
			return nil, nil
		}
		seg, segErr := os.Stat(path + ".1")
		if segErr == nil && os.SameFile(seg, mine) {
			// Rotated once: the next segment is the active file.
			next, err := openIfExists(path)
			if err != nil || next == nil {
				return nil, err // nil: being created; next poll
			}
			// Unless the writer rotated again meanwhile, next comes right
			// after f.
			if st, err := os.Stat(path + ".1"); err == nil && os.SameFile(st, mine) {
				return next, nil
			}
			next.Close()
			continue
		}
		if segErr == nil && links(f) == 0 {
			// Rotated twice (f was path.1 and was replaced): the next
			// segment is path.1. Without a path.1, f was deleted some other
			// way (a restart removes the old run's segment): stay.
			return openIfExists(path + ".1")
		}
		return nil, nil
	}
	return nil, nil
}

// links returns the link count of f (-1 if unknown).
func links(f *os.File) int64 {
	st, err := f.Stat()
	if err != nil {
		return -1
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return int64(sys.Nlink)
	}
	return -1
}

// emit writes one record per the options. Garbage lines are skipped rather
// than failing a read.
func (r *reader) emit(line []byte) error {
	rec, err := Parse(line)
	if err != nil {
		return nil
	}
	if !r.opts.Since.IsZero() && rec.Time.Before(r.opts.Since) {
		return nil
	}
	var b bytes.Buffer
	if r.opts.Timestamps && !r.partial {
		b.WriteString(rec.Time.UTC().Format(time.RFC3339Nano))
		b.WriteByte(' ')
	}
	b.Write(rec.Content)
	if !rec.Partial {
		b.WriteByte('\n')
	}
	r.partial = rec.Partial
	_, err = r.out.Write(b.Bytes())
	return err
}

func splitLines(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break // an unfinished record is not returned yet
		}
		out = append(out, data[:i])
		data = data[i+1:]
	}
	return out
}

// tail keeps the records of the last n lines (n < 0: all). A line is a run of
// partial records ended by a full one; trailing partial records (the process
// has not finished the line) count as a line too.
func tail(lines [][]byte, n int) [][]byte {
	if n < 0 {
		return lines
	}
	count := 0
	for i := len(lines) - 1; i >= 0; i-- {
		r, err := Parse(lines[i])
		if err != nil {
			continue
		}
		if !r.Partial || i == len(lines)-1 {
			// A line ends at i; count lines follow it.
			if count == n {
				return lines[i+1:]
			}
			count++
		}
	}
	return lines
}

// ErrLimit ends a read that reached Options.LimitBytes.
var ErrLimit = errors.New("log limit reached")

// limitWriter passes at most left bytes (left <= 0: no limit) and returns
// ErrLimit once the limit is reached.
type limitWriter struct {
	w    io.Writer
	left int64
	used int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.left <= 0 {
		return l.w.Write(p)
	}
	if l.used >= l.left {
		return 0, ErrLimit
	}
	if int64(len(p)) > l.left-l.used {
		p = p[:l.left-l.used]
	}
	n, err := l.w.Write(p)
	l.used += int64(n)
	if err == nil && l.used >= l.left {
		err = ErrLimit
	}
	return n, err
}
