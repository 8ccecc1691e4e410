#!/bin/bash
# Three gateways with the mesh and the failover plugin (real keepalived,
# VRRPv3 unicast over the mesh's WireGuard tunnels, adverts every 100 ms),
# in namespaces on the shared segment of tests/cluster/cluster_lib.sh.
# Checks:
# - exactly one master: the mesh VIP (10.99.0.254) and the public VIP
#   (198.18.0.100) on exactly one node, and every node's records (etcd)
#   and `meshgatectl node list` (--json "active", the text's ACTIVE
#   column) name that node; a client on the segment pings the public VIP;
# - kill -9 of the master's meshgated (its keepalived goes with it, by
#   PDEATHSIG): another node holds the VIP within 1 s (the time printed);
# - the old master returns: it stays backup, the VIP does not move back
#   (preempt = false);
# - graceful stop of the master: the VIP moves (the time printed), its
#   record says "stopped";
# - the track script: the master's meshgated hung (SIGSTOP, keepalived
#   runs on) is demoted to fault and another takes over; its WireGuard
#   interface down: the same; both back: backup, no flap.
# usage: vip.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/../lib/etcd.sh"
source "$here/../cluster/cluster_lib.sh"
source "$here/failover_lib.sh"
netns_init
etcd_init
[ "${KEEP_WORK:-0}" != 1 ] || echo "work dir: $WORK"
for tool in wireguard-go wg etcd etcdctl keepalived python3; do
	command -v "$tool" >/dev/null || fail "needs $tool"
done

PLUGINS="$CLUSTER_PLUGINS, \"mesh\", \"failover\""
PUBLIC_VIP=198.18.0.100
failover_conf() {
	echo "public_vip = \"$PUBLIC_VIP/24\"; public_interface = \"$(public_if "$1")\";"
}

has_public_vip() { ip -n "$(gw_ns "$1")" -4 addr show | grep -q "inet $PUBLIC_VIP/"; }
# agree NAME NODES...: every listed node's node list says NAME is active
agree() {
	local want=$1 i
	shift
	for i in "$@"; do [ "$(master "$i")" = "$want" ] || return 1; done
}
# vip_moves_from N LIMIT_MS WHAT: waits for another node to hold the VIP,
# prints how long it took, fails past LIMIT_MS
vip_moves_from() {
	local from=$1 limit=$2 what=$3 t0=$T0 now
	while :; do
		now=$(ms)
		holder_other_than "$from" && break
		[ $((now - t0)) -lt 10000 ] || fail "$what: no other node holds the VIP after 10 s ($(holders))"
		sleep 0.01
	done
	echo "   $what: the VIP moved from gw$from to gw$(holders) in $((now - t0)) ms"
	[ $((now - t0)) -le "$limit" ] || fail "$what: $((now - t0)) ms is more than $limit ms"
}

echo "-- three nodes with mesh and failover: exactly one master"
cluster_up "$PLUGINS"
wait_for 15 one_holder || fail "not exactly one node holds the VIP: '$(holders)'"
M=$(holders)
wait_for 3 has_public_vip "$M" || fail "gw$M has the mesh VIP but not the public VIP"
for i in 1 2 3; do
	[ "$i" = "$M" ] || ! has_public_vip "$i" || fail "gw$i has the public VIP too"
done
wait_for 10 state_is "$M" master || fail "gw$M's record: $(record "$M")"
for i in 1 2 3; do
	[ "$i" = "$M" ] || wait_for 10 state_is "$i" backup || fail "gw$i's record: $(record "$i")"
done
wait_for 10 agree "gw$M" 1 2 3 || fail "the node lists do not agree on gw$M: $(for i in 1 2 3; do echo "gw$i: $(master $i)"; done)"
ctln 1 node list | grep -q "^gw$M\b.* yes " || fail "no ACTIVE mark on gw$M: $(ctln 1 node list)"
grep -q "this node is master" "$WORK/gw$M/meshgated.log" || fail "gw$M logged no vip.master"
[ "$(stat -c %a "$WORK/gw$M/state/failover/keepalived.conf")" = 600 ] || fail "keepalived.conf not 0600"
ns_exec "$CL1" ping -c1 -W1 "$PUBLIC_VIP" >/dev/null || fail "cl1 cannot ping the public VIP"
echo "   gw$M is the master, records and node lists agree"

