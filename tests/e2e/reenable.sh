#!/bin/bash
# A device disabled and enabled again passes traffic again within 3 s of
# the enable (the topology of gateway.sh; the device's agent running).
#
# The disable removes the device's peer from the gateway's interface and
# the enable adds a new one, without a session. WireGuard on the device
# goes on sending on its old session, which the gateway drops, and would
# start a new handshake only after 15 s without an answer (11 s after a
# 4 s disable, measured before the agent set the peer anew). The agent,
# silent with no other node to try, sets the gateway's peer anew (one UAPI
# set), which handshakes at once (client/agent.c, renew_silent_peer).
# Twice: a disable of 4 s and one of 12 s (several sets anew meanwhile).
# usage: reenable.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/gateway.sh"
netns_init
for tool in wireguard-go wg ping bc; do
	command -v "$tool" >/dev/null || fail "needs $tool"
done
LIMIT_S=3
ok() { echo "ok   - $*"; }

gateway_up
IF=${TAG}c
code=$(ctl user add bob --role developer | sed -n 's/^code //p')
client_up "$CL" "$IF" "$code" >"$WORK/up.log" 2>&1 || fail "up: $(cat "$WORK/up.log")"
wait_for 10 ns_exec "$CL" ping -c1 -W1 10.0.0.1 >/dev/null 2>&1 || fail "no tunnel"
ns_exec "$CL" "$MESHGATE" status --interface "$IF" "${CLIENT_DIRS[@]}" --json |
	grep -q '"agent"' || fail "no agent runs for $IF"
id=$(ctl device list --json | json_field id)
ok "the device's tunnel is up, its agent running"

tunnel_dead() { ! ns_exec "$CL" ping -c1 -W1 10.0.0.1 >/dev/null 2>&1; }

# cycle DISABLED_S: disable, check the tunnel is dead, enable after
# DISABLED_S, measure until a ping goes through
cycle() {
	local disabled_s=$1 t0 t1 delay
	ctl device disable "$id" >/dev/null
	wait_for 5 tunnel_dead || fail "the tunnel still passes traffic after the disable"
	ns_exec "$GW" wg show "$WG_IF" peers | grep -q . && fail "the disabled device is still a peer"
	sleep "$disabled_s"
	ctl device enable "$id" >/dev/null
	t0=$(date +%s.%N)
	for _ in $(seq 30); do
		ns_exec "$CL" ping -c1 -W1 10.0.0.1 >/dev/null 2>&1 && break
	done
	t1=$(date +%s.%N)
	ns_exec "$CL" ping -c1 -W1 10.0.0.1 >/dev/null 2>&1 || fail "the tunnel did not come back"
	delay=$(echo "$t1 - $t0" | bc)
	echo "   tunnel back $delay s after the enable (disabled for $disabled_s s)"
	[ "$(echo "$delay < $LIMIT_S" | bc)" = 1 ] ||
		fail "the tunnel came back $delay s after the enable (limit $LIMIT_S s)"
}

echo "-- disabled for 4 s"
cycle 4
ok "the tunnel passes traffic again within $LIMIT_S s of the enable"
echo "-- disabled for 12 s"
cycle 12
ok "the tunnel passes traffic again within $LIMIT_S s of the enable"
grep -q "its peer set anew" "$WORK/cl/run/$IF.agent.log" ||
	fail "the agent's log does not say it set the peer anew: $(tail -5 "$WORK/cl/run/$IF.agent.log")"
ok "the agent's log says it set the peer anew"
echo "all re-enable checks passed"
