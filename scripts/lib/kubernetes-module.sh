# Sourced by the build scripts: build commands of k8s.io/kubernetes from their Go
# module, in a throwaway module, with envtest's trick (real-kube-apiserver.md).
#
# `go install k8s.io/kubernetes/cmd/...@v1.x` fails: the module requires its
# staging modules at v0.0.0 and replaces them with ./staging paths that a
# dependent module ignores (kubernetes/kubernetes#79384). The throwaway module
# reads their names from k8s.io/kubernetes' own go.mod and points each at its
# published twin (v0.<minor>.<patch>).
#
# build_kubernetes_commands VERSION OUT_DIR cmd/NAME...   (run in a subshell)

build_kubernetes_commands() {
  local version="$1" out="$2" work staging_version gomod minor cmd packages=()
  shift 2
  work="$(mktemp -d)"
  trap 'rm -rf "${work}"' RETURN
  staging_version="v0.${version#v1.}"
  minor="$(echo "${version}" | cut -d. -f2)"
  cd "${work}"
  go mod init throwaway/kubernetes-commands >/dev/null 2>&1
  gomod="$(go mod download -json "k8s.io/kubernetes@${version}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  {
    echo "require k8s.io/kubernetes ${version}"
    grep -E '^\s*k8s\.io/[a-z0-9-]+ v0\.0\.0\s*$' "${gomod}" | awk -v v="${staging_version}" '{print "replace " $1 " => " $1 " " v}'
  } >>go.mod
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for cmd in "$@"; do
      printf '\t_ "k8s.io/kubernetes/%s"\n' "${cmd}"
      packages+=("k8s.io/kubernetes/${cmd}")
    done
    printf ')\n'
  } >tools.go
  go mod tidy -e >&2 2>/dev/null || go mod tidy -e >&2
  mkdir -p "${out}.tmp"
  go build -trimpath \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=${version} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor}" \
    -o "${out}.tmp/" "${packages[@]}"
  mkdir -p "${out}"
  for cmd in "$@"; do
    mv "${out}.tmp/$(basename "${cmd}")" "${out}/"
  done
  rmdir "${out}.tmp"
}
