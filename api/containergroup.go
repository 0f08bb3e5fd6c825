package api

import "strings"

// ContainerGroup is the ARM resource Microsoft.ContainerInstance/containerGroups.
type ContainerGroup struct {
	ID         string                   `json:"id,omitempty"`
	Name       string                   `json:"name,omitempty"`
	Type       string                   `json:"type,omitempty"`
	Location   string                   `json:"location,omitempty"`
	Tags       map[string]string        `json:"tags,omitempty"`
	Zones      []string                 `json:"zones,omitempty"`
	Properties ContainerGroupProperties `json:"properties"`
}

// ContainerGroupProperties is the `properties` of a container group: the
// spec the host runtime runs.
type ContainerGroupProperties struct {
	ProvisioningState        string                    `json:"provisioningState,omitempty"`
	Containers               []Container               `json:"containers"`
	InitContainers           []InitContainer           `json:"initContainers"`
	ImageRegistryCredentials []ImageRegistryCredential `json:"imageRegistryCredentials,omitempty"`
	RestartPolicy            string                    `json:"restartPolicy,omitempty"`
	IPAddress                *IPAddress                `json:"ipAddress,omitempty"`
	OSType                   string                    `json:"osType,omitempty"`
	Volumes                  []Volume                  `json:"volumes,omitempty"`
	InstanceView             *GroupInstanceView        `json:"instanceView,omitempty"`
	DNSConfig                *DNSConfig                `json:"dnsConfig,omitempty"`
	SKU                      string                    `json:"sku,omitempty"`
	// HostAliases is a Skiff extension, as a pod's spec has it: lines
	// added to every container's /etc/hosts.
	HostAliases []HostAlias `json:"hostAliases,omitempty"`
	// ContainerGroupProfile names the profile revision the group was
	// created from (profile.go); its spec is that revision's.
	ContainerGroupProfile *ProfileReference `json:"containerGroupProfile,omitempty"`
	// StandbyPoolProfile names the standby pool a create takes a ready
	// group from (standbypool.go); IsCreatedFromStandbyPool (read-only)
	// says whether it got one.
	StandbyPoolProfile       *StandbyPoolReference `json:"standbyPoolProfile,omitempty"`
	IsCreatedFromStandbyPool bool                  `json:"isCreatedFromStandbyPool,omitempty"`
}

// HostAlias is one /etc/hosts line: an address and its names.
type HostAlias struct {
	IP        string   `json:"ip"`
	Hostnames []string `json:"hostnames"`
}

// MaxHostAliases bounds a group's hostAliases.
const MaxHostAliases = 100

// Restart policies.
const (
	RestartAlways    = "Always"
	RestartOnFailure = "OnFailure"
	RestartNever     = "Never"
)

// Container is one app container of a group.
type Container struct {
	Name       string              `json:"name"`
	Properties ContainerProperties `json:"properties"`
}

// ContainerProperties describes an app container.
type ContainerProperties struct {
	Image                string                `json:"image"`
	Command              []string              `json:"command"`
	Ports                []ContainerPort       `json:"ports"`
	EnvironmentVariables []EnvironmentVariable `json:"environmentVariables"`
	Resources            ResourceRequirements  `json:"resources"`
	VolumeMounts         []VolumeMount         `json:"volumeMounts,omitempty"`
	LivenessProbe        *Probe                `json:"livenessProbe,omitempty"`
	ReadinessProbe       *Probe                `json:"readinessProbe,omitempty"`
	// StartupProbe is a Skiff extension, as Kubernetes has it: until it
	// succeeds the container is not ready and the other probes wait; after
	// failureThreshold failures the container is killed (and its restart
	// policy decides).
	StartupProbe *Probe `json:"startupProbe,omitempty"`
	// Lifecycle is a Skiff extension, as Kubernetes has it: a postStart
	// hook run as the container starts (its failure kills the container)
	// and a preStop hook run before it is sent SIGTERM, within the grace.
	Lifecycle       *Lifecycle       `json:"lifecycle,omitempty"`
	SecurityContext *SecurityContext `json:"securityContext,omitempty"`
	// ConfigMap's files are at /mnt/configmap/<container>/<key>; a PUT that
	// changes only config maps rewrites them in place, without a restart.
	ConfigMap    *ConfigMap             `json:"configMap,omitempty"`
	InstanceView *ContainerInstanceView `json:"instanceView,omitempty"`
}

// ConfigMapDir is where a container's config map is mounted, as in ACI.
const ConfigMapDir = "/mnt/configmap"

// ConfigMap is a container's configuration as files, one per key.
type ConfigMap struct {
	KeyValuePairs map[string]string `json:"keyValuePairs,omitempty"`
}

// InitContainer runs to completion before the app containers start.
type InitContainer struct {
	Name       string                  `json:"name"`
	Properties InitContainerProperties `json:"properties"`
}

