package api

import (
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

func TestDecodeNGroup(t *testing.T) {
	const prof = `"containerGroupProfiles":[{"resource":{"id":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroupProfiles/p"}}]`
	ng, err := DecodeNGroup([]byte(`{"location":"local","properties":{` + prof + `,"updateProfile":{"updateMode":"rolling"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	p := ng.Properties
	if *p.ElasticProfile.DesiredCount != 0 || *p.ElasticProfile.MaintainDesiredCount || p.UpdateProfile.UpdateMode != UpdateRolling {
		t.Errorf("defaults: %+v %+v", *p.ElasticProfile, *p.UpdateProfile)
	}
	if r := p.UpdateProfile.RollingUpdateProfile; *r.MaxBatchPercent != 20 || *r.MaxUnhealthyPercent != 20 || *r.InPlaceUpdate {
		t.Errorf("rolling defaults: %+v", *r)
	}
	for _, tc := range []struct{ name, props, code string }{
		{"no profile", `"containerGroupProfiles":[]`, "InvalidContainerGroupProfiles"},
		{"two profiles", `"containerGroupProfiles":[{"resource":{"id":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroupProfiles/p"}},{"resource":{"id":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroupProfiles/q"}}]`, "InvalidContainerGroupProfiles"},
		{"not a profile id", `"containerGroupProfiles":[{"resource":{"id":"/subscriptions/s/resourceGroups/rg"}}]`, "InvalidContainerGroupProfileReference"},
		{"count", prof + `,"elasticProfile":{"desiredCount":101}`, "InvalidDesiredCount"},
		{"negative count", prof + `,"elasticProfile":{"desiredCount":-1}`, "InvalidDesiredCount"},
		{"prefix", prof + `,"elasticProfile":{"containerGroupNamingPolicy":{"guidNamingPolicy":{"prefix":"Web_"}}}`, "InvalidNamingPolicy"},
		{"mode", prof + `,"updateProfile":{"updateMode":"Blue"}`, "InvalidUpdateMode"},
		{"batch", prof + `,"updateProfile":{"updateMode":"Rolling","rollingUpdateProfile":{"maxBatchPercent":0}}`, "InvalidRollingUpdateProfile"},
		{"pause", prof + `,"updateProfile":{"updateMode":"Rolling","rollingUpdateProfile":{"pauseTimeBetweenBatches":"ten seconds"}}`, "InvalidRollingUpdateProfile"},
		{"placement", prof + `,"placementProfile":{"faultDomainCount":2}`, "PlacementProfileNotSupported"},
		{"network", `"containerGroupProfiles":[{"resource":{"id":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroupProfiles/p"},"networkProfile":{"loadBalancer":{"backendAddressPools":[{"resource":{"id":"x"}}]}}}]`, "NetworkProfileNotSupported"},
	} {
		_, err := DecodeNGroup([]byte(`{"properties":{` + tc.props + `}}`))
		if err == nil || errdefs.CodeOf(err) != tc.code {
			t.Errorf("%s: %v (code %s), want %s", tc.name, err, errdefs.CodeOf(err), tc.code)
		}
	}
}

func TestParseISODuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "PT30S": 30 * time.Second, "PT1M": time.Minute, "P1DT2H": 26 * time.Hour, "pt1.5s": 1500 * time.Millisecond} {
		if got, err := ParseISODuration(in); err != nil || got != want {
			t.Errorf("%q: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"P", "PT", "30s", "PT-1S", "1 minute"} {
		if _, err := ParseISODuration(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}
