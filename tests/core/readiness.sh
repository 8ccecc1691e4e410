#!/bin/bash
# Readiness through the api, with the real meshgated: a plugin whose start
# takes 8 s (the probe, standing in for a reconcile of many devices) holds
# GET /api/v1/health at 503 "not_ready", naming it, while
# /api/v1/health/live already answers 200; once its start has returned,
# health answers 200 and core.status says ready.
# usage: readiness.sh MESHGATED MESHGATECTL API_PLUGIN PROBE_PLUGIN
set -euo pipefail
meshgated=$1 ctl_bin=$2 api=$3 probe=$4
source "$(dirname "$0")/../lib/netns.sh"
netns_init
ns_add NS ready
mkdir -p "$WORK/plugins"
ln -s "$api" "$WORK/plugins/meshgate-api.so"
ln -s "$(dirname "$api")/meshgate-keystore.so" "$WORK/plugins/meshgate-keystore.so" # its keys
ln -s "$probe" "$WORK/plugins/meshgate-probe.so"
cat >"$WORK/m.conf" <<CONF
state_dir = "$WORK/state";
socket = "$WORK/bus.sock";
plugin_dir = "$WORK/plugins";
plugins = ["api", "probe"];
api = { listen = "127.0.0.1:8443"; names = ["127.0.0.1"]; };
probe = { start_sleep_ms = 8000; }; # long enough for a loaded machine to ask both
CONF
get() { # get PATH: "STATUS BODY"
	ns_exec "$NS" curl -s -k --max-time 5 -w ' %{http_code}' "https://127.0.0.1:8443$1" || true
}
ip netns exec "$NS" "$meshgated" --config "$WORK/m.conf" 2>"$WORK/log" &
bg_track $!
serving() { [[ "$(get /api/v1/health/live)" == *" 200" ]]; }
wait_for 10 serving || fail "the api does not serve: $(tail -5 "$WORK/log")"

health=$(get /api/v1/health)
[[ "$health" == *" 503" ]] || fail "health while probe starts: $health, expected 503"
[[ "$health" == *'"not_ready"'* ]] || fail "no not_ready error: $health"
[[ "$health" == *'probe (starting)'* ]] || fail "the probe is not named: $health"
[[ "$health" != *'api ('* ]] || fail "the api, ready, is named: $health"
echo "ok: health 503 not_ready naming the probe, live 200, while the probe starts"
"$ctl_bin" --socket "$WORK/bus.sock" status | grep -q "^not ready" || fail "meshgatectl status says ready"

ready() { [[ "$(get /api/v1/health)" == *" 200" ]]; }
wait_for 20 ready || fail "health never 200: $(get /api/v1/health)"
"$ctl_bin" --socket "$WORK/bus.sock" --json status | grep -q '"ready": true' || fail "core.status not ready"
"$ctl_bin" --socket "$WORK/bus.sock" status | grep -qE '^probe +[^ ]+ +running +[0-9]+ ms' ||
	fail "meshgatectl status: $("$ctl_bin" --socket "$WORK/bus.sock" status)"
echo "ok: health 200 once the probe's start returned; status shows when each became ready"
