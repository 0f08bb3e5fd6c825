package testenv

import (
	"slices"
	"testing"

	"github.com/spf13/pflag"

	servercmd "github.com/skiff-sh/skiff/internal/cmd/server"
)

// Every flag of `skiff server` has a side in a cluster, the booleans are
// known as booleans, and the table names no flag the command lost; the
// agent's side is flags `skiff agent` has.
func TestServerFlagsNameEveryFlag(t *testing.T) {
	seen := map[string]bool{}
	servercmd.NewCmd().Flags().VisitAll(func(f *pflag.Flag) {
		seen[f.Name] = true
		got, ok := serverFlags[f.Name]
		switch {
		case !ok:
			t.Errorf("--%s of skiff server: SplitFlags does not know whether the server or the agent of a cluster takes it", f.Name)
		case got.bool != (f.Value.Type() == "bool"):
			t.Errorf("--%s: serverFlags says boolean %v, the flag is a %s", f.Name, got.bool, f.Value.Type())
		}
	})
	agentCmd := servercmd.NewAgentCmd().Flags()
	for name, f := range serverFlags {
		if !seen[name] {
			t.Errorf("serverFlags names --%s, which skiff server does not have", name)
		}
		if f.side != toServer && agentCmd.Lookup(name) == nil {
			t.Errorf("serverFlags gives --%s to the agent, which skiff agent does not have", name)
		}
	}
}

func TestSplitFlags(t *testing.T) {
	server, agent, err := SplitFlags([]string{
		"--allow-privileged", "--exec-sessions-per-group", "2", "--stop-grace=1s",
		"--registry-mirror", "docker.io=http://127.0.0.1:5000", "--published-ports", "20000-20010", "--agent=false", "--log-level", "debug",
	})
	if err != nil {
		t.Fatal(err)
	}
	wantServer := []string{"--allow-privileged", "--exec-sessions-per-group", "2", "--registry-mirror", "docker.io=http://127.0.0.1:5000",
		"--agent=false", "--log-level", "debug"}
	wantAgent := []string{"--allow-privileged", "--stop-grace=1s", "--published-ports", "20000-20010", "--log-level", "debug"}
	if !slices.Equal(server, wantServer) || !slices.Equal(agent, wantAgent) {
		t.Errorf("SplitFlags: server %q, agent %q; want %q and %q", server, agent, wantServer, wantAgent)
	}
	for _, bad := range [][]string{{"--no-such-flag"}, {"stop-grace", "1s"}, {"--stop-grace"}} {
		if s, a, err := SplitFlags(bad); err == nil {
			t.Errorf("SplitFlags(%q) = %q, %q; want an error", bad, s, a)
		}
	}
}
