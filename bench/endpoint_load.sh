#!/usr/bin/env bash
# Load on the trigger endpoint: signed GitHub push deliveries, measured with wrk on loopback.
#
# Needs wrk (https://github.com/wg/wrk). It is not part of the test control plane; install it
# from Debian, as root:   apt-get install -y wrk
#
# Against the running test control plane (`make testenv-up`) and the release binary
# (`cargo build --release`), it:
#   1. creates a namespace with a Secret `gh` (key `token`), a Webhook `push` (provider github,
#      secretRef gh, target shop) and a GitOpsApplication `shop` (branch main of
#      https://git.example.com/team/shop.git — that host does not exist, so the application
#      never deploys; the endpoint does not care),
#   2. starts `tugboat run --trigger-addr 127.0.0.1:PORT` and waits for the Webhook's
#      status.webhookPath,
#   3. builds a ~7 KB GitHub push payload (the shape of GitHub's `push` event) for
#      refs/heads/other-branch of the same repository, signs it once (openssl dgst -sha256
#      -hmac → X-Hub-Signature-256: sha256=<hex>), and checks with curl that the endpoint answers
#      200 {"ignored": …} (no application follows that branch) and 401 to a wrong signature,
#   4. runs wrk (`-c CONNECTIONS -d DURATION --latency`, RUNS runs for each of `-t2` and `-t1`)
#      with a Lua script that POSTs that delivery and counts every answer that is not 200,
#   5. for comparison, the same load (-t2) on two cheaper paths: a wrong signature (401; the
#      Secret comes from a 10 s cache) and an unknown webhook id (404: no API call at all),
#      and on the costliest one: a generic Webhook `deploy` whose every call records a trigger
#      on `site` (a GitOpsApplication that deploys one ConfigMap from a local repository, so
#      triggers are carried out meanwhile) before answering 202 (concurrent calls share a write),
#   6. counts the API server's requests (apiserver_request_total, by resource and verb) and the
#      CPU of tugboat, kube-apiserver, etcd and wrk during every run,
# and prints a Markdown table. It exits non-zero if any answer had an unexpected status.
# It deletes what it created and is bounded in time (each wait has a deadline; a run takes
# about RUNS × 3 × (DURATION + 3 s) + 20 s, ≈ 3.5 min with the defaults).
#
# Usage: bench/endpoint_load.sh
# Env:   DURATION (wrk -d, default 15s), CONNECTIONS (wrk -c, default 64), THREADS (default "2 1"),
#        RUNS (default 3), COMPARE (1: also the 401/404 paths; default 1), TRIGGERS (1: also generic calls that record a trigger, expecting 202; default 1), PAYLOAD_BYTES (default 7000),
#        KUBECONFIG_PATH, KUBECTL, TUGBOAT, DEADLINE (seconds per wait, default 60), KEEP_LOGS=1
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
DEADLINE=${DEADLINE:-60}
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2 1}
RUNS=${RUNS:-3}
COMPARE=${COMPARE:-1}
TRIGGERS=${TRIGGERS:-1}
PAYLOAD_BYTES=${PAYLOAD_BYTES:-7000}

command -v wrk >/dev/null || die "wrk is not installed; as root: apt-get install -y wrk"
prepare jq curl openssl python3 getconf awk

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tugboat-endpoint.XXXXXX")
SUFFIX=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
NS=bench-endpoint-$SUFFIX
TOKEN=bench-$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')

