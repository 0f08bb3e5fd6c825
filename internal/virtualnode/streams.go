package virtualnode

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	vkerrdefs "github.com/virtual-kubelet/virtual-kubelet/errdefs"
	vkapi "github.com/virtual-kubelet/virtual-kubelet/node/api"
	utilexec "k8s.io/utils/exec"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// groupOf is the name of the group of pod ns/pod.
func (p *Provider) groupOf(ns, pod string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.pods[key(ns, pod)]; t != nil && t.group != "" {
		return t.group
	}
	return GroupName(ns, pod)
}

func notFound(err error) error {
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return vkerrdefs.AsNotFound(err)
	}
	return err
}

// GetContainerLogs reads a container's log through the Skiff API: tail,
// timestamps, previous and follow are passed on; since and limitBytes are
// applied here.
func (p *Provider) GetContainerLogs(ctx context.Context, ns, pod, container string, opts vkapi.ContainerLogOpts) (io.ReadCloser, error) {
	lo := client.LogOptions{Previous: opts.Previous, Follow: opts.Follow}
	if opts.Tail > 0 {
		lo.Tail = &opts.Tail
	}
	since := opts.SinceTime
	if opts.SinceSeconds > 0 {
		since = time.Now().Add(-time.Duration(opts.SinceSeconds) * time.Second)
	}
	// since needs the timestamps to filter on; they are cut off again below.
	lo.Timestamps = opts.Timestamps || !since.IsZero()
	body, err := p.cfg.Client.Logs(ctx, p.cfg.ResourceGroup, p.groupOf(ns, pod), container, lo)
	if err != nil {
		return nil, notFound(err)
	}
	if since.IsZero() && opts.LimitBytes <= 0 {
		return body, nil
	}
	pr, pw := io.Pipe()
	go func() {
		defer body.Close()
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		written := 0
		for sc.Scan() {
			line := sc.Text()
			if !since.IsZero() {
				ts, rest, _ := strings.Cut(line, " ")
				if t, err := time.Parse(time.RFC3339Nano, ts); err == nil && t.Before(since) {
					continue
				}
				if !opts.Timestamps {
					line = rest
				}
			}
			line += "\n"
			if opts.LimitBytes > 0 && written+len(line) > opts.LimitBytes {
				line = line[:opts.LimitBytes-written]
			}
			n, err := io.WriteString(pw, line)
			written += n
			if err != nil || (opts.LimitBytes > 0 && written >= opts.LimitBytes) {
				break
			}
		}
		pw.CloseWithError(sc.Err())
	}()
	return pr, nil
}

// RunInContainer runs cmd in a container through the Skiff exec websocket.
// Skiff runs every exec on a terminal, so stdout and stderr arrive merged.
func (p *Provider) RunInContainer(ctx context.Context, ns, pod, container string, cmd []string, attach vkapi.AttachIO) error {
	argv, _ := json.Marshal(cmd)
	req := api.ExecRequest{Command: string(argv), TerminalSize: &api.TerminalSize{Rows: 24, Cols: 80}}
	return p.stream(ctx, p.groupOf(ns, pod), container, req, attach)
}

// AttachToContainer streams a container's output from now on, as a
// kubelet's attach does (Skiff's own attach replays the log first, as az
// container attach does, so the followed log with tail=0 is used instead).
// Stdin is not connected.
func (p *Provider) AttachToContainer(ctx context.Context, ns, pod, container string, attach vkapi.AttachIO) error {
	tail := 0
	logs, err := p.cfg.Client.Logs(ctx, p.cfg.ResourceGroup, p.groupOf(ns, pod), container, client.LogOptions{Tail: &tail, Follow: true})
	if err != nil {
		return notFound(err)
	}
	defer logs.Close()
	go func() {
		<-ctx.Done()
		logs.Close()
	}()
	_, err = io.Copy(output(attach), logs)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// stream runs an exec session over Skiff's websocket: stdin and terminal
// resizes go in, the TTY output comes back.
func (p *Provider) stream(ctx context.Context, group, container string, req api.ExecRequest, attach vkapi.AttachIO) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := p.cfg.Client.Exec(ctx, p.cfg.ResourceGroup, group, container, req)
	if err != nil {
		return notFound(err)
	}
	defer s.Close()
	if resize := attach.Resize(); resize != nil && attach.TTY() {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case sz, ok := <-resize:
					if !ok {
						return
					}
					_ = s.Resize(int(sz.Height), int(sz.Width))
				}
			}
		}()
	}
	if in := attach.Stdin(); in != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := in.Read(buf)
				if n > 0 {
					if _, err := s.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					// End of input on a terminal is ^D.
					_, _ = s.Write([]byte{4})
					return
				}
			}
		}()
	}
	out := output(attach)
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if _, err := out.Write(bytes.ReplaceAll(buf[:n], []byte("\r\n"), []byte("\n"))); err != nil {
				return nil
			}
		}
		switch {
		case err == io.EOF:
			if code := s.ExitCode(); code != 0 {
				return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
			}
			return nil
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			return fmt.Errorf("exec stream: %w", err)
		}
	}
}

// output is where a session's output goes: stdout, else stderr (Skiff's
// TTY merges the two), else nowhere.
func output(attach vkapi.AttachIO) io.Writer {
	if w := attach.Stdout(); w != nil {
		return w
	}
	if w := attach.Stderr(); w != nil {
		return w
	}
	return io.Discard
}

// PortForward connects stream to port on the pod's own address (the
// group's address on Skiff's container network). That address is reachable
// where the virtual node runs on a Skiff host or routes to its container
// network; elsewhere the dial fails with a clear error.
func (p *Provider) PortForward(ctx context.Context, ns, pod string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	p.mu.Lock()
	var ip string
	if t := p.pods[key(ns, pod)]; t != nil {
		ip = t.pod.Status.PodIP
	}
	p.mu.Unlock()
	if ip == "" {
		return fmt.Errorf("port-forward to %s/%s: the pod has no address yet: %w", ns, pod, errdefs.ErrNotFound)
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := d.DialContext(dctx, "tcp", net.JoinHostPort(ip, strconv.Itoa(int(port))))
	cancel()
	if err != nil {
		return fmt.Errorf("port-forward to %s/%s port %d: %v: %w", ns, pod, port, err, errdefs.ErrUnavailable)
	}
	defer conn.Close()
	// The client's end of input half-closes the connection; the answer is
	// copied until the pod's side closes.
	go func() {
		_, _ = io.Copy(conn, stream)
		_ = conn.(*net.TCPConn).CloseWrite()
	}()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(stream, conn)
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}
