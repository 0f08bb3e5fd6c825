package oci

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// capabilityNames lists the Linux capabilities by number (capabilities(7)).
var capabilityNames = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// DefaultCapabilities returns containerd's default capability set
// (oci.WithDefaultCapabilities, kept in api so the API checks the same
// set), which Spec grants to every unprivileged container in its bounding,
// permitted and effective sets. Adding any other capability needs
// api.SecurityPolicy.AllowPrivileged.
func DefaultCapabilities() []string { return api.DefaultCapabilities() }

// hostCapabilities returns the capabilities in the calling process's
// bounding set, which is everything a container started from here can get.
func hostCapabilities() []string {
	var caps []string
	for i, name := range capabilityNames {
		ok, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(i), 0, 0, 0)
		if err != nil {
			if errors.Is(err, unix.EINVAL) {
				break // beyond the kernel's last capability
			}
			continue
		}
		if ok == 1 {
			caps = append(caps, name)
		}
	}
	return caps
}

// normalizeCapability turns "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" into
// "CAP_NET_ADMIN"; "ALL" stays "ALL".
func normalizeCapability(name string) (string, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if n == "ALL" {
		return n, nil
	}
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	if !slices.Contains(capabilityNames[:], n) {
		return "", fmt.Errorf("unknown capability %q: %w", name, errdefs.ErrInvalidArgument)
	}
	return n, nil
}

// adjustCapabilities applies a securityContext's add and drop lists to base,
// the way Docker and containerd do: "ALL" in add starts from every host
// capability, "ALL" in drop starts from none, then the named ones are added
// and dropped (drop wins). A capability the host cannot grant is an error.
func adjustCapabilities(base, host, add, drop []string) ([]string, error) {
	var addN, dropN []string
	addAll, dropAll := false, false
	for _, c := range add {
		n, err := normalizeCapability(c)
		if err != nil {
			return nil, err
		}
		if n == "ALL" {
			addAll = true
			continue
		}
		addN = append(addN, n)
	}
	for _, c := range drop {
		n, err := normalizeCapability(c)
		if err != nil {
			return nil, err
		}
		if n == "ALL" {
			dropAll = true
			continue
		}
		dropN = append(dropN, n)
	}
	caps := slices.Clone(base)
	if addAll {
		caps = slices.Clone(host)
	}
	if dropAll {
		caps = nil
	}
	for _, c := range addN {
		if !slices.Contains(host, c) {
			return nil, fmt.Errorf("capability %s is not available on this host: %w", c, errdefs.ErrInvalidArgument)
		}
		if !slices.Contains(caps, c) {
			caps = append(caps, c)
		}
	}
	caps = slices.DeleteFunc(caps, func(c string) bool { return slices.Contains(dropN, c) })
	return caps, nil
}
