#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok), the chart tools (helm, kubeconform) and
# kustomize from their Go modules, once per pinned version, into the user's
# cache directory. testenv/image.sh puts this helm and kustomize in the image.
#
#   testenv/build.sh            build what is missing, print the bin directory
#
# Each wrapper module below (go.mod + go.sum, committed) pins one tool set.
# The cache key is a hash of that wrapper's go.mod/go.sum, so changing a
# version rebuilds exactly that set. A cold build of every set takes about 10
# minutes on two cores (kube 5 of them); a warm one takes well under a second.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${TUGBOAT_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tugboat/testenv}"
bin="$cache/bin"
mkdir -p "$bin"

log() { printf '[testenv %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# kube version -> ldflags that make `kubectl version` and /version truthful.
kube_version="$(grep -Eo "k8s.io/kubernetes v[0-9.]+" "$here/kube/go.mod" | head -1 | cut -d" " -f2)"
kube_minor="$(echo "$kube_version" | cut -d. -f2)"
kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$kube_minor -X k8s.io/client-go/pkg/version.gitVersion=$kube_version"

# helm version -> the ldflags of helm's release builds: `helm version` names the tag, and
# `helm template`/`helm lint` default to the Kubernetes minor of helm's client-go (v0.N -> 1.N).
# The Dockerfile's tools stage sets the same.
helm_version="$(grep -Eo "helm.sh/helm/v3 v[0-9.]+" "$here/helm/go.mod" | head -1 | cut -d" " -f2)"
helm_kube_minor="$(grep -Eo "k8s.io/client-go v[0-9.]+" "$here/helm/go.mod" | head -1 | cut -d" " -f2 | cut -d. -f2)"
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$helm_kube_minor"
done

# set name | packages to build | ldflags
sets=(
  "etcd|go.etcd.io/etcd/server/v3|-s -w"
  "kube|k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy|$kube_ldflags"
  "kwok|sigs.k8s.io/kwok/cmd/kwok|-s -w"
  "helm|helm.sh/helm/v3/cmd/helm|$helm_ldflags"
  "kubeconform|github.com/yannh/kubeconform/cmd/kubeconform|-s -w"
  "kustomize|sigs.k8s.io/kustomize/kustomize/v5|-s -w"
)

# Heartbeat so a long cold build never looks hung.
heartbeat() {
  local what="$1" start="$2"
  while sleep 60; do
    log "still building $what ($(( ($(date +%s) - start) / 60 )) min so far; a cold build of kube takes 5-11 min on 2 cores)"
  done
}

# Every argument names a set to build ("etcd kube kwok"); none means all of them.
want="${*:-all}"
# One build at a time per cache (a demo and a test run may start side by side).
exec 8>"$cache/.build.lock"
flock 8
for entry in "${sets[@]}"; do
  IFS='|' read -r name pkgs ldflags <<<"$entry"
  [[ "$want" == all || " $want " == *" $name "* ]] || continue
  # The key covers the pinned versions and the package list, so adding a binary rebuilds the set.
  key="$( (cat "$here/$name/go.mod" "$here/$name/go.sum"; echo "$pkgs $ldflags") | sha256sum | cut -c1-16)"
  stamp="$bin/.$name-$key"
  if [[ -f "$stamp" ]]; then
    continue
  fi
  start=$(date +%s)
  log "building $name ($pkgs) - cached afterwards under $bin"
  heartbeat "$name" "$start" &
  hb=$!
  out="$cache/build-$name"
  rm -rf "$out" && mkdir -p "$out"
  # shellcheck disable=SC2086
  if ! (cd "$here/$name" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$out/" $pkgs); then
    kill "$hb" 2>/dev/null || true
    log "build of $name failed"
    exit 1
  fi
  kill "$hb" 2>/dev/null || true
  wait "$hb" 2>/dev/null || true
  # etcd's main package is the module root go.etcd.io/etcd/server/v3, which go names "server".
  if [[ "$name" == etcd && -f "$out/server" ]]; then mv "$out/server" "$out/etcd"; fi
  mv -f "$out"/* "$bin/"
  rm -rf "$out" "$bin/.$name-"*
  touch "$stamp"
  log "built $name in $(( $(date +%s) - start ))s"
done
echo "$bin"
