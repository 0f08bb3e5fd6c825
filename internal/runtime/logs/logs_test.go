package logs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recordRE matches one record of the CRI log format.
var recordRE = regexp.MustCompile(`^(\S+) (stdout|stderr) ([PF]) (.*)$`)

// syncBuffer is an io.Writer that a follow goroutine writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newWriter(t *testing.T, maxBytes int64) (*Writer, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "current.log")
	w, err := NewWriter(path, maxBytes)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w, path
}

// put writes s to stream through Copy, as the shim does with a pipe.
func put(t *testing.T, w *Writer, stream, s string) {
	t.Helper()
	if err := w.Copy(stream, strings.NewReader(s)); err != nil {
		t.Fatalf("Copy: %v", err)
	}
}

func readString(t *testing.T, path string, opts Options) string {
	t.Helper()
	var b bytes.Buffer
	if err := Read(context.Background(), path, opts, &b); err != nil {
		t.Fatalf("Read(%+v): %v", opts, err)
	}
	return b.String()
}

// records parses the raw log file at path.
func records(t *testing.T, path string) []Record {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []Record
	for i, l := range strings.SplitAfter(string(data), "\n") {
		if l == "" {
			continue
		}
		if !strings.HasSuffix(l, "\n") {
			t.Fatalf("record %d of %s has no newline: %q", i, path, l)
		}
		l = strings.TrimSuffix(l, "\n")
		if !recordRE.MatchString(l) {
			t.Fatalf("record %d is not in CRI format: %q", i, short(l))
		}
		r, err := Parse([]byte(l))
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		out = append(out, r)
	}
	return out
}

func short(s string) string {
	if len(s) > 80 {
		return s[:80] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

func line(i int) string { return fmt.Sprintf("line %05d %s", i, strings.Repeat("x", 24)) }

func lines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString(line(i))
		b.WriteByte('\n')
	}
	return b.String()
}

// writeRaw writes a log file by hand: one record per (offset, stream, tag,
// content), times relative to t0.
type rawRec struct {
	at      time.Duration
	stream  string
	tag     string
	content string
}

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func writeRaw(t *testing.T, recs ...rawRec) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "current.log")
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "%s %s %s %s\n", t0.Add(r.at).Format(time.RFC3339Nano), r.stream, r.tag, r.content)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCopyConcurrentStreams(t *testing.T) {
	w, path := newWriter(t, 0)
	const n = 2000
	var wg sync.WaitGroup
	for _, stream := range []string{Stdout, Stderr} {
		pr, pw := io.Pipe()
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := w.Copy(stream, pr); err != nil {
				t.Errorf("Copy %s: %v", stream, err)
			}
		}()
		go func() {
			defer wg.Done()
			// Write in odd-sized chunks so lines straddle the pipe writes.
			var all strings.Builder
			for i := 0; i < n; i++ {
				fmt.Fprintf(&all, "%s %d\n", stream, i)
			}
			data := all.String()
			for len(data) > 0 {
				k := min(len(data), 7+len(data)%13)
				pw.Write([]byte(data[:k]))
				data = data[k:]
			}
			pw.Close()
		}()
	}
	wg.Wait()

	next := map[string]int{}
	var last time.Time
	for _, r := range records(t, path) {
		if r.Partial {
			t.Fatalf("short line written as a partial record: %q", r.Content)
		}
		want := fmt.Sprintf("%s %d", r.Stream, next[r.Stream])
		if string(r.Content) != want {
			t.Fatalf("%s record = %q, want %q (lost, duplicated or reordered)", r.Stream, r.Content, want)
		}
		next[r.Stream]++
		if r.Time.Before(last) {
			t.Errorf("record time %v goes back from %v", r.Time, last)
		}
		last = r.Time
	}
	if next[Stdout] != n || next[Stderr] != n {
		t.Fatalf("records: stdout %d, stderr %d, want %d each", next[Stdout], next[Stderr], n)
	}

	out := strings.Split(strings.TrimSuffix(readString(t, path, Options{Tail: -1}), "\n"), "\n")
	seen := map[string]int{}
	for _, l := range out {
		seen[l]++
	}
	for _, stream := range []string{Stdout, Stderr} {
		for i := 0; i < n; i++ {
			if l := fmt.Sprintf("%s %d", stream, i); seen[l] != 1 {
				t.Fatalf("Read returned %q %d times, want once", l, seen[l])
			}
		}
	}
	if len(out) != 2*n {
		t.Fatalf("Read returned %d lines, want %d", len(out), 2*n)
	}
}

