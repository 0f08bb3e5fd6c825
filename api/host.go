package api

// Host is a host of a Skiff cluster as `skiff host list` shows it: a Skiff
// extension with no ARM counterpart, at /providers/Skiff.Cluster/hosts.
type Host struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Properties HostProperties `json:"properties"`
}

// HostType is the type of a Host.
const HostType = "Skiff.Cluster/hosts"

// HostProperties describe a host.
type HostProperties struct {
	// State is Ready, NotReady (starting), NotResponding (its heartbeat
	// stopped, not yet lost) or Lost (its groups moved).
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
	// PublicAddress is where its groups' published ports answer.
	PublicAddress string            `json:"publicAddress,omitempty"`
	OSType        string            `json:"osType"`
	Zone          string            `json:"zone,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	// Capacity is the machine's, Allocatable what groups may request, and
	// Allocated what the groups placed on it request.
	Capacity    HostResources `json:"capacity"`
	Allocatable HostResources `json:"allocatable"`
	Allocated   HostResources `json:"allocated"`
	// ContainerGroupCount is the number of groups placed on it.
	ContainerGroupCount int    `json:"containerGroupCount"`
	SharedShares        bool   `json:"sharedShares,omitempty"`
	JoinedAt            string `json:"joinedAt,omitempty"`
}

// HostResources is an amount of CPU and memory.
type HostResources struct {
	CPU        float64 `json:"cpu"`
	MemoryInGB float64 `json:"memoryInGB"`
}

// Host states beyond the store's (Ready, NotReady, Lost).
const HostNotResponding = "NotResponding"
