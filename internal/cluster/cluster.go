// Package cluster joins Skiff's API servers and host agents into one
// cluster on etcd:
//
//   - the cluster's shared secrets (the join token agents present, the
//     token servers call agents with, the admin token), kept sealed in the
//     store so that every server of the cluster has the same ones;
//
//   - the join handshake: an agent presents the join token to any server
//     and is told where the store is and how to open its secrets;
//
//   - the directory the API servers reach host agents through (their
//     authenticated HTTP API, package agentapi);
//
//   - the election of the one server that runs the controller and the
//     scheduler (the others serve the API).
//
//     agent ──POST /cluster/join (join token)──▶ any server
//     ◀── etcd endpoints, seal key, agent token, --host-lost-after
//     agent ──host record, heartbeat lease, observed state──▶ etcd ◀── servers
//     server ──logs, exec, attach, metrics, images (agent token)──▶ agent
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
)

// Names of the cluster's secrets.
const (
	JoinToken  = "join"
	AgentToken = "agent"
	AdminToken = "admin"
)

// Secret returns the cluster secret of that name: sealed in the store's
// meta, created on first use (32 random bytes, hex). Every server opening
// the store with the cluster's seal key gets the same value.
func Secret(ctx context.Context, st store.Store, s *seal.Sealer, name string) (string, error) {
	key := "cluster." + name + "Token"
	v, err := st.GetMeta(ctx, key)
	if err == nil {
		plain, err := s.Open(v)
		if err != nil {
			return "", fmt.Errorf("cluster %s token: %w", name, err)
		}
		return plain, nil
	}
	if !errdefs.Is(err, errdefs.ErrNotFound) {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	plain := hex.EncodeToString(b)
	sealed, err := s.Seal(plain)
	if err != nil {
		return "", err
	}
	if err := st.PutMeta(ctx, key, sealed); err != nil {
		return "", err
	}
	return plain, nil
}
