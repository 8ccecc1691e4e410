#!/bin/bash
# The API under attack, in namespaces with real TCP and TLS (issue 10 items 1, 3):
#
#   cl ns (198.18.0.2) --- gw ns (198.18.0.1 | 203.0.113.1) --- atk ns (203.0.113.2,
#                           meshgated: wireguard, preauth, api     10.66.1.2 .. 10.66.50.2)
#
# 1. 400 slow connections from 50 addresses in 50 networks (idle TCP, and TLS
#    with a head sent one byte a second), more than the 256 slots, while a
#    real client redeems and registers 15 devices: every request is answered,
#    and the p99 of their times is under 1 s.
# 2. A flood of 10,000 refused redeems: the log keeps the first line of each
#    reason, suppresses the rest and says how many; bytes per hour printed.
# usage: slow_attack.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
TOOL=$here/slow_client.py
source "$here/../lib/netns.sh"
source "$here/../e2e/gateway.sh"
netns_init

ns_add GW gw
ns_add CL cl
ns_add ATK atk
ns_link "$GW" 198.18.0.1/24 "$CL" 198.18.0.2/24
ns_link "$GW" 203.0.113.1/24 "$ATK" 203.0.113.2/24
sources=()
for k in $(seq 1 50); do
	ns_exec "$ATK" ip addr add "10.66.$k.2/32" dev lo
	sources+=("10.66.$k.2")
done
ns_exec "$ATK" ip route add 198.18.0.0/24 via 203.0.113.1
ns_exec "$GW" ip route add 10.66.0.0/16 via 203.0.113.2
ns_exec "$CL" ip route add 203.0.113.0/24 via 198.18.0.1

STATE=$WORK/gw/state
WG_IF=${TAG}w
mkdir -p "$WORK/gw"
# the api's limits are the defaults: 256 connections, 16 an address
cat >"$WORK/gw/meshgated.conf" <<CONF
state_dir = "$STATE";
socket = "$WORK/gw/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["wireguard", "preauth", "api"];
wireguard = { interface = "$WG_IF"; backend = "userspace"; address = "10.0.0.1/24";
              endpoint = "198.18.0.1:51820"; };
preauth = { networks = ["10.20.0.0/24"]; };
api = { listen = "0.0.0.0:8443"; names = ["198.18.0.1"]; };
CONF
gateway_start
LOG=$WORK/gw/meshgated.log

echo "-- 1. 400 slow connections from 50 addresses while a real client onboards"
for i in $(seq 1 15); do
	ctl user add "u$i" --role developer --json | json_field code
done >"$WORK/codes"
[ "$(wc -l <"$WORK/codes")" = 15 ] || fail "codes: $(cat "$WORK/codes")"
ns_exec "$ATK" timeout 60 /usr/bin/python3 "$TOOL" attack 198.18.0.1 8443 \
	"$(
		IFS=,
		echo "${sources[*]}"
	)" 400 40 &
ATTACK_PID=$!
bg_track $ATTACK_PID
sleep 8 # every slot taken, and more waiting
open=$(ns_exec "$GW" ss -Htn state established '( sport = :8443 )' | wc -l)
echo "connections open at the gateway's port: $open"
[ "$open" -ge 200 ] || fail "the attack did not take the slots ($open open)"
out=$(ns_exec "$CL" /usr/bin/python3 "$TOOL" real 198.18.0.1 8443 "$STATE/ca.pem" "$WORK/codes") ||
	{
		echo "$out"
		fail "the real client was not served under the attack"
	}
echo "$out" | tail -2
p99=$(sed -n 's/^p99 //p' <<<"$out")
[ "$p99" -lt 1000 ] || fail "real-client p99 $p99 ms under the slow attack (goal: under 1 s)"
kill "$ATTACK_PID" 2>/dev/null || true
wait "$ATTACK_PID" 2>/dev/null || true
echo "real-client p99 under the slow attack: $p99 ms: ok"

echo "-- 2. 10,000 refused redeems: the log is bounded"
before=$(wc -c <"$LOG")
start=$(date +%s.%N)
statuses=$(ns_exec "$CL" /usr/bin/python3 "$TOOL" flood 198.18.0.1 8443 "$STATE/ca.pem" 10000)
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
echo "statuses: $statuses in ${elapsed}s"
kill -TERM "$GW_PID" # the counts still untold are written at exit
wait "$GW_PID" 2>/dev/null || true
tail -c +"$((before + 1))" "$LOG" >"$WORK/flood.log"
lines=$(grep -c 'redeem from 198.18.0.2' "$WORK/flood.log" || true)
bytes=$(grep 'redeem from 198.18.0.2\|suppressed' "$WORK/flood.log" | wc -c)
echo "log lines of the flood: $lines ($bytes bytes) for 10000 refused requests"
grep 'suppressed' "$WORK/flood.log" | head -5
[ "$lines" -le 40 ] || fail "$lines log lines for 10000 refused requests"
grep -q 'api\] preauth.redeem from 198.18.0.2: ' "$WORK/flood.log" || fail "no first line of the api"
grep -q 'preauth\] failed redeem from 198.18.0.2' "$WORK/flood.log" ||
	grep -q 'api\] preauth.redeem from 198.18.0.2: 4' "$WORK/flood.log" || fail "no refusal line"
grep -qE 'suppressed [0-9]+ similar messages \(preauth.redeem 198.18.0.2 ' "$WORK/flood.log" ||
	fail "no count of the suppressed lines"
# An upper bound: the flood is shorter than the limiter's minute, so its
# lines are what one minute of it writes, and an hour is at most 60 of those.
per_hour=$((bytes * 60))
echo "log bytes per hour under a flood from one address: at most $per_hour (was ~1 GB)"
echo "PASS"
