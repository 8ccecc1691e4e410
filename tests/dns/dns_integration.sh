#!/bin/bash
# The dns plugin in the real daemon, queried with dig through a real
# WireGuard tunnel:
#
#   cl ns: wireguard-go 10.0.0.2 ==tunnel== gw ns: meshgated (wireguard, preauth, dns)
#          veth 198.18.0.2 ------------------ 198.18.0.1 | 198.18.2.1 --- up ns: dnsmasq 198.18.2.2
#
# A device is onboarded through the bus (preauth.user.add, redeem, register
# with a key from `wg genkey`); the client namespace brings the tunnel up
# with that key and asks 10.0.0.1: the device's name, a service, a PTR, an
# unknown internal name (NXDOMAIN + SOA), an outside name (answered by the
# upstream dnsmasq after the first upstream times out), TCP, a truncated
# answer retried over TCP, runtime records, malformed packets. A query from
# outside the VPN is not answered; a disabled device's name is gone; with
# the upstream dead an outside name gets SERVFAIL. Everything made here is
# removed on exit, whatever the outcome (tests/lib/netns.sh).
# usage: dns_integration.sh BUILD_DIR PATH/TO/dns_probe
set -euo pipefail
build=$(realpath "$1")
probe=$(realpath "$2")
here=$(dirname "$(realpath "$0")")

if [ "$(id -u)" != 0 ]; then
	echo "SKIP: needs root"
	exit 77
fi
for tool in wireguard-go wg dig dnsmasq; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "SKIP: $tool not installed"
		exit 77
	fi
done

source "$here/../lib/netns.sh"
netns_init

ns_add GW gw
ns_add CL cl
ns_add UP up
ns_link "$GW" 198.18.0.1/24 "$CL" 198.18.0.2/24
ns_link "$GW" 198.18.2.1/24 "$UP" 198.18.2.2/24

echo "-- the upstream resolver: dnsmasq with a test zone"
ns_exec "$UP" dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts \
	--address=/example.test/198.18.5.5 --listen-address=198.18.2.2 --bind-interfaces \
	--user=root --pid-file="$WORK/dnsmasq.pid" >"$WORK/dnsmasq.log" 2>&1 &
UP_PID=$!
bg_track $UP_PID

echo "-- the gateway"
WG_IF=${TAG}w
records='{ name = "gitlab"; address = "172.19.0.10"; }'
for i in $(seq 1 100); do
	records="$records, { name = \"big\"; address = \"172.20.0.$i\"; }"
done
cat >"$WORK/meshgated.conf" <<CONF
state_dir = "$WORK/state";
socket = "$WORK/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["wireguard", "preauth", "dns"];
wireguard = { interface = "$WG_IF"; backend = "userspace"; address = "10.0.0.1/24";
              endpoint = "198.18.0.1:51820"; };
dns = {
  listen = ["10.0.0.1:53", "198.18.0.1:53", "127.0.0.1:53"];
  zone = "corp.internal";
  upstream = ["198.18.2.99", "198.18.2.2"];
  upstream_timeout_ms = 500;
  records = ( $records );
};
CONF
ns_exec "$GW" "$build/core/meshgated" --config "$WORK/meshgated.conf" >"$WORK/meshgated.log" 2>&1 &
bg_track $!
ctl() { "$build/cli/meshgatectl" --socket "$WORK/bus.sock" "$@"; }
running() { ctl status 2>/dev/null | grep -qE '^dns +[^ ]+ +running'; }
wait_for 15 running || { cat "$WORK/meshgated.log"; fail "meshgated did not start"; }

echo "-- a device, onboarded through the bus"
# field NAME: the first "NAME": "value" of the JSON on stdin
field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -1; }
code=$(ctl --json call preauth.user.add '{"name": "alice", "role": "developer"}' | field code)
redeem=$(ctl --json call preauth.redeem "{\"code\": \"$code\", \"name\": \"alice-laptop\"}")
device=$(field device_id <<<"$redeem")
address=$(field address <<<"$redeem")
server_key=$(field server_public_key <<<"$redeem")
(umask 077 && wg genkey >"$WORK/client.key")
client_pub=$(wg pubkey <"$WORK/client.key")
ctl call preauth.register "{\"device_id\": \"$device\", \"register_token\": \
\"$(field register_token <<<"$redeem")\", \"public_key\": \"$client_pub\", \
\"address\": \"$address\"}" >/dev/null
[ "$address" = "10.0.0.2/32" ] || fail "the device got $address"

echo "-- the client's tunnel"
CL_IF=${TAG}c
ns_exec "$CL" wireguard-go "$CL_IF" >"$WORK/wg-client.log" 2>&1
ns_exec "$CL" wg set "$CL_IF" private-key "$WORK/client.key" peer "$server_key" \
	endpoint 198.18.0.1:51820 allowed-ips 10.0.0.0/24 persistent-keepalive 1
ns_exec "$CL" ip addr add 10.0.0.2/32 dev "$CL_IF"
ns_exec "$CL" ip link set "$CL_IF" up
ns_exec "$CL" ip route add 10.0.0.0/24 dev "$CL_IF"

# dig from the client through the tunnel; +short unless told otherwise
q() { ns_exec "$CL" dig @10.0.0.1 +time=3 +tries=2 "$@"; }
answer() { q +short "$@" | sort | tr '\n' ' ' | sed 's/ $//'; }
expect() { # WANT dig-args...
	local want=$1 got
	shift
	got=$(answer "$@")
	[ "$got" = "$want" ] || fail "dig $*: '$got', expected '$want'"
	echo "ok: $* -> $got"
}
wait_for 15 sh -c "ip netns exec $CL dig @10.0.0.1 +time=1 +tries=1 +short gitlab.corp.internal | grep -q 172.19.0.10" ||
	{ ns_exec "$CL" wg show; wg show "$WG_IF" 2>/dev/null || true; fail "no answer through the tunnel"; }

