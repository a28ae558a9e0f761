#!/usr/bin/env bash
# Time from a webhook call to a finished rolling restart, against kubectl doing the same.
#
# Against the running test control plane (`make testenv-up`; kwok nodes, so pods really start)
# and the release binary (`cargo build --release`), it:
#   1. creates a bare Git repository served over file:// holding one Deployment `web`
#      (2 replicas, env var SERVICE_TAG=${SERVICE_TAG:-stable}),
#   2. creates a namespace, a GitOpsApplication `shop` (branch main, healthTimeout 60s) and a
#      Webhook `restart` (provider generic, target shop), starts
#      `tugboat run --allow-file-sources --trigger-addr 127.0.0.1:PORT` and waits until the
#      application is Ready, the Deployment rolled out and the Webhook has its path,
#   3. RUNS times, alternating which goes first:
#      tugboat: `curl -X POST http://127.0.0.1:PORT/hooks/<uuid>?rollout-restart=deployment/web`
#               → 202 {"triggerId"}, then waits (an API watch on the application, started before
#               the call) until the last entry of status.deployments has that triggerId and result
#               Succeeded — tugboat writes Succeeded only once the restarted Deployment has rolled
#               out; the script then checks that with `kubectl rollout status --timeout=5s`;
#      kubectl: `kubectl rollout restart deployment/web && kubectl rollout status deployment/web`,
#   4. prints the times, the medians and their ratio as a Markdown table.
# Between calls it waits 1.1 s (kubectl.kubernetes.io/restartedAt has second precision) and for
# the previous rollout to be complete. It deletes what it created and is bounded in time
# (each wait has a deadline). A run takes about 1–2 minutes.
#
# MODE=commit measures a new commit instead: before each run a commit changing the
# Deployment's env is pushed; tugboat: a plain call to the webhook (no parameters) → Succeeded
# for that trigger; kubectl: `git fetch` + `git checkout` in a clone, `kubectl apply
# --server-side --force-conflicts -f deploy/` and `kubectl rollout status` (Flux's receiver →
# source → apply chain done by hand). The manifest has no placeholders in this mode, so both
# apply the same objects.
#
# Usage: bench/trigger_to_rollout.sh
# Env:   MODE (restart | commit, default restart), RUNS (default 5), REPLICAS (default 2), OPERATOR_ARGS (extra `tugboat run` flags, e.g. "--debounce 10ms"), KUBECONFIG_PATH, KUBECTL, TUGBOAT,
#        DEADLINE (seconds per wait, default 120), KEEP_LOGS=1
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
DEADLINE=${DEADLINE:-120}
RUNS=${RUNS:-5}
MODE=${MODE:-restart}
[[ $MODE == restart || $MODE == commit ]] || die "MODE must be restart or commit"
REPLICAS=${REPLICAS:-2}

prepare git jq curl python3 awk timeout

# Pods start on kwok nodes; a machine that was saturated a moment ago may have let them go NotReady.
k wait --for=condition=Ready node --all --timeout="${DEADLINE}s" >/dev/null || die "the kwok nodes are not Ready"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tugboat-rollout.XXXXXX")
SUFFIX=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
NS=bench-rollout-$SUFFIX
WATCH_PID=

