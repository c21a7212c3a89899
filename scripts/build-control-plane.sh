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

build_kube_apiserver() {
  local work staging_version gomod
  work="$(mktemp -d)"
  trap 'rm -rf "${work}"' RETURN
  staging_version="v0.${KUBE_VERSION#v1.}"
  cd "${work}"
  go mod init throwaway/kube-apiserver >/dev/null 2>&1
  # The staging modules are required at v0.0.0 and replaced by local paths that
  # a dependent module ignores (kubernetes/kubernetes#79384): read their names
  # from the module's own go.mod and point each at its published twin.
  gomod="$(go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  {
    echo "require k8s.io/kubernetes ${KUBE_VERSION}"
    grep -E '^\s*k8s\.io/[a-z0-9-]+ v0\.0\.0\s*$' "${gomod}" | awk -v v="${staging_version}" '{print "replace " $1 " => " $1 " " v}'
  } >>go.mod
  cat >tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  go mod tidy -e >&2 2>/dev/null || go mod tidy -e >&2
  go build -trimpath \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "${KUBE_VERSION}" | cut -d. -f2)" \
    -o "${BIN}/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "${BIN}/kube-apiserver.tmp" "${BIN}/kube-apiserver"
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
