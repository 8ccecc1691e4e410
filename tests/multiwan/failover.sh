#!/bin/bash
# A gateway with two uplinks, end to end (real WireGuard, real routes):
#
#   client ns ── crouter ns (NAT) ── net ns ──┬── r1 ns ── wan1 ──┐
#   192.168.1.2   masquerades out   198.18.100.1 (the      gw ns: meshgated with
#                 203.0.113.2        checks' target)       wireguard, preauth, api,
#                                         └── r2 ns ── wan2 ──┘ multiwan
#                                                        198.18.1.1 / 198.18.2.1
#
# The client, behind NAT, onboards with `meshgate up` (its agent runs) and
# pings the gateway address (10.0.0.1, through the tunnel) every 10 ms.
# wan1's router loses its uplink: the gateway moves its default route to
# wan2, the client's agent moves to the node's other endpoint, the pings
# resume; the longest gap is printed and fails above 3 s. wan1 comes back:
# after rise and the failback hold the gateway moves back, the client
# follows the new best endpoint; that gap is printed too. `meshgatectl
# wan list --json` is checked in each phase.
# usage: failover.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/multiwan_lib.sh"
netns_init

MAX_GAP_S=${MAX_GAP_S:-3}
topology
gateway_start

echo "-- both uplinks up, the default route on wan1"
wait_for 5 wan_is "$W1" up up || fail "wan list: $(wan_state)"
# (grep of a here-string: a pipe into grep -q fails under pipefail)
grep -q "via 198.18.1.254 dev $W1" <<<"$(ns_exec "$GW" ip route show default)" ||
	fail "default route: $(ns_exec "$GW" ip route show default)"
grep -q "from 198.18.2.1 lookup 201" <<<"$(ns_exec "$GW" ip rule)" ||
	fail "no rule for wan2: $(ns_exec "$GW" ip rule)"
grep -q "default via 198.18.2.254 dev $W2" <<<"$(ns_exec "$GW" ip route show table 201)" ||
	fail "no table for wan2"
ctl wan list
echo "-- a client behind NAT onboards"
client_onboard erin
grep -q "^# MeshgateGateway = .* 198.18.1.1:51820 198.18.2.1:51820$" "$WORK/cl/etc/$IF.conf" ||
	fail "the saved config lacks the node's endpoints: $(grep MeshgateGateway "$WORK/cl/etc/$IF.conf")"
endpoint_is 198.18.1.1:51820 || fail "client endpoint $(client_endpoint)"

echo "-- wan1's router loses its uplink"
ping_start cut
wan1_cut
wait_for 5 wan_is "$W2" down up || fail "wan list after the cut: $(wan_state)"
grep -q "dev $W2" <<<"$(ns_exec "$GW" ip route show default)" || fail "default route stays on wan1"
wait_for 5 endpoint_is 198.18.2.1:51820 || fail "the client stays at $(client_endpoint)"
sleep 1
gap=$(ping_gap cut)
echo "failover gap: $gap s (the longest time without an answer)"
gap_ok "$gap" "$MAX_GAP_S" || fail "failover gap $gap s > $MAX_GAP_S s"
grep -q "its uplink 198.18.2.1:51820" "$WORK/cl/run/$IF.agent.log" ||
	fail "the agent log does not name the uplink: $(cat "$WORK/cl/run/$IF.agent.log")"

echo "-- wan1 comes back: failback after the hold"
ping_start back
wan1_back
# up after rise (1 s); active again after the hold (2 s more)
wan1_up() { [[ "$(wan_state)" == *" up up" ]]; }
wait_for 3 wan1_up || fail "wan1 not up again: $(wan_state)"
wan_is "$W2" up up || echo "(the failback came before wan list was asked)"
wait_for 8 wan_is "$W1" up up || fail "no failback: $(wan_state)"
grep -q "dev $W1" <<<"$(ns_exec "$GW" ip route show default)" || fail "default route not back on wan1"
# the agent follows the node's new best endpoint on its re-sync, and
# undoes WireGuard's roam back to wan2's address when a packet of the
# gateway's, still on its way from there, takes the session back
followed() { grep -q "best uplink is now 198.18.1.1:51820" "$WORK/cl/run/$IF.agent.log"; }
wait_for 5 followed || fail "the client did not follow: $(client_endpoint); $(cat "$WORK/cl/run/$IF.agent.log")"
sleep 3
endpoint_is 198.18.1.1:51820 ||
	fail "the session left wan1 again: $(client_endpoint); $(cat "$WORK/cl/run/$IF.agent.log")"
grep "roamed away" "$WORK/cl/run/$IF.agent.log" || true
echo "the client follows to 198.18.1.1:51820 and stays there"
sleep 1
gap=$(ping_gap back)
echo "failback gap: $gap s"
gap_ok "$gap" "$MAX_GAP_S" || fail "failback gap $gap s > $MAX_GAP_S s"

echo "-- stop: the tables and rules go"
kill -TERM "$GW_PID"
wait "$GW_PID" 2>/dev/null || true
grep -q "lookup 20[01]" <<<"$(ns_exec "$GW" ip rule)" && fail "rules left: $(ns_exec "$GW" ip rule)"
echo "ok"
