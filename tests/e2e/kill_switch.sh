#!/bin/bash
# The kill switch, end to end, with real WireGuard and real packets
# (topology in tunnel_lib.sh). A developer's device, split tunnel, `meshgate
# up --kill-switch`:
#
# - tunnel working: the gate is open, the internet is reached straight out;
# - WireGuard dropped on the gateway (its UDP port): within a few seconds a
#   ping to the internet fails, the gateway's endpoint is still reached
#   (the client's packets arrive at the gateway's drop rule), status says
#   blocking; WireGuard back: traffic resumes;
# - the agent killed (-9): within a few seconds the internet is blocked
#   (the gate closes without it); an agent again (`meshgate agent`):
#   traffic resumes;
# - `meshgate down`: no trace left (nft, iptables, ip rules and routes);
# - a full tunnel with the kill switch: armed, nothing outside the tunnel.
# usage: kill_switch.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/gateway.sh"
source "$here/tunnel_lib.sh"
netns_init
tunnel_gateway_up

before=$(client_traces)

# seconds (tenths) until cmd fails, at most 10 s
time_until_fails() {
	local start=$SECONDS
	for _ in $(seq 50); do
		"$@" || {
			echo $((SECONDS - start))
			return 0
		}
		sleep 0.2
	done
	return 1
}
blocked() { ! reaches_internet; }
drops_seen() { # packets the gateway's drop rule for WireGuard's port caught
	ns_exec "$GW" iptables -L INPUT -v -n -x | awk '/udp dpt:51820/ {print $1; exit}'
}

echo "-- split tunnel with the kill switch"
CLIENT_UP_OPTS=(--kill-switch)
out=$(client_up "$CL" "$IF" "$(new_code kim developer)") || fail "up failed: $out"
grep -q "kill switch armed" <<<"$out" || fail "up does not say the kill switch is armed: $out"
grep -q '^# MeshgateKillSwitch = yes$' "$WORK/cl/etc/$IF.conf" || fail "the choice is not saved"
wait_for 5 reaches_internet || fail "tunnel up: the internet is blocked"
[ "$(status_field kill_switch)" = open ] || fail "status: kill_switch $(status_field kill_switch)"
[ "$(seen_from_internet)" = 198.18.0.2 ] || fail "split: the internet saw $(seen_from_internet)"
echo "tunnel working: gate open, the internet straight out: ok"

echo "-- WireGuard dropped on the gateway"
ns_exec "$GW" iptables -I INPUT -p udp --dport 51820 -j DROP
took=$(time_until_fails reaches_internet) || fail "the internet is still reached 10 s after the tunnel dropped"
echo "the internet blocked ${took} s after the tunnel dropped"
[ "$(status_field kill_switch)" = blocking ] || fail "status: kill_switch $(status_field kill_switch)"
n1=$(drops_seen)
sleep 1
n2=$(drops_seen)
[ "$n2" -gt "$n1" ] || fail "no packet reached the gateway's endpoint while blocked ($n1, $n2)"
echo "blocked, the gateway's endpoint still reached ($((n2 - n1)) packets in 1 s): ok"
ns_exec "$GW" iptables -D INPUT -p udp --dport 51820 -j DROP
wait_for 10 reaches_internet || fail "the tunnel is back but the internet stays blocked"
echo "WireGuard back: traffic resumes: ok"

echo "-- the agent killed"
agent=$(cat "$WORK/cl/run/$IF.agent.pid")
kill -9 "$agent"
took=$(time_until_fails reaches_internet) || fail "the internet is still reached 10 s after the agent died"
echo "the internet blocked ${took} s after the agent died"
ns_exec "$CL" ping -c 1 -W 2 10.0.0.1 >/dev/null || fail "the tunnel itself stopped working"
ns_exec "$CL" "$MESHGATE" agent --interface "$IF" "${CLIENT_DIRS[@]}" >>"$WORK/agent.log" 2>&1 &
bg_track $!
wait_for 10 reaches_internet || fail "an agent again, but the internet stays blocked"
echo "the agent back: traffic resumes: ok"

client down >/dev/null
[ "$(client_traces)" = "$before" ] || fail "down left traces: $(diff <(echo "$before") <(client_traces))"
reaches_internet || fail "down: the internet is blocked"
echo "down: no trace left, the internet reached: ok"

echo "-- a full tunnel with the kill switch"
out=$(client up --backend userspace --full-tunnel) || fail "up failed: $out"
wait_for 5 reaches_internet || fail "full tunnel: the internet is not reached"
[ "$(status_field kill_switch)" = armed ] || fail "status: kill_switch $(status_field kill_switch)"
[ "$(seen_from_internet)" = 203.0.113.1 ] || fail "full: the internet saw $(seen_from_internet)"
ns_exec "$GW" iptables -I INPUT -p udp --dport 51820 -j DROP
time_until_fails reaches_internet >/dev/null || fail "full tunnel: the internet reached with the tunnel down"
# nothing leaves outside the tunnel: not even straight to the internet host
ns_exec "$CL" ping -c 1 -W 1 -I 198.18.0.2 203.0.113.10 >/dev/null 2>&1 && fail "a ping left outside the tunnel"
ns_exec "$GW" iptables -D INPUT -p udp --dport 51820 -j DROP
client down --forget >/dev/null
[ "$(client_traces)" = "$before" ] || fail "down left traces"
echo "full tunnel: armed, nothing outside the tunnel, no trace after down: ok"
echo "PASS"
