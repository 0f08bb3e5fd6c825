package api

import (
	"encoding/base64"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Limits ValidateContainerGroup enforces. The counts are ACI's hard limits
// and the group maxima its Standard SKU's (aci-api.md §1.7). ACI documents
// no per-container maxima; the container ones are the size ACI guarantees
// regardless of regional capacity.
const (
	MaxContainersPerGroup  = 60 // app and init containers together
	MaxVolumesPerGroup     = 20
	MaxIPAddressPorts      = 5
	MaxContainerCPU        = 4.0
	MaxContainerMemoryInGB = 16.0
	MaxGroupCPU            = 31.0
	MaxGroupMemoryInGB     = 240.0
)

// Bounds on the size of a spec. ARM's own are the tag limits; the others
// keep a hostile body from making the server or the runtime do unbounded
// work, and refuse up front what execve(2) would refuse at start: one
// argument or "NAME=value" string is at most MAX_ARG_STRLEN (128 KiB with
// its NUL), and arguments and environment together stay well below the
// default ARG_MAX (2 MiB).
const (
	MaxTags                 = 50  // per resource, as ARM
	MaxTagNameLength        = 512 // characters, as ARM
	MaxTagValueLength       = 256 // characters, as ARM
	MaxContainerPorts       = 100
	MaxVolumeMounts         = 100
	MaxEnvironmentVariables = 1000
	MaxCommandArgs          = 1000
	MaxArgBytes             = 128<<10 - 1
	MaxCommandAndEnvBytes   = 1 << 20
)

// Kinds of name that ValidateName checks.
const (
	KindResourceGroup  = "resourceGroup"
	KindContainerGroup = "containerGroup"
	KindContainer      = "container"
	KindVolume         = "volume"
)

// maxSecretVolumeBytes caps the decoded size of one secret volume, as the
// runtime does.
const maxSecretVolumeBytes = 1 << 20

var (
	// lowerNameRE: container group, container and volume names.
	lowerNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// dnsLabelRE: 5-63 characters, starting with a letter.
	dnsLabelRE = regexp.MustCompile(`^[a-z][a-z0-9-]{3,61}[a-z0-9]$`)
	// secretKeyRE: secret volume keys become file names.
	secretKeyRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,255}$`)
)

func invalid(code, format string, a ...any) error {
	return errdefs.WithCode(errdefs.ErrInvalidArgument, code, format, a...)
}

// num formats a quantity as ARM prints it: shortest form, at most 6
// decimals (so sums do not show float noise).
func num(f float64) string {
	return strconv.FormatFloat(math.Round(f*1e6)/1e6, 'f', -1, 64)
}

// ValidateName checks a name of the given kind (KindResourceGroup,
// KindContainerGroup, KindContainer or KindVolume).
//
// Container group, container and volume names are 1-63 lowercase letters,
// digits and '-', neither starting nor ending with '-'; volume names may not
// contain "--". Resource group names follow ARM: 1-90 letters, digits, '_',
// '-', '.', '(' and ')', not ending with '.'.
//
// Errors are of class errdefs.ErrInvalidArgument with code
// InvalidResourceGroupName, InvalidContainerGroupName, InvalidContainerName
// or InvalidVolumeName.
func ValidateName(kind, name string) error {
	switch kind {
	case KindResourceGroup:
		if !validResourceGroupName(name) {
			return invalid("InvalidResourceGroupName",
				"The resource group name '%s' is invalid. It must be 1 to 90 characters of letters, digits, '_', '-', '.', '(' and ')', and must not end with '.'.",
				name)
		}
	case KindContainerGroup:
		if !lowerNameRE.MatchString(name) {
			return invalid("InvalidContainerGroupName",
				"The container group name '%s' is invalid. A container group name must be 1 to 63 characters of lowercase letters, digits or '-', and must start and end with a letter or digit.",
				name)
		}
	case KindContainer:
		return checkContainerName("", name)
	case KindVolume:
		return checkVolumeName("", name)
	default:
		return fmt.Errorf("api: unknown name kind %q: %w", kind, errdefs.ErrInvalidArgument)
	}
	return nil
}

// mixedCaseNamesBefore is the first api-version that refuses container
// group names with upper-case letters: ACI's 2017 and 2018 previews took
// them (seed 000's templates name "myContainerGroup"), as ARM's names fold
// case; later versions allow lower case only.
const mixedCaseNamesBefore = "2018-10-01"

// ValidateContainerGroupName checks a container group's name for the
// api-version of the request: before mixedCaseNamesBefore upper-case
// letters are allowed (the name then folds case, as every ARM name does).
func ValidateContainerGroupName(name, apiVersion string) error {
	if apiVersion != "" && apiVersion < mixedCaseNamesBefore && lowerNameRE.MatchString(strings.ToLower(name)) {
		return nil
	}
	return ValidateName(KindContainerGroup, name)
}

func validResourceGroupName(name string) bool {
	n := utf8.RuneCountInString(name)
	if n < 1 || n > 90 || !utf8.ValidString(name) || strings.HasSuffix(name, ".") {
		return false
	}
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("_-.()", r) {
			return false
		}
	}
	return true
}

// inGroup is the " in container group 'g'" suffix of messages, or "" when
// the group is not known.
func inGroup(g string) string {
	if g == "" {
		return ""
	}
	return " in container group '" + g + "'"
}

func checkContainerName(group, name string) error {
	if !lowerNameRE.MatchString(name) {
		return invalid("InvalidContainerName",
			"The container name '%s'%s is invalid. A container name must be 1 to 63 characters of lowercase letters, digits or '-', and must start and end with a letter or digit.",
			name, inGroup(group))
	}
	return nil
}

func checkVolumeName(group, name string) error {
	if !lowerNameRE.MatchString(name) || strings.Contains(name, "--") {
		return invalid("InvalidVolumeName",
			"The volume name '%s'%s is invalid. A volume name must be 1 to 63 characters of lowercase letters, digits or '-', must start and end with a letter or digit, and must not contain '--'.",
			name, inGroup(group))
	}
	return nil
}

// ValidateResourceGroup checks the body of a resource group PUT: the name,
// when set, the location, which is required (code LocationRequired), and
// the tags (see ValidateTags).
func ValidateResourceGroup(rg *ResourceGroup) error {
	if rg == nil || strings.TrimSpace(rg.Location) == "" {
		return invalid("LocationRequired", "The location property is required for this definition.")
	}
	if err := ValidateTags(rg.Tags); err != nil {
		return err
	}
	if rg.Name != "" {
		return ValidateName(KindResourceGroup, rg.Name)
	}
	return nil
}

// ValidateTags checks a resource's tags against ARM's limits: at most
// MaxTags, names of 1 to MaxTagNameLength characters without '<', '>', '%',
// '&', '\', '?' or '/', values of at most MaxTagValueLength characters.
// Errors have code InvalidTag (InvalidTagNameCharacters for a forbidden
// character) and class errdefs.ErrInvalidArgument.
func ValidateTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return invalid("InvalidTag", "The number of tags '%d' exceeds the maximum of %d.", len(tags), MaxTags)
	}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		switch n := utf8.RuneCountInString(k); {
		case strings.TrimSpace(k) == "":
			return invalid("InvalidTag", "A tag name must not be empty.")
		case n > MaxTagNameLength:
			return invalid("InvalidTag", "The tag name '%s...' has %d characters, more than the maximum of %d.",
				truncate(k, 40), n, MaxTagNameLength)
		case strings.ContainsAny(k, `<>%&\?/`):
			return invalid("InvalidTagNameCharacters",
				"The tag name '%s' has characters that are not allowed: '<', '>', '%%', '&', '\\', '?' or '/'.", truncate(k, 40))
		}
		if n := utf8.RuneCountInString(tags[k]); n > MaxTagValueLength {
			return invalid("InvalidTag", "The value of tag '%s' has %d characters, more than the maximum of %d.",
				truncate(k, 40), n, MaxTagValueLength)
		}
	}
	return nil
}

// truncate shortens s to at most n runes for a message.
func truncate(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// checkSizes bounds what a container would hand to execve and the runtime:
// its command, probe commands, environment, ports and volume mounts.
func checkSizes(g, kind, c string, cmd []string, probes []*Probe, env []EnvironmentVariable, ports, mounts int) error {
	where := fmt.Sprintf("%s '%s' in container group '%s'", kind, c, g)
	if err := checkArgv("command", where, cmd); err != nil {
		return err
	}
	for _, pr := range probes {
		if pr != nil && pr.Exec != nil {
			if err := checkArgv("probe command", where, pr.Exec.Command); err != nil {
				return err
			}
		}
	}
	if len(env) > MaxEnvironmentVariables {
		return invalid("TooManyEnvironmentVariables",
			"The number of environment variables '%d' of %s exceeds the maximum '%d'.", len(env), where, MaxEnvironmentVariables)
	}
	total := 0
	for _, a := range cmd {
		total += len(a) + 1
	}
	for _, e := range env {
		n := len(e.Name) + 1 + len(e.Value) + len(e.SecureValue)
		if n > MaxArgBytes {
			// Never echo the value: it may be a secret.
			return invalid("InvalidEnvironmentVariable",
				"The environment variable '%s' of %s is %d bytes long; name and value together must be at most %d bytes.",
				truncate(e.Name, 40), where, n, MaxArgBytes)
		}
		total += n + 1
	}
	if total > MaxCommandAndEnvBytes {
		return invalid("CommandAndEnvironmentTooLarge",
			"The command and environment variables of %s are %d bytes together; the maximum is %d.", where, total, MaxCommandAndEnvBytes)
	}
	if ports > MaxContainerPorts {
		return invalid("TooManyContainerPorts", "The number of ports '%d' of %s exceeds the maximum '%d'.", ports, where, MaxContainerPorts)
	}
	if mounts > MaxVolumeMounts {
		return invalid("TooManyVolumeMounts", "The number of volume mounts '%d' of %s exceeds the maximum '%d'.", mounts, where, MaxVolumeMounts)
	}
	return nil
}

// checkArgv bounds an argument vector: at most MaxCommandArgs arguments of
// at most MaxArgBytes each.
func checkArgv(what, where string, argv []string) error {
	if len(argv) > MaxCommandArgs {
		return invalid("TooManyCommandArguments",
			"The %s of %s has %d arguments; the maximum is %d.", what, where, len(argv), MaxCommandArgs)
	}
	for i, a := range argv {
		if len(a) > MaxArgBytes {
			return invalid("CommandArgumentTooLong",
				"Argument %d of the %s of %s is %d bytes long; the maximum is %d.", i, what, where, len(a), MaxArgBytes)
		}
	}
	return nil
}

// ValidateContainerGroup checks a container group against ACI's rules and
// returns the first violation, as an errdefs.Coded error whose message names
// the offending container, volume or field. Callers should set cg.Name (from
// the URL) first; it is checked when set and named in messages.
//
// Values SetDefaults fills in (restartPolicy, osType, sku, port protocols)
// may be empty; enum values match case-insensitively. All errors are of
// class errdefs.ErrInvalidArgument except osType Windows and the
// Dedicated/Confidential SKUs, which are errdefs.ErrNotImplemented.
func ValidateContainerGroup(cg *ContainerGroup) error {
	if cg == nil {
		return invalid(codeInvalidRequestContent, "The request content was invalid: the container group is empty.")
	}
	g := cg.Name
	if g != "" {
		// The case rule depends on the api-version (ValidateContainerGroupName,
		// at the route); the rest of the name's shape does not.
		if err := ValidateName(KindContainerGroup, strings.ToLower(g)); err != nil {
			return err
		}
	}
	if strings.TrimSpace(cg.Location) == "" {
		return invalid("LocationRequired", "The location property is required for container group '%s'.", g)
	}
	if err := ValidateTags(cg.Tags); err != nil {
		return err
	}
	p := &cg.Properties
	if err := checkGroupEnums(g, p); err != nil {
		return err
	}
	if len(p.Containers) == 0 {
		return invalid("MissingContainers", "The container group '%s' must have at least one container.", g)
	}
	if n := len(p.Containers) + len(p.InitContainers); n > MaxContainersPerGroup {
		return invalid("TooManyContainers",
			"The number of containers '%d' (including init containers) in container group '%s' exceeds the maximum '%d'.",
			n, g, MaxContainersPerGroup)
	}
	if n := len(p.Volumes); n > MaxVolumesPerGroup {
		return invalid("TooManyVolumes", "The number of volumes '%d' in container group '%s' exceeds the maximum '%d'.",
			n, g, MaxVolumesPerGroup)
	}
	vols := make(map[string]bool, len(p.Volumes))
	for i := range p.Volumes {
		v := &p.Volumes[i]
		if err := checkVolume(g, v); err != nil {
			return err
		}
		if vols[v.Name] {
			return invalid("DuplicateVolumeName", "The volume name '%s' is used more than once in container group '%s'.", v.Name, g)
		}
		vols[v.Name] = true
	}

	names := make(map[string]bool, len(p.Containers)+len(p.InitContainers))
	unique := func(n string) error {
		if err := checkContainerName(g, n); err != nil {
			return err
		}
		if names[n] {
			return invalid("DuplicateContainerName",
				"The container name '%s' is used more than once in container group '%s'. Container and init container names must be unique.", n, g)
		}
		names[n] = true
		return nil
	}
	var totalCPU, totalMem float64
	for i := range p.Containers {
		c := &p.Containers[i]
		if err := unique(c.Name); err != nil {
			return err
		}
		cp := &c.Properties
		if err := checkSizes(g, "container", c.Name, cp.Command, []*Probe{cp.LivenessProbe, cp.ReadinessProbe, cp.StartupProbe},
			cp.EnvironmentVariables, len(cp.Ports), len(cp.VolumeMounts)); err != nil {
			return err
		}
		if err := checkContainer(g, c, vols); err != nil {
			return err
		}
		totalCPU += c.Properties.Resources.Requests.CPU
		totalMem += c.Properties.Resources.Requests.MemoryInGB
	}
	for i := range p.InitContainers {
		c := &p.InitContainers[i]
		if err := unique(c.Name); err != nil {
			return err
		}
		cp := &c.Properties
		if err := checkSizes(g, "init container", c.Name, cp.Command, nil, cp.EnvironmentVariables, 0, len(cp.VolumeMounts)); err != nil {
			return err
		}
		if err := checkCommon(g, "init container", c.Name, cp.Image, cp.EnvironmentVariables, cp.VolumeMounts, vols); err != nil {
			return err
		}
	}
	if err := checkGroupResources(g, p.Containers, totalCPU, totalMem); err != nil {
		return err
	}
	if err := checkIPAddress(g, p.IPAddress, p.Containers); err != nil {
		return err
	}
	if err := checkHostAliases(g, p.HostAliases); err != nil {
		return err
	}
	for i, rc := range p.ImageRegistryCredentials {
		if rc.Server == "" {
			return invalid("InvalidImageRegistryCredential",
				"The 'server' of image registry credential '%d' in container group '%s' is required.", i, g)
		}
		if strings.Contains(rc.Server, "://") || strings.ContainsAny(rc.Server, "/ \t\r\n") {
			return invalid("InvalidImageRegistryCredential",
				"The image registry server '%s' in container group '%s' is invalid. It must be a host name, with an optional port, without a scheme such as 'https://'.",
				rc.Server, g)
		}
	}
	if d := p.DNSConfig; d != nil {
		if len(d.NameServers) == 0 {
			return invalid("InvalidDnsConfig", "The 'nameServers' of the DNS configuration of container group '%s' are required.", g)
		}
		for _, ns := range d.NameServers {
			if _, err := netip.ParseAddr(ns); err != nil {
				return invalid("InvalidDnsConfig",
					"The name server '%s' in the DNS configuration of container group '%s' is not an IP address.", ns, g)
			}
		}
	}
	return nil
}

func checkGroupEnums(g string, p *ContainerGroupProperties) error {
	switch {
	case p.OSType == "" || strings.EqualFold(p.OSType, "Linux"):
	case strings.EqualFold(p.OSType, "Windows"):
		return errdefs.WithCode(errdefs.ErrNotImplemented, "OsTypeNotSupported",
			"The 'osType' 'Windows' of container group '%s' is not supported: Windows containers are not supported on this host.", g)
	default:
		return invalid("InvalidOsType", "The 'osType' '%s' for container group '%s' is invalid. The value must be one of 'Windows,Linux'.", p.OSType, g)
	}
	switch {
	case p.SKU == "" || strings.EqualFold(p.SKU, "Standard") || strings.EqualFold(p.SKU, "NotSpecified"):
	case strings.EqualFold(p.SKU, "Dedicated") || strings.EqualFold(p.SKU, "Confidential"):
		return errdefs.WithCode(errdefs.ErrNotImplemented, "SkuNotSupported",
			"The sku '%s' of container group '%s' is not supported on this host. The supported sku is 'Standard'.", p.SKU, g)
	default:
		return invalid("InvalidSku", "The sku '%s' of container group '%s' is invalid. The value must be one of 'Standard,Dedicated,Confidential'.", p.SKU, g)
	}
	if p.RestartPolicy != "" && canon(p.RestartPolicy, RestartAlways, RestartOnFailure, RestartNever) == "" {
		return invalid("InvalidRestartPolicy",
			"The restart policy '%s' of container group '%s' is invalid. The value must be one of 'Always,OnFailure,Never'.", p.RestartPolicy, g)
	}
	return nil
}

// canon returns the allowed value v equals case-insensitively, or "".
func canon(v string, allowed ...string) string {
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a
		}
	}
	return ""
}

func checkVolume(g string, v *Volume) error {
	if err := checkVolumeName(g, v.Name); err != nil {
		return err
	}
	sources := 0
	for _, set := range []bool{v.AzureFile != nil, v.EmptyDir != nil, v.Secret != nil, v.GitRepo != nil} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return invalid("InvalidVolume",
			"The volume '%s' in container group '%s' must have exactly one of 'azureFile', 'emptyDir', 'secret' or 'gitRepo'; it has %d.",
			v.Name, g, sources)
	}
	switch {
	case v.EmptyDir != nil:
		if err := v.EmptyDir.CheckMedium(); err != nil {
			return invalid("InvalidEmptyDirVolume", "The 'medium' of empty dir volume '%s' in container group '%s' is invalid: %v.", v.Name, g, err)
		}
		if _, err := v.EmptyDir.SizeLimitBytes(); err != nil {
			return invalid("InvalidEmptyDirVolume", "The 'sizeLimit' of empty dir volume '%s' in container group '%s' is invalid: %v.", v.Name, g, err)
		}
	case v.Secret != nil:
		total := 0
		for _, k := range slices.Sorted(maps.Keys(v.Secret)) {
			val := v.Secret[k]
			if !secretKeyRE.MatchString(k) || k == "." || k == ".." {
				return invalid("InvalidSecretVolume",
					"The key '%s' of secret volume '%s' in container group '%s' is invalid. A key must be a file name of letters, digits, '.', '_' or '-'.",
					k, v.Name, g)
			}
			data, err := base64.StdEncoding.DecodeString(val)
			total += len(data)
			clear(data)
			if err != nil {
				// Never echo the value.
				return invalid("InvalidSecretVolume",
					"The value of key '%s' of secret volume '%s' in container group '%s' is not valid base64.", k, v.Name, g)
			}
		}
		if total > maxSecretVolumeBytes {
			return invalid("InvalidSecretVolume",
				"The secret volume '%s' in container group '%s' exceeds the maximum of %d decoded bytes.", v.Name, g, maxSecretVolumeBytes)
		}
	case v.GitRepo != nil:
		r := v.GitRepo
		if problem := GitRepositoryProblem(r.Repository); problem != "" {
			return invalid("InvalidGitRepoVolume",
				"The 'repository' of git repo volume '%s' in container group '%s' %s.", v.Name, g, problem)
		}
		if r.Directory != "" && (path.IsAbs(r.Directory) || hasDotDot(r.Directory)) {
			return invalid("InvalidGitRepoVolume",
				"The 'directory' '%s' of git repo volume '%s' in container group '%s' is invalid. It must be a relative path without '..'.",
				r.Directory, v.Name, g)
		}
	case v.AzureFile != nil:
		if v.AzureFile.ShareName == "" || v.AzureFile.StorageAccountName == "" {
			return invalid("InvalidAzureFileVolume",
				"The 'shareName' and 'storageAccountName' of azure file volume '%s' in container group '%s' are required.", v.Name, g)
		}
	}
	return nil
}

func hasDotDot(p string) bool {
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return true
		}
	}
	return false
}

// checkCommon checks what app and init containers share: image,
// environment variables and volume mounts.
func checkCommon(g, kind, c, image string, env []EnvironmentVariable, mounts []VolumeMount, vols map[string]bool) error {
	if image == "" {
		return invalid("MissingContainerImage", "The image of %s '%s' in container group '%s' is required.", kind, c, g)
	}
	if _, err := name.ParseReference(image); err != nil {
		return invalid("InvalidContainerImage", "The image '%s' of %s '%s' in container group '%s' is not a valid image reference.", image, kind, c, g)
	}
	seen := make(map[string]bool, len(env))
	for i, e := range env {
		switch {
		case e.Name == "":
			return invalid("InvalidEnvironmentVariable",
				"The environment variable at index '%d' of %s '%s' in container group '%s' has no name.", i, kind, c, g)
		case strings.ContainsAny(e.Name, "=\x00"):
			return invalid("InvalidEnvironmentVariable",
				"The environment variable name '%s' of %s '%s' in container group '%s' is invalid. It must not contain '=' or NUL.", e.Name, kind, c, g)
		case seen[e.Name]:
			return invalid("DuplicateEnvironmentVariableName",
				"The environment variable '%s' is defined more than once in %s '%s' of container group '%s'.", e.Name, kind, c, g)
		case e.Value != "" && e.SecureValue != "":
			return invalid("InvalidEnvironmentVariable",
				"The environment variable '%s' of %s '%s' in container group '%s' must set only one of 'value' and 'secureValue'.", e.Name, kind, c, g)
		}
		seen[e.Name] = true
	}
	paths := make(map[string]bool, len(mounts))
	for _, m := range mounts {
		if !vols[m.Name] {
			return invalid("InvalidVolumeMount",
				"The volume mount '%s' of %s '%s' in container group '%s' refers to a volume the container group does not define.", m.Name, kind, c, g)
		}
		mp := m.MountPath
		if !path.IsAbs(mp) || path.Clean(mp) == "/" || strings.ContainsAny(mp, ":\x00") || hasDotDot(mp) {
			return invalid("InvalidVolumeMount",
				"The mount path '%s' of volume mount '%s' of %s '%s' in container group '%s' is invalid. It must be an absolute path other than '/', without ':' or '..'.",
				mp, m.Name, kind, c, g)
		}
		if paths[path.Clean(mp)] {
			return invalid("InvalidVolumeMount",
				"The mount path '%s' is used by more than one volume mount of %s '%s' in container group '%s'.", mp, kind, c, g)
		}
		paths[path.Clean(mp)] = true
	}
	return nil
}

func checkContainer(g string, c *Container, vols map[string]bool) error {
	cp := &c.Properties
	if err := checkCommon(g, "container", c.Name, cp.Image, cp.EnvironmentVariables, cp.VolumeMounts, vols); err != nil {
		return err
	}
	if err := checkResources(g, c.Name, &cp.Resources); err != nil {
		return err
	}
	where := fmt.Sprintf("container '%s' of container group '%s'", c.Name, g)
	for _, pt := range cp.Ports {
		if err := checkPort(where, pt.Port, pt.Protocol); err != nil {
			return err
		}
	}
	if err := checkProbe(g, c.Name, "livenessProbe", cp.LivenessProbe); err != nil {
		return err
	}
	if err := checkProbe(g, c.Name, "readinessProbe", cp.ReadinessProbe); err != nil {
		return err
	}
	if err := checkProbe(g, c.Name, "startupProbe", cp.StartupProbe); err != nil {
		return err
	}
	if l := cp.Lifecycle; l != nil {
		for _, h := range []struct {
			name string
			h    *LifecycleHandler
		}{{"lifecycle.postStart", l.PostStart}, {"lifecycle.preStop", l.PreStop}} {
			if h.h == nil {
				continue
			}
			if (h.h.Exec == nil) == (h.h.HTTPGet == nil) {
				return invalid("InvalidLifecycleHook", "The %s hook of container '%s' in container group '%s' is invalid: exactly one of 'exec' and 'httpGet' must be set.", h.name, c.Name, g)
			}
			if err := checkProbe(g, c.Name, h.name, &Probe{Exec: h.h.Exec, HTTPGet: h.h.HTTPGet}); err != nil {
				return err
			}
		}
	}
	if sp := cp.StartupProbe; sp != nil && sp.SuccessThreshold > 1 {
		return invalid("InvalidProbe", "The startupProbe of container '%s' in container group '%s' is invalid: its 'successThreshold' must be 1.", c.Name, g)
	}
	return checkConfigMap(g, c)
}

// maxConfigMapBytes caps the size of one container's config map values.
const maxConfigMapBytes = 1 << 20

// checkConfigMap checks that c's config map keys are file names, that its
// values fit, and that no volume is mounted over its directory.
func checkConfigMap(g string, c *Container) error {
	cm := c.Properties.ConfigMap
	if cm == nil {
		return nil
	}
	total := 0
	for _, k := range slices.Sorted(maps.Keys(cm.KeyValuePairs)) {
		if !secretKeyRE.MatchString(k) || k == "." || k == ".." {
			return invalid("InvalidConfigMap",
				"The key '%s' of the config map of container '%s' in container group '%s' is invalid. A key must be a file name of letters, digits, '.', '_' or '-'.",
				k, c.Name, g)
		}
		total += len(k) + len(cm.KeyValuePairs[k])
	}
	if total > maxConfigMapBytes {
		return invalid("InvalidConfigMap",
			"The config map of container '%s' in container group '%s' exceeds the maximum of %d bytes.", c.Name, g, maxConfigMapBytes)
	}
	dir := path.Join(ConfigMapDir, c.Name)
	for _, m := range c.Properties.VolumeMounts {
		if mp := path.Clean(m.MountPath); mp == dir || strings.HasPrefix(mp, dir+"/") {
			return invalid("InvalidVolumeMount",
				"The mount path '%s' of volume mount '%s' of container '%s' in container group '%s' is where its config map is mounted (%s).",
				m.MountPath, m.Name, c.Name, g, dir)
		}
	}
	return nil
}

// positive reports whether f is a finite number above zero.
func positive(f float64) bool { return f > 0 && !math.IsInf(f, 1) }

// tenths reports whether f is a multiple of 0.1.
func tenths(f float64) bool { return math.Abs(f*10-math.Round(f*10)) < 1e-6 }

func checkResources(g, c string, r *ResourceRequirements) error {
	req := r.Requests
	if req.CPU == 0 || req.MemoryInGB == 0 {
		return invalid("ResourceRequestsNotSpecified",
			"The resource requests are not specified in container '%s' of container group '%s'. Both memory and CPU requests are required.", c, g)
	}
	if !positive(req.CPU) {
		return invalid("InvalidResourceRequests",
			"The 'Cpu' request '%s' of container '%s' in container group '%s' is invalid. It must be a positive number.", num(req.CPU), c, g)
	}
	if !positive(req.MemoryInGB) || !tenths(req.MemoryInGB) {
		return invalid("InvalidResourceRequests",
			"The 'MemoryInGB' request '%s' of container '%s' in container group '%s' is invalid. It must be a positive multiple of 0.1.",
			num(req.MemoryInGB), c, g)
	}
	if req.CPU > MaxContainerCPU {
		return invalid("ResourceRequestsExceedMaximum",
			"The 'Cpu' request '%s' of container '%s' in container group '%s' exceeds the maximum '%s' per container.",
			num(req.CPU), c, g, num(MaxContainerCPU))
	}
	if req.MemoryInGB > MaxContainerMemoryInGB {
		return invalid("ResourceRequestsExceedMaximum",
			"The 'MemoryInGB' request '%s' of container '%s' in container group '%s' exceeds the maximum '%s' per container.",
			num(req.MemoryInGB), c, g, num(MaxContainerMemoryInGB))
	}
	l := r.Limits
	if l == nil {
		return nil
	}
	if l.CPU < 0 || math.IsNaN(l.CPU) || math.IsInf(l.CPU, 0) {
		return invalid("InvalidResourceLimits",
			"The 'Cpu' limit '%s' of container '%s' in container group '%s' is invalid. It must be a positive number.", num(l.CPU), c, g)
	}
	if l.MemoryInGB < 0 || math.IsNaN(l.MemoryInGB) || math.IsInf(l.MemoryInGB, 0) || !tenths(l.MemoryInGB) {
		return invalid("InvalidResourceLimits",
			"The 'MemoryInGB' limit '%s' of container '%s' in container group '%s' is invalid. It must be a positive multiple of 0.1.",
			num(l.MemoryInGB), c, g)
	}
	if l.CPU > 0 && l.CPU < req.CPU {
		return invalid("InvalidResourceLimits",
			"The 'Cpu' limit '%s' of container '%s' in container group '%s' is less than its request '%s'.", num(l.CPU), c, g, num(req.CPU))
	}
	if l.MemoryInGB > 0 && l.MemoryInGB < req.MemoryInGB {
		return invalid("InvalidResourceLimits",
			"The 'MemoryInGB' limit '%s' of container '%s' in container group '%s' is less than its request '%s'.",
			num(l.MemoryInGB), c, g, num(req.MemoryInGB))
	}
	return nil
}

// checkGroupResources checks the group's total requests against the group
// maxima and each container's limits against the totals.
func checkGroupResources(g string, cs []Container, cpu, mem float64) error {
	const eps = 1e-9
	if cpu > MaxGroupCPU+eps {
		return invalid("ResourceRequestsExceedMaximum",
			"The total 'Cpu' request '%s' of container group '%s' exceeds the maximum '%s'.", num(cpu), g, num(MaxGroupCPU))
	}
	if mem > MaxGroupMemoryInGB+eps {
		return invalid("ResourceRequestsExceedMaximum",
			"The total 'MemoryInGB' request '%s' of container group '%s' exceeds the maximum '%s'.", num(mem), g, num(MaxGroupMemoryInGB))
	}
	for _, c := range cs {
		l := c.Properties.Resources.Limits
		if l == nil {
			continue
		}
		if l.CPU > cpu+eps {
			return invalid("ContainerLimitGreaterThanContainerGroupTotalRequest",
				"The 'Cpu' limit '%s' in container '%s' is greater than the total request '%s' of container group '%s'.",
				num(l.CPU), c.Name, num(cpu), g)
		}
		if l.MemoryInGB > mem+eps {
			return invalid("ContainerLimitGreaterThanContainerGroupTotalRequest",
				"The 'MemoryInGB' limit '%s' in container '%s' is greater than the total request '%s' of container group '%s'.",
				num(l.MemoryInGB), c.Name, num(mem), g)
		}
	}
	return nil
}

// checkPort checks a port number and protocol; where names its place.
func checkPort(where string, port int32, protocol string) error {
	if port < 1 || port > 65535 {
		return invalid("InvalidPort", "The port '%d' in %s is invalid. A port must be between 1 and 65535.", port, where)
	}
	if protocol != "" && canon(protocol, ProtocolTCP, ProtocolUDP) == "" {
		return invalid("InvalidPortProtocol",
			"The protocol '%s' of port '%d' in %s is invalid. The value must be one of 'TCP,UDP'.", protocol, port, where)
	}
	return nil
}

// protocolOf returns the canonical protocol, TCP when empty.
func protocolOf(p string) string {
	if c := canon(p, ProtocolTCP, ProtocolUDP); c != "" {
		return c
	}
	if p == "" {
		return ProtocolTCP
	}
	return p
}

// countSet counts the true values.
func countSet(vs ...bool) int {
	n := 0
	for _, v := range vs {
		if v {
			n++
		}
	}
	return n
}

func checkProbe(g, c, which string, pr *Probe) error {
	if pr == nil {
		return nil
	}
	bad := func(format string, a ...any) error {
		return invalid("InvalidProbe", "The %s of container '%s' in container group '%s' is invalid: %s.",
			which, c, g, fmt.Sprintf(format, a...))
	}
	switch {
	case countSet(pr.Exec != nil, pr.HTTPGet != nil, pr.TCPSocket != nil) != 1:
		return bad("exactly one of 'exec', 'httpGet' and 'tcpSocket' must be set")
	case pr.TCPSocket != nil && (pr.TCPSocket.Port < 1 || pr.TCPSocket.Port > 65535):
		return bad("the 'tcpSocket' port '%d' must be between 1 and 65535", pr.TCPSocket.Port)
	case pr.Exec != nil && len(pr.Exec.Command) == 0:
		return bad("the 'exec' command is empty")
	case pr.HTTPGet != nil:
		h := pr.HTTPGet
		if h.Port < 1 || h.Port > 65535 {
			return bad("the 'httpGet' port '%d' must be between 1 and 65535", h.Port)
		}
		if h.Scheme != "" && canon(h.Scheme, "http", "https") == "" {
			return bad("the 'httpGet' scheme '%s' must be one of 'http,https'", h.Scheme)
		}
		if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
			return bad("the 'httpGet' path '%s' must start with '/'", h.Path)
		}
		for _, hd := range h.HTTPHeaders {
			if hd.Name == "" || strings.ContainsAny(hd.Name, ": \t\r\n") || strings.ContainsAny(hd.Value, "\r\n") {
				return bad("the 'httpGet' header '%s' is invalid", hd.Name)
			}
		}
	}
	for _, f := range []struct {
		name string
		v    int32
	}{
		{"initialDelaySeconds", pr.InitialDelaySeconds},
		{"periodSeconds", pr.PeriodSeconds},
		{"failureThreshold", pr.FailureThreshold},
		{"successThreshold", pr.SuccessThreshold},
		{"timeoutSeconds", pr.TimeoutSeconds},
	} {
		if f.v < 0 {
			return bad("'%s' must not be negative", f.name)
		}
	}
	return nil
}

// hostnameRE: a name for /etc/hosts (RFC 1123 labels, dots between).
var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// checkHostAliases refuses hostAliases that are not an address and host
// names each: nothing else gets into a container's /etc/hosts.
func checkHostAliases(g string, aliases []HostAlias) error {
	if len(aliases) > MaxHostAliases {
		return invalid("InvalidHostAliases", "Container group '%s' has %d hostAliases, more than the maximum of %d.", g, len(aliases), MaxHostAliases)
	}
	for i, a := range aliases {
		if _, err := netip.ParseAddr(a.IP); err != nil {
			return invalid("InvalidHostAliases", "The hostAliases[%d] ip '%s' of container group '%s' is not an IP address.", i, a.IP, g)
		}
		if len(a.Hostnames) == 0 {
			return invalid("InvalidHostAliases", "The hostAliases[%d] of container group '%s' has no hostnames.", i, g)
		}
		for _, h := range a.Hostnames {
			if len(h) > 253 || !hostnameRE.MatchString(h) {
				return invalid("InvalidHostAliases", "The hostAliases[%d] hostname '%s' of container group '%s' is not a host name.", i, h, g)
			}
		}
	}
	return nil
}

func checkIPAddress(g string, ip *IPAddress, cs []Container) error {
	if ip == nil {
		return nil
	}
	if canon(ip.Type, "Public", "Private") == "" {
		return invalid("InvalidIpAddressType",
			"The IP address type '%s' of container group '%s' is invalid. The value must be one of 'Public,Private'.", ip.Type, g)
	}
	private := ip.IsPrivate()
	if private && ip.DNSNameLabel != "" {
		return invalid("DnsNameLabelNotSupported",
			"The DNS name label '%s' of container group '%s' needs an IP address of type 'Public'.", ip.DNSNameLabel, g)
	}
	// A Private address is reachable on every port from the host's
	// container network, so its port list may be empty (Skiff extension).
	if len(ip.Ports) == 0 && !private {
		return invalid("MissingIpAddressPorts", "The ports in the 'ipAddress' of container group '%s' cannot be empty.", g)
	}
	if len(ip.Ports) > MaxIPAddressPorts {
		return invalid("TooManyIpAddressPorts",
			"The number of ports '%d' in the 'ipAddress' of container group '%s' exceeds the maximum '%d'.", len(ip.Ports), g, MaxIPAddressPorts)
	}
	type key struct {
		port  int32
		proto string
	}
	exposed := map[key]bool{}
	for _, c := range cs {
		for _, pt := range c.Properties.Ports {
			exposed[key{pt.Port, protocolOf(pt.Protocol)}] = true
		}
	}
	seen := map[key]bool{}
	where := fmt.Sprintf("the 'ipAddress' of container group '%s'", g)
	for _, pt := range ip.Ports {
		if err := checkPort(where, pt.Port, pt.Protocol); err != nil {
			return err
		}
		k := key{pt.Port, protocolOf(pt.Protocol)}
		if seen[k] {
			return invalid("DuplicateIpAddressPort", "The port '%d' (%s) appears more than once in %s.", k.port, k.proto, where)
		}
		seen[k] = true
		if !exposed[k] {
			return invalid("InvalidIpAddressPorts",
				"The port '%d' (%s) in %s is not exposed by any of its containers. Add it to the 'ports' of a container.", k.port, k.proto, where)
		}
	}
	if ip.DNSNameLabel != "" && !dnsLabelRE.MatchString(ip.DNSNameLabel) {
		return invalid("InvalidDnsNameLabel",
			"The DNS name label '%s' of container group '%s' is invalid. It must be 5 to 63 characters of lowercase letters, digits or '-', start with a letter and end with a letter or digit.",
			ip.DNSNameLabel, g)
	}
	if sc := ip.AutoGeneratedDomainNameLabelScope; sc != "" && canon(sc, labelScopes...) == "" {
		return invalid("InvalidAutoGeneratedDomainNameLabelScope",
			"The autoGeneratedDomainNameLabelScope '%s' of container group '%s' is invalid. It must be one of: %s.",
			sc, g, strings.Join(labelScopes, ", "))
	}
	if sc := ip.AutoGeneratedDomainNameLabelScope; ip.DNSNameLabel != "" && sc != "" && sc != LabelScopeUnsecure && len(ip.DNSNameLabel) > maxHashedLabel {
		return invalid("InvalidDnsNameLabel",
			"The DNS name label '%s' of container group '%s' is too long for the scope '%s': a hash of %d characters follows it, so it may have at most %d.",
			ip.DNSNameLabel, g, sc, labelHashLen, maxHashedLabel)
	}
	return nil
}

// ValidateUpdate checks that new may replace old in place. Like ACI it
// refuses (code InvalidContainerGroupUpdate, class
// errdefs.ErrInvalidArgument) changes of osType, restartPolicy, the
// ipAddress type, or the CPU or memory requests or limits of a container
// present in both; containers may be added and removed, and images,
// commands, environment and the rest may change. A nil old (a create) is
// always valid.
func ValidateUpdate(old, new *ContainerGroup) error {
	if old == nil || new == nil {
		return nil
	}
	g := new.Name
	if g == "" {
		g = old.Name
	}
	o, n := &old.Properties, &new.Properties
	changed := !strings.EqualFold(defaultOr(o.OSType, "Linux"), defaultOr(n.OSType, "Linux")) ||
		!strings.EqualFold(defaultOr(o.RestartPolicy, RestartAlways), defaultOr(n.RestartPolicy, RestartAlways)) ||
		(o.IPAddress != nil && n.IPAddress != nil && !strings.EqualFold(o.IPAddress.Type, n.IPAddress.Type))
	if !changed {
		before := make(map[string]ResourceRequirements, len(o.Containers))
		for _, c := range o.Containers {
			before[c.Name] = c.Properties.Resources
		}
		for _, c := range n.Containers {
			if r, ok := before[c.Name]; ok && !sameResources(r, c.Properties.Resources) {
				changed = true
				break
			}
		}
	}
	if changed {
		return invalid("InvalidContainerGroupUpdate",
			"The updates on container group '%s' are invalid. If you are going to update the os type, restart policy, network profile, CPU, memory or GPU resources for a container group, you must delete it first and then create a new one.",
			g)
	}
	return nil
}

func defaultOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func sameResources(a, b ResourceRequirements) bool {
	var la, lb ResourceLimits
	if a.Limits != nil {
		la = *a.Limits
	}
	if b.Limits != nil {
		lb = *b.Limits
	}
	return a.Requests == b.Requests && la == lb
}
