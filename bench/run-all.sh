#!/usr/bin/env bash
# Runs every benchmark and writes the results into docs/benchmarks.md.
#
# Starts the test control plane if it is not running (and stops it afterwards), builds the
# release binary, then runs, one after the other so they do not disturb each other:
#   criterion     cargo bench (profile bench-quick): render, window, signature, git_source, outgoing
#   build-time    bench/build_time.sh N=10    tugboat render of an overlay and a chart vs the tool alone
#   endpoint      bench/endpoint_load.sh      signed pushes, triggering calls (wrk)
#   restart       bench/trigger_to_rollout.sh call with rollout-restart vs kubectl
#   commit        MODE=commit …               new commit + call vs git fetch + kubectl apply
#   scale-100     bench/scale.sh APPS=100     first sync, idle RSS, one push → 100 apps
#   scale-100-kustomize  SOURCE=kustomize …   the same objects from one Kustomize overlay: builds
#   scale-1000    bench/scale.sh APPS=1000    first sync, idle RSS
#   no-change     bench/no_change_reconcile.sh
# Each script's full output goes to target/bench/NAME.txt; the section of docs/benchmarks.md
# between the `run-all` markers is replaced by the machine, the versions, one table of every
# target with the measured median and its ratio, and those outputs.
#
# Usage: bench/run-all.sh            (about 22 minutes on 2 cores)
# Env:   ONLY="endpoint restart" to run some of them (the table then shows "not run" for the
#        others), DOC (default docs/benchmarks.md), and each script's own variables.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=$ROOT/target/bench
DOC=${DOC:-$ROOT/docs/benchmarks.md}
ONLY=${ONLY:-criterion build-time endpoint restart commit scale-100 scale-100-kustomize scale-1000 no-change}
mkdir -p "$OUT"
progress() { printf '[run-all %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { echo "error: $*" >&2; exit 1; }
wanted() { [[ " $ONLY " == *" $1 "* ]]; }
command -v wrk >/dev/null || die "wrk is not installed; as root: apt-get install -y wrk"

started_env=0
if ! testenv/status.sh target/testenv >/dev/null 2>&1; then
    progress "starting the test control plane"
    testenv/up.sh target/testenv >/dev/null
    started_env=1
fi
trap '[[ $started_env == 1 ]] && testenv/down.sh target/testenv' EXIT
progress "building the release binary"
cargo build --release --locked 2>&1 | tail -1 >&2

run() { # run NAME COMMAND... : output to target/bench/NAME.txt, failures reported, not fatal
    local name=$1; shift
    wanted "$name" || { rm -f "$OUT/$name.txt"; return 0; }
    progress "$name: $*"
    if ! "$@" >"$OUT/$name.txt" 2>"$OUT/$name.log"; then
        echo "FAILED (exit $?); last lines of its log:" >>"$OUT/$name.txt"
        tail -20 "$OUT/$name.log" >>"$OUT/$name.txt"
        progress "$name failed; see $OUT/$name.log"
    fi
}
run criterion cargo bench --locked --profile bench-quick --bench render --bench window --bench signature --bench git_source --bench outgoing
run build-time env N=10 bench/build_time.sh
run endpoint env DURATION=10s RUNS=3 THREADS=2 bench/endpoint_load.sh
run restart env MODE=restart RUNS=7 bench/trigger_to_rollout.sh
run commit env MODE=commit RUNS=7 bench/trigger_to_rollout.sh
run scale-100 env APPS=100 bench/scale.sh
run scale-100-kustomize env APPS=100 SOURCE=kustomize IDLE=5 bench/scale.sh
run scale-1000 env APPS=1000 IDLE=20 bench/scale.sh
run no-change env N=50 bench/no_change_reconcile.sh

# --- the report ---------------------------------------------------------------------------
# value NAME KEY: from the SUMMARY line of target/bench/NAME.txt, or "not run".
value() {
    [[ -f $OUT/$1.txt ]] || { echo "not run"; return; }
    { grep '^SUMMARY ' "$OUT/$1.txt" || true; } | tail -1 | tr ' ' '\n' | awk -F= -v k="$2" '$1==k {print $2; f=1} END {if (!f) print "failed"}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a+0 == a && b+0 == b && b != 0) printf "%.2f×", a/b; else print "—" }'; }
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v+0 != v) { print "—"; exit }
    ok = (op == "ge") ? v >= t : v <= t; print ok ? "met" : "**missed**" }'; }
