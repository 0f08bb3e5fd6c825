package container

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/shlex"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
)

// Names of the volumes the create flags make, as az names them.
const (
	VolumeAzureFile = "azurefile"
	VolumeSecrets   = "secrets"
	VolumeGitRepo   = "gitrepo"
)

// createOptions are the flags of `container create`, with az's defaults.
type createOptions struct {
	target
	Image         string
	CPU, Memory   float64
	Ports         []int
	Protocol      string
	IPAddress     string
	DNSNameLabel  string
	Env, SecEnv   []string
	CommandLine   string
	RestartPolicy string
	OSType        string
	Location      string

	RegistryServer, RegistryUsername, RegistryPassword string

	AzureFileShare, AzureFileAccount, AzureFileKey, AzureFileMount string

	Secrets          []string
	SecretsMountPath string

	ConfigMap []string

	GitRepoURL, GitRepoDir, GitRepoRevision, GitRepoMount string

	// A group made from a profile, maybe handed over from a standby pool.
	ProfileID       string
	ProfileRevision int
	StandbyPoolID   string
	FailOnPoolReuse bool

	File   string
	NoWait bool
}

func newCreateCmd(f *cmdutil.Factory) *cobra.Command {
	o := &createOptions{}
	cmd := &cobra.Command{
		Use:   "create -g GROUP -n NAME --image IMAGE [flags] | -g GROUP -f FILE",
		Short: "Create a container group",
		Args:  cmdutil.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runCreate(cmd.Context(), f, o) },
	}
	o.addFlags(cmd)
	cmd.Flags().BoolVar(&o.NoWait, "no-wait", false, "do not wait for the group to be provisioned")
	fl := cmd.Flags()
	fl.StringVar(&o.ProfileID, "container-group-profile-id", "", "make the group from this container group profile (its name in the resource group, or its resource ID); --config-map may go with it")
	fl.IntVar(&o.ProfileRevision, "container-group-profile-revision", 0, "the profile's revision (default: its latest)")
	fl.StringVar(&o.StandbyPoolID, "standby-pool-profile-id", "", "take a ready group from this standby pool (its name in the resource group, or its resource ID); falls back to a new one")
	fl.BoolVar(&o.FailOnPoolReuse, "fail-container-group-create-on-reuse-failure", false, "fail instead of creating a new group when the standby pool has no ready one")
	return cmd
}

