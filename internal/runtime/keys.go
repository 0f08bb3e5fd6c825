package runtime

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
)

// runc gives every container a session keyring of its own (so that no
// container shares the host's keys), and the kernel counts each against
// the quota of the key's owner: the container's root, which with user
// namespaces is one host UID for every group (--userns-remap default).
// The kernel's default quota for a user other than root is 200 keys and
// 20000 bytes (kernel.keys.maxkeys, maxbytes), so the 201st container of
// a host failed with "unable to create session key: disk quota exceeded".
// These are the floors a host running Skiff needs, what container hosts
// (LXD's production settings, Docker's many-container guides) raise them
// to; a higher value an operator set is kept.
const (
	minMaxKeys  = 1000000
	minMaxBytes = 25000000
)

// keyQuotaFiles are the sysctls raiseKeyQuota writes, with their floors.
var keyQuotaFiles = []struct {
	path string
	min  int64
}{
	{"/proc/sys/kernel/keys/maxkeys", minMaxKeys},
	{"/proc/sys/kernel/keys/maxbytes", minMaxBytes},
}

// raiseKeyQuota raises the per-user key quotas to their floors. A host
// where they cannot be written (not root, a read-only /proc) is logged,
// not refused: containers start until the quota is reached.
func raiseKeyQuota(log *slog.Logger) {
	for _, f := range keyQuotaFiles {
		raw, err := os.ReadFile(f.path)
		if err != nil {
			log.Warn("runtime: cannot read key quota", "file", f.path, "err", err)
			continue
		}
		cur, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
		if err != nil || cur >= f.min {
			continue
		}
		if err := os.WriteFile(f.path, []byte(fmt.Sprintf("%d\n", f.min)), 0o644); err != nil {
			log.Warn("runtime: cannot raise key quota; containers of one user beyond it fail to start", "file", f.path, "have", cur, "want", f.min, "err", err)
			continue
		}
		log.Info("runtime: raised the kernel's per-user key quota for container keyrings", "file", f.path, "from", cur, "to", f.min)
	}
}
