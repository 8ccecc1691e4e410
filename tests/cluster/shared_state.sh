#!/bin/bash
# Three gateways, one network: state shared through a three-member etcd
# (cluster_lib.sh draws the namespaces). Checks, with real etcd, real
# WireGuard (wireguard-go), real HTTPS and dig:
# - a user made on gw1, the code redeemed through gw2's API, the device
#   registered there: a WireGuard peer on all three within 1 s, its name
#   answered by all three's DNS;
# - 60 concurrent redeems of one code over the three APIs: exactly one
#   wins; 300 devices onboarded in parallel through all three: no address
#   twice, every device everywhere;
# - a role change made on gw3 reaches gw1's firewall;
# - kill -9 of gw2 during a stream of onboardings through it (from cl2:
#   cl1 is rate limited by then, having lost 59 races): every
#   acknowledged device exists cluster-wide with its own address;
# - two of three etcd members stopped: the tunnels still carry traffic, a
#   redeem gets a 503 and consumes nothing; the members back: onboarding
#   works again without a restart of meshgated.
# usage: shared_state.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/../lib/etcd.sh"
source "$here/cluster_lib.sh"
netns_init
etcd_init
[ "${KEEP_WORK:-0}" != 1 ] || echo "work dir: $WORK"
for tool in wireguard-go wg dig curl etcd; do
	command -v "$tool" >/dev/null || fail "needs $tool"
done

echo "-- three gateways, three etcd members"
cluster_up
for i in 1 2 3; do
	ctln "$i" --json status | grep '"writable": *true' >/dev/null || fail "gw$i: cluster not writable"
done

on_all_three() {
	peer_on 1 "$1" && peer_on 2 "$1" && peer_on 3 "$1"
}

echo "-- a user made on gw1, redeemed and registered through gw2"
code=$(ctln 1 user add alice --role developer --json | json_field code)
[ -n "$code" ] || fail "no code from gw1"
redeem_register 2 "$code" alice-laptop
start=$(date +%s%N)
wait_for 5 on_all_three "$DEV_PUB" || fail "alice's device is not a peer on all three gateways"
echo "   a peer on all three after $((($(date +%s%N) - start) / 1000000)) ms"
wait_for 1 on_all_three "$DEV_PUB" || fail "not on all three within 1 s"
for i in 1 2 3; do
	wait_for 2 name_on "$i" alice-laptop.corp.internal "${DEV_IP%/32}" ||
		fail "gw$i's DNS does not answer alice-laptop.corp.internal with ${DEV_IP%/32}"
done
echo "   its name answers on all three"

echo "-- 60 concurrent redeems of one code over the three APIs: exactly one wins"
code=$(ctln 3 user add bob --role developer --json | json_field code)
: >"$WORK/statuses"
pids=()
for n in $(seq 60); do
	i=$((n % 3 + 1))
	ip netns exec "$CL1" curl -s -o /dev/null -w '%{http_code}\n' --max-time 15 \
		--cacert "$WORK/gw$i/state/ca.pem" -H 'Content-Type: application/json' \
		-d "{\"code\": \"$code\"}" "https://198.18.0.$i:8443/api/v1/redeem" >>"$WORK/statuses" &
	pids+=($!)
done
wait "${pids[@]}" || true
sort "$WORK/statuses" | uniq -c
[ "$(grep -c '^200$' "$WORK/statuses")" = 1 ] || fail "not exactly one redeem won"
[ "$(grep -cvE '^(200|409|429)$' "$WORK/statuses")" = 0 ] || fail "unexpected statuses"
one_device_of() { [ "$(ctln "$1" device list --json --user "$2" | grep -c '"id"')" = 1 ]; }
for i in 1 2 3; do
	wait_for 2 one_device_of "$i" bob || fail "gw$i does not see exactly one device of bob"
done

echo "-- 300 devices onboarded in parallel through all three: no address twice"
for n in $(seq 300); do
	ctln $((n % 3 + 1)) user add "u$n" --role developer --json | json_field code
