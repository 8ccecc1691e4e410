#!/bin/bash
# Issue 13's benchmark: what a device loses when the active node fails.
# Three nodes (tests/cluster/cluster_lib.sh's layout) with the mesh and the
# failover plugin (real keepalived, advert_ms 100), in namespaces; two
# devices pinging the gateway address 10.0.0.1 every 10 ms:
# - ours: in cl1, onboarded with `meshgate up CODE` (the agent running);
# - the baseline: in cl2, a plain WireGuard client (wireguard-go set up by
#   hand, `wg set`), its key registered through the API (redeem + register)
#   so that every node has it as a peer; its one peer is the active node of
#   the round (as an operator who exported its config would have it).
# Rounds alternate:
# - a crash of the active node: kill -9 of its keepalived, its wireguard-go
#   (devices' and mesh) and its meshgated, a host that dies (its etcd member
#   lives on: the cluster keeps its quorum either way);
# - a graceful stop: SIGTERM to the active node's meshgated.
# Per round: the client's outage (the longest interval without an answer to
# its pings), keepalived's own VIP move (from the kill until another node
# holds the mesh VIP, `ip addr` polled) and, on a crash, the plain client's
# outage (capped: it keeps sending to the dead node, and WireGuard's roaming
# never picks another node). The node then returns (as backup: no
# preemption) and the next round starts once everything settled.
# Figures, never a test: nothing here fails on time. Root.
#
# usage: run.sh BUILD_DIR [ROUNDS]   (ROUNDS 20; PLAIN_CAP_S 30: the longest
#                                     wait for the plain client, seconds)
set -euo pipefail
build=$(realpath "$1")
rounds=${2:-20}
cap_s=${PLAIN_CAP_S:-30}
here=$(dirname "$(realpath "$0")")
source "$here/../../tests/lib/netns.sh"
source "$here/../../tests/lib/etcd.sh"
source "$here/../../tests/cluster/cluster_lib.sh"
source "$here/../../tests/failover/failover_lib.sh"
source "$here/../rounds.sh"
netns_init
etcd_init
[ "${KEEP_WORK:-0}" != 1 ] || echo "work dir: $WORK"
for tool in wireguard-go wg curl etcd etcdctl ping python3 keepalived; do
	command -v "$tool" >/dev/null || fail "needs $tool"
done
MESHGATE=$build/client/meshgate
IF=${TAG}c        # ours, in cl1
PLAIN_IF=${TAG}p  # the plain WireGuard client, in cl2
DIRS=(--config-dir "$WORK/dev/etc" --state-dir "$WORK/dev/run")

# crash_victims N: what dies with gwN's host, in the order of the kill: its
# keepalived first (no priority-0 advert: a dead host sends none), its
# WireGuard (the devices' and the mesh's wireguard-go), its meshgated
crash_victims() {
	echo "$(keepalived_pids "$1") $(wg_pid "$1") $(wg_pid "$1" "${TAG}m$1") $(gw_pid "$1")"
}

# vip_move_from N T0: ms from T0 until another node holds the mesh VIP (the
# others' mesh interfaces polled with `ip addr`, a few ms a poll); 99999
# after 10 s
vip_move_from() {
	local from=$1 t0=$2 now i
	while now=$(ms); [ $((now - t0)) -lt 10000 ]; do
		for i in 1 2 3; do
			[ "$i" != "$from" ] && has_vip "$i" && { echo $((now - t0)); return; }
		done
	done
	echo 99999
}

# ping_resumed LOG SINCE_MS: the pings in LOG got an answer again after a
# silence (200 ms or more) that came after SINCE_MS
ping_resumed() {
	python3 - "$1" "$2" <<'PY'
import re, sys
since = int(sys.argv[2]) / 1000
t = [float(m.group(1)) for m in (re.match(r"\[(\d+\.\d+)\] \d+ bytes from", l) for l in open(sys.argv[1])) if m]
sys.exit(0 if any(b - a >= 0.2 and b > since for a, b in zip(t, t[1:])) else 1)
PY
}

