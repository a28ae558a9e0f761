#!/usr/bin/env bash
# Many applications on one repository: first sync, memory when idle, and one push redeploying all.
#
# Against the running test control plane (`make testenv-up`; kwok nodes, so pods really start)
# and the release binary (`cargo build --release`), it:
#   1. creates a bare Git repository (file://) whose deploy/app.yaml holds a ConfigMap, a
#      Deployment (1 replica) and a Service, all named ${APP} so every application owns its own,
#   2. creates APPS GitOpsApplications (variables {APP: app-NNNN}, updates by webhook only,
#      label bench=scale) and one generic Webhook whose targets select them all — with the
#      operator stopped, so the first sync starts from a cold operator,
#   3. first sync: starts `tugboat run` and times until every application is Ready at the
#      commit (polling `kubectl get` every POLL seconds), counts the operator's git fetches
#      (its "fetched" log lines),
#   4. memory: waits IDLE seconds and reads the operator's VmRSS and VmHWM from /proc,
#   5. storm: pushes a second commit (the Deployment's env changes, so every Deployment rolls
#      out), calls the webhook once, and times until every application is Ready at the new
#      commit; counts the fetches made meanwhile (the target is exactly 1),
#   the API server's request counters (apiserver_request_total) are read before and after the
#   first sync and the storm, and the requests in between printed per application by verb and
#   resource (the operator's own and the control plane's, side by side),
#   6. floor (FLOOR=1, the default): stops the operator and, in a second namespace, applies the
#      same APPS × 3 objects with one `kubectl apply --server-side` and times until every
#      Deployment is available: what the control plane itself needs for this much work,
# and prints a Markdown table. It deletes what it created and is bounded in time (each wait has
# a deadline).
#
# SOURCE=kustomize or SOURCE=helm builds the same objects instead (the default, plain, is the
# directory of YAML above): for kustomize, deploy/ is an overlay (a label, a patch) of base/,
# whose app.yaml holds the three objects; for helm, deploy/ is a chart whose template names
# them "{{ .Values.prefix }}${APP}" and whose values.yaml holds the release number. Neither tool
# touches `${APP}`: tugboat substitutes it after the build, so all APPS applications share one
# build per commit (helm: every application sets `helm.releaseName: HELM_RELEASE`, since the
# release name is an input of the build; HELM_RELEASE= leaves it to each application's name, one
# build each). The operator then runs with --kustomize-bin and --helm-bin, the floor applies the
# tool's output of the first commit, and the script reads `tugboat_builds_total` and
# `tugboat_build_duration_seconds` from the operator's /metrics after the first sync, after the
# storm, and after two more steps that must start no build:
#   7. reconcile requests: sets the annotation tugboat.dev/reconcile-requested-at on every
#      application and waits until each has handled it (status.lastHandledReconcileAt) and its
#      deployment finished: each asks the remote, renders (the build from the cache) and applies,
#   8. no-change reconciles: restarts the operator (build cache and counters empty) and waits
#      until every application has had a reconcile that found nothing changed (the debug line
#      "nothing changed: no fetch, no apply"),
# before the floor.
#
# Usage: bench/scale.sh
# Env:   APPS (default 100), SOURCE (plain | kustomize | helm, default plain), HELM_RELEASE
#        (default bench), CONCURRENCY (operator --concurrency, default: the operator's),
#        POLL (seconds, default 0.5), IDLE (seconds, default 15), FLOOR (default 1), DEADLINE (seconds per wait,
#        default 600), OPERATOR_ARGS, KUBECONFIG_PATH, KUBECTL, TUGBOAT, KUSTOMIZE_BIN, HELM_BIN, KEEP_LOGS=1
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
APPS=${APPS:-100}
POLL=${POLL:-0.5}
IDLE=${IDLE:-15}
DEADLINE=${DEADLINE:-600}
SOURCE=${SOURCE:-plain}
HELM_RELEASE=${HELM_RELEASE-bench}
case $SOURCE in
    plain) ;;
    kustomize) [[ -x $KUSTOMIZE_BIN ]] || die "no kustomize at $KUSTOMIZE_BIN (set KUSTOMIZE_BIN)" ;;
    helm) [[ -x $HELM_BIN ]] || die "no helm at $HELM_BIN (set HELM_BIN)" ;;
    *) die "SOURCE must be plain, kustomize or helm, not $SOURCE" ;;
