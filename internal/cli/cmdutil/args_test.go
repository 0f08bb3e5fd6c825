package cmdutil

import (
	"reflect"
	"testing"

	"github.com/spf13/cobra"
)

func TestExpandNargs(t *testing.T) {
	root := &cobra.Command{Use: "skiff"}
	create := &cobra.Command{Use: "create", Run: func(*cobra.Command, []string) {}}
	create.Flags().StringArrayP("environment-variables", "e", nil, "")
	create.Flags().IntSlice("ports", nil, "")
	create.Flags().String("image", "", "")
	Nargs(create, "environment-variables", "ports")
	root.AddCommand(create)

	got := ExpandNargs(root, []string{"create", "-e", "A=1", "B=2", "--image", "nginx", "--ports=80", "443", "-e", "-x=1", "--", "-e", "z"})
	want := []string{"create", "-e", "A=1", "--environment-variables", "B=2", "--image", "nginx", "--ports=80", "--ports", "443", "-e", "-x=1", "--", "-e", "z"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