// addFlags registers the flags that describe a container group (and -g,
// -n): those of create, and of a profile's create.
func (o *createOptions) addFlags(cmd *cobra.Command) {
	o.target.flags(cmd)
	fl := cmd.Flags()
	fl.StringVar(&o.Image, "image", "", "container image name")
	fl.Float64Var(&o.CPU, "cpu", 1, "number of CPU cores")
	fl.Float64Var(&o.Memory, "memory", 1.5, "memory in GB")
	fl.IntSliceVar(&o.Ports, "ports", []int{80}, "ports to open (space-separated)")
	fl.StringVar(&o.Protocol, "protocol", api.ProtocolTCP, "network protocol of the ports: TCP, UDP")
	fl.StringVar(&o.IPAddress, "ip-address", "", "IP address type: Public (ports published on the server's address) or Private (the group's own address on the container network)")
	fl.StringVar(&o.DNSNameLabel, "dns-name-label", "", "DNS name label of the IP address")
	fl.StringArrayVarP(&o.Env, "environment-variables", "e", nil, "environment variables: KEY=VALUE ...")
	fl.StringArrayVar(&o.SecEnv, "secure-environment-variables", nil, "secure environment variables: KEY=VALUE ...")
	fl.StringVar(&o.CommandLine, "command-line", "", "command line to run in the container, split like a shell does")
	fl.StringVar(&o.RestartPolicy, "restart-policy", api.RestartAlways, "restart policy: Always, OnFailure, Never")
	fl.StringVar(&o.OSType, "os-type", "Linux", "OS type: Linux, Windows")
	fl.StringVarP(&o.Location, "location", "l", "", "location (default: the resource group's)")
	fl.StringVar(&o.RegistryServer, "registry-login-server", "", "registry server of the image")
	fl.StringVar(&o.RegistryUsername, "registry-username", "", "user name for the image registry")
	fl.StringVar(&o.RegistryPassword, "registry-password", "", "password for the image registry")
	fl.StringVar(&o.AzureFileShare, "azure-file-volume-share-name", "", "file share to mount")
	fl.StringVar(&o.AzureFileAccount, "azure-file-volume-account-name", "", "storage account of the file share")
	fl.StringVar(&o.AzureFileKey, "azure-file-volume-account-key", "", "storage account key")
	fl.StringVar(&o.AzureFileMount, "azure-file-volume-mount-path", "", "where the file share is mounted")
	fl.StringArrayVar(&o.Secrets, "secrets", nil, "secrets: KEY=VALUE ...")
	fl.StringVar(&o.SecretsMountPath, "secrets-mount-path", "", "where the secrets volume is mounted")
	fl.StringArrayVar(&o.ConfigMap, "config-map", nil, "config map: KEY=VALUE ..., files at /mnt/configmap/NAME/KEY that a PUT of new values changes without a restart")
	fl.StringVar(&o.GitRepoURL, "gitrepo-url", "", "git repository to clone into a volume")
	fl.StringVar(&o.GitRepoDir, "gitrepo-dir", ".", "directory of the clone in the volume")
	fl.StringVar(&o.GitRepoRevision, "gitrepo-revision", "", "commit to check out")
	fl.StringVar(&o.GitRepoMount, "gitrepo-mount-path", "", "where the git repo volume is mounted")
	fl.StringVarP(&o.File, "file", "f", "", "YAML file of the whole container group (as az container create --file)")
	cmdutil.Nargs(cmd, "ports", "environment-variables", "secure-environment-variables", "secrets", "config-map")
}

func runCreate(ctx context.Context, f *cmdutil.Factory, o *createOptions) error {
	var (
		body       any
		apiVersion string
		err        error
	)
	if o.File != "" {
		var doc map[string]any
		if doc, err = readFile(o); err != nil {
			return err
		}
		if v, ok := doc["apiVersion"].(string); ok && v != "" {
			apiVersion = v
		}
		body = doc
	} else if o.ProfileID == "" && o.StandbyPoolID == "" {
		if body, err = buildGroup(o); err != nil {
			return err
		}
	}
	c, err := f.Client()
	if err != nil {
		return err
	}
	if body == nil { // made from a profile, which the client reads
		if body, err = fromProfile(ctx, c, o); err != nil {
			return err
		}
	}
	if err := setLocation(ctx, c, o, body); err != nil {
		return err
	}
	_, poller, err := c.PutContainerGroup(ctx, o.rg, o.name, body, apiVersion)
	if err != nil || o.NoWait {
		return err
	}
	var progress client.Progress
	if f.IO.StderrTTY {
		progress = func(ev api.Event) { fmt.Fprintf(f.IO.ErrOut, "%-8s %s\n", ev.Name, ev.Message) }
	}
	if err := poller.Wait(ctx, progress); err != nil {
		return err
	}
	v, err := get(ctx, c, o.target)
	if err != nil {
		return err
	}
	return f.Print(Flatten(v), Columns())
}

