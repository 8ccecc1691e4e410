#!/bin/bash
# /metrics end to end: a gateway (wireguard, preauth, api, dns, firewall)
# in namespaces, scraped with curl inside its namespace (the listener is on
# its loopback, the default). Every page must be well formed
# (check_exposition.py). Then a device is onboarded, it sends DNS queries
# and traffic through the tunnel, and a redeem with an unknown code is
# refused: the figures must move by as much. Last, the gateway runs again
# with a plugin that answers its figures late and one that answers a
# malformed family: the scrape still answers in time, with everyone
# else's figures, and counts both in meshgate_scrape_errors_total.
# usage: scrape.sh BUILD_DIR FIGURES_PLUGIN_DIR
set -euo pipefail
build=$(realpath "$1")
figures_dir=$(realpath "$2")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/../e2e/gateway.sh"
netns_init

GATEWAY_EXTRA_PLUGINS=', "dns", "firewall"'
GATEWAY_PREAUTH_CONF='' # the firewall's policy decides the networks
GATEWAY_EXTRA_CONF='dns = { listen = ["10.0.0.1:53"]; zone = "corp.internal";
        records = ( { name = "gitlab"; address = "10.20.0.10"; } ); };
firewall = { roles = { developer = ["vpn", "10.20.0.0/24"]; }; };'
gateway_up

URL=http://127.0.0.1:9100/metrics

# scrape FILE: the page, checked
scrape() {
	ns_exec "$GW" curl -sS --max-time 10 -o "$1" "$URL" || fail "scrape failed"
	python3 "$here/check_exposition.py" "$1" || fail "$1 is not well formed: $(cat "$1")"
}
# value FILE SERIES: its value, 0 when absent
value() {
	local v
	v=$(python3 "$here/check_exposition.py" "$1" "$2")
	[ "$v" = absent ] && v=0
	echo "$v"
}
# moved SERIES EXPECTED_DELTA: the series moved by exactly that much
moved() {
	local a b
	a=$(value "$WORK/before" "$1")
	b=$(value "$WORK/after" "$1")
	[ "$(awk -v a="$a" -v b="$b" 'BEGIN { print b - a }')" = "$2" ] ||
		fail "$1: $a -> $b, expected +$2"
	echo "$1: $a -> $b"
}
# at_least FILE SERIES MIN
at_least() {
	local v
	v=$(value "$1" "$2")
	awk -v v="$v" -v m="$3" 'BEGIN { exit !(v >= m) }' || fail "$2 is $v, expected >= $3"
	echo "$2: $v (>= $3)"
}

echo "-- the listener: text format 0.0.4 at /metrics, nothing else"
headers=$(ns_exec "$GW" curl -sS --max-time 10 -D - -o /dev/null "$URL")
grep -qi '^Content-Type: text/plain; version=0.0.4; charset=utf-8' <<<"$headers" ||
	fail "content type: $headers"
status=$(ns_exec "$GW" curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9100/)
[ "$status" = 404 ] || fail "/ answered $status"
status=$(ns_exec "$GW" curl -s -o /dev/null -w '%{http_code}' -X POST "$URL")
[ "$status" = 405 ] || fail "POST answered $status"
# loopback only by default: not on the gateway's public address
ns_exec "$CL" curl -s --max-time 3 -o /dev/null http://198.18.0.1:9100/metrics &&
	fail "the metrics answer on the public address"

