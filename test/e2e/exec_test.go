package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A host without registry access: import an image tarball, run it, exec
// into it (with and without stdin), attach, and follow its log.
func TestCLIImportExecAttachFollow(t *testing.T) {
	s := startServer(t)
	s.mustSkiff("image", "import", busyboxTar(t))
	if list := s.mustSkiff("image", "list", "-o", "tsv"); !strings.Contains(list, "busybox:local") {
		t.Errorf("image list after import: %q", list)
	}
	s.mustSkiff("group", "create", "-n", "air", "-l", "local")
	s.mustSkiff("container", "create", "-g", "air", "-n", "ticker", "--image", "busybox:local",
		"--command-line", "sh -c 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.5; done'")

	out, errOut, code := s.skiff("container", "exec", "-g", "air", "-n", "ticker", "--exec-command", `["sh","-c","echo in-$(hostname); exit 3"]`)
	if code != 3 || !strings.Contains(out, "in-ticker") {
		t.Errorf("exec: exit %d, out %q, err %q", code, out, errOut)
	}
	out, _, code = s.skiffIn(strings.NewReader("echo from-stdin\nexit 0\n"), "container", "exec", "-g", "air", "-n", "ticker", "--exec-command", "sh")
	if code != 0 || !strings.Contains(out, "from-stdin") {
		t.Errorf("exec with stdin: exit %d, out %q", code, out)
	}
	// A terminal (-t) whose input ends at once: the command's output and
	// nothing else (the ^D of the end of input once came back as "^@").
	out, _, code = s.skiffIn(strings.NewReader(""), "container", "exec", "-t", "-g", "air", "-n", "ticker", "--exec-command", `["echo","hi"]`)
	if code != 0 || out != "hi\r\n" {
		t.Errorf("exec -t with an empty stdin: exit %d, out %q; want exactly \"hi\\r\\n\"", code, out)
	}
	// Piped, as people pipe it: no terminal, stdin until it ends, stdout
	// and stderr apart, byte for byte, and the command's exit code.
	out, _, code = s.skiffIn(strings.NewReader("hi\nthere\n"), "container", "exec", "-g", "air", "-n", "ticker", "--exec-command", "cat")
	if code != 0 || out != "hi\nthere\n" {
		t.Errorf("echo hi | exec cat: exit %d, out %q; want exactly the input back", code, out)
	}
	out, errOut, code = s.skiffIn(strings.NewReader(""), "container", "exec", "-g", "air", "-n", "ticker", "--exec-command", `["sh","-c","echo out; echo err >&2; exit 4"]`)
	if code != 4 || out != "out\n" || errOut != "err\n" {
		t.Errorf("piped exec: exit %d, stdout %q, stderr %q; want 4, \"out\\n\", \"err\\n\"", code, out, errOut)
	}

	// logs --follow streams new lines as they come.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, skiffBin, "container", "logs", "-g", "air", "-n", "ticker", "--follow")
	cmd.Env = append(cmd.Environ(), "SKIFF_ENDPOINT="+s.Endpoint, "SKIFF_DATA_DIR="+s.DataDir)
	var followed bytes.Buffer
	cmd.Stdout = &followed
	cmd.Run()
	if n := strings.Count(followed.String(), "tick"); n < 5 {
		t.Errorf("logs --follow for 4s gave %d lines: %q", n, followed.String())
	}

	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	att := exec.CommandContext(ctx2, skiffBin, "container", "attach", "-g", "air", "-n", "ticker")
	att.Env = cmd.Env
	var attached bytes.Buffer
	att.Stdout = &attached
	att.Run()
	if !strings.Contains(attached.String(), "tick") {
		t.Errorf("attach printed %q", attached.String())
	}

	// The image is in use: cachedImages lists it; metrics count the group
	// (a cluster's server runs no group: its host's record counts it).
	if cached, err := s.Client.ListCachedImages(t.Context(), "local"); len(cached) == 0 {
		t.Errorf("cachedImages is empty (%v)", err)
	}
	resp, err := http.Get(s.Endpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	gauge := "skiff_container_groups 1"
	if s.cluster() {
		gauge = "skiff_container_groups "
		if h, err := s.Client.GetHost(t.Context(), s.Agent.Name); err != nil || h.Properties.ContainerGroupCount != 1 {
			t.Errorf("the cluster's host should count one group: %+v %v", h, err)
		}
	}
	if !strings.Contains(string(body), gauge) || !strings.Contains(string(body), "skiff_http_requests_total") {
		t.Errorf("/metrics lacks %q or the request counter", gauge)
	}
}
