#!/bin/bash
# Forwarding throughput through a gateway namespace with the firewall's
# 10,000-device policy loaded, against the same path with conntrack and a
# single rule, and with no rules at all. Prints figures; never fails on
# them. Offloads are off on every veth (MTU-sized packets, as wireguard-go
# sends), as in BASELINES.md §3.
#
#   client ns 10.100.39.16 ── gw ns (vpn0 | srv0) ── server ns 10.200.0.10
#
# The client is device #10,000 of the model (role r0, which reaches
# 10.200.0.0/24); the gateway's "VPN interface" is the client's veth.
# usage: bench_throughput.sh BUILD_DIR [SECONDS]
set -euo pipefail
build=$(realpath "$1")
secs=${2:-10}
here=$(dirname "$(realpath "$0")")
source "$here/../../tests/lib/netns.sh"
netns_init

ns_add CL cl
ns_add GW gw
ns_add SV sv
ns_link "$CL" 10.100.39.16/16 "$GW" 10.100.0.1/16 "${TAG}c" vpn0
ns_link "$GW" 10.200.0.1/24 "$SV" 10.200.0.10/24 srv0 "${TAG}s"
ns_exec "$CL" ip route add 10.200.0.0/16 via 10.100.0.1
ns_exec "$SV" ip route add 10.100.0.0/16 via 10.200.0.1
ns_exec "$GW" sysctl -qw net.ipv4.ip_forward=1
for pair in "$CL:${TAG}c" "$GW:vpn0" "$GW:srv0" "$SV:${TAG}s"; do
	ns_exec "${pair%%:*}" ethtool -K "${pair#*:}" tso off gso off gro off >/dev/null 2>&1 || true
done
ip netns exec "$SV" iperf3 -s -B 10.200.0.10 >/dev/null 2>&1 &
bg_track $!
sleep 0.5

# gbits: one iperf3 run, Gbit/s received
gbits() {
	ns_exec "$CL" iperf3 -c 10.200.0.10 -t "$secs" -J 2>/dev/null |
		sed -n 's/.*"bits_per_second":[[:space:]]*\([0-9.e+]*\).*/\1/p' | tail -1 |
		awk '{ printf "%.2f", $1 / 1e9 }'
}
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

single_rule_on() {
	ns_exec "$GW" iptables-restore <<RULES
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -s 10.100.39.16/32 -d 10.200.0.0/24 -j ACCEPT
COMMIT
RULES
}
single_rule_off() {
	ns_exec "$GW" iptables -F FORWARD
	ns_exec "$GW" iptables -P FORWARD ACCEPT
}
ours_on() {
	coproc HOLD { ip netns exec "$GW" "$build/bench/firewall/bench_fw" hold vpn0; }
	bg_track "$HOLD_PID"
	read -r ready <&"${HOLD[0]}"
	ns_exec "$GW" ipset test MESHGATE-r0 10.100.39.16 2>/dev/null || fail "the client is not in its role set"
	RULES_N=$(ns_exec "$GW" iptables-save | grep -c '^-A MESHGATE')
}
ours_off() {
	echo >&"${HOLD[1]}"
	wait "$HOLD_PID" || true
	! ns_exec "$GW" iptables-save | grep -q MESHGATE || fail "MESHGATE rules left behind"
}

echo "forwarding throughput, iperf3 TCP ${secs} s, 3 runs of each, interleaved (median), offloads off"
declare -a N S O
for run in 1 2 3; do
	N+=("$(gbits)")
	single_rule_on
	S+=("$(gbits)")
	single_rule_off
	ours_on
	O+=("$(gbits)")
	ours_off
done
echo "  no rules:            ${N[*]} Gbit/s"
echo "  conntrack + 1 rule:  ${S[*]} Gbit/s"
echo "  ours ($ready; $RULES_N rules in MESHGATE chains): ${O[*]} Gbit/s"
none=$(median3 "${N[@]}")
single=$(median3 "${S[@]}")
ours=$(median3 "${O[@]}")

awk -v n="$none" -v s="$single" -v o="$ours" 'BEGIN {
	printf "no rules              %6.2f Gbit/s\n", n
	printf "conntrack + 1 rule    %6.2f Gbit/s  (%.3f of no rules)\n", s, s / n
	printf "ours, 10k devices     %6.2f Gbit/s  (%.3f of conntrack + 1 rule, goal >= 0.95; %.3f of no rules)\n", o, o / s, o / n
}'
