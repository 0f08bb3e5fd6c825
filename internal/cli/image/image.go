// Package image is `skiff image`: the server's image cache (import a
// tarball, pull, list, remove). It has no az counterpart; the routes are
// Skiff extensions under …/locations/{loc}.
package image

import (
	"context"
	"encoding/json"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
)

// DefaultLocation is the location the image commands use without -l.
const DefaultLocation = "local"

// NewCmd returns `skiff image`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage the server's images",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	f.AddGlobalFlags(cmd)
	cmd.AddCommand(newImportCmd(f), newListCmd(f), newPullCmd(f), newRmCmd(f))
	return cmd
}

// locationFlag adds -l, and --host: in a cluster, image operations go to
// every Ready host unless --host names one.
func locationFlag(cmd *cobra.Command, loc *string) {
	cmd.Flags().StringVarP(loc, "location", "l", DefaultLocation, "location of the image cache")
	cmd.Flags().String("host", "", "in a cluster: only this host's image cache (default: every Ready host's)")
}

// scoped is the command's context, on the host --host names.
func scoped(cmd *cobra.Command) context.Context {
	if h, _ := cmd.Flags().GetString("host"); h != "" {
		return client.OnHost(cmd.Context(), h)
	}
	return cmd.Context()
}

func newImportCmd(f *cmdutil.Factory) *cobra.Command {
	var loc string
	cmd := &cobra.Command{
		Use:   "import FILE.tar [-l LOCATION]",
		Short: "Import a docker-archive or OCI-layout tarball (docker save, podman save)",
		Args:  cmdutil.ExactArgs(1, "FILE.tar"),
		RunE: func(cmd *cobra.Command, args []string) error {
			file, err := os.Open(args[0])
			if err != nil {
				return cmdutil.FlagErrorf("%v", err)
			}
			defer file.Close()
			st, err := file.Stat()
			if err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.ImportImage(client.WithRawJSON(scoped(cmd), &raw), loc, file, st.Size()); err != nil {
				return err
			}
			return f.PrintJSON(raw, nil)
		},
	}
	locationFlag(cmd, &loc)
	return cmd
}

func newListCmd(f *cmdutil.Factory) *cobra.Command {
	var loc string
	cmd := &cobra.Command{
		Use:   "list [-l LOCATION]",
		Short: "List the images the server has",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.ListCachedImages(client.WithRawJSON(scoped(cmd), &raw), loc); err != nil {
				return err
			}
			return f.PrintJSON(raw, nil)
		},
	}
	locationFlag(cmd, &loc)
	return cmd
}

func newPullCmd(f *cmdutil.Factory) *cobra.Command {
	var loc, server, user, pass string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "pull IMAGE [--registry-username U --registry-password P]",
		Short: "Pull an image into the server's cache, showing per-layer progress on stderr",
		Args:  cmdutil.ExactArgs(1, "IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := client.PullRequest{Image: args[0]}
			if (user == "") != (pass == "") {
				return cmdutil.FlagErrorf("--registry-username and --registry-password go together")
			}
			if user != "" {
				if server == "" {
					ref, err := name.ParseReference(args[0])
					if err != nil {
						return cmdutil.FlagErrorf("%q: %v", args[0], err)
					}
					server = ref.Context().RegistryStr()
				}
				body.Credentials = []api.ImageRegistryCredential{{Server: server, Username: user, Password: pass}}
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			var progress func(api.PullEvent)
			if !quiet {
				pv := &progressView{w: f.IO.ErrOut, tty: f.IO.StderrTTY, lines: map[string]string{}}
				progress = pv.event
			}
			var raw json.RawMessage
			if _, err := c.PullImage(client.WithRawJSON(scoped(cmd), &raw), loc, body, progress); err != nil {
				return err
			}
			return f.PrintJSON(raw, nil)
		},
	}
	locationFlag(cmd, &loc)
	cmd.Flags().StringVar(&server, "registry-login-server", "", "registry server (default: the image's)")
	cmd.Flags().StringVar(&user, "registry-username", "", "user name for the registry")
	cmd.Flags().StringVar(&pass, "registry-password", "", "password for the registry")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress; print the result only")
	return cmd
}

func newRmCmd(f *cmdutil.Factory) *cobra.Command {
	var loc string
	cmd := &cobra.Command{
		Use:     "rm IMAGE",
		Aliases: []string{"delete"},
		Short:   "Remove an image from the server's cache",
		Args:    cmdutil.ExactArgs(1, "IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			return c.RemoveImage(scoped(cmd), loc, args[0])
		},
	}
	locationFlag(cmd, &loc)
	return cmd
}
