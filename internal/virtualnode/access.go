package virtualnode

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// NeededActions are what the node's principal must be allowed in its
// resource group: run, read and remove the pods' container groups (what
// the seeds' `az ad sp create-for-rbac --role contributor --scopes RG`
// grants).
var NeededActions = []string{
	"Microsoft.ContainerInstance/containerGroups/read",
	"Microsoft.ContainerInstance/containerGroups/write",
	"Microsoft.ContainerInstance/containerGroups/delete",
}

// permission is one entry of ARM's permissions list.
type permission struct {
	Actions    []string `json:"actions"`
	NotActions []string `json:"notActions"`
}

// allows reports whether perms allow action as ARM evaluates them: one
// permission with an action that matches it and no notAction that does
// ("*" stands for any run of characters; case does not count).
func allows(perms []permission, action string) bool {
	match := func(patterns []string) bool {
		for _, p := range patterns {
			re := "(?i)^" + strings.ReplaceAll(regexp.QuoteMeta(p), `\*`, ".*") + "$"
			if ok, _ := regexp.MatchString(re, action); ok {
				return true
			}
		}
		return false
	}
	for _, p := range perms {
		if match(p.Actions) && !match(p.NotActions) {
			return true
		}
	}
	return false
}

// permissionsAPIVersion is Microsoft.Authorization's for permissions.
const permissionsAPIVersion = "2022-04-01"

// CheckAccess asks the server what the node's principal may do in its
// resource group (ARM's GET {rg}/providers/Microsoft.Authorization/
// permissions) and returns an AuthorizationFailed error (ErrForbidden)
// naming the NeededActions it lacks. A server without that route (404)
// is not asked: the node then learns of a refusal from the writes
// themselves.
func (p *Provider) CheckAccess(ctx context.Context) error {
	paths, err := p.cfg.Client.In(ctx)
	if err != nil {
		return err
	}
	scope := paths.ResourceGroup(p.cfg.ResourceGroup)
	raw, err := p.cfg.Client.List(ctx, scope+"/providers/Microsoft.Authorization/permissions",
		url.Values{"api-version": {permissionsAPIVersion}})
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("permissions in resource group %s: %w", p.cfg.ResourceGroup, err)
	}
	perms := make([]permission, 0, len(raw))
	for _, r := range raw {
		var pm permission
		if err := (&client.Response{Body: r}).Decode(&pm); err != nil {
			return err
		}
		perms = append(perms, pm)
	}
	var missing []string
	for _, a := range NeededActions {
		if !allows(perms, a) {
			missing = append(missing, a)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	who := cmp.Or(p.cfg.Principal, "the node's credentials")
	return errdefs.WithCode(errdefs.ErrForbidden, "AuthorizationFailed",
		"%s may not perform %s in resource group %s (scope %s): assign it a role that allows them there, "+
			"e.g. `skiff role assignment create --assignee APP-ID --role Contributor --scope %s`",
		who, strings.Join(missing, ", "), p.cfg.ResourceGroup, scope, scope)
}

// event records an event on ref when the provider has a recorder.
func (p *Provider) event(ref *corev1.ObjectReference, typ, reason, format string, a ...any) {
	if p.cfg.Events != nil {
		p.cfg.Events.Eventf(ref, typ, reason, format, a...)
	}
}
