package container

import (
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/atomicfile"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
)

func newExportCmd(f *cmdutil.Factory) *cobra.Command {
	var t target
	var file string
	cmd := &cobra.Command{
		Use:   "export -g GROUP -n NAME -f FILE",
		Short: "Write a container group as YAML that `container create --file` takes",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			if file == "" {
				return cmdutil.FlagErrorf("the following arguments are required: --file/-f")
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			v, err := get(cmd.Context(), c, t)
			if err != nil {
				return err
			}
			b, err := yaml.Marshal(Exported(v))
			if err != nil {
				return err
			}
			return atomicfile.WriteFile(file, b, 0o600) // never a half-written file
		},
	}
	t.flags(cmd)
	cmd.Flags().StringVarP(&file, "file", "f", "", "the YAML file to write")
	return cmd
}

// Exported is a container group as az exports it: without id, sku,
// provisioningState, instance views and null fields, with apiVersion.
func Exported(v map[string]any) map[string]any {
	delete(v, "id")
	delete(v, "sku")
	if props, ok := v["properties"].(map[string]any); ok {
		for _, k := range []string{"instanceView", "provisioningState", "sku"} {
			delete(props, k)
		}
		for _, list := range []string{"containers", "initContainers"} {
			cs, _ := props[list].([]any)
			for _, c := range cs {
				cm, _ := c.(map[string]any)
				if cp, ok := cm["properties"].(map[string]any); ok {
					delete(cp, "instanceView")
				}
			}
		}
	}
	v["apiVersion"] = client.APIVersion
	prune(v)
	return v
}
