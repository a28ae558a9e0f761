#!/usr/bin/env bash
# A private mount namespace for the real node (containerd, kubelet, kube-proxy), held by a
# `sleep` process. In it, the sysctls the kubelet and the CNI bridge plugin would otherwise
# rewrite on the host are covered by bind-mounted files that already hold the wanted values,
# and /var is an overlay whose upper layer lives in NODE_DIR: the kubelet hard-codes
# /var/lib/kubelet/device-plugins and /var/log/containers, libcni caches in /var/lib/cni.
# Nothing on the host's /proc/sys or /var changes; every mount containerd and the kubelet make
# lives only in this namespace and goes away with it.
#
#   testenv/nodens.sh start NODE_DIR   prints the holder's PID (also in NODE_DIR/nodens.pid)
#   testenv/nodens.sh stop NODE_DIR    stops the holder (after everything else in it stopped)
set -euo pipefail
action="${1:?start or stop}"
R="${2:?node directory}"
case "$action" in
start)
  if [[ -f $R/nodens.pid ]] && kill -0 "$(cat "$R/nodens.pid")" 2>/dev/null; then cat "$R/nodens.pid"; exit 0; fi
  mkdir -p "$R/sysctl" "$R/nsvar/upper" "$R/nsvar/work" "$R/logs"
  # setupKernelTunables() in the kubelet wants the first six; the bridge plugin (isGateway) ip_forward.
  printf '%s\n' vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
    kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000 net/ipv4/ip_forward=1 >"$R/sysctl/list"
  while IFS== read -r k v; do echo "$v" >"$R/sysctl/${k//\//_}"; done <"$R/sysctl/list"
  R="$R" unshare --mount --propagation private -- bash -c '
    set -e
    while IFS== read -r k v; do mount --bind "$R/sysctl/${k//\//_}" "/proc/sys/$k"; done <"$R/sysctl/list"
    mount -t overlay tugboat-node-var -o "lowerdir=/var,upperdir=$R/nsvar/upper,workdir=$R/nsvar/work" /var
    exec sleep infinity' </dev/null >"$R/logs/nodens.log" 2>&1 &
  echo $! >"$R/nodens.pid"
  for _ in $(seq 1 50); do
    [[ "$(nsenter -t "$(cat "$R/nodens.pid")" -m cat /proc/sys/kernel/panic_on_oops 2>/dev/null)" == 1 ]] && break
    sleep 0.1
  done
  kill -0 "$(cat "$R/nodens.pid")" 2>/dev/null || { echo "the node's mount namespace holder died:" >&2; cat "$R/logs/nodens.log" >&2; exit 1; }
  cat "$R/nodens.pid"
  ;;
stop)
  [[ -f $R/nodens.pid ]] || exit 0
  pid="$(cat "$R/nodens.pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$R/nodens.pid"
  ;;
esac