echo "-- before"
scrape "$WORK/before"
python3 "$here/check_exposition.py" "$WORK/before"
for plugin in core wireguard preauth dns firewall; do
	[ "$(value "$WORK/before" "meshgate_scrape_errors_total{plugin=\"$plugin\"}")" = 0 ] ||
		fail "$plugin: scrape errors"
done
[ "$(value "$WORK/before" 'meshgate_plugin_running{plugin="api"}')" = 1 ] || fail "core figures"
[ "$(value "$WORK/before" 'meshgate_ready')" = 1 ] || fail "not ready"
at_least "$WORK/before" 'meshgate_firewall_apply_seconds_count{kind="full"}' 1

echo "-- a device onboards, asks DNS 5 times, sends traffic; an unknown code is refused"
code=$(ctl user add alice --role developer --json | json_field code)
[ -n "$code" ] || fail "no code from user add"
client_up "$CL" "${TAG}c" "$code" >/dev/null || fail "meshgate up failed"
# traffic first: the tunnel is up (handshake done) before the 5 queries,
# each asked once (a slow machine, a sanitizer build: a long deadline)
wait_for 20 ns_exec "$CL" ping -c 1 -W 1 10.20.0.10 || fail "ping through the tunnel"
ns_exec "$CL" ping -c 3 -W 2 10.20.0.10 >/dev/null || fail "ping through the tunnel"
for _ in 1 2 3 4 5; do
	[ "$(ns_exec "$CL" dig @10.0.0.1 gitlab.corp.internal +short +time=10 +tries=1)" = 10.20.0.10 ] ||
		fail "gitlab.corp.internal through the tunnel"
done
rc=0
client_up "$CL" "${TAG}b" "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG" >/dev/null 2>&1 || rc=$?
[ "$rc" = 5 ] || fail "an unknown code: exit $rc, expected 5"

echo "-- after: the figures moved"
scrape "$WORK/after"
moved 'meshgate_devices{state="active",role="developer"}' 1
moved 'meshgate_onboardings_total{step="redeem"}' 1
moved 'meshgate_onboardings_total{step="register"}' 1
moved 'meshgate_onboarding_refusals_total{step="redeem",reason="unknown_code"}' 1
dns_before=$(value "$WORK/before" 'meshgate_dns_queries_total{transport="udp"}')
at_least "$WORK/after" 'meshgate_dns_queries_total{transport="udp"}' $((${dns_before%.*} + 5))
moved 'meshgate_dns_answers_total' 5
at_least "$WORK/after" 'meshgate_wireguard_handshake_age_seconds_count' 1
at_least "$WORK/after" 'meshgate_wireguard_peers' 1
at_least "$WORK/after" 'meshgate_wireguard_received_bytes_total{role="developer"}' 1000
at_least "$WORK/after" 'meshgate_wireguard_sent_bytes_total{role="developer"}' 1000

echo "-- a slow plugin and a malformed one do not spoil a scrape"
gateway_stop
mkdir -p "$WORK/plugins"
ln -s "$build"/plugins/* "$figures_dir"/*.so "$WORK/plugins/"
sed -i -e "s|^plugin_dir = .*|plugin_dir = \"$WORK/plugins\";|" \
	-e 's|^plugins = \[\(.*\)\];|plugins = [\1, "slowfigures", "badfigures"];|' \
	"$WORK/gw/meshgated.conf"
cat >>"$WORK/gw/meshgated.conf" <<'CONF'
slowfigures = { delay_ms = 4000; };
badfigures = { malformed = true; };
CONF
sed -i 's|^api = {|api = { metrics_timeout_ms = 1000;|' "$WORK/gw/meshgated.conf"
gateway_start
# the scrape's own time, as curl saw it
seconds=$(ns_exec "$GW" curl -sS --max-time 10 -o "$WORK/slow" -w '%{time_total}' "$URL") ||
	fail "scrape failed"
python3 "$here/check_exposition.py" "$WORK/slow" || fail "not well formed: $(cat "$WORK/slow")"
echo "the scrape took $seconds s (metrics_timeout_ms = 1000; the slow plugin takes 4 s)"
awk -v s="$seconds" 'BEGIN { exit !(s < 2.5) }' || fail "the scrape waited for the slow plugin"
[ "$(value "$WORK/slow" 'meshgate_scrape_errors_total{plugin="slowfigures"}')" = 1 ] ||
	fail "the slow plugin is not counted"
[ "$(value "$WORK/slow" 'meshgate_scrape_errors_total{plugin="badfigures"}')" = 1 ] ||
	fail "the malformed family is not counted"
grep -q '^meshgate_test_figures' "$WORK/slow" && fail "a test figure got through"
at_least "$WORK/slow" 'meshgate_devices{state="active",role="developer"}' 1
[ "$(value "$WORK/slow" 'meshgate_scrape_errors_total{plugin="preauth"}')" = 0 ] ||
	fail "preauth counted"
echo "metrics: ok"
