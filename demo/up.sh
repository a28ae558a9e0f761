#!/usr/bin/env bash
# `make demo`: a local control plane, the operator, a Git repository served over smart HTTP,
# an application using ${SERVICE_TAG:-stable}, a Webhook, and one call of it that redeploys
# with SERVICE_TAG=development and restarts every workload. Leaves everything running;
# `make demo-down` stops it.
#
# Environment: DEMO_DIR (state, default target/demo), TUGBOAT_BIN (a built binary; default:
# cargo build), DEMO_MODE:
#   process (default)  the operator runs as a local process; the workloads go to kwok nodes
#   helm               the operator's image (built from the Dockerfile) installed by Helm on a
#                      real node (containerd + kubelet; needs root), whose pods really run and
#                      really restart; the webhook is called through the chart's Service
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
demo="${DEMO_DIR:-$root/target/demo}"
mkdir -p "$demo"
demo="$(cd "$demo" && pwd)"
ns=tugboat-demo
start=$(date +%s)
step() { printf '\n\033[1m==> [%3ss] %s\033[0m\n' "$(( $(date +%s) - start ))" "$*"; }
info() { printf '    %s\n' "$*"; }
fail() {
  printf '\n!!  %s\n' "$*" >&2
  [[ -f "$demo/operator.log" ]] && tail -20 "$demo/operator.log" >&2
  [[ "${mode:-}" == helm ]] && kubectl -n tugboat-system logs deployment/tugboat --tail 20 >&2 2>/dev/null
  printf '!!  stopping what the demo started\n' >&2
  DEMO_DIR="$demo" "$root/demo/down.sh" >/dev/null 2>&1
  exit 1
}

# wait_for DESCRIPTION TIMEOUT COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local what="$1" timeout="$2"; shift 2
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    (( $(date +%s) < deadline )) || fail "timed out after ${timeout}s waiting for $what"
    sleep 0.5
  done
}

mode="${DEMO_MODE:-process}"
[[ "$mode" == process || "$mode" == helm ]] || fail "DEMO_MODE is process or helm, not '$mode'"
# A failed start stops what it started.
trap 'printf "\n!!  the demo failed; stopping what it started\n" >&2; DEMO_DIR="$demo" "$root/demo/down.sh" >/dev/null 2>&1' ERR

step "installing what the demo needs and building the control-plane tools (cached after the first time; about 8 minutes cold)"
"$root/testenv/deps.sh"
tools=(etcd kube kwok)
[[ "$mode" == helm ]] && tools+=(helm)
bin="$("$root/testenv/build.sh" "${tools[@]}")"
kubectl() { "$bin/kubectl" --kubeconfig "$demo/testenv/kubeconfig" "$@"; }
helm() { "$bin/helm" --kubeconfig "$demo/testenv/kubeconfig" "$@"; }

if [[ "$mode" == helm ]]; then
  step "starting the local control plane (etcd, kube-apiserver, controllers, kwok nodes) and a real node"
  TUGBOAT_REAL_NODE=1 "$root/testenv/up.sh" "$demo/testenv" >/dev/null
else
  step "starting the local control plane (etcd, kube-apiserver, controllers, kwok nodes)"
  TUGBOAT_REAL_NODE=0 "$root/testenv/up.sh" "$demo/testenv" >/dev/null
fi
info "kubeconfig: $demo/testenv/kubeconfig"

step "installing the CRDs"
kubectl apply --server-side -f "$root/crds/" | sed 's/^/    /'
kubectl wait --for condition=Established --timeout 60s -f "$root/crds/" >/dev/null

if [[ "$mode" == helm ]]; then
  step "building the operator's image from the Dockerfile (buildah; cached by its inputs)"
  image="$("$root/testenv/image.sh" "$demo/testenv")"
  info "$image (imported into the real node's containerd)"
elif [[ -z "${TUGBOAT_BIN:-}" ]]; then
  step "building tugboat"
  (cd "$root" && cargo build --locked --quiet --bin tugboat)
  TUGBOAT_BIN="$root/target/debug/tugboat"
  info "$TUGBOAT_BIN"
fi

step "creating the demo Git repository (served over smart HTTP by git http-backend)"
rm -rf "$demo/git" "$demo/work"
mkdir -p "$demo/git"
git init --quiet --bare --initial-branch=main "$demo/git/shop.git"
git init --quiet --initial-branch=main "$demo/work"
mkdir -p "$demo/work/deploy"
app_file=web.yaml
[[ "$mode" == helm ]] && app_file=web-real-node.yaml
cp "$root/demo/app/$app_file" "$demo/work/deploy/web.yaml"
git -C "$demo/work" add deploy
git -C "$demo/work" -c user.name=demo -c user.email=demo@example.com commit --quiet -m "web, tag \${SERVICE_TAG:-stable}"
git -C "$demo/work" push --quiet "$demo/git/shop.git" main
if [[ -f "$demo/git-http.pid" ]] && kill -0 "$(cat "$demo/git-http.pid")" 2>/dev/null; then
  kill "$(cat "$demo/git-http.pid")"
