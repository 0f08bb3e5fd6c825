// Package container is `skiff container`: container groups, with the
// grammar of `az container`.
package container

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	"github.com/skiff-sh/skiff/internal/cli/output"
)

// NewCmd returns `skiff container`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "container",
		Short: "Manage container groups",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	f.AddGlobalFlags(cmd)
	cmd.AddCommand(
		newCreateCmd(f), newShowCmd(f), newListCmd(f), newDeleteCmd(f),
		newRestartCmd(f), newStartCmd(f), newStopCmd(f),
		newLogsCmd(f), newExecCmd(f), newAttachCmd(f), newExportCmd(f),
		newProfileCmd(f), newNGroupCmd(f),
	)
	return cmd
}

// target is the -g/-n pair most commands take.
type target struct{ rg, name string }

func (t *target) flags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&t.rg, "resource-group", "g", "", "name of the resource group")
	cmd.Flags().StringVarP(&t.name, "name", "n", "", "name of the container group")
}

func (t *target) check() error {
	var missing []string
	if t.rg == "" {
		missing = append(missing, "--resource-group/-g")
	}
	if t.name == "" {
		missing = append(missing, "--name/-n")
	}
	if len(missing) > 0 {
		return cmdutil.FlagErrorf("the following arguments are required: %s", strings.Join(missing, ", "))
	}
	return nil
}

// get reads a container group as the server sends it.
func get(ctx context.Context, c *client.Client, t target) (map[string]any, error) {
	var raw json.RawMessage
	if _, err := c.GetContainerGroup(client.WithRawJSON(ctx, &raw), t.rg, t.name); err != nil {
		return nil, err
	}
	var v map[string]any
	if err := (&client.Response{Body: raw}).Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// firstContainer returns the name of the group's first container, the
// default of --container-name.
func firstContainer(ctx context.Context, c *client.Client, t target) (string, error) {
	cg, err := c.GetContainerGroup(ctx, t.rg, t.name)
	if err != nil {
		return "", err
	}
	if len(cg.Properties.Containers) == 0 {
		return "", fmt.Errorf("container group %q has no containers", t.name)
	}
	return cg.Properties.Containers[0].Name, nil
}

// Flatten returns a container group the way az shows it: the keys of
// `properties` (and of each container's and init container's `properties`)
// moved up one level, and `resourceGroup` added from the id.
func Flatten(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := hoist(m)
	for _, k := range []string{"containers", "initContainers"} {
		if list, ok := out[k].([]any); ok {
			flat := make([]any, len(list))
			for i, c := range list {
				if cm, ok := c.(map[string]any); ok {
					flat[i] = hoist(cm)
				} else {
					flat[i] = c
				}
			}
			out[k] = flat
		}
	}
	if id, ok := out["id"].(string); ok {
		if rg := client.ResourceGroupOf(id); rg != "" {
			out["resourceGroup"] = rg
		}
	}
	return out
}

func hoist(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != "properties" {
			out[k] = v
		}
	}
	if props, ok := m["properties"].(map[string]any); ok {
		for k, v := range props {
			if _, taken := out[k]; !taken {
				out[k] = v
			}
		}
	}
	return out
}

// flattenRaw decodes and flattens a JSON array of container groups.
func flattenRaw(raw json.RawMessage) ([]any, error) {
	var items []any
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, err
	}
	out := make([]any, 0, len(items))
	for _, it := range items {
		out = append(out, Flatten(it))
	}
	return out, nil
}

// Columns is the table of `container list/show -o table`, as az prints it
// (_format.py), on a flattened group.
func Columns() *output.Columns {
	return &output.Columns{
		Headers: []string{"Name", "ResourceGroup", "Status", "Image", "IP:ports", "Network", "CPU/Memory", "OsType", "Location"},
		Row: func(it any) []string {
			status := output.Field(it, "instanceView", "state")
			if status == nil || status == "" {
				status = output.Field(it, "provisioningState")
			}
			return []string{
				output.Scalar(output.Field(it, "name")),
				output.Scalar(output.Field(it, "resourceGroup")),
				output.Scalar(status),
				images(it),
				ipPorts(it),
				output.Scalar(output.Field(it, "ipAddress", "type")),
				cpuMemory(it),
				output.Scalar(output.Field(it, "osType")),
				output.Scalar(output.Field(it, "location")),
			}
		},
	}
}

func containers(it any) []any {
	list, _ := output.Field(it, "containers").([]any)
	return list
}

func images(it any) string {
	var out []string
	seen := map[string]bool{}
	for _, c := range containers(it) {
		img := output.Scalar(output.Field(c, "image"))
		if img != "" && !seen[img] {
			seen[img] = true
			out = append(out, img)
		}
	}
	return strings.Join(out, ",")
}

func ipPorts(it any) string {
	ip, ok := output.Field(it, "ipAddress").(map[string]any)
	if !ok {
		return ""
	}
	var ports []string
	list, _ := ip["ports"].([]any)
	for _, p := range list {
		ports = append(ports, output.Scalar(output.Field(p, "port")))
	}
	if ip["type"] == "Private" {
		for _, c := range containers(it) {
			cp, _ := output.Field(c, "ports").([]any)
			for _, p := range cp {
				ports = append(ports, output.Scalar(output.Field(p, "port")))
			}
		}
	}
	return output.Scalar(ip["ip"]) + ":" + strings.Join(ports, ",")
}

// cpuMemory sums the requests of the containers: "1.0 core/1.5 gb".
func cpuMemory(it any) string {
	var cpu, mem float64
	for _, c := range containers(it) {
		if n, ok := output.Field(c, "resources", "requests", "cpu").(float64); ok {
			cpu += n
		}
		if n, ok := output.Field(c, "resources", "requests", "memoryInGB").(float64); ok {
			mem += n
		}
	}
	return pyFloat(cpu) + " core/" + pyFloat(mem) + " gb"
}

// pyFloat formats like Python's str(float), rounded to 1/1000 so that
// sums read well: 1 → "1.0", 0.25 → "0.25", 0.1+0.2 → "0.3".
func pyFloat(f float64) string {
	s := strconv.FormatFloat(math.Round(f*1000)/1000, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}
