#!/bin/bash
# Forwarding throughput through a gateway namespace with the firewall's
# 10,000-device policy loaded, against the same path with conntrack and a
# single rule (the plain stateful ruleset an operator would write), and
# with no rules at all. Prints figures; never fails on them. Offloads are
# off on every veth (MTU-sized packets, as wireguard-go sends), as in
# BASELINES.md §3.
#
#   client ns 10.100.39.16 ── gw ns (vpn0 | srv0) ── server ns 10.200.0.10
#
# The client is device #10,000 of the model (role r0, which reaches
# 10.200.0.0/24); the gateway's "VPN interface" is the client's veth.
#
# Rounds are interleaved: each round measures ours and the baseline, who
# goes first alternating, so that a slow moment of the machine weighs on
# both. Two figures per run: Gbit/s, and Gbit per CPU-second of the two
# iperf3 processes (the forwarding runs in their softirq context, so this
# is the cost per byte, which a busy machine blurs less than the rate).
# usage: bench_throughput.sh BUILD_DIR [SECONDS] [ROUNDS]
set -euo pipefail
build=$(realpath "$1")
secs=${2:-5}
rounds=${3:-5}
here=$(dirname "$(realpath "$0")")
source "$here/../../tests/lib/netns.sh"
source "$here/../rounds.sh"
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

# measure: one iperf3 run; prints "Gbit/s Gbit-per-CPU-second"
measure() {
	sync # nothing of the previous set-up left to write back during the run
	ns_exec "$CL" iperf3 -c 10.200.0.10 -t "$secs" -J 2>/dev/null | python3 -c '
import json, sys
end = json.load(sys.stdin)["end"]
bits = end["sum_received"]["bits_per_second"]
cpu = end["cpu_utilization_percent"]
print("%.3f %.3f" % (bits / 1e9, bits / 1e9 / ((cpu["host_total"] + cpu["remote_total"]) / 100)))'
}

baseline_on() {
	ns_exec "$GW" iptables-restore <<RULES
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -s 10.100.39.16/32 -d 10.200.0.0/24 -j ACCEPT
COMMIT
RULES
}
baseline_off() {
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

echo "forwarding throughput, iperf3 TCP ${secs} s, ${rounds} interleaved rounds, offloads off"
declare -a N S O NE SE OE
for ((run = 1; run <= rounds; run++)); do
	read -r n ne < <(measure)
	if ((run % 2)); then
		baseline_on
		read -r s se < <(measure)
		baseline_off
		ours_on
		read -r o oe < <(measure)
		ours_off
	else
		ours_on
		read -r o oe < <(measure)
		ours_off
		baseline_on
		read -r s se < <(measure)
		baseline_off
	fi
	N+=("$n") S+=("$s") O+=("$o") NE+=("$ne") SE+=("$se") OE+=("$oe")
	echo "  round $run: no rules $n, conntrack + 1 rule $s, ours $o Gbit/s;" \
		"per CPU-second $ne, $se, $oe Gbit"
done
echo "  ours: $ready; $RULES_N rules in MESHGATE chains"


echo
figure "no rules" "Gbit/s" "${N[@]}"
figure "conntrack + 1 rule" "Gbit/s" "${S[@]}"
figure "ours, 10k devices" "Gbit/s" "${O[@]}"
figure "no rules, per CPU-second" "Gbit" "${NE[@]}"
figure "conntrack + 1 rule, per CPU-second" "Gbit" "${SE[@]}"
figure "ours, per CPU-second" "Gbit" "${OE[@]}"
echo "goal: ours >= 0.95 of conntrack + 1 rule (median of the per-round ratios)"
table_row "forwarding, 10k-device policy" "Gbit/s" "conntrack + 1 rule" "${O[*]}" "${S[*]}"
table_row "forwarding per CPU-second, 10k-device policy" "Gbit" "conntrack + 1 rule" \
	"${OE[*]}" "${SE[*]}"
table_row "conntrack + 1 rule vs no rules (the machine)" "Gbit/s" "no rules" "${S[*]}" "${N[*]}"