cleanup() {
    stop_operator
    if k get namespace "$NS" >/dev/null 2>&1; then
        # The application carries the operator's finalizer, and the operator is gone: drop it.
        k -n "$NS" patch gitopsapplication shop --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
        k -n "$NS" patch gitopsapplication site --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
        k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
    fi
    if [[ ${KEEP_LOGS:-0} == 1 ]]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. the objects -----------------------------------------------------------------------
# `site` deploys for real (one ConfigMap, from a local repository), so its triggers are carried out.
git init --quiet --initial-branch=main "$WORK/site"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: site}\ndata: {release: "${RELEASE:-1}"}\n' >"$WORK/site/site.yaml"
git -C "$WORK/site" add -A
git -C "$WORK/site" -c user.name=bench -c user.email=bench@example.invalid commit --quiet -m site
git clone --quiet --bare "$WORK/site" "$WORK/site.git"
k create namespace "$NS" >/dev/null
tenant "$NS"
k -n "$NS" create secret generic gh --from-literal=token="$TOKEN" >/dev/null
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: tugboat.dev/v1alpha1
kind: GitOpsApplication
metadata: {name: shop}
spec:
  source:
    repoURL: https://git.example.com/team/shop.git
    ref: {branch: main}
    path: deploy
---
apiVersion: tugboat.dev/v1alpha1
kind: Webhook
metadata: {name: push}
spec:
  provider: github
  secretRef: {name: gh}
  targets: [{name: shop}]
---
apiVersion: tugboat.dev/v1alpha1
kind: Webhook
metadata: {name: deploy}
spec:
  provider: generic
  targets: [{name: site}]
---
apiVersion: tugboat.dev/v1alpha1
kind: GitOpsApplication
metadata: {name: site}
spec:
  source:
    repoURL: file://$WORK/site.git
    ref: {branch: main}
EOF

# --- 2. the operator ----------------------------------------------------------------------
TRIGGER_PORT=$(free_port)
PROBE_PORT=$(free_port)
RUST_LOG=${RUST_LOG:-info,kube=warn} "$TUGBOAT" run --kubeconfig "$KUBECONFIG_PATH" --namespace "$NS" --leader-election-namespace "$NS" \
    --trigger-addr "127.0.0.1:$TRIGGER_PORT" --probe-addr "127.0.0.1:$PROBE_PORT" --cache-dir "$WORK/cache" \
    --rate-limit-per-source 0 --allow-file-sources \
    >/dev/null 2>"$WORK/operator.log" &
OPERATOR_PID=$!
until=$((SECONDS + DEADLINE))
until curl -fsS "http://127.0.0.1:$PROBE_PORT/readyz" >/dev/null 2>&1; do
    kill -0 "$OPERATOR_PID" 2>/dev/null || { cat "$WORK/operator.log" >&2; die "the operator exited"; }
    ((SECONDS < until)) || die "the operator did not become ready in ${DEADLINE}s"
    sleep 0.1
done
WEBHOOK_PATH=
until=$((SECONDS + DEADLINE))
while [[ -z $WEBHOOK_PATH ]]; do
    ((SECONDS < until)) || die "the Webhook got no status.webhookPath in ${DEADLINE}s"
    sleep 0.2
    WEBHOOK_PATH=$(k -n "$NS" get webhook push -o jsonpath='{.status.webhookPath}')
done
URL="http://127.0.0.1:$TRIGGER_PORT$WEBHOOK_PATH"
TRIGGER_PATH=
while [[ -z $TRIGGER_PATH ]]; do
    ((SECONDS < until)) || die "the Webhook deploy got no status.webhookPath in ${DEADLINE}s"
    sleep 0.2
    TRIGGER_PATH=$(k -n "$NS" get webhook deploy -o jsonpath='{.status.webhookPath}')
done
TRIGGER_URL="http://127.0.0.1:$TRIGGER_PORT$TRIGGER_PATH"
UNKNOWN_URL="http://127.0.0.1:$TRIGGER_PORT/api/stacks/webhooks/00000000-0000-4000-8000-000000000000"

# --- 3. the delivery ----------------------------------------------------------------------
# GitHub's push event (docs.github.com, "Webhook events and payloads" → push), padded with
# commits to about PAYLOAD_BYTES bytes, for a branch no application follows.
python3 - "$PAYLOAD_BYTES" >"$WORK/body.json" <<'PY'
import json, sys, hashlib
target = int(sys.argv[1])
repo_url = "https://git.example.com/team/shop"
owner = {"name": "team", "email": None, "login": "team", "id": 1001, "node_id": "MDQ6VXNlcjEwMDE=",
         "avatar_url": "https://avatars.example.com/u/1001?v=4", "html_url": "https://git.example.com/team",
         "type": "Organization", "site_admin": False}
