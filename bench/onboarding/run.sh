#!/bin/bash
# Sets up the real gateway in a namespace (every plugin: wireguard, preauth,
# api, firewall with a role policy, dns serving the VPN) and runs
# bench_onboarding inside it, then checks that the onboarded devices are
# peers, members of their role's set and names in DNS: the work was done.
# usage: run.sh BUILD_DIR [PRELOAD] [MEASURED per round] [CLIENTS] [ROUNDS]
# For profiling only, not the figure: ONB_TMPFS=1 keeps the state and the
# baselines' LMDB in /dev/shm (no disk: the CPU side alone); ONB_LOG sets
# meshgated's log_level (default warn).
set -euo pipefail
build=$(realpath "$1")
shift
preload=${1:-10000}
measured=${2:-2000}
clients=${3:-8}
rounds=${4:-5}
here=$(dirname "$(realpath "$0")")
source "$here/../../tests/lib/netns.sh"
netns_init
ns_add GW bench
db_dir=$WORK
if [ "${ONB_TMPFS:-0}" = 1 ]; then
	db_dir=$(mktemp -d /dev/shm/meshgate-bench.$TAG.XXXXXX)
	trap 'rc=$?; rm -rf "$db_dir"; (exit $rc); netns_cleanup' EXIT
fi
# the networks behind the gateway that the roles reach (a veth with its
# other end unused: this kernel has no dummy interfaces)
ns_exec "$GW" ip link add "${TAG}i" type veth peer name "${TAG}j"
ns_exec "$GW" ip addr add 10.20.0.1/24 dev "${TAG}i"
ns_exec "$GW" ip addr add 10.30.0.1/16 dev "${TAG}i"
ns_exec "$GW" ip addr add 10.40.0.1/24 dev "${TAG}i"
ns_exec "$GW" ip link set "${TAG}i" up
ns_exec "$GW" ip link set "${TAG}j" up
WG_IF=${TAG}b
cat >"$WORK/m.conf" <<CONF
state_dir = "$db_dir/state";
socket = "$WORK/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["wireguard", "preauth", "api", "firewall", "dns"];
log_level = "${ONB_LOG:-warn}";
wireguard = { interface = "$WG_IF"; backend = "userspace"; address = "10.64.0.1/16";
              endpoint = "127.0.0.1:51820"; resync_interval = 0; };
preauth = { redeem_failures = 1000000; roles = ["admin", "developer", "ops", "support"]; };
api = { listen = "127.0.0.1:8443"; names = ["127.0.0.1"]; threads = $clients; };
firewall = {
  roles = {
    developer = ["vpn", "10.20.0.0/24"];
    admin = ["vpn", "10.20.0.0/24", "10.30.0.0/16", "10.40.0.0/24"];
    ops = ["vpn", "10.30.0.0/16", "10.40.0.0/24"];
    support = ["10.20.0.0/24"];
  };
  vpn_only_ports = ["8080/tcp"];
};
dns = { zone = "corp.internal"; records = ( { name = "gitlab"; address = "10.20.0.10"; } ); };
CONF
# not through ns_exec: $! must be meshgated itself
ip netns exec "$GW" "$build/core/meshgated" --config "$WORK/m.conf" 2>"$WORK/log" &
gw_pid=$!
bg_track $gw_pid
wait_for 20 plugins_ready "$build" "$WORK/bus.sock" || {
	cat "$WORK/log"
	fail "meshgated did not start every plugin"
}
wait_for 10 test -f "$db_dir/state/ca.pem" || fail "no CA"
# the gateway's CPU: meshgated and the wireguard-go behind the interface
pids=$gw_pid
for p in $(ip netns pids "$GW"); do
	[ "$(cat /proc/"$p"/comm 2>/dev/null)" = wireguard-go ] && pids="$pids,$p"
done
echo "gateway: meshgated and wireguard-go, pids $pids"
ns_exec "$GW" "$build/bench/onboarding/bench_onboarding" "$WORK/bus.sock" \
	https://127.0.0.1:8443 "$db_dir/state" "$db_dir" "$pids" \
	"$preload" "$measured" "$clients" "$rounds"

# the effects, after the last event has been followed
active=$((preload + measured / clients * clients * rounds))
peers() { [ "$(wg show "$WG_IF" peers | wc -l)" = "$active" ]; }
members() {
	[ "$(ns_exec "$GW" ipset list -o save | grep -c '^add MESHGATE-')" = "$active" ]
}
wait_for 20 peers || fail "$(wg show "$WG_IF" peers | wc -l) peers for $active active devices"
wait_for 20 members || fail "the role sets do not hold the $active active devices"
echo "peers on the interface: $active, addresses in the role sets: $active"
name=$(ns_exec "$GW" dig @10.64.0.1 -x 10.64.0.2 +short +time=2 +tries=1)
[ -n "$name" ] || fail "10.64.0.2 has no name in DNS"
addr=$(ns_exec "$GW" dig @10.64.0.1 "$name" +short +time=2 +tries=1)
[ "$addr" = 10.64.0.2 ] || fail "$name resolves to '$addr', not 10.64.0.2"
echo "dns: 10.64.0.2 is $name and back"
if grep -qiE 'error|warn' "$WORK/log"; then
	echo "meshgated's warnings and errors:"
	grep -iE 'error|warn' "$WORK/log" | sort | uniq -c | sort -rn | head -20
fi
