#!/bin/bash
# The cluster's benchmarks 1 and 2 (bench_cluster.c says what they
# measure): three gateways with every plugin and a three-member etcd in
# namespaces (tests/cluster/cluster_lib.sh's layout: gwN 198.18.0.N, each
# with its etcd member; the clients in cl1), PRELOAD devices onboarded
# through gw1 before (over its bus, while the cluster runs: each of
# preauth's group commits one etcd transaction, as in production). After
# the figures, checks that the work was done: every device a peer on all
# three gateways.
# usage: run.sh BUILD_DIR [PRELOAD] [MEASURED per round] [CLIENTS] [ROUNDS] [PROPAGATED]
# CLUSTER_LOG sets meshgated's log_level (default warn).
set -euo pipefail
build=$(realpath "$1")
preload=${2:-10000}
measured=${3:-1000}
clients=${4:-8}
rounds=${5:-3}
propagated=${6:-300}
here=$(dirname "$(realpath "$0")")
source "$here/../../tests/lib/netns.sh"
source "$here/../../tests/lib/etcd.sh"
source "$here/../../tests/cluster/cluster_lib.sh"
netns_init
etcd_init

# gw_config's gateway with bench_onboarding's settings: roles and their
# policy, an API thread per client, no limit on failed redeems, a /16 for
# the devices
bench_gw_config() {
	local i=$1 dir=$WORK/gw$1
	mkdir -p "$dir"
	cat >"$dir/meshgated.conf" <<CONF
state_dir = "$dir/state";
socket = "$dir/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["wireguard", "preauth", "api", "firewall", "dns"];
log_level = "${CLUSTER_LOG:-warn}";
cluster = { node = "gw$i";
            etcd = [ "http://198.18.0.$i:2379", "http://198.18.0.$((i % 3 + 1)):2379",
                     "http://198.18.0.$(((i + 1) % 3 + 1)):2379" ]; };
wireguard = { interface = "${TAG}w$i"; backend = "userspace"; address = "10.64.0.1/16";
              endpoint = "198.18.0.$i:51820"; resync_interval = 0; };
preauth = { redeem_failures = 1000000; roles = ["admin", "developer", "ops", "support"];
            networks = ["10.20.0.0/24"]; };
api = { listen = "198.18.0.$i:8443"; names = ["198.18.0.$i"]; threads = $clients;
        per_ip_limit = 0; per_prefix_limit = 0; };
firewall = {
  roles = {
    developer = ["vpn", "10.20.0.0/24"];
    admin = ["vpn", "10.20.0.0/24", "10.30.0.0/16", "10.40.0.0/24"];
    ops = ["vpn", "10.30.0.0/16", "10.40.0.0/24"];
    support = ["10.20.0.0/24"];
  };
};
dns = { listen = ["10.64.0.1:53"]; zone = "corp.internal"; upstream = []; };
CONF
}

ns_add INET inet
ip -n "$INET" link add br0 type bridge
ip -n "$INET" link set br0 up
initial=""
for i in 1 2 3; do
	ns_add "GW$i" "gw$i"
	eval "bridge_port \"\$GW$i\" 198.18.0.$i/24"
	initial+="${initial:+,}m$i=http://198.18.0.$i:2380"
done
ns_add CL1 cl1
bridge_port "$CL1" 198.18.0.11/24
for i in 1 2 3; do
	eval "etcd_member_start m$i \"$WORK/etcd-m$i\" http://198.18.0.$i:2379 \
		http://198.18.0.$i:2380 \"$initial\" \"\$GW$i\""
done
for i in 1 2 3; do etcd_wait_healthy "m$i" 20; done
for i in 1 2 3; do
	bench_gw_config "$i"
	gw_start "$i"
done
echo "three gateways, three etcd members: $(ctln 1 status | grep -i cluster || true)"

start=$(date +%s.%N)
"$build/bench/preload/bench_preload" "$WORK/gw1/bus.sock" "$preload" pre 8
echo "preload: $preload devices onboarded through gw1 in $(echo "$(date +%s.%N) - $start" | bc) s"
wait_for 120 bash -c "[ \"\$(ip netns exec $GW3 wg show ${TAG}w3 peers | wc -l)\" = $preload ]" ||
	fail "gw3 has $(ns_exec "$GW3" wg show "${TAG}w3" peers | wc -l) of $preload peers"

# the cluster's CPU: meshgated, wireguard-go and etcd of the three nodes
pids=""
for i in 1 2 3; do
	eval "pids+=\",\$GW${i}_PID,${ETCD_PID[m$i]}\""
	for p in $(eval "ip netns pids \$GW$i"); do
		[ "$(cat /proc/"$p"/comm 2>/dev/null)" = wireguard-go ] && pids+=",$p"
	done
done
pids=${pids#,}
echo "cluster processes: $pids"
rc=0
ns_exec "$CL1" "$build/bench/cluster/bench_cluster" "$WORK" \
	http://198.18.0.1:2379,http://198.18.0.2:2379,http://198.18.0.3:2379 "$pids" "${TAG}w3" \
	"$measured" "$clients" "$rounds" "$propagated" || rc=$?

# the effects: every device a peer on every node
active=$((preload + measured / clients * clients * rounds + propagated / rounds * rounds))
for i in 1 2 3; do
	eval "ns=\$GW$i"
	wait_for 30 bash -c "[ \"\$(ip netns exec $ns wg show ${TAG}w$i peers | wc -l)\" = $active ]" ||
		fail "gw$i has $(ns_exec "$ns" wg show "${TAG}w$i" peers | wc -l) peers, $active devices are active"
done
echo "every node has the $active active devices as peers"
for i in 1 2 3; do
	if grep -qiE 'error|warn' "$WORK/gw$i/meshgated.log"; then
		echo "gw$i's warnings and errors:"
		grep -iE 'error|warn' "$WORK/gw$i/meshgated.log" | sed 's/^[^]]*\] //' | sort | uniq -c | sort -rn | head -10
	fi
done
exit $rc
