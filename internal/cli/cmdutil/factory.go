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
	// EnvCAFile is the CA certificate an https endpoint is trusted with
	// (a server's DATA-DIR/ca.crt); unset, the data dir's is used.
	EnvCAFile = "SKIFF_CA_FILE"
	// EnvConfigDir is where the CLI keeps its state (login.json); unset,
	// ~/.skiff.
	EnvConfigDir = "SKIFF_CONFIG_DIR"

	DefaultDataDir = "/var/lib/skiff"
	tokenFile      = "admin.token"
	caFile         = "ca.crt"
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
	// Credentials, when not nil, sign the client in instead of the stored
	// login and the admin token (the virtual node's service principal).
	Credentials client.TokenSource
	// RespondAsync is client.Options.RespondAsync (the virtual node's).
	RespondAsync bool

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

// Client returns the API client, built from the flags and environment:
// $SKIFF_TOKEN, else f.Credentials, else the principal of `skiff login`,
// else the admin token file of the data dir.
func (f *Factory) Client() (*client.Client, error) {
	if f.client != nil {
		return f.client, nil
	}
	ep := f.Endpoint
	if ep == "" {
		ep = f.Getenv(EnvEndpoint)
	}
	creds := f.Credentials
	var login *Login
	if strings.TrimSpace(f.Getenv(EnvToken)) == "" && creds == nil {
		var err error
		if login, err = f.LoadLogin(); err != nil {
			return nil, err
		}
		if login != nil && (ep == "" || sameEndpoint(ep, login.Endpoint)) {
			ep, creds = login.Endpoint, login.ServicePrincipal()
		} else {
			login = nil
		}
	}
	c, err := f.NewClient(ep, creds, login)
	if err != nil {
		return nil, err
	}
	f.client = c
	return c, nil
}

// NewClient returns a client of the server at ep (flags and environment
// decide the subscription and the CA) that signs in with creds, or with
// the token of $SKIFF_TOKEN or the data dir when creds is nil. login, when
// not nil, is the stored login whose CA file is used.
func (f *Factory) NewClient(ep string, creds client.TokenSource, login *Login) (*client.Client, error) {
	sub := f.Subscription
	if sub == "" {
		sub = f.Getenv(EnvSubscription)
	}
	if sub == "" && login != nil {
		sub = login.Subscription
	}
	var token, hint string
	if creds == nil {
		token, hint = f.token()
	}
	ca, caHint := f.ca(ep)
	if f.Getenv(EnvCAFile) == "" && login != nil && login.CAFile != "" {
		ca = login.CAFile
	}
	c, err := client.New(client.Options{Endpoint: ep, Token: token, TokenHint: hint, Credentials: creds, Subscription: sub,
		HTTPClient: f.HTTPClient, CAFile: ca, CAHint: caHint, RespondAsync: f.RespondAsync})
	if err != nil {
		if ca != "" {
			return nil, fmt.Errorf("%s: %w", EnvCAFile, err)
		}
		return nil, err
	}
	return c, nil
}

// CAFile is the CA file a client of endpoint trusts ("" for the system's
// roots), as NewClient picks it.
func (f *Factory) CAFile(endpoint string) string {
	file, _ := f.ca(endpoint)
	return file
}

// token reads $SKIFF_TOKEN, else <data-dir>/admin.token.
func (f *Factory) token() (token, hint string) {
	if t := strings.TrimSpace(f.Getenv(EnvToken)); t != "" {
		return t, ""
	}
	path := filepath.Join(f.dataDir(), tokenFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Sprintf("set %s, or run where %s is readable", EnvToken, path)
	}
	return strings.TrimSpace(string(b)), ""
}

// ca picks the CA file an endpoint is trusted with: $SKIFF_CA_FILE, else
// for an https endpoint <data-dir>/ca.crt when it is readable ("" for
// none: the system's roots). hint says how to trust an untrusted server.
func (f *Factory) ca(endpoint string) (file, hint string) {
	hint = fmt.Sprintf("set %s to the server's CA certificate (its DATA-DIR/%s)", EnvCAFile, caFile)
	if file = f.Getenv(EnvCAFile); file != "" {
		return file, fmt.Sprintf("%s=%s is not the CA of this server: %s", EnvCAFile, file, hint)
	}
	if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(endpoint)), "https://") {
		return "", hint
	}
	path := filepath.Join(f.dataDir(), caFile)
	if fd, err := os.Open(path); err == nil {
		fd.Close()
		return path, fmt.Sprintf("%s is not the CA of this server: %s", path, hint)
	}
	return "", hint
}

// dataDir is $SKIFF_DATA_DIR, or the default data dir.
func (f *Factory) dataDir() string {
	if dir := f.Getenv(EnvDataDir); dir != "" {
		return dir
	}
	return DefaultDataDir
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
