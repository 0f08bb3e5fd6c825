package api

import (
	"encoding/json"
	"strings"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// StandbyPoolResourceType is the ARM type of standby container group pools.
const StandbyPoolResourceType = "Microsoft.StandbyPool/standbyContainerGroupPools"

// StandbyPoolTag is the tag every member of a standby pool carries: the
// pool's name. Groups are members by it, as NGroups' are by NGroupTag.
const StandbyPoolTag = "skiff.standbyPool"

// The api-versions of Microsoft.StandbyPool (its own range: the provider
// began in 2023).
const (
	MinStandbyPoolAPIVersion = "2023-12-01"
	MaxStandbyPoolAPIVersion = "2025-10-01"
)

// CheckStandbyPoolAPIVersion checks the api-version of a standby pool
// route, as CheckAPIVersion does the container groups'.
func CheckStandbyPoolAPIVersion(v string) error {
	return checkAPIVersionRange(v, MinStandbyPoolAPIVersion, MaxStandbyPoolAPIVersion)
}

// MaxStandbyPoolCapacity bounds maxReadyCapacity (ARM's own bound).
const MaxStandbyPoolCapacity = 2000

// StandbyPool is a pool of ready container groups made from one container
// group profile revision (internal/standbypool): a create that names it in
// properties.standbyPoolProfile is handed one, and the pool refills.
type StandbyPool struct {
	ID         string                `json:"id,omitempty"`
	Name       string                `json:"name,omitempty"`
	Type       string                `json:"type,omitempty"`
	Location   string                `json:"location,omitempty"`
	Tags       map[string]string     `json:"tags,omitempty"`
	Properties StandbyPoolProperties `json:"properties"`
}

// StandbyPoolProperties is a pool's spec and state.
type StandbyPoolProperties struct {
	ElasticityProfile        *StandbyPoolElasticity `json:"elasticityProfile,omitempty"`
	ContainerGroupProperties *StandbyPoolGroups     `json:"containerGroupProperties,omitempty"`
	Zones                    []string               `json:"zones,omitempty"`
	ProvisioningState        string                 `json:"provisioningState,omitempty"`
}

// StandbyPoolElasticity is how many ready groups the pool holds.
type StandbyPoolElasticity struct {
	MaxReadyCapacity *int   `json:"maxReadyCapacity,omitempty"`
	RefillPolicy     string `json:"refillPolicy,omitempty"`
}

// StandbyPoolGroups says what the pool's groups are made from.
type StandbyPoolGroups struct {
	ContainerGroupProfile *ProfileReference `json:"containerGroupProfile,omitempty"`
	SubnetIDs             json.RawMessage   `json:"subnetIds,omitempty"`
}

// StandbyPoolReference is a group's properties.standbyPoolProfile.
type StandbyPoolReference struct {
	ID string `json:"id"`
	// FailContainerGroupCreateOnReuseFailure fails the create when the
	// pool has no ready group, instead of creating one afresh.
	FailContainerGroupCreateOnReuseFailure bool `json:"failContainerGroupCreateOnReuseFailure,omitempty"`
}

// StandbyPoolRuntimeView is a pool's runtimeViews/latest: how many of its
// groups are in each state.
type StandbyPoolRuntimeView struct {
	ID         string                           `json:"id"`
	Name       string                           `json:"name"`
	Type       string                           `json:"type"`
	Properties StandbyPoolRuntimeViewProperties `json:"properties"`
}

// StandbyPoolRuntimeViewProperties are the counts and the pool's health.
type StandbyPoolRuntimeViewProperties struct {
	InstanceCountSummary []StandbyPoolCountSummary `json:"instanceCountSummary"`
	Status               *StandbyPoolStatus        `json:"status,omitempty"`
	ProvisioningState    string                    `json:"provisioningState,omitempty"`
}

// StandbyPoolCountSummary counts a zone's groups by state (Skiff has no
// zones: one summary, without a zone).
type StandbyPoolCountSummary struct {
	InstanceCountsByState []StandbyPoolStateCount `json:"instanceCountsByState"`
}

// StandbyPoolStateCount is the count of the pool's groups in one state.
type StandbyPoolStateCount struct {
	State string `json:"state"`
	Count int    `json:"count"`
}

// StandbyPoolStatus is the pool's health: HealthState/healthy when it
// holds maxReadyCapacity ready groups, HealthState/degraded otherwise.
type StandbyPoolStatus struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

// Standby pool provisioning states.
const (
	StandbyPoolSucceeded = "Succeeded"
	StandbyPoolDeleting  = "Deleting"
)

// RefillAlways is the one refill policy: a group taken is replaced.
const RefillAlways = "always"

// StandbyPoolID is the resource ID of a standby pool.
func StandbyPoolID(sub, rg, name string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/" + StandbyPoolResourceType + "/" + name
}

// ParseStandbyPoolID splits a pool's resource ID (case-insensitive).
func ParseStandbyPoolID(id string) (sub, rg, name string, err error) {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	if len(segs) != 8 || !strings.EqualFold(segs[0], "subscriptions") || !strings.EqualFold(segs[2], "resourceGroups") ||
		!strings.EqualFold(segs[4], "providers") || !strings.EqualFold(segs[5]+"/"+segs[6], StandbyPoolResourceType) ||
		segs[1] == "" || segs[3] == "" || segs[7] == "" {
		return "", "", "", errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidStandbyPoolReference",
			"The standbyPoolProfile id '%s' is not the resource ID of a standby container group pool (/subscriptions/{id}/resourceGroups/{name}/providers/%s/{name}).", id, StandbyPoolResourceType)
	}
	return segs[1], segs[3], segs[7], nil
}