criterion_rows() {
    [[ -f $OUT/criterion.txt ]] || return 0
    awk '/time:/ && /%/ { next }  # a "change:" block compares with the previous run
         /time:/ { pre = $0; sub(/time:.*/, "", pre); gsub(/^ +| +$/, "", pre); if (pre != "") id = pre
                   s = $0; sub(/.*time: *\[/, "", s); sub(/\].*/, "", s); split(s, t, " ")
                   printf "| `%s` | %s %s |\n", id, t[3], t[4]; next }
         /^[^ ]/ && !/^(Benchmarking|Found|Gnuplot|Warning|Running|Finished|Compiling)/ { id = $0 }' "$OUT/criterion.txt"
}

push_rps=$(value endpoint push_rps); push_p99=$(value endpoint push_p99_ms)
trig_rps=$(value endpoint trigger_rps)
restart_ratio=$(value restart ratio); commit_ratio=$(value commit ratio)
storm_s=$(value scale-100 storm_s); storm_fetches=$(value scale-100 storm_fetches)
sync_1000=$(value scale-1000 first_sync_s); floor_1000=$(value scale-1000 floor_s)
rss_100=$(value scale-100 rss_mib); rss_1000=$(value scale-1000 rss_mib)
nochange_cpu=$(value no-change cpu_ms_per_reconcile); nochange_fetches=$(value no-change fetches)
nochange_deploys=$(value no-change deployments_added)
build_k=$(value build-time tugboat_kustomize_ms); build_h=$(value build-time tugboat_helm_ms)
build_k_ratio=$(value build-time kustomize_ratio); build_h_ratio=$(value build-time helm_ratio)
kstorm_s=$(value scale-100-kustomize storm_s); kstorm_fetches=$(value scale-100-kustomize storm_fetches)
kstorm_builds=$(value scale-100-kustomize builds_storm)
kquiet_builds=$(value scale-100-kustomize builds_requested) # + the no-change reconciles' after a restart
[[ $kquiet_builds =~ ^[0-9]+$ ]] && kquiet_builds=$(awk -v a="$kquiet_builds" -v b="$(value scale-100-kustomize builds_restart)" \
    'BEGIN { if (b+0 == b) print a + b; else print "failed" }')

