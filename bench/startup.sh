#!/bin/bash
# Start-up of the real gateway (all five plugins) on a state of N devices
# (default 10,000, onboarded over the bus as in the field), from the exec
# of meshgated until GET /api/v1/health answers 200, which it does once
# every plugin has reconciled (peers, rules, names). Two cases:
#   restart: the WireGuard interface is kept from the run before (the
#            default wireguard.on_stop = "keep"): wireguard-go's own load of
#            the peers is not in it, the plugins' reconcile of 10k devices is;
#   cold:    no interface: wireguard-go is started and loads every peer.
# Baseline, same rounds: the same daemon with the plugins started one after
# another (MESHGATED_SERIAL_START=1), the way it started before. Each
# round runs the four start-ups, the order of ours and the baseline
# alternating. Per-plugin times come from core.status (ms since meshgated
# began). Prints figures; never a test. Root (a namespace).
#
# usage: bench/startup.sh BUILD_DIR [DEVICES] [ROUNDS]
set -euo pipefail
build=$(realpath "${1:-build}")
devices=${2:-10000}
rounds=${3:-3}
here=$(dirname "$(realpath "$0")")
source "$here/../tests/lib/netns.sh"
netns_init
ns_add GW start
IF=${TAG}s
cat >"$WORK/m.conf" <<CONF
state_dir = "$WORK/state";
socket = "$WORK/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["wireguard", "preauth", "api", "firewall", "dns"];
log_level = "info";
wireguard = { interface = "$IF"; backend = "userspace"; address = "10.64.0.1/16";
              endpoint = "127.0.0.1:51820"; resync_interval = 0; };
preauth = { redeem_failures = 1000000; };
api = { listen = "127.0.0.1:8443"; names = ["127.0.0.1"]; };
firewall = { roles = { developer = ["vpn"]; }; resync_interval = 0; };
dns = { zone = "corp.internal"; };
CONF
ctl() { "$build/cli/meshgatectl" --socket "$WORK/bus.sock" "$@"; }

# The start-up, timed from inside the namespace by one process: it execs
# meshgated, then asks GET /api/v1/health every 10 ms on one keep-alive
# connection until it answers 200, and prints "PID SECONDS NOT_READY"
# (NOT_READY: how many 503 answers came before). meshgated runs on.
cat >"$WORK/timed_start.py" <<'PY'
import http.client, os, ssl, subprocess, sys, time
log = open(sys.argv[1], "a")
t0 = time.monotonic()
daemon = subprocess.Popen(sys.argv[2:], stdout=log, stderr=log)
tls = ssl.create_default_context()
tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
conn, not_ready = None, 0
while time.monotonic() - t0 < 120 and daemon.poll() is None:
    try:
        conn = conn or http.client.HTTPSConnection("127.0.0.1", 8443, context=tls, timeout=5)
        conn.request("GET", "/api/v1/health")
        resp = conn.getresponse()
        resp.read()
        if resp.status == 200:
            print(daemon.pid, time.monotonic() - t0, not_ready, flush=True)
            os._exit(0)
        not_ready += resp.status == 503
    except (OSError, http.client.HTTPException):
        conn = None
    time.sleep(0.01)
print(daemon.pid, -1, not_ready, flush=True)
PY

# start [ENV...]: meshgated in the namespace, its pid in $PID, the
# seconds from its exec to health 200 in $TOOK, the 503s before in $NOT_READY
start() {
	local out
	out=$(env "$@" ip netns exec "$GW" python3 "$WORK/timed_start.py" "$WORK/log" \
		"$build/core/meshgated" --config "$WORK/m.conf")
	read -r PID TOOK NOT_READY <<<"$out"
	bg_track "$PID"
	[ "$TOOK" != -1 ] || fail "meshgated not ready in 120 s: $(tail -5 "$WORK/log")"
}
stop() {
	kill -TERM "$PID"
	while kill -0 "$PID" 2>/dev/null; do sleep 0.05; done
}
# no interface, as after a reboot: wireguard-go goes with its TUN device
drop_interface() {
	ns_exec "$GW" ip link del "$IF" 2>/dev/null || true
	wait_for 10 bash -c "! test -S /var/run/wireguard/$IF.sock" || fail "$IF's wireguard-go stays"
}