func TestCopyLongLines(t *testing.T) {
	for _, size := range []int{maxLine - 1, maxLine, maxLine + 1, 40000, 3 * maxLine} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			w, path := newWriter(t, 0)
			long := strings.Repeat("0123456789abcdef", size/16+1)[:size]
			put(t, w, Stdout, "before\n"+long+"\nafter\n")

			recs := records(t, path)
			var joined []byte
			for i, r := range recs[1 : len(recs)-1] {
				if len(r.Content) > maxLine {
					t.Errorf("record %d has %d bytes of content, max %d", i, len(r.Content), maxLine)
				}
				last := i == len(recs)-3
				if r.Partial == last {
					t.Errorf("record %d of the long line: partial=%v, want %v", i, r.Partial, !last)
				}
				joined = append(joined, r.Content...)
			}
			if string(joined) != long {
				t.Fatalf("long line records join to %d bytes, want %d", len(joined), len(long))
			}
			if size > maxLine && len(recs) < 4 {
				t.Errorf("a %d-byte line was not split (%d records)", size, len(recs))
			}

			got := readString(t, path, Options{Tail: -1})
			if want := "before\n" + long + "\nafter\n"; got != want {
				t.Fatalf("Read = %s, want the long line whole", short(got))
			}
			got = readString(t, path, Options{Tail: 2})
			if want := long + "\nafter\n"; got != want {
				t.Fatalf("Read Tail 2 = %s, want the long line whole and after", short(got))
			}
		})
	}
}

// A last line without a newline (the process exited mid-line) is kept as a
// partial record: its text is shown as is, without a newline made up for it,
// and text written later to the stream continues it.
func TestCopyUnterminatedLastLine(t *testing.T) {
	w, path := newWriter(t, 0)
	put(t, w, Stdout, "a\nprompt> ")
	recs := records(t, path)
	if len(recs) != 2 || recs[0].Partial || !recs[1].Partial || string(recs[1].Content) != "prompt> " {
		t.Fatalf("records = %+v, want F \"a\" then P \"prompt> \"", recs)
	}
	if got := readString(t, path, Options{Tail: -1}); got != "a\nprompt> " {
		t.Fatalf("Read = %q, want %q", got, "a\nprompt> ")
	}
	put(t, w, Stdout, "yes\nb\n")
	if got := readString(t, path, Options{Tail: -1}); got != "a\nprompt> yes\nb\n" {
		t.Fatalf("Read after completion = %q", got)
	}
}

// A record the writer has not finished (no newline yet at the end of the
// file) is not returned by Read, and follow returns it once it is complete.
func TestReadUnfinishedRecord(t *testing.T) {
	t.Parallel()
	path := writeRaw(t, rawRec{0, Stdout, "F", "a"})
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := t0.Add(time.Second).Format(time.RFC3339Nano) + " stdout F bcd\n"
	if _, err := f.WriteString(rec[:len(rec)-3]); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, path, Options{Tail: -1}); got != "a\n" {
		t.Fatalf("Read = %q, want only the finished record", got)
	}

	var done atomic.Bool
	out, errc := startFollow(t, path, Options{Tail: -1, Follow: true, Done: done.Load})
	waitOutput(t, out, "a\n")
	if _, err := f.WriteString(rec[len(rec)-3:]); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, out, "a\nbcd\n")
	done.Store(true)
	waitReturn(t, errc)
}

