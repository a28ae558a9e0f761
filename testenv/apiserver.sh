#!/usr/bin/env bash
# Stops or starts only the kube-apiserver of a running control plane (for fault tests):
# etcd, the controllers and kwok keep running; `start` uses the exact flags of testenv/up.sh.
#   testenv/apiserver.sh STATE_DIR stop|start
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${1:?usage: apiserver.sh STATE_DIR stop|start}"
action="${2:?usage: apiserver.sh STATE_DIR stop|start}"
[[ -f "$state/pids" && -f "$state/kube-apiserver.cmd" ]] || { echo "no control plane in $state (run testenv/up.sh)" >&2; exit 1; }
pid="$(awk '$1 == "kube-apiserver" {print $2}' "$state/pids")"
case "$action" in
  stop)
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    echo "[testenv] kube-apiserver stopped" >&2
    ;;
  start)
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then echo "[testenv] kube-apiserver already running" >&2; exit 0; fi
    eval "command=($(cat "$state/kube-apiserver.cmd"))"
    "${command[@]}" >>"$state/logs/kube-apiserver.log" 2>&1 &
    new=$!
    # Keep the line's place in the pids file: down.sh stops in reverse start order.
    sed -i "s/^kube-apiserver .*/kube-apiserver $new/" "$state/pids"
    kubeconfig="$state/kubeconfig"
    bin="${TUGBOAT_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tugboat/testenv}/bin"
    for _ in $(seq 1 90); do
      "$bin/kubectl" --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1 && { echo "[testenv] kube-apiserver ready" >&2; exit 0; }
      sleep 1
    done
    echo "[testenv] kube-apiserver did not become ready; last log lines:" >&2
    tail -20 "$state/logs/kube-apiserver.log" >&2
    exit 1
    ;;
  *) echo "usage: apiserver.sh STATE_DIR stop|start" >&2; exit 2 ;;
esac
