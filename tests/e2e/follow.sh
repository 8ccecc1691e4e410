#!/bin/bash
# A device follows its role's networks, end to end, with real WireGuard
# (wireguard-go), the firewall and real packets:
#
#   client ns (198.18.0.2) ──┐                          ┌── svc ns  10.20.0.10 (admin)
#   pin client ns (198.18.2.2)┴── gw ns (meshgated) ────┴── svc2 ns 10.21.0.10 (a route
#                                 wireguard, preauth, api,            added at runtime)
#                                 firewall; 10.0.0.1 on the VPN
#
# The firewall's roles: developer = ["vpn"], admin = ["vpn", "10.20.0.0/24"];
# preauth has no `networks`, so the policy alone decides what a device routes.
# A developer's device onboards with `meshgate up` and cannot reach
# 10.20.0.10. Its user becomes admin: `meshgate sync` adds the network, in
# place (same wireguard-go, same handshake), and the service answers. A route
# added at runtime (`meshgatectl route add`) and withdrawn follows the same
# way, also for a device enrolled with --pin. A config exported for the
# official apps carries the role's networks of that moment. The API answers
# the device config through the tunnel only (403 from outside), with TLS
# verified against the enrolment's CA (a rogue one fails). `meshgate watch`
# follows role changes by itself and stops cleanly on SIGTERM; a reconnect
# (`meshgate up` from the saved config) follows what changed while it was down.
# Those devices come up with --no-agent, to follow by hand; a device left
# with its agent (plain `meshgate up`) gets a route added within 1 s,
# pushed, with no command on it.
# usage: follow.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/gateway.sh"
netns_init

GATEWAY_EXTRA_PLUGINS=', "firewall"'
CLIENT_UP_OPTS=(--no-agent)
GATEWAY_PREAUTH_CONF='' # no preauth.networks: the firewall's policy decides
GATEWAY_API_LISTEN='0.0.0.0:8443'
GATEWAY_EXTRA_CONF='firewall = { roles = { developer = ["vpn"]; admin = ["vpn", "10.20.0.0/24"]; }; };'
gateway_up # GW, CL, SVC namespaces, meshgated running: see gateway.sh

# a second network behind the gateway, for a route added at runtime
SVC2_IF=${TAG}s2
ns_add SVC2 svc2
ns_link "$GW" 10.21.0.1/24 "$SVC2" 10.21.0.10/24 "$SVC2_IF" "${TAG}s2b"
ns_exec "$SVC2" ip route add default via 10.21.0.1

