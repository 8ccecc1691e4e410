#!/bin/bash
# The firewall with real packets through WireGuard (wireguard-go):
#
#   dev client ns ──┐                      ┌── svc ns  10.20.0.10  (both roles)
#   adm client ns ──┤── gw ns (meshgated) ─┼── adm ns  172.19.0.10 (admin only)
#   pub ns ─────────┘   10.0.0.1 on the VPN └── new ns  172.20.0.10 (advertised at runtime)
#
# Two devices are onboarded through the bus (user add, redeem, register,
# keys from `wg genkey`), each client's WireGuard comes up in its own
# namespace and routes every test network through the tunnel, so the
# gateway's firewall is what decides. Then: the isolation matrix; a subnet
# advertised at runtime (timed) and withdrawn; a role change; a VPN-only
# port added at runtime; a device disabled; a stop of meshgated, which keeps
# the policy in force (checked with packets from the VPN and the public
# side); a restart over the kept rules (adopted: the same rules, same
# matrix); `meshgatectl firewall flush`, which removes everything while
# meshgated runs, until a reload applies it again; and a stop with
# firewall.on_stop = "flush", which leaves no MESHGATE rule or set.
# usage: isolation.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
netns_init

ns_add GW gw
ns_add DEV dev
ns_add ADM adm
ns_add PUB pub
ns_add SVCN svc
ns_add ADMN admnet
ns_add NEWN newnet
PUB_IF=${TAG}p
ns_link "$GW" 198.18.0.1/24 "$PUB" 198.18.0.2/24 "$PUB_IF" "${TAG}pp"
ns_link "$GW" 198.18.1.1/24 "$DEV" 198.18.1.2/24
ns_link "$GW" 198.18.2.1/24 "$ADM" 198.18.2.2/24
ns_link "$GW" 10.20.0.1/24 "$SVCN" 10.20.0.10/24
ns_link "$GW" 172.19.0.1/16 "$ADMN" 172.19.0.10/16
ns_link "$GW" 172.20.0.1/24 "$NEWN" 172.20.0.10/24
# the clients reach the gateway's public address through their own links
ns_exec "$DEV" ip route add 198.18.0.0/24 via 198.18.1.1
ns_exec "$ADM" ip route add 198.18.0.0/24 via 198.18.2.1
ns_exec "$SVCN" ip route add default via 10.20.0.1
ns_exec "$ADMN" ip route add default via 172.19.0.1
ns_exec "$NEWN" ip route add default via 172.20.0.1
ns_exec "$GW" sysctl -qw net.ipv4.ip_forward=1

# services: each answers its name on TCP 7000; the gateway has an SSH-like
# port (22), a VPN-only port from the config (8080) and one added at
# runtime (8081)
listen() { # NS ADDR PORT NAME
	ip netns exec "$1" ncat -lk "$2" "$3" --sh-exec "echo $4" &
	bg_track $!
}
listen "$SVCN" 10.20.0.10 7000 svc
listen "$ADMN" 172.19.0.10 7000 admnet
listen "$NEWN" 172.20.0.10 7000 newnet
listen "$GW" 0.0.0.0 22 ssh
listen "$GW" 0.0.0.0 8080 vpnonly
listen "$GW" 0.0.0.0 8081 later
# an echo service, for a connection that stays open
ip netns exec "$ADMN" ncat -lk 172.19.0.10 7001 -e /bin/cat &
bg_track $!

# reach NS HOST PORT NAME: the service answers its name
reach() { [ "$(ns_exec "$1" ncat -w 700ms --recv-only "$2" "$3" </dev/null 2>/dev/null)" = "$4" ]; }
ok() { reach "$@" || fail "$1 should reach $2:$3 ($4)"; echo "  ok   ${1#"$TAG"-} -> $2:$3"; }
no() { ! reach "$@" || fail "$1 must not reach $2:$3 ($4)"; echo "  deny ${1#"$TAG"-} -> $2:$3"; }

STATE=$WORK/gw/state
WG_IF=${TAG}w
mkdir -p "$WORK/gw"
cat >"$WORK/gw/meshgated.conf" <<CONF
state_dir = "$STATE";
socket = "$WORK/gw/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["wireguard", "preauth", "firewall"];
wireguard = { interface = "$WG_IF"; backend = "userspace"; address = "10.0.0.1/24";
              endpoint = "198.18.0.1:51820"; };
firewall = { public_interface = "$PUB_IF";
             roles = { developer = ["10.0.0.0/24", "10.20.0.0/24"];
                       admin = ["10.0.0.0/24", "10.20.0.0/24", "172.19.0.0/16"]; };
             vpn_only_ports = ["8080/tcp"]; };
