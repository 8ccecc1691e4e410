#!/bin/bash
# Defaults that derive from the VPN address follow it. The gateway's VPN is
# 10.77.0.1/16 (not the 10.0.0.1/24 of wireguard's default) and dns, api and
# firewall leave their derived settings unset:
#
#   d1 ns: wireguard-go 10.77.0.2 ─┐
#                                  ├─ gw ns: meshgated (wireguard, preauth, api, firewall, dns)
#   d2 ns: wireguard-go 10.77.0.3 ─┘   10.77.0.1 on the VPN, 198.18.0.1 public
#
# Through the tunnel: dns answers on 10.77.0.1:53 (its default listen), and
# dns_node/server tells devices 10.77.0.1 (in the redeem reply); ns.corp.internal
# is 10.77.0.1 and 10.77.0.1 has a PTR; the api's VPN listener is on
# 10.77.0.1:8443; the firewall's "vpn" subnet is 10.77.0.0/16, so one
# device reaches the other, while the gateway's own other ports stay closed.
# usage: vpn_subnet.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")

if [ "$(id -u)" != 0 ]; then
	echo "SKIP: needs root"
	exit 77
fi
for tool in wireguard-go wg dig ncat curl iptables ipset; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "SKIP: $tool not installed"
		exit 77
	fi
done

source "$here/../lib/netns.sh"
netns_init

ns_add GW gw
ns_add D1 d1
ns_add D2 d2
ns_add PUB pub
ns_link "$GW" 198.18.0.1/24 "$PUB" 198.18.0.2/24
ns_link "$GW" 198.18.1.1/24 "$D1" 198.18.1.2/24
ns_link "$GW" 198.18.2.1/24 "$D2" 198.18.2.2/24
ns_exec "$D1" ip route add 198.18.0.0/24 via 198.18.1.1
ns_exec "$D2" ip route add 198.18.0.0/24 via 198.18.2.1
ns_exec "$GW" sysctl -qw net.ipv4.ip_forward=1

WG_IF=${TAG}w
mkdir -p "$WORK/gw"
cat >"$WORK/gw/meshgated.conf" <<CONF
state_dir = "$WORK/gw/state";
socket = "$WORK/gw/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["wireguard", "preauth", "api", "firewall", "dns"];
wireguard = { interface = "$WG_IF"; backend = "userspace"; address = "10.77.0.1/16";
              endpoint = "198.18.0.1:51820"; };
api = { listen = "198.18.0.1:8443"; names = ["198.18.0.1"]; };
dns = { zone = "corp.internal"; records = ( { name = "gitlab"; address = "172.19.0.10"; } ); };
CONF
ctl() { "$build/cli/meshgatectl" --socket "$WORK/gw/bus.sock" "$@"; }
json_field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -1; }
running() {
	local s
	s=$(ctl status 2>/dev/null) || return 1
	[ "$(grep -cE '^(wireguard|preauth|api|firewall|dns) +[^ ]+ +running' <<<"$s")" = 5 ]
}
ip netns exec "$GW" "$build/core/meshgated" --config "$WORK/gw/meshgated.conf" \
	>"$WORK/gw/meshgated.log" 2>&1 &
GW_PID=$!
bg_track $GW_PID
wait_for 15 running || { cat "$WORK/gw/meshgated.log"; fail "meshgated did not start"; }

echo "-- dns listens on the VPN address"
ctl dns stats --json >"$WORK/stats.json"
grep -q '"listen": \[ *"10.77.0.1:53" *\]' <(tr -d '\n' <"$WORK/stats.json") ||
	fail "dns listens on $(tr -d '\n' <"$WORK/stats.json" | sed 's/.*"listen": *\(\[[^]]*\]\).*/\1/')"
echo "ok: dns listen 10.77.0.1:53"

