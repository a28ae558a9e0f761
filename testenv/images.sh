#!/usr/bin/env bash
# Builds the workload images of the real node as OCI archives, without a registry, once per
# version of this script, into the cache next to the control-plane binaries:
#   busybox.oci.tar  localhost/busybox:local  busybox-static (sh, httpd, nc …), for test workloads
#   pause.oci.tar    localhost/pause:local    a static C pause, containerd's sandbox image
#   kubectl.oci.tar  localhost/kubectl:local  busybox plus the testenv kubectl, for in-cluster checks
# testenv/node-up.sh imports them into the node's containerd; pods use imagePullPolicy: Never.
#
#   testenv/images.sh BIN_DIR     prints the directory that holds the archives
set -euo pipefail
bin="${1:?the testenv bin directory (testenv/build.sh prints it)}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${TUGBOAT_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tugboat/testenv}"
key="$( (cat "${BASH_SOURCE[0]}"; dpkg-query -W busybox-static 2>/dev/null; sha256sum "$bin/kubectl") | sha256sum | cut -c1-16)"
out="$cache/images/workloads-$key"
if [[ -f "$out/.complete" ]]; then echo "$out"; exit 0; fi
log() { printf '[testenv %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
log "building the workload images (busybox, pause, kubectl) into $out"
rm -rf "$out" && mkdir -p "$out/src"
cd "$out"
cat >src/pause.c <<'C'
/* The sandbox's pause process, after kubernetes/build/pause/linux/pause.c. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>
static void sigdown(int signo) { psignal(signo, "Shutting down, got signal"); exit(0); }
static void sigreap(int signo) { (void)signo; while (waitpid(-1, NULL, WNOHANG) > 0); }
int main(void) {
  struct sigaction a = {.sa_handler = sigdown};
  sigaction(SIGINT, &a, NULL); sigaction(SIGTERM, &a, NULL);
  struct sigaction r = {.sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGCHLD, &r, NULL);
  for (;;) pause();
  return 42;
}
C
gcc -Os -static -o src/pause src/pause.c && strip src/pause

new() {  # NAME: an empty layout oci-NAME with the tag "local", unpacked into NAME-bundle
  umoci init --layout "oci-$1"
  umoci new --image "oci-$1:local"
  umoci unpack --image "oci-$1:local" "$1-bundle" >/dev/null
}
pack() {  # NAME CONFIG-ARGS...: repack the bundle and write NAME.oci.tar
  local name="$1"; shift
  umoci repack --image "oci-$name:local" "$name-bundle"
  umoci config --image "oci-$name:local" --os linux --architecture amd64 "$@"
  umoci gc --layout "oci-$name"
  (cd "oci-$name" && tar -cf "../$name.oci.tar" .)
  rm -rf "oci-$name" "$name-bundle"
}

new busybox
rootfs=busybox-bundle/rootfs
mkdir -p "$rootfs"/{bin,etc,tmp,proc,sys,dev,root,var/www}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do [[ $applet == busybox ]] || ln -sf busybox "$rootfs/bin/$applet"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
cp -a "$rootfs" busybox-rootfs
pack busybox --config.env PATH=/bin --config.cmd sh --config.workingdir /

new pause
cp src/pause pause-bundle/rootfs/pause
pack pause --config.entrypoint /pause --config.user 65535:65535

new kubectl
rm -rf kubectl-bundle/rootfs && mv busybox-rootfs kubectl-bundle/rootfs
cp "$bin/kubectl" kubectl-bundle/rootfs/bin/kubectl
pack kubectl --config.env PATH=/bin --config.cmd kubectl --config.workingdir /
rm -rf src
touch .complete
log "built $(ls "$out"/*.oci.tar | wc -l) workload images"
echo "$out"