CONF
ctl() { "$build/cli/meshgatectl" --socket "$WORK/gw/bus.sock" "$@"; }
json_field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -1; }
gateway_start() {
	ip netns exec "$GW" "$build/core/meshgated" --config "$WORK/gw/meshgated.conf" \
		>>"$WORK/gw/meshgated.log" 2>&1 &
	GW_PID=$!
	bg_track $GW_PID
	wait_for 10 ctl firewall status || { cat "$WORK/gw/meshgated.log"; fail "meshgated did not start"; }
}
gateway_stop() {
	local rc=0
	kill -TERM "$GW_PID"
	wait "$GW_PID" 2>/dev/null || rc=$?
	[ "$rc" = 0 ] || { tail -30 "$WORK/gw/meshgated.log"; fail "meshgated exited with $rc"; }
}
# our rules (no counters) and our sets with their members, to compare
ours() {
	ns_exec "$GW" iptables-save -t filter | grep MESHGATE | sed 's/\[[0-9]*:[0-9]*\]//'
	ns_exec "$GW" ipset save | grep '^add MESHGATE' | sort
}
# nothing of ours in the gateway's namespace
assert_clean() {
	! ns_exec "$GW" iptables-save | grep -q MESHGATE || fail "MESHGATE rules left: $(ns_exec "$GW" iptables-save | grep MESHGATE)"
	[ -z "$(ns_exec "$GW" ipset list -n | grep MESHGATE)" ] || fail "MESHGATE sets left: $(ns_exec "$GW" ipset list -n)"
}

echo "-- gateway up"
gateway_start
ctl firewall status

# onboard NAME ROLE NS IFNAME: the device through the bus, its tunnel up
onboard() {
	local name=$1 role=$2 ns=$3 ifname=$4 code out key pub id addr server
	code=$(ctl user add "$name" --role "$role" --json | json_field code)
	out=$(ctl call preauth.redeem "{\"code\": \"$code\", \"name\": \"$name\"}")
	id=$(json_field device_id <<<"$out")
	addr=$(json_field address <<<"$out")
	server=$(json_field server_public_key <<<"$out")
	wg genkey >"$WORK/$name.key"
	pub=$(wg pubkey <"$WORK/$name.key")
	ctl call preauth.register "{\"device_id\": \"$id\", \"register_token\": \"$(json_field register_token <<<"$out")\", \"public_key\": \"$pub\", \"address\": \"$addr\"}" >/dev/null
	ns_exec "$ns" wireguard-go "$ifname" >/dev/null 2>&1
	ns_exec "$ns" wg set "$ifname" private-key "$WORK/$name.key" peer "$server" \
		endpoint 198.18.0.1:51820 persistent-keepalive 25 \
		allowed-ips 10.0.0.0/24,10.20.0.0/24,172.19.0.0/16,172.20.0.0/24
	ns_exec "$ns" ip addr add "$addr" dev "$ifname"
	ns_exec "$ns" ip link set "$ifname" up
	for net in 10.0.0.0/24 10.20.0.0/24 172.19.0.0/16 172.20.0.0/24; do
		ns_exec "$ns" ip route add "$net" dev "$ifname"
	done
	eval "${name}_ID=$id ${name}_IP=${addr%/32} ${name}_SERVER=$server"
}
echo "-- two devices onboarded through the bus"
onboard dev1 developer "$DEV" "${TAG}d"
onboard adm1 admin "$ADM" "${TAG}a"
echo "developer $dev1_IP ($dev1_ID), admin $adm1_IP ($adm1_ID)"
# each device also answers on its VPN address, for the reverse direction
listen "$DEV" "$dev1_IP" 7000 dev1
listen "$ADM" "$adm1_IP" 7000 adm1
wait_for 5 reach "$DEV" 10.20.0.10 7000 svc || fail "no tunnel for the developer"
wait_for 5 reach "$ADM" 10.20.0.10 7000 svc || fail "no tunnel for the admin"

matrix() {
	ok "$DEV" 10.20.0.10 7000 svc
	no "$DEV" 172.19.0.10 7000 admnet
	no "$DEV" 172.20.0.10 7000 newnet
	no "$DEV" 10.0.0.1 22 ssh
	no "$DEV" 172.19.0.1 22 ssh
	ok "$DEV" 10.0.0.1 8080 vpnonly
	ok "$ADM" 10.20.0.10 7000 svc
	ok "$ADM" 172.19.0.10 7000 admnet
	no "$ADM" 172.20.0.10 7000 newnet
	no "$ADM" 10.0.0.1 22 ssh
	ok "$ADM" 10.0.0.1 8080 vpnonly
	ok "$ADM" "$dev1_IP" 7000 dev1         # both roles reach the VPN subnet
	ok "$ADMN" "$adm1_IP" 7000 adm1        # the admin network reaches admins...
	no "$ADMN" "$dev1_IP" 7000 dev1        # ...not developers
	ok "$SVCN" "$dev1_IP" 7000 dev1
	no "$PUB" 198.18.0.1 8080 vpnonly      # VPN-only: closed on the public side
	ok "$PUB" 198.18.0.1 22 ssh            # the rest of the host is not ours
	ns_exec "$DEV" ping -c 1 -W 1 10.0.0.1 >/dev/null || fail "the developer cannot ping the gateway"
	ns_exec "$DEV" ping -c 1 -W 1 10.20.0.10 >/dev/null || fail "the developer cannot ping svc"
	! ns_exec "$DEV" ping -c 1 -W 1 172.19.0.10 >/dev/null || fail "the developer pings the admin network"
}
echo "-- isolation matrix"
matrix