echo "# preload: $devices devices"
start
"$build/bench/preload/bench_preload" "$WORK/bus.sock" "$devices"
echo "peers on $IF: $(ns_exec "$GW" wg show "$IF" peers | wc -l)"
stop

# one_start CASE MODE: a start-up timed until health says 200, then the
# status's per-plugin times; appends a JSON line to $WORK/runs
one_start() {
	local case=$1 mode=$2 env=()
	[ "$case" = cold ] && drop_interface
	[ "$mode" = serial ] && env=(MESHGATED_SERIAL_START=1)
	start "${env[@]}"
	ctl --json status | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(json.dumps({"case": sys.argv[1], "mode": sys.argv[2], "health_s": float(sys.argv[3]),
                  "not_ready_answers": int(sys.argv[4]), "ready_ms": s.get("ready_ms"),
                  "plugins": {p["name"]: [p.get("start_ms"), p.get("ready_ms")] for p in s["plugins"]}}))
' "$case" "$mode" "$TOOK" "$NOT_READY" >>"$WORK/runs"
	tail -1 "$WORK/runs"
	stop
}

echo "# $rounds rounds; each: restart and cold, ours (parallel) and plugins one after another (serial)"
for round in $(seq "$rounds"); do
	for case in restart cold; do
		if [ $((round % 2)) = 1 ]; then
			one_start "$case" parallel
			one_start "$case" serial
		else
			one_start "$case" serial
			one_start "$case" parallel
		fi
	done
done

python3 - "$WORK/runs" "$devices" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
devices = int(sys.argv[2])
def pick(case, mode):
    return [r for r in runs if r["case"] == case and r["mode"] == mode]
def spread(v):
    m = statistics.median(v)
    return (max(v) - min(v)) / m if m else 0
for case in ("restart", "cold"):
    ours, base = pick(case, "parallel"), pick(case, "serial")
    o = [r["health_s"] for r in ours]
    b = [r["health_s"] for r in base]
    ratio = [x / y for x, y in zip(o, b)]
    print(f"\n{case}: exec -> health 200, {devices} devices")
    print(f"  parallel  median {statistics.median(o):.3f} s  spread {min(o):.3f}-{max(o):.3f} ({100*spread(o):.0f}%)")
    print(f"  serial    median {statistics.median(b):.3f} s  spread {min(b):.3f}-{max(b):.3f} ({100*spread(b):.0f}%)")
    print(f"  503 (not ready) answers before the 200, per start-up: "
          f"{[r['not_ready_answers'] for r in ours]} / {[r['not_ready_answers'] for r in base]}")
    for label, rs in (("parallel", ours), ("serial", base)):
        # before the first start: dlopen, config, the state check, every init
        first = statistics.median(min(v[0] for v in r["plugins"].values() if v[0]) for r in rs)
        print(f"  {label}: the first start began {first:.0f} ms after meshgated's main (median);"
              f" meshgated ready at {statistics.median(r['ready_ms'] for r in rs):.0f} ms")
        print(f"  per plugin, {label} (median ms since meshgated's main: start -> ready, took):")
        for name in rs[0]["plugins"]:
            st = statistics.median(r["plugins"][name][0] for r in rs)
            rd = statistics.median(r["plugins"][name][1] for r in rs)
            took = statistics.median(r["plugins"][name][1] - r["plugins"][name][0] for r in rs)
            print(f"    {name:10s} {st:7.0f} -> {rd:7.0f}  ({took:.0f} ms)")
    # wireguard-go's own load apart: the cold start-up less the wireguard
    # plugin's start (creating wireguard-go and setting every peer)
    if case == "cold":
        apart = [r["health_s"] - (r["plugins"]["wireguard"][1] - r["plugins"]["wireguard"][0]) / 1e3 for r in ours]
        print(f"  cold less the wireguard plugin's start (wireguard-go's load apart): "
              f"median {statistics.median(apart):.3f} s")
    what = {"restart": f"start-up to health 200, {devices // 1000}k devices, interface kept",
            "cold": f"start-up to health 200, {devices // 1000}k devices, cold (wireguard-go loads the peers)"}[case]
    print(f"TABLE|{what}|{statistics.median(o):.3g} s|plugins one after another: {statistics.median(b):.3g} s|"
          f"{statistics.median(ratio):.3g}|{100*max(spread(o), spread(b)):.0f}%|{len(o)}")
PY
