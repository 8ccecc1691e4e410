#!/bin/bash
# The data plane outlives the control plane: a device pings an internal
# service through the tunnel every 10 ms while meshgated is stopped with
# SIGTERM and started again, then killed with -9 and started again. No ping
# may be lost, and the gateway's session with the device must be the same
# one (its handshake time unchanged): the interface was adopted, not made
# anew, and its peers reconciled by a diff, not replaced.
#
#   client ns (198.18.0.2) --- gw ns (198.18.0.1 | 10.20.0.1) --- svc ns (10.20.0.10)
#                               meshgated: wireguard, preauth, api
#
# While meshgated is down, a stray peer is added to the interface and a
# second device's peer removed by hand: the next start repairs both. Last,
# with wireguard.on_stop = "remove", a stop takes the interface and its
# wireguard-go down.
# usage: restart.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/gateway.sh"
netns_init
gateway_up

COUNT=2500 # pings, 10 ms apart: 25 s, longer than the restarts take

echo "-- a device comes up with meshgate up, a second one registers"
code=$(ctl user add alice --role developer --json | json_field code)
client_up "$CL" "${TAG}c" "$code" >/dev/null || fail "meshgate up"
ns_exec "$CL" ping -c 2 -W 2 10.20.0.10 >/dev/null || fail "no ping through the tunnel"
code=$(ctl user add bob --role developer --json | json_field code)
reply=$(ctl call preauth.redeem "{\"code\": \"$code\"}")
bob_key=$(wg genkey | wg pubkey)
ctl call preauth.register "{\"device_id\": \"$(json_field device_id <<<"$reply")\", \"register_token\": \"$(json_field register_token <<<"$reply")\", \"public_key\": \"$bob_key\", \"address\": \"$(json_field address <<<"$reply")\"}" >/dev/null
wait_for 5 bash -c "ip netns exec $GW wg show $WG_IF peers | grep -qF '$bob_key'" ||
	fail "bob's device is not a peer"
alice_key=$(ns_exec "$CL" wg show "${TAG}c" public-key)

handshake() { ns_exec "$GW" wg show "$WG_IF" latest-handshakes | awk -v k="$alice_key" '$1 == k {print $2}'; }
wg_go_pid() { for p in $(ip netns pids "$GW"); do [ "$(cat /proc/"$p"/comm)" = wireguard-go ] && echo "$p"; done; }
peers_are_devices() {
	[ "$(ctl device list | awk '$5 == "active" {print $6}' | sort)" = \
		"$(ns_exec "$GW" wg show "$WG_IF" peers | sort)" ]
}

hs_before=$(handshake)
[ -n "$hs_before" ] && [ "$hs_before" != 0 ] || fail "no handshake with the device yet"
wg_pid=$(wg_go_pid)
[ -n "$wg_pid" ] || fail "no wireguard-go in the gateway's namespace"
# its own session: a signal to meshgated's process group (a terminal's ^C,
# a service manager stopping the group) does not reach it
[ "$(ps -o sid= -p "$wg_pid" | tr -d ' ')" = "$wg_pid" ] ||
	fail "wireguard-go does not lead a session of its own"

echo "-- $COUNT pings every 10 ms through the tunnel, across two restarts"
ip netns exec "$CL" ping -i 0.01 -c $COUNT -W 1 -q 10.20.0.10 >"$WORK/ping.out" 2>&1 &
ping_pid=$!
bg_track $ping_pid
sleep 2

echo "   SIGTERM to meshgated"
gateway_stop
ns_exec "$GW" ip link show "$WG_IF" >/dev/null 2>&1 || fail "SIGTERM took $WG_IF down"
# drift while the control plane is away: a stray peer, a device's peer gone
stray=$(wg genkey | wg pubkey)
ns_exec "$GW" wg set "$WG_IF" peer "$stray" allowed-ips 10.0.0.250/32
ns_exec "$GW" wg set "$WG_IF" peer "$bob_key" remove
sleep 1
echo "   start again"
gateway_start
grep -q "$WG_IF is already up: adopting it" "$WORK/gw/meshgated.log" || fail "not adopted"
peers_are_devices || fail "after the restart the peers are not the active devices"
sleep 2

echo "   kill -9 of meshgated"
gateway_kill9
sleep 1
echo "   start again"
gateway_start
peers_are_devices || fail "after the second restart the peers are not the active devices"
sleep 1

kill -0 $ping_pid 2>/dev/null || fail "ping ended before the restarts did: raise COUNT"
wait $ping_pid || true
cat "$WORK/ping.out"
sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$WORK/ping.out")
received=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$WORK/ping.out")
[ -n "$sent" ] && [ -n "$received" ] || fail "no summary from ping"
echo "lost pings across a restart: $((sent - received)) of $sent"
[ "$sent" = "$received" ] || fail "$((sent - received)) pings lost across the restarts"

[ "$(wg_go_pid)" = "$wg_pid" ] || fail "wireguard-go was replaced ($wg_pid, now $(wg_go_pid))"
hs_after=$(handshake)
[ "$hs_after" = "$hs_before" ] ||
	fail "the gateway's session with the device was renewed (handshake $hs_before, now $hs_after)"
echo "same wireguard-go ($wg_pid), same session (handshake at $hs_before), peers = active devices"

echo "-- wireguard.on_stop = \"remove\": a stop takes the interface down"
gateway_stop
sed -i 's/^wireguard = { /wireguard = { on_stop = "remove"; /' "$WORK/gw/meshgated.conf"
grep -q 'on_stop = "remove"' "$WORK/gw/meshgated.conf" || fail "cannot set on_stop"
gateway_start
gateway_stop
grep -q "removed $WG_IF (wireguard.on_stop = \"remove\")" "$WORK/gw/meshgated.log" ||
	fail "no word of the removal in the log"
ns_exec "$GW" ip link show "$WG_IF" >/dev/null 2>&1 && fail "$WG_IF is still up"
wait_for 5 bash -c "! kill -0 $wg_pid 2>/dev/null" || fail "wireguard-go still runs"
[ ! -e "/var/run/wireguard/$WG_IF.sock" ] || fail "its socket is left behind"
# a sanitizer build reports here what it found in the daemon
if grep -qE 'Sanitizer|runtime error' "$WORK/gw/meshgated.log"; then
	cat "$WORK/gw/meshgated.log"
	fail "sanitizer reports in meshgated's log"
fi
echo "restart: all checks passed"
