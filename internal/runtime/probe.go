package runtime

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/api"
)

// probeKind is which of a container's probes a loop runs.
type probeKind string

const (
	liveness  probeKind = "Liveness"
	readiness probeKind = "Readiness"
	startup   probeKind = "Startup"
)

// startProbes runs the container's probes: the startup probe first, if
// there is one, and the liveness and readiness probes once it passed.
func (c *container) startProbes(ctx context.Context) {
	if p := c.props.StartupProbe; p != nil {
		go func() {
			if c.probeLoop(ctx, *p, startup) {
				c.probeLoops(ctx)
			}
		}()
		return
	}
	c.probeLoops(ctx)
}

// runHook runs a lifecycle hook (postStart, preStop) until it ends or ctx
// does; a failure is a Warning event named reason.
func (c *container) runHook(ctx context.Context, h *api.LifecycleHandler, reason, what string) error {
	timeout := 2 * time.Minute
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	err := c.probe(ctx, api.Probe{Exec: h.Exec, HTTPGet: h.HTTPGet}, timeout)
	if err != nil {
		c.event(api.EventWarning, reason, fmt.Sprintf("%s hook failed: %v", what, err))
	}
	return err
}

func (c *container) probeLoops(ctx context.Context) {
	if p := c.props.LivenessProbe; p != nil {
		go c.probeLoop(ctx, *p, liveness)
	}
	if p := c.props.ReadinessProbe; p != nil {
		go c.probeLoop(ctx, *p, readiness)
	}
}

func seconds(v, def int32) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v) * time.Second
}

// probeLoop runs one probe until ctx ends, as kubelet does. A liveness
// probe that fails failureThreshold times in a row kills the container,
// which the restart policy then handles; a readiness probe sets the
// container's Ready. A startup probe runs until it passes (true: the
// container is ready, unless a readiness probe is to say so) or fails
// failureThreshold times in a row, which kills the container (false).
func (c *container) probeLoop(ctx context.Context, p api.Probe, kind probeKind) (passed bool) {
	period := seconds(p.PeriodSeconds, 10)
	timeout := seconds(p.TimeoutSeconds, 1)
	failures, successes := int(p.FailureThreshold), int(p.SuccessThreshold)
	if failures <= 0 {
		failures = 3
	}
	if successes <= 0 {
		successes = 1
	}
	select {
	case <-time.After(time.Duration(p.InitialDelaySeconds) * time.Second):
	case <-ctx.Done():
		return false
	}
	t := time.NewTicker(period)
	defer t.Stop()
	okRun, failRun := 0, 0
	for {
		err := c.probe(ctx, p, timeout)
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			okRun, failRun = okRun+1, 0
			switch {
			case kind == startup:
				if c.props.ReadinessProbe == nil {
					c.setReady(true)
				}
				return true
			case kind == readiness && okRun >= successes:
				c.setReady(true)
			}
		} else {
			okRun, failRun = 0, failRun+1
			c.event(api.EventWarning, "Unhealthy", fmt.Sprintf("%s probe failed: %v", kind, err))
			if failRun >= failures {
				if kind == readiness {
					c.setReady(false)
				} else {
					c.event(api.EventNormal, "Killing", fmt.Sprintf("Container failed %s probe, will be restarted", strings.ToLower(string(kind))))
					_ = c.g.r.oci.Kill(context.WithoutCancel(ctx), c.runcID, int(sigKILL), allProcs)
					return false
				}
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		}
	}
}

func (c *container) setReady(ready bool) {
	if cs := c.g.status().Container(c.name); cs != nil && cs.Ready == ready {
		return
	}
	c.update(func(cs *ContainerStatus) {
		if cs.CurrentState.State == api.ContainerRunning {
			cs.Ready = ready
		}
	})
}

func (c *container) probe(ctx context.Context, p api.Probe, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.Exec != nil:
		var out bytes.Buffer
		code, err := c.g.r.Exec(ctx, c.g.id, c.name, ExecOptions{Command: p.Exec.Command, Stdout: &out, Stderr: &out})
		if ctx.Err() != nil {
			return fmt.Errorf("timed out after %s", timeout)
		}
		if err != nil {
			return err
		}
		if code != 0 {
			msg := out.String()
			if len(msg) > 256 {
				msg = msg[:256]
			}
			return fmt.Errorf("command %q exited with %d: %s", p.Exec.Command, code, msg)
		}
		return nil
	case p.HTTPGet != nil:
		ip := c.g.status().IP
		scheme := "http"
		if p.HTTPGet.Scheme == "https" || p.HTTPGet.Scheme == "HTTPS" {
			scheme = "https"
		}
		path := p.HTTPGet.Path
		if path == "" || path[0] != '/' {
			path = "/" + path
		}
		url := scheme + "://" + net.JoinHostPort(ip, strconv.Itoa(int(p.HTTPGet.Port))) + path
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		for _, h := range p.HTTPGet.HTTPHeaders {
			req.Header.Set(h.Name, h.Value)
		}
		client := &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // probes check liveness, not identity
			Proxy:           nil,
		}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
		}
		return nil
	case p.TCPSocket != nil:
		addr := net.JoinHostPort(c.g.status().IP, strconv.Itoa(int(p.TCPSocket.Port)))
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("dial tcp %s: %w", addr, err)
		}
		conn.Close()
		return nil
	}
	return fmt.Errorf("probe has neither exec, httpGet nor tcpSocket")
}
