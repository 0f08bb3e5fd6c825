package runtime

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

var namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// validate checks what the runtime itself relies on. The API layer checks
// the ARM rules (ranges, counts) before a spec gets here.
func validate(spec GroupSpec) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf(format+": %w", append(a, errdefs.ErrInvalidArgument)...)
	}
	// A group's name folds case (the API takes upper case from the
	// api-versions that did, api.ValidateContainerGroupName); it is the
	// containers' hostname, which may have either.
	if !namePattern.MatchString(strings.ToLower(spec.Name)) {
		return bad("group name %q must be 1-63 letters, digits or '-'", spec.Name)
	}
	p := spec.Properties
	if p.OSType != "" && p.OSType != "Linux" {
		return fmt.Errorf("osType %q is not supported on this host: %w", p.OSType, errdefs.ErrNotImplemented)
	}
	switch p.RestartPolicy {
	case "", api.RestartAlways, api.RestartOnFailure, api.RestartNever:
	default:
		return bad("restartPolicy %q must be Always, OnFailure or Never", p.RestartPolicy)
	}
	if len(p.Containers) == 0 {
		return bad("a container group needs at least one container")
	}
	vols := map[string]bool{}
	for _, v := range p.Volumes {
		vols[v.Name] = true
	}
	names := map[string]bool{}
	check := func(name, image string, mounts []api.VolumeMount) error {
		if !namePattern.MatchString(name) {
			return bad("container name %q must be 1-63 lowercase letters, digits or '-'", name)
		}
		if names[name] {
			return bad("container name %q is used twice", name)
		}
		names[name] = true
		if image == "" {
			return bad("container %q has no image", name)
		}
		for _, m := range mounts {
			if !vols[m.Name] {
				return bad("container %q mounts volume %q, which the group does not define", name, m.Name)
			}
			if len(m.MountPath) == 0 || m.MountPath[0] != '/' {
				return bad("container %q: mountPath %q must be absolute", name, m.MountPath)
			}
		}
		return nil
	}
	for _, c := range p.InitContainers {
		if err := check(c.Name, c.Properties.Image, c.Properties.VolumeMounts); err != nil {
			return err
		}
	}
	for _, c := range p.Containers {
		if err := check(c.Name, c.Properties.Image, c.Properties.VolumeMounts); err != nil {
			return err
		}
	}
	return nil
}