// InitContainerProperties describes an init container. It has no ports,
// probes or resources.
type InitContainerProperties struct {
	Image                string                 `json:"image"`
	Command              []string               `json:"command"`
	EnvironmentVariables []EnvironmentVariable  `json:"environmentVariables"`
	VolumeMounts         []VolumeMount          `json:"volumeMounts,omitempty"`
	SecurityContext      *SecurityContext       `json:"securityContext,omitempty"`
	InstanceView         *ContainerInstanceView `json:"instanceView,omitempty"`
}

// ContainerPort is a port a container exposes.
type ContainerPort struct {
	Protocol string `json:"protocol,omitempty"`
	Port     int32  `json:"port"`
}

// Port is a port published on the group's IP address.
type Port struct {
	Protocol string `json:"protocol,omitempty"`
	Port     int32  `json:"port"`
}

// Protocols.
const (
	ProtocolTCP = "TCP"
	ProtocolUDP = "UDP"
)

// EnvironmentVariable is a plain (value) or secret (secureValue) variable.
type EnvironmentVariable struct {
	Name        string `json:"name"`
	Value       string `json:"value,omitempty"`
	SecureValue string `json:"secureValue,omitempty"`
}

// ResourceRequirements are a container's requests and optional limits.
type ResourceRequirements struct {
	Requests ResourceRequests `json:"requests"`
	Limits   *ResourceLimits  `json:"limits,omitempty"`
}

// ResourceRequests is what a container is guaranteed.
type ResourceRequests struct {
	CPU        float64 `json:"cpu"`
	MemoryInGB float64 `json:"memoryInGB"`
}

// ResourceLimits caps a container above its requests.
type ResourceLimits struct {
	CPU        float64 `json:"cpu,omitempty"`
	MemoryInGB float64 `json:"memoryInGB,omitempty"`
}

// VolumeMount mounts a group volume into a container.
type VolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// Probe is a liveness or readiness probe.
type Probe struct {
	Exec    *ExecAction    `json:"exec,omitempty"`
	HTTPGet *HTTPGetAction `json:"httpGet,omitempty"`
	// TCPSocket is a Skiff extension, as Kubernetes has it: the probe
	// passes when the port of the group's address takes a connection.
	TCPSocket           *TCPSocketAction `json:"tcpSocket,omitempty"`
	InitialDelaySeconds int32            `json:"initialDelaySeconds,omitempty"`
	PeriodSeconds       int32            `json:"periodSeconds,omitempty"`
	FailureThreshold    int32            `json:"failureThreshold,omitempty"`
	SuccessThreshold    int32            `json:"successThreshold,omitempty"`
	TimeoutSeconds      int32            `json:"timeoutSeconds,omitempty"`
}

// ExecAction runs a command in the container.
type ExecAction struct {
	Command []string `json:"command"`
}

// Lifecycle holds a container's hooks.
type Lifecycle struct {
	PostStart *LifecycleHandler `json:"postStart,omitempty"`
	PreStop   *LifecycleHandler `json:"preStop,omitempty"`
}

// LifecycleHandler is a hook: a command in the container, or a GET to the
// group's IP.
type LifecycleHandler struct {
	Exec    *ExecAction    `json:"exec,omitempty"`
	HTTPGet *HTTPGetAction `json:"httpGet,omitempty"`
}

// TCPSocketAction connects to a port of the group's IP.
type TCPSocketAction struct {
	Port int32 `json:"port"`
}

// HTTPGetAction sends GET to the group's IP.
type HTTPGetAction struct {
	Path        string       `json:"path,omitempty"`
	Port        int32        `json:"port"`
	Scheme      string       `json:"scheme,omitempty"`
	HTTPHeaders []HTTPHeader `json:"httpHeaders,omitempty"`
}

// HTTPHeader is one header of an httpGet probe.
type HTTPHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// SecurityContext narrows or widens a container's privileges.
type SecurityContext struct {
	Privileged               *bool         `json:"privileged,omitempty"`
	AllowPrivilegeEscalation *bool         `json:"allowPrivilegeEscalation,omitempty"`
	Capabilities             *Capabilities `json:"capabilities,omitempty"`
	RunAsUser                *int64        `json:"runAsUser,omitempty"`
	RunAsGroup               *int64        `json:"runAsGroup,omitempty"`
	SeccompProfile           string        `json:"seccompProfile,omitempty"`
}

// Capabilities to add to or drop from the default set.
type Capabilities struct {
	Add  []string `json:"add,omitempty"`
	Drop []string `json:"drop,omitempty"`
}