def sha(i): return hashlib.sha1(str(i).encode()).hexdigest()
def commit(i):
    return {"id": sha(i), "tree_id": sha(-i - 1), "distinct": True,
            "message": f"Change {i}: update the shop's deployment manifests and configuration",
            "timestamp": "2025-05-15T15:20:30+02:00", "url": f"{repo_url}/commit/{sha(i)}",
            "author": {"name": "Dev Eloper", "email": "dev@example.com", "username": "dev"},
            "committer": {"name": "Dev Eloper", "email": "dev@example.com", "username": "dev"},
            "added": [], "removed": [], "modified": [f"deploy/web-{i}.yaml", "deploy/config.yaml"]}
payload = {
    "ref": "refs/heads/other-branch", "before": sha("before"), "after": sha(0),
    "repository": {"id": 186853002, "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=", "name": "shop",
        "full_name": "team/shop", "private": True, "owner": owner, "html_url": repo_url,
        "description": "the shop", "fork": False, "url": repo_url,
        "git_url": "git://git.example.com/team/shop.git", "ssh_url": "git@git.example.com:team/shop.git",
        "clone_url": repo_url + ".git", "svn_url": repo_url, "homepage": None, "size": 42,
        "stargazers_count": 0, "watchers_count": 0, "language": None, "has_issues": True,
        "forks_count": 0, "archived": False, "disabled": False, "open_issues_count": 0,
        "visibility": "private", "default_branch": "main", "master_branch": "main",
        "created_at": 1557933565, "updated_at": "2025-05-15T13:20:41Z", "pushed_at": 1747315230},
    "pusher": {"name": "dev", "email": "dev@example.com"},
    "sender": owner, "created": False, "deleted": False, "forced": False, "base_ref": None,
    "compare": f"{repo_url}/compare/{sha('before')[:12]}...{sha(0)[:12]}",
    "commits": [], "head_commit": None,
}
i = 0
while True:
    payload["commits"].append(commit(i))
    payload["head_commit"] = payload["commits"][0]
    if len(json.dumps(payload, indent=2)) >= target:
        break
    i += 1
sys.stdout.write(json.dumps(payload, indent=2))
PY
BODY_BYTES=$(wc -c <"$WORK/body.json")
SIGNATURE="sha256=$(openssl dgst -sha256 -hmac "$TOKEN" -r "$WORK/body.json" | cut -d' ' -f1)"
BAD_SIGNATURE="sha256=$(printf '%064d' 0)"

probe() { # probe SIGNATURE URL → "STATUS BODY"
    curl -sS -o "$WORK/probe.out" -w '%{http_code}' -X POST "$2" -H 'Content-Type: application/json' \
        -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: $(python3 -c 'import uuid; print(uuid.uuid4())')" \
        -H "X-Hub-Signature-256: $1" --data-binary @"$WORK/body.json"
    echo " $(cat "$WORK/probe.out")"
}
good=$(probe "$SIGNATURE" "$URL")
[[ $good == 200\ *ignored* ]] || die "the signed delivery did not answer 200 ignored: $good"
bad=$(probe "$BAD_SIGNATURE" "$URL")
[[ $bad == 401\ * ]] || die "a wrong signature did not answer 401: $bad"
echo "endpoint $URL" >&2
echo "  signed ${BODY_BYTES}-byte push to other-branch → $good" >&2
echo "  wrong signature                        → $bad" >&2

