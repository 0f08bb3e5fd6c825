package api

import (
	"fmt"
	"slices"
	"strings"
)

// ARM error codes of a securityContext the operator's policy refuses.
const (
	CodePrivilegedNotAllowed     = "PrivilegedContainerNotAllowed"
	CodeCapabilityNotAllowed     = "CapabilityNotAllowed"
	CodeSeccompProfileNotAllowed = "CustomSeccompProfileNotAllowed"
)

// SecurityPolicy is what the operator allows a container beyond the
// defaults. The zero value allows nothing more: no privileged containers,
// no capability outside DefaultCapabilities, no custom seccomp profile.
// Dropping capabilities and the other securityContext fields (runAsUser,
// runAsGroup, allowPrivilegeEscalation) are always allowed.
type SecurityPolicy struct {
	// AllowPrivileged allows securityContext.privileged and capabilities.add
	// beyond the default set (skiff server --allow-privileged).
	AllowPrivileged bool
	// AllowCustomSeccomp allows securityContext.seccompProfile
	// (skiff server --allow-custom-seccomp).
	AllowCustomSeccomp bool
}

// DefaultCapabilities returns containerd's default capability set
// (oci.WithDefaultCapabilities), which every unprivileged container gets in
// its bounding, permitted and effective sets.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
		"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
}

// CheckSecurityPolicy checks every app and init container of a group's
// properties against pol. g is the group's name for messages. The error is
// of class errdefs.ErrInvalidArgument (HTTP 400) with one of the codes
// CodePrivilegedNotAllowed, CodeCapabilityNotAllowed or
// CodeSeccompProfileNotAllowed, and names the container and the field.
func CheckSecurityPolicy(g string, p *ContainerGroupProperties, pol SecurityPolicy) error {
	if p == nil {
		return nil
	}
	for _, c := range p.InitContainers {
		if err := CheckSecurityContext(fmt.Sprintf("init container '%s'%s", c.Name, inGroup(g)), c.Properties.SecurityContext, pol); err != nil {
			return err
		}
	}
	for _, c := range p.Containers {
		if err := CheckSecurityContext(fmt.Sprintf("container '%s'%s", c.Name, inGroup(g)), c.Properties.SecurityContext, pol); err != nil {
			return err
		}
	}
	return nil
}

// CheckSecurityContext checks one container's securityContext against pol;
// where names the container in the message ("container 'web' in container
// group 'g'").
func CheckSecurityContext(where string, sc *SecurityContext, pol SecurityPolicy) error {
	if sc == nil {
		return nil
	}
	if sc.Privileged != nil && *sc.Privileged && !pol.AllowPrivileged {
		return invalid(CodePrivilegedNotAllowed,
			"The 'securityContext.privileged' of %s is not allowed on this host. Privileged containers need the operator's 'skiff server --allow-privileged'.",
			where)
	}
	if sc.Capabilities != nil && !pol.AllowPrivileged {
		def := DefaultCapabilities()
		for _, c := range sc.Capabilities.Add {
			n := strings.ToUpper(strings.TrimSpace(c))
			if n != "ALL" && !strings.HasPrefix(n, "CAP_") {
				n = "CAP_" + n
			}
			if !slices.Contains(def, n) {
				return invalid(CodeCapabilityNotAllowed,
					"The capability '%s' in 'securityContext.capabilities.add' of %s is not allowed on this host: only the default capabilities (%s) may be added. More need the operator's 'skiff server --allow-privileged'.",
					c, where, strings.Join(def, ", "))
			}
		}
	}
	if sc.SeccompProfile != "" && !pol.AllowCustomSeccomp {
		return invalid(CodeSeccompProfileNotAllowed,
			"The 'securityContext.seccompProfile' of %s is not allowed on this host: containers run with the default seccomp profile unless the operator starts 'skiff server --allow-custom-seccomp'.",
			where)
	}
	return nil
}
