#!/bin/bash
# The admin API with 10,000 devices (issue 16): GET /api/v1/admin/devices,
# the first page and searches, each asked REQUESTS times (default 500) on
# one keep-alive HTTPS connection with the CA verified, from the gateway's
# namespace to the admin listener on the VPN gateway address. Prints
# p50/p99 of each, and the same-run baseline: what an admin had before,
# `meshgatectl --json device list` (every device over the local bus; a
# search is that, filtered), asked 20 times.
#
# The issue's peer figures are not measured here: no wg-easy nor NetBird
# is installed on this machine (nor reachable without the internet), so
# the ratios to them are to their published figures: NetBird's API calls
# take 1.5-3 s at 500 peers (netbirdio/netbird#2587), wg-easy's panel
# freezes at about 215 clients (wg-easy#2441, no latency to compare).
#
# Prints figures and TABLE| rows for bench/run-all.sh; never fails on
# time. Root (a namespace).
#
# usage: bench/admin/run.sh BUILD_DIR [DEVICES] [REQUESTS]
set -euo pipefail
build=$(realpath "${1:-build}")
devices=${2:-10000}
requests=${3:-500}
here=$(dirname "$(realpath "$0")")
source "$here/../../tests/lib/netns.sh"
netns_init
ns_add GW admin
IF=${TAG}a
cat >"$WORK/m.conf" <<CONF
state_dir = "$WORK/state";
socket = "$WORK/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["wireguard", "preauth", "api"];
log_level = "info";
wireguard = { interface = "$IF"; backend = "userspace"; address = "10.64.0.1/16";
              endpoint = "127.0.0.1:51820"; resync_interval = 0; };
preauth = { redeem_failures = 1000000; };
api = { listen = "127.0.0.1:8443"; names = ["127.0.0.1"]; };
CONF
ctl() { "$build/cli/meshgatectl" --socket "$WORK/bus.sock" "$@"; }

ip netns exec "$GW" "$build/core/meshgated" --config "$WORK/m.conf" >"$WORK/log" 2>&1 &
bg_track $!
wait_for 20 plugins_ready "$build" "$WORK/bus.sock" || fail "meshgated: $(tail -5 "$WORK/log")"
start=$(date +%s)
"$build/bench/preload/bench_preload" "$WORK/bus.sock" "$devices" u 8 >/dev/null
echo "# preload: $devices devices in $(($(date +%s) - start)) s"
TOKEN=$(ctl token add bench --role viewer 2>/dev/null)
wait_for 10 ns_exec "$GW" bash -c "ss -Htln | grep -q '10.64.0.1:8444'" || fail "no admin listener"

# the gateway settles: wireguard has every peer (its reconcile is not
# what is measured here)
wait_for 300 bash -c "[ \"\$(ip netns exec $GW wg show $IF peers | wc -l)\" -ge $devices ]" ||
	fail "$IF has $(ns_exec "$GW" wg show "$IF" peers | wc -l) of $devices peers"
sleep 2

# One keep-alive connection, REQUESTS rounds of one request of each path
# (interleaved, so that whatever else the machine does falls on all of
# them alike); prints "NAME p50_ms p99_ms devices_in_answer".
cat >"$WORK/client.py" <<'PY'
import http.client, json, ssl, sys, time
ca, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
tls = ssl.create_default_context(cafile=ca)
conn = http.client.HTTPSConnection("10.64.0.1", 8444, context=tls)
headers = {"Authorization": "Bearer " + token}
paths = [a.split("=", 1) for a in sys.argv[4:]]
times = {name: [] for name, _ in paths}
found = {}
for _ in range(n):
    for name, path in paths:
        t0 = time.perf_counter()
        conn.request("GET", "/api/v1/admin/devices" + path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        times[name].append((time.perf_counter() - t0) * 1000)
        if resp.status != 200:
            sys.exit(f"{path}: {resp.status} {body[:200]}")
        found[name] = len(json.loads(body)["devices"])
for name, _ in paths:
    t = sorted(times[name])
    print(name, f"{t[len(t) // 2]:.2f}", f"{t[-(-99 * len(t) // 100) - 1]:.2f}", found[name])
PY
# the last device id, for a page at the end of the list
last=$(ctl --json device list --search "u$((devices - 1))" | python3 -c '
import json, sys; print(json.load(sys.stdin)["devices"][0]["id"])')
rare="u$((devices / 2 + 7))" # one match: the whole list is read
ns_exec "$GW" python3 "$WORK/client.py" "$WORK/state/ca.pem" "$TOKEN" "$requests" \
	"first_page=?limit=100" "search_one=?q=$rare&limit=100" "search_many=?q=u1&limit=100" \
	"page_after=?limit=100&after=$last" | tee "$WORK/ours"

# the baseline: every device over the bus, as meshgatectl has it, and a
# search as that list filtered (grep)
base_times=()
for _ in $(seq 20); do
	t0=$(date +%s%N)
	ctl --json device list >"$WORK/all.json"
	base_times+=($((($(date +%s%N) - t0) / 1000)))
done
grep -c '"id"' "$WORK/all.json" >/dev/null
read -r base_p50 base_p99 < <(printf '%s\n' "${base_times[@]}" | sort -n | awk '
	{ v[NR] = $1 / 1000 } END { k = int(0.99 * NR); if (k < 0.99 * NR) k++; printf "%.2f %.2f\n", v[int((NR + 1) / 2)], v[k] }')
echo "baseline: meshgatectl --json device list ($devices devices): p50 $base_p50 ms p99 $base_p99 ms over 20"

echo
echo "# admin API, $devices devices, $requests requests each on one keep-alive connection"
printf "%-12s %9s %9s %8s %s\n" request p50_ms p99_ms devices "p99 vs NetBird's 1500 ms at 500 peers"
while read -r name p50 p99 found; do
	printf "%-12s %9s %9s %8s %s\n" "$name" "$p50" "$p99" "$found" \
		"$(awk -v a="$p99" 'BEGIN { printf "%.4f (%.0fx faster)", a / 1500, 1500 / a }')"
done <"$WORK/ours"
echo "wg-easy: its panel freezes at about 215 clients (no latency figure to compare); ours served $devices"
while read -r name p50 p99 found; do
	ratio=$(awk -v a="$p99" -v b="$base_p99" 'BEGIN { printf "%.3g", a / b }')
	echo "TABLE|admin API $name, $devices devices (p99 of $requests)|$p99 ms|meshgatectl device list, all, same run: $base_p99 ms|$ratio|-|$requests"
done <"$WORK/ours"
