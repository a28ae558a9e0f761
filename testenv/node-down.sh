#!/usr/bin/env bash
# Stops the real node testenv/node-up.sh started, by recorded PID, and removes what it left on
# the host: the pods' containers (through containerd), shims in its mount namespace,
# kube-proxy's iptables rules, the kubelet's chains, the bridge rn0 and its routes, the
# kubelet's cgroups. Its state directory goes too, so the next start is a fresh node.
#   testenv/node-down.sh STATE_DIR
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${1:?control plane state directory}"
R="$state/node"
[[ -d "$R" ]] || exit 0
log() { printf '[testenv %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
bin="${TUGBOAT_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tugboat/testenv}/bin"
pid_of() { awk -v n="$1" '$1==n {print $2}' "$R/pids" 2>/dev/null | tail -1; }
stop_pid() { # NAME PID
  local name="$1" pid="$2"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  log "stopped $name ($pid)"
}
ctr_k8s() { ctr --address "$R/containerd/containerd.sock" -n k8s.io "$@"; }

# 1. kube-proxy and its rules, the relay, the kubelet (containers keep running without it).
stop_pid kube-proxy "$(pid_of kube-proxy)"
if [[ -x $bin/kube-proxy && "$(iptables-save 2>/dev/null)" == *KUBE-SERVICES* ]]; then
  "$bin/kube-proxy" --cleanup >"$R/logs/kube-proxy-cleanup.log" 2>&1 || true
fi
stop_pid api-relay "$(pid_of api-relay)"
stop_pid kubelet "$(pid_of kubelet)"
# 2. Every container of the CRI namespace, through containerd (their shims then exit).
containerd_pid="$(pid_of containerd)"
if [[ -n "$containerd_pid" ]] && kill -0 "$containerd_pid" 2>/dev/null; then
  for t in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
  for _ in $(seq 1 50); do [[ -z "$(ctr_k8s tasks ls 2>/dev/null | awk 'NR>1 && $3=="RUNNING"')" ]] && break; sleep 0.1; done
  for t in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks delete -f "$t" >/dev/null 2>&1; done
  for c in $(ctr_k8s containers ls -q 2>/dev/null); do ctr_k8s containers rm "$c" >/dev/null 2>&1; done
fi
stop_pid containerd "$containerd_pid"
# 3. Anything still in the node's mount namespace (left-over shims), then its holder.
if [[ -f $R/nodens.pid ]] && kill -0 "$(cat "$R/nodens.pid")" 2>/dev/null; then
  holder="$(cat "$R/nodens.pid")"
  mnt="$(readlink "/proc/$holder/ns/mnt")"
  for d in /proc/[0-9]*; do
    p="${d#/proc/}"
    [[ "$p" == "$holder" ]] && continue
    [[ "$(readlink "$d/ns/mnt" 2>/dev/null)" == "$mnt" ]] && stop_pid "$(cat "$d/comm" 2>/dev/null)" "$p"
  done
  "$here/nodens.sh" stop "$R"
fi
# 4. Cgroups made by the kubelet and runc (deepest first), the network, the kubelet's chains.
for h in /sys/fs/cgroup/*/; do
  for top in kubepods k8s.io; do
    [[ -d "$h$top" ]] && find "$h$top" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
done
ip link del rn0 2>/dev/null
ip route del unreachable 10.64.0.0/16 2>/dev/null
for ipt in iptables ip6tables; do
  while $ipt -D FORWARD -m comment --comment tugboat-node-guard -i rn0 ! -o rn0 -j DROP 2>/dev/null; do :; done
  while $ipt -D FORWARD -m comment --comment tugboat-node-guard ! -i rn0 -j DROP 2>/dev/null; do :; done
  $ipt -D INPUT -j KUBE-FIREWALL 2>/dev/null
  $ipt -D OUTPUT -j KUBE-FIREWALL 2>/dev/null
  $ipt -F KUBE-FIREWALL 2>/dev/null
  $ipt -X KUBE-FIREWALL 2>/dev/null
  for t in mangle filter nat; do $ipt -t $t -X KUBE-KUBELET-CANARY 2>/dev/null; done
  $ipt -t mangle -X KUBE-IPTABLES-HINT 2>/dev/null
done
# containerd 1.6 hard-codes its shims' sockets in /run/containerd/s; drop it once it is empty.
if [[ -d /run/containerd && -z "$(find /run/containerd -mindepth 1 -not -type d 2>/dev/null)" ]]; then
  find /run/containerd -depth -type d -exec rmdir {} \; 2>/dev/null
fi
# The overlay's upper layer holds root-owned files of the pods; nothing is mounted any more.
rm -rf "$R"
log "stopped the real node"
exit 0
