#!/usr/bin/env bash
# Build helm from its Go module (the only registry route to it here), cached by
# version under ~/.cache. Prints the path of the helm binary.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE="${XOCCM_CACHE:-${HOME}/.cache/xenorchestra-ccm}"
BIN="${CACHE}/helm/${HELM_VERSION}"
if [[ ! -x "${BIN}/helm" ]]; then
  echo "install-helm: building helm ${HELM_VERSION} (cold: a few minutes)" >&2
  mkdir -p "${BIN}"
  GOBIN="${BIN}" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >&2
fi
echo "${BIN}/helm"
