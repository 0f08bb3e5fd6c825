package image

import (
	"fmt"
	"io"
	"strings"

	"github.com/skiff-sh/skiff/api"
)

type pullEvent = api.PullEvent

// progressView draws the progress of a pull on stderr: one line per layer,
// redrawn in place on a terminal, one line per change otherwise.
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

// event shows one event of the pull.
func (v *progressView) event(e pullEvent) {
	switch {
	case e.Status == "backoff":
		v.note(fmt.Sprintf("back-off: attempt %d failed (%s), retrying in %s", e.Attempt, e.Message, e.Delay))
	case e.Layer != "":
		v.layer(e)
	}
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
