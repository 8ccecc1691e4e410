#!/bin/bash
# The web panel with 10,000 devices (issue 16), in Chromium: the time from
# navigation to the device list being interactive (drawn, and a search
# typed at once answered) and a search round trip, for the panel (a page
# of 50 and the search done by the gateway) and, in the same run, the
# naive way (every device fetched and drawn at once, the search a filter
# in the browser: what wg-easy does; bench/panel/naive.html, served from a
# copy of the panel's directory for this run only). Prints both, the
# ratio, and TABLE| rows for bench/run-all.sh; never fails on time. Root
# (a namespace).
#
# usage: bench/panel/run.sh BUILD_DIR [DEVICES] [ROUNDS]
set -euo pipefail
build=$(realpath "${1:-build}")
devices=${2:-10000}
rounds=${3:-5}
here=$(dirname "$(realpath "$0")")
for tool in node /usr/bin/chromium; do
	command -v "$tool" >/dev/null || { echo "no $tool: skipped"; exit 0; }
done
source "$here/../../tests/lib/netns.sh"
netns_init
ns_add GW panel
IF=${TAG}a
cp -r "$here/../../plugins/api/panel" "$WORK/panel"
cp "$here/naive.html" "$here/naive.js" "$WORK/panel/"
cat >"$WORK/m.conf" <<CONF
state_dir = "$WORK/state";
socket = "$WORK/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["wireguard", "preauth", "api"];
log_level = "info";
wireguard = { interface = "$IF"; backend = "userspace"; address = "10.64.0.1/16";
              endpoint = "127.0.0.1:51820"; resync_interval = 0; };
preauth = { redeem_failures = 1000000; };
api = { listen = "127.0.0.1:8443"; names = ["127.0.0.1"]; panel_dir = "$WORK/panel"; };
CONF
ctl() { "$build/cli/meshgatectl" --socket "$WORK/bus.sock" "$@"; }

ip netns exec "$GW" "$build/core/meshgated" --config "$WORK/m.conf" >"$WORK/log" 2>&1 &
bg_track $!
wait_for 20 plugins_ready "$build" "$WORK/bus.sock" || fail "meshgated: $(tail -5 "$WORK/log")"
start=$(date +%s)
# the filler of bench/admin: users u0..uN-1, one device each
"$build/bench/preload/bench_preload" "$WORK/bus.sock" "$devices" u 8 >/dev/null
echo "# preload: $devices devices in $(($(date +%s) - start)) s"
TOKEN=$(ctl token add bench --role viewer 2>/dev/null)
PIN=$(ctl --json call api.info | python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey_pin"])')
wait_for 10 ns_exec "$GW" bash -c "ss -Htln | grep -q '10.64.0.1:8444'" || fail "no admin listener"
wait_for 300 bash -c "[ \"\$(ip netns exec $GW wg show $IF peers | wc -l)\" -ge $devices ]" ||
	fail "$IF has $(ns_exec "$GW" wg show "$IF" peers | wc -l) of $devices peers"
sleep 2

mkdir -p "$WORK/home"
out=$(ip netns exec "$GW" env HOME="$WORK/home" PANEL_URL="https://10.64.0.1:8444/" \
	PANEL_PIN="$PIN" PANEL_TOKEN="$TOKEN" DEVICES="$devices" ROUNDS="$rounds" \
	RARE="u$((devices / 2 + 7))" RARE2="u$((devices / 3 + 11))" node "$here/bench.mjs")
echo "$out"
python3 - "$out" "$devices" <<'PY'
import json, sys
d, n = json.loads(sys.argv[1]), int(sys.argv[2])
print(f"\n# the panel in Chromium, {n} devices, median of {d['rounds']} rounds")
print(f"{'':26} {'ours (page of 50)':>18} {'naive (all at once)':>20} {'ratio':>7}")
names = {"list": "list drawn", "interactive": "list interactive", "search": "search round trip"}
for key, text in names.items():
    o, b = d[f"ours_{key}"], d[f"naive_{key}"]
    print(f"{text:26} {o:15.1f} ms {b:17.1f} ms {o / b:7.3f}")
for key, text in names.items():
    o, b = d[f"ours_{key}"], d[f"naive_{key}"]
    spread = max(d[f"ours_{key}_spread"], d[f"naive_{key}_spread"])
    print(f"TABLE|panel: {text}, {n} devices (Chromium)|{o:.1f} ms|"
          f"all {n} fetched and drawn, same run: {b:.1f} ms|{o / b:.3g}|{spread:.0%}|{d['rounds']}")
PY
