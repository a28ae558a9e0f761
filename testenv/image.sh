#!/usr/bin/env bash
# Builds the operator's container image from the repository's Dockerfile with buildah (no
# daemon, no registry), the way users build it with `--build-arg BINARY=prebuilt --build-arg
# TOOLS=prebuilt-tools`: the release binary of `cargo build --release` and the helm and
# kustomize of testenv/build.sh on the runtime stage users get. The Debian base cannot be
# pulled here, so it is made once with mmdebstrap (BASE). The image is cached by the hash of
# its inputs (Dockerfile, binaries, base), as an OCI archive next to the control-plane binaries.
#
#   testenv/image.sh [STATE_DIR]   prints the image reference (localhost/tugboat:KEY); with a
#                                  running real node in STATE_DIR, imports it into its containerd
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
state="${1:-}"
cache="${TUGBOAT_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tugboat/testenv}"
log() { printf '[testenv %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
"$here/deps.sh"
store="$cache/buildah"
buildah() { command buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs "$@"; }
mkdir -p "$cache/images"

# 1. The Debian 12 base (what debian:bookworm-slim is), made once per suite and script version.
base_key="$(sed -n '/^# base:begin/,/^# base:end/p' "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)"
base="localhost/debian-base:bookworm-$base_key"
# base:begin
if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  log "making the Debian 12 base image with mmdebstrap (once; about a minute)"
  tmp="$(mktemp -d)"
  mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$tmp/base.tar" http://deb.debian.org/debian
  container="$(buildah from scratch)"
  buildah add "$container" "$tmp/base.tar" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd bash "$container"
  buildah commit --quiet "$container" "$base" >/dev/null
  buildah rm "$container" >/dev/null
  rm -rf "$tmp"
fi
# base:end

# 2. The release binary (a no-op when it is up to date).
log "building the release binary (cargo build --release)"
(cd "$root" && cargo build --release --locked --quiet --bin tugboat)

# 3. helm and kustomize, the ones the tests use (TOOLS=prebuilt-tools takes them from here).
tools="$root/target/image-tools"
bin="$("$here/build.sh" helm kustomize)"
mkdir -p "$tools"
cp -f "$bin/helm" "$bin/kustomize" "$tools/"

# 4. The image, cached by its inputs.
key="$( (cat "$root/Dockerfile" "$root/.dockerignore"; sha256sum "$root/target/release/tugboat" "$tools/helm" "$tools/kustomize"; echo "$base") | sha256sum | cut -c1-16)"
image="localhost/tugboat:$key"
archive="$cache/images/tugboat-$key.oci.tar"
if [[ ! -f "$archive" ]]; then
  log "building $image from the Dockerfile (buildah, BINARY=prebuilt, TOOLS=prebuilt-tools)"
  start=$(date +%s)
  buildah bud --quiet --isolation chroot --pull=false --layers=false \
    --build-arg BASE="$base" --build-arg BINARY=prebuilt \
    --build-arg TOOLS=prebuilt-tools -t "$image" "$root" >/dev/null
  rm -f "$cache"/images/tugboat-*.oci.tar
  buildah push --quiet "$image" "oci-archive:$archive.tmp:$image"
  mv "$archive.tmp" "$archive"
  # Keep the store small: only the base and the newest operator image.
  for old in $(buildah images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/tugboat:' | grep -v ":$key$"); do
    buildah rmi "$old" >/dev/null 2>&1 || true
  done
  log "built $image in $(($(date +%s) - start))s ($(du -m "$archive" | cut -f1) MiB)"
fi

# 5. Into the real node's containerd, when one runs.
sock="$state/node/containerd/containerd.sock"
if [[ -n "$state" && -S "$sock" ]]; then
  if ! ctr --address "$sock" -n k8s.io images ls -q | grep -qx "$image"; then
    ctr --address "$sock" -n k8s.io images import "$archive" >/dev/null
    log "imported $image into the real node"
  fi
fi
echo "$image"
