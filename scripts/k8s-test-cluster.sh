#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, for the kubernetes
# runtime's tests and for trying Dev8 on Kubernetes without a cloud:
#
#   scripts/k8s-test-cluster.sh up      build (once, cached) and start it
#   scripts/k8s-test-cluster.sh down    stop it and remove its state
#   scripts/k8s-test-cluster.sh env     KUBECONFIG=… lines to eval
#   scripts/k8s-test-cluster.sh status  whether it answers
#   scripts/k8s-test-cluster.sh load-image IMAGE…
#                                       copy images from Docker into the node
#   scripts/k8s-test-cluster.sh exec -- CMD…
#                                       run CMD inside the cluster's network
#                                       namespace, with KUBECONFIG set
#
# No registry is reachable here, so nothing is pulled: kube-apiserver,
# kubelet, kube-scheduler, kube-controller-manager, kube-proxy and kubectl are
# built from the Go module proxy's Kubernetes source (a cold build is ~15
# minutes on 2 cores; the binaries are cached by version under
# ~/.cache/dev8), and so are kube-router, whose network policy controller
# enforces NetworkPolicies (the bridge plugin does not), and CoreDNS, the
# pods' DNS for cluster.local (a pod in kube-system); etcd, containerd,
# runc, ipset and the CNI plugins come from Debian, and images (the pause
# image included) come from the local Docker engine. Every component runs inside a network namespace of its own
# (dev8k8s), whose node address 10.200.0.1 is joined to this host's
# 10.200.0.2 by a veth pair: the host reaches the API server and pods, and
# pods reach a server listening on 10.200.0.2, but the namespace has no
# default route, so nothing of the cluster's leaves the machine. The node
# runs its own containerd (not Docker's), state under /var/lib/dev8-k8s;
# volume claims of the default storage class (dev8-local) get directories
# there (internal/testutil/k8sprovisioner).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

version=${DEV8_K8S_VERSION:-v1.34.4}
cache="$HOME/.cache/dev8/kubernetes-$version"
bin="$cache/bin"
state=${DEV8_K8S_STATE:-/var/lib/dev8-k8s}
run=/run/dev8-k8s
netns=dev8k8s
node_ip=10.200.0.1
host_ip=10.200.0.2
pod_cidr=10.244.0.0/24
service_cidr=10.96.0.0/16
api_service_ip=10.96.0.1
node_name=dev8-node
pause_image=dev8.local/pause:1
components=(kube-apiserver kubelet kube-scheduler kube-controller-manager kube-proxy kubectl)
# kube-router's network policy controller enforces NetworkPolicies (the
# bridge CNI plugin does not), as Calico or Cilium would on a real cluster.
kube_router_version=v2.1.0
kube_router="$HOME/.cache/dev8/kube-router-$kube_router_version/kube-router"
# CoreDNS answers for cluster.local as a pod labelled k8s-app=kube-dns
# behind the Service kube-dns, as on AKS, EKS and GKE: pods resolve
# service names (dev8.dev8.svc.cluster.local), and the workspaces'
# NetworkPolicy lets them reach exactly such pods on port 53.
coredns_version=v1.12.4
coredns="$HOME/.cache/dev8/coredns-$coredns_version/coredns"
coredns_image=dev8.local/coredns:$coredns_version
dns_service_ip=10.96.0.10

log() { echo "k8s-test-cluster: $*" >&2; }
die() {
	log "$*"
	exit 1
}
in_ns() { nsenter --net="/run/netns/$netns" -- "$@"; }
kubectl_() { "$bin/kubectl" --kubeconfig "$state/admin.kubeconfig" "$@"; }

