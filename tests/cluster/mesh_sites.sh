#!/bin/bash
# Three gateways, one network: the mesh between them and the sites behind
# them (cluster_lib.sh draws the namespaces; with the mesh plugin each gwN
# routes its site 172.19.N.0/24, where 172.19.N.10 answers on TCP 7000).
# Checks, with real etcd, wireguard-go, HTTPS and TCP:
# - gw1 and gw2 start, then gw3 joins: every gateway has the two others as
#   mesh peers, `meshgatectl node list --json` agrees on all three (names,
#   mesh addresses, public keys, endpoints), each sees the others
#   reachable, and every mesh address pings every other;
# - site to site: a device onboarded through gw1 (the real client,
#   `meshgate up`) whose role has gw2's site reaches its service, which
#   sees gw1's mesh address (SNAT at the ingress node, so the reply comes
#   back through gw1); gw3's site, which its role lacks, stays closed even
#   when the device routes it into its tunnel, as does gw2's site for a
#   second device whose role lacks it: gw1's firewall drops them. That
#   role changed on gw3 to one with gw2's site: gw1 lets it through;
# - trust: a device enrolled through gw2 (--ca gw2's CA) verifies gw1's API
#   with the bundle it saved (the client dials only its enrolment node's API
#   and, through the tunnel, 10.0.0.1: the bundle is checked with curl),
#   which gw2's CA alone does not;
# - `meshgatectl node del gw3` on gw1: gw3's peer and route go on gw1 and
#   gw2; gw1 and gw2 still ping each other over the mesh.
# usage: mesh_sites.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/../lib/etcd.sh"
source "$here/cluster_lib.sh"
netns_init
etcd_init
[ "${KEEP_WORK:-0}" != 1 ] || echo "work dir: $WORK"
for tool in wireguard-go wg curl etcd ncat python3; do
	command -v "$tool" >/dev/null || fail "needs $tool"
done

PLUGINS="$CLUSTER_PLUGINS, \"mesh\""
# admin reaches gw2's site and nothing else behind the gateways; developer none
CLUSTER_ROLES='developer = ["10.0.0.0/16"]; admin = ["10.0.0.0/16", "172.19.2.0/24"];'
MESHGATE=$build/client/meshgate

# node_table N: gwN's node list, one line a node (name, mesh address,
# public key, endpoint), sorted by name
node_table() {
	ctln "$1" node list --json | python3 -c '
import json, sys
for n in sorted(json.load(sys.stdin)["nodes"], key=lambda n: n["name"]):
    print(n["name"], n["mesh_address"], n["public_key"], n["endpoint"])'
}
node_count() { [ "$(node_table "$1" | grep -c .)" = "$2" ]; }
# node_field N NAME FIELD: FIELD of node NAME in gwN's list
node_field() {
	ctln "$1" node list --json | python3 -c '
import json, sys
print([n for n in json.load(sys.stdin)["nodes"] if n["name"] == sys.argv[1]][0][sys.argv[2]])' "$2" "$3"
}
reachable() { [ "$(node_field "$1" "$2" reachable)" = True ]; }
gw_ns() { eval "echo \$GW$1"; }
mesh_peer_on() { ns_exec "$(gw_ns "$1")" wg show "${TAG}m$1" peers | grep -qxF "$2"; }
no_mesh_peer_on() { ! mesh_peer_on "$@"; }
mesh_route_on() { ip -n "$(gw_ns "$1")" route show "$2" | grep -q "dev ${TAG}m$1"; }
# drops N: packets gwN's firewall dropped from the VPN to other networks
drops() {
	ns_exec "$(gw_ns "$1")" iptables -nvx -L MESHGATE-FROM-VPN | awk '$3 == "DROP" { print $1 }'
}

echo "-- gw1 and gw2 start, then gw3 joins"
cluster_up "$PLUGINS" "1 2"
wait_for 15 node_count 1 2 || fail "gw1 does not list two nodes: $(ctln 1 node list)"
wait_for 15 node_count 2 2 || fail "gw2 does not list two nodes: $(ctln 2 node list)"
gw_config 3 "$PLUGINS"
gw_start 3
for i in 1 2 3; do
	wait_for 15 node_count "$i" 3 || fail "gw$i does not list three nodes: $(ctln "$i" node list)"
