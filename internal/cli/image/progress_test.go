package image

import (
	"bytes"
	"strings"
	"testing"
)

// On a terminal each layer keeps one line, redrawn in place; elsewhere a
// line is printed per state change, not per chunk.
func TestProgressView(t *testing.T) {
	events := []pullEvent{
		{Layer: "sha256:aaaaaaaaaaaaaaaa", Status: "exists"},
		{Layer: "sha256:bbbbbbbbbbbbbbbb", Status: "downloading", Complete: 1 << 20, Total: 4 << 20},
		{Layer: "sha256:bbbbbbbbbbbbbbbb", Status: "downloading", Complete: 2 << 20, Total: 4 << 20},
		{Layer: "sha256:bbbbbbbbbbbbbbbb", Status: "resumed", Complete: 2 << 20, Total: 4 << 20},
		{Layer: "sha256:bbbbbbbbbbbbbbbb", Status: "downloading", Complete: 4 << 20, Total: 4 << 20},
		{Layer: "sha256:bbbbbbbbbbbbbbbb", Status: "done"},
	}
	var tty, plain bytes.Buffer
	tv := &progressView{w: &tty, tty: true, lines: map[string]string{}}
	pv := &progressView{w: &plain, lines: map[string]string{}}
	for _, e := range events {
		tv.layer(e)
		pv.layer(e)
	}
	want := "aaaaaaaaaaaa: already present\nbbbbbbbbbbbb: downloading 1.0 MiB / 4.0 MiB (25%)\nbbbbbbbbbbbb: connection cut, resuming at 2.0 MiB\nbbbbbbbbbbbb: downloading 4.0 MiB / 4.0 MiB (100%)\nbbbbbbbbbbbb: done\n"
	if plain.String() != want {
		t.Errorf("plain output:\n%s\nwant:\n%s", plain.String(), want)
	}
	out := tty.String()
	if !strings.Contains(out, "\x1b[2A") || !strings.HasSuffix(out, "\r\x1b[Kaaaaaaaaaaaa: already present\n\r\x1b[Kbbbbbbbbbbbb: done\n") {
		t.Errorf("terminal output %q", out)
	}
}