echo "-- kill -9 of the master's meshgated: another node takes over within 1 s"
KA_PIDS=$(cat "$WORK/gw$M/state/failover/keepalived.pid" "$WORK/gw$M/state/failover/vrrp.pid")
T0=$(ms)
gw_kill9 "$M"
vip_moves_from "$M" 1000 "crash"
OLD=$M
M=$(holders)
gone() { for p in $KA_PIDS; do ! kill -0 "$p" 2>/dev/null || return 1; done; }
wait_for 5 gone || {
	kill -9 $KA_PIDS 2>/dev/null || true
	fail "keepalived of gw$OLD outlived its meshgated"
}
ALIVE=$(echo 1 2 3 | tr ' ' '\n' | grep -vx "$OLD" | tr '\n' ' ')
# shellcheck disable=SC2086
wait_for 10 agree "gw$M" $ALIVE || fail "the surviving nodes do not agree on gw$M"
wait_for 10 state_is "$M" master || fail "gw$M's record: $(record "$M")"
ns_exec "$CL1" ping -c1 -W1 "$PUBLIC_VIP" >/dev/null || fail "cl1 cannot ping the public VIP on gw$M"

echo "-- the old master returns: it stays backup (no preemption)"
gw_start "$OLD"
wait_for 15 state_is "$OLD" backup || fail "gw$OLD's record: $(record "$OLD")"
sleep 2
[ "$(holders)" = "$M" ] || fail "the VIP moved back: '$(holders)'"
wait_for 10 agree "gw$M" 1 2 3 || fail "the node lists do not agree on gw$M after gw$OLD returned"
echo "   gw$OLD is back as backup; gw$M keeps the VIP"

echo "-- graceful stop of the master: the VIP moves, its record says stopped"
T0=$(ms)
kill -TERM "$(gw_pid "$M")"
vip_moves_from "$M" 1000 "graceful stop"
wait "$(gw_pid "$M")" 2>/dev/null || true
OLD=$M
M=$(holders)
wait_for 10 state_is "$OLD" stopped || fail "gw$OLD's record: $(record "$OLD")"
gw_start "$OLD"
wait_for 15 state_is "$OLD" backup || fail "gw$OLD's record after restart: $(record "$OLD")"

echo "-- the track script: the master's meshgated hung (SIGSTOP), keepalived runs on"
faults() { grep -c "this node is fault" "$WORK/gw$1/meshgated.log" || true; }
more_faults() { [ "$(faults "$1")" -gt "$2" ]; }
FAULTS=$(faults "$M")
T0=$(ms)
kill -STOP "$(gw_pid "$M")"
vip_moves_from "$M" 4000 "hung meshgated"
kill -CONT "$(gw_pid "$M")"
OLD=$M
M=$(holders)
wait_for 5 more_faults "$OLD" "$FAULTS" || fail "gw$OLD was not demoted to fault"
wait_for 10 state_is "$OLD" backup || fail "gw$OLD not back to backup: $(record "$OLD")"
[ "$(holders)" = "$M" ] || fail "the VIP moved back: '$(holders)'"

echo "-- the track interface: the master's WireGuard interface down"
T0=$(ms)
ip -n "$(gw_ns "$M")" link set "${TAG}w$M" down
vip_moves_from "$M" 1000 "WireGuard down"
OLD=$M
M=$(holders)
wait_for 10 state_is "$OLD" fault || fail "gw$OLD's record: $(record "$OLD")"
ip -n "$(gw_ns "$OLD")" link set "${TAG}w$OLD" up
wait_for 10 state_is "$OLD" backup || fail "gw$OLD not back to backup: $(record "$OLD")"
[ "$(holders)" = "$M" ] || fail "the VIP moved back: '$(holders)'"
echo "ok"