{
    echo "<!-- run-all:begin (generated by bench/run-all.sh; edit outside these markers) -->"
    echo "## Latest full run"
    echo
    echo "Run on $(date -u +%Y-%m-%d) by \`bench/run-all.sh\`, tugboat $(git rev-parse --short HEAD)."
    echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)),"
    echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)."
    echo "Versions: $(rustc --version | cut -d' ' -f1-2), kube-apiserver $("$HOME/.cache/tugboat/testenv/bin/kube-apiserver" --version 2>/dev/null | awk '{print $2}' || echo '?'),"
    echo "etcd $("$HOME/.cache/tugboat/testenv/bin/etcd" --version 2>/dev/null | awk '/etcd Version/ {print $3}' || echo '?'), kwok nodes; wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}')."
    echo "Everything shares the 2 cores: the control plane, the operator and the load generator."
    echo
    echo "| what | target | measured (median) | ratio to target | verdict | command |"
    echo "|---|---|---:|---:|---|---|"
    echo "| signed GitHub pushes for a branch no app follows | ≥ 10,000 req/s, p99 < 5 ms | $push_rps req/s, p99 $push_p99 ms | $(ratio "$push_rps" 10000) rate, $(ratio "$push_p99" 5) p99 | rate $(verdict "$push_rps" ge 10000), p99 $(verdict "$push_p99" le 5) | \`bench/endpoint_load.sh\` |"
    echo "| triggering calls, 64 clients on one application, every 202 durable | ≥ 2,000 req/s | $trig_rps req/s | $(ratio "$trig_rps" 2000) | $(verdict "$trig_rps" ge 2000) | \`bench/endpoint_load.sh\` |"
    echo "| call with \`rollout-restart\` → rolled out, vs \`kubectl rollout restart\` + \`rollout status\` | ≤ 1.2× | ${restart_ratio}× kubectl | $(ratio "$restart_ratio" 1.2) | $(verdict "$restart_ratio" le 1.2) | \`bench/trigger_to_rollout.sh\` |"
    echo "| commit + call → applied and healthy, vs \`git fetch\` + \`kubectl apply --server-side\` + \`rollout status\` | ≤ 1.5× | ${commit_ratio}× | $(ratio "$commit_ratio" 1.5) | $(verdict "$commit_ratio" le 1.5) | \`MODE=commit bench/trigger_to_rollout.sh\` |"
    echo "| one push to a repository shared by 100 applications | 1 fetch, all applied < 10 s | $storm_fetches fetch, ${storm_s} s | $(ratio "$storm_s" 10) | fetches $(verdict "$storm_fetches" le 1), time $(verdict "$storm_s" le 10) | \`APPS=100 bench/scale.sh\` |"
    echo "| one push to a Kustomize overlay shared by 100 applications | 1 fetch, 1 build, all applied < 10 s | $kstorm_fetches fetch, $kstorm_builds build, ${kstorm_s} s ($(ratio "$kstorm_s" "$storm_s") plain) | $(ratio "$kstorm_s" 10) | fetches $(verdict "$kstorm_fetches" le 1), builds $(verdict "$kstorm_builds" le 1), time $(verdict "$kstorm_s" le 10) | \`SOURCE=kustomize APPS=100 bench/scale.sh\` |"
    echo "| then a reconcile request, and a restart, on each of the 100 | no build | $kquiet_builds builds | — | $(verdict "$kquiet_builds" le 0) | \`SOURCE=kustomize APPS=100 bench/scale.sh\` |"
    echo "| \`tugboat render\` of an overlay / a chart (test fixtures), vs \`kustomize build\` / \`helm template\` alone | — | ${build_k} ms (${build_k_ratio}× the tool) / ${build_h} ms (${build_h_ratio}×) | — | — | \`bench/build_time.sh\` |"
    echo "| 1,000 applications (Deployment + Service + ConfigMap), first sync | < 60 s | ${sync_1000} s (kubectl floor ${floor_1000} s) | $(ratio "$sync_1000" 60) | $(verdict "$sync_1000" le 60) | \`APPS=1000 bench/scale.sh\` |"
    echo "| RSS after sync, idle, 100 applications | < 20 MiB | ${rss_100} MiB | $(ratio "$rss_100" 20) | $(verdict "$rss_100" le 20) | \`APPS=100 bench/scale.sh\` |"
    echo "| RSS after sync, idle, 1,000 applications | < 64 MiB | ${rss_1000} MiB | $(ratio "$rss_1000" 64) | $(verdict "$rss_1000" le 64) | \`APPS=1000 bench/scale.sh\` |"
    echo "| no-change reconcile | no fetch, no apply, < 5 ms CPU | $nochange_fetches fetches, $nochange_deploys deployments, ${nochange_cpu} ms CPU | $(ratio "$nochange_cpu" 5) | $(verdict "$nochange_cpu" le 5) | \`bench/no_change_reconcile.sh\` |"
    echo
    if [[ -f $OUT/criterion.txt ]]; then
        echo "Criterion (pure code; the median estimate):"
        echo
        echo "| benchmark | time |"
        echo "|---|---:|"
        criterion_rows
        echo
    fi
    for name in build-time endpoint restart commit scale-100 scale-100-kustomize scale-1000 no-change; do
        [[ -f $OUT/$name.txt ]] || continue
        echo "<details><summary>output of <code>$name</code></summary>"
        echo
        echo '```text'
        grep -v '^SUMMARY ' "$OUT/$name.txt"
        echo '```'
        echo
        echo "</details>"
        echo
    done
    echo "<!-- run-all:end -->"
} >"$OUT/section.md"

python3 - "$DOC" "$OUT/section.md" <<'PY'
import re, sys
doc, section = sys.argv[1], open(sys.argv[2]).read().rstrip("\n")
try:
    text = open(doc).read()
except FileNotFoundError:
    text = "# Benchmarks\n"
pattern = re.compile(r"<!-- run-all:begin.*?<!-- run-all:end -->", re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: section, text)
else:  # after the title
    head, _, rest = text.partition("\n")
    text = f"{head}\n\n{section}\n{rest}"
open(doc, "w").write(text)
PY
progress "wrote $DOC"