// fromProfile builds the group of --container-group-profile-id (and
// --standby-pool-profile-id) as the ACI docs' requests are: the profile's
// reference, the pool's, and --config-map as the config map of the
// profile's first container (read from the profile).
func fromProfile(ctx context.Context, c *client.Client, o *createOptions) (map[string]any, error) {
	if err := o.target.check(); err != nil {
		return nil, err
	}
	if o.ProfileID == "" {
		return nil, cmdutil.FlagErrorf("--standby-pool-profile-id needs --container-group-profile-id: the profile the pool's groups are made from")
	}
	if o.Image != "" {
		return nil, cmdutil.FlagErrorf("--image cannot go with --container-group-profile-id: the group's containers are the profile's")
	}
	sub, err := c.Subscription(ctx)
	if err != nil {
		return nil, err
	}
	id := o.ProfileID
	if !strings.HasPrefix(id, "/") {
		id = profilePath(sub, o.rg, id)
	}
	ref := map[string]any{"id": id}
	if o.ProfileRevision > 0 {
		ref["revision"] = o.ProfileRevision
	}
	props := map[string]any{"containerGroupProfile": ref}
	if o.StandbyPoolID != "" {
		pool := o.StandbyPoolID
		if !strings.HasPrefix(pool, "/") {
			pool = poolPath(sub, o.rg, pool)
		}
		sp := map[string]any{"id": pool}
		if o.FailOnPoolReuse {
			sp["failContainerGroupCreateOnReuseFailure"] = true
		}
		props["standbyPoolProfile"] = sp
	}
	if len(o.ConfigMap) > 0 {
		_, kv, err := cmdutil.ParseKV("--config-map", o.ConfigMap, false)
		if err != nil {
			return nil, err
		}
		var prof api.ContainerGroupProfile
		if err := c.Get(ctx, id, &prof); err != nil {
			return nil, err
		}
		if len(prof.Properties.Containers) == 0 {
			return nil, cmdutil.FlagErrorf("--config-map: the profile %s has no container", id)
		}
		props["containers"] = []map[string]any{{"name": prof.Properties.Containers[0].Name,
			"properties": map[string]any{"configMap": map[string]any{"keyValuePairs": kv}}}}
	}
	doc := map[string]any{"properties": props}
	if o.Location != "" {
		doc["location"] = o.Location
	}
	return doc, nil
}

// setLocation fills in the body's location: --location, else the resource
// group's. A location in a --file YAML wins over both.
func setLocation(ctx context.Context, c *client.Client, o *createOptions, body any) error {
	doc, ok := body.(map[string]any)
	if !ok {
		return nil
	}
	if loc, _ := doc["location"].(string); loc != "" {
		return nil
	}
	loc := o.Location
	if loc == "" {
		rg, err := c.GetResourceGroup(ctx, o.rg)
		if err != nil {
			return err
		}
		loc = rg.Location
	}
	doc["location"] = loc
	return nil
}