done >"$WORK/codes"
[ "$(grep -c . "$WORK/codes")" = 300 ] || fail "not 300 codes"
onboard_one() { # N CODE: redeem through gwN (any answer kept, one line)
	ip netns exec "$CL2" curl -sS --max-time 20 --cacert "$WORK/gw$1/state/ca.pem" \
		-H 'Content-Type: application/json' -d "{\"code\": \"$2\"}" \
		"https://198.18.0.$1:8443/api/v1/redeem" 2>&1 || printf ' (through gw%s)' "$1"
	echo
}
export -f onboard_one
export WORK CL2
nl -ba "$WORK/codes" | awk '{print ($1 % 3 + 1), $2}' |
	xargs -P 24 -n 2 bash -c 'onboard_one "$0" "$1"' >"$WORK/redeemed"
ok=$(grep -c '"address"' "$WORK/redeemed" || true)
[ "$ok" = 300 ] ||
	fail "$((300 - ok)) redeems failed: $(grep -v '"address"' "$WORK/redeemed" | grep . | sort | uniq -c | head -5)"
grep -o '"address": *"[^"]*"' "$WORK/redeemed" | sort | uniq -d >"$WORK/dups"
[ ! -s "$WORK/dups" ] || fail "addresses handed out twice: $(head -3 "$WORK/dups")"
device_count() { ctln "$1" device list --json | grep -c '"id"'; }
has_devices() { [ "$(device_count "$1")" = "$2" ]; }
for i in 1 2 3; do
	wait_for 5 has_devices "$i" 302 || fail "gw$i lists $(device_count "$i") devices, not 302"
done
echo "   300 distinct addresses; every gateway lists every device"

echo "-- a burst larger than one etcd transaction: committed in parts"
# gw2 takes etcd transactions of 16 keys (cluster_lib), a redeem compares
# 5: 8 clients at once on its bus (users, redeems, registers) fill group
# commits that must be split
"$build/bench/preload/bench_preload" "$WORK/gw2/bus.sock" 40 burst 8 >/dev/null ||
	fail "a burst of 40 onboardings through gw2's bus failed"
grep -q "committed in parts" "$WORK/gw2/meshgated.log" || fail "gw2 never split a group commit"
for i in 1 2 3; do
	wait_for 5 has_devices "$i" 342 || fail "gw$i lists $(device_count "$i") devices, not 342"
done
ctln 1 device list --json | grep -o '"address": *"[^"]*"' | sort | uniq -d >"$WORK/dups"
[ ! -s "$WORK/dups" ] || fail "addresses handed out twice: $(head -3 "$WORK/dups")"
echo "   40 more devices, every one on every gateway, no address twice"

echo "-- a role change made on gw3 reaches gw1's firewall"
ipset_has() { # N SET ADDRESS
	local ns
	eval "ns=\$GW$1"
	ns_exec "$ns" ipset test "$2" "$3" >/dev/null 2>&1
}
alice_ip=$(ctln 1 device list --json --user alice | json_field address)
alice_ip=${alice_ip%/32}
wait_for 2 ipset_has 1 MESHGATE-developer "$alice_ip" || fail "alice not in gw1's developer set"
ctln 3 user set-role alice admin >/dev/null
wait_for 2 ipset_has 1 MESHGATE-admin "$alice_ip" || fail "the role change on gw3 did not reach gw1's firewall"
ipset_has 1 MESHGATE-developer "$alice_ip" && fail "alice still in gw1's developer set"
echo "   gw1 moved alice to the admin set"

