#!/bin/bash
# Sets up a gateway (wireguard, preauth, api) in a namespace and runs
# bench_onboarding inside it. usage: run.sh BUILD_DIR [PRELOAD] [MEASURED] [CLIENTS]
set -euo pipefail
build=$(realpath "$1")
shift
here=$(dirname "$(realpath "$0")")
source "$here/../../tests/lib/netns.sh"
netns_init
ns_add GW bench
cat >"$WORK/m.conf" <<CONF
state_dir = "$WORK/state";
socket = "$WORK/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["wireguard", "preauth", "api"];
log_level = "warn";
wireguard = { interface = "${TAG}b"; backend = "userspace"; address = "10.64.0.1/16";
              endpoint = "127.0.0.1:51820"; resync_interval = 0; };
preauth = { redeem_failures = 1000000; };
api = { listen = "127.0.0.1:8443"; names = ["127.0.0.1"]; threads = 8; };
CONF
ns_exec "$GW" "$build/core/meshgated" --config "$WORK/m.conf" 2>"$WORK/log" &
bg_track $!
wait_for 10 test -S "$WORK/bus.sock" || fail "meshgated did not start"
wait_for 10 test -f "$WORK/state/ca.pem" || fail "no CA"
sleep 0.5
ns_exec "$GW" "$build/bench/onboarding/bench_onboarding" "$WORK/bus.sock" \
	https://127.0.0.1:8443 "$WORK/state/ca.pem" "$@"
echo "peers on the interface: $(wg show "${TAG}b" peers | wc -l)"
