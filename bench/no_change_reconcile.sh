#!/usr/bin/env bash
# Measures the no-change reconcile: an application whose revision, variables and spec are
# unchanged and whose drift check is not due must cost no fetch and no apply.
#
# Against the running test control plane (`make testenv-up`) and the release binary
# (`cargo build --release`), it:
#   1. creates a bare repository served over file:// (one ConfigMap manifest, named by a variable),
#   2. creates N GitOpsApplications (mechanism Webhook, interval 10m) in a fresh namespace,
#   3. starts the operator and waits until all N are Ready,
#   4. moves the bare repository away (any ls-remote or fetch would now fail) and restarts the
#      operator, so every application gets exactly one reconcile in which nothing changed,
#   5. parses `reconcile finished` (elapsed_us) of those reconciles from the JSON log and reads the
#      operator's CPU time (utime+stime, /proc/PID/stat) when they are done,
#   6. starts the operator once more on an empty namespace for the same wall time: the CPU of
#      startup + watch with no application, to subtract.
# It deletes what it created and is bounded in time (each wait has a deadline).
#
# Usage: bench/no_change_reconcile.sh            (N=50; e.g. N=20 bench/no_change_reconcile.sh)
# Env:   N, CONCURRENCY (operator --concurrency, default 8), KUBECONFIG_PATH, KUBECTL, TUGBOAT, DEADLINE (seconds per wait, default 120), KEEP_LOGS=1
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
N=${N:-50}
DEADLINE=${DEADLINE:-120}
CONCURRENCY=${CONCURRENCY:-8}

