#!/bin/bash
# Path MTU discovery through a "hotspot", end to end, real WireGuard:
#
#   client ns 192.168.8.2 ── hotspot ns ══ uplink, MTU 1300 ══ gw ns 198.18.0.1
#                            (router)                          (meshgated, 10.0.0.1
#                                                               in the tunnel,
#                                                               an HTTP server there)
#
# The hotspot drops every IP fragment before conntrack could reassemble it
# (nft, prerouting priority -450) and black-holes the ICMP "fragmentation
# needed" it would send (dropped in its OUTPUT): a packet over 1300 bytes
# vanishes without a word, either way.
# - `meshgate up --mtu 1420` (WireGuard's default, discovery off): a 1 MB
#   download through the tunnel stalls (curl --max-time fails);
# - `meshgate up` (the agent finds the path MTU): the download completes;
#   the MTU chosen is printed, must be 1300 - 60 down to a multiple of 16
#   (WireGuard pads to 16), 1232, and the gateway has the
#   device's route with that MTU;
# - the uplink becomes a clean 1500 link: the agent's raise timer (3 s
#   here) finds it and raises the MTU to 1440; the time it took is printed.
# usage: pmtu.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/gateway.sh"
netns_init
[ "${KEEP_WORK:-0}" != 1 ] || echo "work dir: $WORK"
for tool in wireguard-go curl nft python3; do
	command -v "$tool" >/dev/null || fail "needs $tool"
done

ns_add GW gw
ns_add HOT hot
ns_add CL cl
UP_GW=${TAG}ug UP_HOT=${TAG}uh
ns_link "$GW" 198.18.0.1/24 "$HOT" 198.18.0.254/24 "$UP_GW" "$UP_HOT"
ns_link "$CL" 192.168.8.2/24 "$HOT" 192.168.8.1/24
ns_exec "$CL" ip route add default via 192.168.8.1
ns_exec "$GW" ip route add 192.168.8.0/24 via 198.18.0.254
ns_exec "$HOT" sysctl -qw net.ipv4.ip_forward=1
uplink_mtu() { ip -n "$HOT" link set "$UP_HOT" mtu "$1" && ip -n "$GW" link set "$UP_GW" mtu "$1"; }
uplink_mtu 1300
ns_exec "$HOT" nft -f - <<'NFT'
table ip hotspot {
	chain fragments {
		type filter hook prerouting priority -450; policy accept;
		ip frag-off & 0x3fff != 0 drop
	}
	chain no_too_big {
		type filter hook output priority 0; policy accept;
		icmp type destination-unreachable icmp code frag-needed drop
	}
}
NFT

STATE=$WORK/gw/state
WG_IF=${TAG}w
MESHGATE=$build/client/meshgate
IF=${TAG}c
CLIENT_DIRS=(--config-dir "$WORK/cl/etc" --state-dir "$WORK/cl/run")
mkdir -p "$WORK/gw" "$WORK/www"
cat >"$WORK/gw/meshgated.conf" <<CONF
state_dir = "$STATE";
socket = "$WORK/gw/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["wireguard", "preauth", "api"];
wireguard = { interface = "$WG_IF"; backend = "userspace"; address = "10.0.0.1/24";
              endpoint = "198.18.0.1:51820"; };
preauth = { networks = ["10.20.0.0/24"]; };
api = { listen = "0.0.0.0:8443"; names = ["198.18.0.1"]; };
CONF
gateway_start
head -c 1048576 /dev/urandom >"$WORK/www/1m"
# the HTTP server on the gateway address, inside the tunnel
ns_exec "$GW" python3 -m http.server 8080 --bind 10.0.0.1 --directory "$WORK/www" \
	>"$WORK/http.log" 2>&1 &
bg_track $!

