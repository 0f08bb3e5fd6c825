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
	if err := read(ctx, path, opts, out); err != nil && !errors.Is(err, ErrLimit) {
		return err
	}
	return nil
}

func read(ctx context.Context, path string, opts Options, out io.Writer) error {
	ow := &limitWriter{w: out, left: opts.LimitBytes}
	var lines [][]byte
	for _, p := range []string{path + ".1", path} {
		data, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		lines = append(lines, splitLines(data)...)
	}
	// Size of the active file we have consumed, for follow.
	var offset int64
	if st, err := os.Stat(path); err == nil {
		offset = st.Size()
	}
	lines = tail(lines, opts.Tail)
	for _, l := range lines {
		if err := emit(ow, l, opts); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	return follow(ctx, path, offset, opts, ow)
}

// follow reads what is appended to the run's log from offset on. It keeps
// its file open, so when a restart renames the run's file away it still
// drains the run it started with; when the writer rotates to a new segment
// within the run (a new file at path), it moves on to that one.
func follow(ctx context.Context, path string, offset int64, opts Options, out io.Writer) error {
	var pending []byte
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	drain := func() error {
		if f == nil {
			return nil
		}
		data, _ := io.ReadAll(f)
		pending = append(pending, data...)
		if i := bytes.LastIndexByte(pending, '\n'); i >= 0 {
			for _, l := range splitLines(pending[:i+1]) {
				if err := emit(out, l, opts); err != nil {
					return err
				}
			}
			pending = append([]byte(nil), pending[i+1:]...)
		}
		return nil
	}
	for {
		done := opts.Done != nil && opts.Done()
		if f == nil {
			if nf, err := os.Open(path); err == nil {
				if _, err := nf.Seek(offset, io.SeekStart); err != nil {
					nf.Close()
					return err
				}
				f = nf
			}
		}
		if err := drain(); err != nil {
			return err
		}
		if done {
			return nil
		}
		if f != nil && !done {
			// Rotated within the run: our file is now path.1 and a new one
			// sits at path. We read ours to its end above; move on.
			cur, err1 := os.Stat(path)
			mine, err2 := f.Stat()
			if err1 == nil && err2 == nil && !os.SameFile(cur, mine) && opts.rotated(path, mine) {
				f.Close()
				f, offset, pending = nil, 0, nil
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// rotated reports whether mine is the run's rotated segment (path.1), as
// opposed to a file renamed away by a restart.
func (o Options) rotated(path string, mine os.FileInfo) bool {
	seg, err := os.Stat(path + ".1")
	return err == nil && os.SameFile(seg, mine)
}

func emit(out io.Writer, line []byte, opts Options) error {
	r, err := Parse(line)
	if err != nil {
		return nil // skip garbage rather than fail a read
	}
	if !opts.Since.IsZero() && r.Time.Before(opts.Since) {
		return nil
	}
	var b bytes.Buffer
	if opts.Timestamps {
		b.WriteString(r.Time.UTC().Format(time.RFC3339Nano))
		b.WriteByte(' ')
	}
	b.Write(r.Content)
	if !r.Partial {
		b.WriteByte('\n')
	}
	_, err = out.Write(b.Bytes())
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

// tail keeps the last n full lines (a full line ends with an F record).
func tail(lines [][]byte, n int) [][]byte {
	if n < 0 {
		return lines
	}
	full := 0
	for i := len(lines) - 1; i >= 0; i-- {
		r, err := Parse(lines[i])
		if err == nil && !r.Partial {
			if full == n {
				return lines[i+1:]
			}
			full++
		}
	}
	return lines
}

// ErrLimit ends a read that reached Options.LimitBytes.
var ErrLimit = errors.New("log limit reached")

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
	return n, err
}