// ImageRegistryCredential authenticates pulls from one registry.
type ImageRegistryCredential struct {
	Server   string `json:"server"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// IPAddress is the group's address and its published ports.
type IPAddress struct {
	Ports        []Port `json:"ports"`
	Type         string `json:"type"`
	IP           string `json:"ip,omitempty"`
	DNSNameLabel string `json:"dnsNameLabel,omitempty"`
	// AutoGeneratedDomainNameLabelScope says who may get the same FQDN
	// again (dns.go): Unsecure (the default when a label is set: the
	// label as it is), TenantReuse, SubscriptionReuse, ResourceGroupReuse
	// or Noreuse (a hash after the label).
	AutoGeneratedDomainNameLabelScope string `json:"autoGeneratedDomainNameLabelScope,omitempty"`
	FQDN                              string `json:"fqdn,omitempty"`
	// PrivateIP is a Skiff extension (read-only): the group's own address
	// on the host's container bridge, reported for both types. For a
	// Private group it equals IP.
	PrivateIP string `json:"privateIp,omitempty"`
}

// IP address types.
const (
	IPAddressPublic  = "Public"
	IPAddressPrivate = "Private"
)

// Published reports whether ip's ports are published on the host's public
// address: a Public address with ports. A Private group is reached at its
// own address and publishes nothing.
func (ip *IPAddress) Published() bool {
	return ip != nil && len(ip.Ports) > 0 && !ip.IsPrivate()
}

// IsPrivate reports whether ip is of type Private (in any spelling).
func (ip *IPAddress) IsPrivate() bool {
	return ip != nil && strings.EqualFold(ip.Type, IPAddressPrivate)
}

// DNSConfig becomes the containers' /etc/resolv.conf.
type DNSConfig struct {
	NameServers   []string `json:"nameServers"`
	SearchDomains string   `json:"searchDomains,omitempty"`
	Options       string   `json:"options,omitempty"`
}

// Volume is a group volume. Exactly one source is set.
type Volume struct {
	Name      string            `json:"name"`
	AzureFile *AzureFileVolume  `json:"azureFile,omitempty"`
	EmptyDir  *EmptyDirVolume   `json:"emptyDir,omitempty"`
	Secret    map[string]string `json:"secret,omitempty"`
	GitRepo   *GitRepoVolume    `json:"gitRepo,omitempty"`
}

// EmptyDirVolume is scratch space shared by the group's containers. ACI's
// emptyDir has no fields; Medium and SizeLimit are Skiff's extensions, named
// and meant as Kubernetes' emptyDir fields.
type EmptyDirVolume struct {
	// Medium is "" (the host's disk) or "Memory" (a tmpfs, counted in the
	// memory of the container that writes to it).
	Medium string `json:"medium,omitempty"`
	// SizeLimit is a Kubernetes quantity ("64Mi", "1Gi"): the most the
	// volume can hold; a write past it fails with "no space left on
	// device". Empty: no limit of its own (a Memory volume then has the
	// kernel's default tmpfs size, half the host's memory).
	SizeLimit string `json:"sizeLimit,omitempty"`
}

// AzureFileVolume names a persistent file share. On Skiff the share lives on
// the host; storageAccountName scopes the share name.
type AzureFileVolume struct {
	ShareName          string `json:"shareName"`
	StorageAccountName string `json:"storageAccountName"`
	ReadOnly           bool   `json:"readOnly,omitempty"`
	StorageAccountKey  string `json:"storageAccountKey,omitempty"`
}

// GitRepoVolume is a clone of a repository.
type GitRepoVolume struct {
	Repository string `json:"repository"`
	Directory  string `json:"directory,omitempty"`
	Revision   string `json:"revision,omitempty"`
}

// GroupInstanceView is the observed state of a group.
type GroupInstanceView struct {
	State  string  `json:"state,omitempty"`
	Events []Event `json:"events"`
	// Host is the host that runs the group: Skiff's read-only extension
	// (a PUT's value is ignored); "" until the group is placed.
	Host string `json:"host,omitempty"`
}

// Group states as ACI reports them.
const (
	GroupPending   = "Pending"
	GroupRunning   = "Running"
	GroupSucceeded = "Succeeded"
	GroupFailed    = "Failed"
	GroupStopped   = "Stopped"
)

// ContainerInstanceView is the observed state of one container.
type ContainerInstanceView struct {
	RestartCount  int32           `json:"restartCount"`
	CurrentState  *ContainerState `json:"currentState,omitempty"`
	PreviousState *ContainerState `json:"previousState,omitempty"`
	Events        []Event         `json:"events"`
	// Ready is a Skiff extension (read-only): the container runs and its
	// readiness probe, if any, has passed.
	Ready *bool `json:"ready,omitempty"`
}

// Container states as ACI reports them.
const (
	ContainerWaiting    = "Waiting"
	ContainerRunning    = "Running"
	ContainerTerminated = "Terminated"
)

// ContainerState is one state of a container's life.
type ContainerState struct {
	State        string `json:"state,omitempty"`
	StartTime    string `json:"startTime,omitempty"`
	ExitCode     *int32 `json:"exitCode,omitempty"`
	FinishTime   string `json:"finishTime,omitempty"`
	DetailStatus string `json:"detailStatus,omitempty"`
}

// Event is an ACI event, counted and time-stamped.
type Event struct {
	Count          int32  `json:"count"`
	FirstTimestamp string `json:"firstTimestamp"`
	LastTimestamp  string `json:"lastTimestamp"`
	Name           string `json:"name"`
	Message        string `json:"message"`
	Type           string `json:"type"`
}

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)
