#!/bin/bash
# Path MTU discovery through a "hotspot" (tests/e2e/hotspot.sh: a router
# whose uplink has MTU 1300, that drops fragments and black-holes ICMP
# "fragmentation needed"), end to end, real WireGuard:
# - `meshgate up --mtu 1420` (WireGuard's default, discovery off): a 1 MB
#   download through the tunnel stalls (curl --max-time fails);
# - `meshgate up` (the agent finds the path MTU): the download completes;
#   the MTU chosen is printed, must be 1300 - 60 down to a multiple of 16
#   (WireGuard pads to 16), 1232, and the gateway has the
#   device's route with that MTU;
# - the uplink becomes a clean 1500 link: the agent's raise timer (3 s
#   here) finds it and raises the MTU to 1440; the time it took is printed.
# usage: pmtu.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/gateway.sh"
source "$here/hotspot.sh"
netns_init
[ "${KEEP_WORK:-0}" != 1 ] || echo "work dir: $WORK"
for tool in wireguard-go curl nft python3; do
	command -v "$tool" >/dev/null || fail "needs $tool"
done

hotspot_up 1300

echo "-- fixed MTU 1420 (meshgate up --mtu 1420): the download stalls"
code=$(ctl user add hana --role developer --json | json_field code)
[ -n "$code" ] || fail "no code"
export MESHGATE_PMTU_RAISE_MS=3000
client up --server https://198.18.0.1:8443 --ca "$STATE/ca.pem" --backend userspace \
	--mtu 1420 "$code" >"$WORK/up.log" 2>&1 || fail "meshgate up --mtu 1420: $(cat "$WORK/up.log")"
[ "$(link_mtu)" = 1420 ] || fail "the tunnel's MTU is $(link_mtu), not 1420"
[ "$(path_mtu state)" = fixed ] || fail "path_mtu state $(path_mtu state), not fixed"
ns_exec "$CL" ping -c1 -W2 10.0.0.1 >/dev/null || fail "no small ping through the tunnel"
if download 6 2>"$WORK/curl.err"; then
	fail "1 MB came through the hotspot at MTU 1420: the black hole is not one"
fi
echo "   stalled as expected: $(cat "$WORK/curl.err")"
client down >/dev/null || fail "meshgate down"

echo "-- meshgate up (path MTU discovery): the agent finds the path, the download completes"
t0=$(ms)
client up --backend userspace >"$WORK/up2.log" 2>&1 || fail "meshgate up: $(cat "$WORK/up2.log")"
wait_for 30 path_is 1300 ||
	fail "no path MTU of 1300 found: $(path_mtu path), $(path_mtu state); $(cat "$WORK/cl/run/$IF.agent.log")"
found=$(path_mtu path) mtu=$(path_mtu mtu) at=$(path_mtu at)
echo "   the agent chose MTU $mtu (path $found) $((at - t0)) ms after meshgate up began"
[ "$mtu" = 1232 ] && [ "$(link_mtu)" = 1232 ] || fail "tunnel MTU $mtu / $(link_mtu), not 1232"
t1=$(ms)
download 15 2>"$WORK/curl.err" || fail "the download failed at MTU $mtu: $(cat "$WORK/curl.err")"
echo "   1 MB downloaded in $(($(ms) - t1)) ms"
client status | grep -q "path MTU: tunnel MTU 1232, .*path 1300, found" ||
	fail "meshgate status does not show the path MTU: $(client status)"
# the agent tells the gateway: a route of the device's own with that MTU
addr=$(sed -n 's/^Address = \([0-9.]*\).*/\1/p' "$WORK/cl/etc/$IF.conf")
wait_for 5 sh -c "ip -n $GW route show $addr | grep -q 'mtu 1232'" ||
	fail "the gateway has no route MTU for $addr: $(ip -n "$GW" route show)"
echo "   the gateway routes $addr with mtu 1232"

echo "-- the uplink becomes a clean 1500 link: the agent raises the MTU"
t0=$(ms)
uplink_mtu 1500
wait_for 30 path_is 1500 ||
	fail "the MTU was not raised: $(path_mtu path); $(tail -5 "$WORK/cl/run/$IF.agent.log")"
echo "   raised to MTU $(path_mtu mtu) (path 1500) $(($(path_mtu at) - t0)) ms after the change (raise timer 3 s)"
[ "$(link_mtu)" = 1440 ] || fail "tunnel MTU $(link_mtu), not 1440"
download 15 2>"$WORK/curl.err" || fail "the download failed at MTU 1440: $(cat "$WORK/curl.err")"
wait_for 5 sh -c "! ip -n $GW route show $addr | grep -q mtu" ||
	fail "the gateway kept a route MTU for $addr: $(ip -n "$GW" route show "$addr")"

client down >/dev/null || fail "meshgate down"
echo "pmtu: all checks passed"