# --- 4. the load --------------------------------------------------------------------------
cat >"$WORK/push.lua" <<'LUA'
-- POSTs one signed GitHub push delivery; counts answers whose status is not EXPECT.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "GitHub-Hookshot/bench"
wrk.headers["X-GitHub-Event"] = "push"
wrk.headers["X-GitHub-Delivery"] = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
wrk.headers["X-Hub-Signature-256"] = os.getenv("SIGNATURE")
local expect = tonumber(os.getenv("EXPECT") or "200")

local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) unexpected = 0; answered = 0; last_bad = "" end
function response(status, headers, body)
  answered = answered + 1
  if status ~= expect then
    unexpected = unexpected + 1
    last_bad = status .. " " .. string.sub(body or "", 1, 200)
  end
end
function done(summary, latency, requests)
  local unexpected_total, answered_total, example = 0, 0, ""
  for _, t in ipairs(threads) do
    unexpected_total = unexpected_total + t:get("unexpected")
    answered_total = answered_total + t:get("answered")
    if t:get("last_bad") ~= "" then example = t:get("last_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d answered=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d unexpected=%d errors=%d\n",
    summary.requests, answered_total, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, unexpected_total,
    e.connect + e.read + e.write + e.timeout))
  if example ~= "" then io.write("UNEXPECTED example: " .. example .. "\n") end
end
LUA

TICKS=$(getconf CLK_TCK)
read -r APISERVER_PID ETCD_PID < <(
    awk '$1=="kube-apiserver"{a=$2} $1=="etcd"{e=$2} END{print a, e}' "$ROOT/target/testenv/pids" 2>/dev/null || true)
cpu_ticks() { # utime+stime of a process, 0 when unknown
    [[ -n ${1:-} && -r /proc/$1/stat ]] || { echo 0; return; }
    local stat; stat=$(<"/proc/$1/stat"); read -r -a f <<<"${stat##*) }"; echo $((f[11] + f[12]))
}
busy_ticks() { # "busy total" clock ticks of all CPUs, from /proc/stat
    awk '/^cpu /{t=0; for (i=2;i<=NF;i++) t+=$i; print t-$5-$6, t}' /proc/stat
}
api_requests() { # "resource verb count" lines of apiserver_request_total
    k get --raw /metrics | awk '/^apiserver_request_total\{/ {
        match($0, /resource="[^"]*"/); r = substr($0, RSTART + 10, RLENGTH - 11)
        match($0, /verb="[^"]*"/); v = substr($0, RSTART + 6, RLENGTH - 7)
        n[r " " v] += $NF } END { for (key in n) printf "%s %d\n", key, n[key] }'
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"
status=0
# run_wrk LABEL THREADS URL SIGNATURE EXPECT
run_wrk() {
    local label=$1 threads=$2 url=$3 signature=$4 expect=$5 out=$WORK/wrk-$1-t$2-$RANDOM.txt
    local op0 api0 etcd0 op1 api1 etcd1 wrk_cpu
    api_requests >"$WORK/api0"
    local busy0 busy1; busy0=$(busy_ticks)
    op0=$(cpu_ticks "$OPERATOR_PID"); api0=$(cpu_ticks "$APISERVER_PID"); etcd0=$(cpu_ticks "$ETCD_PID")
    local TIMEFORMAT='%U %S'
    { time BODY_FILE=$WORK/body.json SIGNATURE=$signature EXPECT=$expect \
        timeout $((${DURATION%s} + 30)) wrk -t"$threads" -c"$CONNECTIONS" -d"$DURATION" --latency \
        -s "$WORK/push.lua" "$url" >"$out"; } 2>"$out.time"
    op1=$(cpu_ticks "$OPERATOR_PID"); api1=$(cpu_ticks "$APISERVER_PID"); etcd1=$(cpu_ticks "$ETCD_PID")
    busy1=$(busy_ticks)
    local busy_pct; busy_pct=$(awk -v a="$busy0" -v b="$busy1" 'BEGIN{split(a,x," "); split(b,y," "); printf "%.0f", 100*(y[1]-x[1])/(y[2]-x[2])}')
    api_requests >"$WORK/api1"
    wrk_cpu=$(awk '{print $1 + $2}' "$out.time")
    local result; result=$(grep '^RESULT ' "$out") || { cat "$out" >&2; die "wrk printed no result"; }
    grep -q '^UNEXPECTED' "$out" && grep '^UNEXPECTED' "$out" >&2
    sed -n '/Latency Distribution/,/Requests\/sec/p' "$out" | sed 's/^/    /' >&2
    # API requests during the run, by resource+verb, only those that moved.
    local api_delta
    api_delta=$(awk 'NR==FNR {a[$1" "$2]=$3; next} {d=$3-a[$1" "$2]; if (d>100) printf "%s:%s=%d ", $1, $2, d}' \
        "$WORK/api0" "$WORK/api1")
    eval "$(sed 's/^RESULT //; s/ /\n/g' <<<"$result" | sed 's/^/local r_/')"
    echo -e "$label\t$threads\t$r_rps\t$r_p50_us\t$r_p99_us\t$r_requests\t$r_unexpected\t$r_errors\t$(((op1 - op0) * 1000 / TICKS))\t$(((api1 - api0) * 1000 / TICKS))\t$(((etcd1 - etcd0) * 1000 / TICKS))\t$wrk_cpu\t$api_delta\t$busy_pct" >>"$RESULTS"
    printf '%-22s -t%s: %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  non-%s answers %d  socket errors %d  CPU s: tugboat %.1f apiserver %.1f etcd %.1f wrk %.1f (machine %s %% busy)  API: %s\n' \
        "$label" "$threads" "$r_rps" "$(awk "BEGIN{print $r_p50_us/1000}")" "$(awk "BEGIN{print $r_p99_us/1000}")" "$expect" \
        "$r_unexpected" "$r_errors" "$(awk "BEGIN{print ($op1-$op0)/$TICKS}")" "$(awk "BEGIN{print ($api1-$api0)/$TICKS}")" \
        "$(awk "BEGIN{print ($etcd1-$etcd0)/$TICKS}")" "$wrk_cpu" "$busy_pct" "$api_delta" >&2
    if ((r_unexpected > 0 || r_errors > 0 || r_requests != r_answered)); then
        echo "FAIL: $label -t$threads: $r_unexpected answer(s) not $expect, $r_errors socket error(s)" >&2
        status=1
    fi
    sleep 2 # let the API server settle between runs
}

