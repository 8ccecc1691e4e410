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
# With FW_PERF=1 each run of ours and of the baseline is also sampled by
# `perf record -a` and the share of the CPU spent in the filter chains
# (nf_tables and the xt matches they call, conntrack's lookup apart) is
# printed per round: the per-packet cost of the ruleset itself, which the
# noise of the rate does not blur.
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

# perf_measure NAME: measure; with FW_PERF=1 also the share (%) of the
# samples in the filter chains' code and in conntrack's, into NAME.shares
profile=${FW_PERF:-0}
perf_measure() {
	if [ "$profile" != 1 ]; then
		measure
		return
	fi
	# sampled while iperf3 runs (its first second is the warm-up anyway)
	perf record -a -q -o "$WORK/perf.data" -- sleep "$secs" 2>/dev/null &
	local perf_pid=$! shares
	measure
	wait "$perf_pid" || true
	shares=$(perf report -i "$WORK/perf.data" --no-children -F overhead,sym --stdio 2>/dev/null | awk '
		/^ *[0-9.]+%/ {
			pct = $1; sub(/%/, "", pct); sym = $NF
			if (sym ~ /^(nft_|__nft_|xt_|ipt_|conntrack_mt|set_match|ip_set|hash_ip|iptable_|nf_hook_slow)/) chains += pct
			else if (sym ~ /^(nf_conntrack|__nf_conntrack|nf_ct_|hash_conntrack|____nf_conntrack)/) ct += pct
		}
		END { printf "%.2f %.2f", chains, ct }')
	echo "$shares" >"$WORK/$1.shares"
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
declare -a N S O NE SE OE SC OC
for ((run = 1; run <= rounds; run++)); do
	read -r n ne < <(measure)
	if ((run % 2)); then
		baseline_on
		perf_measure s >"$WORK/s"
		baseline_off
		ours_on
		perf_measure o >"$WORK/o"
		ours_off
	else
		ours_on
		perf_measure o >"$WORK/o"
		ours_off
		baseline_on
		perf_measure s >"$WORK/s"
		baseline_off
	fi
	read -r s se <"$WORK/s"
	read -r o oe <"$WORK/o"
	if [ "$profile" = 1 ]; then
		read -r sc sct <"$WORK/s.shares"
		read -r oc oct <"$WORK/o.shares"
		SC+=("$sc") OC+=("$oc")
		echo "  round $run: CPU share of the filter chains: conntrack + 1 rule $sc%, ours $oc%;" \
			"of conntrack: $sct%, $oct%"
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
if [ "$profile" = 1 ]; then
	figure "CPU share of the filter chains, conntrack + 1 rule" "%" "${SC[@]}"
	figure "CPU share of the filter chains, ours" "%" "${OC[@]}"
fi
echo "goal: ours >= 0.95 of conntrack + 1 rule (median of the per-round ratios)"
table_row "forwarding, 10k-device policy" "Gbit/s" "conntrack + 1 rule" "${O[*]}" "${S[*]}"
table_row "forwarding per CPU-second, 10k-device policy" "Gbit" "conntrack + 1 rule" \
	"${OE[*]}" "${SE[*]}"
table_row "conntrack + 1 rule vs no rules (the machine)" "Gbit/s" "no rules" "${S[*]}" "${N[*]}"