# plain_to N: the plain client's one peer becomes gwN (its key and endpoint)
PLAIN_PEER=""
plain_to() {
	local key
	key=$(ns_exec "$(gw_ns "$1")" wg show "${TAG}w$1" public-key)
	[ "$key" = "$PLAIN_PEER" ] && return
	[ -z "$PLAIN_PEER" ] || ns_exec "$CL2" wg set "$PLAIN_IF" peer "$PLAIN_PEER" remove
	ns_exec "$CL2" wg set "$PLAIN_IF" peer "$key" endpoint "198.18.0.$1:51820" \
		allowed-ips 10.0.0.0/16 persistent-keepalive 25
	PLAIN_PEER=$key
}
pings() { ns_exec "$1" ping -c1 -W1 10.0.0.1 >/dev/null; }

# the one active node, as a live node other than N sees it ("" if not one)
the_master() {
	local i m
	for i in 1 2 3; do
		[ "$i" = "${1:-}" ] && continue
		m=$(master "$i" 2>/dev/null) || continue
		[ -n "$m" ] && [ "${m// /}" = "$m" ] && { echo "$m"; return; }
	done
}

# moved_off N: another node than gwN is the active one, and the agent on it
moved_off() {
	local m
	m=$(the_master "$1")
	[ -n "$m" ] && [ "$m" != "gw$1" ] && on_master "$(node_of "$m")"
}

# settle: one active node, the agent on it, both devices pinging
settle() {
	local m
	wait_for 20 one_holder || fail "not one node holds the VIP: '$(holders)'"
	m=$(the_master)
	[ -n "$m" ] || fail "no active node"
	wait_for 20 on_master "$(node_of "$m")" ||
		fail "the agent is on $(status_field gateway), the active node is $m"
	wait_for 10 pings "$CL1" || fail "the agent's device does not ping"
	plain_to "$(node_of "$m")"
	wait_for 15 pings "$CL2" || fail "the plain client does not ping $m"
	sleep 2
}

echo "machine: $(nproc) CPUs, load average $(cut -d" " -f1-3 /proc/loadavg) at the start"
echo "-- three nodes with mesh and failover; the agent's device in cl1"
cluster_up "$CLUSTER_PLUGINS, \"mesh\", \"failover\""
code=$(ctln 1 user add erin --role developer --json | json_field code)
mkdir -p "$WORK/dev"
client up --server https://198.18.0.1:8443 --ca "$WORK/gw1/state/ca.pem" --backend userspace \
	"$code" >"$WORK/dev/up.log" 2>&1 || fail "meshgate up: $(cat "$WORK/dev/up.log")"

echo "-- the plain WireGuard client in cl2, registered through gw1's API"
code=$(ctln 1 user add plain --role developer --json | json_field code)
redeem_register 1 "$code" plain-laptop
ip netns exec "$CL2" wireguard-go -f "$PLAIN_IF" >"$WORK/plain-wg.log" 2>&1 &
bg_track $!
wait_for 5 ns_exec "$CL2" ip link show "$PLAIN_IF" || fail "no plain interface"
ns_exec "$CL2" wg set "$PLAIN_IF" private-key <(echo "$DEV_KEY")
ns_exec "$CL2" ip addr add "$DEV_IP" dev "$PLAIN_IF"
ns_exec "$CL2" ip link set "$PLAIN_IF" up
ns_exec "$CL2" ip route add 10.0.0.0/16 dev "$PLAIN_IF"
plain_on_every_node() { peer_on 1 "$DEV_PUB" && peer_on 2 "$DEV_PUB" && peer_on 3 "$DEV_PUB"; }
wait_for 10 plain_on_every_node || fail "the plain client's key is not a peer on every node"
settle

