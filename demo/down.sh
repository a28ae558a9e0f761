#!/usr/bin/env bash
# `make demo-down`: stops what `make demo` started (the operator, the Git server, the control
# plane: exactly the processes it recorded) and removes the demo's state.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
demo="${DEMO_DIR:-$root/target/demo}"
[[ -d "$demo" ]] || { echo "no demo running"; exit 0; }
for name in operator git-http; do
  pid_file="$demo/$name.pid"
  [[ -f "$pid_file" ]] || continue
  pid="$(cat "$pid_file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "[demo] stopped $name ($pid)"
  fi
  rm -f "$pid_file"
done
"$root/testenv/down.sh" "$demo/testenv"
rm -rf "$demo"
echo "[demo] stopped"
