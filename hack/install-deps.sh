#!/usr/bin/env bash
# Installs what Skiff and its tests need on a fresh Debian bookworm host.
# Idempotent; run as root.
set -euo pipefail
pkgs=(runc crun podman docker-registry apache2-utils busybox-static
      containernetworking-plugins iptables nftables iproute2 git ca-certificates e2fsprogs dnsutils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian's az 2.45 for test/az (about 100 Python packages, some 2 minutes), with
# its recommends, as test/az was run with.
if ! dpkg-query -W -f='${Status}' azure-cli 2>/dev/null | grep -q "install ok installed"; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq azure-cli
fi
# The distribution registry package starts a system service on :5000; tests
# start their own registries and do not need it.
if command -v systemctl >/dev/null && systemctl is-active -q docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi
if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
  ver=1.26.8
  curl -fsSL "https://go.dev/dl/go${ver}.linux-amd64.tar.gz" | tar -C /usr/local -xz
fi
# podman as a benchmark peer on this host: runc (crun refuses the hybrid
# cgroup layout) and rlimits within the hard limits (see host notes).
mkdir -p /etc/containers
if [ ! -f /etc/containers/containers.conf ]; then
  cat > /etc/containers/containers.conf <<'CONF'
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
CONF
fi
