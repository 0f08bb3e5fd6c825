package api

import (
	"testing"
)

// A gitRepo volume names an http, https or git URL; anything else is a 400
// InvalidGitRepoVolume before the group is stored.
func TestValidateGitRepoURL(t *testing.T) {
	for _, c := range []struct {
		repo  string
		inMsg string // "" for valid
	}{
		{"https://example.com/r.git", ""},
		{"http://127.0.0.1:8080/r.git", ""},
		{"git://example.com/r.git", ""},
		{"https://user:pass@example.com/r.git", ""},
		{"file:///srv/repo.git", "must be an http://, https:// or git:// URL"},
		{"/srv/repo.git", "must be an http://, https:// or git:// URL"},
		{"./repo", "must be an http://, https:// or git:// URL"},
		{"repo.git", "must be an http://, https:// or git:// URL"},
		{"ssh://git@example.com/r.git", "must be an http://, https:// or git:// URL"},
		{"git@example.com:r.git", "must be an http://, https:// or git:// URL"},
		{"ext::sh -c touch% /tmp/x", "must not contain spaces"},
		{"ext::true", "must be an http://, https:// or git:// URL"},
		{"HTTPS://example.com/r.git", "must be an http://, https:// or git:// URL"},
		{"-uhttps://example.com/r.git", "must not start with '-'"},
		{"https://example.com/r.git\n", "control characters"},
		{"https:///r.git", "must name a host"},
		{"", "is required"},
	} {
		cg := validGroup()
		cg.Properties.Volumes[2].GitRepo.Repository = c.repo
		err := ValidateContainerGroup(cg)
		if c.inMsg == "" {
			checkErr(t, err, "", nil, "")
			continue
		}
		checkErr(t, err, "InvalidGitRepoVolume", nil, c.inMsg)
	}
}