echo "-- a subnet advertised at runtime"
no "$ADM" 172.20.0.10 7000 newnet
t0=$(date +%s%N)
reply=$(ctl route add 172.20.0.0/24 --via "$(ns_exec "$GW" ip -o route get 172.20.0.10 | sed -n 's/.* dev \([^ ]*\).*/\1/p')" --roles admin,developer --json)
until reach "$ADM" 172.20.0.10 7000 newnet; do
	[ $(($(date +%s%N) - t0)) -lt 2000000000 ] || fail "the new subnet is not reachable after 2 s"
done
t1=$(date +%s%N)
apply_ms() { sed -n 's/.*"apply_ms": *\([0-9.]*\).*/\1/p' <<<"$1"; }
applied=("$(apply_ms "$reply")")
echo "  advertised: reachable $(((t1 - t0) / 1000000)) ms after 'route add' was run, meshgatectl and ncat start-up included (the plugin applied it in ${applied[0]} ms)"
ok "$DEV" 172.20.0.10 7000 newnet
# The goal: a route in effect within 100 ms. The reply is sent once the
# rules are applied, so the subnet answers the first probe after it; the
# figure is the plugin's, a median of five so that one stall of a busy
# machine does not decide.
for _ in 1 2 3 4; do
	ctl route del 172.20.0.0/24 >/dev/null
	reply=$(ctl route add 172.20.0.0/24 --via "$(ns_exec "$GW" ip -o route get 172.20.0.10 | sed -n 's/.* dev \([^ ]*\).*/\1/p')" --roles admin,developer --json)
	applied+=("$(apply_ms "$reply")")
	ok "$ADM" 172.20.0.10 7000 newnet
done
median=$(printf '%s\n' "${applied[@]}" | sort -g | sed -n 3p)
echo "  applying a route: ${applied[*]} ms; median $median ms (goal < 100 ms)"
awk "BEGIN { exit !($median < 100) }" || fail "applying a route took a median $median ms (goal < 100 ms)"
ctl route list
ctl call firewall.route.list | grep -q '"172.20.0.0/24"' || fail "route not listed"
ctl route del 172.20.0.0/24 >/dev/null
no "$ADM" 172.20.0.10 7000 newnet
no "$DEV" 172.20.0.10 7000 newnet

echo "-- a VPN-only port added at runtime"
no "$DEV" 10.0.0.1 8081 later
ok "$PUB" 198.18.0.1 8081 later
ctl port add 8081/tcp >/dev/null
ok "$DEV" 10.0.0.1 8081 later
no "$PUB" 198.18.0.1 8081 later
ctl port list
ctl port del 8081/tcp >/dev/null
no "$DEV" 10.0.0.1 8081 later

echo "-- the developer becomes an admin"
ctl user set-role dev1 admin >/dev/null
ok "$DEV" 172.19.0.10 7000 admnet
ok "$ADMN" "$dev1_IP" 7000 dev1
ctl user set-role dev1 developer >/dev/null
no "$DEV" 172.19.0.10 7000 admnet
ok "$DEV" 10.20.0.10 7000 svc

echo "-- a role change cuts the connections the new role may not make"
coproc CONN { ip netns exec "$ADM" ncat 172.19.0.10 7001 2>/dev/null; }
bg_track "$CONN_PID"
echo one >&"${CONN[1]}"
read -r -t 2 line <&"${CONN[0]}" && [ "$line" = one ] || fail "no echo on the open connection"
ctl user set-role adm1 developer >/dev/null
# the change reaches the firewall as an event, a few ms after the reply
sleep 0.2
echo two >&"${CONN[1]}"
! read -r -t 1 line <&"${CONN[0]}" || fail "the open connection still passes after the demotion ('$line')"
echo "  the admin's open connection to the admin network stops when demoted"
ctl user set-role adm1 admin >/dev/null
ok "$ADM" 172.19.0.10 7000 admnet