// readFile reads a --file YAML into the JSON document to PUT and settles
// the group's name: --name, if given, must equal the YAML's.
func readFile(o *createOptions) (map[string]any, error) {
	if o.rg == "" {
		return nil, cmdutil.FlagErrorf("the following arguments are required: --resource-group/-g")
	}
	var data []byte
	var err error
	if o.File == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(o.File)
	}
	if err != nil {
		return nil, cmdutil.FlagErrorf("--file: %v", err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, cmdutil.FlagErrorf("%s: not valid YAML: %v", o.File, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(js, &doc); err != nil || doc == nil {
		return nil, cmdutil.FlagErrorf("%s: the YAML must be a container group (a mapping)", o.File)
	}
	yname, _ := doc["name"].(string)
	switch {
	case o.name != "" && yname != "" && o.name != yname:
		return nil, cmdutil.FlagErrorf("the name parameter (%q) and the name in %s (%q) must match", o.name, o.File, yname)
	case yname != "":
		o.name = yname
	case o.name == "":
		return nil, cmdutil.FlagErrorf("%s has no name: give one in the YAML or with --name", o.File)
	}
	doc["name"] = o.name
	if o.Location != "" {
		if loc, _ := doc["location"].(string); loc == "" {
			doc["location"] = o.Location
		}
	}
	return doc, nil
}

// buildGroup builds the container group that the create flags describe, as
// az does, as the JSON document to PUT (no null fields). The location is
// left empty unless --location is given.
func buildGroup(o *createOptions) (map[string]any, error) {
	if err := o.target.check(); err != nil {
		return nil, err
	}
	if o.Image == "" {
		return nil, cmdutil.FlagErrorf("the following arguments are required: --image (or --file)")
	}
	var err error
	if o.RestartPolicy, err = enum("--restart-policy", o.RestartPolicy, api.RestartAlways, api.RestartOnFailure, api.RestartNever); err != nil {
		return nil, err
	}
	if o.OSType, err = enum("--os-type", o.OSType, "Linux", "Windows"); err != nil {
		return nil, err
	}
	if o.Protocol, err = enum("--protocol", o.Protocol, api.ProtocolTCP, api.ProtocolUDP); err != nil {
		return nil, err
	}
	if o.CPU <= 0 {
		return nil, cmdutil.FlagErrorf("--cpu must be more than 0, not %v", o.CPU)
	}
	if o.Memory <= 0 {
		return nil, cmdutil.FlagErrorf("--memory must be more than 0, not %v", o.Memory)
	}
	for _, p := range o.Ports {
		if p < 1 || p > 65535 {
			return nil, cmdutil.FlagErrorf("--ports: %d is not a port (1-65535)", p)
		}
	}
	ipType := ""
	if o.DNSNameLabel != "" {
		ipType = "Public"
	}
	switch strings.ToLower(o.IPAddress) {
	case "":
	case "public":
		ipType = "Public"
	case "private":
		// Reached at the group's own address on the host's container
		// network; nothing is published on the public address.
		if o.DNSNameLabel != "" {
			return nil, cmdutil.FlagErrorf("--dns-name-label needs --ip-address Public")
		}
		ipType = "Private"
	default:
		return nil, cmdutil.FlagErrorf("--ip-address: %q is not one of: Public, Private", o.IPAddress)
	}

	cp := api.ContainerProperties{
		Image:     o.Image,
		Resources: api.ResourceRequirements{Requests: api.ResourceRequests{CPU: o.CPU, MemoryInGB: o.Memory}},
	}
	if o.CommandLine != "" {
		if cp.Command, err = shlex.Split(o.CommandLine); err != nil {
			return nil, cmdutil.FlagErrorf("--command-line: %v", err)
		}
	}
	env, err := envVars("--environment-variables", o.Env, false)
	if err != nil {
		return nil, err
	}
	sec, err := envVars("--secure-environment-variables", o.SecEnv, true)
	if err != nil {
		return nil, err
	}
	if env = append(env, sec...); len(env) > 0 {
		cp.EnvironmentVariables = env
	}
	if len(o.ConfigMap) > 0 {
		_, kv, err := cmdutil.ParseKV("--config-map", o.ConfigMap, false)
		if err != nil {
			return nil, err
		}
		cp.ConfigMap = &api.ConfigMap{KeyValuePairs: kv}
	}

	props := api.ContainerGroupProperties{RestartPolicy: o.RestartPolicy, OSType: o.OSType}
	if ipType != "" {
		ip := &api.IPAddress{Type: ipType, DNSNameLabel: o.DNSNameLabel, Ports: []api.Port{}}
		for _, p := range o.Ports {
			ip.Ports = append(ip.Ports, api.Port{Protocol: o.Protocol, Port: int32(p)})
			cp.Ports = append(cp.Ports, api.ContainerPort{Protocol: o.Protocol, Port: int32(p)})
		}
		props.IPAddress = ip
	}
	if props.ImageRegistryCredentials, err = registryCreds(o); err != nil {
		return nil, err
	}
	if props.Volumes, cp.VolumeMounts, err = volumes(o); err != nil {
		return nil, err
	}
	props.Containers = []api.Container{{Name: o.name, Properties: cp}}
	cg := api.ContainerGroup{Name: o.name, Location: o.Location, Properties: props}
	return pruned(cg)
}

func enum(flag, v string, allowed ...string) (string, error) {
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a, nil
		}
	}
	return "", cmdutil.FlagErrorf("%s: %q is not one of: %s", flag, v, strings.Join(allowed, ", "))
}

func envVars(flag string, items []string, secure bool) ([]api.EnvironmentVariable, error) {
	keys, vals, err := cmdutil.ParseKV(flag, items, false)
	if err != nil {
		return nil, err
	}
	out := make([]api.EnvironmentVariable, 0, len(keys))
	for _, k := range keys {
		if secure {
			out = append(out, api.EnvironmentVariable{Name: k, SecureValue: vals[k]})
		} else {
			out = append(out, api.EnvironmentVariable{Name: k, Value: vals[k]})
		}
	}
	return out, nil
}