esac

K_TIMEOUT=${K_TIMEOUT:-60s}
prepare git jq curl python3 awk
k wait --for=condition=Ready node --all --timeout="${DEADLINE}s" >/dev/null || die "the kwok nodes are not Ready"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tugboat-scale.XXXXXX")
SUFFIX=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
NS=bench-scale-$SUFFIX

cleanup() {
    stop_operator 100
    k delete namespace "$NS-floor" --wait=false >/dev/null 2>&1 || true
    if k get namespace "$NS" >/dev/null 2>&1; then
        # Without the operator, finalizers would hold the namespace: drop them, then delete.
        k -n "$NS" get gitopsapplications -o name 2>/dev/null |
            xargs -r -P4 -n50 "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" -n "$NS" patch --type=merge \
                -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
        k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
    fi
    if [[ ${KEEP_LOGS:-0} == 1 ]]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

progress() { printf '[scale %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- 1. the repository --------------------------------------------------------------------
git init --quiet --bare --initial-branch=main "$WORK/repo.git"
git init --quiet --initial-branch=main "$WORK/src"
mkdir -p "$WORK/src/deploy"
write_manifests() {
    case $SOURCE in
        plain) write_plain "$1" ;;
        kustomize) write_overlay "$1" ;;
        helm) write_chart "$1" ;;
    esac
    git -C "$WORK/src" add -A
    git -C "$WORK/src" -c user.name=bench -c user.email=bench@example.invalid commit --quiet -m "release $1"
    git -C "$WORK/src" push --quiet "$WORK/repo.git" main
    git -C "$WORK/src" rev-parse HEAD
}
# The three objects of write_plain in block style (kustomize and helm parse YAML before tugboat
# substitutes, and `${APP}` cannot stand unquoted in a flow mapping): release $1, names
# prefixed with $2.
block_manifests() {
    cat <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: "$2\${APP}-config"
data:
  release: "$1"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: "$2\${APP}"
spec:
  replicas: 1
  selector:
    matchLabels:
      app: "\${APP}"
  template:
    metadata:
      labels:
        app: "\${APP}"
    spec:
      containers:
        - name: web
          image: registry.example.com/web:1
          env:
            - name: RELEASE
              value: "$1"
---
apiVersion: v1
kind: Service
metadata:
  name: "$2\${APP}"
spec:
  selector:
    app: "\${APP}"
  ports:
    - port: 80
EOF
}
write_overlay() {
    mkdir -p "$WORK/src/base"
    block_manifests "$1" "" >"$WORK/src/base/app.yaml"
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - app.yaml\n' \
        >"$WORK/src/base/kustomization.yaml"
    cat >"$WORK/src/deploy/kustomization.yaml" <<'EOF'
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../base
labels:
  - pairs: {tier: web}
    includeSelectors: false
patches:
  - target: {kind: Deployment}
    patch: |-
      - op: add
        path: /spec/template/metadata/annotations
        value: {bench.tugboat.dev/overlay: scale}
EOF
}
write_chart() {
    mkdir -p "$WORK/src/deploy/templates"
    printf 'apiVersion: v2\nname: bench\nversion: 0.1.0\n' >"$WORK/src/deploy/Chart.yaml"
    printf 'release: "%s"\nprefix: ""\n' "$1" >"$WORK/src/deploy/values.yaml"
    # The release number comes from the values, the names from ${APP} (helm leaves it alone).
    # shellcheck disable=SC2016
    block_manifests '{{ .Values.release }}' '{{ .Values.prefix }}' >"$WORK/src/deploy/templates/app.yaml"
}
write_plain() {
    cat >"$WORK/src/deploy/app.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: \${APP}-config}
data: {release: "$1"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: \${APP}}
spec:
  replicas: 1
  selector:
    matchLabels: {app: \${APP}}
  template:
    metadata:
      labels: {app: \${APP}}
    spec:
      containers:
        - name: web
          image: registry.example.com/web:1
          env:
            - {name: RELEASE, value: "$1"}
---
apiVersion: v1
kind: Service
metadata: {name: \${APP}}
spec:
  selector: {app: \${APP}}
  ports: [{port: 80}]
EOF
}
FIRST=$(write_manifests 1)

