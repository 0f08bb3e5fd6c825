package runtime

import (
	"time"

	"github.com/skiff-sh/skiff/api"
)

// GroupStatus is the observed state of a container group, as the runtime
// persists and reports it.
type GroupStatus struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"` // api.Group*
	// Error is set when the group failed for good before or while starting
	// (e.g. an image that cannot be pulled).
	Error      *StatusError      `json:"error,omitempty"`
	IP         string            `json:"ip,omitempty"`
	Events     []api.Event       `json:"events"`
	Containers []ContainerStatus `json:"containers"`
	UpdatedAt  time.Time         `json:"updatedAt"`
}

// StatusError is a terminal failure with an ARM-style code.
type StatusError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes of StatusError.
const (
	CodeInaccessibleImage = "InaccessibleImage"
	CodeVolumeFailed      = "VolumeMountFailed"
	CodeNetworkFailed     = "NetworkSetupFailed"
	CodeContainerFailed   = "ContainerStartFailed"
)

// ContainerStatus is the observed state of one container.
type ContainerStatus struct {
	Name          string              `json:"name"`
	Init          bool                `json:"init,omitempty"`
	Image         string              `json:"image"`
	ImageID       string              `json:"imageID,omitempty"`
	ContainerID   string              `json:"containerID"`
	RestartCount  int32               `json:"restartCount"`
	CurrentState  api.ContainerState  `json:"currentState"`
	PreviousState *api.ContainerState `json:"previousState,omitempty"`
	Ready         bool                `json:"ready"`
	Pid           int                 `json:"pid,omitempty"`
	Events        []api.Event         `json:"events"`
}

// Container returns the status of the named container, or nil.
func (s *GroupStatus) Container(name string) *ContainerStatus {
	for i := range s.Containers {
		if s.Containers[i].Name == name {
			return &s.Containers[i]
		}
	}
	return nil
}

const maxEvents = 64

// addEvent records an event, folding a repeat of the same name and message
// into a count, as ACI does.
func addEvent(events []api.Event, typ, name, msg string, now time.Time) []api.Event {
	ts := now.UTC().Format(time.RFC3339)
	for i := range events {
		if events[i].Name == name && events[i].Message == msg {
			events[i].Count++
			events[i].LastTimestamp = ts
			return events
		}
	}
	events = append(events, api.Event{Count: 1, FirstTimestamp: ts, LastTimestamp: ts, Name: name, Message: msg, Type: typ})
	if len(events) > maxEvents {
		events = events[len(events)-maxEvents:]
	}
	return events
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