// ValidateStandbyPoolName checks a pool's name as ARM does: 3 to 24
// letters, digits or '-'.
func ValidateStandbyPoolName(name string) error {
	ok := len(name) >= 3 && len(name) <= 24
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			ok = false
		}
	}
	if !ok {
		return invalid("InvalidResourceName",
			"The standby pool name '%s' is invalid: it must be 3 to 24 letters, digits or '-'.", name)
	}
	return nil
}

// DecodeStandbyPool decodes and checks the body of a pool's PUT, setting
// the default refill policy (always). subnetIds are refused, as for a
// group.
func DecodeStandbyPool(body []byte) (*StandbyPool, error) {
	body, err := objectBody(body)
	if err != nil {
		return nil, err
	}
	var sp StandbyPool
	if err := unmarshal(body, &sp); err != nil {
		return nil, err
	}
	p := &sp.Properties
	sp.ID, p.ProvisioningState = "", ""
	if p.ContainerGroupProperties == nil || p.ContainerGroupProperties.ContainerGroupProfile == nil {
		return nil, invalid("InvalidContainerGroupProperties",
			"The standby pool needs 'properties.containerGroupProperties.containerGroupProfile': the profile its groups are made from.")
	}
	if set(p.ContainerGroupProperties.SubnetIDs) {
		return nil, errdefs.WithCode(errdefs.ErrNotImplemented, "SubnetIdsNotSupported",
			"The property 'properties.containerGroupProperties.subnetIds' is not supported by Skiff: virtual network injection is not supported; groups get an address on the host's bridge. Remove it to create the standby pool.")
	}
	p.ContainerGroupProperties.SubnetIDs = nil
	ref := p.ContainerGroupProperties.ContainerGroupProfile
	if _, _, _, err := ParseProfileID(ref.ID); err != nil {
		return nil, err
	}
	if ref.Revision != nil && *ref.Revision < 1 {
		return nil, invalid("InvalidRevision", "The revision '%d' is not a revision number (1, 2, ...).", *ref.Revision)
	}
	e := p.ElasticityProfile
	if e == nil || e.MaxReadyCapacity == nil {
		return nil, invalid("InvalidElasticityProfile", "The standby pool needs 'properties.elasticityProfile.maxReadyCapacity'.")
	}
	if n := *e.MaxReadyCapacity; n < 0 || n > MaxStandbyPoolCapacity {
		return nil, invalid("InvalidElasticityProfile", "The maxReadyCapacity '%d' must be between 0 and %d.", n, MaxStandbyPoolCapacity)
	}
	if e.RefillPolicy == "" || strings.EqualFold(e.RefillPolicy, RefillAlways) {
		e.RefillPolicy = RefillAlways
	} else {
		return nil, invalid("InvalidRefillPolicy", "The refillPolicy '%s' is not supported: the one policy is 'always'.", e.RefillPolicy)
	}
	return &sp, ValidateTags(sp.Tags)
}
