#!/bin/bash
# A brute force of codes over HTTPS from many addresses, as issue 10 found
# it: a fresh address every 10 guesses, 1000 addresses in four /24s of an
# attacker's namespace. Meanwhile a real employee runs `meshgate up` with
# a valid code from another network and gets in. Prints the guesses per
# second the gateway heard (answered other than 429), the figure of
# "guesses per second allowed globally", and checks it against the
# budget: global_failures (120 a minute, a full bucket to start), plus
# one guess a minute per network once it is spent.
#
#   atk ns (198.19.1-4.1-250) --- gw ns (198.19.0.1/16 | 198.18.0.1) --- cl ns
# usage: brute_force.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/gateway.sh"
netns_init

gateway_up
ns_add ATK atk
ns_link "$GW" 198.19.0.1/16 "$ATK" 198.19.0.2/16 "${TAG}g" "${TAG}a"
for net in 1 2 3 4; do
	for host in $(seq 1 250); do echo "addr add 198.19.$net.$host/16 dev ${TAG}a"; done
done >"$WORK/addrs"
ip -n "$ATK" -batch "$WORK/addrs"
ns_exec "$ATK" ip route add 198.18.0.0/24 via 198.19.0.1
NETWORKS=4

code=$(ctl user add alice --role developer --json | json_field code)
[ -n "$code" ] || fail "no code from user add"

# worker N: the addresses N, N+WORKERS, ... (the four networks in turn);
# 10 guesses each (one curl, one connection), until the deadline
WORKERS=4
DURATION=20
attacker() {
	local n=$1 deadline=$2 i=0 args=()
	for _ in $(seq 10); do args+=(-o /dev/null --url https://198.18.0.1:8443/api/v1/redeem); done
	for ((a = n; ; a += WORKERS)); do
		[ "$(date +%s)" -lt "$deadline" ] || break
		local k=$((a % 1000))
		ip netns exec "$ATK" curl -s -w '%{http_code}\n' --max-time 10 \
			--interface "198.19.$((k % 4 + 1)).$((k / 4 % 250 + 1))" --cacert "$STATE/ca.pem" \
			-H 'Content-Type: application/json' \
			-d '{"code": "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG"}' "${args[@]}" || true
		i=$((i + 1))
	done >"$WORK/attack.$n"
}

echo "-- the attack: $WORKERS workers for $DURATION s, a fresh address every 10 guesses"
start=$(date +%s.%N)
deadline=$(($(date +%s) + DURATION))
pids=()
for n in $(seq 0 $((WORKERS - 1))); do
	attacker "$n" "$deadline" &
	pids+=($!)
	bg_track $!
done

sleep 5
echo "-- meanwhile the employee runs meshgate up from another network"
up_out=$(client_up "$CL" "${TAG}c" "$code") || fail "meshgate up during the attack: $up_out"
echo "$up_out" | tail -3
ctl device list | grep -q ' active ' || fail "the device is not active"

wait "${pids[@]}"
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
cat "$WORK"/attack.* >"$WORK/attack"
tried=$(wc -l <"$WORK/attack")
heard=$(grep -c '^404$' "$WORK/attack" || true)
sort "$WORK/attack" | uniq -c
printf 'guesses per second allowed globally: %.1f (%d heard of %d tried in %.1f s: %.0f tried/s)\n' \
	"$(echo "$heard / $elapsed" | bc -l)" "$heard" "$tried" "$elapsed" "$(echo "$tried / $elapsed" | bc -l)"
[ "$(grep -cvE '^(404|429)$' "$WORK/attack")" = 0 ] || fail "answers other than 404 and 429"
# 120 a minute from a full bucket of 120, plus one per network a minute
# once it is spent
bound=$(echo "120 + 2 * $elapsed + $NETWORKS * (1 + $elapsed / 60)" | bc)
bound=${bound%.*}
[ "$tried" -gt $((2 * bound)) ] || fail "the attack was too slow to tell anything ($tried guesses)"
[ "$heard" -le "$bound" ] || fail "$heard guesses heard, more than the budget's $bound"
grep -q 'failed redeems or registers within a minute from all sources' "$WORK/gw/meshgated.log" ||
	fail "no warning that the global budget was spent"
echo "brute force: all checks passed"
