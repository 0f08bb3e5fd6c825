// Package storage is `skiff storage`: storage accounts and their file
// shares, with the grammar of `az storage account` and `az storage
// share-rm`. Accounts and shares print as az prints them: the keys of
// `properties` moved up one level, with `resourceGroup` added.
package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	"github.com/skiff-sh/skiff/internal/cli/output"
)

// NewCmd returns `skiff storage`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "storage",
		Short: "Manage storage accounts and their file shares",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	f.AddGlobalFlags(cmd)
	account := &cobra.Command{
		Use:   "account",
		Short: "Manage storage accounts",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	keys := &cobra.Command{
		Use:   "keys",
		Short: "List and renew the keys of a storage account",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	keys.AddCommand(newKeysListCmd(f), newKeysRenewCmd(f))
	account.AddCommand(newAccountCreateCmd(f), newAccountShowCmd(f), newAccountListCmd(f), newAccountDeleteCmd(f),
		newCheckNameCmd(f), newConnectionStringCmd(f), keys)
	shares := &cobra.Command{
		Use:   "share-rm",
		Short: "Manage the file shares of a storage account (through the management API)",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	shares.AddCommand(newShareCreateCmd(f), newShareShowCmd(f), newShareListCmd(f), newShareDeleteCmd(f))
	cmd.AddCommand(account, shares)
	return cmd
}

// Flatten returns an account or share the way az shows it: the keys of
// `properties` moved up one level, and `resourceGroup` added from the id.
func Flatten(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != "properties" {
			out[k] = v
		}
	}
	if p, ok := m["properties"].(map[string]any); ok {
		for k, v := range p {
			out[k] = v
		}
	}
	if id, ok := out["id"].(string); ok {
		if rg := client.ResourceGroupOf(id); rg != "" {
			out["resourceGroup"] = rg
		}
	}
	return out
}

// printFlat prints raw JSON (an object, or a list of them) flattened.
func printFlat(f *cmdutil.Factory, raw json.RawMessage, cols *output.Columns) error {
	var v any
	if err := (&client.Response{Body: raw}).Decode(&v); err != nil {
		return err
	}
	if l, ok := v.([]any); ok {
		for i := range l {
			l[i] = Flatten(l[i])
		}
		return f.Print(l, cols)
	}
	return f.Print(Flatten(v), cols)
}

// AccountColumns is the table of `storage account list -o table`.
func AccountColumns() *output.Columns {
	return &output.Columns{
		Headers: []string{"Name", "ResourceGroup", "Location", "Kind", "Sku", "AccessTier", "ProvisioningState", "CreationTime"},
		Row: func(it any) []string {
			return []string{
				output.Scalar(output.Field(it, "name")), output.Scalar(output.Field(it, "resourceGroup")),
				output.Scalar(output.Field(it, "location")), output.Scalar(output.Field(it, "kind")),
				output.Scalar(output.Field(it, "sku", "name")), output.Scalar(output.Field(it, "accessTier")),
				output.Scalar(output.Field(it, "provisioningState")), output.Scalar(output.Field(it, "creationTime")),
			}
		},
	}
}

// ShareColumns is the table of `storage share-rm list -o table`.
func ShareColumns() *output.Columns {
	return &output.Columns{
		Headers: []string{"Name", "ResourceGroup", "QuotaGiB", "EnabledProtocols", "AccessTier", "LastModifiedTime"},
		Row: func(it any) []string {
			return []string{
				output.Scalar(output.Field(it, "name")), output.Scalar(output.Field(it, "resourceGroup")),
				output.Scalar(output.Field(it, "shareQuota")), output.Scalar(output.Field(it, "enabledProtocols")),
				output.Scalar(output.Field(it, "accessTier")), output.Scalar(output.Field(it, "lastModifiedTime")),
			}
		},
	}
}

// keyColumns is the table of `storage account keys list -o table`.
func keyColumns() *output.Columns {
	return &output.Columns{
		Headers: []string{"KeyName", "Permissions", "Value", "CreationTime"},
		Row: func(it any) []string {
			return []string{output.Scalar(output.Field(it, "keyName")), output.Scalar(output.Field(it, "permissions")),
				output.Scalar(output.Field(it, "value")), output.Scalar(output.Field(it, "creationTime"))}
		},
	}
}

// required names the missing flags of a command, as az does.
func required(flags ...[2]string) error {
	var missing []string
	for _, f := range flags {
		if f[1] == "" {
			missing = append(missing, f[0])
		}
	}
	if len(missing) > 0 {
		return cmdutil.FlagErrorf("the following arguments are required: %s", strings.Join(missing, ", "))
	}
	return nil
}

// ---- accounts ----

func newAccountCreateCmd(f *cmdutil.Factory) *cobra.Command {
	var name, rg, location, sku, kind, tier, tls string
	var tags []string
	cmd := &cobra.Command{
		Use:   "create -n NAME -g GROUP [--sku Standard_RAGRS] [-l LOCATION] [--kind StorageV2] [--tags KEY=VALUE ...]",
		Short: "Create a storage account, or update it",
		Long: `Create a storage account, or update the one of that name in the resource group.

The name is 3 to 24 lower-case letters and digits, and unique in the whole server. The account
comes with two keys (skiff storage account keys list); an azureFile volume mounts a share of it
only with one of them.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"--name/-n", name}, [2]string{"--resource-group/-g", rg}); err != nil {
				return err
			}
			_, tv, err := cmdutil.ParseKV("--tags", tags, true)
			if err != nil {
				return err
			}
			body := api.StorageAccount{Location: location, Sku: &api.StorageSku{Name: sku}, Kind: kind,
				Properties: &api.StorageAccountProperties{AccessTier: tier, MinimumTLSVersion: tls}}
			if len(tags) > 0 {
				body.Tags = tv
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.CreateStorageAccount(client.WithRawJSON(cmd.Context(), &raw), rg, name, body); err != nil {
				return err
			}
			return printFlat(f, raw, nil)
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "", "name of the storage account")
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "name of the resource group")
	cmd.Flags().StringVarP(&location, "location", "l", "", "location (default: the resource group's)")
	cmd.Flags().StringVar(&sku, "sku", "Standard_RAGRS", "SKU: Standard_LRS, Standard_GRS, Standard_RAGRS, Standard_ZRS, Premium_LRS, Premium_ZRS, Standard_GZRS, Standard_RAGZRS")
	cmd.Flags().StringVar(&kind, "kind", "StorageV2", "kind: StorageV2, Storage, BlobStorage, FileStorage, BlockBlobStorage")
	cmd.Flags().StringVar(&tier, "access-tier", "", "access tier: Hot, Cool or Premium")
	cmd.Flags().StringVar(&tls, "min-tls-version", "", "minimum TLS version: TLS1_0, TLS1_1 or TLS1_2")
	cmd.Flags().StringArrayVar(&tags, "tags", nil, "space-separated tags: key[=value]")
	cmdutil.Nargs(cmd, "tags")
	return cmd
}

// accountTarget is the -n/-g pair of the account commands; -g may be
// left out, as az allows, when the account's name finds it.
type accountTarget struct{ name, rg string }

func (t *accountTarget) flags(cmd *cobra.Command, nameFlags ...string) {
	if len(nameFlags) == 0 {
		cmd.Flags().StringVarP(&t.name, "name", "n", "", "name of the storage account")
	} else {
		cmd.Flags().StringVar(&t.name, nameFlags[0], "", "name of the storage account")
		for _, alias := range nameFlags[1:] {
			cmd.Flags().StringVar(&t.name, alias, "", "name of the storage account")
			_ = cmd.Flags().MarkHidden(alias)
		}
	}
	cmd.Flags().StringVarP(&t.rg, "resource-group", "g", "", "name of the resource group (default: the account's)")
}

// resolve checks the name and finds the resource group if it was not
// given. The name may be the account's resource id, as az's
// --storage-account takes it.
func (t *accountTarget) resolve(ctx context.Context, c *client.Client, nameFlag string) error {
	if err := required([2]string{nameFlag, t.name}); err != nil {
		return err
	}
	if id := t.name; strings.HasPrefix(id, "/") {
		t.name = id[strings.LastIndex(id, "/")+1:]
		if t.rg == "" {
			t.rg = client.ResourceGroupOf(id)
		}
	}
	if t.rg != "" {
		return nil
	}
	rg, err := c.StorageAccountResourceGroup(ctx, t.name)
	t.rg = rg
	return err
}

func newAccountListCmd(f *cmdutil.Factory) *cobra.Command {
	var rg string
	cmd := &cobra.Command{
		Use:   "list [-g GROUP]",
		Short: "List storage accounts, of one resource group or of the subscription",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.ListStorageAccounts(client.WithRawJSON(cmd.Context(), &raw), rg); err != nil {
				return err
			}
			return printFlat(f, raw, AccountColumns())
		},
	}
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "name of the resource group")
	return cmd
}

func newAccountDeleteCmd(f *cmdutil.Factory) *cobra.Command {
	var t accountTarget
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete -n NAME [-g GROUP] [--yes]",
		Short: "Delete a storage account, its shares and their data",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"--name/-n", t.name}); err != nil {
				return err
			}
			if err := f.Confirm(yes, fmt.Sprintf("delete storage account %q and the data of its shares", t.name)); err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			if err := t.resolve(cmd.Context(), c, "--name/-n"); err != nil {
				return err
			}
			return c.DeleteStorageAccount(cmd.Context(), t.rg, t.name)
		},
	}
	t.flags(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not prompt for confirmation")
	return cmd
}

func newCheckNameCmd(f *cmdutil.Factory) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "check-name -n NAME",
		Short: "Check whether a storage account name is valid and free",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"--name/-n", name}); err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.CheckStorageAccountName(client.WithRawJSON(cmd.Context(), &raw), name); err != nil {
				return err
			}
			return f.PrintJSON(raw, nil)
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "", "name of the storage account")
	return cmd
}

// keyNames are az's names of the keys, --key's values.
var keyNames = map[string]string{"primary": "key1", "secondary": "key2"}

func keyName(flag string) (string, error) {
	if k, ok := keyNames[strings.ToLower(flag)]; ok {
		return k, nil
	}
	return "", cmdutil.FlagErrorf("argument --key: invalid choice: '%s' (choose from 'primary', 'secondary')", flag)
}

// ConnectionString is az's connection string of an account: protocol and
// the cloud's endpoint suffix, the account's name and key, and its
// endpoints.
func ConnectionString(protocol string, sa *api.StorageAccount, key string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "DefaultEndpointsProtocol=%s;EndpointSuffix=%s;AccountName=%s;AccountKey=%s", protocol, api.StorageEndpointSuffix, sa.Name, key)
	if p := sa.Properties; p != nil && p.PrimaryEndpoints != nil {
		for _, e := range [][2]string{{"Blob", p.PrimaryEndpoints.Blob}, {"File", p.PrimaryEndpoints.File}, {"Queue", p.PrimaryEndpoints.Queue}, {"Table", p.PrimaryEndpoints.Table}} {
			if e[1] != "" {
				fmt.Fprintf(&b, ";%sEndpoint=%s", e[0], e[1])
			}
		}
	}
	return b.String()
}

func newConnectionStringCmd(f *cmdutil.Factory) *cobra.Command {
	var t accountTarget
	var key, protocol string
	cmd := &cobra.Command{
		Use:   "show-connection-string -n NAME [-g GROUP] [--key primary|secondary]",
		Short: "Print the connection string of a storage account, with its key",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := keyName(key)
			if err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			if err := t.resolve(cmd.Context(), c, "--name/-n"); err != nil {
				return err
			}
			keys, err := c.ListStorageAccountKeys(cmd.Context(), t.rg, t.name)
			if err != nil {
				return err
			}
			sa, err := c.GetStorageAccount(cmd.Context(), t.rg, t.name)
			if err != nil {
				return err
			}
			value := ""
			for _, kv := range keys {
				if kv.KeyName == k {
					value = kv.Value
				}
			}
			return f.Print(map[string]string{"connectionString": ConnectionString(protocol, sa, value)}, nil)
		},
	}
	t.flags(cmd)
	cmd.Flags().StringVar(&key, "key", "primary", "the key to use: primary or secondary")
	cmd.Flags().StringVar(&protocol, "protocol", "https", "the default endpoint protocol: http or https")
	return cmd
}

func newKeysRenewCmd(f *cmdutil.Factory) *cobra.Command {
	var t accountTarget
	var key string
	cmd := &cobra.Command{
		Use:   "renew --account-name NAME [-g GROUP] --key primary|secondary",
		Short: "Replace a key of a storage account with a new one; the old one no longer mounts shares",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"--key", key}); err != nil {
				return err
			}
			k, err := keyName(key)
			if err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			if err := t.resolve(cmd.Context(), c, "--account-name/-n"); err != nil {
				return err
			}
			keys, err := c.RegenerateStorageAccountKey(cmd.Context(), t.rg, t.name, k)
			if err != nil {
				return err
			}
			return f.Print(keys, keyColumns())
		},
	}
	cmd.Flags().StringVarP(&t.name, "account-name", "n", "", "name of the storage account")
	cmd.Flags().StringVarP(&t.rg, "resource-group", "g", "", "name of the resource group (default: the account's)")
	cmd.Flags().StringVar(&key, "key", "", "the key to renew: primary or secondary")
	return cmd
}

// ---- shares ----

// shareTarget is the account and share of the share-rm commands.
type shareTarget struct {
	account accountTarget
	name    string
}

func (t *shareTarget) flags(cmd *cobra.Command) {
	t.account.flags(cmd, "storage-account", "account-name")
	cmd.Flags().StringVarP(&t.name, "name", "n", "", "name of the file share")
}

func (t *shareTarget) resolve(ctx context.Context, c *client.Client) error {
	if err := required([2]string{"--storage-account", t.account.name}, [2]string{"--name/-n", t.name}); err != nil {
		return err
	}
	return t.account.resolve(ctx, c, "--storage-account")
}

func newShareCreateCmd(f *cmdutil.Factory) *cobra.Command {
	var t shareTarget
	var quota int
	var tier string
	var metadata []string
	cmd := &cobra.Command{
		Use:   "create --storage-account ACCOUNT -n SHARE [-g GROUP] [--quota GIB] [--access-tier TIER] [--metadata KEY=VALUE ...]",
		Short: "Create a file share of a storage account, or update it",
		Long: `Create a file share of a storage account, or update its quota, tier and metadata.

A share is where azureFile volumes keep their data: it outlives every container group and
goes only with the share or its account. A share deleted and created again is empty.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, md, err := cmdutil.ParseKV("--metadata", metadata, false)
			if err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			if err := t.resolve(cmd.Context(), c); err != nil {
				return err
			}
			body := api.FileShare{Properties: api.FileShareProperties{ShareQuota: quota, AccessTier: tier}}
			if len(metadata) > 0 {
				body.Properties.Metadata = md
			}
			var raw json.RawMessage
			if _, err := c.CreateFileShare(client.WithRawJSON(cmd.Context(), &raw), t.account.rg, t.account.name, t.name, body); err != nil {
				return err
			}
			return printFlat(f, raw, ShareColumns())
		},
	}
	t.flags(cmd)
	cmd.Flags().IntVarP(&quota, "quota", "q", 0, "the share's size in GiB, 1 to 102400 (default 5120)")
	cmd.Flags().StringVar(&tier, "access-tier", "", "access tier: TransactionOptimized, Hot, Cool or Premium")
	cmd.Flags().StringArrayVar(&metadata, "metadata", nil, "space-separated metadata: key=value")
	cmdutil.Nargs(cmd, "metadata")
	return cmd
}

