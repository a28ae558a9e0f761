#!/usr/bin/env bash
# Starts one real node, "realnode-0", beside the control plane in STATE_DIR (testenv/up.sh):
# Debian's containerd + runc + CNI plugins, the kubelet and kube-proxy built from the same
# Kubernetes module as the control plane, all inside the private mount namespace of
# testenv/nodens.sh. Pods really run there, from the images of testenv/images.sh (and the
# operator's image, testenv/image.sh), with imagePullPolicy: Never: there is no registry.
#
# The node is tainted tugboat.dev/real-node=true:NoSchedule, so only pods that ask for it
# (a toleration plus nodeSelector kubernetes.io/hostname: realnode-0) run there; everything
# else keeps going to the kwok nodes. Needs root (bridge, iptables, mounts, cgroups).
#
#   testenv/node-up.sh STATE_DIR      PIDs in STATE_DIR/node/pids, logs in STATE_DIR/node/logs
#
# One real node per machine: the bridge rn0 and 10.244.0.0/24 are fixed. Network safety: the
# service range is routed to the bridge, kwok's fake pod range is unreachable, the host's
# ip_forward stays 0 and FORWARD guard rules keep pods from routing off the machine.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="$(cd "${1:?control plane state directory}" && pwd)"
R="$state/node"
pki="$state/pki"
bin="$("$here/build.sh" kube)"
images="$("$here/images.sh" "$bin")"
node=realnode-0
node_ip=10.244.0.1 # the CNI bridge's gateway address: the node IP (no dummy devices here)
log() { printf '[testenv %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
server="$(awk '/server:/ {print $2; exit}' "$state/kubeconfig")"
mkdir -p "$R"/{logs,pki,kubelet,cni/net.d,cni/ipam,containerd/runc}
touch "$R/pids"
sock="$R/containerd/containerd.sock"
echo "$sock" >"$R/containerd.sock-path"

# 0. Host network: the bridge with the node IP; ClusterIPs routed to the bridge so nothing
#    aimed at a service IP can leave through the machine's interface, even before kube-proxy.
ip link show rn0 >/dev/null 2>&1 || ip link add rn0 type bridge
[[ "$(ip -4 addr show dev rn0)" == *"inet $node_ip/24"* ]] || ip addr add "$node_ip/24" dev rn0
ip link set rn0 up
[[ "$(ip route show 10.0.0.0/16)" == *rn0* ]] || ip route add 10.0.0.0/16 dev rn0 src "$node_ip"
[[ "$(ip route show 10.64.0.0/16)" == *unreachable* ]] || ip route add unreachable 10.64.0.0/16
iptables -C FORWARD -m comment --comment tugboat-node-guard -i rn0 ! -o rn0 -j DROP 2>/dev/null ||
  iptables -I FORWARD 1 -m comment --comment tugboat-node-guard -i rn0 ! -o rn0 -j DROP
iptables -C FORWARD -m comment --comment tugboat-node-guard ! -i rn0 -j DROP 2>/dev/null ||
  iptables -I FORWARD 1 -m comment --comment tugboat-node-guard ! -i rn0 -j DROP

# 1. The private mount namespace.
nspid="$("$here/nodens.sh" start "$R")"
start() { # NAME COMMAND...
  local name="$1"
  shift
  nsenter -t "$nspid" -m -- "$@" >"$R/logs/$name.log" 2>&1 </dev/null &
  echo "$name $!" >>"$R/pids"
}
alive() { local p; p="$(awk -v n="$1" '$1==n {print $2}' "$R/pids" | tail -1)"; [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; }

# 2. containerd: its own root, state and socket; no oom_score_adj below its own (this machine
#    lacks CAP_SYS_RESOURCE, and runc fails to start any sandbox that asks for one).
cat >"$R/cni/net.d/10-tugboat-node.conflist" <<CNI
{"cniVersion": "1.0.0", "name": "tugboat-node", "plugins": [
  {"type": "bridge", "bridge": "rn0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24", "gateway": "$node_ip"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$R/cni/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
CNI
containerd config default | sed \
  -e "s|^root = .*|root = \"$R/containerd/root\"|" \
  -e "s|^state = .*|state = \"$R/containerd/state\"|" \
  -e "s|address = \"/run/containerd/containerd.sock\"|address = \"$sock\"|" \
  -e "s|netns_mounts_under_state_dir = false|netns_mounts_under_state_dir = true|" \
  -e "s|restrict_oom_score_adj = false|restrict_oom_score_adj = true|" \
  -e "s|sandbox_image = .*|sandbox_image = \"localhost/pause:local\"|" \
  -e "s|bin_dir = \"/opt/cni/bin\"|bin_dir = \"/usr/lib/cni\"|" \
  -e "s|conf_dir = \"/etc/cni/net.d\"|conf_dir = \"$R/cni/net.d\"|" \
  -e "s|Root = \"\"|Root = \"$R/containerd/runc\"|" \
  -e "s|path = \"/opt/containerd\"|path = \"$R/containerd/opt\"|" >"$R/containerd/config.toml"
if ! alive containerd; then
  log "starting containerd"
  start containerd containerd --config "$R/containerd/config.toml"
  for _ in $(seq 1 100); do ctr --address "$sock" version >/dev/null 2>&1 && break; sleep 0.1; done
  ctr --address "$sock" version >/dev/null || { log "containerd did not start:"; tail -20 "$R/logs/containerd.log" >&2; exit 1; }
  for tar in "$images"/*.oci.tar; do
    ctr --address "$sock" -n k8s.io images import --base-name "localhost/$(basename "$tar" .oci.tar)" "$tar" >/dev/null
  done
  log "imported the workload images: $(cd "$images" && ls ./*.oci.tar | sed 's|./||; s|.oci.tar||' | tr '\n' ' ')"
fi

# 3. Certificates: the kubelet's client (system:node:NAME in system:nodes) and serving
#    certificates, kube-proxy's client, all signed by the control plane's CA.
if [[ ! -f $R/pki/kubelet-client.crt || $R/pki/kubelet-client.crt -ot $pki/ca.crt ]]; then
  (
    cd "$R/pki"
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    printf 'subjectAltName=IP:%s,IP:127.0.0.1,DNS:%s\nextendedKeyUsage=serverAuth\n' "$node_ip" "$node" >serving.ext
    sign() { # NAME SUBJECT EXT
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      openssl x509 -req -in "$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -out "$1.crt" -days 30 -extfile "$3" 2>/dev/null
    }
    sign kubelet-client "/O=system:nodes/CN=system:node:$node" client.ext
    sign kubelet-serving "/CN=$node" serving.ext
    sign kube-proxy "/CN=system:kube-proxy" client.ext
  )
fi
for who in kubelet-client kube-proxy; do
  cat >"$R/$who.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster: {server: $server, certificate-authority: $pki/ca.crt}
users:
- name: $who
  user: {client-certificate: $R/pki/$who.crt, client-key: $R/pki/$who.key}
contexts:
- name: testenv
  context: {cluster: testenv, user: $who}
current-context: testenv
KC
done

# 4. The kubelet, on ports the kernel picks. cgroup v1 hosts need failCgroupV1: false.
read -r kubelet_port healthz_port proxy_healthz proxy_metrics < <(python3 -c '
import socket
s = [socket.socket() for _ in range(4)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
printf 'nameserver 127.0.0.1\noptions ndots:1\n' >"$R/resolv.conf"
if ! alive kubelet; then
  cat >"$R/kubelet-config.yaml" <<CFG
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
tlsCertFile: $R/pki/kubelet-serving.crt
tlsPrivateKeyFile: $R/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$sock
imageServiceEndpoint: unix://$sock
podLogsDir: $R/kubelet/pod-logs
resolvConf: $R/resolv.conf
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
protectKernelDefaults: false
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
clusterDomain: cluster.local
maxPods: 110
registerWithTaints:
- {key: tugboat.dev/real-node, value: "true", effect: NoSchedule}
CFG
  log "starting the kubelet ($node at $node_ip:$kubelet_port)"
  start kubelet "$bin/kubelet" --config "$R/kubelet-config.yaml" --kubeconfig "$R/kubelet-client.kubeconfig" \
    --root-dir "$R/kubelet" --hostname-override "$node" --node-ip "$node_ip" -v=1
fi

# 5. Pods reach the API server through the "kubernetes" Service (up.sh advertises $node_ip):
#    relay $node_ip:PORT to the API server on loopback.
api_port="${server##*:}"
if ! alive api-relay; then
  start api-relay socat "TCP-LISTEN:$api_port,bind=$node_ip,reuseaddr,fork" "TCP:127.0.0.1:$api_port"
fi

# 6. kube-proxy (iptables mode): ClusterIP and NodePort Services. No conntrack sysctls, no
#    route_localnet.
if ! alive kube-proxy; then
  cat >"$R/kube-proxy-config.yaml" <<CFG
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $R/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $node
clusterCIDR: 10.244.0.0/24
healthzBindAddress: 127.0.0.1:$proxy_healthz
metricsBindAddress: 127.0.0.1:$proxy_metrics
nodePortAddresses: [$node_ip/32]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false, masqueradeAll: false}
CFG
  log "starting kube-proxy"
  start kube-proxy "$bin/kube-proxy" --config "$R/kube-proxy-config.yaml" -v=1
fi

for _ in $(seq 1 600); do
  ready="$("$bin/kubectl" --kubeconfig "$state/kubeconfig" get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)"
  [[ "$ready" == True ]] && break
  alive kubelet || break
  sleep 0.1
done
if [[ "$ready" != True ]]; then
  log "$node did not become Ready; last kubelet log lines:"
  tail -20 "$R/logs/kubelet.log" >&2
  exit 1
fi
log "real node $node Ready (containerd $(containerd --version | awk '{print $3}'), kubelet $("$bin/kubelet" --version | awk '{print $2}'))"
