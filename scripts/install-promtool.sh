#!/usr/bin/env bash
# promtool (`promtool check rules`, `promtool test rules`) for the alert tests,
# cached under ~/.cache/xenorchestra-ccm/promtool/. Prints the binary's path.
#
# Where it comes from, and why: Debian's `prometheus` package, fetched with
# `apt-get download` and unpacked with `dpkg-deb -x` (only /usr/bin/promtool is
# kept). Measured cold on 2 vCPUs: 19 MB fetched in 3-6 s as root; 21 s as an
# unprivileged user on a machine without package lists. Building it from its Go
# module instead (`go install .../cmd/promtool@v0.316.0`, empty Go caches) took
# 12 min 48 s and 12 min of CPU, fetched 199 modules and left 3.6 GB of module and
# build caches: a quarter of CI's 40-minute budget, under the heavy lock, on every
# clean machine, for a tool whose rules and tests need nothing newer than Debian's.
#
# No root needed: `apt-get download` writes into the current directory and
# `dpkg-deb -x` installs nothing (no service started, no user created). Without
# package lists on the machine, root runs `apt-get update`; anyone else fills
# private lists under the cache. Off Debian (no apt-get), it falls back to the Go
# build (PROMTOOL_GO_VERSION); run it under the heavy lock then.
set -euo pipefail
shopt -s inherit_errexit
CACHE="${XOCCM_CACHE:-${HOME}/.cache/xenorchestra-ccm}"
DIR="${CACHE}/promtool"
PROMTOOL_GO_VERSION="${PROMTOOL_GO_VERSION:-v0.316.0}"

cached() {
  local found
  found="$(ls -1d "${DIR}"/*/promtool 2>/dev/null | sort -V | tail -n 1 || true)"
  [[ -n "${found}" && -x "${found}" ]] && echo "${found}"
}

from_debian() {
  local work deb version
  work="$(mktemp -d)"
  trap 'rm -rf "${work}"' RETURN
  local apt=(apt-get -q -o Debug::NoLocking=1)
  if ! (cd "${work}" && "${apt[@]}" download prometheus) >&2; then
    if [[ "$(id -u)" == 0 ]]; then
      apt-get -q update >&2
    else
      local lists="${CACHE}/apt/lists" cache="${CACHE}/apt/cache"
      mkdir -p "${lists}/partial" "${cache}/archives/partial"
      apt=("${apt[@]}" -o "Dir::State::Lists=${lists}" -o "Dir::Cache=${cache}")
      "${apt[@]}" update >&2
    fi
    (cd "${work}" && "${apt[@]}" download prometheus) >&2
  fi
  deb="$(ls "${work}"/prometheus_*.deb)"
  version="$(dpkg-deb -f "${deb}" Version)"
  dpkg-deb -x "${deb}" "${work}/root"
  mkdir -p "${DIR}/debian-${version}"
  install -m 0755 "${work}/root/usr/bin/promtool" "${DIR}/debian-${version}/promtool"
  echo "${DIR}/debian-${version}/promtool"
}

from_go() {
  local bin="${DIR}/go-${PROMTOOL_GO_VERSION}"
  mkdir -p "${bin}"
  GOBIN="${bin}" go install -trimpath -ldflags "-s -w" \
    "github.com/prometheus/prometheus/cmd/promtool@${PROMTOOL_GO_VERSION}" >&2
  echo "${bin}/promtool"
}

if ! found="$(cached)"; then
  echo "install-promtool: fetching promtool (cold: seconds from Debian's package)" >&2
  if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
    found="$(from_debian)"
  else
    found="$(from_go)"
  fi
fi
"${found}" --version >/dev/null
echo "${found}"
