#!/bin/bash
# Rotation of the gateway's key with DEVICES devices (default 10,000: in
# preauth's state and peers on the interface), ONLINE of them (default 10)
# real devices with their agent, each in a namespace of its own and
# pinging a service behind the gateway every 10 ms; the others simulated by
# a load generator (configs.py) that re-reads each one's device config from
# its tunnel address, all at once, as their agents would on the config
# epoch's change. Figures, per round: lost pings of the online devices, and
# the time from the gateway's key change on its interface until every
# online device's peer is the new key (watch.py, through the UAPI sockets).
#
# The simulated devices sit behind ONE router hop: their addresses are the
# load generator namespace's own (on its lo), and the gateway routes each
# one via that namespace's single link address. So the gateway's neighbour
# table holds one entry for all of them, not one per device: the kernel's
# neighbour table is one for the whole machine (gc_thresh3 = 1024 entries
# over every namespace), and 10,000 on-link addresses overflowed it for
# every other test running meanwhile ("No buffer space available"). Each
# round prints the most entries seen, the gateway's and the machine's.
#
# The lead (LEAD, seconds; wireguard.key_switch_lead; default DEVICES /
# 100, at least 5) must let every device re-read its config before the
# switch; the rounds ping for the lead and 9 s after it.
#   ours:     `meshgatectl key rotate --gateway`: the timed switch
#             (docs/rotation.md): published LEAD ahead, the devices follow
#             once the gateway's switch is done (its probe answers stop);
#   baseline: the naive way, same run, same devices: the new key set on
#             the gateway's interface (wg set), then every device re-imports
#             its config with the new key (its config file rewritten,
#             meshgate down, meshgate up: what a client restart does), all
#             devices at once, while the simulated ones re-read theirs.
# Figures only, never pass/fail. Root (namespaces, wireguard-go).
# usage: bench/rotation/run.sh BUILD_DIR [DEVICES] [ONLINE] [ROUNDS] [LEAD]
set -euo pipefail
build=$(realpath "${1:-build}")
devices=${2:-10000}
online=${3:-10}
rounds=${4:-2}
# the lead scaled to the devices: 100 of them a second, about half what
# the API serves here (docs/rotation.md, "How long the lead must be")
lead=${5:-$((devices / 100 > 5 ? devices / 100 : 5))}
here=$(dirname "$(realpath "$0")")
tests=$here/../../tests
source "$tests/lib/netns.sh"
source "$tests/e2e/gateway.sh"
source "$here/../rounds.sh"
netns_init
[ "$online" -ge 1 ] && [ "$online" -le 50 ] && [ "$devices" -ge "$online" ] ||
	fail "ONLINE is 1 to 50, DEVICES at least ONLINE"
[[ $lead =~ ^[0-9]+$ ]] && [ "$lead" -ge 1 ] || fail "LEAD is a number of seconds"


echo "# a gateway with a /16 VPN, $devices devices, $online of them online, a lead of $lead s"
ns_add GW gw
ns_add SVC svc
ns_add LOAD load
ns_link "$GW" 10.20.0.1/24 "$SVC" 10.20.0.10/24
ns_exec "$SVC" ip route add default via 10.20.0.1
ns_exec "$GW" ip addr add 198.18.0.1/32 dev lo
ns_exec "$GW" sysctl -qw net.ipv4.ip_forward=1
GATEWAY_API_LISTEN=0.0.0.0:8443 # the simulated devices ask at 10.64.0.1
gateway_configure
sed -i "s|address = \"10.0.0.1/24\";|address = \"10.64.0.1/16\"; resync_interval = 0; key_switch_lead = \"${lead}s\";|" \
	"$WORK/gw/meshgated.conf"
gateway_start

# the online devices: namespace CL<i> at 198.18.<i>.2, its agent
cl_ns=() cl_if=()
for i in $(seq "$online"); do
	ns_add CLNS "cl$i"
	ns_link "$GW" "198.18.$i.1/24" "$CLNS" "198.18.$i.2/24"
	ns_exec "$CLNS" ip route add default via "198.18.$i.1"
	cl_ns+=("$CLNS")
	cl_if+=("${TAG}c$i")
done
client() { # client I COMMAND [args]: meshgate of online device I
	local i=$1 cmd=$2
	shift 2
	ip netns exec "${cl_ns[$i]}" "$MESHGATE" "$cmd" --interface "${cl_if[$i]}" \
		--config-dir "$WORK/c$i/etc" --state-dir "$WORK/c$i/run" "$@"
}
for i in $(seq 0 $((online - 1))); do
	code=$(ctl user add "online$i" --role developer --json | json_field code)
	client "$i" up --server https://198.18.0.1:8443 --ca "$STATE/ca.pem" --backend userspace \
		"$code" >"$WORK/up$i.log" 2>&1 || fail "device $i: $(cat "$WORK/up$i.log")"
