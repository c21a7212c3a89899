#!/usr/bin/env bash
# Build (or find) what a real Kubernetes node needs, for tests/node: kubelet,
# kube-controller-manager, kube-scheduler and kubectl from k8s.io/kubernetes'
# Go module (the trick of build-control-plane.sh, scripts/lib/kubernetes-module.sh),
# containerd v2 with its runc shim and ctr from containerd's Go module, a static
# pause binary (scripts/pause), and from Debian's packages runc and the CNI
# plugins (bridge, host-local, loopback), plus iproute2, openssl and curl for the
# suite itself, installed with apt-get when missing.
# Everything is cached by version under ~/.cache: a second run only checks.
#
# Usage: scripts/build-node.sh      # prints the directory holding every binary
#        (runc and cni/ there are links to Debian's files)
# Env:   KUBE_VERSION (default v1.36.3), CONTAINERD_VERSION (default v2.4.2),
#        XOCCM_CACHE (default ~/.cache/xenorchestra-ccm)
# Cold: about 8 minutes on 2 cores (kubelet and its modules are most of it).
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
CACHE="${XOCCM_CACHE:-${HOME}/.cache/xenorchestra-ccm}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="${CACHE}/node/kube-${KUBE_VERSION}_containerd-${CONTAINERD_VERSION}"
KUBE_COMMANDS=(cmd/kubelet cmd/kube-controller-manager cmd/kube-scheduler cmd/kubectl)
CONTAINERD_COMMANDS=(containerd containerd-shim-runc-v2 ctr)

log() { echo "build-node: $*" >&2; }
# shellcheck source=scripts/lib/kubernetes-module.sh
source "${HERE}/lib/kubernetes-module.sh"

debian_packages() {
  local missing=()
  command -v runc >/dev/null 2>&1 || [[ -x /usr/sbin/runc ]] || missing+=(runc)
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] \
    || missing+=(containernetworking-plugins)
  # What tests/node drives the node with: veth and addresses, certificates, probes.
  command -v ip >/dev/null 2>&1 || missing+=(iproute2)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  ((${#missing[@]} == 0)) && return 0
  if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "missing Debian packages ${missing[*]} and cannot install them (needs root and apt-get)"
    return 1
  fi
  log "installing ${missing[*]} (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

build_containerd() {
  local work cmd
  work="$(mktemp -d)"
  trap 'rm -rf "${work}"' RETURN
  cd "${work}"
  go mod init throwaway/containerd >/dev/null 2>&1
  # go get of the commands' packages (not the module) records their dependencies.
  local packages=("${CONTAINERD_COMMANDS[@]/#/github.com/containerd/containerd/v2/cmd/}")
  go get "${packages[@]/%/@${CONTAINERD_VERSION}}" >&2
  mkdir -p "${BIN}.containerd"
  # Static, as containerd's releases: no cgo means no btrfs snapshotter (overlayfs
  # is the one used) and nothing to link against.
  CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=${CONTAINERD_VERSION}" \
    -o "${BIN}.containerd/" "${packages[@]}"
  for cmd in "${CONTAINERD_COMMANDS[@]}"; do mv "${BIN}.containerd/${cmd}" "${BIN}/"; done
  rmdir "${BIN}.containerd"
}

build_pause() {
  (cd "${HERE}/pause" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${BIN}/pause.tmp" .)
  mv "${BIN}/pause.tmp" "${BIN}/pause"
}

debian_packages
mkdir -p "${BIN}"
ln -sfn "$(command -v runc || echo /usr/sbin/runc)" "${BIN}/runc"
ln -sfn /usr/lib/cni "${BIN}/cni"
for cmd in "${KUBE_COMMANDS[@]}"; do
  if [[ ! -x "${BIN}/$(basename "${cmd}")" ]]; then
    log "building ${KUBE_COMMANDS[*]##*/} ${KUBE_VERSION} (cold: about 6 minutes)"
    (build_kubernetes_commands "${KUBE_VERSION}" "${BIN}" "${KUBE_COMMANDS[@]}")
    break
  fi
done
for cmd in "${CONTAINERD_COMMANDS[@]}"; do
  if [[ ! -x "${BIN}/${cmd}" ]]; then
    log "building containerd ${CONTAINERD_VERSION} (cold: about a minute)"
    (build_containerd)
    break
  fi
done
# The pause binary is rebuilt when its source changes.
pause_stamp="${BIN}/pause.$(sha256sum "${HERE}/pause/main.go" | cut -c1-12)"
if [[ ! -x "${BIN}/pause" || ! -f "${pause_stamp}" ]]; then
  build_pause
  rm -f "${BIN}"/pause.*[0-9a-f]
  touch "${pause_stamp}"
fi
echo "${BIN}"
