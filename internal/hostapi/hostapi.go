// Package hostapi is the seam between Skiff's control plane (the server and
// the controller) and a host agent: the few things that cannot go through
// the store because they are streams or host-local facts — logs, exec and
// attach, metrics samples, the host's image cache, its published-port
// check and the removal of a deleted file share's data.
//
// Everything else crosses the seam through the store: the control plane
// writes a group's desired state, the host's agent (package agent) runs it
// and writes the observed state back (store.Observed). Nothing here
// imports the runtime, so the server and the controller build without it;
// in the embedded mode the agent implements Host in-process, and the
// cluster mode puts this interface behind an authenticated HTTP API.
package hostapi

import (
	"context"
	"io"
	"time"

	"github.com/skiff-sh/skiff/api"
)

// Host is what the control plane asks of the host that runs a group. A
// group is named by its runtime id (store.ContainerGroup.RuntimeID). Errors
// carry errdefs classes: ErrNotFound for a group or container the host does
// not have, ErrConflict for one not in a state to answer (not running).
type Host interface {
	// Logs writes a container's log to w; with Follow it returns when the
	// run it started on ends or ctx ends.
	Logs(ctx context.Context, id, container string, o LogOptions, w io.Writer) error
	// Exec runs a command in a running container and returns its exit
	// code; the command and everything it started is killed when ctx ends.
	Exec(ctx context.Context, id, container string, o ExecOptions) (int, error)
	// Stats samples the CPU and memory use of a group's running
	// containers (ErrConflict when none runs).
	Stats(ctx context.Context, id string) (*GroupStats, error)
	// CheckPorts refuses ports a group may not publish on this host: a host
	// process listens on them, the server uses them, or the operator's
	// range excludes them.
	CheckPorts(ports []api.Port) error
	// GroupCount is the number of groups the host's runtime holds.
	GroupCount() int
	// RemoveShare deletes the data of a file share whose record is gone
	// (the share, or its storage account, was deleted): the directory dir
	// (storage.Share.Dir) of storage account account in the host's
	// shares. A share the host does not hold is no error.
	RemoveShare(ctx context.Context, account, dir string) error
	// Images is the host's image cache.
	Images() Images
}

// Images is a host's image cache.
type Images interface {
	List() ([]ImageSummary, error)
	// Pull pulls an image with the given credentials (nil: the operator's
	// or none), reporting layer progress to progress if not nil.
	Pull(ctx context.Context, ref string, creds []api.ImageRegistryCredential, progress func(ImageProgress)) (*Image, error)
	// Import loads the images of a docker-archive or OCI-layout tarball.
	Import(ctx context.Context, tarPath string) ([]Image, error)
	Get(ref string) (*Image, error)
	Remove(ref string) error
}

// WindowSize is a terminal's size.
type WindowSize struct {
	Rows, Cols uint16
}

// ExecOptions describe a command run in a running container.
type ExecOptions struct {
	Command []string
	// TTY runs the command on a pseudo-terminal; Stderr is then unused.
	TTY bool
	// Size is the initial terminal size (TTY only).
	Size   WindowSize
	Resize <-chan WindowSize
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// LogOptions select what Logs writes.
type LogOptions struct {
	Tail       int // last N lines; negative for all
	Timestamps bool
	Follow     bool
	// Previous reads the run before the current one.
	Previous   bool
	Since      time.Time
	LimitBytes int64
}

// ContainerStats is one sample of a running container.
type ContainerStats struct {
	// Name is the container's name in the group.
	Name string `json:"name"`
	// Init is set for an init container.
	Init bool `json:"init,omitempty"`
	// Time is when the sample was taken.
	Time time.Time `json:"time"`
	// StartTime is when the container's current run started (zero if not
	// known). CPUNanos counts from then: it starts again at zero when the
	// container restarts.
	StartTime time.Time `json:"startTime"`
	// CPUNanos is the cumulative CPU time (user and system, all cores) of the
	// current run, in nanoseconds.
	CPUNanos uint64 `json:"cpuNanos"`
	// MemoryUsageBytes is the cgroup's memory use, page cache included.
	MemoryUsageBytes uint64 `json:"memoryUsageBytes"`
	// MemoryWorkingSetBytes is MemoryUsageBytes minus the inactive file
	// cache, as the kubelet computes it: the memory that cannot be reclaimed
	// without pressure, and what the memory limit and OOM killer act on.
	MemoryWorkingSetBytes uint64 `json:"memoryWorkingSetBytes"`
}

// GroupStats is one sample of every running container of a group.
type GroupStats struct {
	ID string `json:"id"`
	// Containers holds the containers that were running, in spec order
	// (init containers first).
	Containers []ContainerStats `json:"containers"`
}

// Image is an image in a host's cache.
type Image struct {
	// Name is the reference as the user wrote it ("busybox").
	Name string
	// Ref is the normalised reference it is stored under.
	Ref string
	// Digest is the digest of the image manifest.
	Digest string
	Size   int64
	// Private: pulled with a container group's own credentials, not for
	// everyone to see.
	Private bool
}

// ImageSummary is one entry of Images.List.
type ImageSummary struct {
	Name, Ref, Digest, ID string
	Size                  int64
	StoredAt              time.Time
	Private               bool
}

// ImageProgress reports the state of one layer of a pull.
type ImageProgress struct {
	Ref      string
	Layer    string // compressed layer digest
	Status   string // exists, downloading, done, backoff, resumed
	Complete int64
	Total    int64
	// Attempt, Delay and Message describe a back-off.
	Attempt int
	Delay   time.Duration
	Message string
}
