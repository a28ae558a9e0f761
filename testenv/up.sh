#!/usr/bin/env bash
# Starts a real Kubernetes control plane on free loopback ports: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok (two fake nodes, for scale) and one real node
# (containerd + kubelet + kube-proxy, testenv/node-up.sh), so Deployments, StatefulSets,
# DaemonSets and Jobs really roll out, and on the real node their containers really run.
#
#   testenv/up.sh [STATE_DIR]    default STATE_DIR: target/testenv
#   TUGBOAT_REAL_NODE=0          no real node (it needs root); tests that need one then fail
#
# Prints the kubeconfig path on stdout when the API server is ready. Installs missing Debian
# packages (testenv/deps.sh); the binaries come from testenv/build.sh (built once per version,
# then cached). testenv/down.sh stops exactly the processes started here; so does a failed start.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
state="${1:-$root/target/testenv}"
mkdir -p "$state"
state="$(cd "$state" && pwd)"
log() { printf '[testenv %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ -f "$state/pids" ]] && "$here/status.sh" "$state" >/dev/null 2>&1; then
  log "already running"
  echo "$state/kubeconfig"
  exit 0
fi
"$here/down.sh" "$state" >/dev/null 2>&1 || true

real_node="${TUGBOAT_REAL_NODE:-1}"
"$here/deps.sh"
bin="$("$here/build.sh" etcd kube kwok)"
# A start that fails half-way stops what it started.
trap 'log "start failed: stopping what was started"; "$here/down.sh" "$state" >/dev/null 2>&1' ERR
# Pods reach the API server through the "kubernetes" Service, which points at the advertised
# address: the real node's bridge address, relayed to loopback by testenv/node-up.sh.
advertise=127.0.0.1
[[ "$real_node" == 1 ]] && advertise=10.244.0.1
rm -rf "$state/etcd-data" "$state/pki" "$state/logs"
mkdir -p "$state/pki" "$state/logs"
: >"$state/pids"

# Free ports, chosen by the kernel, so harnesses can run side by side.
read -r etcd_client etcd_peer api_port cm_port sched_port kwok_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
')

log "generating certificates"
pki="$state/pki"
(
  cd "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj "/CN=tugboat-testenv-ca" 2>/dev/null
  cat >server.ext <<EXT
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1,IP:$advertise
extendedKeyUsage=serverAuth
EXT
  openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 30 -extfile server.ext 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >client.ext
  openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=tugboat-testenv-admin" 2>/dev/null
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 30 -extfile client.ext 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
)

kubeconfig="$state/kubeconfig"
cat >"$kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: tugboat-testenv
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: tugboat-testenv
  context: {cluster: tugboat-testenv, user: admin, namespace: default}
current-context: tugboat-testenv
KC

start() {
  local name="$1"
  shift
  "$@" >"$state/logs/$name.log" 2>&1 &
  echo "$name $!" >>"$state/pids"
}

wait_for() {
  local what="$1" timeout="$2"
  shift 2
  for _ in $(seq 1 "$timeout"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  log "$what did not become ready in ${timeout}s; last log lines:"
  tail -20 "$state/logs/$what.log" >&2 || true
  return 1
}

log "starting etcd on 127.0.0.1:$etcd_client"
start etcd "$bin/etcd" --data-dir "$state/etcd-data" \
  --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-cluster "default=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync --quota-backend-bytes=4294967296
wait_for etcd 30 curl -sf "http://127.0.0.1:$etcd_client/health"

log "starting kube-apiserver on https://127.0.0.1:$api_port"
# The command is kept so testenv/apiserver.sh can restart the API server with the same flags.
apiserver=("$bin/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$etcd_client" \
  --bind-address 127.0.0.1 --advertise-address "$advertise" --secure-port "$api_port" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
  --kubelet-preferred-address-types InternalIP \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range 10.0.0.0/16 --allow-privileged=true)
printf '%q ' "${apiserver[@]}" >"$state/kube-apiserver.cmd"
start kube-apiserver "${apiserver[@]}"
wait_for kube-apiserver 90 curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "https://127.0.0.1:$api_port/readyz"

log "starting kube-controller-manager and kube-scheduler"
start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$kubeconfig" \
  --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
  --leader-elect=false --bind-address 127.0.0.1 --secure-port "$cm_port" \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --use-service-account-credentials=false --controllers '*' \
  --concurrent-deployment-syncs 10 --concurrent-replicaset-syncs 10 --kube-api-qps 200 --kube-api-burst 400 \
  --node-monitor-grace-period 5m
start kube-scheduler "$bin/kube-scheduler" --kubeconfig "$kubeconfig" \
  --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
  --leader-elect=false --bind-address 127.0.0.1 --secure-port "$sched_port"

log "starting kwok (fake nodes that run pods; it leaves the real node alone)"
# The fake nodes heartbeat through node leases, as kubelets do. Without leases kwok posts node
# status about once a minute, past the controller manager's default 50 s grace period: every
# node went NotReady for a few seconds each minute and the node controller marked their pods
# NotReady, which stalled rollouts at random. The longer grace period covers a kwok slowed
# down by a loaded machine.
start kwok "$bin/kwok" --kubeconfig "$kubeconfig" --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
  --server-address "127.0.0.1:$kwok_port" --cidr 10.64.0.1/16 --node-lease-duration-seconds 40
for node in kwok-node-0 kwok-node-1; do
  "$bin/kubectl" --kubeconfig "$kubeconfig" apply -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: $node
  labels: {type: kwok, kubernetes.io/hostname: $node, kubernetes.io/os: linux}
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "1100"}
  capacity: {cpu: "64", memory: 256Gi, pods: "1100"}
NODE
done
wait_for kwok 60 bash -c "'$bin/kubectl' --kubeconfig '$kubeconfig' get nodes -l type=kwok --no-headers | grep -c ' Ready' | grep -qx 2"
wait_for kube-controller-manager 60 "$bin/kubectl" --kubeconfig "$kubeconfig" get serviceaccount default -n default
if [[ "$real_node" == 1 ]]; then
  "$here/node-up.sh" "$state"
fi
trap - ERR
log "control plane ready (kubeconfig: $kubeconfig)"
echo "$kubeconfig"
