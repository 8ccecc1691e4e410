# A gateway with two uplinks and a client behind NAT, in namespaces (source
# after netns.sh; `build` must be set). tests/multiwan/failover.sh and
# bench/multiwan/run.sh use it:
#
#   client ns ── crouter ns (NAT) ── net ns ──┬── r1 ns ── wan1 ──┐
#   192.168.1.2   masquerades out   198.18.100.1 (the      gw ns: meshgated with
#                 203.0.113.2        checks' target)       wireguard, preauth, api,
#                                         └── r2 ns ── wan2 ──┘ multiwan
#                                                        198.18.1.1 / 198.18.2.1
#
# SET (default "") names a second, separate copy of it all (the bench's
# baseline); MULTIWAN=0 runs the gateway without the plugin, its default
# route set once on wan1 as an operator would.

multiwan_vars() {
	W1=${TAG}a1 # the gateway's uplinks (in its namespace only)
	W2=${TAG}a2
	R1UP=${TAG}r1 # wan1's router, its side towards the internet
	IF=${TAG}c${SET:-}
	WG_IF=${TAG}w${SET:-}
	GW_DIR=$WORK/gw${SET:-}
	STATE=$GW_DIR/state
	CLIENT_DIRS=(--config-dir "$WORK/cl${SET:-}/etc" --state-dir "$WORK/cl${SET:-}/run")
}

topology() {
	multiwan_vars
	ns_add GW "gw${SET:-}"
	ns_add R1 "r1${SET:-}"
	ns_add R2 "r2${SET:-}"
	ns_add NET "net${SET:-}"
	ns_add CR "crouter${SET:-}"
	ns_add CL "cl${SET:-}"
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
	local plugins='"wireguard", "preauth", "api", "multiwan"'
	[ "${MULTIWAN:-1}" = 1 ] || {
		plugins='"wireguard", "preauth", "api"'
		ns_exec "$GW" ip route replace default via 198.18.1.254 dev "$W1"
	}
	mkdir -p "$GW_DIR"
	cat >"$GW_DIR/meshgated.conf" <<CONF
state_dir = "$STATE";
socket = "$GW_DIR/bus.sock";
plugin_dir = "$build/plugins";
plugins = [$plugins];
wireguard = { interface = "$WG_IF"; backend = "userspace"; address = "10.0.0.1/24";
              endpoint = "198.18.1.1:51820"; };
preauth = { networks = ["10.0.0.0/24"]; };
api = { listen = "0.0.0.0:8443"; names = ["198.18.1.1", "198.18.2.1"]; };
CONF
	[ "${MULTIWAN:-1}" = 1 ] && cat >>"$GW_DIR/meshgated.conf" <<CONF
multiwan = {
  links = ( { interface = "$W1"; gateway = "198.18.1.254"; check = "198.18.100.1"; priority = 1; },
            { interface = "$W2"; gateway = "198.18.2.254"; check = "198.18.100.1"; priority = 2; } );
  failback_hold_ms = ${FAILBACK_HOLD_MS:-2000};
};
CONF
	ip netns exec "$GW" "$build/core/meshgated" --config "$GW_DIR/meshgated.conf" \
		>>"$GW_DIR/meshgated.log" 2>&1 &
	GW_PID=$!
	bg_track $GW_PID
	wait_for 10 plugins_ready "$build" "$GW_DIR/bus.sock" ||
		{ cat "$GW_DIR/meshgated.log"; fail "plugins not running"; }
}

ctl() { "$build/cli/meshgatectl" --socket "$GW_DIR/bus.sock" "$@"; }

# wan_state: "ACTIVE STATE1 STATE2", as `meshgatectl wan list --json` says
wan_state() {
	ctl wan list --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(r.get("active"), *[l["state"] for l in r["links"]])'
}
wan_is() { [ "$(wan_state)" = "$*" ]; }

# client_onboard USER: `meshgate up CODE` in the client namespace (its agent runs)
client_onboard() {
	local code
	code=$(ctl user add "$1" --role developer --json | sed -n 's/.*"code": *"\([^"]*\)".*/\1/p' | head -1)
	[ -n "$code" ] || fail "no code"
	ns_exec "$CL" "$build/client/meshgate" up --server https://198.18.1.1:8443 --ca "$STATE/ca.pem" \
		--interface "$IF" --backend userspace "${CLIENT_DIRS[@]}" "$code" ||
		fail "meshgate up failed"
	wait_for 5 ns_exec "$CL" ping -c 1 -W 1 10.0.0.1 || fail "no ping through the tunnel"
}

# the client's peer endpoint (the NAT hides the client from the gateway)
client_endpoint() { ns_exec "$CL" wg show "$IF" endpoints | cut -f2; }
endpoint_is() { [ "$(client_endpoint)" = "$1" ]; }

# wan1's router loses its uplink / gets it back
wan1_cut() { ns_exec "$R1" ip link set "$R1UP" down; }
wan1_back() {
	ns_exec "$R1" ip link set "$R1UP" up
	ns_exec "$R1" ip route replace default via 198.18.11.2
}

# ping_start NAME / ping_gap NAME: pings every 10 ms through the tunnel,
# then the longest time without an answer, in seconds, from the start to
# the stop (a silence that lasts until the stop counts)
ping_start() {
	PING_T0=$(date +%s.%N)
	ip netns exec "$CL" ping -D -n -i 0.01 -W 1 10.0.0.1 >"$WORK/$1.ping" 2>&1 &
	PING_PID=$!
	bg_track $PING_PID
	sleep 0.5
}
ping_gap() {
	local t1
	t1=$(date +%s.%N)
	kill "$PING_PID" 2>/dev/null || true
	wait "$PING_PID" 2>/dev/null || true
	python3 - "$WORK/$1.ping" "$PING_T0" "$t1" <<'PY'
import re, sys
times = [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\] \d+ bytes from", open(sys.argv[1]).read(), re.M)]
times = [float(sys.argv[2])] + times + [float(sys.argv[3])]
print("%.3f" % max(b - a for a, b in zip(times, times[1:])))
PY
}
gap_ok() { python3 -c "import sys; sys.exit(0 if float('$1') <= float('$2') else 1)"; }
