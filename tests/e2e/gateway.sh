# A gateway in namespaces for end-to-end tests (source after netns.sh):
# sets GW CL SVC, STATE, WG_IF, MESHGATE, CLIENT_DIRS, and ctl / client_up /
# json_field helpers. `build` must be set. GATEWAY_EXTRA_PLUGINS and
# GATEWAY_EXTRA_CONF add plugins and config; GATEWAY_PREAUTH_CONF replaces
# the preauth section's contents (default: networks = ["10.20.0.0/24"];),
# GATEWAY_API_LISTEN the api's listen address (default 198.18.0.1:8443).

# The gateway's config file and the variables the helpers use (STATE,
# WG_IF, MESHGATE, CLIENT_DIRS), for any topology that has $GW at
# 198.18.0.1; gateway_start then runs it.
gateway_configure() {
	STATE=$WORK/gw/state
	WG_IF=${TAG}w
	MESHGATE=$build/client/meshgate
	CLIENT_DIRS=(--config-dir "$WORK/cl/etc" --state-dir "$WORK/cl/run")
	mkdir -p "$WORK/gw"
	local preauth_conf=${GATEWAY_PREAUTH_CONF-'networks = ["10.20.0.0/24"];'}
	local api_listen=${GATEWAY_API_LISTEN:-198.18.0.1:8443}
	cat >"$WORK/gw/meshgated.conf" <<CONF
state_dir = "$STATE";
socket = "$WORK/gw/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["wireguard", "preauth", "api"${GATEWAY_EXTRA_PLUGINS:-}];
wireguard = { interface = "$WG_IF"; backend = "userspace"; address = "10.0.0.1/24";
              endpoint = "198.18.0.1:51820"; };
preauth = { $preauth_conf };
# one client sends 100 requests at once (onboarding.sh): above the per-address
# and per-/24 limits' defaults (16, 64), which close the surplus connections
api = { listen = "$api_listen"; names = ["198.18.0.1"]; per_ip_limit = 128; per_prefix_limit = 128; };
${GATEWAY_EXTRA_CONF:-}
CONF
}

gateway_up() {
	ns_add GW gw
	ns_add CL cl
	ns_add SVC svc
	ns_link "$GW" 198.18.0.1/24 "$CL" 198.18.0.2/24
	ns_link "$GW" 10.20.0.1/24 "$SVC" 10.20.0.10/24
	ns_exec "$SVC" ip route add default via 10.20.0.1
	ns_exec "$GW" sysctl -qw net.ipv4.ip_forward=1
	# the internal service: echo with a prefix on TCP 7000
	ns_exec "$SVC" ncat -lk 10.20.0.10 7000 --sh-exec 'read l; echo "svc:$l"' &
	bg_track $!

	gateway_configure
	gateway_start
}

# Starts meshgated in the gateway namespace and waits until every plugin runs.
gateway_start() {
	# not through the ns_exec function: $! must be meshgated itself
	ip netns exec "$GW" "$build/core/meshgated" --config "$WORK/gw/meshgated.conf" \
		>>"$WORK/gw/meshgated.log" 2>&1 &
	GW_PID=$!
	bg_track $GW_PID
	wait_for 10 gateway_running || { cat "$WORK/gw/meshgated.log"; fail "plugins not running"; }
}

# kill -9, as a crash would, and wait until it is gone. Its wireguard-go
# runs on (the data plane outlives the control plane; the next start adopts
# the interface).
gateway_kill9() {
	kill -9 "$GW_PID" 2>/dev/null || true
	wait "$GW_PID" 2>/dev/null || true
	ip -n "$GW" link show "$WG_IF" >/dev/null 2>&1 || fail "$WG_IF went down with meshgated"
}

# SIGTERM, as `systemctl stop` would, and wait until it has stopped.
gateway_stop() {
	kill -TERM "$GW_PID" 2>/dev/null || true
	wait "$GW_PID" 2>/dev/null || true
}

gateway_running() { plugins_ready "$build" "$WORK/gw/bus.sock"; }

ctl() { "$build/cli/meshgatectl" --socket "$WORK/gw/bus.sock" "$@"; }

# json_field NAME: the first "NAME": "value" of the JSON on stdin
json_field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -1; }

# client_up NS IFNAME CODE
# client_up NS IFNAME CODE: meshgate up (CLIENT_UP_OPTS too, e.g. --no-agent)
client_up() {
	ns_exec "$1" "$MESHGATE" up --server "https://198.18.0.1:8443" --ca "$STATE/ca.pem" \
		--interface "$2" --backend userspace "${CLIENT_DIRS[@]}" \
		${CLIENT_UP_OPTS:+"${CLIENT_UP_OPTS[@]}"} "$3"
}