func TestCapKeepsNewestLines(t *testing.T) {
	const maxBytes = 8 << 10
	w, path := newWriter(t, maxBytes)
	const n = 1000
	for i := 0; i < n; i += 100 {
		put(t, w, Stdout, lines(i, i+100))
	}
	st0, err0 := os.Stat(path)
	st1, err1 := os.Stat(path + ".1")
	if err0 != nil || err1 != nil {
		t.Fatalf("after writing past the cap: %v, %v", err0, err1)
	}
	if total := st0.Size() + st1.Size(); total > maxBytes {
		t.Fatalf("log on disk = %d bytes, cap %d", total, maxBytes)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 2 {
		t.Errorf("log dir has %d files, want current.log and current.log.1", len(entries))
	}

	got := strings.Split(strings.TrimSuffix(readString(t, path, Options{Tail: -1}), "\n"), "\n")
	recLen := len(t0.Format(time.RFC3339Nano)) + len(" stdout F ") + len(line(0)) + 1
	if min := maxBytes / 2 / recLen; len(got) < min {
		t.Fatalf("Read returned %d lines, want at least %d (one full segment)", len(got), min)
	}
	first := n - len(got)
	for i, l := range got {
		if l != line(first+i) {
			t.Fatalf("line %d = %q, want %q: not the newest lines in order", i, l, line(first+i))
		}
	}

	// Tail reaching back into the rotated segment.
	active := len(records(t, path))
	got = strings.Split(strings.TrimSuffix(readString(t, path, Options{Tail: active + 3}), "\n"), "\n")
	if len(got) != active+3 || got[0] != line(n-active-3) || got[len(got)-1] != line(n-1) {
		t.Fatalf("Tail %d across segments = %d lines from %q to %q", active+3, len(got), got[0], got[len(got)-1])
	}
}

func TestReadTail(t *testing.T) {
	long := strings.Repeat("y", 2*maxLine+5)
	full := []rawRec{{0, Stdout, "F", "a"}, {1, Stderr, "F", "b"}, {2, Stdout, "F", "c"}}
	split := []rawRec{{0, Stdout, "F", "a"}, {1, Stdout, "P", long[:maxLine]}, {2, Stdout, "P", long[maxLine : 2*maxLine]}, {3, Stdout, "F", long[2*maxLine:]}}
	// The process exited after printing "c" without a newline.
	unterminated := []rawRec{{0, Stdout, "F", "a"}, {1, Stdout, "F", "b"}, {2, Stdout, "P", "c"}}
	for _, tc := range []struct {
		name string
		recs []rawRec
		tail int
		want string
	}{
		{"all", full, -1, "a\nb\nc\n"},
		{"zero", full, 0, ""},
		{"one", full, 1, "c\n"},
		{"two", full, 2, "b\nc\n"},
		{"more than there are", full, 10, "a\nb\nc\n"},
		{"empty log", nil, 5, ""},
		{"split line counts once", split, 1, long + "\n"},
		{"split line and one before", split, 2, "a\n" + long + "\n"},
		{"unterminated all", unterminated, -1, "a\nb\nc"},
		{"unterminated zero", unterminated, 0, ""},
		{"unterminated one", unterminated, 1, "c"},
		{"only an unterminated line, zero", unterminated[2:], 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeRaw(t, tc.recs...)
			if got := readString(t, path, Options{Tail: tc.tail}); got != tc.want {
				t.Fatalf("Tail %d = %q, want %q", tc.tail, short(got), short(tc.want))
			}
		})
	}
	t.Run("no log file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "current.log")
		if got := readString(t, path, Options{Tail: -1}); got != "" {
			t.Fatalf("Read of a missing log = %q", got)
		}
	})
}

