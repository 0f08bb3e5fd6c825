package volume

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// maxGitStderr caps how much of git's stderr goes into an error.
const maxGitStderr = 2048

// DefaultGitMaxBytes bounds the disk one gitRepo volume may take (the clone
// with its .git directory) when Config.GitMaxBytes is zero.
const DefaultGitMaxBytes = 1 << 30

// gitSizeInterval is how often a clone's size is measured while it runs.
const gitSizeInterval = 250 * time.Millisecond

// cloneRepo clones g.Repository into volDir/<directory> and checks out
// g.Revision if set. It runs with none of the host's git configuration or
// credentials (gitCommand), only over http, https and git, and is aborted
// when it takes longer than the Manager's gitTimeout or grows past its
// gitMaxBytes.
func (m *Manager) cloneRepo(ctx context.Context, volDir, volName string, g api.GitRepoVolume) error {
	gctx, cancel := context.WithTimeout(ctx, m.gitTimeout)
	defer cancel()
	red := newRedactor(g.Repository)
	if err := checkGitRepo(volName, &g); err != nil { // plan checked it; a caller of cloneRepo alone is held to it too
		return err
	}
	home, err := os.MkdirTemp("", "skiff-git-home-")
	if err != nil {
		return fmt.Errorf("volume %q: gitRepo: %w", volName, err)
	}
	defer os.RemoveAll(home)

	// The clone's size is measured while git runs; one past the limit
	// cancels it (git is killed with its process group).
	sizeCtx, tooBig := context.WithCancel(gctx)
	defer tooBig()
	var oversize atomic.Bool
	watchDone := make(chan struct{})
	defer func() { tooBig(); <-watchDone }()
	go func() {
		defer close(watchDone)
		t := time.NewTicker(gitSizeInterval)
		defer t.Stop()
		for {
			select {
			case <-sizeCtx.Done():
				return
			case <-t.C:
				if diskUsage(volDir) > m.gitMax {
					oversize.Store(true)
					tooBig()
					return
				}
			}
		}
	}()
	tooLarge := func() error {
		return fmt.Errorf("volume %q: gitRepo %s: the repository is larger than the limit of %s for a gitRepo volume; the clone was aborted: %w",
			volName, red.apply(g.Repository), formatBytes(m.gitMax), errdefs.ErrInvalidArgument)
	}
	fail := func(step string, err error) error {
		switch {
		case oversize.Load():
			return tooLarge()
		case ctx.Err() != nil:
			return fmt.Errorf("volume %q: gitRepo %s: %s: %w", volName, red.apply(g.Repository), step, ctx.Err())
		case gctx.Err() != nil:
			return fmt.Errorf("volume %q: gitRepo %s: %s timed out after %s: %w", volName, red.apply(g.Repository), step, m.gitTimeout, errdefs.ErrUnavailable)
		case errors.Is(err, exec.ErrNotFound):
			return fmt.Errorf("volume %q: gitRepo: git is not installed on this host: %w", volName, errdefs.ErrNotImplemented)
		}
		return fmt.Errorf("volume %q: gitRepo %s: %s: %s: %w", volName, red.apply(g.Repository), step, red.apply(err.Error()), errdefs.ErrInvalidArgument)
	}
	git := func(dir string, args ...string) (string, error) { return runGit(sizeCtx, home, dir, args...) }

	// No submodules: they would be fetched from URLs the repository names.
	args := []string{"clone", "--quiet", "--no-recurse-submodules"}
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
	if _, err := git(volDir, args...); err != nil {
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
	if g.Revision != "" {
		// A branch that exists only on the remote resolves as origin/<name>.
		var commit string
		for _, cand := range []string{g.Revision, "origin/" + g.Revision} {
			out, err := git(workTree, "rev-parse", "--verify", "--quiet", "--end-of-options", cand+"^{commit}")
			if err == nil {
				commit = strings.TrimSpace(out)
				break
			}
			if sizeCtx.Err() != nil {
				return fail("rev-parse", err)
			}
		}
		if commit == "" {
			return fmt.Errorf("volume %q: gitRepo %s: revision %q not found (not a commit, tag or branch of the repository): %w",
				volName, red.apply(g.Repository), g.Revision, errdefs.ErrInvalidArgument)
		}
		if _, err := git(workTree, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit); err != nil {
			return fail("checkout "+g.Revision, err)
		}
	}
	// What was written between the last measurement and the end.
	if oversize.Load() || diskUsage(volDir) > m.gitMax {
		return tooLarge()
	}
	return nil
}

// diskUsage is the disk space the files below dir take (st_blocks, as du
// counts: a sparse file counts for what it holds).
func diskUsage(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil // gone meanwhile (git renames as it goes)
		}
		if fi, err := e.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512
			}
		}
		return nil
	})
	return total
}

// formatBytes writes n in binary units ("1 GiB", "512 KiB").
func formatBytes(n int64) string {
	units := []string{"bytes", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && n%1024 == 0 && i < len(units)-1 {
		n /= 1024
		i++
	}
	return fmt.Sprintf("%d %s", n, units[i])
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

// gitSafeConfig is given to every git run with -c. With no config file
// read at all (gitEnv), it is all the configuration there is: only the
// http, https and git transports (also for redirects and anything a
// repository names), no credential helper, no askpass, no hooks, no
// submodules, no filesystem monitor.
var gitSafeConfig = []string{
	"protocol.allow=never",
	"protocol.https.allow=always",
	"protocol.http.allow=always",
	"protocol.git.allow=always",
	"credential.helper=",
	"core.askPass=",
	"core.hooksPath=/dev/null",
	"core.fsmonitor=false",
	"submodule.recurse=false",
	"http.followRedirects=initial",
}

// runGit runs git in dir with gitEnv(home) and gitSafeConfig and returns
// stdout. The whole process group is killed when ctx ends.
func runGit(ctx context.Context, home, dir string, args ...string) (string, error) {
	var full []string
	for _, c := range gitSafeConfig {
		full = append(full, "-c", c)
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = dir
	cmd.Env = gitEnv(home)
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

// gitEnv is the whole environment of a git run: nothing of the host's
// (no GIT_* variables, no proxies, no credentials), no configuration file
// (system, global or XDG; home is an empty directory of the clone's own),
// no prompt, and only the http, https and git transports (the environment
// form of the same rule as in gitSafeConfig).
func gitEnv(home string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	return []string{
		"PATH=" + path,
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_SYSTEM=/dev/null",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ALLOW_PROTOCOL=http:https:git",
		"GIT_PROTOCOL_FROM_USER=0",
		"GIT_SSH_COMMAND=false",
		"LC_ALL=C",
	}
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
