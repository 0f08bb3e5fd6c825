package api

// ResourceType of container groups.
const ResourceType = "Microsoft.ContainerInstance/containerGroups"

// Subscription is a Microsoft.Resources subscription.
type Subscription struct {
	ID             string `json:"id"`
	SubscriptionID string `json:"subscriptionId"`
	DisplayName    string `json:"displayName"`
	State          string `json:"state"`
	TenantID       string `json:"tenantId,omitempty"`
}

// ResourceGroup is a Microsoft.Resources resource group.
type ResourceGroup struct {
	ID         string                  `json:"id,omitempty"`
	Name       string                  `json:"name,omitempty"`
	Type       string                  `json:"type,omitempty"`
	Location   string                  `json:"location"`
	Tags       map[string]string       `json:"tags,omitempty"`
	Properties ResourceGroupProperties `json:"properties"`
}

// ResourceGroupProperties carries the group's provisioning state.
type ResourceGroupProperties struct {
	ProvisioningState string `json:"provisioningState,omitempty"`
}

// List is an ARM list page.
type List[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"nextLink,omitempty"`
}

// ErrorResponse is the ARM error envelope.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is an ARM error.
type ErrorBody struct {
	Code    string      `json:"code"`
	Message string      `json:"message"`
	Target  string      `json:"target,omitempty"`
	Details []ErrorBody `json:"details,omitempty"`
}

// Operation statuses of the async-operation endpoint.
const (
	OperationInProgress = "InProgress"
	OperationSucceeded  = "Succeeded"
	OperationFailed     = "Failed"
	// OperationCanceled ends a create or update that a later delete
	// overtook.
	OperationCanceled = "Canceled"
)

// OperationStatus is what the Azure-AsyncOperation URL returns.
type OperationStatus struct {
	ID         string                  `json:"id"`
	Name       string                  `json:"name,omitempty"`
	Status     string                  `json:"status"`
	StartTime  string                  `json:"startTime,omitempty"`
	EndTime    string                  `json:"endTime,omitempty"`
	Properties *OperationStatusDetails `json:"properties,omitempty"`
	Error      *ErrorBody              `json:"error,omitempty"`
}

// OperationStatusDetails echoes the group's events, as ACI does.
type OperationStatusDetails struct {
	Events []Event `json:"events"`
}

// Logs is the body of Containers_ListLogs.
type Logs struct {
	Content string `json:"content"`
}

// ExecRequest is the body of Containers_ExecuteCommand.
type ExecRequest struct {
	Command      string        `json:"command"`
	TerminalSize *TerminalSize `json:"terminalSize,omitempty"`
}

// TerminalSize of an exec.
type TerminalSize struct {
	Rows int32 `json:"rows"`
	Cols int32 `json:"cols"`
}

// ExecResponse tells where to connect for an exec or attach.
type ExecResponse struct {
	WebSocketURI string `json:"webSocketUri"`
	Password     string `json:"password"`
}

// Usage is one entry of Location_ListUsage.
type Usage struct {
	ID           string    `json:"id,omitempty"`
	Unit         string    `json:"unit"`
	CurrentValue int32     `json:"currentValue"`
	Limit        int32     `json:"limit"`
	Name         UsageName `json:"name"`
}

// UsageName names a usage.
type UsageName struct {
	Value          string `json:"value"`
	LocalizedValue string `json:"localizedValue"`
}

// Capability is one entry of Location_ListCapabilities.
type Capability struct {
	ResourceType  string           `json:"resourceType"`
	OSType        string           `json:"osType"`
	Location      string           `json:"location"`
	IPAddressType string           `json:"ipAddressType"`
	GPU           string           `json:"gpu"`
	Capabilities  CapabilityLimits `json:"capabilities"`
}

// CapabilityLimits are the maxima of a capability.
type CapabilityLimits struct {
	MaxMemoryInGB float64 `json:"maxMemoryInGB"`
	MaxCPU        float64 `json:"maxCpu"`
	MaxGPUCount   float64 `json:"maxGpuCount"`
}

// CachedImage is one entry of Location_ListCachedImages.
type CachedImage struct {
	OSType string `json:"osType"`
	Image  string `json:"image"`
}

// Operation is one entry of the provider's operations list.
type Operation struct {
	Name    string           `json:"name"`
	Display OperationDisplay `json:"display"`
	Origin  string           `json:"origin,omitempty"`
}

// OperationDisplay describes an operation.
type OperationDisplay struct {
	Provider    string `json:"provider"`
	Resource    string `json:"resource"`
	Operation   string `json:"operation"`
	Description string `json:"description"`
}