fi
rm -f "$demo/git-http.port"
git_host=127.0.0.1
[[ "$mode" == helm ]] && git_host=10.244.0.1 # the real node's bridge: pods reach the host there
python3 "$root/demo/git_http.py" "$demo/git" "$demo/git-http.port" "$git_host" >"$demo/git-http.log" 2>&1 &
echo $! >"$demo/git-http.pid"
wait_for "the Git server" 10 test -s "$demo/git-http.port"
repo="http://$git_host:$(cat "$demo/git-http.port")/shop.git"
git ls-remote "$repo" main >/dev/null || fail "the Git server does not answer"
info "$repo"

kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
step "preparing the tenant namespace $ns: the ServiceAccount its applications act as, and its Role"
info "(examples/tenant-namespace.yaml: tugboat applies as tugboat-deployer, never with its own rights)"
sed "s/team-a/$ns/" "$root/examples/tenant-namespace.yaml" | kubectl apply -n "$ns" -f - | sed 's/^/    /'
if [[ "$mode" == helm ]]; then
  step "installing tugboat with Helm: charts/tugboat, its image, on the real node"
  helm upgrade --install tugboat "$root/charts/tugboat" --namespace tugboat-system --create-namespace \
    --set image.repository="${image%:*}" --set image.tag="${image##*:}" --set image.pullPolicy=Never \
    --set 'nodeSelector.kubernetes\.io/hostname=realnode-0' \
    --set 'tolerations[0].key=tugboat.dev/real-node' --set 'tolerations[0].operator=Exists' \
    --wait --timeout 180s | sed -n '1,6p' | sed 's/^/    /'
  kubectl -n tugboat-system get pods -o wide | sed 's/^/    /'
  trigger_base="http://$(kubectl -n tugboat-system get service tugboat-trigger -o jsonpath='{.spec.clusterIP}'):9292"
  metrics_url="http://$(kubectl -n tugboat-system get service tugboat-metrics -o jsonpath='{.spec.clusterIP}'):8080/metrics"
  operator_log="kubectl -n tugboat-system logs deployment/tugboat"
  info "trigger endpoint $trigger_base (the chart's Service, through kube-proxy)"
else
  step "starting the operator"
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
    --git-egress-allow 127.0.0.0/8 \
    --cache-dir "$demo/cache" >"$demo/operator.log" 2>&1 &
  echo $! >"$demo/operator.pid"
  echo "$trigger_port" >"$demo/trigger.port"
  echo "$probe_port" >"$demo/probe.port"
  wait_for "the operator to be ready" 30 curl -sf "http://127.0.0.1:$probe_port/readyz"
  trigger_base="http://127.0.0.1:$trigger_port"
  metrics_url="http://127.0.0.1:$probe_port/metrics"
  operator_log="$demo/operator.log"
  info "trigger endpoint $trigger_base, metrics $metrics_url"
  info "log: $operator_log"
fi

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

containers() { kubectl -n "$ns" get pods -l app=web --field-selector status.phase=Running -o jsonpath='{range .items[*]}{.metadata.name} {.status.containerStatuses[0].containerID}{"\n"}{end}'; }
if [[ "$mode" == helm ]]; then
  info "real containers of web:"
  containers | sed 's/^/      /'
fi

step "calling the webhook: SERVICE_TAG=development&rollout-restart=all"
path=""
has_path() { path="$(kubectl -n "$ns" get webhook deploy -o jsonpath='{.status.webhookPath}')" && [[ -n "$path" ]]; }
wait_for "the webhook path" 30 has_path
has_path
url="$trigger_base$path"
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
# The replaced pods take their grace period to go; list only the new ones.
two_pods() { [[ "$(kubectl -n "$ns" get pods -l app=web --no-headers 2>/dev/null | wc -l)" == 2 ]]; }
[[ "$mode" == helm ]] && wait_for "the old pods to terminate" 60 two_pods
finished() { [[ "$(kubectl -n "$ns" get gapp shop -o jsonpath='{.status.deployments[-1:].result}')" == Succeeded ]] && ready; }
wait_for "the deployment to finish" 90 finished

step "what happened"
kubectl -n "$ns" get gapp,wh | sed 's/^/    /'
info ""
info "live Deployment web:"
info "  env SERVICE_TAG          = $(env_of_web)"
info "  image                    = $(kubectl -n "$ns" get deployment web -o jsonpath='{.spec.template.spec.containers[0].image}')"
info "  restartedAt annotation   = $(restarted_at)"
if [[ "$mode" == helm ]]; then
  info "  new real containers      ="
  containers | sed 's/^/      /'
  for pod in $(kubectl -n "$ns" get pods -l app=web --field-selector status.phase=Running -o name); do
    info "  $pod says: $(kubectl -n "$ns" logs "$pod" | head -1)"
  done
fi
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
  curl -s $metrics_url | grep ^tugboat_
  # change the application in Git, commit, push, then call the webhook without parameters:
  cd $demo/work && \$EDITOR deploy/web.yaml && git commit -am change && git push $demo/git/shop.git main

  operator log: $operator_log
  stop everything: make demo-down
MSG
