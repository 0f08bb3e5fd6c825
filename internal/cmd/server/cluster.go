package servercmd

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/grpclog"

	"github.com/skiff-sh/skiff/internal/atomicfile"
	"github.com/skiff-sh/skiff/internal/cluster"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
)

// joinTokenFile is where a cluster server writes the join token, in its
// data dir.
const joinTokenFile = "join.token"

type clusterSecrets struct{ join, agent string }

// ensureClusterSecrets reads (or creates) the cluster's secrets, and
// writes the join token and the admin token to the data dir (mode 0600),
// so that every server of the cluster has the same ones.
func ensureClusterSecrets(ctx context.Context, st store.Store, s *seal.Sealer, dataDir string) (clusterSecrets, error) {
	var cs clusterSecrets
	var err error
	if cs.join, err = cluster.Secret(ctx, st, s, cluster.JoinToken); err != nil {
		return cs, err
	}
	if cs.agent, err = cluster.Secret(ctx, st, s, cluster.AgentToken); err != nil {
		return cs, err
	}
	admin, err := cluster.Secret(ctx, st, s, cluster.AdminToken)
	if err != nil {
		return cs, err
	}
	for file, v := range map[string]string{joinTokenFile: cs.join, "admin.token": admin} {
		if err := atomicfile.WriteFile(filepath.Join(dataDir, file), []byte(v+"\n"), 0o600); err != nil {
			return cs, fmt.Errorf("%s: %w", file, err)
		}
	}
	return cs, nil
}

// sealKeyHex is the seal key, for a joining agent.
func sealKeyHex(o Options) (string, error) {
	path := o.SealKeyFile
	if path == "" {
		path = filepath.Join(o.DataDir, seal.KeyFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("seal key: %w", err)
	}
	return hex.EncodeToString(seal.DecodeKey(data)), nil
}

// etcdClient is the election's own client.
func etcdClient(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second,
		DialKeepAliveTime: 2 * time.Second, DialKeepAliveTimeout: 2 * time.Second, Logger: zap.NewNop()})
}

// readToken reads a token file.
func readToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(string(data))
	if t == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return t, nil
}

// quietGRPC stops gRPC (etcd's client) from logging every reconnect
// attempt to stderr on its own (through klog, which a dependency's init
// installs, hence at start and not in an init); the store and the
// election log what matters through slog.
func quietGRPC() {
	grpcQuiet.Do(func() { grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard)) })
}

var grpcQuiet sync.Once
