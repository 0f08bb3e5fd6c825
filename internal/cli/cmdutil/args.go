package cmdutil

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

const nargsAnnotation = "skiff_nargs"

// NoArgs rejects positional arguments with a usage error.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return FlagErrorf("unrecognized arguments: %s", strings.Join(args, " "))
	}
	return nil
}

// ExactArgs wants n positional arguments, named in what.
func ExactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return FlagErrorf("%s: missing %s", cmd.CommandPath(), what)
		}
		if len(args) > n {
			return FlagErrorf("unrecognized arguments: %s", strings.Join(args[n:], " "))
		}
		return nil
	}
}

// Nargs marks flags that take several values after one flag, as az's
// nargs='+' does (`--ports 80 443`, `-e A=1 B=2`). ExpandNargs rewrites
// such command lines before cobra parses them.
func Nargs(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		_ = cmd.Flags().SetAnnotation(n, nargsAnnotation, []string{"true"})
	}
}

// ExpandNargs rewrites `--flag a b c` into `--flag a --flag b --flag c` for
// the flags marked with Nargs on the command that args select.
func ExpandNargs(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return args
	}
	multi := map[string]string{}
	cmd.Flags().VisitAll(func(fl *pflag.Flag) {
		if _, ok := fl.Annotations[nargsAnnotation]; ok {
			multi["--"+fl.Name] = "--" + fl.Name
			if fl.Shorthand != "" {
				multi["-"+fl.Shorthand] = "--" + fl.Name
			}
		}
	})
	if len(multi) == 0 {
		return args
	}
	out := make([]string, 0, len(args))
	cur := ""          // the nargs flag whose values are being read
	needValue := false // the next token is the flag's own value
	for i, a := range args {
		switch {
		case a == "--":
			return append(out, args[i:]...)
		case needValue:
			needValue = false
		case strings.HasPrefix(a, "-") && len(a) > 1:
			name, _, inline := strings.Cut(a, "=")
			cur = multi[name]
			needValue = cur != "" && !inline
		case cur != "":
			out = append(out, cur)
		}
		out = append(out, a)
	}
	return out
}

// GroupRunE is the RunE of a command that only groups others (skiff
// container): help without arguments, a usage error for an unknown
// subcommand.
func GroupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return FlagErrorf("%q is not a %s command; see '%s --help'", args[0], cmd.CommandPath(), cmd.CommandPath())
	}
	return cmd.Help()
}