cleanup() {
    [[ -n $WATCH_PID ]] && kill "$WATCH_PID" 2>/dev/null || true
    stop_operator
    if k get namespace "$NS" >/dev/null 2>&1; then
        k -n "$NS" patch gitopsapplication shop --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
        k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
    fi
    if [[ ${KEEP_LOGS:-0} == 1 ]]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# --- 1. the repository --------------------------------------------------------------------
git init --quiet --bare --initial-branch=main "$WORK/repo.git"
git init --quiet --initial-branch=main "$WORK/src"
mkdir -p "$WORK/src/deploy"
cat >"$WORK/src/deploy/web.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: $REPLICAS
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.example.com/web:1
          env:
            - name: SERVICE_TAG
              value: \${SERVICE_TAG:-stable}
EOF
if [[ $MODE == commit ]]; then
    sed -i 's/value: ${SERVICE_TAG:-stable}/value: "release-0"/' "$WORK/src/deploy/web.yaml"
fi
git -C "$WORK/src" add -A
git -C "$WORK/src" -c user.name=bench -c user.email=bench@example.invalid commit --quiet -m "web"
git -C "$WORK/src" push --quiet "$WORK/repo.git" main

# --- 2. the objects and the operator ------------------------------------------------------
k create namespace "$NS" >/dev/null
tenant "$NS"
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: tugboat.dev/v1alpha1
kind: GitOpsApplication
metadata: {name: shop}
spec:
  source:
    repoURL: file://$WORK/repo.git
    ref: {branch: main}
    path: deploy
  healthTimeout: 60s
---
apiVersion: tugboat.dev/v1alpha1
kind: Webhook
metadata: {name: restart}
spec:
  provider: generic
  targets: [{name: shop}]
EOF
TRIGGER_PORT=$(free_port)
PROBE_PORT=$(free_port)
RUST_LOG=${RUST_LOG:-info,kube=warn} "$TUGBOAT" run --kubeconfig "$KUBECONFIG_PATH" --namespace "$NS" --leader-election-namespace "$NS" --allow-file-sources \
    --trigger-addr "127.0.0.1:$TRIGGER_PORT" --probe-addr "127.0.0.1:$PROBE_PORT" --cache-dir "$WORK/cache" \
    ${OPERATOR_ARGS:-} >/dev/null 2>"$WORK/operator.log" &
OPERATOR_PID=$!
until=$((SECONDS + DEADLINE))
until curl -fsS "http://127.0.0.1:$PROBE_PORT/readyz" >/dev/null 2>&1; do
    kill -0 "$OPERATOR_PID" 2>/dev/null || { cat "$WORK/operator.log" >&2; die "the operator exited"; }
    ((SECONDS < until)) || die "the operator did not become ready in ${DEADLINE}s"
    sleep 0.1
done
k -n "$NS" wait --for=condition=Ready --timeout="${DEADLINE}s" gitopsapplication/shop >/dev/null ||
    { tail -20 "$WORK/operator.log" >&2; die "the application did not become Ready"; }
k -n "$NS" rollout status deployment/web --timeout="${DEADLINE}s" >/dev/null
WEBHOOK_PATH=
until=$((SECONDS + DEADLINE))
while [[ -z $WEBHOOK_PATH ]]; do
    ((SECONDS < until)) || die "the Webhook got no status.webhookPath in ${DEADLINE}s"
    WEBHOOK_PATH=$(k -n "$NS" get webhook restart -o jsonpath='{.status.webhookPath}')
    [[ -n $WEBHOOK_PATH ]] || sleep 0.2
done
HOOK_URL="http://127.0.0.1:$TRIGGER_PORT/hooks/${WEBHOOK_PATH##*/}?rollout-restart=deployment/web"
[[ $MODE == commit ]] && HOOK_URL="http://127.0.0.1:$TRIGGER_PORT/hooks/${WEBHOOK_PATH##*/}"
git clone --quiet "$WORK/repo.git" "$WORK/kubectl-clone"
echo "namespace $NS ready; trigger URL $HOOK_URL" >&2

# --- 3. the runs --------------------------------------------------------------------------
settle() { # the previous rollout is complete, and restartedAt (seconds) will differ
    k -n "$NS" rollout status deployment/web --timeout="${DEADLINE}s" >/dev/null
    sleep 1.1
}

by_tugboat() {
    # The watch starts before the call, so no status change can be missed.
    local fifo=$WORK/watch.fifo line id started ended code
    rm -f "$fifo"; mkfifo "$fifo"
    "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" get --raw \
        "/apis/tugboat.dev/v1alpha1/namespaces/$NS/gitopsapplications?watch=1&fieldSelector=metadata.name%3Dshop" >"$fifo" &
    WATCH_PID=$!
    exec {watch_fd}<"$fifo"
    sleep 0.3 # the watch is established (its first event is the current state)
    started=$(now_ms)
    code=$(curl -sS -o "$WORK/answer.json" -w '%{http_code}' -X POST "$HOOK_URL")
    [[ $code == 202 ]] || die "the call answered $code: $(cat "$WORK/answer.json")"
    id=$(jq -r .triggerId "$WORK/answer.json")
    # Each watch line is matched in bash, not by a jq process per line: a process start per
    # status change would be counted against tugboat. The API server sorts the keys of a
    # deployment record (… result, revision, startedAt, triggerId).
    local until=$((SECONDS + DEADLINE)) result= finished="\"result\":\"(Succeeded|Failed)\"[^}]*\"triggerId\":\"$id\""
    while ((SECONDS < until)); do
        IFS= read -r -t "$DEADLINE" line <&"$watch_fd" || break
        if [[ $line =~ $finished ]]; then
            result=${BASH_REMATCH[1]}
            break
        fi
    done
    ended=$(now_ms)
    exec {watch_fd}<&-
    kill "$WATCH_PID" 2>/dev/null || true
    wait "$WATCH_PID" 2>/dev/null || true
    WATCH_PID=
    [[ $result == Succeeded ]] || { tail -20 "$WORK/operator.log" >&2; die "trigger $id: deployment result '${result:-none}'"; }
    # Succeeded means rolled out: rollout status must agree at once.
    k -n "$NS" rollout status deployment/web --timeout=5s >/dev/null || die "Succeeded before the rollout finished"
    MS=$((ended - started))
}

by_kubectl() {
    local started ended
    started=$(now_ms)
    if [[ $MODE == commit ]]; then
        git -C "$WORK/kubectl-clone" fetch --quiet origin main &&
            git -C "$WORK/kubectl-clone" checkout --quiet --detach FETCH_HEAD &&
            k -n "$NS" apply --server-side --force-conflicts -f "$WORK/kubectl-clone/deploy/" >/dev/null &&
            k -n "$NS" rollout status deployment/web --timeout="${DEADLINE}s" >/dev/null
    else
        k -n "$NS" rollout restart deployment/web >/dev/null &&
            k -n "$NS" rollout status deployment/web --timeout="${DEADLINE}s" >/dev/null
    fi
    ended=$(now_ms)
    MS=$((ended - started))
}

RELEASE=0
new_commit() { # a commit that changes the Deployment, pushed before the clock starts
    RELEASE=$((RELEASE + 1))
    sed -i "s/value: \"release-[0-9]*\"/value: \"release-$RELEASE\"/" "$WORK/src/deploy/web.yaml"
    git -C "$WORK/src" -c user.name=bench -c user.email=bench@example.invalid commit --quiet -am "release $RELEASE"
    git -C "$WORK/src" push --quiet "$WORK/repo.git" main
}

: >"$WORK/times"
for run in $(seq "$RUNS"); do
    if ((run % 2)); then order="tugboat kubectl"; else order="kubectl tugboat"; fi
    for who in $order; do
        settle
        [[ $MODE == commit ]] && new_commit
        MS=
        by_"$who"
        echo "$who $MS" >>"$WORK/times"
        echo "run $run: $who ${MS} ms" >&2
    done
done

# --- 4. report ------------------------------------------------------------------------------
median() { sort -n | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
t_med=$(awk '$1=="tugboat"{print $2}' "$WORK/times" | median)
k_med=$(awk '$1=="kubectl"{print $2}' "$WORK/times" | median)
t_all=$(awk '$1=="tugboat"{printf "%s%s", s, $2; s=", "}' "$WORK/times")
k_all=$(awk '$1=="kubectl"{printf "%s%s", s, $2; s=", "}' "$WORK/times")
ratio=$(awk "BEGIN{printf \"%.2f\", $t_med/$k_med}")
echo
echo "Trigger to rollout: Deployment web, $REPLICAS replicas, $RUNS runs each, $(nproc) cores"
echo
echo '| path | median | runs (ms, in order) |'
echo '|---|---:|---|'
if [[ $MODE == commit ]]; then
    echo "| new commit pushed; \`curl -X POST …/hooks/<uuid>\` → status.deployments[-1] Succeeded | $t_med ms | $t_all |"
    echo "| \`git fetch && git checkout && kubectl apply --server-side -f deploy/ && kubectl rollout status deployment/web\` | $k_med ms | $k_all |"
    echo
    echo "ratio tugboat / (git + kubectl): ${ratio}× (target ≤ 1.5×)"
else
    echo "| \`curl -X POST …/hooks/<uuid>?rollout-restart=deployment/web\` → status.deployments[-1] Succeeded | $t_med ms | $t_all |"
    echo "| \`kubectl rollout restart deployment/web && kubectl rollout status deployment/web\` | $k_med ms | $k_all |"
    echo
    echo "ratio tugboat / kubectl: ${ratio}× (target ≤ 1.2×)"
fi
# One line for bench/run-all.sh.
echo "SUMMARY mode=$MODE tugboat_ms=$t_med kubectl_ms=$k_med ratio=$ratio"
