#!/bin/bash
# Onboarding end to end, with real WireGuard (wireguard-go) and real packets:
#
#   client ns (198.18.0.2) --- gw ns (198.18.0.1 | 10.20.0.1) --- svc ns (10.20.0.10)
#                               meshgated: wireguard, preauth, api
#
# An admin adds a user; the client runs `meshgate up` with the code; ping and
# TCP through the tunnel reach the internal service; the gateway's `wg show`
# lists the peer with a handshake; the API answers through the tunnel too
# (the VPN side of a public-only listen). Then the config exported for the official
# apps is brought up with the real wg-quick in a fresh namespace. Then bad
# codes (unknown, used, expired, revoked) each stop with their message and
# change nothing.
# usage: onboarding.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/gateway.sh"
netns_init

# with the dns plugin: the device's config carries the gateway's name server
GATEWAY_EXTRA_PLUGINS=', "dns"'
GATEWAY_EXTRA_CONF='dns = { listen = ["10.0.0.1:53"]; zone = "corp.internal";
        records = ( { name = "gitlab"; address = "10.20.0.10"; } ); };'
gateway_up   # GW, CL, SVC namespaces, meshgated running: see gateway.sh

echo "-- admin adds a user"
code=$(ctl user add alice --role developer --json | json_field code)
[ -n "$code" ] || fail "no code from user add"
ctl user list | grep -q '^alice .*developer' || fail "alice not listed"

echo "-- the employee runs meshgate up"
up_out=$(client_up "$CL" "${TAG}c" "$code") || fail "meshgate up failed: $up_out"
echo "$up_out"

echo "-- the device's config names the gateway's DNS; names resolve through the tunnel"
grep -q '^DNS = 10.0.0.1, corp.internal$' "$WORK/cl/etc/${TAG}c.conf" || fail "no DNS line"
grep -q "not configured: inside a network namespace" <<<"$up_out" ||
	fail "the client should leave the host's resolver alone in a namespace"
[ "$(ns_exec "$CL" dig @10.0.0.1 gitlab.corp.internal +short +time=2 +tries=1)" = 10.20.0.10 ] ||
	fail "gitlab.corp.internal through the tunnel"

echo "-- traffic through the tunnel to the internal service"
ns_exec "$CL" ping -c 2 -W 2 10.20.0.10 >/dev/null || fail "ping through the tunnel"
reply=$(echo hello | ns_exec "$CL" ncat --no-shutdown -w 3 10.20.0.10 7000) || fail "TCP through the tunnel"
[ "$reply" = "svc:hello" ] || fail "TCP reply was '$reply'"
echo "ping and TCP to 10.20.0.10 through the tunnel: ok"

