#!/usr/bin/env bash
# Builds the Kubernetes control plane that internal/testenv/k8s runs in tests:
# kube-apiserver, kube-scheduler, kube-controller-manager and etcd (plus
# kubectl when none is on PATH), from the pinned module in tools/k8s.
#
# The binaries go to a per-machine cache outside the repo, keyed by version:
#   ${SKIFF_K8S_CACHE:-/var/cache/skiff/k8s}/v1.37.2/bin/
# The script is idempotent: when every binary is there and kube-apiserver
# reports the pinned version it does nothing. It prints the bin dir on stdout
# (progress goes to stderr). A build takes about 8-10 minutes on 2 cores.
set -euo pipefail

K8S_VERSION=v1.37.2
K8S_MAJOR=1
K8S_MINOR=37

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
moddir="${here}/../tools/k8s"
cache="${SKIFF_K8S_CACHE:-/var/cache/skiff/k8s}"
bindir="${cache}/${K8S_VERSION}/bin"
export PATH="/usr/local/go/bin:${PATH}"

log() { echo "build-k8s: $*" >&2; }

# kubectl is built only when none is installed (or SKIFF_K8S_BUILD_KUBECTL=1);
# the harness prefers ${bindir}/kubectl over the one on PATH.
need_kubectl() {
	[[ "${SKIFF_K8S_BUILD_KUBECTL:-}" == 1 ]] || ! command -v kubectl >/dev/null 2>&1
}

is_complete() {
	local b
	for b in etcd kube-apiserver kube-scheduler kube-controller-manager; do
		[[ -x "${bindir}/${b}" ]] || return 1
	done
	if need_kubectl && [[ ! -x "${bindir}/kubectl" ]]; then
		return 1
	fi
	"${bindir}/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes ${K8S_VERSION}"
}

if is_complete; then
	echo "${bindir}"
	exit 0
fi

if ! grep -q "k8s.io/kubernetes ${K8S_VERSION}\$" "${moddir}/go.mod"; then
	log "tools/k8s/go.mod does not pin k8s.io/kubernetes ${K8S_VERSION}; update K8S_VERSION here too"
	exit 1
fi

mkdir -p "${cache}/${K8S_VERSION}"
# One build at a time per machine: a second caller waits, then finds the
# binaries in place.
exec 9>"${cache}/${K8S_VERSION}/.lock"
flock 9
if is_complete; then
	echo "${bindir}"
	exit 0
fi

tmp="$(mktemp -d "${cache}/${K8S_VERSION}/.build.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
	ldflags+=" -X ${pkg}.gitMajor=${K8S_MAJOR}"
	ldflags+=" -X ${pkg}.gitMinor=${K8S_MINOR}"
	ldflags+=" -X ${pkg}.gitTreeState=clean"
	ldflags+=" -X ${pkg}.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
done

pkgs=(
	k8s.io/kubernetes/cmd/kube-apiserver
	k8s.io/kubernetes/cmd/kube-scheduler
	k8s.io/kubernetes/cmd/kube-controller-manager
	go.etcd.io/etcd/server/v3
)
if need_kubectl; then
	pkgs+=(k8s.io/kubernetes/cmd/kubectl)
fi

log "building ${pkgs[*]} (Kubernetes ${K8S_VERSION}) into ${bindir}; this takes several minutes"
start=$(date +%s)
(
	cd "${moddir}"
	CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -tags selinux,notest \
		-ldflags "${ldflags}" -o "${tmp}/" "${pkgs[@]}"
)
# The etcd server module's main package is named after its path: "server".
mv "${tmp}/server" "${tmp}/etcd"
log "built in $(($(date +%s) - start))s"

mkdir -p "${bindir}"
for f in "${tmp}"/*; do
	mv -f "${f}" "${bindir}/"
done

if ! is_complete; then
	log "build finished but ${bindir} is incomplete or reports the wrong version"
	exit 1
fi
echo "${bindir}"
