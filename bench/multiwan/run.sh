#!/bin/bash
# Issue 14's multi-WAN benchmark: what a device behind NAT loses when the
# gateway's first uplink dies. tests/multiwan/multiwan_lib.sh's topology
# (two uplinks through two routers, a client behind NAT with its agent
# pinging 10.0.0.1 every 10 ms through the tunnel), twice in the same run:
# - ours: the multiwan plugin (interval 200 ms, fall 3, rise 5, failback
#   hold 2 s), the client told every endpoint of the node;
# - the baseline: the same topology without the plugin (the default route
#   set once on wan1, the client told one endpoint), as a gateway with two
#   uplinks and plain WireGuard would run.
# Each round cuts wan1 (its router loses its uplink), measures the longest
# time without an answer to the pings (capped at CAP_S: the baseline
# never recovers, its client keeps sending to the dead address), brings
# wan1 back and waits until everything settled (ours: failback done).
# Figures, never a test: nothing here fails on time. Root.
#
# usage: run.sh BUILD_DIR [ROUNDS]   (ROUNDS 10; CAP_S 10)
set -euo pipefail
build=$(realpath "$1")
rounds=${2:-10}
cap_s=${CAP_S:-10}
here=$(dirname "$(realpath "$0")")
source "$here/../../tests/lib/netns.sh"
source "$here/../../tests/multiwan/multiwan_lib.sh"
source "$here/../rounds.sh"
netns_init
for tool in wireguard-go wg ping python3 iptables; do
	command -v "$tool" >/dev/null || fail "needs $tool"
done

# one_round NAME: the gap of one cut, in ms (cap_s when the pings never came back)
one_round() {
	local name=$1 t cut last gap
	ping_start "$name"
	cut=$(date +%s.%N)
	wan1_cut
	# until an answer comes after the cut (0.2 s: what was in flight), or the cap
	for t in $(seq $((cap_s * 10))); do
		sleep 0.1
		last=$(tail -n 1 "$WORK/$name.ping" | sed -n 's/^\[\([0-9.]*\)\] [0-9]* bytes from.*/\1/p')
		[ -n "$last" ] && awk -v l="$last" -v c="$cut" 'BEGIN { exit !(l > c + 0.2) }' && break
	done
	sleep 0.3 # the pings go on for a moment: a resumption is not a flicker
	gap=$(ping_gap "$name")
	gap_ok "$gap" "$cap_s" || gap=$cap_s
	wan1_back
	awk -v g="$gap" 'BEGIN { printf "%.0f", g * 1000 }'
}

# settle: both uplinks up and, with the plugin, the route and the client
# back on wan1
settle() {
	if [ "${MULTIWAN:-1}" = 1 ]; then
		wait_for 15 wan_is "$W1" up up || fail "no failback: $(wan_state)"
		if ! wait_for 10 endpoint_is 198.18.1.1:51820; then
			# a probe answered late (a loaded machine) sent the agent back to
			# wan2 after it followed: the next round must start on wan1
			echo "the client stayed at $(client_endpoint): moved back to wan1 by hand" >&2
			ns_exec "$CL" wg set "$IF" peer "$(ns_exec "$CL" wg show "$IF" peers)" \
				endpoint 198.18.1.1:51820
		fi
	fi
	wait_for 15 ns_exec "$CL" ping -c 1 -W 1 10.0.0.1 || fail "no ping after the round"
	sleep 1
}

ours=() base=()
SET="" MULTIWAN=1
topology
gateway_start
client_onboard ours
settle
for r in $(seq "$rounds"); do
	ours+=("$(one_round "ours$r")")
	echo "round $r (ours): ${ours[-1]} ms"
	settle
done
kill -TERM "$GW_PID"
wait "$GW_PID" 2>/dev/null || true

SET=b MULTIWAN=0
topology
gateway_start
client_onboard base
settle
for r in $(seq "$rounds"); do
	base+=("$(one_round "base$r")")
	echo "round $r (without multiwan): ${base[-1]} ms"
	settle
done

echo
echo "machine: $(nproc) CPUs, load average $(cut -d" " -f1-3 /proc/loadavg) at the end"
tail_figure "WAN failover gap (ours)" ms "${ours[@]}"
tail_figure "WAN failover gap (without multiwan, cap ${cap_s} s)" ms "${base[@]}"
secs() { printf '%s\n' "$@" | awk '{ printf "%s%.3f", (NR > 1 ? " " : ""), $1 / 1000 }'; }
table_row "WAN failover gap, device behind NAT" s \
	"same topology without multiwan (capped at ${cap_s} s)" "$(secs "${ours[@]}")" \
	"$(secs "${base[@]}")"
table_row "WAN failover gap, device behind NAT, max" s \
	"same topology without multiwan (capped at ${cap_s} s)" "$(secs "${ours[@]}")" \
	"$(secs "${base[@]}")" p99
