#!/bin/bash
# Time-limited access end to end, with real WireGuard (wireguard-go) and
# real packets (the topology of gateway.sh, with the dns plugin):
#
# - a user added with --access-until a few seconds away; a device onboards
#   with `meshgate up CODE` (its agent running); ping to the gateway address
#   works, dig names the device;
# - at the moment, measured: within ~1 s the peer is gone from the gateway's
#   interface, the ping stops, dig for the device's name is NXDOMAIN, and
#   `meshgate status` (and --json) says the access has ended and when;
# - another code of the user is refused with the same reason, and spent not;
# - `meshgatectl user set-access NAME never` brings it back: peer, ping and
#   name, and the agent's status clears by itself.
# usage: access_until.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/gateway.sh"
netns_init
for tool in wireguard-go wg dig ping date; do
	command -v "$tool" >/dev/null || fail "needs $tool"
done

GATEWAY_EXTRA_PLUGINS=', "dns"'
GATEWAY_EXTRA_CONF='dns = { listen = ["10.0.0.1:53"]; zone = "corp.internal"; };'
gateway_up
IF=${TAG}c
NAME=eve-laptop.corp.internal

echo "-- bad times are refused and add nothing"
out=$(ctl user add eve --role developer --access-until 2020-01-01T00:00Z 2>&1) &&
	fail "a time in the past was accepted: $out"
grep -q "in the past" <<<"$out" || fail "no clear error: $out"
out=$(ctl user add eve --role developer --access-until tomorrow 2>&1) &&
	fail "a malformed time was accepted: $out"
grep -q "RFC 3339" <<<"$out" || fail "no clear error: $out"
ctl user list | grep -q '^eve ' && fail "a refused user was added"

echo "-- a user whose access ends in a few seconds"
# the deadline: whole seconds, far enough for the onboarding below
end=$(($(date +%s) + 12))
until=$(date -u -d "@$end" +%Y-%m-%dT%H:%M:%SZ)
code=$(ctl user add eve --role developer --access-until "$until" --json | json_field code)
[ -n "$code" ] || fail "no code from user add"
spare=$(ctl code add eve --json | json_field code)
ctl user list | grep "^eve " | grep -q "${until/T/ }" || { ctl user list; fail "user list lacks the end"; }
ctl user list

out=$(ns_exec "$CL" "$MESHGATE" up --server "https://198.18.0.1:8443" --ca "$STATE/ca.pem" \
	--interface "$IF" --backend userspace --name eve-laptop "${CLIENT_DIRS[@]}" "$code") ||
	fail "meshgate up: $out"
ns_exec "$CL" ping -c 1 -W 2 10.0.0.1 >/dev/null || fail "ping through the tunnel"
[ -n "$(ns_exec "$CL" dig @10.0.0.1 "$NAME" +short +time=1 +tries=1)" ] || fail "$NAME not named"
[ "$(wg show "$WG_IF" peers | wc -l)" = 1 ] || fail "no peer on the gateway"
[ "$(date +%s)" -lt "$end" ] || fail "the onboarding took past the deadline: make it later"
echo "onboarded; access ends at $until"

# pings every 0.1 s through the tunnel, each reply with its time
ns_exec "$CL" ping -D -i 0.1 -W 1 10.0.0.1 >"$WORK/ping.log" 2>&1 &
bg_track $!

echo "-- the moment"
peer_gone() { [ "$(wg show "$WG_IF" peers | wc -l)" = 0 ]; }
wait_for 30 peer_gone || fail "the peer is still on the gateway"
gone_at=$(date +%s.%N)
late=$(echo "$gone_at - $end" | bc)
echo "peer gone ${late} s after the deadline"
[ "$(echo "$late < 1.5" | bc)" = 1 ] || fail "the peer went ${late} s after the deadline (> 1.5)"
ctl device list | grep -q ' expired ' || fail "the device is not expired: $(ctl device list)"

# asked from the gateway itself: the tunnel is gone
nxdomain_gw() { ip netns exec "$GW" dig @10.0.0.1 "$NAME" +time=1 +tries=1 | grep -q 'status: NXDOMAIN'; }
wait_for 3 nxdomain_gw || fail "$NAME is still named"
echo "$NAME: NXDOMAIN"

sleep 1
last=$(sed -n 's/^\[\([0-9.]*\)\].*bytes from.*/\1/p' "$WORK/ping.log" | tail -1)
[ -n "$last" ] || fail "no ping went through before the deadline"
stop_late=$(echo "$last - $end" | bc)
echo "last ping reply ${stop_late} s after the deadline"
[ "$(echo "$stop_late < 1.5" | bc)" = 1 ] || fail "pings went on ${stop_late} s after the deadline"
ns_exec "$CL" ping -c 1 -W 1 10.0.0.1 >/dev/null 2>&1 && fail "ping still works"

echo "-- the client is told why"
expired() { ns_exec "$CL" "$MESHGATE" status --interface "$IF" "${CLIENT_DIRS[@]}" | grep -q 'access: expired'; }
wait_for 10 expired || fail "meshgate status does not say why: $(ns_exec "$CL" "$MESHGATE" status --interface "$IF" "${CLIENT_DIRS[@]}")"
told_at=$(date +%s.%N)
echo "told $(echo "$told_at - $end" | bc) s after the deadline:"
ns_exec "$CL" "$MESHGATE" status --interface "$IF" "${CLIENT_DIRS[@]}" | grep 'access:'
ns_exec "$CL" "$MESHGATE" status --interface "$IF" "${CLIENT_DIRS[@]}" | grep -q "ended at $until" ||
	fail "status does not say when it ended"
json=$(ns_exec "$CL" "$MESHGATE" status --json --interface "$IF" "${CLIENT_DIRS[@]}")
python3 -c 'import json,sys; a=json.load(sys.stdin)["access"]; assert a["state"]=="expired", a; print("status --json access:", a); print("the agent learnt it %.2f s after the deadline" % (a["checked_at"] / 1000 - int(sys.argv[1])))' "$end" <<<"$json" ||
	fail "status --json: $json"

echo "-- a code of the user is refused with the reason, and not spent"
before=$(ctl device list --json | grep -c '"id"')
rc=0
out=$(ns_exec "$CL" "$MESHGATE" up --server "https://198.18.0.1:8443" --ca "$STATE/ca.pem" \
	--interface "${TAG}d" --backend userspace "${CLIENT_DIRS[@]}" "$spare" 2>&1) || rc=$?
[ "$rc" = 11 ] || fail "redeem after the end: exit $rc ($out)"
grep -q "access ended" <<<"$out" || fail "redeem after the end: $out"
echo "refused: $out"
[ "$(ctl device list --json | grep -c '"id"')" = "$before" ] || fail "a device was added"

echo "-- set-access never brings it back"
ctl user set-access eve never
back() { ns_exec "$CL" ping -c 1 -W 1 10.0.0.1 >/dev/null 2>&1; }
wait_for 10 back || fail "ping does not resume"
[ "$(wg show "$WG_IF" peers | wc -l)" = 1 ] || fail "the peer is not back"
[ -n "$(ns_exec "$CL" dig @10.0.0.1 "$NAME" +short +time=1 +tries=1)" ] || fail "$NAME not named again"
cleared() { ! expired; }
wait_for 10 cleared || fail "the agent still says expired"
ctl user list | grep "^eve " | grep -q unlimited || fail "user list: $(ctl user list)"
echo "ping, peer and name back; the agent's status cleared"

ns_exec "$CL" "$MESHGATE" down --interface "$IF" "${CLIENT_DIRS[@]}" >/dev/null || fail "meshgate down"
echo "access_until: all checks passed"
