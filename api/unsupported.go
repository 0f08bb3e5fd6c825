package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Properties of the 2026-07-01 container group schema that Skiff does not
// honour. A body that sets one is refused (400, code <Field>NotSupported,
// the field's path and the reason in the message) instead of running
// without it: a group asking for a GPU must not run on a host without one.
// (docs/api.md lists them.)
type unhonoured struct {
	Identity *struct {
		Type string `json:"type"`
	} `json:"identity"`
	Properties struct {
		EncryptionProperties          json.RawMessage `json:"encryptionProperties"`
		Diagnostics                   json.RawMessage `json:"diagnostics"`
		Extensions                    json.RawMessage `json:"extensions"`
		SecretReferences              json.RawMessage `json:"secretReferences"`
		SubnetIDs                     json.RawMessage `json:"subnetIds"`
		ConfidentialComputeProperties json.RawMessage `json:"confidentialComputeProperties"`
		IdentityAcls                  json.RawMessage `json:"identityAcls"`
		Priority                      string          `json:"priority"`
		ImageRegistryCredentials      []struct {
			Identity          json.RawMessage `json:"identity"`
			IdentityURL       json.RawMessage `json:"identityUrl"`
			PasswordReference json.RawMessage `json:"passwordReference"`
		} `json:"imageRegistryCredentials"`
		Containers     []unhonouredContainer `json:"containers"`
		InitContainers []unhonouredContainer `json:"initContainers"`
	} `json:"properties"`
}

type unhonouredContainer struct {
	Properties struct {
		Resources struct {
			Requests struct {
				GPU json.RawMessage `json:"gpu"`
			} `json:"requests"`
			Limits struct {
				GPU json.RawMessage `json:"gpu"`
			} `json:"limits"`
		} `json:"resources"`
		ConfigMap json.RawMessage `json:"configMap"`
	} `json:"properties"`
}

// set reports whether a raw value says something: not absent, null, {} or [].
func set(raw json.RawMessage) bool {
	v := bytes.TrimSpace(raw)
	if len(v) == 0 || string(v) == "null" {
		return false
	}
	if v[0] == '{' || v[0] == '[' {
		inner := bytes.TrimSpace(v[1 : len(v)-1])
		return len(inner) > 0
	}
	return true
}

// refuseUnhonoured checks a container group body (already known to be a
// JSON object) for the properties Skiff does not honour.
func refuseUnhonoured(body []byte) error {
	var u unhonoured
	if json.Unmarshal(body, &u) != nil {
		return nil // the typed decode reports malformed shapes
	}
	refuse := func(field, path, why string) error {
		code := strings.ToUpper(field[:1]) + field[1:] + "NotSupported"
		return errdefs.WithCode(errdefs.ErrNotImplemented, code,
			"The property '%s' is not supported by Skiff: %s. Remove it to create the container group.", path, why)
	}
	if id := u.Identity; id != nil && id.Type != "" && !strings.EqualFold(id.Type, "None") {
		return refuse("identity", "identity", "managed identities are not issued to container groups")
	}
	p := &u.Properties
	for _, f := range []struct {
		field string
		raw   json.RawMessage
		why   string
	}{
		{"encryptionProperties", p.EncryptionProperties, "customer-managed keys in a key vault are not supported; data at rest is sealed with the host's key"},
		{"diagnostics", p.Diagnostics, "logs are not sent to Log Analytics; read them with the logs API"},
		{"extensions", p.Extensions, "container group extensions (kube-proxy, realtime) are not supported"},
		{"secretReferences", p.SecretReferences, "secrets are not read from a key vault; use secureValue or a secret volume"},
		{"subnetIds", p.SubnetIDs, "virtual network injection is not supported; groups get an address on the host's bridge"},
		{"confidentialComputeProperties", p.ConfidentialComputeProperties, "confidential containers are not supported"},
		{"identityAcls", p.IdentityAcls, "managed identities are not issued to container groups"},
	} {
		if set(f.raw) {
			return refuse(f.field, "properties."+f.field, f.why)
		}
	}
	if p.Priority != "" && !strings.EqualFold(p.Priority, "Regular") {
		return refuse("priority", "properties.priority", fmt.Sprintf("priority '%s' is not supported; the only priority is 'Regular'", p.Priority))
	}
	for i, c := range p.ImageRegistryCredentials {
		path := fmt.Sprintf("properties.imageRegistryCredentials[%d].", i)
		switch {
		case set(c.Identity):
			return refuse("identity", path+"identity", "registry logins with a managed identity are not supported; give a username and password")
		case set(c.IdentityURL):
			return refuse("identityUrl", path+"identityUrl", "registry logins with a managed identity are not supported; give a username and password")
		case set(c.PasswordReference):
			return refuse("passwordReference", path+"passwordReference", "passwords are not read from a key vault; give the password")
		}
	}
	for _, k := range []struct {
		kind string
		list []unhonouredContainer
	}{{"containers", p.Containers}, {"initContainers", p.InitContainers}} {
		kind := k.kind
		for i, c := range k.list {
			path := fmt.Sprintf("properties.%s[%d].properties.", kind, i)
			switch {
			case set(c.Properties.Resources.Requests.GPU):
				return refuse("gpu", path+"resources.requests.gpu", "this host has no GPUs to give")
			case set(c.Properties.Resources.Limits.GPU):
				return refuse("gpu", path+"resources.limits.gpu", "this host has no GPUs to give")
			case kind == "initContainers" && set(c.Properties.ConfigMap):
				return refuse("configMap", path+"configMap", "init containers have no config map; give it to a container, or mount a secret volume")
			}
		}
	}
	return nil
}