echo "-- the API through the tunnel: listen is the public address, the VPN side listens too"
body=$(ns_exec "$CL" curl -sS --max-time 5 --cacert "$STATE/ca.pem" \
	https://10.0.0.1:8443/api/v1/device/config) || fail "device config through the tunnel"
[ "$(json_field role <<<"$body")" = developer ] || fail "device config: $body"
sync_out=$(ns_exec "$CL" "$MESHGATE" sync --interface "${TAG}c" "${CLIENT_DIRS[@]}") ||
	fail "meshgate sync: $sync_out"
grep -q 'networks up to date (role developer): 10.0.0.0/24, 10.20.0.0/24' <<<"$sync_out" ||
	fail "meshgate sync: $sync_out"
echo "$sync_out"

echo "-- the gateway lists the peer with a handshake"
show=$(wg show "$WG_IF" latest-handshakes)
echo "$show"
[ "$(echo "$show" | awk '$2 > 0' | wc -l)" = 1 ] || fail "no handshake on the gateway"
ctl device list | grep -q ' active ' || fail "device not active"
# the interface's peers equal the active devices
[ "$(wg show "$WG_IF" peers | wc -l)" = "$(ctl device list | grep -c ' active ')" ] ||
	fail "peers differ from active devices"

echo "-- a config exported for the official apps, brought up with wg-quick"
code2=$(ctl user add bob --role developer --json | json_field code)
ns_add EXP exp
ns_link "$GW" 198.18.1.1/24 "$EXP" 198.18.1.2/24
# the exported config is for another host: it dials the gateway's endpoint
ns_exec "$EXP" ip route add 198.18.0.0/24 via 198.18.1.1
ns_exec "$CL" "$MESHGATE" up --server "https://198.18.0.1:8443" --ca "$STATE/ca.pem" \
	--export "$WORK/${TAG}x.conf" "$code2" || fail "export"
[ "$(stat -c %a "$WORK/${TAG}x.conf")" = 600 ] || fail "exported config is not 0600"
grep -q '^PrivateKey = ' "$WORK/${TAG}x.conf" || fail "no private key in the export"
# wg-quick knows nothing of meshgate's comment lines nor of DNS here
grep -v '^DNS' "$WORK/${TAG}x.conf" >"$WORK/${TAG}x.wg.conf" && mv "$WORK/${TAG}x.wg.conf" "$WORK/${TAG}x.conf"
chmod 600 "$WORK/${TAG}x.conf"
WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go ns_exec "$EXP" wg-quick up "$WORK/${TAG}x.conf" \
	>"$WORK/wg-quick.log" 2>&1 || { cat "$WORK/wg-quick.log"; fail "wg-quick up"; }
ns_exec "$EXP" ping -c 2 -W 2 10.20.0.10 >/dev/null || fail "ping through the wg-quick tunnel"
echo "wg-quick tunnel passes traffic: ok"
WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go ns_exec "$EXP" wg-quick down "$WORK/${TAG}x.conf" \
	>/dev/null 2>&1 || true

echo "-- bad codes stop the flow and change nothing"
before_devices=$(ctl device list --json | grep -c '"id"')
expect_refusal() { # CODE EXIT MESSAGE
	local out rc=0
	out=$(client_up "$CL" "${TAG}b" "$1" 2>&1) || rc=$?
	[ "$rc" = "$2" ] || fail "code '$1': exit $rc, expected $2 ($out)"
	grep -q "$3" <<<"$out" || fail "code '$1': message '$out' lacks '$3'"
	ip -n "$CL" link show "${TAG}b" >/dev/null 2>&1 && fail "an interface was left behind"
	echo "refused: $out"
}
expect_refusal "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG" 5 "unknown"
expect_refusal "$code" 6 "used"
revoked=$(ctl user add carol --role developer --json | json_field code)
ctl code revoke "$revoked" >/dev/null
expect_refusal "$revoked" 7 "revoked"
expired=$(ctl code add carol --expires 1s --json | json_field code)
sleep 2
expect_refusal "$expired" 7 "expired"
after_devices=$(ctl device list --json | grep -c '"id"')
[ "$before_devices" = "$after_devices" ] || fail "devices changed: $before_devices -> $after_devices"

echo "-- 100 concurrent redeems of one code over HTTPS: exactly one succeeds"
code3=$(ctl user add dave --role developer --json | json_field code)
curls=()
for _ in $(seq 100); do
	ip netns exec "$CL" curl -s -o /dev/null -w '%{http_code}\n' --cacert "$STATE/ca.pem" \
		-H 'Content-Type: application/json' -d "{\"code\": \"$code3\"}" \
		https://198.18.0.1:8443/api/v1/redeem >>"$WORK/statuses" &
	curls+=($!)
done
wait "${curls[@]}" || true
sort "$WORK/statuses" | uniq -c
[ "$(grep -c '^200$' "$WORK/statuses")" = 1 ] || fail "not exactly one redeem succeeded"
# the others: code already used (409), or rate limited (429) after ten failures
[ "$(grep -cvE '^(200|409|429)$' "$WORK/statuses")" = 0 ] || fail "unexpected statuses"
[ "$(ctl device list --json --user dave | grep -c '"id"')" = 1 ] || fail "dave has not exactly one device"

echo "-- meshgate down removes the tunnel"
ns_exec "$CL" "$MESHGATE" down --interface "${TAG}c" "${CLIENT_DIRS[@]}" || fail "meshgate down"
ip -n "$CL" link show "${TAG}c" >/dev/null 2>&1 && fail "interface still there after down"
echo "onboarding: all checks passed"