func TestReadTimestamps(t *testing.T) {
	path := writeRaw(t,
		rawRec{0, Stdout, "F", "a"},
		rawRec{1500 * time.Millisecond, Stderr, "F", "b c"},
		rawRec{2*time.Second + 7, Stdout, "F", ""},
	)
	got := readString(t, path, Options{Tail: -1, Timestamps: true})
	want := []struct {
		at      time.Duration
		content string
	}{{0, "a"}, {1500 * time.Millisecond, "b c"}, {2*time.Second + 7, ""}}
	out := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(out) != len(want) {
		t.Fatalf("Read = %q, want %d lines", got, len(want))
	}
	for i, l := range out {
		ts, content, ok := strings.Cut(l, " ")
		if !ok {
			t.Fatalf("line %q has no timestamp", l)
		}
		tm, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatalf("line %q: timestamp: %v", l, err)
		}
		if !tm.Equal(t0.Add(want[i].at)) || content != want[i].content {
			t.Errorf("line %d = %v %q, want %v %q", i, tm, content, t0.Add(want[i].at), want[i].content)
		}
	}
}

// A line longer than a record gets one timestamp, not one per record.
func TestReadTimestampsLongLine(t *testing.T) {
	w, path := newWriter(t, 0)
	long := strings.Repeat("z", 40000)
	put(t, w, Stdout, "a\n"+long+"\nb\n")
	got := readString(t, path, Options{Tail: -1, Timestamps: true})
	out := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	want := []string{"a", long, "b"}
	if len(out) != len(want) {
		t.Fatalf("Read with timestamps = %d lines, want %d", len(out), len(want))
	}
	for i, l := range out {
		ts, content, _ := strings.Cut(l, " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("line %d: timestamp %q: %v", i, short(ts), err)
		}
		if content != want[i] {
			t.Errorf("line %d = %s, want %s", i, short(content), short(want[i]))
		}
	}
}

func TestReadSince(t *testing.T) {
	path := writeRaw(t,
		rawRec{0, Stdout, "F", "a"},
		rawRec{time.Second, Stdout, "F", "b"},
		rawRec{2 * time.Second, Stderr, "F", "c"},
		rawRec{3 * time.Second, Stdout, "F", "d"},
	)
	for _, tc := range []struct {
		name  string
		since time.Time
		tail  int
		want  string
	}{
		{"zero", time.Time{}, -1, "a\nb\nc\nd\n"},
		{"before all", t0.Add(-time.Hour), -1, "a\nb\nc\nd\n"},
		{"exactly at b", t0.Add(time.Second), -1, "b\nc\nd\n"},
		{"between b and c", t0.Add(1500 * time.Millisecond), -1, "c\nd\n"},
		{"other zone", t0.Add(1500 * time.Millisecond).In(time.FixedZone("x", 5*3600)), -1, "c\nd\n"},
		{"after all", t0.Add(time.Hour), -1, ""},
		{"with tail", t0.Add(time.Second), 1, "d\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := readString(t, path, Options{Tail: tc.tail, Since: tc.since}); got != tc.want {
				t.Fatalf("Since %v = %q, want %q", tc.since, got, tc.want)
			}
		})
	}
}

