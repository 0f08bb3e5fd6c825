package oci

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

type passwdEntry struct {
	name string
	uid  uint32
	gid  uint32
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// ResolveUser turns an image-config user ("", "uid", "uid:gid", "name",
// "name:group", or a mix such as "name:gid") into numeric ids, reading the
// rootfs's /etc/passwd and /etc/group. The files are opened inside rootfs, so
// symlinks in the image cannot point them at the host's files.
//
// An empty user is root. A numeric uid works without /etc/passwd; its gid is
// then the one /etc/passwd lists for it, or 0. When no group is given, the
// additional gids are the groups that /etc/group lists the user name as a
// member of (as runc does); an explicit group means no additional gids. An
// unknown user or group name is an errdefs.ErrInvalidArgument.
func ResolveUser(rootfs, user string) (uid, gid uint32, additionalGids []uint32, err error) {
	userPart, groupPart, hasGroup := strings.Cut(user, ":")
	if hasGroup && strings.Contains(groupPart, ":") {
		return 0, 0, nil, fmt.Errorf("user %q: more than one ':': %w", user, errdefs.ErrInvalidArgument)
	}
	if hasGroup && groupPart == "" {
		return 0, 0, nil, fmt.Errorf("user %q: empty group: %w", user, errdefs.ErrInvalidArgument)
	}

	passwd, err := readPasswd(rootfs)
	if err != nil {
		return 0, 0, nil, err
	}

	var name string
	if n, ok, perr := parseID(userPart); perr != nil {
		return 0, 0, nil, fmt.Errorf("user %q: %w", user, perr)
	} else if ok || userPart == "" {
		uid = n // 0 for the empty user
		if i := slices.IndexFunc(passwd, func(p passwdEntry) bool { return p.uid == uid }); i >= 0 {
			gid, name = passwd[i].gid, passwd[i].name
		}
	} else {
		i := slices.IndexFunc(passwd, func(p passwdEntry) bool { return p.name == userPart })
		if i < 0 {
			return 0, 0, nil, fmt.Errorf("user %q not found in the image's /etc/passwd: %w", userPart, errdefs.ErrInvalidArgument)
		}
		uid, gid, name = passwd[i].uid, passwd[i].gid, passwd[i].name
	}

	if hasGroup {
		if n, ok, perr := parseID(groupPart); perr != nil {
			return 0, 0, nil, fmt.Errorf("user %q: %w", user, perr)
		} else if ok {
			return uid, n, nil, nil
		}
		groups, err := readGroup(rootfs)
		if err != nil {
			return 0, 0, nil, err
		}
		i := slices.IndexFunc(groups, func(g groupEntry) bool { return g.name == groupPart })
		if i < 0 {
			return 0, 0, nil, fmt.Errorf("group %q not found in the image's /etc/group: %w", groupPart, errdefs.ErrInvalidArgument)
		}
		return uid, groups[i].gid, nil, nil
	}

	if name != "" {
		groups, err := readGroup(rootfs)
		if err != nil {
			return 0, 0, nil, err
		}
		for _, g := range groups {
			if slices.Contains(g.members, name) && !slices.Contains(additionalGids, g.gid) {
				additionalGids = append(additionalGids, g.gid)
			}
		}
	}
	return uid, gid, additionalGids, nil
}

// parseID parses a numeric id. ok is false when s is not a number at all
// (a name); a number out of range is an error.
func parseID(s string) (id uint32, ok bool, err error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, false, fmt.Errorf("id %q out of range: %w", s, errdefs.ErrInvalidArgument)
	}
	return uint32(n), true, nil
}

// readRootfsFile reads name (relative to rootfs) without following links out
// of rootfs. A missing rootfs or file reads as empty.
func readRootfsFile(rootfs, name string) ([]byte, error) {
	if rootfs == "" {
		return nil, nil
	}
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("open rootfs %s: %w", rootfs, errdefs.ErrInvalidArgument)
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("open /%s in the image: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	defer f.Close()
	// Bound the read: these files are small, an image could make them huge.
	b, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read /%s in the image: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	return b, nil
}

func readPasswd(rootfs string) ([]passwdEntry, error) {
	b, err := readRootfsFile(rootfs, "etc/passwd")
	if err != nil {
		return nil, err
	}
	var out []passwdEntry
	for _, f := range colonLines(b) {
		if len(f) < 4 {
			continue
		}
		uid, ok1, _ := parseID(f[2])
		gid, ok2, _ := parseID(f[3])
		if f[0] == "" || !ok1 || !ok2 {
			continue
		}
		out = append(out, passwdEntry{name: f[0], uid: uid, gid: gid})
	}
	return out, nil
}

func readGroup(rootfs string) ([]groupEntry, error) {
	b, err := readRootfsFile(rootfs, "etc/group")
	if err != nil {
		return nil, err
	}
	var out []groupEntry
	for _, f := range colonLines(b) {
		if len(f) < 3 {
			continue
		}
		gid, ok, _ := parseID(f[2])
		if f[0] == "" || !ok {
			continue
		}
		g := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					g.members = append(g.members, m)
				}
			}
		}
		out = append(out, g)
	}
	return out, nil
}

// colonLines splits a passwd/group style file into the fields of its
// non-empty, non-comment lines.
func colonLines(b []byte) [][]string {
	var out [][]string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}