# onboard NAME NS IFNAME: the device through the bus, its tunnel up
onboard() {
	local name=$1 ns=$2 ifname=$3 code out id addr server pub
	code=$(ctl user add "$name" --role developer --json | json_field code)
	out=$(ctl --json call preauth.redeem "{\"code\": \"$code\", \"name\": \"$name\"}")
	echo "$out" >"$WORK/$name.redeem"
	id=$(json_field device_id <<<"$out")
	addr=$(json_field address <<<"$out")
	server=$(json_field server_public_key <<<"$out")
	(umask 077 && wg genkey >"$WORK/$name.key")
	pub=$(wg pubkey <"$WORK/$name.key")
	ctl call preauth.register "{\"device_id\": \"$id\", \"register_token\": \
\"$(json_field register_token <<<"$out")\", \"public_key\": \"$pub\", \"address\": \"$addr\"}" >/dev/null
	ns_exec "$ns" wireguard-go "$ifname" >/dev/null 2>&1
	ns_exec "$ns" wg set "$ifname" private-key "$WORK/$name.key" peer "$server" \
		endpoint 198.18.0.1:51820 persistent-keepalive 1 allowed-ips 10.77.0.0/16
	ns_exec "$ns" ip addr add "$addr" dev "$ifname"
	ns_exec "$ns" ip link set "$ifname" up
	ns_exec "$ns" ip route add 10.77.0.0/16 dev "$ifname"
	printf -v "${name}_IP" '%s' "${addr%/32}"
}
echo "-- two devices onboarded through the bus"
onboard d1 "$D1" "${TAG}a"
onboard d2 "$D2" "${TAG}b"
echo "d1 $d1_IP, d2 $d2_IP"
[ "${d1_IP%.*}" = 10.77.0 ] && [ "${d2_IP%.*}" = 10.77.0 ] || fail "devices outside 10.77.0.0/16"

echo "-- devices are told the name server on the VPN address (dns_node/server)"
dns_line=$(tr -d ' \n' <"$WORK/d1.redeem" | sed -n 's/.*"dns":\(\[[^]]*\]\).*/\1/p')
[ "$dns_line" = '["10.77.0.1","corp.internal"]' ] || fail "redeem's dns: '$dns_line'"
echo "ok: redeem says dns $dns_line"

echo "-- dig through the tunnel, at 10.77.0.1"
q() { ns_exec "$D1" dig @10.77.0.1 +time=2 +tries=2 +short "$@" | tr '\n' ' ' | sed 's/ $//'; }
expect() { # WANT dig-args...
	local want=$1 got
	shift
	got=$(q "$@")
	[ "$got" = "$want" ] || fail "dig @10.77.0.1 $*: '$got', expected '$want'"
	echo "ok: $* -> $got"
}
wait_for 15 sh -c "ip netns exec $D1 dig @10.77.0.1 +time=1 +tries=1 +short gitlab.corp.internal | grep -q 172.19.0.10" ||
	{ ctl dns stats; fail "no answer on 10.77.0.1 through the tunnel"; }
expect 172.19.0.10 gitlab.corp.internal
expect "$d2_IP" d2.corp.internal
expect 10.77.0.1 ns.corp.internal
expect ns.corp.internal. -x 10.77.0.1
expect ns.corp.internal. corp.internal NS

echo "-- the api's VPN listener is on 10.77.0.1"
code=$(ns_exec "$D1" curl -sk --max-time 5 -o /dev/null -w '%{http_code}' \
	https://10.77.0.1:8443/api/v1/health || true)
[ "$code" = 200 ] || fail "https://10.77.0.1:8443 through the tunnel: '$code'"
vpn_api=$(ctl --json call api.info '{}' | json_field vpn_api)
[ "$vpn_api" = https://10.77.0.1:8443 ] || fail "api.info vpn_api: '$vpn_api'"
echo "ok: https://10.77.0.1:8443 answers through the tunnel; api.info says $vpn_api"

echo "-- the firewall's VPN subnet is 10.77.0.0/16"
subnet=$(ctl --json call firewall.status '{}' | json_field vpn_subnet)
[ "$subnet" = 10.77.0.0/16 ] || fail "firewall.status vpn_subnet: '$subnet'"
ip netns exec "$D2" ncat -lk "$d2_IP" 7000 --sh-exec 'echo d2' &
bg_track $!
ip netns exec "$GW" ncat -lk 0.0.0.0 22 --sh-exec 'echo ssh' &
bg_track $!
reach() { [ "$(ns_exec "$1" ncat -w 700ms --recv-only "$2" "$3" </dev/null 2>/dev/null)" = "$4" ]; }
wait_for 5 reach "$D1" "$d2_IP" 7000 d2 || fail "d1 does not reach d2 ($d2_IP) in the VPN subnet"
! reach "$D1" 10.77.0.1 22 ssh || fail "d1 reaches the gateway's port 22: the firewall is not filtering"
ns_exec "$D1" ping -c 1 -W 2 10.77.0.1 >/dev/null || fail "d1 cannot ping the gateway"
echo "ok: vpn_subnet $subnet; d1 reaches d2, not the gateway's port 22"

if grep -qE 'Sanitizer|runtime error' "$WORK/gw/meshgated.log"; then
	cat "$WORK/gw/meshgated.log"
	fail "sanitizer report"
fi
echo "vpn subnet defaults: all checks passed"
