#!/bin/bash
# Two nodes of one cluster (etcd) in two namespaces: each registers, each
# has the other as its one peer, a ping crosses the mesh between the mesh
# addresses and into the other node's site subnet, `node list` shows the
# other reachable; `node del` of one node on the other removes its peer
# and route everywhere, and the deleted node stays out.
#
#   ns a (198.18.0.1, etcd) --- ns b (198.18.0.2, site 172.20.0.1/24 on a veth)
#
# Skipped until the core's cluster layer exists (core/cluster.c and the
# cluster.etcd setting).
# usage: mesh_cluster_ns.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
if [ ! -f "$here/../../core/cluster.c" ] ||
	! "$build/core/meshgated" --config /dev/null --config-doc 2>/dev/null | grep -q 'cluster.etcd'; then
	echo "SKIP: the core has no cluster layer yet (core/cluster.c, cluster.etcd)"
	exit 77
fi
source "$here/../lib/netns.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v etcd >/dev/null || { echo "SKIP: no etcd"; exit 77; }
netns_init

ns_add A a
ns_add B b
ns_link "$A" 198.18.0.1/24 "$B" 198.18.0.2/24
# a veth with its other end unused: this kernel has no dummy interfaces
ns_exec "$B" ip link add site0 type veth peer name site0p
ns_exec "$B" ip link set site0p up
ns_exec "$B" ip addr add 172.20.0.1/24 dev site0
ns_exec "$B" ip link set site0 up
ns_exec "$B" sysctl -qw net.ipv4.ip_forward=1

ip netns exec "$A" etcd --data-dir "$WORK/etcd" --listen-client-urls http://198.18.0.1:2379 \
	--advertise-client-urls http://198.18.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
	>"$WORK/etcd.log" 2>&1 &
bg_track $!
wait_for 20 ns_exec "$A" etcdctl --endpoints http://198.18.0.1:2379 endpoint health ||
	fail "etcd does not answer"

# node NAME NS ADDRESS SUBNET
node() {
	mkdir -p "$WORK/$1"
	cat >"$WORK/$1/meshgated.conf" <<CONF
state_dir = "$WORK/$1/state";
socket = "$WORK/$1/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["mesh"];
cluster = { node = "$1"; etcd = [ "http://198.18.0.1:2379" ]; prefix = "/meshgate-$TAG/"; };
mesh = { interface = "${TAG}$1"; endpoint = "$3:51821"; subnet = "10.99.0.0/24";
         subnets = [ "$4" ]; backend = "userspace"; };
CONF
	ip netns exec "$2" "$build/core/meshgated" --config "$WORK/$1/meshgated.conf" \
		>>"$WORK/$1/meshgated.log" 2>&1 &
	bg_track $!
}
ctl() { local n=$1; shift; "$build/cli/meshgatectl" --socket "$WORK/$n/bus.sock" "$@"; }
nodes() { ctl "$1" node list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["nodes"]))'; }
address_of() {
	ctl "$1" node list --json |
		python3 -c 'import json,sys; print([n["mesh_address"] for n in json.load(sys.stdin)["nodes"] if n["name"]==sys.argv[1]][0])' "$2"
}
reachable() {
	ctl "$1" node list --json |
		python3 -c 'import json,sys; sys.exit(0 if [n for n in json.load(sys.stdin)["nodes"] if n["name"]==sys.argv[1]][0]["reachable"] else 1)' "$2"
}
two_nodes() { [ "$(nodes "$1")" = 2 ]; }

echo "-- two nodes register and see each other"
node ga "$A" 198.18.0.1 172.19.0.0/24
node gb "$B" 198.18.0.2 172.20.0.0/24
wait_for 20 two_nodes ga || fail "ga does not see two nodes"
wait_for 20 two_nodes gb || fail "gb does not see two nodes"
addr_a=$(address_of ga ga)
addr_b=$(address_of ga gb)
[ "$addr_a" != "$addr_b" ] || fail "both nodes got $addr_a"
[ "$(address_of gb ga)" = "$addr_a" ] || fail "the nodes disagree on ga's address"

echo "-- a ping crosses the mesh, into the other node's site"
wait_for 20 ns_exec "$A" ping -c 1 -W 1 "$addr_b" || fail "no ping $addr_a -> $addr_b"
ns_exec "$A" ping -c 2 -W 2 172.20.0.1 >/dev/null || fail "no ping into gb's site subnet"
wait_for 10 reachable ga gb || fail "gb not reachable from ga: $(ctl ga node list)"

echo "-- node del gb on ga: gb's peer and route go on ga; gb stays out"
ctl ga node del gb >/dev/null || fail "node del gb"
wait_for 10 bash -c "! ip netns exec $A wg show ${TAG}ga peers | grep -q ." || fail "gb's peer stays on ga"
ip -n "$A" route show 172.20.0.0/24 | grep -q . && fail "gb's route stays on ga"
wait_for 10 grep -q "stays out of the mesh" "$WORK/gb/meshgated.log" || fail "gb did not notice"
sleep 6
[ "$(nodes ga)" = 1 ] || fail "gb came back: $(ctl ga node list)"
echo "PASS"
