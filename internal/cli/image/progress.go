package image

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

type pullEvent = api.PullEvent

// pullWithProgress pulls through the streaming route, drawing per-layer
// progress on stderr (redrawn in place on a terminal, one line per change
// otherwise), and prints the result on stdout.
func pullWithProgress(ctx context.Context, f *cmdutil.Factory, loc string, body pullRequest) error {
	c, p, err := f.Connect(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Do(ctx, &client.Request{
		Method: http.MethodPost, Path: p.Location(loc) + "/images/pull",
		Query: url.Values{"progress": {"true"}}, JSON: body,
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		// An older server: a plain JSON answer.
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		return f.PrintResponse(&client.Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: b}, nil)
	}
	pr := &progressView{w: f.IO.ErrOut, tty: f.IO.StderrTTY, lines: map[string]string{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e pullEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return errdefs.WithCode(errdefs.ErrUnavailable, "", "bad progress line from the server: %v", err)
		}
		switch {
		case e.Error != nil:
			return errdefs.WithCode(errdefs.ErrUnavailable, e.Error.Code, "%s", e.Error.Message)
		case e.Status == "pulled":
			return f.Print(map[string]string{"image": e.Image, "digest": e.Digest}, nil)
		case e.Status == "backoff":
			pr.note(fmt.Sprintf("back-off: attempt %d failed (%s), retrying in %s", e.Attempt, e.Message, e.Delay))
		case e.Layer != "":
			pr.layer(e)
		}
	}
	if err := sc.Err(); err != nil {
		return errdefs.WithCode(errdefs.ErrUnavailable, "", "pull progress stream: %v", err)
	}
	return errdefs.WithCode(errdefs.ErrUnavailable, "", "the server ended the pull without a result")
}

// progressView draws one line per layer.
type progressView struct {
	w     io.Writer
	tty   bool
	order []string
	lines map[string]string
	drawn int
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func (v *progressView) layer(e pullEvent) {
	var line string
	switch e.Status {
	case "downloading":
		pct := 0
		if e.Total > 0 {
			pct = int(e.Complete * 100 / e.Total)
		}
		line = fmt.Sprintf("%s: downloading %s / %s (%d%%)", shortDigest(e.Layer), human(e.Complete), human(e.Total), pct)
	case "resumed":
		line = fmt.Sprintf("%s: connection cut, resuming at %s", shortDigest(e.Layer), human(e.Complete))
	case "exists":
		line = fmt.Sprintf("%s: already present", shortDigest(e.Layer))
	case "done":
		line = fmt.Sprintf("%s: done", shortDigest(e.Layer))
	default:
		line = fmt.Sprintf("%s: %s", shortDigest(e.Layer), e.Status)
	}
	if _, ok := v.lines[e.Layer]; !ok {
		v.order = append(v.order, e.Layer)
	}
	prev := v.lines[e.Layer]
	v.lines[e.Layer] = line
	if v.tty {
		v.redraw()
		return
	}
	// Not a terminal: a line when a layer changes state, not per chunk.
	if e.Status != "downloading" || !strings.Contains(prev, "downloading") {
		fmt.Fprintln(v.w, line)
	}
}

func (v *progressView) note(s string) {
	if v.tty && v.drawn > 0 {
		fmt.Fprintf(v.w, "\x1b[%dA", v.drawn)
		v.drawn = 0
		fmt.Fprintf(v.w, "\x1b[J")
	}
	fmt.Fprintln(v.w, s)
	if v.tty {
		v.redraw()
	}
}

// redraw rewrites the layer lines in place.
func (v *progressView) redraw() {
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.drawn)
	}
	for _, l := range v.order {
		b.WriteString("\r\x1b[K" + v.lines[l] + "\n")
	}
	v.drawn = len(v.order)
	io.WriteString(v.w, b.String())
}
