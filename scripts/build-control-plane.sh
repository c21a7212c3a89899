#!/usr/bin/env bash
# Build the real kube-apiserver and etcd from their Go modules, the way envtest
# runs them, so the integration tests talk to a genuine API server without a
# container engine. Binaries are cached by version under ~/.cache: a second run
# only checks that they exist.
#
# Usage: scripts/build-control-plane.sh            # prints the bin directory
# Env:   KUBE_VERSION (default v1.36.3), ETCD_VERSION (default v3.6.16),
#        XOCCM_CACHE (default ~/.cache/xenorchestra-ccm)
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE="${XOCCM_CACHE:-${HOME}/.cache/xenorchestra-ccm}"
BIN="${CACHE}/control-plane/kube-${KUBE_VERSION}_etcd-${ETCD_VERSION}"

log() { echo "build-control-plane: $*" >&2; }
# shellcheck source=scripts/lib/kubernetes-module.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/kubernetes-module.sh"

build_kube_apiserver() {
  (build_kubernetes_commands "${KUBE_VERSION}" "${BIN}" cmd/kube-apiserver)
}

build_etcd() {
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "${work}"' RETURN
  cd "${work}"
  go mod init throwaway/etcd >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >&2
  go build -trimpath -ldflags "-s -w" -o "${BIN}/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "${BIN}/etcd.tmp" "${BIN}/etcd"
}

mkdir -p "${BIN}"
if [[ ! -x "${BIN}/etcd" ]]; then
  log "building etcd ${ETCD_VERSION} (cold: a minute or two)"
  build_etcd
fi
if [[ ! -x "${BIN}/kube-apiserver" ]]; then
  log "building kube-apiserver ${KUBE_VERSION} (cold: several minutes)"
  build_kube_apiserver
fi
echo "${BIN}"
