package client

import (
	"context"
	"net/url"
	"strings"
)

// Provider is the resource provider of container groups.
const Provider = "Microsoft.ContainerInstance"

// SubscriptionPath is /subscriptions/{s}.
func SubscriptionPath(sub string) string { return "/subscriptions/" + url.PathEscape(sub) }

// ResourceGroupPath is /subscriptions/{s}/resourcegroups/{rg}.
func ResourceGroupPath(sub, rg string) string {
	return SubscriptionPath(sub) + "/resourcegroups/" + url.PathEscape(rg)
}

// ContainerGroupsPath lists the container groups of rg, or of the whole
// subscription when rg is empty.
func ContainerGroupsPath(sub, rg string) string {
	if rg == "" {
		return SubscriptionPath(sub) + "/providers/" + Provider + "/containerGroups"
	}
	return ResourceGroupPath(sub, rg) + "/providers/" + Provider + "/containerGroups"
}

// ContainerGroupPath is the path of one container group.
func ContainerGroupPath(sub, rg, name string) string {
	return ContainerGroupsPath(sub, rg) + "/" + url.PathEscape(name)
}

// ContainerPath is the path of one container of a group (logs, exec, attach
// hang below it).
func ContainerPath(sub, rg, name, container string) string {
	return ContainerGroupPath(sub, rg, name) + "/containers/" + url.PathEscape(container)
}

// LocationPath is /subscriptions/{s}/providers/Microsoft.ContainerInstance/locations/{loc}.
func LocationPath(sub, loc string) string {
	return SubscriptionPath(sub) + "/providers/" + Provider + "/locations/" + url.PathEscape(loc)
}

// ResourceGroupOf returns the resource group named in an ARM resource id.
func ResourceGroupOf(id string) string {
	segs := strings.Split(id, "/")
	for i := 0; i+1 < len(segs); i++ {
		if strings.EqualFold(segs[i], "resourceGroups") {
			return segs[i+1]
		}
	}
	return ""
}

// In returns a path builder bound to the subscription in use.
func (c *Client) In(ctx context.Context) (Paths, error) {
	sub, err := c.Subscription(ctx)
	return Paths{Sub: sub}, err
}

// Paths builds the paths of one subscription.
type Paths struct{ Sub string }

// Subscription is /subscriptions/{s}.
func (p Paths) Subscription() string { return SubscriptionPath(p.Sub) }

// ResourceGroup is the path of rg.
func (p Paths) ResourceGroup(rg string) string { return ResourceGroupPath(p.Sub, rg) }

// ResourceGroups lists resource groups.
func (p Paths) ResourceGroups() string { return SubscriptionPath(p.Sub) + "/resourcegroups" }

// ContainerGroups lists container groups of rg ("" = all).
func (p Paths) ContainerGroups(rg string) string { return ContainerGroupsPath(p.Sub, rg) }

// ContainerGroup is the path of one group.
func (p Paths) ContainerGroup(rg, name string) string { return ContainerGroupPath(p.Sub, rg, name) }

// Container is the path of one container.
func (p Paths) Container(rg, name, c string) string { return ContainerPath(p.Sub, rg, name, c) }

// Location is the provider's path of a location.
func (p Paths) Location(loc string) string { return LocationPath(p.Sub, loc) }
