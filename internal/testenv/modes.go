package testenv

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// ModeEnv is the environment variable that picks how the end-to-end and
// virtual-node suites run Skiff: unset or "embedded" is one `skiff
// server` (the default), "cluster" is SkiffServerOptions.Cluster (etcd, a
// server with --agent=false and one `skiff agent`). `make test` runs the
// suites in both.
const ModeEnv = "SKIFF_TEST_MODE"

// Modes of ModeEnv.
const (
	ModeEmbedded = "embedded"
	ModeCluster  = "cluster"
)

// ClusterMode reports whether ModeEnv asks for the cluster mode. A value
// that is neither mode fails the test: a typo must not run the embedded
// mode twice.
func ClusterMode(t testing.TB) bool {
	t.Helper()
	switch m := os.Getenv(ModeEnv); m {
	case "", ModeEmbedded:
		return false
	case ModeCluster:
		return true
	default:
		t.Fatalf("%s=%q: want %q or %q", ModeEnv, m, ModeEmbedded, ModeCluster)
		return false
	}
}

// flagSide is which process of a cluster takes a flag of `skiff server`.
type flagSide int

const (
	toServer flagSide = iota + 1 // the API, the store, the controller
	toAgent                      // the host's runtime
	toBoth
)

// serverFlags say, for every flag of `skiff server`, which process of a
// cluster takes it and whether it is a boolean (takes no separate value).
// A test in internal/testenv checks that it names every flag the command
// has.
var serverFlags = map[string]struct {
	side flagSide
	bool bool
}{
	// The API and the control plane. Registry mirrors and the registries
	// config reach the agents through the join.
	"listen": {side: toServer}, "data-dir": {side: toServer}, "location": {side: toServer},
	"registry-mirror": {side: toServer}, "registries-config": {side: toServer},
	"max-image-import-size": {side: toServer}, "exec-sessions-per-group": {side: toServer},
	"store": {side: toServer}, "etcd-endpoints": {side: toServer}, "etcd-prefix": {side: toServer},
	"agent": {side: toServer, bool: true}, "host-lost-after": {side: toServer}, "seal-key-file": {side: toServer},
	"tls-listen": {side: toServer}, "tls-cert-file": {side: toServer}, "tls-key-file": {side: toServer}, "tls-san": {side: toServer}, "api-url": {side: toServer},
	"dns-zone": {side: toServer}, "dns-listen": {side: toServer},
	// The securityContext policy is checked by the API before a group is
	// stored and by the runtime that runs it.
	"allow-privileged": {side: toBoth, bool: true}, "allow-custom-seccomp": {side: toBoth, bool: true},
	"log-level": {side: toBoth},
	// The host's runtime.
	"name": {side: toAgent}, "cpu": {side: toAgent}, "memory": {side: toAgent}, "zone": {side: toAgent},
	"shared-shares": {side: toAgent, bool: true}, "public-address": {side: toAgent}, "runtime": {side: toAgent},
	"bridge": {side: toAgent}, "subnet": {side: toAgent}, "network-pool": {side: toAgent},
	"image-gc-high-threshold": {side: toAgent}, "image-gc-low-threshold": {side: toAgent}, "image-gc-interval": {side: toAgent},
	"userns-remap": {side: toAgent}, "stop-grace": {side: toAgent},
	"allow-host-access": {side: toAgent, bool: true}, "group-pids-limit": {side: toAgent},
	"gitrepo-size-limit": {side: toAgent}, "gitrepo-timeout": {side: toAgent}, "published-ports": {side: toAgent},
}

// SplitFlags splits flags of `skiff server` (as SkiffServerOptions.Flags
// holds them: "--name value", "--name=value", or a boolean "--name")
// between a cluster's server and its agent, so that a test written for
// the embedded mode gives each process of a cluster its part: the API's
// flags (--exec-sessions-per-group, --registry-mirror, …) to the server,
// the runtime's (--stop-grace, --published-ports, --userns-remap, …) to
// the agent, the securityContext policy and --log-level to both. A flag
// `skiff server` does not have is an error.
func SplitFlags(flags []string) (server, agent []string, err error) {
	for i := 0; i < len(flags); i++ {
		arg := flags[i]
		name, _, hasValue := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		f, ok := serverFlags[name]
		if !strings.HasPrefix(arg, "--") || !ok {
			return nil, nil, fmt.Errorf("testenv: %q is not a flag of skiff server that a cluster knows where to run", arg)
		}
		kept := []string{arg}
		if !hasValue && !f.bool {
			if i+1 == len(flags) {
				return nil, nil, fmt.Errorf("testenv: flag %s has no value", arg)
			}
			i++
			kept = append(kept, flags[i])
		}
		if f.side != toAgent {
			server = append(server, kept...)
		}
		if f.side != toServer {
			agent = append(agent, kept...)
		}
	}
	return server, agent, nil
}

// clusterCPU and clusterMemoryGB are what the agent of a Cluster offers
// unless the test's flags say otherwise: the embedded mode places every
// group on its one host whatever the groups request (requests only bound
// a group's cgroup), so a suite written for it starts more groups than a
// small machine's cores and memory hold; a cluster's scheduler would keep
// them Pending.
const (
	clusterCPU      = "1024"
	clusterMemoryGB = "4096"
)

// clusterFlags are o.Flags as StartSkiffServer gives them out: all to
// the server in the embedded mode, split by SplitFlags between the server
// and the agent of a Cluster, whose agent offers clusterCPU and
// clusterMemoryGB.
func clusterFlags(t testing.TB, o SkiffServerOptions) (server, agent []string) {
	t.Helper()
	if !o.Cluster {
		return o.Flags, nil
	}
	server, agent, err := SplitFlags(o.Flags)
	if err != nil {
		t.Fatal(err)
	}
	return server, append([]string{"--cpu", clusterCPU, "--memory", clusterMemoryGB}, agent...)
}
