#!/usr/bin/env bash
# `make demo`: a local control plane, the operator, a Git repository served over smart HTTP,
# an application using ${SERVICE_TAG:-stable}, a Webhook, and one call of it that redeploys
# with SERVICE_TAG=development and restarts every workload. Leaves everything running;
# `make demo-down` stops it.
#
# Environment: DEMO_DIR (state, default target/demo), TUGBOAT_BIN (a built binary; default:
# cargo build).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
demo="${DEMO_DIR:-$root/target/demo}"
mkdir -p "$demo"
demo="$(cd "$demo" && pwd)"
ns=tugboat-demo
start=$(date +%s)
step() { printf '\n\033[1m==> [%3ss] %s\033[0m\n' "$(( $(date +%s) - start ))" "$*"; }
info() { printf '    %s\n' "$*"; }
fail() { printf '\n!!  %s\n' "$*" >&2; [[ -f "$demo/operator.log" ]] && tail -20 "$demo/operator.log" >&2; exit 1; }

# wait_for DESCRIPTION TIMEOUT COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local what="$1" timeout="$2"; shift 2
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    (( $(date +%s) < deadline )) || fail "timed out after ${timeout}s waiting for $what"
    sleep 0.5
  done
}

step "building the control-plane tools (cached after the first build)"
bin="$("$root/testenv/build.sh" etcd kube kwok)"
kubectl() { "$bin/kubectl" --kubeconfig "$demo/testenv/kubeconfig" "$@"; }

step "starting the local control plane (etcd, kube-apiserver, controllers, kwok nodes)"
"$root/testenv/up.sh" "$demo/testenv" >/dev/null
info "kubeconfig: $demo/testenv/kubeconfig"

step "installing the CRDs"
kubectl apply --server-side -f "$root/crds/" | sed 's/^/    /'
kubectl wait --for condition=Established --timeout 60s -f "$root/crds/" >/dev/null

step "building tugboat"
if [[ -z "${TUGBOAT_BIN:-}" ]]; then
  (cd "$root" && cargo build --locked --quiet --bin tugboat)
  TUGBOAT_BIN="$root/target/debug/tugboat"
fi
info "$TUGBOAT_BIN"

step "creating the demo Git repository (served over smart HTTP by git http-backend)"
rm -rf "$demo/git" "$demo/work"
mkdir -p "$demo/git"
git init --quiet --bare --initial-branch=main "$demo/git/shop.git"
git init --quiet --initial-branch=main "$demo/work"
mkdir -p "$demo/work/deploy"
cp "$root/demo/app/web.yaml" "$demo/work/deploy/web.yaml"
git -C "$demo/work" add deploy
git -C "$demo/work" -c user.name=demo -c user.email=demo@example.com commit --quiet -m "web, tag \${SERVICE_TAG:-stable}"
git -C "$demo/work" push --quiet "$demo/git/shop.git" main
if [[ -f "$demo/git-http.pid" ]] && kill -0 "$(cat "$demo/git-http.pid")" 2>/dev/null; then
  kill "$(cat "$demo/git-http.pid")"
fi
rm -f "$demo/git-http.port"
python3 "$root/demo/git_http.py" "$demo/git" "$demo/git-http.port" >"$demo/git-http.log" 2>&1 &
echo $! >"$demo/git-http.pid"
wait_for "the Git server" 10 test -s "$demo/git-http.port"
repo="http://127.0.0.1:$(cat "$demo/git-http.port")/shop.git"
git ls-remote "$repo" main >/dev/null || fail "the Git server does not answer"
info "$repo"

step "starting the operator"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
read -r probe_port trigger_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
if [[ -f "$demo/operator.pid" ]] && kill -0 "$(cat "$demo/operator.pid")" 2>/dev/null; then
  kill "$(cat "$demo/operator.pid")"
fi
POD_NAME=tugboat-demo RUST_LOG=info,kube=warn "$TUGBOAT_BIN" run \
  --kubeconfig "$demo/testenv/kubeconfig" \
  --namespace "$ns" --leader-election-namespace "$ns" \
  --probe-addr "127.0.0.1:$probe_port" --trigger-addr "127.0.0.1:$trigger_port" \
  --cache-dir "$demo/cache" >"$demo/operator.log" 2>&1 &
echo $! >"$demo/operator.pid"
echo "$trigger_port" >"$demo/trigger.port"
echo "$probe_port" >"$demo/probe.port"
wait_for "the operator to be ready" 30 curl -sf "http://127.0.0.1:$probe_port/readyz"
info "trigger endpoint http://127.0.0.1:$trigger_port, metrics http://127.0.0.1:$probe_port/metrics"
info "log: $demo/operator.log"