echo "-- names"
expect 10.0.0.2 alice-laptop.corp.internal
expect 10.0.0.2 ALICE-LAPTOP.Corp.Internal
expect 172.19.0.10 gitlab.corp.internal
expect alice-laptop.corp.internal. -x 10.0.0.2
out=$(q nobody.corp.internal)
grep -q 'status: NXDOMAIN' <<<"$out" || fail "nobody.corp.internal: $out"
grep -q 'AUTHORITY: 1' <<<"$out" && grep -q 'corp.internal.*SOA.*ns.corp.internal' <<<"$out" ||
	fail "no SOA with the NXDOMAIN: $out"
grep -q 'flags: qr aa' <<<"$out" || fail "NXDOMAIN is not authoritative: $out"
echo "ok: nobody.corp.internal -> NXDOMAIN with the SOA"

echo "-- an outside name: the first upstream times out, the second answers"
expect 198.18.5.5 www.example.test
expect 198.18.5.5 other.example.test

echo "-- TCP, and a truncated answer retried over TCP"
expect 172.19.0.10 +tcp gitlab.corp.internal
out=$(q +ignore +noedns big.corp.internal)
grep -q 'flags: qr aa tc' <<<"$out" || fail "big over UDP is not truncated: $out"
out=$(q +ignore big.corp.internal)
grep -q 'flags: qr aa tc' <<<"$out" || fail "big over UDP with EDNS is not truncated"
echo "ok: big.corp.internal over UDP -> TC"
n=$(q +short big.corp.internal | wc -l)
[ "$n" = 100 ] || fail "big.corp.internal after the retry over TCP: $n addresses"
echo "ok: big.corp.internal, dig's retry over TCP -> 100 addresses"

echo "-- records at runtime"
ctl dns add wiki 172.19.0.20 >/dev/null
expect 172.19.0.20 wiki.corp.internal
expect wiki.corp.internal. -x 172.19.0.20
ctl dns list >"$WORK/list.txt"
ctl dns list --json >"$WORK/list.json"
grep -qE "^alice-laptop.corp.internal +A +10.0.0.2 +device +$device\$" "$WORK/list.txt" ||
	fail "dns list lacks the device"
grep -q '"name": "wiki.corp.internal"' "$WORK/list.json" || fail "dns list --json lacks wiki"
ctl dns del wiki >/dev/null
q wiki.corp.internal | grep -q 'status: NXDOMAIN' || fail "wiki is still there"
echo "ok: dns add, list, del"

echo "-- malformed packets leave the server answering"
ns_exec "$CL" "$probe" 10.0.0.1 || fail "malformed packets"
expect 172.19.0.10 gitlab.corp.internal

echo "-- from outside the VPN: no answer (not an open resolver)"
refused() { ctl dns stats | awk '$1 == "refused_sources" {print $2}'; }
before=$(refused)
if ns_exec "$CL" dig @198.18.0.1 +time=1 +tries=1 gitlab.corp.internal >/dev/null 2>&1; then
	fail "198.18.0.2 got an answer over UDP"
fi
if ns_exec "$CL" dig @198.18.0.1 +tcp +time=1 +tries=1 gitlab.corp.internal >/dev/null 2>&1; then
	fail "198.18.0.2 got an answer over TCP"
fi
after=$(refused)
[ "$after" -ge $((before + 2)) ] || fail "refused_sources went from $before to $after"
echo "ok: queries from 198.18.0.2 ignored ($before -> $after)"

echo "-- a disabled device's name is gone at once"
ctl call preauth.device.disable "{\"id\": \"$device\"}" >/dev/null
out=$(ns_exec "$GW" dig @127.0.0.1 +time=2 alice-laptop.corp.internal)
grep -q 'status: NXDOMAIN' <<<"$out" || fail "alice-laptop after disable: $out"
ctl call preauth.device.enable "{\"id\": \"$device\"}" >/dev/null
[ "$(ns_exec "$GW" dig @127.0.0.1 +short alice-laptop.corp.internal)" = 10.0.0.2 ] ||
	fail "alice-laptop after enable"
echo "ok: disable -> NXDOMAIN, enable -> back"

echo "-- no upstream answers: SERVFAIL"
kill "$(cat "$WORK/dnsmasq.pid")"
wait_for 5 sh -c "! ip netns pids $UP | grep -q ."
out=$(ns_exec "$GW" dig @127.0.0.1 +time=4 +tries=1 www.example.test)
grep -q 'status: SERVFAIL' <<<"$out" || fail "with the upstream dead: $out"
echo "ok: SERVFAIL"
ctl dns stats

echo "-- meshgated stops cleanly (the dns plugin's threads and sockets go)"
gw_pid=$(for p in $(ip netns pids "$GW"); do
	if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = meshgated ]; then echo "$p"; fi
done)
[ -n "$gw_pid" ] || fail "meshgated is not running"
kill -TERM "$gw_pid"
wait_for 15 sh -c "! kill -0 $gw_pid 2>/dev/null" || fail "meshgated did not stop"
grep -q 'stopped dns' "$WORK/meshgated.log" || { cat "$WORK/meshgated.log"; fail "dns did not stop"; }
if grep -qE 'Sanitizer|runtime error' "$WORK/meshgated.log"; then
	cat "$WORK/meshgated.log"
	fail "sanitizer report"
fi
echo "dns integration: all checks passed"
