#!/bin/bash
# One node of the mesh in a namespace, for real: meshgated with the mesh
# and wireguard plugins (wireguard-go for both) makes its mesh interface
# with the node's mesh address, registers its record, `meshgatectl node
# list --json` shows it with the contract's fields, the nat chain SNATs
# the VPN subnet to the mesh address, `node del` refuses this node and an
# unknown one, and a restart keeps the key and the address.
#
#   ns a (198.18.0.1) --- ns b (198.18.0.2)
#   meshgated: mesh (interface TAGm), wireguard (TAGw)
#
# usage: mesh_ns.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v wireguard-go >/dev/null || { echo "SKIP: no wireguard-go"; exit 77; }
netns_init

ns_add A a
ns_add B b
ns_link "$A" 198.18.0.1/24 "$B" 198.18.0.2/24
MESH_IF=${TAG}m
mkdir -p "$WORK/a"
cat >"$WORK/a/meshgated.conf" <<CONF
state_dir = "$WORK/a/state";
socket = "$WORK/a/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["wireguard", "mesh"];
wireguard = { interface = "${TAG}w"; backend = "userspace"; address = "10.0.0.1/24";
              endpoint = "198.18.0.1:51820"; on_stop = "remove"; };
mesh = { interface = "$MESH_IF"; listen_port = 51821; endpoint = "198.18.0.1:51821";
         subnet = "10.99.0.0/24"; subnets = [ "172.19.0.0/24" ]; backend = "userspace"; };
CONF

ctl() { "$build/cli/meshgatectl" --socket "$WORK/a/bus.sock" "$@"; }
running() {
	local s
	s=$(ctl status) || return 1
	grep -q '^mesh ' <<<"$s" && plugins_ready "$build" "$WORK/a/bus.sock"
}
start() {
	ip netns exec "$A" "$build/core/meshgated" --config "$WORK/a/meshgated.conf" \
		>>"$WORK/a/meshgated.log" 2>&1 &
	PID=$!
	bg_track $PID
	wait_for 15 running || { cat "$WORK/a/meshgated.log"; fail "plugins not running"; }
}
stop() {
	kill -TERM "$PID"
	wait "$PID" 2>/dev/null || true
}
# field NAME: the value of "NAME" in the node list's first item, as JSON
field() { python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["nodes"][0][sys.argv[1]]))' "$1"; }

echo "-- one node comes up with its mesh interface and address"
start
ip -n "$A" -4 addr show dev "$MESH_IF" | grep -q 'inet 10.99.0.1/24' ||
	fail "$MESH_IF has not 10.99.0.1/24: $(ip -n "$A" addr show dev "$MESH_IF")"
[ "$(ns_exec "$A" wg show "$MESH_IF" listen-port)" = 51821 ] || fail "$MESH_IF not on 51821"

echo "-- node list --json shows it with the contract's fields"
list=$(ctl node list --json) || fail "node list failed"
for f in name mesh_address endpoint public_key reachable last_handshake subnets self; do
	field "$f" <<<"$list" >/dev/null || fail "node list lacks $f: $list"
done
[ "$(field name <<<"$list")" = "\"$(hostname)\"" ] || fail "not this node's name: $list"
[ "$(field mesh_address <<<"$list")" = '"10.99.0.1"' ] || fail "wrong address: $list"
[ "$(field endpoint <<<"$list")" = '"198.18.0.1:51821"' ] || fail "wrong endpoint: $list"
[ "$(field self <<<"$list")" = true ] || fail "not self: $list"
[ "$(field subnets <<<"$list")" = '["172.19.0.0/24"]' ] || fail "wrong subnets: $list"
key=$(field public_key <<<"$list")
[ "$key" = "\"$(ns_exec "$A" wg show "$MESH_IF" public-key)\"" ] ||
	fail "the record's key $key is not the interface's"
ctl node list | grep -q "^$(hostname) (self) *10.99.0.1 " || fail "no table: $(ctl node list)"

echo "-- VPN clients leaving through the mesh are SNATed to the mesh address"
ns_exec "$A" iptables-save -t nat | grep -q -- "-A POSTROUTING -j MG-MESH-SNAT" ||
	fail "no hook: $(ns_exec "$A" iptables-save -t nat)"
ns_exec "$A" iptables-save -t nat |
	grep -q -- "-A MG-MESH-SNAT -s 10.0.0.0/24 -o $MESH_IF -j SNAT --to-source 10.99.0.1" ||
	fail "no SNAT rule: $(ns_exec "$A" iptables-save -t nat)"

echo "-- node del refuses this node and an unknown one, changing nothing"
if out=$(ctl node del "$(hostname)" 2>&1); then fail "deleted itself: $out"; fi
grep -q "is this node" <<<"$out" || fail "unclear refusal: $out"
if out=$(ctl node del no-such-node 2>&1); then fail "deleted an unknown node: $out"; fi
grep -q "no node no-such-node" <<<"$out" || fail "unclear refusal: $out"
[ "$(ctl node list --json | field mesh_address)" = '"10.99.0.1"' ] || fail "record changed"

echo "-- a restart keeps the key and the address; a stop takes the interface down"
stop
ip -n "$A" link show "$MESH_IF" >/dev/null 2>&1 && fail "$MESH_IF outlived meshgated"
ns_exec "$A" iptables-save -t nat | grep -q MG-MESH-SNAT && fail "the nat chain outlived meshgated"
start
list=$(ctl node list --json)
[ "$(field public_key <<<"$list")" = "$key" ] || fail "a new key after restart: $list"
[ "$(field mesh_address <<<"$list")" = '"10.99.0.1"' ] || fail "a new address: $list"
ip -n "$A" -4 addr show dev "$MESH_IF" | grep -q 'inet 10.99.0.1/24' || fail "no address"
[ "$(ns_exec "$A" iptables-save -t nat | grep -c -- "-A POSTROUTING -j MG-MESH-SNAT")" = 1 ] ||
	fail "the hook is not there once"
stop
echo "PASS"