step "creating GitOpsApplication shop and Webhook deploy"
kubectl -n "$ns" apply -f - <<YAML | sed 's/^/    /'
apiVersion: tugboat.dev/v1alpha1
kind: GitOpsApplication
metadata:
  name: shop
spec:
  source:
    repoURL: $repo
    ref: {branch: main}
    path: deploy
  healthTimeout: 60s
---
apiVersion: tugboat.dev/v1alpha1
kind: Webhook
metadata:
  name: deploy
spec:
  provider: generic
  targets: [{name: shop}]
YAML
ready() { [[ "$(kubectl -n "$ns" get gapp shop -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
wait_for "the first deployment (Ready=True)" 90 ready
kubectl -n "$ns" get gapp shop | sed 's/^/    /'
env_of_web() { kubectl -n "$ns" get deployment web -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="SERVICE_TAG")].value}'; }
info "live Deployment web: SERVICE_TAG=$(env_of_web)"

step "calling the webhook: SERVICE_TAG=development&rollout-restart=all"
path=""
has_path() { path="$(kubectl -n "$ns" get webhook deploy -o jsonpath='{.status.webhookPath}')" && [[ -n "$path" ]]; }
wait_for "the webhook path" 30 has_path
has_path
url="http://127.0.0.1:$trigger_port$path"
info "curl -X POST '$url?SERVICE_TAG=development&rollout-restart=all'"
answer=""
call() { answer="$(curl -s -w ' HTTP %{http_code}' -X POST "$url?SERVICE_TAG=development&rollout-restart=all")" && [[ "$answer" == *"HTTP 202" ]]; }
wait_for "202 Accepted from the trigger endpoint" 15 call
call || true
info "answer: $answer"

step "waiting for the redeploy"
restarted_at() { kubectl -n "$ns" get deployment web -o jsonpath='{.spec.template.metadata.annotations.kubectl\.kubernetes\.io/restartedAt}'; }
redeployed() { [[ "$(env_of_web)" == development && -n "$(restarted_at)" ]]; }
wait_for "SERVICE_TAG=development and a restart in the live Deployment" 90 redeployed
kubectl -n "$ns" rollout status deployment/web --timeout 90s | sed 's/^/    /'
finished() { [[ "$(kubectl -n "$ns" get gapp shop -o jsonpath='{.status.deployments[-1:].result}')" == Succeeded ]] && ready; }
wait_for "the deployment to finish" 90 finished

step "what happened"
kubectl -n "$ns" get gapp,wh | sed 's/^/    /'
info ""
info "live Deployment web:"
info "  env SERVICE_TAG          = $(env_of_web)"
info "  image                    = $(kubectl -n "$ns" get deployment web -o jsonpath='{.spec.template.spec.containers[0].image}')"
info "  restartedAt annotation   = $(restarted_at)"
info "application status:"
info "  variables in force       = $(kubectl -n "$ns" get gapp shop -o jsonpath='{.status.variables}')"
info "  last trigger             = $(kubectl -n "$ns" get gapp shop -o jsonpath='{.status.lastTrigger.id} from {.status.lastTrigger.source}')"
info "  last deployment          = $(kubectl -n "$ns" get gapp shop -o jsonpath='{.status.deployments[-1:].result}: {.status.deployments[-1:].message}; restarted {.status.deployments[-1:].restarted}')"
info "events:"
kubectl -n "$ns" get events --field-selector involvedObject.name=shop -o custom-columns=REASON:.reason,MESSAGE:.message --no-headers 2>/dev/null | tail -5 | sed 's/^/      /'

cat <<MSG

tugboat is running (everything stays up until \`make demo-down\`). Try:

  export KUBECONFIG=$demo/testenv/kubeconfig
  alias kubectl=$bin/kubectl
  kubectl -n $ns get gapp,wh                     # is it working, what is live
  kubectl -n $ns describe gapp shop              # conditions, deployments, events
  curl -X POST '$url?SERVICE_TAG=v2'             # redeploy with another tag
  curl -X POST '$url?rollout-restart=deployment/web'   # restart only web
  curl -s http://127.0.0.1:$probe_port/metrics | grep ^tugboat_
  # change the application in Git, commit, push, then call the webhook without parameters:
  cd $demo/work && \$EDITOR deploy/web.yaml && git commit -am change && git push $demo/git/shop.git main

  operator log: $demo/operator.log
  stop everything: make demo-down
MSG