for run in $(seq "$RUNS"); do
    for t in $THREADS; do run_wrk signed-push-200 "$t" "$URL" "$SIGNATURE" 200; done
    if [[ $COMPARE == 1 ]]; then
        run_wrk bad-signature-401 2 "$URL" "$BAD_SIGNATURE" 401
        run_wrk unknown-id-404 2 "$UNKNOWN_URL" "$SIGNATURE" 404
    fi
    # Triggering calls: each 202 only after its trigger is written to the application.
    if [[ $TRIGGERS == 1 ]]; then run_wrk trigger-202 2 "$TRIGGER_URL" "" 202; fi
    echo "run $run/$RUNS done" >&2
done

# --- 5. report ------------------------------------------------------------------------------
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
col() { awk -F'\t' -v l="$1" -v t="$2" -v c="$3" '$1==l && $2==t {print $c}' "$RESULTS"; }
range() { col "$@" | sort -g | awk 'NR==1{lo=$1} {hi=$1} END{printf "%s–%s", lo, hi}'; }
rows() {
    local label=$1 t=$2 what=$3
    [[ -n $(col "$label" "$t" 1) ]] || return 0
    local n rps p50 p99 req op api etcd wrkc
    n=$(col "$label" "$t" 1 | wc -l)
    rps=$(col "$label" "$t" 3 | median); p50=$(col "$label" "$t" 4 | median); p99=$(col "$label" "$t" 5 | median)
    req=$(col "$label" "$t" 6 | awk '{s+=$1} END{print s}')
    op=$(awk -F'\t' -v l="$label" -v t="$t" '$1==l && $2==t {print $9*1000/$6}' "$RESULTS" | median)
    api=$(awk -F'\t' -v l="$label" -v t="$t" '$1==l && $2==t {print $10*1000/$6}' "$RESULTS" | median)
    etcd=$(awk -F'\t' -v l="$label" -v t="$t" '$1==l && $2==t {print $11*1000/$6}' "$RESULTS" | median)
    wrkc=$(awk -F'\t' -v l="$label" -v t="$t" '$1==l && $2==t {print $12*1e6/$6}' "$RESULTS" | median)
    local busy; busy=$(col "$label" "$t" 14 | median)
    printf '| %s | `-t%s -c%s` | %d | %.0f (%s) | %.2f | %.2f | %.0f / %.0f / %.0f / %.0f | %s %% | %s |\n' \
        "$what" "$t" "$CONNECTIONS" "$n" "$rps" "$(range "$label" "$t" 3 | awk -F'–' '{printf "%.0f–%.0f", $1, $2}')" \
        "$(awk "BEGIN{print $p50/1000}")" "$(awk "BEGIN{print $p99/1000}")" "$op" "$api" "$etcd" "$wrkc" "$busy" \
        "$(awk -F'\t' -v l="$label" -v t="$t" '$1==l && $2==t {print $13}' "$RESULTS" | tail -1 |
            awk -v total="$(col "$label" "$t" 6 | tail -1)" '{for (i=1;i<=NF;i++){split($i,a,"="); printf "%s %.2f ", a[1], a[2]/total}}')"
}
echo
echo "Trigger endpoint under load: ${BODY_BYTES}-byte signed GitHub push, wrk -d$DURATION, $(nproc) cores, $RUNS run(s); medians of runs"
echo
echo '| path | wrk | runs | req/s (range) | p50 ms | p99 ms | CPU µs per request: tugboat / apiserver / etcd / wrk | machine busy | API requests per request (last run) |'
echo '|---|---|---:|---:|---:|---:|---|---:|---|'
for t in $THREADS; do rows signed-push-200 "$t" "signed push, other branch → 200 ignored"; done
rows bad-signature-401 2 "wrong signature → 401"
rows unknown-id-404 2 "unknown webhook id → 404"
rows trigger-202 2 "generic call recorded on one deploying application → 202"
echo
rps2=$(col signed-push-200 "${THREADS%% *}" 3 | median)
p99=$(col signed-push-200 "${THREADS%% *}" 5 | median)
echo "target (issue): ≥ 10000 req/s and p99 < 5 ms on 2 cores; measured (-t${THREADS%% *}) $(printf '%.0f' "$rps2") req/s = $(awk "BEGIN{printf \"%.2f\", $rps2/10000}")× the target rate, p99 $(awk "BEGIN{printf \"%.2f\", $p99/1000}") ms = $(awk "BEGIN{printf \"%.2f\", $p99/5000}")× the latency bound"
rps_t=- p99_t=-
if [[ $TRIGGERS == 1 ]]; then
    rps_t=$(printf '%.0f' "$(col trigger-202 2 3 | median)")
    p99_t=$(awk "BEGIN{printf \"%.2f\", $(col trigger-202 2 5 | median)/1000}")
    echo "target (issue): ≥ 2000 triggering calls/s with 64 clients on one application, every 202 durable; measured $rps_t req/s = $(awk "BEGIN{printf \"%.2f\", $rps_t/2000}")× the target rate"
fi
# One line for bench/run-all.sh.
echo "SUMMARY push_rps=$(printf '%.0f' "$rps2") push_p50_ms=$(awk "BEGIN{printf \"%.2f\", $(col signed-push-200 "${THREADS%% *}" 4 | median)/1000}") push_p99_ms=$(awk "BEGIN{printf \"%.2f\", $p99/1000}") trigger_rps=$rps_t trigger_p99_ms=$p99_t"
exit $status
