#!/usr/bin/env bash
# Builds the helm command that test/vnode's TestHelmChart runs against
# deploy/helm/skiff-virtual-node, from the pinned module in tools/helm.
#
# The binary goes to a per-machine cache outside the repo, keyed by version:
#   ${SKIFF_HELM_CACHE:-/var/cache/skiff/helm}/v3.22.0/bin/helm
# The script is idempotent: when the binary is there and `helm version`
# reports the pinned version it does nothing. It prints the binary's path on
# stdout (progress goes to stderr).
set -euo pipefail

HELM_VERSION=v3.22.0
# The Kubernetes minor that helm v3.22.0's k8s.io modules (v0.37) speak; helm
# uses it as the default .Capabilities.KubeVersion for `helm template`/`lint`.
K8S_MAJOR=1
K8S_MINOR=37

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
moddir="${here}/../tools/helm"
cache="${SKIFF_HELM_CACHE:-/var/cache/skiff/helm}"
bindir="${cache}/${HELM_VERSION}/bin"
bin="${bindir}/helm"
export PATH="/usr/local/go/bin:${PATH}"

log() { echo "build-helm: $*" >&2; }

is_complete() {
	[[ -x "${bin}" ]] || return 1
	[[ "$("${bin}" version --template '{{.Version}}' 2>/dev/null)" == "${HELM_VERSION}" ]]
}

if is_complete; then
	echo "${bin}"
	exit 0
fi

if ! grep -q "helm.sh/helm/v3 ${HELM_VERSION}\$" "${moddir}/go.mod"; then
	log "tools/helm/go.mod does not pin helm.sh/helm/v3 ${HELM_VERSION}; update HELM_VERSION here too"
	exit 1
fi

mkdir -p "${cache}/${HELM_VERSION}"
# One build at a time per machine: a second caller waits, then finds the
# binary in place.
exec 9>"${cache}/${HELM_VERSION}/.lock"
flock 9
if is_complete; then
	echo "${bin}"
	exit 0
fi

tmp="$(mktemp -d "${cache}/${HELM_VERSION}/.build.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT

ldflags="-s -w"
ldflags+=" -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
	ldflags+=" -X ${pkg}.k8sVersionMajor=${K8S_MAJOR}"
	ldflags+=" -X ${pkg}.k8sVersionMinor=${K8S_MINOR}"
done

log "building helm ${HELM_VERSION} into ${bindir}; this takes a few minutes"
start=$(date +%s)
(
	cd "${moddir}"
	export GOFLAGS=-mod=mod
	go mod download helm.sh/helm/v3
	CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags}" -o "${tmp}/helm" helm.sh/helm/v3/cmd/helm
)
log "built in $(($(date +%s) - start))s"

mkdir -p "${bindir}"
mv -f "${tmp}/helm" "${bin}"

if ! is_complete; then
	log "build finished but ${bin} is missing or does not report ${HELM_VERSION}"
	exit 1
fi
echo "${bin}"
