// Package cmdutil is what every skiff API command shares: the Factory (I/O
// streams, the HTTP client, the global and output flags), printing,
// confirmation and errors that map to exit codes.
package cmdutil

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/output"
)

// Environment variables the CLI reads.
const (
	EnvEndpoint     = "SKIFF_ENDPOINT"
	EnvToken        = "SKIFF_TOKEN"
	EnvDataDir      = "SKIFF_DATA_DIR"
	EnvSubscription = "SKIFF_SUBSCRIPTION"

	DefaultDataDir = "/var/lib/skiff"
	tokenFile      = "admin.token"
)

// Factory carries what commands share. Its flag fields are filled when
// the command line is parsed; Client is built on first use after that.
type Factory struct {
	IO *IOStreams
	// Getenv reads the environment (os.Getenv outside tests).
	Getenv func(string) string
	// HTTPClient is used by the API client; nil means a default client.
	HTTPClient *http.Client

	// Endpoint and Subscription are the --endpoint and --subscription flags.
	Endpoint     string
	Subscription string
	// Output are the -o/--output and --query flags.
	Output     output.Options
	outputFlag string

	client *client.Client
}

// New returns a Factory on the given streams and environment.
func New(io *IOStreams, getenv func(string) string) *Factory {
	if getenv == nil {
		getenv = os.Getenv
	}
	return &Factory{IO: io, Getenv: getenv}
}

// AddGlobalFlags adds the connection and output flags to a command and
// every command below it: --endpoint, --subscription, -o/--output, --query.
func (f *Factory) AddGlobalFlags(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.Endpoint, "endpoint", "", "URL of the Skiff server (default $"+EnvEndpoint+" or "+client.DefaultEndpoint+")")
	pf.StringVar(&f.Subscription, "subscription", "", "subscription to use (default $"+EnvSubscription+" or the server's first)")
	pf.StringVarP(&f.outputFlag, "output", "o", string(output.JSON), "output format: json, jsonc, yaml, table, tsv, none")
	pf.StringVar(&f.Output.Query, "query", "", "JMESPath query string applied to the output")
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error {
		format, err := output.ParseFormat(f.outputFlag)
		if err != nil {
			return FlagErrorf("%s", err.Error())
		}
		f.Output.Format = format
		return nil
	}
}

// Client returns the API client, built from the flags and environment.
func (f *Factory) Client() (*client.Client, error) {
	if f.client != nil {
		return f.client, nil
	}
	ep := f.Endpoint
	if ep == "" {
		ep = f.Getenv(EnvEndpoint)
	}
	sub := f.Subscription
	if sub == "" {
		sub = f.Getenv(EnvSubscription)
	}
	token, hint := f.token()
	c, err := client.New(client.Options{Endpoint: ep, Token: token, TokenHint: hint, Subscription: sub, HTTPClient: f.HTTPClient})
	if err != nil {
		return nil, err
	}
	f.client = c
	return c, nil
}

// token reads $SKIFF_TOKEN, else <data-dir>/admin.token.
func (f *Factory) token() (token, hint string) {
	if t := strings.TrimSpace(f.Getenv(EnvToken)); t != "" {
		return t, ""
	}
	dir := f.Getenv(EnvDataDir)
	if dir == "" {
		dir = DefaultDataDir
	}
	path := filepath.Join(dir, tokenFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Sprintf("set %s, or run where %s is readable", EnvToken, path)
	}
	return strings.TrimSpace(string(b)), ""
}

// Print writes v in the format and with the query of the output flags.
// cols is the command's own table layout, if it has one.
func (f *Factory) Print(v any, cols *output.Columns) error {
	n, err := output.Normalize(v)
	if err != nil {
		return err
	}
	return output.Print(f.IO.Out, n, f.Output, cols)
}

// Confirm asks "Are you sure…" on a terminal, as az does, unless yes is
// set. Without a terminal it refuses and tells the user to pass --yes.
func (f *Factory) Confirm(yes bool, what string) error {
	if yes {
		return nil
	}
	if !f.IO.StdinTTY {
		return FlagErrorf("cannot ask for confirmation to %s: standard input is not a terminal; pass --yes", what)
	}
	r := bufio.NewReader(f.IO.In)
	for {
		fmt.Fprint(f.IO.ErrOut, "Are you sure you want to perform this operation? (y/n): ")
		line, err := r.ReadString('\n')
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y", "yes":
			return nil
		case "n", "no":
			return fmt.Errorf("operation cancelled")
		}
		if err != nil {
			return fmt.Errorf("operation cancelled")
		}
	}
}

// PrintJSON prints JSON as the server sent it (the body a typed method of
// the client decoded, kept by client.WithRawJSON), so that the output has
// every field the server sends.
func (f *Factory) PrintJSON(raw json.RawMessage, cols *output.Columns) error {
	var v any
	if err := (&client.Response{Body: raw}).Decode(&v); err != nil {
		return err
	}
	return f.Print(v, cols)
}
