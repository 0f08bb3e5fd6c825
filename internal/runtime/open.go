package runtime

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/runtime/image"
	"github.com/skiff-sh/skiff/internal/runtime/network"
	"github.com/skiff-sh/skiff/internal/runtime/userns"
	"github.com/skiff-sh/skiff/internal/runtime/volume"
	"github.com/skiff-sh/skiff/internal/seal"
)

// HostOptions are the few settings a whole host runtime needs; everything
// else has an embedded default.
type HostOptions struct {
	// DataDir holds images, shares, volumes, network state and groups.
	DataDir string
	// PublicAddress is where published ports bind (default 127.0.0.1).
	PublicAddress string
	// OCIRuntime is "runc" (default) or "crun".
	OCIRuntime string
	// BridgeName and Subnet of the group network (defaults skiff0,
	// 10.201.0.0/16).
	BridgeName, Subnet string
	// NetworkName names the CNI network (default "skiff"); hosts sharing a
	// machine (tests) use their own.
	NetworkName string
	// ShimCommand overrides how shims are started (tests).
	ShimCommand []string
	Logger      *slog.Logger
	// Backoff overrides the restart back-off (tests).
	Backoff Backoff
	// StopGrace is the time between SIGTERM and SIGKILL (default 10 s).
	StopGrace time.Duration
	// OnChange is passed to Config.
	OnChange func(id string)
	// GroupPidsLimit is passed to Config (default DefaultGroupPidsLimit).
	GroupPidsLimit int64
	// CgroupRoot is passed to Config (default "/skiff").
	CgroupRoot string
	// GitRepoMaxBytes and GitRepoTimeout bound each gitRepo clone
	// (defaults volume.DefaultGitMaxBytes, volume.DefaultGitTimeout).
	GitRepoMaxBytes int64
	GitRepoTimeout  time.Duration
	// Sealer seals the secrets of the runtime's records; nil means the
	// data dir's key (seal.LoadOrCreateKey of DataDir/seal.key).
	Sealer *seal.Sealer
	// NetworkPolicy is what the operator allows groups on the network
	// (host access, published port range, reserved ports); zero: nothing.
	NetworkPolicy network.Policy
	// NetworkPool is the number of attachments the network keeps prepared
	// for groups without published ports (network.Config.PoolSize).
	NetworkPool int
	// IDMap is the host's user namespace mapping (package userns; see
	// userns.Parse): every group gets a user namespace of its own with it,
	// and images, volumes and root filesystems are owned through it. The
	// zero Mapping runs containers in the host's user namespace.
	IDMap userns.Mapping
	// Security is passed to Config: what the operator allows beyond the
	// default securityContext (nothing, unless set).
	Security api.SecurityPolicy
}

// Host is a runtime with its image store, network and volumes.
type Host struct {
	*Runtime
	Images  *image.Store
	Network *network.Manager
	Volumes *volume.Manager
}

// HostLayout gives the directories Open uses under a data dir.
func HostLayout(dataDir string) (images, netState, volumes, shares, runtimeRoot string) {
	return filepath.Join(dataDir, "images"), filepath.Join(dataDir, "network"),
		filepath.Join(dataDir, "volumes"), filepath.Join(dataDir, "shares"), filepath.Join(dataDir, "runtime")
}

// Open builds a Host under opts.DataDir and re-attaches to its groups.
func Open(ctx context.Context, opts HostOptions) (*Host, error) {
	if opts.DataDir == "" {
		return nil, errors.New("runtime: a data dir is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	raiseKeyQuota(log)
	imgDir, netDir, volDir, shareDir, rtDir := HostLayout(opts.DataDir)
	sealer := opts.Sealer
	if sealer == nil {
		var err error
		if sealer, err = seal.LoadOrCreateKey(filepath.Join(opts.DataDir, seal.KeyFile)); err != nil {
			return nil, err
		}
	}
	images, err := image.NewStore(imgDir, image.Options{Logger: log.With("component", "image"), IDMap: opts.IDMap})
	if err != nil {
		return nil, err
	}
	nw, err := network.New(network.Config{
		StateDir: netDir, BridgeName: opts.BridgeName, Subnet: opts.Subnet, NetworkName: opts.NetworkName,
		PublicAddress: opts.PublicAddress, Logger: log.With("component", "network"), IDMap: opts.IDMap,
		Policy: opts.NetworkPolicy, PoolSize: opts.NetworkPool,
	})
	if err != nil {
		return nil, err
	}
	vols, err := volume.New(volume.Config{Root: volDir, SharesRoot: shareDir, Logger: log.With("component", "volume"), IDMap: opts.IDMap,
		GitTimeout: opts.GitRepoTimeout, GitMaxBytes: opts.GitRepoMaxBytes})
	if err != nil {
		nw.Close()
		return nil, err
	}
	rt, err := New(ctx, Config{
		Root: rtDir, Sealer: sealer, OCIRuntime: opts.OCIRuntime, ShimCommand: opts.ShimCommand,
		Images: images, Network: nw, Volumes: vols, Logger: log.With("component", "runtime"),
		Backoff: opts.Backoff, StopGrace: opts.StopGrace, OnChange: opts.OnChange, GroupPidsLimit: opts.GroupPidsLimit, CgroupRoot: opts.CgroupRoot,
		Security: opts.Security,
	})
	if err != nil {
		nw.Close()
		return nil, err
	}
	return &Host{Runtime: rt, Images: images, Network: nw, Volumes: vols}, nil
}

// Close closes the runtime (its groups go on running) and then the
// network's pool of prepared attachments.
func (h *Host) Close() error {
	return errors.Join(h.Runtime.Close(), h.Network.Close())
}