done

start=$(date +%s.%N)
"$build/bench/preload/bench_preload" "$WORK/gw/bus.sock" $((devices - online)) sim 8
echo "# preload: $((devices - online)) devices in $(echo "$(date +%s.%N) - $start" | bc) s"
peers() { [ "$(ns_exec "$GW" wg show "$WG_IF" peers | wc -l)" = "$devices" ]; }
wait_for 120 peers || fail "the interface has $(ns_exec "$GW" wg show "$WG_IF" peers | wc -l) peers"

# the simulated devices' tunnel addresses: the load generator's own, one
# router hop away from the gateway (one neighbour entry each side)
ctl --json device list | python3 -c '
import json, sys
for d in json.load(sys.stdin)["devices"]:
    if d.get("user", "").startswith("sim") and d.get("address"):
        print(d["address"].split("/")[0])' >"$WORK/sim.txt"
ns_link "$GW" 192.0.2.1/30 "$LOAD" 192.0.2.2/30 "${TAG}lg" "${TAG}l"
sed "s|.*|route add &/32 via 192.0.2.2 dev ${TAG}lg|" "$WORK/sim.txt" | ip -n "$GW" -batch -
sed "s|.*|addr add &/32 dev lo|" "$WORK/sim.txt" | ip -n "$LOAD" -batch -
ns_exec "$LOAD" ip route add 10.64.0.1/32 via 192.0.2.1 dev "${TAG}l"
echo "# $(wc -l <"$WORK/sim.txt") simulated devices on the load generator"