client() { # client COMMAND [args]
	local cmd=$1
	shift
	ns_exec "$CL" "$MESHGATE" "$cmd" --interface "$IF" "${CLIENT_DIRS[@]}" "$@"
}
download() { # download SECONDS: 1 MB through the tunnel within that
	ns_exec "$CL" curl -sS -o /dev/null --max-time "$1" http://10.0.0.1:8080/1m
}
path_mtu() { # path_mtu FIELD: from status --json's path_mtu ("" when none)
	client status --json | python3 -c '
import json, sys
p = json.load(sys.stdin).get("path_mtu") or {}
print(p.get(sys.argv[1], ""))' "$1"
}
path_is() { [ "$(path_mtu path)" = "$1" ]; }
link_mtu() { ip -n "$CL" -o link show "$IF" | sed -n 's/.* mtu \([0-9]*\) .*/\1/p'; }
ms() { date +%s%3N; }

echo "-- fixed MTU 1420 (meshgate up --mtu 1420): the download stalls"
code=$(ctl user add hana --role developer --json | json_field code)
[ -n "$code" ] || fail "no code"
export MESHGATE_PMTU_RAISE_MS=3000
client up --server https://198.18.0.1:8443 --ca "$STATE/ca.pem" --backend userspace \
	--mtu 1420 "$code" >"$WORK/up.log" 2>&1 || fail "meshgate up --mtu 1420: $(cat "$WORK/up.log")"
[ "$(link_mtu)" = 1420 ] || fail "the tunnel's MTU is $(link_mtu), not 1420"
[ "$(path_mtu state)" = fixed ] || fail "path_mtu state $(path_mtu state), not fixed"
ns_exec "$CL" ping -c1 -W2 10.0.0.1 >/dev/null || fail "no small ping through the tunnel"
if download 6 2>"$WORK/curl.err"; then
	fail "1 MB came through the hotspot at MTU 1420: the black hole is not one"
fi
echo "   stalled as expected: $(cat "$WORK/curl.err")"
client down >/dev/null || fail "meshgate down"

echo "-- meshgate up (path MTU discovery): the agent finds the path, the download completes"
t0=$(ms)
client up --backend userspace >"$WORK/up2.log" 2>&1 || fail "meshgate up: $(cat "$WORK/up2.log")"
wait_for 30 path_is 1300 ||
	fail "no path MTU of 1300 found: $(path_mtu path), $(path_mtu state); $(cat "$WORK/cl/run/$IF.agent.log")"
found=$(path_mtu path) mtu=$(path_mtu mtu)
echo "   the agent chose MTU $mtu (path $found) $(($(ms) - t0)) ms after up"
[ "$mtu" = 1232 ] && [ "$(link_mtu)" = 1232 ] || fail "tunnel MTU $mtu / $(link_mtu), not 1232"
t1=$(ms)
download 15 2>"$WORK/curl.err" || fail "the download failed at MTU $mtu: $(cat "$WORK/curl.err")"
echo "   1 MB downloaded in $(($(ms) - t1)) ms"
client status | grep -q "path MTU: tunnel MTU 1232, .*path 1300, found" ||
	fail "meshgate status does not show the path MTU: $(client status)"
# the agent tells the gateway: a route of the device's own with that MTU
addr=$(sed -n 's/^Address = \([0-9.]*\).*/\1/p' "$WORK/cl/etc/$IF.conf")
wait_for 5 sh -c "ip -n $GW route show $addr | grep -q 'mtu 1232'" ||
	fail "the gateway has no route MTU for $addr: $(ip -n "$GW" route show)"
echo "   the gateway routes $addr with mtu 1232"

echo "-- the uplink becomes a clean 1500 link: the agent raises the MTU"
t0=$(ms)
uplink_mtu 1500
wait_for 30 path_is 1500 ||
	fail "the MTU was not raised: $(path_mtu path); $(tail -5 "$WORK/cl/run/$IF.agent.log")"
echo "   raised to MTU $(path_mtu mtu) (path 1500) $(($(ms) - t0)) ms after the change (raise timer 3 s)"
[ "$(link_mtu)" = 1440 ] || fail "tunnel MTU $(link_mtu), not 1440"
download 15 2>"$WORK/curl.err" || fail "the download failed at MTU 1440: $(cat "$WORK/curl.err")"
wait_for 5 sh -c "! ip -n $GW route show $addr | grep -q mtu" ||
	fail "the gateway kept a route MTU for $addr: $(ip -n "$GW" route show "$addr")"

client down >/dev/null || fail "meshgate down"
echo "pmtu: all checks passed"