IF=${TAG}c
client() { # client COMMAND [args]: meshgate for the first device
	local cmd=$1
	shift
	ns_exec "$CL" "$MESHGATE" "$cmd" --interface "$IF" "${CLIENT_DIRS[@]}" "$@"
}
sync_out() { client sync 2>&1 || fail "meshgate sync failed: $(client sync 2>&1)"; }
reaches() { ns_exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1; }
routed() { ip -n "$1" route show "$2" | grep -q "dev $3"; }
status_field() { # status_field NAME: from meshgate status --json
	client status --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
config_allowed() { sed -n 's/^AllowedIPs = //p' "$WORK/cl/etc/$IF.conf"; }
wg_allowed() { ns_exec "$CL" wg show "$IF" allowed-ips | cut -f2; }

echo "-- the API's certificate names the VPN gateway address"
wait_for 10 bash -c "openssl x509 -in '$STATE/api-server.pem' -noout -ext subjectAltName | grep -q 'IP Address:10.0.0.1'" ||
	fail "the server certificate does not name 10.0.0.1"

echo "-- a developer's device onboards"
code=$(ctl user add erin --role developer --json | json_field code)
[ -n "$code" ] || fail "no code from user add"
up_out=$(client_up "$CL" "$IF" "$code") || fail "meshgate up failed: $up_out"
echo "$up_out"
grep -q "meshgate watch --interface $IF" <<<"$up_out" || fail "up does not mention meshgate watch"
grep -q '^# MeshgateVpnApi = https://10.0.0.1:8443$' "$WORK/cl/etc/$IF.conf" || fail "no MeshgateVpnApi in the config"
grep -q "^# MeshgateCA = $IF.ca.pem\$" "$WORK/cl/etc/$IF.conf" || fail "no MeshgateCA in the config"
[ "$(stat -c %a "$WORK/cl/etc/$IF.ca.pem")" = 600 ] || fail "the CA copy is not 0600"
cmp -s "$WORK/cl/etc/$IF.ca.pem" "$STATE/ca.pem" || fail "the CA copy differs from ca.pem"
[ "$(config_allowed)" = "10.0.0.0/24" ] || fail "developer config routes $(config_allowed)"
routed "$CL" 10.20.0.0/24 "$IF" && fail "a developer has a route to 10.20.0.0/24"
reaches "$CL" 10.20.0.10 && fail "a developer reaches 10.20.0.10"
echo "developer: routes 10.0.0.0/24 only, 10.20.0.10 unreachable: ok"

echo "-- the device config: through the tunnel only"
status=$(ns_exec "$CL" curl -s -o /dev/null -w '%{http_code}' --cacert "$STATE/ca.pem" \
	https://198.18.0.1:8443/api/v1/device/config) || true
[ "$status" = 403 ] || fail "device config from outside the tunnel: $status, expected 403"
body=$(ns_exec "$CL" curl -sS --cacert "$STATE/ca.pem" https://10.0.0.1:8443/api/v1/device/config) ||
	fail "device config through the tunnel"
echo "$body"
[ "$(json_field role <<<"$body")" = developer ] || fail "device config: role"
[ "$(json_field address <<<"$body")" = 10.0.0.2/32 ] || fail "device config: address"
[ "$(json_field vpn_api <<<"$body")" = https://10.0.0.1:8443 ] || fail "device config: vpn_api"
grep -q "\"device_id\": *\"$(sed -n 's/^# MeshgateDeviceId = //p' "$WORK/cl/etc/$IF.conf")\"" <<<"$body" ||
	fail "device config: another device id"

pid0=$(status_field pid)
hs0=$(status_field last_handshake)
rx0=$(status_field rx_bytes)

echo "-- the user becomes admin; meshgate sync adds the network in place"
ctl user set-role erin admin >/dev/null
out=$(sync_out)
echo "$out"
grep -qx '+ 10.20.0.0/24' <<<"$out" || fail "sync did not print + 10.20.0.0/24"
wait_for 5 reaches "$CL" 10.20.0.10 || fail "10.20.0.10 unreachable after the sync"
reply=$(echo hello | ns_exec "$CL" ncat --no-shutdown -w 3 10.20.0.10 7000) || fail "TCP to 10.20.0.10"
[ "$reply" = "svc:hello" ] || fail "TCP reply was '$reply'"
[ "$(config_allowed)" = "10.0.0.0/24, 10.20.0.0/24" ] || fail "saved config routes $(config_allowed)"
[ "$(stat -c %a "$WORK/cl/etc/$IF.conf")" = 600 ] || fail "the rewritten config is not 0600"
grep -qx 10.20.0.0/24 <(wg_allowed | tr ' ' '\n') || fail "the peer lacks 10.20.0.0/24: $(wg_allowed)"
[ "$(status_field pid)" = "$pid0" ] || fail "wireguard-go was restarted"
[ "$(status_field last_handshake)" = "$hs0" ] || fail "a new handshake: $hs0 -> $(status_field last_handshake)"
[ "$(status_field rx_bytes)" -ge "$rx0" ] || fail "the counters were reset"
echo "admin: 10.20.0.10 reachable, same wireguard-go ($pid0), same handshake ($hs0): ok"
out=$(sync_out)
grep -q 'networks up to date (role admin): 10.0.0.0/24, 10.20.0.0/24' <<<"$out" ||
	fail "a second sync: $out"

echo "-- a config exported for the official apps carries the admin networks"
export_code=$(ctl code add erin --json | json_field code)
ns_exec "$CL" "$MESHGATE" up --server "https://198.18.0.1:8443" --ca "$STATE/ca.pem" \
	--export "$WORK/${TAG}x.conf" "$export_code" >/dev/null || fail "export"
grep -qx 'AllowedIPs = 10.0.0.0/24, 10.20.0.0/24' "$WORK/${TAG}x.conf" ||
	fail "export routes $(grep AllowedIPs "$WORK/${TAG}x.conf")"
grep -q Meshgate "$WORK/${TAG}x.conf" && fail "meshgate's comments in the export"

echo "-- a route added at runtime for admin; sync"
ctl route add 10.21.0.0/24 --via "$SVC2_IF" --roles admin >/dev/null
reaches "$CL" 10.21.0.10 && fail "10.21.0.10 reachable before the sync"
out=$(sync_out)
echo "$out"
grep -qx '+ 10.21.0.0/24' <<<"$out" || fail "sync did not print + 10.21.0.0/24"
wait_for 5 reaches "$CL" 10.21.0.10 || fail "10.21.0.10 unreachable after the sync"
[ "$(config_allowed)" = "10.0.0.0/24, 10.20.0.0/24, 10.21.0.0/24" ] || fail "saved config routes $(config_allowed)"
export_code=$(ctl code add erin --json | json_field code)
ns_exec "$CL" "$MESHGATE" up --server "https://198.18.0.1:8443" --ca "$STATE/ca.pem" \
	--export "$WORK/${TAG}y.conf" "$export_code" >/dev/null || fail "export"
grep -qx 'AllowedIPs = 10.0.0.0/24, 10.20.0.0/24, 10.21.0.0/24' "$WORK/${TAG}y.conf" ||
	fail "export with the route: $(grep AllowedIPs "$WORK/${TAG}y.conf")"
echo "10.21.0.10 reachable after route add + sync; the export carries it: ok"

echo "-- a device enrolled with --pin follows too"
ns_add CL2 cl2
ns_link "$GW" 198.18.2.1/24 "$CL2" 198.18.2.2/24
ns_exec "$CL2" ip route add 198.18.0.0/24 via 198.18.2.1
IF2=${TAG}d
CL2_DIRS=(--config-dir "$WORK/cl2/etc" --state-dir "$WORK/cl2/run")
fp=$(openssl x509 -in "$STATE/ca.pem" -outform DER | sha256sum | cut -d' ' -f1)
code2=$(ctl user add frank --role admin --json | json_field code)
ns_exec "$CL2" "$MESHGATE" up --server "https://198.18.0.1:8443" --pin "$fp" --interface "$IF2" \
	--backend userspace --no-agent "${CL2_DIRS[@]}" "$code2" >/dev/null || fail "meshgate up --pin"
grep -q "^# MeshgatePin = $fp\$" "$WORK/cl2/etc/$IF2.conf" || fail "no MeshgatePin in the config"
out=$(ns_exec "$CL2" "$MESHGATE" sync --interface "$IF2" "${CL2_DIRS[@]}" 2>&1) || fail "pinned sync: $out"
grep -q 'networks up to date (role admin): 10.0.0.0/24, 10.20.0.0/24, 10.21.0.0/24' <<<"$out" ||
	fail "pinned sync: $out"

echo "-- the route is withdrawn; sync removes it"
ctl route del 10.21.0.0/24 >/dev/null
out=$(sync_out)
echo "$out"
grep -qx -- '- 10.21.0.0/24' <<<"$out" || fail "sync did not print - 10.21.0.0/24"
routed "$CL" 10.21.0.0/24 "$IF" && fail "the route to 10.21.0.0/24 is still there"
wg_allowed | tr ' ' '\n' | grep -qx 10.21.0.0/24 && fail "the peer still has 10.21.0.0/24"
[ "$(config_allowed)" = "10.0.0.0/24, 10.20.0.0/24" ] || fail "saved config routes $(config_allowed)"
reaches "$CL" 10.20.0.10 || fail "10.20.0.10 lost with the route"
out=$(ns_exec "$CL2" "$MESHGATE" sync --interface "$IF2" "${CL2_DIRS[@]}" 2>&1) || fail "pinned sync: $out"
grep -qx -- '- 10.21.0.0/24' <<<"$out" || fail "pinned sync after route del: $out"
echo "route gone from both devices: ok"

echo "-- TLS is verified: a rogue CA in place of the enrolment's fails"
cp "$WORK/cl/etc/$IF.ca.pem" "$WORK/ca.keep"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=rogue \
	-keyout "$WORK/rogue.key" -out "$WORK/cl/etc/$IF.ca.pem" -days 1 2>/dev/null
rc=0
out=$(client sync 2>&1) || rc=$?
[ "$rc" = 3 ] || fail "sync with a rogue CA: exit $rc ($out)"
echo "refused: $out"
cp "$WORK/ca.keep" "$WORK/cl/etc/$IF.ca.pem"

echo "-- meshgate watch follows role changes by itself"
ip netns exec "$CL" "$MESHGATE" watch --interface "$IF" --interval 1 "${CLIENT_DIRS[@]}" \
	>"$WORK/watch.log" 2>&1 &
WATCH_PID=$!
bg_track $WATCH_PID
ctl user set-role erin developer >/dev/null
wait_for 10 bash -c "! ip -n $CL route show 10.20.0.0/24 | grep -q 'dev $IF'" ||
	fail "watch did not remove 10.20.0.0/24: $(cat "$WORK/watch.log")"
ctl user set-role erin admin >/dev/null
wait_for 10 routed "$CL" 10.20.0.0/24 "$IF" || fail "watch did not add 10.20.0.0/24 back: $(cat "$WORK/watch.log")"
wait_for 5 reaches "$CL" 10.20.0.10 || fail "10.20.0.10 unreachable under watch"
kill -TERM "$WATCH_PID"
rc=0
wait "$WATCH_PID" || rc=$?
cat "$WORK/watch.log"
[ "$rc" = 0 ] || fail "watch exited $rc on SIGTERM"
grep -qx -- '- 10.20.0.0/24' "$WORK/watch.log" || fail "watch did not report - 10.20.0.0/24"
grep -qx '+ 10.20.0.0/24' "$WORK/watch.log" || fail "watch did not report + 10.20.0.0/24"
grep -q 'stopped following' "$WORK/watch.log" || fail "watch did not say it stopped"
[ "$(status_field pid)" = "$pid0" ] || fail "wireguard-go was restarted under watch"

echo "-- a reconnect follows what changed while the tunnel was down"
client down >/dev/null
rc=0
out=$(client sync 2>&1) || rc=$?
[ "$rc" = 10 ] || fail "sync of a tunnel that is down: exit $rc ($out)"
ctl user set-role erin developer >/dev/null
out=$(client up --backend userspace --no-agent) || fail "meshgate up (reconnect): $out"
echo "$out"
grep -qx -- '- 10.20.0.0/24' <<<"$out" || fail "the reconnect did not follow the role"
routed "$CL" 10.20.0.0/24 "$IF" && fail "10.20.0.0/24 routed after the reconnect"
[ "$(config_allowed)" = "10.0.0.0/24" ] || fail "saved config routes $(config_allowed)"
client down --forget >/dev/null
[ -e "$WORK/cl/etc/$IF.ca.pem" ] && fail "down --forget left the CA copy"

echo "-- with its agent, a device gets a route added at runtime within 1 s, by push"
code3=$(ctl user add gina --role admin --json | json_field code)
CLIENT_UP_OPTS=()
up_out=$(client_up "$CL" "$IF" "$code3") || fail "meshgate up with its agent: $up_out"
grep -q "agent [0-9]* follows" <<<"$up_out" || fail "no agent after up: $up_out"
routed "$CL" 10.21.0.0/24 "$IF" && fail "10.21.0.0/24 routed before the route was added"
t0=$(date +%s%3N)
ctl route add 10.21.0.0/24 --via "$SVC2_IF" --roles admin >/dev/null
wait_for 3 routed "$CL" 10.21.0.0/24 "$IF" || fail "the route did not reach the device's agent"
took=$(($(date +%s%3N) - t0))
echo "   10.21.0.0/24 routed on the device $took ms after route add"
[ "$took" -le 1000 ] || fail "the route took $took ms (> 1000)"
wait_for 5 reaches "$CL" 10.21.0.10 || fail "10.21.0.10 unreachable through the pushed route"
client down --forget >/dev/null
[ -z "$(ls "$WORK/cl/run/"*.agent.pid 2>/dev/null)" ] || fail "down left the agent's pid file"

echo "-- the gateway stops cleanly (under ASan: no leak, no report)"
kill -TERM "$GW_PID"
rc=0
wait "$GW_PID" || rc=$?
[ "$rc" = 0 ] || { tail -30 "$WORK/gw/meshgated.log"; fail "meshgated exited $rc"; }
grep -q "Sanitizer\|runtime error:" "$WORK/gw/meshgated.log" && fail "sanitizer reports in the daemon's log"
echo "follow: all checks passed"
