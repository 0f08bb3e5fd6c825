package volume

import (
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// MaxSecretBytes caps the decoded size of one secret volume (all keys), as
// Kubernetes does for a Secret.
const MaxSecretBytes = 1 << 20

type kind string

const (
	kindEmptyDir  kind = "emptyDir"
	kindSecret    kind = "secret"
	kindGitRepo   kind = "gitRepo"
	kindAzureFile kind = "azureFile"
)

// volumePlan is a validated volume, ready to be created.
type volumePlan struct {
	name   string
	kind   kind
	secret []secretFile
	empty  api.EmptyDirVolume
	git    api.GitRepoVolume
	share  api.AzureFileVolume
}

type secretFile struct {
	key  string
	data []byte
}

// wipe zeroes decoded secret values held in memory.
func (p *volumePlan) wipe() {
	for _, f := range p.secret {
		clear(f.data)
	}
}

// nameRE matches names used as one path element: volume names, group IDs,
// storage account and share names.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// keyRE matches secret keys (file names); "." and ".." are refused apart.
var keyRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

func checkName(what, name string) error {
	if len(name) > 255 || !nameRE.MatchString(name) {
		return fmt.Errorf("volume: invalid %s %q: must be 1-255 characters of letters, digits, '.', '_' or '-', starting with a letter or digit: %w",
			what, name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// plan validates vols and decodes their secrets. On error nothing is held.
func plan(vols []api.Volume) (plans []*volumePlan, err error) {
	defer func() {
		if err != nil {
			for _, p := range plans {
				p.wipe()
			}
			plans = nil
		}
	}()
	seen := make(map[string]bool, len(vols))
	for i := range vols {
		v := &vols[i]
		if err := checkName("volume name", v.Name); err != nil {
			return plans, err
		}
		if seen[v.Name] {
			return plans, fmt.Errorf("volume %q: name is used by more than one volume: %w", v.Name, errdefs.ErrInvalidArgument)
		}
		seen[v.Name] = true

		var kinds []string
		if v.EmptyDir != nil {
			kinds = append(kinds, string(kindEmptyDir))
		}
		if v.Secret != nil {
			kinds = append(kinds, string(kindSecret))
		}
		if v.GitRepo != nil {
			kinds = append(kinds, string(kindGitRepo))
		}
		if v.AzureFile != nil {
			kinds = append(kinds, string(kindAzureFile))
		}
		if len(kinds) != 1 {
			return plans, fmt.Errorf("volume %q: must set exactly one of emptyDir, secret, gitRepo, azureFile (has %d: %s): %w",
				v.Name, len(kinds), strings.Join(kinds, ", "), errdefs.ErrInvalidArgument)
		}
		p := &volumePlan{name: v.Name, kind: kind(kinds[0])}
		plans = append(plans, p)
		switch p.kind {
		case kindEmptyDir:
			if err := v.EmptyDir.CheckMedium(); err != nil {
				return plans, fmt.Errorf("volume %q: emptyDir medium %w: %w", v.Name, err, errdefs.ErrInvalidArgument)
			}
			if _, err := v.EmptyDir.SizeLimitBytes(); err != nil {
				return plans, fmt.Errorf("volume %q: emptyDir sizeLimit %w: %w", v.Name, err, errdefs.ErrInvalidArgument)
			}
			p.empty = *v.EmptyDir
		case kindSecret:
			if p.secret, err = decodeSecret(v.Name, v.Secret); err != nil {
				return plans, err
			}
		case kindGitRepo:
			if err := checkGitRepo(v.Name, v.GitRepo); err != nil {
				return plans, err
			}
			p.git = *v.GitRepo
		case kindAzureFile:
			af := v.AzureFile
			if err := checkName("storageAccountName", af.StorageAccountName); err != nil {
				return plans, fmt.Errorf("volume %q: %w", v.Name, err)
			}
			if err := checkName("shareName", af.ShareName); err != nil {
				return plans, fmt.Errorf("volume %q: %w", v.Name, err)
			}
			// The storage account key is accepted and not kept.
			p.share = api.AzureFileVolume{ShareName: af.ShareName, StorageAccountName: af.StorageAccountName, ReadOnly: af.ReadOnly}
		}
	}
	return plans, nil
}

// decodeSecret decodes the base64 values of a secret volume. Errors name the
// volume and key, never the value.
func decodeSecret(volName string, secret map[string]string) ([]secretFile, error) {
	keys := make([]string, 0, len(secret))
	for k := range secret {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	files := make([]secretFile, 0, len(keys))
	total := 0
	fail := func(err error) ([]secretFile, error) {
		for _, f := range files {
			clear(f.data)
		}
		return nil, err
	}
	for _, k := range keys {
		if len(k) > 255 || !keyRE.MatchString(k) || k == "." || k == ".." {
			return fail(fmt.Errorf("volume %q: invalid secret key %q: must be a plain file name of letters, digits, '.', '_' or '-': %w",
				volName, k, errdefs.ErrInvalidArgument))
		}
		data, err := base64.StdEncoding.DecodeString(secret[k])
		if err != nil {
			clear(data)
			msg := "not valid base64"
			var ce base64.CorruptInputError
			if errors.As(err, &ce) {
				msg = fmt.Sprintf("not valid base64 (bad input at byte %d)", int64(ce))
			}
			return fail(fmt.Errorf("volume %q: secret key %q: value is %s: %w", volName, k, msg, errdefs.ErrInvalidArgument))
		}
		total += len(data)
		files = append(files, secretFile{key: k, data: data})
		if total > MaxSecretBytes {
			return fail(fmt.Errorf("volume %q: secret values exceed %d bytes decoded: %w", volName, MaxSecretBytes, errdefs.ErrInvalidArgument))
		}
	}
	return files, nil
}

func checkGitRepo(volName string, g *api.GitRepoVolume) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("volume %q: gitRepo: %s: %w", volName, fmt.Sprintf(format, a...), errdefs.ErrInvalidArgument)
	}
	if problem := api.GitRepositoryProblem(g.Repository); problem != "" {
		return bad("repository %s", problem)
	}
	switch {
	case strings.HasPrefix(g.Revision, "-"):
		return bad("revision %q must not start with '-'", g.Revision)
	case strings.ContainsAny(g.Revision, "\x00\n\r"):
		return bad("revision contains a control character")
	}
	if g.Directory != "" && g.Directory != "." {
		d := g.Directory
		if !filepath.IsLocal(d) || filepath.Clean(d) != d || strings.ContainsRune(d, 0) {
			return bad("directory %q must be a clean relative path inside the volume (no '..')", d)
		}
		for _, el := range strings.Split(d, "/") {
			if el == ".git" {
				return bad("directory %q must not contain .git", d)
			}
		}
	}
	return nil
}
