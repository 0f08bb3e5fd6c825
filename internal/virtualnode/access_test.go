package virtualnode

import "testing"

func TestAllowsAsARMEvaluates(t *testing.T) {
	contributor := []permission{{Actions: []string{"*"}, NotActions: []string{"Microsoft.Authorization/*/Write"}}}
	reader := []permission{{Actions: []string{"*/read"}}}
	aci := []permission{{Actions: []string{"Microsoft.ContainerInstance/containerGroups/*"}, NotActions: []string{"*/delete"}}}
	for _, c := range []struct {
		perms  []permission
		action string
		want   bool
	}{
		{contributor, NeededActions[1], true},
		{contributor, "microsoft.authorization/roleAssignments/write", false},
		{reader, NeededActions[0], true},
		{reader, NeededActions[1], false},
		{aci, NeededActions[1], true},
		{aci, NeededActions[2], false},
		{append(aci, reader...), NeededActions[2], false},
		{nil, NeededActions[0], false},
		{[]permission{{Actions: []string{"Microsoft.ContainerInstance/containerGroups.write"}}}, NeededActions[1], false},
	} {
		if got := allows(c.perms, c.action); got != c.want {
			t.Errorf("allows(%+v, %s) = %v, want %v", c.perms, c.action, got, c.want)
		}
	}
}