ours_crash=() ours_stop=() vip_crash=() vip_stop=() plain_crash=() plain_lost=0
for r in $(seq "$rounds"); do
	m=$(the_master)
	n=$(node_of "$m")
	kind=crash
	[ $((r % 2)) = 1 ] || kind=stop
	ping_start "$CL1" "$WORK/ours.log"
	ours_ping=$PING_PID
	if [ $kind = crash ]; then
		ping_start "$CL2" "$WORK/plain.log"
		plain_ping=$PING_PID
	fi
	if [ $kind = crash ]; then
		victims=$(crash_victims "$n")
		t0=$(ms)
		# shellcheck disable=SC2086
		kill -9 $victims
	else
		t0=$(ms)
		kill -TERM "$(gw_pid "$n")"
	fi
	vip=$(vip_move_from "$n" "$t0")
	wait_for 10 moved_off "$n" ||
		echo "   round $r: the agent is on $(status_field gateway), the active node is '$(the_master "$n")'"
	sleep 1
	ping_stop "$ours_ping"
	ours=$(ping_gap "$WORK/ours.log")
	line="round $r, $kind of $m: the client lost $ours ms, keepalived moved the VIP in $vip ms"
	if [ $kind = crash ]; then
		while [ $(($(ms) - t0)) -lt $((cap_s * 1000)) ] && ! ping_resumed "$WORK/plain.log" "$t0"; do
			sleep 0.2
		done
		ping_stop "$plain_ping"
		if ping_resumed "$WORK/plain.log" "$t0"; then
			plain=$(ping_gap "$WORK/plain.log")
			line+=", the plain WireGuard client lost $plain ms"
		else
			plain=$((cap_s * 1000))
			plain_lost=$((plain_lost + 1))
			line+=", the plain WireGuard client got no answer within the ${cap_s} s cap"
		fi
		ours_crash+=("$ours") vip_crash+=("$vip") plain_crash+=("$plain")
	else
		ours_stop+=("$ours") vip_stop+=("$vip")
	fi
	wait "$(gw_pid "$n")" 2>/dev/null || true
	echo "$line"
	gw_start "$n"
	wait_for 20 state_is "$n" backup || fail "$m did not return as backup: $(record "$n")"
	settle
done

echo
echo "machine: $(nproc) CPUs, load average $(cut -d" " -f1-3 /proc/loadavg) at the end"
if [ ${#ours_crash[@]} -gt 0 ]; then
	tail_figure "client outage, crash (ours)" ms "${ours_crash[@]}"
	tail_figure "keepalived VIP move, crash" ms "${vip_crash[@]}"
	tail_figure "client outage, crash (plain WireGuard client)" ms "${plain_crash[@]}"
	[ "$plain_lost" = 0 ] ||
		echo "  the plain client got no answer within ${cap_s} s in $plain_lost of ${#plain_crash[@]} crashes (counted as ${cap_s} s)"
fi
if [ ${#ours_stop[@]} -gt 0 ]; then
	tail_figure "client outage, graceful stop (ours)" ms "${ours_stop[@]}"
	tail_figure "keepalived VIP move, graceful stop" ms "${vip_stop[@]}"
fi
# secs MS...: the same in seconds, for the table (30000 ms would print as 3e+04)
secs() { printf '%s\n' "$@" | awk '{ printf "%s%.3f", (NR > 1 ? " " : ""), $1 / 1000 }'; }
if [ ${#ours_crash[@]} -gt 0 ]; then
	base="plain WireGuard client, same crash"
	[ "$plain_lost" = 0 ] || base+=" (no answer within ${cap_s} s in $plain_lost of ${#plain_crash[@]}: counted ${cap_s} s)"
	table_row "client outage after a crash of the active node, p99" s "$base" \
		"$(secs "${ours_crash[@]}")" "$(secs "${plain_crash[@]}")" p99
	table_row "client outage after a crash vs keepalived's own VIP move, p99 (info)" s \
		"keepalived VIP move, same crash" "$(secs "${ours_crash[@]}")" "$(secs "${vip_crash[@]}")" p99
fi
if [ ${#ours_stop[@]} -gt 0 ]; then
	table_row "client outage after a graceful stop, p99" s "keepalived VIP move, same stop" \
		"$(secs "${ours_stop[@]}")" "$(secs "${vip_stop[@]}")" p99
fi