done
declare -A KEY ADDR
for i in 1 2 3; do
	KEY[$i]=$(ns_exec "$(gw_ns "$i")" wg show "${TAG}m$i" public-key)
	ADDR[$i]=$(node_field 1 "gw$i" mesh_address)
done
for i in 1 2 3; do
	for j in 1 2 3; do
		[ "$i" = "$j" ] && continue
		wait_for 10 mesh_peer_on "$i" "${KEY[$j]}" || fail "gw$j is not a mesh peer of gw$i"
		wait_for 5 mesh_route_on "$i" "172.19.$j.0/24" || fail "gw$i has no route to gw$j's site"
	done
done
echo "   each gateway has the two others as peers and routes to their sites"
# gw2 joined after gw1's firewall applied its policy, when gw2's site lay
# behind gw1's uplink (its default route): the rule follows the new route
site2_rule() { ns_exec "$GW1" iptables -S MESHGATE-FROM-VPN | grep -F -- "-d 172.19.2.0/24"; }
wait_for 2 eval 'site2_rule | grep -qF -- "-o ${TAG}m1 "' ||
	fail "gw1's firewall does not let gw2's site out through the mesh: $(site2_rule)"

echo "-- node list --json agrees on all three"
table=$(node_table 1)
for i in 1 2 3; do
	grep -qxF "gw$i ${ADDR[$i]} ${KEY[$i]} 198.18.0.$i:51821" <<<"$table" ||
		fail "gw1's list is wrong about gw$i: $table"
done
[ "$(cut -d' ' -f2 <<<"$table" | sort -u | grep -c .)" = 3 ] || fail "mesh addresses twice: $table"
for i in 2 3; do
	[ "$(node_table "$i")" = "$table" ] || fail "gw$i's list differs: $(node_table "$i") / $table"
done
echo "$table" | sed 's/^/   /'

echo "-- every mesh address pings every other; each node sees the others reachable"
for i in 1 2 3; do
	for j in 1 2 3; do
		[ "$i" = "$j" ] && continue
		wait_for 10 ns_exec "$(gw_ns "$i")" ping -c1 -W1 "${ADDR[$j]}" ||
			fail "no ping gw$i -> gw$j (${ADDR[$j]}) over the mesh"
	done
done
for i in 1 2 3; do
	for j in 1 2 3; do
		[ "$i" = "$j" ] && continue
		wait_for 10 reachable "$i" "gw$j" || fail "gw$i does not see gw$j reachable: $(ctln "$i" node list)"
	done
done

# device_up NS IFNAME N CODE: the real client in NS, enrolled through gwN's
# API (its key made there, verified TLS with gwN's CA)
device_up() {
	mkdir -p "$WORK/dev-$2"
	ns_exec "$1" "$MESHGATE" up --server "https://198.18.0.$3:8443" --ca "$WORK/gw$3/state/ca.pem" \
		--interface "$2" --backend userspace --config-dir "$WORK/dev-$2/etc" \
		--state-dir "$WORK/dev-$2/run" "$4" >"$WORK/dev-$2/up.log" 2>&1 ||
		fail "meshgate up $2 through gw$3: $(cat "$WORK/dev-$2/up.log")"
}
# route_anyway NS IFNAME SUBNET: the device sends SUBNET into its tunnel,
# whatever its role says
route_anyway() {
	local peer ips
	peer=$(ns_exec "$1" wg show "$2" peers)
	ips=$(ns_exec "$1" wg show "$2" allowed-ips | cut -f2 | tr ' ' ',')
	ns_exec "$1" wg set "$2" peer "$peer" allowed-ips "$ips,$3"
	ns_exec "$1" ip route replace "$3" dev "$2"
}
# ask NS ADDRESS: a line to the site service at ADDRESS; its answer
ask() { echo hello | ns_exec "$1" ncat --no-shutdown -w 2 "$2" 7000 2>/dev/null; }
answers() { [ "$(ask "$1" "$2")" = "$3" ]; }

