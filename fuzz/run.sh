#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30; CI uses a short run, see .ci/run).
#   fuzz/run.sh [SECONDS]        long run: fuzz/run.sh 600
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
for target in query provider_payloads change_windows render outgoing_template repo_urls client_address build_inputs; do
  echo "==> fuzzing $target for ${seconds}s"
  cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 | tail -3
done
