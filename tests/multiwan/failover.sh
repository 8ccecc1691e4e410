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
netns_init

MAX_GAP_S=${MAX_GAP_S:-3}
W1=${TAG}a1 # the gateway's uplinks
W2=${TAG}a2
R1UP=${TAG}r1 # wan1's router, its side towards the internet

topology() {
	ns_add GW gw
	ns_add R1 r1
	ns_add R2 r2
	ns_add NET net
	ns_add CR crouter
	ns_add CL cl
	ns_link "$GW" 198.18.1.1/24 "$R1" 198.18.1.254/24 "$W1" "${TAG}b1"
	ns_link "$GW" 198.18.2.1/24 "$R2" 198.18.2.254/24 "$W2" "${TAG}b2"
	ns_link "$R1" 198.18.11.1/30 "$NET" 198.18.11.2/30 "$R1UP" "${TAG}n1"
	ns_link "$R2" 198.18.12.1/30 "$NET" 198.18.12.2/30 "${TAG}r2" "${TAG}n2"
	ns_link "$CR" 203.0.113.2/24 "$NET" 203.0.113.1/24 "${TAG}cu" "${TAG}n3"
	ns_link "$CL" 192.168.1.2/24 "$CR" 192.168.1.1/24 "${TAG}cl" "${TAG}cd"
	ns_exec "$NET" ip addr add 198.18.100.1/32 dev lo
	ns_exec "$NET" ip route add 198.18.1.0/24 via 198.18.11.1
	ns_exec "$NET" ip route add 198.18.2.0/24 via 198.18.12.1
	for ns in "$R1" "$R2" "$NET" "$CR"; do ns_exec "$ns" sysctl -qw net.ipv4.ip_forward=1; done
	ns_exec "$R1" ip route add default via 198.18.11.2
	ns_exec "$R2" ip route add default via 198.18.12.2
	ns_exec "$CR" ip route add default via 203.0.113.1
	ns_exec "$CR" iptables -t nat -A POSTROUTING -o "${TAG}cu" -j MASQUERADE
	ns_exec "$CL" ip route add default via 192.168.1.1
}

gateway_start() {
	STATE=$WORK/gw/state
	mkdir -p "$WORK/gw"
	cat >"$WORK/gw/meshgated.conf" <<CONF
state_dir = "$STATE";
socket = "$WORK/gw/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["wireguard", "preauth", "api", "multiwan"];
wireguard = { interface = "${TAG}w"; backend = "userspace"; address = "10.0.0.1/24";
              endpoint = "198.18.1.1:51820"; };
preauth = { networks = ["10.0.0.0/24"]; };
api = { listen = "0.0.0.0:8443"; names = ["198.18.1.1", "198.18.2.1"]; };
multiwan = {
  links = ( { interface = "$W1"; gateway = "198.18.1.254"; check = "198.18.100.1"; priority = 1; },
            { interface = "$W2"; gateway = "198.18.2.254"; check = "198.18.100.1"; priority = 2; } );
  failback_hold_ms = ${FAILBACK_HOLD_MS:-2000};
};
CONF
	ip netns exec "$GW" "$build/core/meshgated" --config "$WORK/gw/meshgated.conf" \
		>>"$WORK/gw/meshgated.log" 2>&1 &
	GW_PID=$!
	bg_track $GW_PID
	wait_for 10 plugins_ready "$build" "$WORK/gw/bus.sock" ||
		{ cat "$WORK/gw/meshgated.log"; fail "plugins not running"; }
}

ctl() { "$build/cli/meshgatectl" --socket "$WORK/gw/bus.sock" "$@"; }

# wan_is ACTIVE STATE1 STATE2: what `wan list --json` says
wan_state() {
	ctl wan list --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(r.get("active"), *[l["state"] for l in r["links"]])'
}
wan_is() { [ "$(wan_state)" = "$*" ]; }

IF=${TAG}c
CLIENT_DIRS=(--config-dir "$WORK/cl/etc" --state-dir "$WORK/cl/run")
client_endpoint() { ns_exec "$CL" wg show "$IF" endpoints | cut -f2; }
# the NAT hides the client: what the gateway sees is the router's address
endpoint_is() { [ "$(client_endpoint)" = "$1" ]; }

# ping_start NAME / ping_gap NAME: pings every 10 ms through the tunnel,
# then the longest time between two answers, in seconds
ping_start() {
	ip netns exec "$CL" ping -D -n -i 0.01 -W 1 10.0.0.1 >"$WORK/$1.ping" 2>&1 &
	PING_PID=$!
	bg_track $PING_PID
	sleep 0.5
}
ping_gap() {
	kill "$PING_PID" 2>/dev/null || true
	wait "$PING_PID" 2>/dev/null || true
	python3 - "$WORK/$1.ping" <<'PY'
import re, sys
times = [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\] \d+ bytes from", open(sys.argv[1]).read(), re.M)]
if len(times) < 2:
    print("inf")
else:
    print("%.3f" % max(b - a for a, b in zip(times, times[1:])))
PY
}
gap_ok() { python3 -c "import sys; sys.exit(0 if float('$1') <= float('$2') else 1)"; }

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
code=$(ctl user add erin --role developer --json | sed -n 's/.*"code": *"\([^"]*\)".*/\1/p' | head -1)
[ -n "$code" ] || fail "no code"
ns_exec "$CL" "$build/client/meshgate" up --server https://198.18.1.1:8443 --ca "$STATE/ca.pem" \
	--interface "$IF" --backend userspace "${CLIENT_DIRS[@]}" "$code" ||
	fail "meshgate up failed"
grep -q "^# MeshgateGateway = .* 198.18.1.1:51820 198.18.2.1:51820$" "$WORK/cl/etc/$IF.conf" ||
	fail "the saved config lacks the node's endpoints: $(grep MeshgateGateway "$WORK/cl/etc/$IF.conf")"
wait_for 5 ns_exec "$CL" ping -c 1 -W 1 10.0.0.1 || fail "no ping through the tunnel"
endpoint_is 198.18.1.1:51820 || fail "client endpoint $(client_endpoint)"

echo "-- wan1's router loses its uplink"
ping_start cut
ns_exec "$R1" ip link set "$R1UP" down
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
ns_exec "$R1" ip link set "$R1UP" up
ns_exec "$R1" ip route replace default via 198.18.11.2
wait_for 3 wan_is "$W2" up up || fail "wan1 not up again: $(wan_state)"
wait_for 8 wan_is "$W1" up up || fail "no failback: $(wan_state)"
grep -q "dev $W1" <<<"$(ns_exec "$GW" ip route show default)" || fail "default route not back on wan1"
wait_for 5 endpoint_is 198.18.1.1:51820 || fail "the client did not follow: $(client_endpoint)"
sleep 1
gap=$(ping_gap back)
echo "failback gap: $gap s"
gap_ok "$gap" "$MAX_GAP_S" || fail "failback gap $gap s > $MAX_GAP_S s"

echo "-- stop: the tables and rules go"
kill -TERM "$GW_PID"
wait "$GW_PID" 2>/dev/null || true
grep -q "lookup 20[01]" <<<"$(ns_exec "$GW" ip rule)" && fail "rules left: $(ns_exec "$GW" ip rule)"
echo "ok"