func newShareShowCmd(f *cmdutil.Factory) *cobra.Command {
	var t shareTarget
	cmd := &cobra.Command{
		Use:   "show --storage-account ACCOUNT -n SHARE [-g GROUP]",
		Short: "Show a file share",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			if err := t.resolve(cmd.Context(), c); err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.GetFileShare(client.WithRawJSON(cmd.Context(), &raw), t.account.rg, t.account.name, t.name); err != nil {
				return err
			}
			return printFlat(f, raw, ShareColumns())
		},
	}
	t.flags(cmd)
	return cmd
}

func newShareDeleteCmd(f *cmdutil.Factory) *cobra.Command {
	var t shareTarget
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete --storage-account ACCOUNT -n SHARE [-g GROUP] [--yes]",
		Short: "Delete a file share and its data",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"--storage-account", t.account.name}, [2]string{"--name/-n", t.name}); err != nil {
				return err
			}
			if err := f.Confirm(yes, fmt.Sprintf("delete file share %q and its data", t.name)); err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			if err := t.resolve(cmd.Context(), c); err != nil {
				return err
			}
			return c.DeleteFileShare(cmd.Context(), t.account.rg, t.account.name, t.name)
		},
	}
	t.flags(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not prompt for confirmation")
	return cmd
}

// accountCmd is a command on one storage account, found by the name flag
// nameFlag (and -g, or the account's name alone): flags adds the target's
// flags, run does the work once the account's resource group is known.
func accountCmd(f *cmdutil.Factory, use, short, nameFlag string, flags func(*cobra.Command, *accountTarget),
	run func(ctx context.Context, c *client.Client, t accountTarget) error) *cobra.Command {
	var t accountTarget
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			if err := t.resolve(cmd.Context(), c, nameFlag); err != nil {
				return err
			}
			return run(cmd.Context(), c, t)
		},
	}
	flags(cmd, &t)
	return cmd
}

