package agent

import (
	"context"
	"io"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/hostapi"
	"github.com/skiff-sh/skiff/internal/runtime/image"
)

// The control plane's streams and host facts (hostapi.Host), served from
// this host's runtime.

// Logs writes a container's log to w.
func (a *Agent) Logs(ctx context.Context, id, container string, o hostapi.LogOptions, w io.Writer) error {
	return a.rt.Logs(ctx, id, container, o, w)
}

// Exec runs a command in a running container.
func (a *Agent) Exec(ctx context.Context, id, container string, o hostapi.ExecOptions) (int, error) {
	return a.rt.Exec(ctx, id, container, o)
}

// Stats samples a group's running containers.
func (a *Agent) Stats(ctx context.Context, id string) (*hostapi.GroupStats, error) {
	return a.rt.Stats(ctx, id)
}

// CheckPorts refuses ports this host does not let a group publish.
func (a *Agent) CheckPorts(ports []api.Port) error { return a.rt.Network.CheckPorts(ports) }

// RemoveShare deletes a deleted file share's data from this host.
func (a *Agent) RemoveShare(_ context.Context, account, dir string) error {
	return a.rt.Volumes.RemoveShare(account, dir)
}

// GroupCount is the number of groups the runtime holds.
func (a *Agent) GroupCount() int { return len(a.rt.List()) }

// Images is the host's image cache.
func (a *Agent) Images() hostapi.Images { return images{a.rt.Images} }

type images struct{ s *image.Store }

func (i images) List() ([]hostapi.ImageSummary, error) {
	l, err := i.s.List()
	if err != nil {
		return nil, err
	}
	out := make([]hostapi.ImageSummary, 0, len(l))
	for _, s := range l {
		out = append(out, hostapi.ImageSummary{Name: s.Name, Ref: s.Ref, Digest: s.Digest, ID: s.ID, Size: s.Size, StoredAt: s.StoredAt, Private: s.Private})
	}
	return out, nil
}

func (i images) Pull(ctx context.Context, ref string, creds []api.ImageRegistryCredential, progress func(hostapi.ImageProgress)) (*hostapi.Image, error) {
	var report func(image.Progress)
	if progress != nil {
		report = func(p image.Progress) {
			progress(hostapi.ImageProgress{Ref: p.Ref, Layer: p.Layer, Status: string(p.Status), Complete: p.Complete,
				Total: p.Total, Attempt: p.Attempt, Delay: p.Delay, Message: p.Message})
		}
	}
	img, err := i.s.Pull(ctx, ref, creds, report)
	if err != nil {
		return nil, err
	}
	return imageOf(img), nil
}

func (i images) Import(ctx context.Context, tarPath string) ([]hostapi.Image, error) {
	imgs, err := i.s.Import(ctx, tarPath)
	if err != nil {
		return nil, err
	}
	out := make([]hostapi.Image, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, *imageOf(img))
	}
	return out, nil
}

func (i images) Get(ref string) (*hostapi.Image, error) {
	img, err := i.s.Get(ref)
	if err != nil {
		return nil, err
	}
	return imageOf(img), nil
}

func (i images) Remove(ref string) error { return i.s.Remove(ref) }

func imageOf(img *image.Image) *hostapi.Image {
	return &hostapi.Image{Name: img.Name, Ref: img.Ref, Digest: img.Digest, Size: img.Size, Private: img.Private}
}