prepare git jq curl getconf python3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tugboat-nochange.XXXXXX")
SUFFIX=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
NS=bench-nochange-$SUFFIX
IDLE_NS=bench-idle-$SUFFIX
cleanup() {
    stop_operator
    # Deleting the applications needs a running operator only for their finalizer; remove it.
    if k get namespace "$NS" >/dev/null 2>&1; then
        for app in $(k -n "$NS" get gitopsapplications -o name 2>/dev/null); do
            k -n "$NS" patch "$app" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
        done
        k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
    fi
    k delete namespace "$IDLE_NS" --wait=false >/dev/null 2>&1 || true
    if [[ ${KEEP_LOGS:-0} == 1 ]]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# start_operator NAMESPACE LOGFILE: starts tugboat in the background and waits for /readyz.
start_operator() {
    local namespace=$1 log=$2 port
    port=$(free_port)
    RUST_LOG=info,tugboat=debug,kube=warn "$TUGBOAT" run \
        --kubeconfig "$KUBECONFIG_PATH" --namespace "$namespace" --leader-election-namespace "$namespace" --allow-file-sources \
        --probe-addr "127.0.0.1:$port" --cache-dir "$WORK/cache" --log-format json --concurrency "$CONCURRENCY" \
        >/dev/null 2>"$log" &
    OPERATOR_PID=$!
    local until=$((SECONDS + DEADLINE))
    until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
        kill -0 "$OPERATOR_PID" 2>/dev/null || { cat "$log" >&2; die "the operator exited"; }
        ((SECONDS < until)) || die "the operator did not become ready in ${DEADLINE}s"
        sleep 0.05
    done
}

# cpu_ms PID: "own children sched" CPU milliseconds of the process: utime+stime of all its
# threads and cutime+cstime of the child processes it has reaped (the `git` it runs), both from
# /proc/PID/stat in clock ticks (10 ms resolution at 100 Hz); and the sum of the live threads'
# /proc/PID/task/*/schedstat run time (nanosecond resolution, threads that exited are missing).
cpu_ms() {
    local stat ticks sched=0 run _
    stat=$(<"/proc/$1/stat")
    ticks=$(getconf CLK_TCK)
    # Fields after the `(comm)`: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    read -r -a fields <<<"${stat##*) }"
    for task in /proc/"$1"/task/*/schedstat; do
        read -r run _ <"$task" 2>/dev/null && sched=$((sched + run))
    done
    echo "$(((fields[11] + fields[12]) * 1000 / ticks)) $(((fields[13] + fields[14]) * 1000 / ticks)) $((sched / 1000000))"
}

count() { grep -c "\"message\":\"$1\"" "$2" || true; }

# --- 1. the repository --------------------------------------------------------------------
git init --quiet --bare --initial-branch=main "$WORK/repo.git"
git init --quiet --initial-branch=main "$WORK/src"
mkdir -p "$WORK/src/deploy"
cat >"$WORK/src/deploy/configmap.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm-${APP}
data:
  greeting: "hello from ${APP}"
  level: ${LEVEL:-info}
EOF
git -C "$WORK/src" add -A
git -C "$WORK/src" -c user.name=bench -c user.email=bench@example.invalid commit --quiet -m "one configmap"
git -C "$WORK/src" push --quiet "$WORK/repo.git" main
URL="file://$WORK/repo.git"

# --- 2. the applications ------------------------------------------------------------------
k create namespace "$NS" >/dev/null
tenant "$NS"
for i in $(seq -f %03g "$N"); do
    cat <<EOF
---
apiVersion: tugboat.dev/v1alpha1
kind: GitOpsApplication
metadata:
  name: app-$i
spec:
  source:
    repoURL: $URL
    ref: {branch: main}
    path: deploy
  updates: {mechanism: Webhook, interval: 10m}
  variables: {APP: app-$i}
EOF
done >"$WORK/apps.yaml"
k -n "$NS" apply -f "$WORK/apps.yaml" >/dev/null

ready_count() {
    k -n "$NS" get gitopsapplications \
        -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$' || true
}
deployments_total() {
    k -n "$NS" get gitopsapplications -o json | jq '[.items[].status.deployments // [] | length] | add // 0'
}

# --- 3. first start: deploy everything ----------------------------------------------------
echo "namespace $NS: $N applications from $URL" >&2
start_operator "$NS" "$WORK/first.log"
until=$((SECONDS + DEADLINE))
while (($(ready_count) < N)); do
    ((SECONDS < until)) || die "only $(ready_count)/$N applications Ready after ${DEADLINE}s"
    sleep 0.5
done
echo "all $N Ready; first run fetched $(count fetched "$WORK/first.log") time(s)" >&2
# Let the reconciles caused by the operator's own status writes finish before stopping it.
sleep 2
stop_operator
deployments_before=$(deployments_total)

# --- 4. restart: one no-change reconcile per application ----------------------------------
mv "$WORK/repo.git" "$WORK/repo.git.away"    # any ls-remote or fetch would now fail
started=$(now_ms)
start_operator "$NS" "$WORK/restart.log"
until=$((SECONDS + DEADLINE))
while (($(count "nothing changed: no fetch, no apply" "$WORK/restart.log") < N)); do
    ((SECONDS < until)) || die "only $(count "nothing changed: no fetch, no apply" "$WORK/restart.log")/$N no-change reconciles after ${DEADLINE}s"
    sleep 0.05
done
# Every no-change reconcile logs `reconcile finished` right after; wait for the last one.
until=$((SECONDS + 10))
while (($(count "reconcile finished" "$WORK/restart.log") < N)) && ((SECONDS < until)); do sleep 0.02; done
read -r cpu_restart cpu_restart_children cpu_restart_sched <<<"$(cpu_ms "$OPERATOR_PID")"
wall_restart=$(($(now_ms) - started))
stop_operator
mv "$WORK/repo.git.away" "$WORK/repo.git"

nothing=$(count "nothing changed: no fetch, no apply" "$WORK/restart.log")
fetched=$(count fetched "$WORK/restart.log")
not_ready=$(count "not ready" "$WORK/restart.log")
finished=$(count "reconcile finished" "$WORK/restart.log")
deployments_after=$(deployments_total)
ready_after=$(ready_count)

# --- 5. the baseline: startup + watch of an empty namespace, same wall time ----------------
k create namespace "$IDLE_NS" >/dev/null
tenant "$IDLE_NS"
idle_started=$(now_ms)
start_operator "$IDLE_NS" "$WORK/idle.log"
rest=$((wall_restart - ($(now_ms) - idle_started)))
((rest > 0)) && sleep "$(awk "BEGIN{print $rest/1000}")"
read -r cpu_idle cpu_idle_children cpu_idle_sched <<<"$(cpu_ms "$OPERATOR_PID")"
stop_operator

# --- 6. report ------------------------------------------------------------------------------
# elapsed_us of the reconciles of the applications that took the no-change path.
jq -rs '
  (map(select(.message == "nothing changed: no fetch, no apply") | .application) | unique) as $apps
  | map(select(.message == "reconcile finished" and ((.application // "") as $a | $apps | index($a))))
  | map(.elapsed_us) | sort
  | {n: length,
     median_us: (if length > 0 then .[(length / 2 | floor)] else null end),
     p90_us: (if length > 0 then .[((length * 0.9) | ceil) - 1] else null end),
     min_us: .[0], max_us: .[-1]}
' < <(grep '^{' "$WORK/restart.log" | jq -c '. + {application: (.application // .span.application // ([.spans[]?.application] | map(select(.)) | first))}') >"$WORK/summary.json"

median_us=$(jq .median_us "$WORK/summary.json")
p90_us=$(jq .p90_us "$WORK/summary.json")
timed=$(jq .n "$WORK/summary.json")
cat <<EOF
no-change reconcile, N=$N applications (mechanism Webhook, interval 10m), --concurrency $CONCURRENCY, $(nproc) cores
  "nothing changed: no fetch, no apply" lines : $nothing (expected $N)
  "reconcile finished" lines after restart    : $finished
  "fetched" lines after restart               : $fetched (expected 0; the remote was moved away)
  "not ready" lines after restart             : $not_ready (expected 0)
  status.deployments before / after restart   : $deployments_before / $deployments_after (no new deployment = no apply)
  Ready after restart                         : $ready_after/$N
  wall time per no-change reconcile (elapsed_us, $timed timed): median $(awk "BEGIN{printf \"%.2f\", $median_us/1000}") ms, p90 $(awk "BEGIN{printf \"%.2f\", $p90_us/1000}") ms, min $(jq '.min_us/1000' "$WORK/summary.json") ms, max $(jq '.max_us/1000' "$WORK/summary.json") ms
  restart phase (start .. last no-change reconcile finished): ${wall_restart} ms wall
  operator CPU in that phase, own threads      : $cpu_restart ms (stat, 10 ms ticks); $cpu_restart_sched ms (schedstat)
  CPU of its git children (rev-parse)          : $cpu_restart_children ms (stat cutime+cstime, 10 ms ticks)
    per application, upper bound (own+children): $(awk "BEGIN{printf \"%.2f\", ($cpu_restart_sched+$cpu_restart_children)/$N}") ms
  baseline, empty namespace, same wall time    : $cpu_idle ms (stat); $cpu_idle_sched ms (schedstat); children $cpu_idle_children ms
    per application, minus baseline (estimate) : $(awk "BEGIN{printf \"%.2f\", ($cpu_restart_sched+$cpu_restart_children-$cpu_idle_sched-$cpu_idle_children)/$N}") ms
EOF

# One line for bench/run-all.sh.
echo "SUMMARY apps=$N cpu_ms_per_reconcile=$(awk "BEGIN{printf \"%.2f\", ($cpu_restart_sched+$cpu_restart_children)/$N}") wall_ms_median=$(awk "BEGIN{printf \"%.2f\", $median_us/1000}") fetches=$fetched deployments_added=$((deployments_after - deployments_before))"

status=0
[[ $nothing -eq $N ]] || { echo "FAIL: expected $N no-change reconciles, got $nothing" >&2; status=1; }
[[ $fetched -eq 0 ]] || { echo "FAIL: $fetched fetch(es) during the restart" >&2; status=1; }
[[ $not_ready -eq 0 ]] || { echo "FAIL: $not_ready application(s) not ready after the restart" >&2; status=1; }
[[ $deployments_before -eq $deployments_after ]] || { echo "FAIL: deployments after restart" >&2; status=1; }
exit $status