func TestReadLimitBytes(t *testing.T) {
	path := writeRaw(t,
		rawRec{0, Stdout, "F", "hello"},
		rawRec{time.Second, Stdout, "F", "world"},
		rawRec{2 * time.Second, Stdout, "F", "again"},
	)
	all := "hello\nworld\nagain\n"
	for _, tc := range []struct {
		limit int64
		want  string
	}{
		{0, all}, {1, "h"}, {5, "hello"}, {6, "hello\n"}, {8, "hello\nwo"}, {int64(len(all)), all}, {1000, all},
	} {
		t.Run(strconv.FormatInt(tc.limit, 10), func(t *testing.T) {
			if got := readString(t, path, Options{Tail: -1, LimitBytes: tc.limit}); got != tc.want {
				t.Fatalf("LimitBytes %d = %q, want %q", tc.limit, got, tc.want)
			}
		})
	}
	t.Run("with timestamps", func(t *testing.T) {
		got := readString(t, path, Options{Tail: -1, LimitBytes: 10, Timestamps: true})
		if want := (t0.Format(time.RFC3339Nano) + " hello")[:10]; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

// startFollow runs Read in the background; the returned channel reports its
// result.
func startFollow(t *testing.T, path string, opts Options) (*syncBuffer, <-chan error) {
	t.Helper()
	return startFollowCtx(t, t.Context(), path, opts)
}

func startFollowCtx(t *testing.T, ctx context.Context, path string, opts Options) (*syncBuffer, <-chan error) {
	t.Helper()
	out := &syncBuffer{}
	errc := make(chan error, 1)
	go func() { errc <- Read(ctx, path, opts, out) }()
	return out, errc
}

func waitOutput(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for out.String() != want {
		if time.Now().After(deadline) {
			t.Fatalf("follow output = %s, want %s", short(out.String()), short(want))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitReturn waits for a follow to end, as it must within a poll or two of
// Done turning true.
func waitReturn(t *testing.T, errc <-chan error) {
	t.Helper()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("follow did not end within 1s of Done")
	}
}

func TestFollowDeliversAppendedLines(t *testing.T) {
	t.Parallel()
	w, path := newWriter(t, 0)
	put(t, w, Stdout, "a\nb\n")
	var done atomic.Bool
	out, errc := startFollow(t, path, Options{Tail: 1, Follow: true, Done: done.Load})
	waitOutput(t, out, "b\n")
	put(t, w, Stderr, "c\n")
	waitOutput(t, out, "b\nc\n")
	put(t, w, Stdout, "d\ne\n")
	waitOutput(t, out, "b\nc\nd\ne\n")
	done.Store(true)
	waitReturn(t, errc)
	if got := out.String(); got != "b\nc\nd\ne\n" {
		t.Fatalf("follow output = %q", got)
	}
}

// Lines written just before the run ends are delivered before follow ends.
func TestFollowDrainsBeforeDone(t *testing.T) {
	t.Parallel()
	w, path := newWriter(t, 0)
	put(t, w, Stdout, "a\n")
	var done atomic.Bool
	out, errc := startFollow(t, path, Options{Tail: -1, Follow: true, Done: done.Load})
	waitOutput(t, out, "a\n")
	put(t, w, Stdout, lines(0, 50))
	done.Store(true)
	waitReturn(t, errc)
	if got, want := out.String(), "a\n"+lines(0, 50); got != want {
		t.Fatalf("follow output = %s, want %s", short(got), short(want))
	}
}

// With Since and Timestamps, follow filters and prefixes appended lines too.
func TestFollowOptions(t *testing.T) {
	t.Parallel()
	w, path := newWriter(t, 0)
	put(t, w, Stdout, "old\n")
	since := time.Now().Add(50 * time.Millisecond)
	var done atomic.Bool
	out, errc := startFollow(t, path, Options{Tail: -1, Since: since, Timestamps: true, Follow: true, Done: done.Load})
	time.Sleep(60 * time.Millisecond)
	put(t, w, Stdout, "new\n")
	deadline := time.Now().Add(time.Second)
	for !strings.HasSuffix(out.String(), " new\n") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	done.Store(true)
	waitReturn(t, errc)
	ts, content, _ := strings.Cut(out.String(), " ")
	if content != "new\n" {
		t.Fatalf("follow output = %q, want only the new line", out.String())
	}
	if tm, err := time.Parse(time.RFC3339Nano, ts); err != nil || tm.Before(since) {
		t.Fatalf("timestamp %q: %v (since %v)", ts, err, since)
	}
}

// writeUntilRotated writes lines one at a time from *next until the writer has
// rotated n times, and returns the lines it wrote.
func writeUntilRotated(t *testing.T, w *Writer, path string, next *int, n int) string {
	t.Helper()
	var b strings.Builder
	for rot := 0; rot < n; {
		before, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		put(t, w, Stdout, line(*next)+"\n")
		b.WriteString(line(*next) + "\n")
		*next++
		after, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(before, after) {
			rot++
		}
		if *next > 10000 {
			t.Fatal("writer never rotated")
		}
	}
	return b.String()
}

// The writer rotates, at a steady pace, while the reader follows: every line
// arrives once, in order.
func TestFollowAcrossRotation(t *testing.T) {
	t.Parallel()
	w, path := newWriter(t, 2048) // about 13 lines a segment
	put(t, w, Stdout, line(0)+"\n")
	var done atomic.Bool
	out, errc := startFollow(t, path, Options{Tail: -1, Follow: true, Done: done.Load})
	waitOutput(t, out, lines(0, 1))
	const n = 40
	for i := 1; i < n; i++ {
		put(t, w, Stdout, line(i)+"\n")
		time.Sleep(12 * time.Millisecond) // a segment lasts longer than a poll
	}
	if _, err := os.Stat(path + ".1"); err != nil {
		t.Fatalf("writer did not rotate: %v", err)
	}
	time.Sleep(250 * time.Millisecond)
	done.Store(true)
	waitReturn(t, errc)
	if got, want := out.String(), lines(0, n); got != want {
		t.Fatalf("follow across rotations:\n got %s\nwant %s", got, want)
	}
}

// The run writes past a rotation and ends before the follower's next poll:
// the lines in the new segment are still delivered.
func TestFollowRotationThenDone(t *testing.T) {
	t.Parallel()
	w, path := newWriter(t, 1024)
	put(t, w, Stdout, line(0)+"\n")
	var done atomic.Bool
	out, errc := startFollow(t, path, Options{Tail: -1, Follow: true, Done: done.Load})
	waitOutput(t, out, lines(0, 1))
	next := 1
	writeUntilRotated(t, w, path, &next, 1)
	put(t, w, Stdout, lines(next, next+3))
	next += 3
	done.Store(true)
	waitReturn(t, errc)
	if got, want := out.String(), lines(0, next); got != want {
		t.Fatalf("follow lost lines written after a rotation just before the run ended:\n got %s\nwant %s", got, want)
	}
}

// The writer rotates twice between two polls of the follower (a burst): the
// middle segment is still on disk (path.1) and must not be skipped, nor may
// follow stay stuck on the deleted first segment.
func TestFollowTwoRotationsBetweenPolls(t *testing.T) {
	t.Parallel()
	w, path := newWriter(t, 1024)
	put(t, w, Stdout, line(0)+"\n")
	var done atomic.Bool
	out, errc := startFollow(t, path, Options{Tail: -1, Follow: true, Done: done.Load})
	waitOutput(t, out, lines(0, 1))
	next := 1
	writeUntilRotated(t, w, path, &next, 2)
	put(t, w, Stdout, line(next)+"\n")
	next++
	time.Sleep(250 * time.Millisecond)
	put(t, w, Stdout, line(next)+"\n")
	next++
	waitOutputQuiet(out, lines(0, next))
	done.Store(true)
	waitReturn(t, errc)
	if got, want := out.String(), lines(0, next); got != want {
		t.Fatalf("follow after two quick rotations:\n got %s\nwant %s", got, want)
	}
}

func waitOutputQuiet(out *syncBuffer, want string) {
	deadline := time.Now().Add(500 * time.Millisecond)
	for out.String() != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// A restart renames the run's log to previous.log and starts a new
// current.log: follow of the old run returns the old run's lines only.
func TestFollowEndsWithItsRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// pollFirst lets the follower see the renamed file before Done.
		pollFirst bool
	}{{"done at once", false}, {"follower sees the rename first", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cur, prev := filepath.Join(dir, "current.log"), filepath.Join(dir, "previous.log")
			w1, err := NewWriter(cur, 0)
			if err != nil {
				t.Fatal(err)
			}
			put(t, w1, Stdout, "run1 a\nrun1 b\n")
			var done atomic.Bool
			out, errc := startFollow(t, cur, Options{Tail: -1, Follow: true, Done: done.Load})
			waitOutput(t, out, "run1 a\nrun1 b\n")
			put(t, w1, Stderr, "run1 last\n")
			w1.Close()

			// The restart, as the runtime does it.
			if err := os.Rename(cur, prev); err != nil {
				t.Fatal(err)
			}
			os.Remove(cur + ".1")
			w2, err := NewWriter(cur, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w2.Close() })
			put(t, w2, Stdout, "run2 x\n")
			if tc.pollFirst {
				time.Sleep(250 * time.Millisecond)
				put(t, w2, Stdout, "run2 y\n")
			}
			done.Store(true)
			waitReturn(t, errc)
			if got, want := out.String(), "run1 a\nrun1 b\nrun1 last\n"; got != want {
				t.Fatalf("follow of run 1 = %q, want %q", got, want)
			}
		})
	}
}

func TestFollowCancel(t *testing.T) {
	t.Parallel()
	w, path := newWriter(t, 0)
	put(t, w, Stdout, "a\n")
	ctx, cancel := context.WithCancel(t.Context())
	out, errc := startFollowCtx(t, ctx, path, Options{Tail: -1, Follow: true, Done: func() bool { return false }})
	waitOutput(t, out, "a\n")
	start := time.Now()
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Read after cancel: %v", err)
		}
		if d := time.Since(start); d > 300*time.Millisecond {
			t.Errorf("follow took %v to end after cancel", d)
		}
	case <-time.After(time.Second):
		t.Fatal("follow did not end within 1s of cancel")
	}
}