# --- 2. applications and the webhook (operator stopped) -----------------------------------
k create namespace "$NS" >/dev/null
tenant "$NS"
progress "creating $APPS applications in $NS"
python3 - "$APPS" "$WORK/repo.git" "$SOURCE" "$HELM_RELEASE" >"$WORK/apps.yaml" <<'EOF'
import json, sys
count, repo, source, release = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
items = [{
    "apiVersion": "tugboat.dev/v1alpha1", "kind": "GitOpsApplication",
    "metadata": {"name": f"app-{i:04d}", "labels": {"bench": "scale"}},
    "spec": {"source": {"repoURL": f"file://{repo}", "ref": {"branch": "main"}, "path": "deploy"},
             "variables": {"APP": f"app-{i:04d}"}, "healthTimeout": "300s"},
} for i in range(count)]
if source == "helm" and release:  # the release name is an input of the build: one for all
    for item in items:
        item["spec"]["source"]["helm"] = {"releaseName": release}
items.append({"apiVersion": "tugboat.dev/v1alpha1", "kind": "Webhook", "metadata": {"name": "push"},
              "spec": {"provider": "generic", "targets": [{"selector": {"matchLabels": {"bench": "scale"}}}]}})
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
EOF
started=$(now_ms)
k -n "$NS" apply --server-side --field-manager=bench -f "$WORK/apps.yaml" >/dev/null
CREATE_MS=$(($(now_ms) - started))

