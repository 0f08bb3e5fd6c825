package api

import (
	"fmt"
	"strings"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// ProfileResourceType is the ARM type of container group profiles.
const ProfileResourceType = "Microsoft.ContainerInstance/containerGroupProfiles"

// ContainerGroupProfile is a named container group spec with immutable,
// numbered revisions: every PUT that changes the spec adds one (1 first),
// and a group created with properties.containerGroupProfile {id, revision}
// takes its spec from one.
type ContainerGroupProfile struct {
	ID         string            `json:"id,omitempty"`
	Name       string            `json:"name,omitempty"`
	Type       string            `json:"type,omitempty"`
	Location   string            `json:"location,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	Zones      []string          `json:"zones,omitempty"`
	Properties ProfileProperties `json:"properties"`
}

// ProfileProperties are a container group's properties (without state:
// no provisioningState or instanceView) and the revision they are.
type ProfileProperties struct {
	ContainerGroupProperties
	Revision int `json:"revision"`
}

// ProfileReference is a group's properties.containerGroupProfile: the
// profile's resource ID and its revision (the latest when absent; reads
// show the one taken).
type ProfileReference struct {
	ID       string `json:"id"`
	Revision *int   `json:"revision,omitempty"`
}

// ProfileID is the resource ID of a profile.
func ProfileID(sub, rg, name string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/" + ProfileResourceType + "/" + name
}

// ParseProfileID splits a profile's resource ID (case-insensitive, as ARM
// compares them) into its subscription, resource group and name.
func ParseProfileID(id string) (sub, rg, name string, err error) {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	if len(segs) != 8 || !strings.EqualFold(segs[0], "subscriptions") || !strings.EqualFold(segs[2], "resourceGroups") ||
		!strings.EqualFold(segs[4], "providers") || !strings.EqualFold(segs[5]+"/"+segs[6], ProfileResourceType) ||
		segs[1] == "" || segs[3] == "" || segs[7] == "" {
		return "", "", "", errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidContainerGroupProfileReference",
			"The containerGroupProfile id '%s' is not the resource ID of a container group profile (/subscriptions/{id}/resourceGroups/{name}/providers/%s/{name}).", id, ProfileResourceType)
	}
	return segs[1], segs[3], segs[7], nil
}

// DecodeContainerGroupProfile decodes the body of a profile's PUT: a
// container group's body, by DecodeContainerGroup's rules (the properties
// Skiff does not honour are refused alike), that names no profile itself.
// Defaults are set as for a group; validation is ValidateProfile's.
func DecodeContainerGroupProfile(body []byte) (*ContainerGroupProfile, error) {
	cg, err := DecodeContainerGroup(body)
	if err != nil {
		return nil, err
	}
	if cg.Properties.ContainerGroupProfile != nil {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidRequestContent",
			"The request content was invalid: a container group profile cannot name a containerGroupProfile.")
	}
	if cg.Properties.StandbyPoolProfile != nil {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidRequestContent",
			"The request content was invalid: a container group profile cannot name a standbyPoolProfile.")
	}
	SetDefaults(cg)
	return &ContainerGroupProfile{Location: cg.Location, Tags: cg.Tags, Zones: cg.Zones,
		Properties: ProfileProperties{ContainerGroupProperties: cg.Properties}}, nil
}

// Group is the container group of name that p describes.
func (p *ContainerGroupProfile) Group(name string) *ContainerGroup {
	cg := Clone(&ContainerGroup{Name: name, Location: p.Location, Tags: p.Tags, Zones: p.Zones, Properties: p.Properties.ContainerGroupProperties})
	cg.Type = ResourceType
	return cg
}

// ValidateProfile checks a profile's spec as a group's of the same name
// (ValidateContainerGroup), and its name.
func ValidateProfile(name, apiVersion string, p *ContainerGroupProfile) error {
	if err := ValidateContainerGroupName(name, apiVersion); err != nil {
		return err
	}
	return ValidateContainerGroup(p.Group(name))
}

// RedactProfile returns a copy of p fit to send to a client: its secrets
// gone, as Redact does for a group.
func RedactProfile(p *ContainerGroupProfile) *ContainerGroupProfile {
	out := *p
	out.Properties.ContainerGroupProperties = Redact(p.Group(p.Name)).Properties
	return &out
}

// ProfileNotFound is the error of a missing profile (or revision, when
// revision > 0).
func ProfileNotFound(rg, name string, revision int) error {
	if revision > 0 {
		return errdefs.WithCode(errdefs.ErrNotFound, "ResourceNotFound",
			"The revision '%d' of container group profile '%s' under resource group '%s' was not found.", revision, name, rg)
	}
	return errdefs.WithCode(errdefs.ErrNotFound, "ResourceNotFound",
		"The Resource '%s/%s' under resource group '%s' was not found.", ProfileResourceType, name, rg)
}

// String names a reference in messages.
func (r *ProfileReference) String() string {
	if r.Revision != nil {
		return fmt.Sprintf("%s (revision %d)", r.ID, *r.Revision)
	}
	return r.ID
}