// registryCreds makes the image's registry credential. Without
// --registry-login-server the server is the image's registry host.
func registryCreds(o *createOptions) ([]api.ImageRegistryCredential, error) {
	if o.RegistryUsername == "" && o.RegistryPassword == "" {
		if o.RegistryServer != "" {
			return nil, cmdutil.FlagErrorf("--registry-login-server needs --registry-username and --registry-password")
		}
		return nil, nil
	}
	if o.RegistryUsername == "" || o.RegistryPassword == "" {
		return nil, cmdutil.FlagErrorf("--registry-username and --registry-password go together")
	}
	server := o.RegistryServer
	if server == "" {
		ref, err := name.ParseReference(o.Image)
		if err != nil {
			return nil, cmdutil.FlagErrorf("--image %q: %v; give --registry-login-server", o.Image, err)
		}
		server = ref.Context().RegistryStr()
	}
	return []api.ImageRegistryCredential{{Server: server, Username: o.RegistryUsername, Password: o.RegistryPassword}}, nil
}

// volumes makes the azurefile, secrets and gitrepo volumes and their
// mounts, in that order, as az does.
func volumes(o *createOptions) ([]api.Volume, []api.VolumeMount, error) {
	var vols []api.Volume
	var mounts []api.VolumeMount
	if o.AzureFileShare != "" || o.AzureFileAccount != "" || o.AzureFileKey != "" || o.AzureFileMount != "" {
		if o.AzureFileShare == "" || o.AzureFileAccount == "" || o.AzureFileMount == "" {
			return nil, nil, cmdutil.FlagErrorf("an Azure file volume needs --azure-file-volume-share-name, --azure-file-volume-account-name and --azure-file-volume-mount-path")
		}
		vols = append(vols, api.Volume{Name: VolumeAzureFile, AzureFile: &api.AzureFileVolume{
			ShareName: o.AzureFileShare, StorageAccountName: o.AzureFileAccount, StorageAccountKey: o.AzureFileKey,
		}})
		mounts = append(mounts, api.VolumeMount{Name: VolumeAzureFile, MountPath: o.AzureFileMount})
	}
	if len(o.Secrets) > 0 || o.SecretsMountPath != "" {
		if len(o.Secrets) == 0 || o.SecretsMountPath == "" {
			return nil, nil, cmdutil.FlagErrorf("a secrets volume needs both --secrets and --secrets-mount-path")
		}
		keys, vals, err := cmdutil.ParseKV("--secrets", o.Secrets, false)
		if err != nil {
			return nil, nil, err
		}
		sec := make(map[string]string, len(keys))
		for _, k := range keys {
			sec[k] = base64.StdEncoding.EncodeToString([]byte(vals[k]))
		}
		vols = append(vols, api.Volume{Name: VolumeSecrets, Secret: sec})
		mounts = append(mounts, api.VolumeMount{Name: VolumeSecrets, MountPath: o.SecretsMountPath})
	}
	if o.GitRepoURL != "" || o.GitRepoMount != "" || o.GitRepoRevision != "" {
		if o.GitRepoURL == "" || o.GitRepoMount == "" {
			return nil, nil, cmdutil.FlagErrorf("a git repo volume needs both --gitrepo-url and --gitrepo-mount-path")
		}
		vols = append(vols, api.Volume{Name: VolumeGitRepo, GitRepo: &api.GitRepoVolume{
			Repository: o.GitRepoURL, Directory: o.GitRepoDir, Revision: o.GitRepoRevision,
		}})
		mounts = append(mounts, api.VolumeMount{Name: VolumeGitRepo, MountPath: o.GitRepoMount})
	}
	return vols, mounts, nil
}

// pruned turns v into a JSON document without null fields (the wire
// types marshal empty slices as null).
func pruned(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	prune(doc)
	return doc, nil
}

func prune(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if e == nil {
				delete(t, k)
			} else {
				prune(e)
			}
		}
	case []any:
		for _, e := range t {
			prune(e)
		}
	}
}
