// Package cluster tests Skiff's cluster mode the way an operator meets it:
// a real etcd, `skiff server --store etcd` and several `skiff agent`
// processes on one machine (each on a loopback address of its own, with
// its own data dir, bridge and subnet), real runc containers, a real
// registry, and the CLI and the client against the servers' API. It kills
// agents, servers and etcd with SIGKILL and looks at what a user would
// notice: where groups run, whether their ports answer, what the events
// and `skiff host list` say, and that nothing runs twice.
//
// The tests run one at a time (they share the bridges skcl1..skcl4 and
// the subnets 10.221-10.224.0.0/16) and need root and the etcd that
// hack/build-k8s.sh builds (SKIFF_K8S_BIN).
package cluster

import (
	"os"
	"testing"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// skiffBin is the binary built once for the whole package.
var skiffBin string

func TestMain(m *testing.M) { os.Exit(testenv.RunWithSkiff(m, &skiffBin)) }
