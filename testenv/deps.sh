#!/usr/bin/env bash
# Installs the Debian packages the test environment needs, once, and says which and why:
#   - the real node: containerd, runc, the CNI plugins, iptables, conntrack, socat (the API
#     server relay for pods), umoci and busybox-static (workload images without a registry);
#   - the operator's image: buildah (daemonless) and mmdebstrap (a Debian base made here);
#   - tests/source_ssh.rs: a real sshd;
#   - git, openssl, curl, python3 with venv (the test Git server, certificates, checkers).
#
#   testenv/deps.sh            install what is missing (root: apt-get; otherwise print the command)
#   testenv/deps.sh --check    only report what is missing (exit 1 if anything is)
set -euo pipefail
log() { printf '[testenv %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# package | a file it installs
needs=(
  "containerd|/usr/bin/containerd"
  "runc|/usr/sbin/runc"
  "containernetworking-plugins|/usr/lib/cni/bridge"
  "iptables|/usr/sbin/iptables"
  "conntrack|/usr/sbin/conntrack"
  "socat|/usr/bin/socat"
  "iproute2|/usr/sbin/ip"
  "util-linux|/usr/bin/nsenter"
  "umoci|/usr/bin/umoci"
  "busybox-static|/bin/busybox"
  "buildah|/usr/bin/buildah"
  "mmdebstrap|/usr/bin/mmdebstrap"
  "openssh-server|/usr/sbin/sshd"
  "openssh-client|/usr/bin/ssh"
  "git|/usr/bin/git"
  "openssl|/usr/bin/openssl"
  "curl|/usr/bin/curl"
  "gcc|/usr/bin/gcc"
  "libc6-dev|/usr/lib/x86_64-linux-gnu/libc.a"
)
missing=()
for entry in "${needs[@]}"; do
  IFS='|' read -r package file <<<"$entry"
  [[ -e "$file" ]] || missing+=("$package")
done
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)

if ((${#missing[@]} == 0)); then
  exit 0
fi
command=(apt-get install -y --no-install-recommends "${missing[@]}")
if [[ "${1:-}" == --check ]]; then
  log "missing Debian packages: ${missing[*]}"
  exit 1
fi
if [[ "$(id -u)" != 0 ]]; then
  log "the test environment needs these Debian packages: ${missing[*]}"
  log "install them as root:  apt-get update && ${command[*]}"
  exit 1
fi
log "installing Debian packages the test environment needs: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${command[@]}" -qq >/dev/null
log "installed ${missing[*]}"