echo "-- kill -9 of gw2 during onboardings through it: nothing acknowledged is lost"
for n in $(seq 80); do ctln 1 user add "k$n" --role developer --json | json_field code; done >"$WORK/kcodes"
: >"$WORK/kacked"
(
	while read -r code; do
		out=$(ip netns exec "$CL2" curl -s --max-time 3 --cacert "$WORK/gw2/state/ca.pem" \
			-H 'Content-Type: application/json' -d "{\"code\": \"$code\"}" \
			https://198.18.0.2:8443/api/v1/redeem) || continue
		grep -q '"address"' <<<"$out" && echo "$out" >>"$WORK/kacked"
	done <"$WORK/kcodes"
) &
stream=$!
sleep 1
gw_kill9 2
wait "$stream" || true
acked=$(grep -c . "$WORK/kacked" || true)
[ "$acked" -gt 0 ] || fail "no onboarding was acknowledged before the kill"
# whole lists, then grep (grep -q on a pipe would end the writer early)
list1=$(ctln 1 device list --json)
list3=$(ctln 3 device list --json)
while read -r line; do
	id=$(json_field device_id <<<"$line")
	addr=$(json_field address <<<"$line")
	grep -qF "\"$id\"" <<<"$list1" || fail "acknowledged device $id lost on gw1"
	grep -qF "\"$id\"" <<<"$list3" || fail "acknowledged device $id lost on gw3"
	[ "$(grep -cF "\"$addr\"" <<<"$list1")" = 1 ] || fail "$addr not held once"
done <"$WORK/kacked"
gw_start 2
echo "   $acked acknowledged before the kill, all there on gw1 and gw3; gw2 back"

echo "-- two of three etcd members stopped: traffic goes on, writes get 503"
# a real tunnel: alice's laptop in cl1 through gw1
key=$(wg genkey)
code=$(ctln 1 code add alice --json | json_field code)
out=$(api 1 /api/v1/redeem "{\"code\": \"$code\", \"name\": \"tunnel\"}")
id=$(json_field device_id <<<"$out")
addr=$(json_field address <<<"$out")
server=$(json_field server_public_key <<<"$out")
pub=$(wg pubkey <<<"$key")
api 1 /api/v1/register "{\"device_id\": \"$id\", \"register_token\": \"$(json_field register_token <<<"$out")\", \"public_key\": \"$pub\", \"address\": \"$addr\"}" >/dev/null
echo "$key" >"$WORK/tunnel.key"
ns_exec "$CL1" wireguard-go "${TAG}c" >/dev/null 2>&1
ns_exec "$CL1" wg set "${TAG}c" private-key "$WORK/tunnel.key" peer "$server" \
	endpoint 198.18.0.1:51820 persistent-keepalive 25 allowed-ips 10.0.0.1/32
ns_exec "$CL1" ip addr add "$addr" dev "${TAG}c"
ns_exec "$CL1" ip link set "${TAG}c" up
ns_exec "$CL1" ip route add 10.0.0.1/32 dev "${TAG}c"
wait_for 5 ns_exec "$CL1" ping -c1 -W1 10.0.0.1 || fail "no traffic through the tunnel to gw1"
spare=$(ctln 2 user add carol --role developer --json | json_field code)
devices_before=$(ctln 1 device list --json | grep -c '"id"')
etcd_member_stop m2
etcd_member_stop m3
writable() { ctln "$1" --json status | grep '"writable": *true' >/dev/null; }
not_writable() { ! writable "$1"; }
wait_for 5 not_writable 1 || fail "gw1 still takes the cluster as writable"
ns_exec "$CL1" ping -c3 -i0.2 -W1 10.0.0.1 >/dev/null || fail "the tunnel stopped without quorum"
start=$(date +%s%N)
out=$(api 1 /api/v1/redeem "{\"code\": \"$spare\"}")
ms=$((($(date +%s%N) - start) / 1000000))
[ "$(tail -1 <<<"$out")" = 503 ] || fail "a redeem without quorum: $out"
grep -q '"error"' <<<"$out" || fail "the 503 has no JSON error: $out"
echo "   redeem without quorum: 503 in $ms ms"
[ "$(ctln 1 device list --json | grep -c '"id"')" = "$devices_before" ] || fail "a device appeared without quorum"
etcd_member_restart m2
etcd_member_restart m3
etcd_wait_healthy m2 20
etcd_wait_healthy m3 20
wait_for 10 writable 1 || fail "gw1 did not see the cluster writable again"
redeem_register 1 "$spare" carol-laptop
wait_for 5 on_all_three "$DEV_PUB" || fail "after quorum came back: not a peer everywhere"
echo "   quorum back: the same code redeemed, a peer on all three, no restart"
echo "shared_state: all checks passed"