# build compiles the Kubernetes binaries into the cache, once per version:
# a small module of our own requires k8s.io/kubernetes and replaces each of
# its staging modules (which its go.mod points at ./staging) with the
# published release of the same minor version.
build() {
	local missing=0 c
	for c in "${components[@]}" pause; do
		[ -x "$bin/$c" ] || missing=1
	done
	[ "$missing" = 0 ] && return 0
	log "building Kubernetes $version into $bin (a cold build takes ~15 minutes on 2 cores)"
	local src="$cache/src" staging="v0${version#v1}"
	mkdir -p "$src/pause" "$bin"
	cat >"$src/go.mod" <<EOF
module dev8.dev/k8s-test-cluster

go 1.24.0

require k8s.io/kubernetes $version
EOF
	local gomod
	gomod=$(cd "$src" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
	[ -f "$gomod" ] || die "could not download k8s.io/kubernetes@$version"
	sed -n 's|^[[:space:]]*\(k8s.io/[^ ]*\) => \./staging/.*|\1|p' "$gomod" | while read -r m; do
		echo "replace $m => $m $staging"
	done >>"$src/go.mod"
	cat >"$src/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
EOF
	# The pod sandbox's process: it only waits to be stopped.
	cat >"$src/pause/main.go" <<'EOF'
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	<-c
}
EOF
	(cd "$src" && GOFLAGS=-mod=mod go mod tidy)
	local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1"
	ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "$version" | cut -d. -f2) -X k8s.io/client-go/pkg/version.gitVersion=$version"
	local pkgs=() tmp="$cache/bin.tmp"
	for c in "${components[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
	rm -rf "$tmp" && mkdir -p "$tmp"
	(cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}" ./pause)
	mv "$tmp"/* "$bin"/ && rmdir "$tmp"
	log "built: $(cd "$bin" && ls | tr '\n' ' ')"
}

# build_tool OUT MODULE VERSION PACKAGE WHAT builds PACKAGE of MODULE at
# VERSION into OUT (in the cache), once: a small module of our own requires
# it, so its go.mod's replace directives do not get in the way.
build_tool() {
	local out=$1 module=$2 version=$3 pkg=$4 what=$5 src
	[ -x "$out" ] && return 0
	log "building $what"
	src="$(dirname "$out")/src"
	mkdir -p "$src"
	printf 'module dev8.dev/%s-build\n\ngo 1.24.0\n' "$(basename "$out")" >"$src/go.mod"
	(cd "$src" && GOFLAGS=-mod=mod go get "$module@$version" &&
		GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp" "$pkg")
	mv "$out.tmp" "$out"
}

build_kube_router() {
	build_tool "$kube_router" github.com/cloudnativelabs/kube-router/v2 "$kube_router_version" \
		github.com/cloudnativelabs/kube-router/v2/cmd/kube-router "kube-router $kube_router_version (its network policy controller)"
}

build_coredns() {
	build_tool "$coredns" github.com/coredns/coredns "$coredns_version" github.com/coredns/coredns "CoreDNS $coredns_version (the cluster's DNS)"
}

# packages installs what Debian provides: etcd, the CNI plugins, conntrack
# (kube-proxy), and containerd and runc with Docker's engine.
packages() {
	local need=() p
	for p in etcd-server containernetworking-plugins conntrack iptables ipset containerd runc; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
	done
	if [ ${#need[@]} -gt 0 ]; then
		log "apt-get install ${need[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	fi
}

# pki makes the cluster's CA, the API server's certificate (valid for the
# node address and the in-cluster service address), an admin client
# certificate (group system:masters) and the service-account key.
pki() {
	local d="$state/pki"
	[ -f "$d/admin.crt" ] && return 0
	mkdir -p "$d" && chmod 700 "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=dev8-test-cluster-ca" \
		-keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
	cat >"$d/apiserver.ext" <<EOF
subjectAltName=IP:$node_ip,IP:$api_service_ip,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
EOF
	openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
	openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
		-extfile "$d/apiserver.ext" -out "$d/apiserver.crt" 2>/dev/null
	printf 'extendedKeyUsage=clientAuth\n' >"$d/client.ext"
	openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=dev8-test-admin" -keyout "$d/admin.key" -out "$d/admin.csr" 2>/dev/null
	openssl x509 -req -in "$d/admin.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
		-extfile "$d/client.ext" -out "$d/admin.crt" 2>/dev/null
	openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
	openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
	cat >"$state/admin.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: dev8-test
  cluster:
    server: https://$node_ip:6443
    certificate-authority: $d/ca.crt
users:
- name: dev8-test-admin
  user:
    client-certificate: $d/admin.crt
    client-key: $d/admin.key
contexts:
- name: dev8-test
  context: {cluster: dev8-test, user: dev8-test-admin}
current-context: dev8-test
EOF
}

network() {
	[ -e "/run/netns/$netns" ] && return 0
	ip netns add "$netns"
	ip link add dev8k8s0 type veth peer name dev8k8s1
	ip link set dev8k8s1 netns "$netns"
	ip addr add "$host_ip/24" dev dev8k8s0
	ip link set dev8k8s0 up
	ip -n "$netns" link set lo up
	ip -n "$netns" addr add "$node_ip/24" dev dev8k8s1
	ip -n "$netns" link set dev8k8s1 up
	# Services' addresses are routed like the node's network, where
	# kube-proxy's rules rewrite them; there is no default route.
	ip -n "$netns" route add "$service_cidr" dev dev8k8s1
	ip route replace "$pod_cidr" via "$node_ip"
	in_ns sysctl -qw net.ipv4.ip_forward=1
	modprobe br_netfilter 2>/dev/null || true
}

# start runs a component inside the namespace in the background, its
# output in $run/NAME.log and its pid in $run/NAME.pid.
start() {
	local name=$1
	shift
	# Not through in_ns: $! must be the component's pid (nsenter execs it).
	nsenter --net="/run/netns/$netns" -- "$@" >"$run/$name.log" 2>&1 &
	echo $! >"$run/$name.pid"
}

# await runs CMD every half second until it succeeds, for up to N seconds.
await() {
	local what=$1 secs=$2
	shift 2
	local i
	for ((i = 0; i < secs * 2; i++)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.5
	done
	die "$what did not come up within ${secs}s (logs in $run)"
}

pause_image() {
	if docker image inspect "$pause_image" >/dev/null 2>&1; then return 0; fi
	local tmp
	tmp=$(mktemp -d)
	cp "$bin/pause" "$tmp/pause"
	tar -C "$tmp" -cf "$tmp/rootfs.tar" pause
	docker import --change 'ENTRYPOINT ["/pause"]' "$tmp/rootfs.tar" "$pause_image" >/dev/null
	rm -rf "$tmp"
}

load_image() {
	local img
	for img in "$@"; do
		docker image inspect "$img" >/dev/null 2>&1 || die "image $img is not in Docker"
		docker save "$img" | ctr -a "$run/containerd.sock" -n k8s.io images import - >/dev/null
	done
}

up() {
	[ "$(id -u)" = 0 ] || die "needs root (network namespace, containerd, kubelet)"
	if status >/dev/null 2>&1; then
		log "already up"
		return 0
	fi
	if [ -d "$run" ] || [ -e "/run/netns/$netns" ]; then
		# Part of it runs (a component died): start again from nothing.
		status || true
		log "not whole: taking down what is left first"
		down
	fi
	packages
	build
	build_kube_router
	build_coredns
	docker info >/dev/null 2>&1 || scripts/dockerd.sh
	mkdir -p "$state" "$run" "$state/cni"
	pki
	network
	local pki="$state/pki" kc="$state/admin.kubeconfig"

	start etcd etcd --name dev8 --data-dir "$state/etcd" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster dev8=http://127.0.0.1:2380
	start kube-apiserver "$bin/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
		--advertise-address="$node_ip" --bind-address=0.0.0.0 --secure-port=6443 \
		--tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
		--client-ca-file="$pki/ca.crt" --authorization-mode=RBAC \
		--service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-cluster-ip-range="$service_cidr" --kubelet-preferred-address-types=InternalIP
	await "kube-apiserver" 90 kubectl_ get --raw /readyz

	cat >"$state/containerd.toml" <<EOF
version = 2
root = "$state/containerd"
state = "$run/containerd"
[grpc]
  address = "$run/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
EOF
	cat >"$state/cni/10-dev8k8s.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "dev8k8s", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
EOF
	start containerd containerd --config "$state/containerd.toml"
	await "containerd" 30 ctr -a "$run/containerd.sock" version
	pause_image
	load_image "$pause_image"

	start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$kc" --leader-elect=false \
		--service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
		--cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
		--service-cluster-ip-range="$service_cidr" --use-service-account-credentials=true
	start kube-scheduler "$bin/kube-scheduler" --kubeconfig="$kc" --leader-elect=false

	# Volumes: claims of the default class dev8-local get a directory on
	# the node (internal/testutil/k8sprovisioner).
	go build -o "$state/k8sprovisioner" ./internal/testutil/k8sprovisioner
	start k8sprovisioner "$state/k8sprovisioner" --kubeconfig="$kc" --root="$state/volumes" --node="$node_name"
	kubectl_ apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: dev8-local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: dev8.dev/test-provisioner
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF

	cat >"$state/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
# Without pod cgroups, v1.34's kubelet dereferences a nil pod cgroup config
# when it checks a container for an in-place resize, and dies (seen when a
# pod's container ended right after it started; kubernetes/kubernetes#137999):
# nothing here resizes pods in place.
featureGates:
  InPlacePodVerticalScaling: false
failSwapOn: false
containerRuntimeEndpoint: unix://$run/containerd.sock
clusterDomain: cluster.local
clusterDNS: [$dns_service_ip]
resolvConf: /etc/resolv.conf
podCIDR: $pod_cidr
serializeImagePulls: false
# Images come from Docker by hand (load-image), not from a registry, so the
# kubelet must never remove one (its image GC took the pause image on a
# disk 85% full), nor evict pods for a host disk it does not own.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
EOF
	start kubelet "$bin/kubelet" --config="$state/kubelet.yaml" --kubeconfig="$kc" \
		--node-ip="$node_ip" --hostname-override="$node_name" --root-dir="$state/kubelet"

	cat >"$state/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $kc}
hostnameOverride: $node_name
clusterCIDR: $pod_cidr
conntrack: {maxPerCore: 0}
EOF
	start kube-proxy "$bin/kube-proxy" --config="$state/kube-proxy.yaml"

	await "node $node_name" 90 kubectl_ get node "$node_name"
	kubectl_ wait --for=condition=Ready "node/$node_name" --timeout=90s >/dev/null ||
		die "node $node_name is not Ready (logs in $run)"
	await "the default service account" 60 kubectl_ get serviceaccount default -n default
	# Once the node is there (it looks itself up by name).
	start kube-router "$kube_router" --kubeconfig="$kc" --hostname-override="$node_name" \
		--run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
		--enable-pod-egress=false --health-port=0 --service-cluster-ip-range="$service_cidr"
	sleep 1
	kill -0 "$(cat "$run/kube-router.pid")" 2>/dev/null || die "kube-router did not start: $(tail -n 3 "$run/kube-router.log")"
	dns
	log "up: $(kubectl_ get node "$node_name" --no-headers | tr -s ' ')"
	env_lines
}

# dns runs CoreDNS in kube-system: a Deployment of pods labelled
# k8s-app=kube-dns (the image: the cached binary alone, as non-root on
# port 1053) behind the Service kube-dns at $dns_service_ip:53, which the
# kubelet gives pods as their nameserver. It answers for cluster.local
# only: this machine has no upstream DNS to forward to. Its ports are named
# dns and dns-tcp, as in CoreDNS's own manifests: the workspaces'
# NetworkPolicy lets DNS through to them by those names (their number,
# 1053, is what a policy sees, not the Service's 53).
dns() {
	if ! docker image inspect "$coredns_image" >/dev/null 2>&1; then
		local tmp
		tmp=$(mktemp -d)
		cp "$coredns" "$tmp/coredns"
		tar -C "$tmp" -cf "$tmp/rootfs.tar" coredns
		docker import --change 'ENTRYPOINT ["/coredns"]' "$tmp/rootfs.tar" "$coredns_image" >/dev/null
		rm -rf "$tmp"
	fi
	load_image "$coredns_image"
	kubectl_ apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "dev8-test:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "dev8-test:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "dev8-test:coredns"}
subjects:
- {kind: ServiceAccount, name: coredns, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:1053 {
        errors
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            fallthrough in-addr.arpa ip6.arpa
        }
        cache 30
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: coredns
        image: $coredns_image
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 2
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
      - name: config
        configMap: {name: coredns}
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $dns_service_ip
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
EOF
	kubectl_ rollout status deployment/coredns -n kube-system --timeout=120s >/dev/null ||
		die "CoreDNS did not become ready: $(kubectl_ get pods -n kube-system -l k8s-app=kube-dns -o wide 2>&1 | tail -n 2)"
}

# kill_pids stops the components in reverse order of their start.
kill_pids() {
	local name pid
	for name in kube-router kube-proxy kubelet k8sprovisioner kube-scheduler kube-controller-manager containerd kube-apiserver etcd; do
		[ -f "$run/$name.pid" ] || continue
		pid=$(cat "$run/$name.pid")
		if kill "$pid" 2>/dev/null; then
			for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
			kill -9 "$pid" 2>/dev/null || true
		fi
		rm -f "$run/$name.pid"
	done
}

down() {
	[ "$(id -u)" = 0 ] || die "needs root"
	# The components first, so that nothing restarts a pod; then the pods'
	# containers, which are runc's under containerd's shims, each pod with a
	# network namespace of its own: kill the containers whose bundle is
	# under this cluster's containerd state (another cluster's containerd
	# may share runc's root), then remove their namespaces.
	kill_pids
	local runc_root=/run/containerd/runc/k8s.io ids=() nets=() id pid
	if [ -d "$runc_root" ]; then
		while read -r id pid _ bundle _; do
			case "$bundle" in "$run/containerd/"*) ;; *) continue ;; esac
			ids+=("$id")
			if [ "$pid" -gt 0 ] 2>/dev/null; then
				nets+=("$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null || true)")
			fi
		done < <(runc --root "$runc_root" list 2>/dev/null | tail -n +2)
		for id in "${ids[@]}"; do runc --root "$runc_root" kill "$id" KILL 2>/dev/null || true; done
	fi
	for id in "${ids[@]}"; do runc --root "$runc_root" delete -f "$id" >/dev/null 2>&1 || true; done
	local ns
	for ns in /run/netns/cni-*; do
		[ -e "$ns" ] || continue
		local ino
		ino=$(stat -L -c %i "$ns" 2>/dev/null || true)
		for n in "${nets[@]}"; do
			if [ -n "$ino" ] && [ "$ino" = "$n" ]; then ip netns del "$(basename "$ns")" 2>/dev/null || true; fi
		done
	done
	rm -rf /var/lib/cni/networks/dev8k8s
	# Whatever else runs in the namespace is the cluster's too (a shim, a
	# component whose pid file was lost): every process there goes.
	if [ -e "/run/netns/$netns" ]; then
		local pids
		pids=$(ip netns pids "$netns" 2>/dev/null || true)
		if [ -n "$pids" ]; then
			kill $pids 2>/dev/null || true
			for _ in $(seq 1 40); do
				[ -z "$(ip netns pids "$netns" 2>/dev/null)" ] && break
				sleep 0.25
			done
			pids=$(ip netns pids "$netns" 2>/dev/null || true)
			[ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
		fi
	fi
	pkill -f "containerd-shim-runc-v2 -namespace k8s.io -id .* -address $run/containerd.sock" 2>/dev/null || true
	# Whatever the kubelet and containerd mounted under the state.
	grep -o " $state/[^ ]*\| $run/[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
	ip route del "$pod_cidr" via "$node_ip" 2>/dev/null || true
	ip link del dev8k8s0 2>/dev/null || true
	ip netns del "$netns" 2>/dev/null || true
	rm -rf "$state" "$run"
	log "down"
}

env_lines() {
	echo "KUBECONFIG=$state/admin.kubeconfig"
	echo "DEV8_K8S_NETNS=/run/netns/$netns"
	echo "DEV8_K8S_HOST_IP=$host_ip"
	echo "DEV8_K8S_CONTAINERD=$run/containerd.sock"
	echo "DEV8_K8S_KUBECTL=$bin/kubectl"
}

# status succeeds when every component runs and the API server is ready;
# it names a component that died.
status() {
	[ -f "$state/admin.kubeconfig" ] && [ -x "$bin/kubectl" ] || return 1
	local f
	for f in "$run"/*.pid; do
		[ -e "$f" ] || return 1
		if ! kill -0 "$(cat "$f")" 2>/dev/null; then
			log "$(basename "$f" .pid) is not running (its log: ${f%.pid}.log)"
			return 1
		fi
	done
	kubectl_ --request-timeout=5s get --raw /readyz >/dev/null 2>&1 || return 1
	if ! kubectl_ --request-timeout=5s get service kube-dns -n kube-system >/dev/null 2>&1; then
		log "the cluster's DNS (service kube-dns) is missing"
		return 1
	fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
up) up ;;
down) down ;;
env) env_lines ;;
status)
	if status; then echo "up"; else
		echo "down"
		exit 1
	fi
	;;
build)
	packages
	build
	build_kube_router
	build_coredns
	;;
load-image) load_image "$@" ;;
exec)
	[ "${1:-}" = "--" ] && shift
	[ $# -gt 0 ] || die "exec -- CMD…"
	exec nsenter --net="/run/netns/$netns" -- env KUBECONFIG="$state/admin.kubeconfig" "$@"
	;;
*)
	sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