echo "-- a disabled device passes nothing"
ctl device disable "$dev1_ID" >/dev/null
ns_exec "$GW" ipset test MESHGATE-developer "$dev1_IP" 2>/dev/null && fail "disabled device still in its set"
no "$DEV" 10.20.0.10 7000 svc
no "$DEV" 10.0.0.1 8080 vpnonly
ctl device enable "$dev1_ID" >/dev/null
wait_for 5 reach "$DEV" 10.20.0.10 7000 svc || fail "enabled device does not pass again"
echo "  enabled again: passes"

echo "-- stop of the gateway: the policy stays in force"
before=$(ours)
gateway_stop
[ "$(ours)" = "$before" ] || fail "the stop changed the rules or sets: $(diff <(echo "$before") <(ours))"
no "$PUB" 198.18.0.1 8080 vpnonly      # VPN-only: still closed on the public side
ok "$PUB" 198.18.0.1 22 ssh
# Packets from the VPN with meshgated down. wireguard-go goes with
# meshgated today: then a stand-in, a link named like the VPN interface
# into a namespace with the developer's address and one that no device
# has. Should the VPN interface outlive meshgated, the devices' tunnels.
if ns_exec "$GW" ip link show "$WG_IF" >/dev/null 2>&1; then
	FROM=$DEV
else
	ns_add VPNS vpnside
	ns_link "$GW" 10.0.0.1/24 "$VPNS" "$dev1_IP/24" "$WG_IF" "${TAG}s"
	ns_exec "$VPNS" ip addr add 10.0.0.99/24 dev "${TAG}s"
	ns_exec "$VPNS" ip route add default via 10.0.0.1
	FROM=$VPNS
	[ "$(ns_exec "$VPNS" ncat -s 10.0.0.99 -w 700ms --recv-only 10.20.0.10 7000 </dev/null 2>/dev/null)" != svc ] ||
		fail "an address of no device passes with meshgated down"
	echo "  deny 10.0.0.99 (no device) -> 10.20.0.10:7000"
fi
ok "$FROM" 10.20.0.10 7000 svc         # the developer's role, as when it stopped...
no "$FROM" 172.19.0.10 7000 admnet     # ...and not more
no "$FROM" 10.0.0.1 22 ssh
[ "$FROM" = "$DEV" ] || ns_exec "$GW" ip link del "$WG_IF"
echo "  stopped: the rules and sets kept, the policy in force"

echo "-- restart over the kept rules: adopted, the same matrix"
gateway_start
# the restarted wireguard-go knows no session: the clients start new ones
for c in "$DEV:${TAG}d:$dev1_SERVER" "$ADM:${TAG}a:$adm1_SERVER"; do
	IFS=: read -r ns ifname server <<<"$c"
	ns_exec "$ns" wg set "$ifname" peer "$server" remove
	ns_exec "$ns" wg set "$ifname" peer "$server" endpoint 198.18.0.1:51820 persistent-keepalive 25 \
		allowed-ips 10.0.0.0/24,10.20.0.0/24,172.19.0.0/16,172.20.0.0/24
done
wait_for 5 reach "$DEV" 10.20.0.10 7000 svc || fail "no tunnel after the restart"
[ "$(ours)" = "$before" ] || fail "the restart did not converge to the same rules and sets: $(diff <(echo "$before") <(ours))"
matrix

echo "-- meshgatectl firewall flush: everything removed while running"
ctl firewall flush
assert_clean
ok "$PUB" 198.18.0.1 8080 vpnonly      # what the explicit act opens
ctl firewall status | grep -q FLUSHED || fail "the status does not say flushed"
# nothing comes back by itself: a change is saved, not applied
! ctl port add 8081/tcp || fail "a change while flushed says it was applied"
assert_clean
ok "$PUB" 198.18.0.1 8081 later
echo "  flushed: no MESHGATE rule or set, the change saved"

echo "-- a reload applies the policy again; a stop with on_stop = \"flush\" leaves nothing"
sed -i 's/vpn_only_ports = \["8080\/tcp"\];/& on_stop = "flush";/' "$WORK/gw/meshgated.conf"
grep -q 'on_stop = "flush"' "$WORK/gw/meshgated.conf" || fail "on_stop not set in the test's config"
kill -HUP "$GW_PID"
wait_for 5 sh -c "'$build/cli/meshgatectl' --socket '$WORK/gw/bus.sock' --json firewall status | grep -q '\"on_stop\": \"flush\"'" ||
	fail "the reload was not taken"
no "$PUB" 198.18.0.1 8080 vpnonly
no "$PUB" 198.18.0.1 8081 later        # the change saved while flushed
ok "$DEV" 10.0.0.1 8081 later
ok "$DEV" 10.20.0.10 7000 svc
no "$DEV" 172.19.0.10 7000 admnet
ctl port del 8081/tcp >/dev/null
gateway_stop
assert_clean
echo "isolation: all checks passed"