hex_of() { base64 -d <<<"$1" | od -An -tx1 | tr -d ' \n'; }
# The neighbour entries, every second until $WORK/neigh.stop: the most in
# the gateway's namespace, and in the machine's one table (every
# namespace's: /proc/net/stat/arp_cache counts the table, which is shared),
# and how often the table was full meanwhile (its table_fulls, summed over
# the CPUs: any namespace's overflow counts).
table_fulls() {
	local n=0 f
	while read -r -a f; do
		if [[ ${f[0]} =~ ^[0-9a-f]+$ ]]; then n=$((n + 16#${f[12]})); fi
	done </proc/net/stat/arp_cache
	echo $n
}
neigh_sample() {
	local gw=0 all=0 n fulls
	fulls=$(table_fulls)
	while [ ! -e "$WORK/neigh.stop" ]; do
		n=$(ip -n "$GW" neigh show | wc -l)
		gw=$((n > gw ? n : gw))
		n=$((16#$(awk 'NR == 2 { print $1 }' /proc/net/stat/arp_cache)))
		all=$((n > all ? n : all))
		sleep 1
	done
	echo "$gw $all $(($(table_fulls) - fulls))" >"$WORK/neigh.out"
}
# one round: $1 = ours | naive; appends to the figures' arrays
ROUND_S=$((lead + 9))
round() {
	local mode=$1 new lost=0 sent received out i pids=() per_device="" renews log
	rm -f "$WORK"/{watch,load,neigh,agents}.{ready,go,out,stop}
	touch "$WORK/agents.out"
	neigh_sample &
	local neigh=$!
	# ours: nothing to see before the lead is over
	python3 "$here/watch.py" $((ROUND_S - 2)) $([ "$mode" = ours ] && echo $((lead - 1)) || echo 0) \
		"$WORK/watch.ready" "$WORK/watch.go" "$WG_IF" "${cl_if[@]}" >"$WORK/watch.out" &
	local watch=$!
	ip netns exec "$LOAD" python3 "$here/configs.py" "$WORK/load.ready" "$WORK/load.go" \
		"$STATE/ca.pem" 10.64.0.1:8443 64 "$lead" "$WORK/sim.txt" >"$WORK/load.out" &
	local load=$!
	bg_track $neigh
	bg_track $watch
	bg_track $load
	wait_for 120 test -e "$WORK/watch.ready" -a -e "$WORK/load.ready" ||
		fail "the watcher or the load generator did not start"
	for i in $(seq 0 $((online - 1))); do
		ip netns exec "${cl_ns[$i]}" ping -i 0.01 -c $((ROUND_S * 100)) -W 1 10.20.0.10 \
			>"$WORK/ping$i.out" 2>&1 &
		bg_track $!
		pids+=($!)
	done
	sleep 1
	if [ "$mode" = ours ]; then
		out=$(ctl key rotate --gateway) || fail "key rotate --gateway: $out"
		new=$(sed -n 's/.*(public key \([^)]*\)).*/\1/p' <<<"$out")
	else
		(umask 077 && wg genkey >"$WORK/next.key")
		new=$(wg pubkey <"$WORK/next.key")
	fi
	hex_of "$new" >"$WORK/watch.key" && mv "$WORK/watch.key" "$WORK/watch.go"
	touch "$WORK/load.go" # the simulated devices re-read their config now
	if [ "$mode" = naive ]; then
		ns_exec "$GW" wg set "$WG_IF" private-key "$WORK/next.key"
		for i in $(seq 0 $((online - 1))); do
			(
				sed -i "s|^PublicKey = .*|PublicKey = $new|" "$WORK/c$i/etc/${cl_if[$i]}.conf"
				client "$i" down >/dev/null 2>&1
				client "$i" up --backend userspace --no-agent >/dev/null 2>&1
			) &
			pids+=($!)
		done
	fi
	wait $watch $load "${pids[@]}" # the pings and the re-imports too
	touch "$WORK/neigh.stop"
	wait $neigh
	read -r switch_ms all_ms <"$WORK/watch.out"
	read -r reads reads_ok reads_s reads_in_lead <"$WORK/load.out"
	read -r neigh_gw neigh_all neigh_fulls <"$WORK/neigh.out"
	for i in $(seq 0 $((online - 1))); do
		sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$WORK/ping$i.out")
		received=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$WORK/ping$i.out")
		lost=$((lost + ${sent:-0} - ${received:-0}))
		per_device+=" $((${sent:-0} - ${received:-0}))"
		# which: their sequence numbers (about 100 a second from 1 s before
		# the rotation was asked)
		if [ "${sent:-0}" != "${received:-0}" ]; then
			per_device+="(seq $(python3 -c '
import re, sys
text = open(sys.argv[1]).read()
got = {int(n) for n in re.findall(r"icmp_seq=(\d+) ttl=", text)}
lost = [n for n in range(1, int(sys.argv[2]) + 1) if n not in got]
runs = []
for n in lost:
    if runs and runs[-1][1] == n - 1:
        runs[-1][1] = n
    else:
        runs.append([n, n])
print(",".join(str(a) if a == b else "%d-%d" % (a, b) for a, b in runs))' \
				"$WORK/ping$i.out" "$sent"))"
		fi
		# the agents' sets anew after the switch (client/agent.c), counted
		# in this round's part of their logs
		log=$WORK/c$i/run/${cl_if[$i]}.agent.log
		if [ -e "$log" ]; then
			tail -c +$((${log_at[$i]:-0} + 1)) "$log" | grep -E "next key|new key" |
				sed "s/^/    device $i: /" >>"$WORK/agents.out" || true
			log_at[$i]=$(stat -c %s "$log")
		fi
	done
	renews=$(grep -c "new key yet: its peer set anew" "$WORK/agents.out" || true)
	local follow=$((all_ms < 0 || switch_ms < 0 ? (ROUND_S - 2) * 1000 : all_ms - switch_ms))
	echo "$mode: gateway switched at +${switch_ms} ms, every online device on the new key" \
		"at +${all_ms} ms (${follow} ms after the switch), $lost of $((online * ROUND_S * 100))" \
		"pings lost; $reads_ok of $reads simulated config reads in $reads_s s" \
		"($reads_in_lead within the lead); neighbour entries at most $neigh_gw in the" \
		"gateway's namespace, $neigh_all on the machine (table full $neigh_fulls times);" \
		"lost per device:$per_device;" \
		"$renews sets anew of a switched peer by the agents"
	cat "$WORK/agents.out"
	eval "${mode}_follow+=($follow) ${mode}_lost+=($lost)"
}

ours_follow=() ours_lost=() naive_follow=() naive_lost=() log_at=()
for r in $(seq "$rounds"); do
	round ours
done
# the naive rounds last: they leave the gateway's record behind its interface
for r in $(seq "$rounds"); do
	round naive
done

figure "timed switch: gateway's switch to every online device on it" ms "${ours_follow[@]}"
figure "timed switch: pings lost (all online devices)" pings "${ours_lost[@]}"
figure "naive: key set to every online device re-imported" ms "${naive_follow[@]}"
figure "naive: pings lost (all online devices)" pings "${naive_lost[@]}"
table_row "gateway key rotation, $devices devices, $online online pinging every 10 ms: switch to all online devices on the new key" \
	ms "naive (set the key, every device re-imports)" "${ours_follow[*]}" "${naive_follow[*]}"
sum() { local t=0 v; for v in "$@"; do t=$((t + v)); done; echo $t; }
echo "TABLE|gateway key rotation: pings lost over $rounds rounds ($online devices pinging every 10 ms)|$(sum "${ours_lost[@]}") pings|naive: $(sum "${naive_lost[@]}") pings|n/a|n/a|$rounds"
