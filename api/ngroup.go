package api

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// NGroupResourceType is the ARM type of NGroups.
const NGroupResourceType = "Microsoft.ContainerInstance/ngroups"

// NGroupTag is the tag every member of an NGroup carries: the NGroup's
// name. Groups are members by it (a group whose tag is removed leaves).
const NGroupTag = "skiff.ngroup"

// NGroup is a desired count of container groups made from one container
// group profile revision, kept at that count and updated to a new revision
// Manually or Rolling (internal/ngroup).
type NGroup struct {
	ID         string            `json:"id,omitempty"`
	Name       string            `json:"name,omitempty"`
	Type       string            `json:"type,omitempty"`
	Location   string            `json:"location,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	Zones      []string          `json:"zones,omitempty"`
	Properties NGroupProperties  `json:"properties"`
}

// NGroupProperties is an NGroup's spec and state.
type NGroupProperties struct {
	ElasticProfile         *ElasticProfile     `json:"elasticProfile,omitempty"`
	UpdateProfile          *UpdateProfile      `json:"updateProfile,omitempty"`
	ContainerGroupProfiles []NGroupProfileStub `json:"containerGroupProfiles"`
	ProvisioningState      string              `json:"provisioningState,omitempty"`
}

// ElasticProfile is the count of an NGroup and how its members are named.
type ElasticProfile struct {
	DesiredCount         *int               `json:"desiredCount,omitempty"`
	MaintainDesiredCount *bool              `json:"maintainDesiredCount,omitempty"`
	NamingPolicy         *GroupNamingPolicy `json:"containerGroupNamingPolicy,omitempty"`
}

// GroupNamingPolicy names members <prefix><guid>.
type GroupNamingPolicy struct {
	GUIDNamingPolicy *struct {
		Prefix string `json:"prefix,omitempty"`
	} `json:"guidNamingPolicy,omitempty"`
}

// UpdateProfile says how members move to a new profile revision.
type UpdateProfile struct {
	UpdateMode           string                `json:"updateMode,omitempty"`
	RollingUpdateProfile *RollingUpdateProfile `json:"rollingUpdateProfile,omitempty"`
}

// RollingUpdateProfile bounds a rolling update.
type RollingUpdateProfile struct {
	MaxBatchPercent         *int   `json:"maxBatchPercent,omitempty"`
	MaxUnhealthyPercent     *int   `json:"maxUnhealthyPercent,omitempty"`
	PauseTimeBetweenBatches string `json:"pauseTimeBetweenBatches,omitempty"`
	InPlaceUpdate           *bool  `json:"inPlaceUpdate,omitempty"`
}

// NGroupProfileStub is one entry of containerGroupProfiles: the profile
// (resource.id) and its revision.
type NGroupProfileStub struct {
	Resource struct {
		ID string `json:"id"`
	} `json:"resource"`
	Revision *int `json:"revision,omitempty"`
}

// Update modes.
const (
	UpdateManual  = "Manual"
	UpdateRolling = "Rolling"
)

// MaxNGroupCount bounds desiredCount.
const MaxNGroupCount = 100

// ngroupPrefixRE: a member's name is <prefix><uuid> (36 characters), at
// most 63 in all.
var ngroupPrefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,26}$`)

// unhonouredNGroup are the NGroup properties Skiff does not honour.
type unhonouredNGroup struct {
	Identity *struct {
		Type string `json:"type"`
	} `json:"identity"`
	Properties struct {
		PlacementProfile       json.RawMessage `json:"placementProfile"`
		ContainerGroupProfiles []struct {
			NetworkProfile           json.RawMessage `json:"networkProfile"`
			StorageProfile           json.RawMessage `json:"storageProfile"`
			ContainerGroupProperties json.RawMessage `json:"containerGroupProperties"`
		} `json:"containerGroupProfiles"`
	} `json:"properties"`
}

// DecodeNGroup decodes and checks the body of an NGroup's PUT, setting the
// defaults (updateMode Manual; Rolling: maxBatchPercent 20,
// maxUnhealthyPercent 20, no pause, not in place). Properties Skiff does
// not honour are refused with <Property>NotSupported.
func DecodeNGroup(body []byte) (*NGroup, error) {
	body, err := objectBody(body)
	if err != nil {
		return nil, err
	}
	var ng NGroup
	if err := unmarshal(body, &ng); err != nil {
		return nil, err
	}
	var u unhonouredNGroup
	if json.Unmarshal(body, &u) == nil {
		refuse := func(field, path, why string) error {
			return errdefs.WithCode(errdefs.ErrNotImplemented, strings.ToUpper(field[:1])+field[1:]+"NotSupported",
				"The property '%s' is not supported by Skiff: %s. Remove it to create the NGroup.", path, why)
		}
		if id := u.Identity; id != nil && id.Type != "" && !strings.EqualFold(id.Type, "None") {
			return nil, refuse("identity", "identity", "managed identities are not issued")
		}
		if set(u.Properties.PlacementProfile) {
			return nil, refuse("placementProfile", "properties.placementProfile", "fault domains are not spread; a Skiff cluster places each group on its own")
		}
		for i, p := range u.Properties.ContainerGroupProfiles {
			at := fmt.Sprintf("properties.containerGroupProfiles[%d].", i)
			switch {
			case set(p.NetworkProfile):
				return nil, refuse("networkProfile", at+"networkProfile", "load balancers and application gateways are not available")
			case set(p.StorageProfile):
				return nil, refuse("storageProfile", at+"storageProfile", "give the file shares in the profile's volumes")
			case set(p.ContainerGroupProperties):
				return nil, refuse("containerGroupProperties", at+"containerGroupProperties", "members take the profile's properties as they are")
			}
		}
	}
	ng.ID, ng.Properties.ProvisioningState = "", ""
	if err := ng.validate(); err != nil {
		return nil, err
	}
	return &ng, nil
}