func newAccountShowCmd(f *cmdutil.Factory) *cobra.Command {
	return accountCmd(f, "show -n NAME [-g GROUP]", "Show a storage account (never its keys)", "--name/-n",
		func(cmd *cobra.Command, t *accountTarget) { t.flags(cmd) },
		func(ctx context.Context, c *client.Client, t accountTarget) error {
			var raw json.RawMessage
			if _, err := c.GetStorageAccount(client.WithRawJSON(ctx, &raw), t.rg, t.name); err != nil {
				return err
			}
			return printFlat(f, raw, AccountColumns())
		})
}

func newShareListCmd(f *cmdutil.Factory) *cobra.Command {
	return accountCmd(f, "list --storage-account ACCOUNT [-g GROUP]", "List the file shares of a storage account", "--storage-account",
		func(cmd *cobra.Command, t *accountTarget) { t.flags(cmd, "storage-account", "account-name") },
		func(ctx context.Context, c *client.Client, t accountTarget) error {
			var raw json.RawMessage
			if _, err := c.ListFileShares(client.WithRawJSON(ctx, &raw), t.rg, t.name); err != nil {
				return err
			}
			return printFlat(f, raw, ShareColumns())
		})
}

func newKeysListCmd(f *cmdutil.Factory) *cobra.Command {
	return accountCmd(f, "list --account-name NAME [-g GROUP]", "List the two keys of a storage account", "--account-name/-n",
		func(cmd *cobra.Command, t *accountTarget) {
			cmd.Flags().StringVarP(&t.name, "account-name", "n", "", "name of the storage account")
			cmd.Flags().StringVarP(&t.rg, "resource-group", "g", "", "name of the resource group (default: the account's)")
		},
		func(ctx context.Context, c *client.Client, t accountTarget) error {
			keys, err := c.ListStorageAccountKeys(ctx, t.rg, t.name)
			if err != nil {
				return err
			}
			return f.Print(keys, keyColumns())
		})
}