# Prints how many applications are Ready at commit $1.
ready_at() {
    k -n "$NS" get gitopsapplications -o json |
        jq --arg sha "$1" '[.items[] | select(.status.lastAppliedRevision // "" | endswith($sha))
            | select(any(.status.conditions[]?; .type == "Ready" and .status == "True"))] | length'
}
# Shows the applications not Ready at commit $1, with their conditions.
not_ready() {
    k -n "$NS" get gitopsapplications -o json | jq -r --arg sha "$1" '.items[]
        | select((.status.lastAppliedRevision // "" | endswith($sha)) and any(.status.conditions[]?; .type == "Ready" and .status == "True") | not)
        | "\(.metadata.name): \([.status.conditions[]? | "\(.type)=\(.status) \(.reason): \(.message)"] | join("; "))"' | head -20
    echo "their pods (first 5 applications):"
    k -n "$NS" get gitopsapplications -o json | jq -r --arg sha "$1" '.items[]
        | select((.status.lastAppliedRevision // "" | endswith($sha)) and any(.status.conditions[]?; .type == "Ready" and .status == "True") | not)
        | .metadata.name' | head -5 | while read -r app; do k -n "$NS" get pods -l "app=$app" -o wide 2>&1 | tail -n +1; done
}
# Waits until every application is Ready at commit $1; prints the elapsed ms since $2.
wait_all_ready() {
    local sha=$1 since=$2 until=$((SECONDS + DEADLINE)) count=0 last=-1
    while :; do
        count=$(ready_at "$sha")
        if ((count != last)); then progress "$count/$APPS ready at ${sha:0:8}"; last=$count; fi
        ((count >= APPS)) && break
        kill -0 "$OPERATOR_PID" 2>/dev/null || { tail -20 "$WORK/operator.log" >&2; die "the operator exited"; }
        if ((SECONDS >= until)); then
            not_ready "$sha" >&2
            local rss; rss=$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$OPERATOR_PID/status")
            echo "SUMMARY apps=$APPS first_sync_s=incomplete($count/$APPS) storm_s=incomplete($count/$APPS) rss_mib=$rss"
            die "only $count/$APPS ready after ${DEADLINE}s"
        fi
        sleep "$POLL"
    done
    echo $(($(now_ms) - since))
}
fetches() { grep -c '"message":"fetched"' "${1:-$WORK/operator.log}" || true; }
# From the operator's /metrics: runs of the build tools (every tool and result), and the seconds
# they took.
builds() { curl -fsS "http://127.0.0.1:$PROBE_PORT/metrics" | awk '/^tugboat_builds_total\{/ {n += $NF} END {print n + 0}'; }
build_seconds() {
    curl -fsS "http://127.0.0.1:$PROBE_PORT/metrics" | awk '/^tugboat_build_duration_seconds_sum\{/ {s += $NF} END {print s + 0}'
}
# Saves the API server's request counters (apiserver_request_total) to file $1.
api_requests() { k get --raw /metrics | grep '^apiserver_request_total{' >"$1" || true; }
# The requests made between snapshots $1 and $2, per application, by verb and resource (the
# script's own polls are the `list gitopsapplications` rows; everything else on this control
# plane adds a little too: the controllers, the scheduler, kwok).
api_requests_between() {
    python3 - "$1" "$2" "$APPS" <<'PY'
import re, sys
def load(path):
    totals = {}
    for line in open(path):
        labels, value = line.rsplit(" ", 1)
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        resource = fields.get("resource", "") + ("/" + fields["subresource"] if fields.get("subresource") else "")
        key = (fields.get("verb", ""), resource or "(none)", "dry run" if fields.get("dry_run") else "")
        totals[key] = totals.get(key, 0) + float(value)
    return totals
before, after, apps = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
rows = sorted(((after[k] - before.get(k, 0), k) for k in after), reverse=True)
rows = [(n, k) for n, k in rows if n >= apps / 10]
print("| verb | resource | dry run | requests | per application |\n|---|---|---|---:|---:|")
for n, (verb, resource, dry) in rows:
    print(f"| {verb} | {resource} | {dry} | {n:.0f} | {n / apps:.2f} |")
print(f"| all listed | | | {sum(n for n, _ in rows):.0f} | {sum(n for n, _ in rows) / apps:.2f} |")
PY
}

# --- 3. first sync ------------------------------------------------------------------------
TRIGGER_PORT=$(free_port)
PROBE_PORT=$(free_port)
args=(run --kubeconfig "$KUBECONFIG_PATH" --namespace "$NS" --leader-election-namespace "$NS" --allow-file-sources
    --trigger-addr "127.0.0.1:$TRIGGER_PORT" --probe-addr "127.0.0.1:$PROBE_PORT" --cache-dir "$WORK/cache"
    --log-format json)
[[ -n ${CONCURRENCY:-} ]] && args+=(--concurrency "$CONCURRENCY")
[[ $SOURCE != plain ]] && args+=(--kustomize-bin "$KUSTOMIZE_BIN" --helm-bin "$HELM_BIN")
progress "starting the operator; first sync of $APPS applications"
api_requests "$WORK/requests-0"
started=$(now_ms)
# shellcheck disable=SC2086
RUST_LOG=${RUST_LOG:-info,kube=warn} "$TUGBOAT" "${args[@]}" ${OPERATOR_ARGS:-} >/dev/null 2>"$WORK/operator.log" &
OPERATOR_PID=$!
SYNC_MS=$(wait_all_ready "$FIRST" "$started")
SYNC_FETCHES=$(fetches)
api_requests "$WORK/requests-1"
if [[ $SOURCE != plain ]]; then BUILDS_SYNC=$(builds) BUILD_S_SYNC=$(build_seconds); fi

# --- 4. memory when idle ------------------------------------------------------------------
progress "idle for ${IDLE}s, then reading the operator's memory"
sleep "$IDLE"
RSS_KB=$(awk '/^VmRSS:/ {print $2}' "/proc/$OPERATOR_PID/status")
HWM_KB=$(awk '/^VmHWM:/ {print $2}' "/proc/$OPERATOR_PID/status")
ANON_KB=$(awk '/^RssAnon:/ {print $2}' "/proc/$OPERATOR_PID/status")
FILE_KB=$(awk '/^RssFile:/ {print $2}' "/proc/$OPERATOR_PID/status")

# --- 5. one push, one webhook call --------------------------------------------------------
WEBHOOK_PATH=$(k -n "$NS" get webhook push -o jsonpath='{.status.webhookPath}')
[[ -n $WEBHOOK_PATH ]] || die "the Webhook has no path"
SECOND=$(write_manifests 2)
before=$(fetches)
progress "pushed ${SECOND:0:8}; calling the webhook once"
started=$(now_ms)
answer=$(curl -sS -o "$WORK/answer.json" -w '%{http_code}' -X POST "http://127.0.0.1:$TRIGGER_PORT$WEBHOOK_PATH")
[[ $answer == 202 ]] || die "the webhook answered $answer: $(cat "$WORK/answer.json")"
ANSWER_MS=$(($(now_ms) - started))
STORM_MS=$(wait_all_ready "$SECOND" "$started")
STORM_FETCHES=$(($(fetches) - before))
api_requests "$WORK/requests-2"
# Where the storm's time went: when each application's deployment started (after the call)
# and how long it took, from status.deployments.
read -r START_MED START_MAX TOOK_MED TOOK_MAX < <(k -n "$NS" get gitopsapplications -o json |
    jq -r --argjson t0 "$started" '[.items[] | .status.deployments[-1]
        | def secs: sub("\\.[0-9]+"; "") | fromdateiso8601;
          {s: ((.startedAt | secs) * 1000 - $t0), d: ((((.finishedAt // .startedAt) | secs) - (.startedAt | secs)) * 1000)}]
        | (map(.s) | sort) as $s | (map(.d) | sort) as $d
        | "\($s[length/2|floor]) \($s[-1]) \($d[length/2|floor]) \($d[-1])"')

if [[ $SOURCE != plain ]]; then
    BUILDS_STORM=$(builds) BUILD_S_STORM=$(build_seconds)
    # --- 7. reconcile requests: render and apply again, the build from the cache ----------
    REQUESTED=bench-$(date -u +%Y%m%dT%H%M%S)
    before=$(fetches)
    progress "requesting a reconcile of every application (tugboat.dev/reconcile-requested-at=$REQUESTED)"
    api_requests "$WORK/requests-3"
    started=$(now_ms)
    k -n "$NS" annotate gitopsapplications -l bench=scale --overwrite "tugboat.dev/reconcile-requested-at=$REQUESTED" >/dev/null
    until=$((SECONDS + DEADLINE)) last=-1
    while :; do
        count=$(k -n "$NS" get gitopsapplications -o json | jq --arg at "$REQUESTED" '[.items[]
            | select(.status.lastHandledReconcileAt == $at and (.status.deployments[-1].finishedAt // "") != ""
                     and any(.status.conditions[]?; .type == "Ready" and .status == "True"))] | length')
        if ((count != last)); then progress "$count/$APPS handled the reconcile request"; last=$count; fi
        ((count >= APPS)) && break
        ((SECONDS < until)) || die "only $count/$APPS handled the reconcile request after ${DEADLINE}s"
        sleep "$POLL"
    done
    REQUEST_MS=$(($(now_ms) - started))
    sleep 2 # the reconciles the last status writes cause finish
    REQUEST_FETCHES=$(($(fetches) - before))
    api_requests "$WORK/requests-4"
    # The applies of the application's objects meanwhile (server-side, as dry run and for real).
    read -r REQUEST_DRY REQUEST_APPLIES < <(python3 - "$WORK/requests-3" "$WORK/requests-4" <<'PY'
import re, sys
def applies(path):
    n = {True: 0.0, False: 0.0}
    for line in open(path):
        labels, value = line.rsplit(" ", 1)
        f = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if f.get("verb") == "APPLY" and f.get("resource") in ("configmaps", "deployments", "services") and not f.get("subresource"):
            n[bool(f.get("dry_run"))] += float(value)
    return n
a, b = applies(sys.argv[1]), applies(sys.argv[2])
print(f"{b[True] - a[True]:.0f} {b[False] - a[False]:.0f}")
PY
)
    BUILDS_REQUESTED=$(builds)
    BUILD_SERIES=$(curl -fsS "http://127.0.0.1:$PROBE_PORT/metrics" | grep '^tugboat_builds_total{' || true)
    # --- 8. no-change reconciles after a restart: build cache and counters empty -----------
    stop_operator 100
    progress "restarting the operator: one no-change reconcile per application"
    started=$(now_ms)
    # shellcheck disable=SC2086
    RUST_LOG=info,kube=warn,tugboat::controller::inputs=debug "$TUGBOAT" "${args[@]}" ${OPERATOR_ARGS:-} \
        >/dev/null 2>"$WORK/operator-restart.log" &
    OPERATOR_PID=$!
    # Applications with a no-change reconcile (one may have more than one).
    unchanged() {
        { grep '"message":"nothing changed: no fetch, no apply"' "$WORK/operator-restart.log" || true; } |
            grep -o '"application":"[^"]*"' | sort -u | wc -l
    }
    until=$((SECONDS + DEADLINE))
    while (($(unchanged) < APPS)); do
        kill -0 "$OPERATOR_PID" 2>/dev/null || { tail -20 "$WORK/operator-restart.log" >&2; die "the operator exited"; }
        ((SECONDS < until)) || die "only $(unchanged)/$APPS no-change reconciles after ${DEADLINE}s"
        sleep "$POLL"
    done
    RESTART_MS=$(($(now_ms) - started))
    sleep 2
    UNCHANGED=$(unchanged) RESTART_FETCHES=$(fetches "$WORK/operator-restart.log") BUILDS_RESTART=$(builds)
fi

# --- 6. the floor: the same objects by kubectl, operator stopped ---------------------------
FLOOR_MS=
if [[ ${FLOOR:-1} == 1 ]]; then
    stop_operator 100
    case $SOURCE in
        plain) git -C "$WORK/src" show "$FIRST:deploy/app.yaml" >"$WORK/app.yaml" ;;
        *) # the tool's output of the first commit
            mkdir "$WORK/first"
            git -C "$WORK/src" archive "$FIRST" | tar -x -C "$WORK/first"
            if [[ $SOURCE == kustomize ]]; then
                "$KUSTOMIZE_BIN" build "$WORK/first/deploy" >"$WORK/app.yaml"
            else
                "$HELM_BIN" template "${HELM_RELEASE:-app}" "$WORK/first/deploy" --namespace "$NS-floor" >"$WORK/app.yaml"
            fi ;;
    esac
    python3 - "$APPS" "$WORK/app.yaml" >"$WORK/floor.yaml" <<'EOF'
import sys
count, template = int(sys.argv[1]), open(sys.argv[2]).read()
print("\n---\n".join(template.replace("${APP}", f"app-{i:04d}") for i in range(count)))
EOF
    k create namespace "$NS-floor" >/dev/null
    progress "floor: kubectl apply --server-side of the same $((APPS * 3)) objects into $NS-floor"
    started=$(now_ms)
    k -n "$NS-floor" apply --server-side --field-manager=bench -f "$WORK/floor.yaml" >/dev/null
    until=$((SECONDS + DEADLINE)) last=-1
    while :; do
        count=$(k -n "$NS-floor" get deployments -o json | jq '[.items[] | select((.status.availableReplicas // 0) >= 1)] | length')
        if ((count != last)); then progress "floor: $count/$APPS Deployments available"; last=$count; fi
        ((count >= APPS)) && break
        ((SECONDS < until)) || die "floor: only $count/$APPS Deployments available after ${DEADLINE}s"
        sleep "$POLL"
    done
    FLOOR_MS=$(($(now_ms) - started))
fi

cpus=$(getconf _NPROCESSORS_ONLN)
ms() { awk -v ms="$1" 'BEGIN { printf "%.1f s", ms / 1000 }'; }
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f MiB", kb / 1024 }'; }
case $SOURCE in
    plain) built= ;;
    kustomize) built=", built by kustomize (base + overlay)" ;;
    helm) built=", built by helm (one chart, release name ${HELM_RELEASE:-the application name})" ;;
esac
cat <<EOF

$APPS applications (ConfigMap + Deployment + Service each) on one repository$built, $cpus cores

| what | measured | git fetches |
|---|---:|---:|
| create the applications (\`kubectl apply --server-side\`, operator stopped) | $(ms "$CREATE_MS") | — |
| first sync: operator start → all Ready at the commit | $(ms "$SYNC_MS") | $SYNC_FETCHES |
| memory after sync, idle ${IDLE}s: VmRSS (peak VmHWM; heap and stacks + mapped binary) | $(mib "$RSS_KB") ($(mib "$HWM_KB"); $(mib "$ANON_KB") + $(mib "$FILE_KB")) | — |
| one push + one webhook call → all Ready at the new commit (202 after $ANSWER_MS ms) | $(ms "$STORM_MS") | $STORM_FETCHES |

Storm breakdown (second precision, from status.deployments): deployments started a median
$(ms "$START_MED") (last $(ms "$START_MAX")) after the call and took a median $(ms "$TOOK_MED") (longest $(ms "$TOOK_MAX")).
EOF
if [[ $SOURCE != plain ]]; then
    # per_build SECONDS BUILDS: the tool's mean time per build.
    per_build() { awk -v s="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.0f ms", s * 1000 / n; else print "—" }'; }
    storm_builds=$((BUILDS_STORM - BUILDS_SYNC))
    storm_build_s=$(awk -v a="$BUILD_S_STORM" -v b="$BUILD_S_SYNC" 'BEGIN { print a - b }')
    cat <<EOF

Builds (\`tugboat_builds_total\`, \`tugboat_build_duration_seconds\` from the operator's /metrics):

| step | builds in the step | counter after it | the tool's time per build | git fetches |
|---|---:|---:|---:|---:|
| first sync | $BUILDS_SYNC | $BUILDS_SYNC | $(per_build "$BUILD_S_SYNC" "$BUILDS_SYNC") | $SYNC_FETCHES |
| one push + one webhook call | $storm_builds | $BUILDS_STORM | $(per_build "$storm_build_s" "$storm_builds") | $STORM_FETCHES |
| a reconcile request on every application (annotation \`tugboat.dev/reconcile-requested-at\`): all handled after $(ms "$REQUEST_MS"), $REQUEST_DRY dry-run applies + $REQUEST_APPLIES applies | $((BUILDS_REQUESTED - BUILDS_STORM)) | $BUILDS_REQUESTED | — | $REQUEST_FETCHES |
| operator restarted (build cache and counters empty): $UNCHANGED/$APPS applications had a "nothing changed" reconcile after $(ms "$RESTART_MS") | $BUILDS_RESTART | $BUILDS_RESTART | — | $RESTART_FETCHES |

$BUILD_SERIES (before the restart)
EOF
fi
cat <<EOF

API requests during the first sync (API server counters, rows of at least APPS/10):

$(api_requests_between "$WORK/requests-0" "$WORK/requests-1")

API requests during the storm:

$(api_requests_between "$WORK/requests-1" "$WORK/requests-2")
EOF
if [[ -n $FLOOR_MS ]]; then
    cat <<EOF
Floor, operator stopped: one \`kubectl apply --server-side\` of the same $((APPS * 3)) objects into a
fresh namespace, then every Deployment available: $(ms "$FLOOR_MS"); first sync / floor =
$(awk -v a="$SYNC_MS" -v b="$FLOOR_MS" 'BEGIN { printf "%.2f", a / b }')×.
EOF
fi
# One line for bench/run-all.sh.
builds_summary=
if [[ $SOURCE != plain ]]; then
    builds_summary=" source=$SOURCE builds_sync=$BUILDS_SYNC builds_storm=$((BUILDS_STORM - BUILDS_SYNC)) builds_requested=$((BUILDS_REQUESTED - BUILDS_STORM)) builds_restart=$BUILDS_RESTART request_fetches=$REQUEST_FETCHES"
fi
echo "SUMMARY apps=$APPS create_s=$(awk -v ms="$CREATE_MS" 'BEGIN{printf "%.1f", ms/1000}') first_sync_s=$(awk -v ms="$SYNC_MS" 'BEGIN{printf "%.1f", ms/1000}') sync_fetches=$SYNC_FETCHES rss_mib=$(awk -v kb="$RSS_KB" 'BEGIN{printf "%.1f", kb/1024}') storm_s=$(awk -v ms="$STORM_MS" 'BEGIN{printf "%.1f", ms/1000}') storm_fetches=$STORM_FETCHES floor_s=$(awk -v ms="${FLOOR_MS:-0}" 'BEGIN{printf "%.1f", ms/1000}')$builds_summary"