func (ng *NGroup) validate() error {
	p := &ng.Properties
	if len(p.ContainerGroupProfiles) != 1 {
		return invalid("InvalidContainerGroupProfiles",
			"An NGroup takes exactly one entry in 'containerGroupProfiles' (it has %d): the profile its members are made from.", len(p.ContainerGroupProfiles))
	}
	ref := &p.ContainerGroupProfiles[0]
	if _, _, _, err := ParseProfileID(ref.Resource.ID); err != nil {
		return err
	}
	if ref.Revision != nil && *ref.Revision < 1 {
		return invalid("InvalidRevision", "The revision '%d' is not a revision number (1, 2, ...).", *ref.Revision)
	}
	if p.ElasticProfile == nil {
		p.ElasticProfile = &ElasticProfile{}
	}
	e := p.ElasticProfile
	if e.DesiredCount == nil {
		zero := 0
		e.DesiredCount = &zero
	}
	if n := *e.DesiredCount; n < 0 || n > MaxNGroupCount {
		return invalid("InvalidDesiredCount", "The desiredCount '%d' must be between 0 and %d.", n, MaxNGroupCount)
	}
	if e.MaintainDesiredCount == nil {
		f := false
		e.MaintainDesiredCount = &f
	}
	if np := e.NamingPolicy; np != nil && np.GUIDNamingPolicy != nil && np.GUIDNamingPolicy.Prefix != "" && !ngroupPrefixRE.MatchString(np.GUIDNamingPolicy.Prefix) {
		return invalid("InvalidNamingPolicy",
			"The prefix '%s' must be 1 to 27 lowercase letters, digits or '-', starting with a letter or digit: members are named <prefix><guid>.", np.GUIDNamingPolicy.Prefix)
	}
	if p.UpdateProfile == nil {
		p.UpdateProfile = &UpdateProfile{}
	}
	up := p.UpdateProfile
	up.UpdateMode = canonOr(up.UpdateMode, UpdateManual, UpdateManual, UpdateRolling)
	if up.UpdateMode != UpdateManual && up.UpdateMode != UpdateRolling {
		return invalid("InvalidUpdateMode", "The updateMode '%s' must be Manual or Rolling.", up.UpdateMode)
	}
	if up.UpdateMode == UpdateRolling {
		if up.RollingUpdateProfile == nil {
			up.RollingUpdateProfile = &RollingUpdateProfile{}
		}
		r := up.RollingUpdateProfile
		for _, f := range []struct {
			name string
			v    **int
			def  int
		}{{"maxBatchPercent", &r.MaxBatchPercent, 20}, {"maxUnhealthyPercent", &r.MaxUnhealthyPercent, 20}} {
			if *f.v == nil {
				d := f.def
				*f.v = &d
			}
			if n := **f.v; n < 1 || n > 100 {
				return invalid("InvalidRollingUpdateProfile", "The %s '%d' must be between 1 and 100.", f.name, n)
			}
		}
		if _, err := ParseISODuration(r.PauseTimeBetweenBatches); err != nil {
			return invalid("InvalidRollingUpdateProfile", "The pauseTimeBetweenBatches '%s' is not a duration (ISO 8601, e.g. PT30S).", r.PauseTimeBetweenBatches)
		}
		if r.InPlaceUpdate == nil {
			f := false
			r.InPlaceUpdate = &f
		}
	}
	return ValidateTags(ng.Tags)
}

// isoDurationRE: the time part of ISO 8601 durations (PnDTnHnMnS).
var isoDurationRE = regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

// ParseISODuration parses an ISO 8601 duration of days, hours, minutes
// and seconds ("PT30S", "PT1M", "P1DT2H"); "" is 0.
func ParseISODuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	m := isoDurationRE.FindStringSubmatch(strings.ToUpper(s))
	if m == nil || s == "P" || strings.HasSuffix(strings.ToUpper(s), "T") {
		return 0, fmt.Errorf("duration %q: %w", s, errdefs.ErrInvalidArgument)
	}
	var d time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute} {
		if m[i+1] != "" {
			n, _ := strconv.Atoi(m[i+1])
			d += time.Duration(n) * unit
		}
	}
	if m[4] != "" {
		f, _ := strconv.ParseFloat(m[4], 64)
		d += time.Duration(f * float64(time.Second))
	}
	return d, nil
}

// NGroupID is the resource ID of an NGroup.
func NGroupID(sub, rg, name string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/" + NGroupResourceType + "/" + name
}

// NGroup provisioning states.
const (
	NGroupCreating  = "Creating"
	NGroupUpdating  = "Updating"
	NGroupSucceeded = "Succeeded"
	NGroupFailed    = "Failed"
	NGroupDeleting  = "Deleting"
)