echo "-- site to site: a device on gw1 reaches gw2's site when its role has it"
code=$(ctln 1 user add sam --role admin --json | json_field code)
[ -n "$code" ] || fail "no code from gw1"
device_up "$CL1" "${TAG}a" 1 "$code"
ip -n "$CL1" route show 172.19.2.0/24 | grep -q "dev ${TAG}a" ||
	fail "the device does not route gw2's site through its tunnel: $(ip -n "$CL1" route)"
want="site2 from ${ADDR[1]}: hello"
wait_for 5 answers "$CL1" 172.19.2.10 "$want" ||
	fail "gw2's site answers the device on gw1 with '$(ask "$CL1" 172.19.2.10)', not '$want'"
echo "   $want (gw1's mesh address: the reply came back through gw1)"

echo "-- and not a site its role lacks, even routed into the tunnel"
route_anyway "$CL1" "${TAG}a" 172.19.3.0/24
before=$(drops 1)
ask "$CL1" 172.19.3.10 && fail "the admin device reached gw3's site"
[ "$(drops 1)" -gt "$before" ] || fail "gw1's firewall dropped nothing: the test proves nothing"

echo "-- a second device on gw1, whose role lacks gw2's site: refused at gw1"
code=$(ctln 1 user add sid --role developer --json | json_field code)
device_up "$CL2" "${TAG}b" 1 "$code"
route_anyway "$CL2" "${TAG}b" 172.19.2.0/24
before=$(drops 1)
ask "$CL2" 172.19.2.10 && fail "the developer device reached gw2's site"
[ "$(drops 1)" -gt "$before" ] || fail "gw1's firewall dropped nothing: the test proves nothing"
ctln 3 user set-role sid admin >/dev/null
wait_for 5 answers "$CL2" 172.19.2.10 "site2 from ${ADDR[1]}: hello" ||
	fail "the role changed on gw3 to admin does not open gw2's site through gw1"
echo "   refused, then let through once its role (changed on gw3) has the site"

echo "-- trust: a device enrolled through gw2 verifies gw1's API with its bundle"
ns_add CL3 cl3
bridge_port "$CL3" 198.18.0.13/24
code=$(ctln 2 user add tess --role developer --json | json_field code)
device_up "$CL3" "${TAG}t" 2 "$code"
bundle=$WORK/dev-${TAG}t/etc/${TAG}t.ca.pem
[ "$(grep -c 'BEGIN CERTIFICATE' "$bundle")" = 3 ] || fail "the bundle does not hold three CAs"
status=$(ns_exec "$CL3" curl -sS --max-time 5 --cacert "$bundle" -o /dev/null -w '%{http_code}' \
	https://198.18.0.1:8443/api/v1/health) || fail "gw1's API does not verify with the bundle"
[ "$status" = 200 ] || fail "gw1's health through verified TLS: $status"
rc=0
ns_exec "$CL3" curl -sS --max-time 5 --cacert "$WORK/gw2/state/ca.pem" -o /dev/null \
	https://198.18.0.1:8443/api/v1/health 2>/dev/null || rc=$?
[ "$rc" = 60 ] || fail "gw1's API verified with gw2's CA alone (curl exit $rc)"
echo "   gw1's API verified with the bundle (gw2's CA alone: refused)"

echo "-- node del gw3 on gw1: its peer and route go on gw1 and gw2"
ctln 1 node del gw3 >/dev/null || fail "node del gw3"
for i in 1 2; do
	wait_for 5 no_mesh_peer_on "$i" "${KEY[3]}" || fail "gw3 is still a mesh peer of gw$i"
	mesh_route_on "$i" 172.19.3.0/24 && fail "gw$i still routes gw3's site"
	node_count "$i" 2 || fail "gw$i lists: $(ctln "$i" node list)"
done
ns_exec "$GW1" ping -c1 -W2 "${ADDR[2]}" >/dev/null || fail "gw1 and gw2 lost each other"
answers "$CL1" 172.19.2.10 "$want" || fail "gw2's site lost after deleting gw3"
echo "mesh_sites: all checks passed"
