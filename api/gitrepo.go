package api

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// GitRepoSchemes are the URL schemes a gitRepo volume may clone from. Local
// paths, file://, ssh (and scp-like user@host:path), and git's transport
// helpers (ext::, fd::) are refused: a clone runs on the host, as root.
var GitRepoSchemes = []string{"https", "http", "git"}

// GitRepositoryProblem says what is wrong with repository as the source of
// a gitRepo volume, or returns "" when it is an http://, https:// or git://
// URL naming a host. The scheme must be lowercase, as git matches it.
func GitRepositoryProblem(repository string) string {
	switch {
	case strings.TrimSpace(repository) == "":
		return "is required"
	case strings.HasPrefix(repository, "-"):
		return "must not start with '-'"
	case strings.ContainsFunc(repository, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }):
		return "must not contain spaces or control characters"
	}
	scheme, _, ok := strings.Cut(repository, "://")
	known := false
	for _, s := range GitRepoSchemes {
		known = known || scheme == s
	}
	if !ok || !known {
		return "must be an http://, https:// or git:// URL (local paths, file://, ssh and other transports are not allowed)"
	}
	u, err := url.Parse(repository)
	if err != nil {
		return fmt.Sprintf("is not a valid URL: %v", err.(*url.Error).Err)
	}
	if u.Host == "" || u.Opaque != "" || strings.HasPrefix(u.Host, "-") {
		return "must name a host (scheme://host/path)"
	}
	return ""
}
