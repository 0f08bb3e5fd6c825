package volume

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// maxGitStderr caps how much of git's stderr goes into an error.
const maxGitStderr = 2048

// cloneRepo clones g.Repository into volDir/<directory> and checks out
// g.Revision if set.
func (m *Manager) cloneRepo(ctx context.Context, volDir, volName string, g api.GitRepoVolume) error {
	gctx, cancel := context.WithTimeout(ctx, m.gitTimeout)
	defer cancel()
	red := newRedactor(g.Repository)

	fail := func(step string, err error) error {
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("volume %q: gitRepo %s: %s: %w", volName, red.apply(g.Repository), step, ctx.Err())
		case gctx.Err() != nil:
			return fmt.Errorf("volume %q: gitRepo %s: %s timed out after %s: %w", volName, red.apply(g.Repository), step, m.gitTimeout, errdefs.ErrUnavailable)
		case errors.Is(err, exec.ErrNotFound):
			return fmt.Errorf("volume %q: gitRepo: git is not installed on this host: %w", volName, errdefs.ErrNotImplemented)
		}
		return fmt.Errorf("volume %q: gitRepo %s: %s: %s: %w", volName, red.apply(g.Repository), step, red.apply(err.Error()), errdefs.ErrInvalidArgument)
	}

	args := []string{"clone", "--quiet"}
	if g.Revision != "" {
		args = append(args, "--no-checkout")
	}
	args = append(args, "--", g.Repository)
	var workTree string
	switch g.Directory {
	case "":
		// Let git choose the directory name, as a user's `git clone` would.
	case ".":
		workTree = volDir
		args = append(args, ".")
	default:
		workTree = filepath.Join(volDir, g.Directory)
		if err := os.MkdirAll(filepath.Dir(workTree), 0o755); err != nil {
			return fmt.Errorf("volume %q: %w", volName, err)
		}
		args = append(args, g.Directory)
	}
	if _, err := runGit(gctx, volDir, args...); err != nil {
		return fail("clone", err)
	}
	if workTree == "" {
		entries, err := os.ReadDir(volDir)
		if err != nil {
			return fmt.Errorf("volume %q: %w", volName, err)
		}
		if len(entries) != 1 || !entries[0].IsDir() {
			return fmt.Errorf("volume %q: gitRepo: clone left %d entries in the volume, expected one directory: %w", volName, len(entries), errdefs.ErrInvalidArgument)
		}
		workTree = filepath.Join(volDir, entries[0].Name())
	}
	if g.Revision == "" {
		return nil
	}

	// A branch that exists only on the remote resolves as origin/<name>.
	var commit string
	for _, cand := range []string{g.Revision, "origin/" + g.Revision} {
		out, err := runGit(gctx, workTree, "rev-parse", "--verify", "--quiet", "--end-of-options", cand+"^{commit}")
		if err == nil {
			commit = strings.TrimSpace(out)
			break
		}
		if gctx.Err() != nil {
			return fail("rev-parse", err)
		}
	}
	if commit == "" {
		return fmt.Errorf("volume %q: gitRepo %s: revision %q not found (not a commit, tag or branch of the repository): %w",
			volName, red.apply(g.Repository), g.Revision, errdefs.ErrInvalidArgument)
	}
	if _, err := runGit(gctx, workTree, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit); err != nil {
		return fail("checkout "+g.Revision, err)
	}
	return nil
}

// gitError is a failed git run with (trimmed) stderr.
type gitError struct {
	err    error
	stderr string
}

func (e *gitError) Error() string {
	if e.stderr == "" {
		return e.err.Error()
	}
	return e.err.Error() + ": " + e.stderr
}

func (e *gitError) Unwrap() error { return e.err }

// runGit runs git in dir with an environment that never prompts and
// returns stdout. The whole process group is killed when ctx ends.
func runGit(ctx context.Context, dir string, args ...string) (string, error) {
	full := append([]string{"-c", "protocol.ext.allow=never", "-c", "core.askPass="}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > maxGitStderr {
			msg = "..." + msg[len(msg)-maxGitStderr:]
		}
		return "", &gitError{err: err, stderr: msg}
	}
	return stdout.String(), nil
}

// gitEnv is the process environment without GIT_* and askpass variables,
// plus settings that make git fail instead of waiting for a person.
func gitEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GIT_") || strings.HasPrefix(kv, "SSH_ASKPASS=") || strings.HasPrefix(kv, "LC_ALL=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_SSH_COMMAND=ssh -o BatchMode=yes",
		"LC_ALL=C",
	)
}

// userinfoRE matches the credentials part of a URL (scheme://user:pass@).
var userinfoRE = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@`)

// redactor removes credentials of a repository URL from text.
type redactor struct {
	secrets []string
}

func newRedactor(repo string) redactor {
	var r redactor
	if u, err := url.Parse(repo); err == nil && u.User != nil {
		add := func(s string) {
			if len(s) >= 3 {
				r.secrets = append(r.secrets, s)
			}
		}
		add(u.User.String())
		add(u.User.Username())
		add(url.QueryEscape(u.User.Username()))
		if p, ok := u.User.Password(); ok {
			add(p)
			add(url.QueryEscape(p))
			add(url.PathEscape(p))
		}
	}
	return r
}

func (r redactor) apply(s string) string {
	s = userinfoRE.ReplaceAllString(s, "${1}REDACTED@")
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, "REDACTED")
	}
	return s
}
