#!/usr/bin/env bash
# Builds the skiff container image (a static skiff binary on scratch) with
# podman, for the virtual node's Deployment. Usage:
#   hack/image.sh [IMAGE]     (default ghcr.io/skiff-sh/skiff:latest)
# Push it where the cluster pulls from: podman push IMAGE.
set -euo pipefail
image="${1:-ghcr.io/skiff-sh/skiff:latest}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ctx="$(mktemp -d)"
trap 'rm -rf "${ctx}"' EXIT
export PATH="/usr/local/go/bin:${PATH}"
(cd "${here}/.." && CGO_ENABLED=0 go build -trimpath -o "${ctx}/skiff" ./cmd/skiff)
cp /etc/ssl/certs/ca-certificates.crt "${ctx}/"
cp "${here}/../deploy/image/Containerfile" "${ctx}/"
podman build -q -t "${image}" -f "${ctx}/Containerfile" "${ctx}" >&2
echo "${image}"