// Once LimitBytes is reached, follow ends without waiting for the run to end.
func TestFollowLimitBytes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		limit int64
		more  bool // a line is written later, after the first poll
		want  string
	}{
		{"reached mid line", 3, false, "hel"},
		{"reached at a line end, next line ends it", 6, true, "hello\n"},
		{"reached by a later line", 8, true, "hello\nwo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, path := newWriter(t, 0)
			put(t, w, Stdout, "hello\n")
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			start := time.Now()
			out, errc := startFollowCtx(t, ctx, path, Options{Tail: -1, Follow: true, LimitBytes: tc.limit, Done: func() bool { return false }})
			if tc.more {
				time.Sleep(150 * time.Millisecond)
				put(t, w, Stdout, "world\n")
			}
			select {
			case err := <-errc:
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
			case <-time.After(time.Second):
				t.Fatal("follow went on after LimitBytes was reached")
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("follow took %v", d)
			}
			if got := out.String(); got != tc.want {
				t.Fatalf("output = %q, want %q", got, tc.want)
			}
		})
	}
}

// Lines keep coming while a follow starts: the lines in flight when Read
// switches from reading the files to following are neither lost nor
// duplicated.
func TestFollowStartsWhileWriting(t *testing.T) {
	t.Parallel()
	w, path := newWriter(t, 0)
	// A long log makes Read's first pass take a while.
	const before = 20000
	put(t, w, Stdout, lines(0, before))
	var stop atomic.Bool
	var wrote atomic.Int64
	wrote.Store(before)
	fin := make(chan struct{})
	go func() {
		defer close(fin)
		for i := before; !stop.Load(); i++ {
			if err := w.Copy(Stdout, strings.NewReader(line(i)+"\n")); err != nil {
				t.Errorf("Copy: %v", err)
				return
			}
			wrote.Store(int64(i + 1))
		}
	}()
	var done atomic.Bool
	out, errc := startFollow(t, path, Options{Tail: -1, Follow: true, Done: done.Load})
	time.Sleep(50 * time.Millisecond)
	stop.Store(true)
	<-fin
	done.Store(true)
	waitReturn(t, errc)
	n := int(wrote.Load())
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	for i, l := range got {
		if l != line(i) {
			t.Fatalf("%d lines written, follow returned %d; line %d = %q, want %q", n, len(got), i, l, line(i))
		}
	}
	if len(got) != n {
		t.Fatalf("%d lines written, follow returned %d", n, len(got))
	}
}
