#!/bin/bash
# A node joining a mesh of NODES (default 50): the time from the new
# node's meshgated starting until it has a WireGuard handshake with every
# other node (read from its interface, `wg show IF latest-handshakes`: a
# handshake needs both sides, so the other node has its peer too; checked
# afterwards on every node, not timed). Each node is a namespace routed to
# the others (see INET below) running meshgated with the mesh plugin alone
# and its wireguard-go;
# one etcd member. Baseline, in the same rounds (who goes first
# alternates): a node joining a mesh of one, in a cluster of its own
# (another prefix). Each round's joiner is new (a fresh state, a new name)
# and is deleted after (`meshgatectl node del`), so every round joins the
# same mesh. Figures, never a test.
# usage: mesh_join.sh BUILD_DIR [NODES] [ROUNDS]
set -euo pipefail
build=$(realpath "$1")
nodes=${2:-50}
rounds=${3:-3}
here=$(dirname "$(realpath "$0")")
source "$here/../../tests/lib/netns.sh"
source "$here/../../tests/lib/etcd.sh"
source "$here/../../tests/cluster/cluster_lib.sh"
source "$here/../rounds.sh"
netns_init
etcd_init
[ "$nodes" -le 90 ] || fail "NODES <= 90 (one /24 of addresses, joiners from .100)"

# The "internet" is a router (the namespace INET, 198.18.1.254, etcd's
# address too) with a link to each node: one neighbour entry each way.
# Not one bridge: every namespace shares the kernel's ARP table, whose
# limit (gc_thresh3, 1024 here) 51 nodes that all talk to each other on
# one segment would pass (2,550 entries): sends then fail with ENOBUFS.
ns_add INET inet
ip -n "$INET" addr add 198.18.1.254/32 dev lo
ip netns exec "$INET" sysctl -qw net.ipv4.ip_forward=1

# routed_port NS ADDR: NS has ADDR, on a link to the router
routed_port() {
	local ns=$1 addr=$2 inside=v$RANDOM$RANDOM outside=r$RANDOM$RANDOM
	ip link add "$inside" netns "$ns" type veth peer name "$outside" netns "$INET"
	ip -n "$ns" addr add "$addr/32" dev "$inside"
	ip -n "$ns" link set "$inside" up
	ip -n "$ns" route add default via 198.18.1.254 dev "$inside" onlink
	ip -n "$INET" link set "$outside" up
	ip -n "$INET" route add "$addr/32" dev "$outside"
}
etcd_member_start m1 "$WORK/etcd" http://198.18.1.254:2379 http://198.18.1.254:2380 \
	m1=http://198.18.1.254:2380 "$INET"
etcd_wait_healthy m1 20

declare -A NODE_PID NODE_NS
# node_prepare NAME INDEX PREFIX SUBNET: a namespace with 198.18.1.INDEX on
# a link to the router, the config of a node of the cluster under PREFIX; node_run
# NAME starts its meshgated
node_prepare() {
	local name=$1 idx=$2 prefix=$3 subnet=$4 dir=$WORK/$1 node_ns
	mkdir -p "$dir"
	ns_add node_ns "n$idx"
	routed_port "$node_ns" "198.18.1.$idx"
	cat >"$dir/meshgated.conf" <<CONF
state_dir = "$dir/state";
socket = "$dir/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["mesh"];
log_level = "warn";
cluster = { node = "$name"; etcd = [ "http://198.18.1.254:2379" ]; prefix = "$prefix"; };
mesh = { interface = "${TAG}$name"; endpoint = "198.18.1.$idx:51821"; subnet = "$subnet";
         backend = "userspace"; };
CONF
	NODE_NS[$name]=$node_ns
}

node_run() {
	local name=$1 dir=$WORK/$1
	# not through ns_exec: $! must be meshgated itself
	ip netns exec "${NODE_NS[$name]}" "$build/core/meshgated" --config "$dir/meshgated.conf" \
		>>"$dir/meshgated.log" 2>&1 &
	NODE_PID[$name]=$!
	bg_track $!
}

node_start() {
	node_prepare "$@"
	node_run "$1"
}

ctl() {
	local name=$1
	shift
	"$build/cli/meshgatectl" --socket "$WORK/$name/bus.sock" "$@"
}

running() { plugins_ready "$build" "$WORK/$1/bus.sock"; }

# handshakes NAME: how many of NAME's peers it has had a handshake with
handshakes() {
	ip netns exec "${NODE_NS[$1]}" wg show "${TAG}$1" latest-handshakes 2>/dev/null |
		awk '$2 > 0' | wc -l
}

# peers NAME: NAME's peers on its interface
peers() {
	ip netns exec "${NODE_NS[$1]}" wg show "${TAG}$1" peers 2>/dev/null | wc -l
}

# what NAME sees of the peers it has no handshake with
not_steady() {
	local ns=${NODE_NS[$1]}
	echo "$1: peers without a handshake, their endpoints; neighbours; UDP counters"
	ip netns exec "$ns" wg show "${TAG}$1" dump | awk 'NR > 1 && $5 == 0 {print "  ", $3}'
	ip netns exec "$ns" ip neigh | sort | uniq -c | head -60
	ip netns exec "$ns" nstat -az 2>/dev/null | grep -E "Udp(InErrors|RcvbufErrors|SndbufErrors|NoPorts|OutDatagrams|InDatagrams)" || true
}

has_handshakes() { [ "$(handshakes "$1")" -ge "$2" ]; }
has_peers() { [ "$(peers "$1")" = "$2" ]; }

# join NAME INDEX PREFIX SUBNET OTHERS: starts NAME, sets JOINED to the
# seconds until it has a handshake with all OTHERS nodes (polled every
# 10 ms; not in a $(subshell): node_start's bookkeeping must stay)
join() {
	local name=$1 others=$5 start deadline
	node_prepare "$1" "$2" "$3" "$4"
	start=$(date +%s%N)
	deadline=$((start + 30000000000))
	node_run "$name"
	local told=0
	until [ "$(handshakes "$name")" -ge "$others" ]; do
		[ "$(date +%s%N)" -lt "$deadline" ] ||
			fail "$name has $(handshakes "$name") of $others handshakes after 30 s"
		if [ $told = 0 ] && [ "$(date +%s%N)" -gt $((start + 3000000000)) ]; then
			told=1
			echo "  $name after 3 s: no handshake yet with" $(ip netns exec "${NODE_NS[$name]}" \
				wg show "${TAG}$name" dump | awk 'NR > 1 && $5 == 0 {print $3}')
		fi
		sleep 0.01
	done
	JOINED=$(awk -v ms=$((($(date +%s%N) - start) / 1000000)) 'BEGIN {printf "%.3f", ms / 1000}')
}

# leave NAME ON: stops NAME, deletes it on node ON, waits until ON has
# dropped its peer (left with WANT peers)
leave() {
	local name=$1 on=$2 want=$3
	kill "${NODE_PID[$name]}"
	wait "${NODE_PID[$name]}" 2>/dev/null || true
	ctl "$on" node del "$name" >/dev/null || fail "node del $name on $on"
	wait_for 20 has_peers "$on" "$want" || fail "$on keeps $name's peer"
}

echo "-- $nodes nodes, one at a time"
start=$(date +%s)
for i in $(seq "$nodes"); do
	node_start "m$i" "$i" "/mesh-$TAG/" 10.99.0.0/24
	wait_for 20 running "m$i" || {
		tail -20 "$WORK/m$i/meshgated.log"
		fail "m$i did not start"
	}
done
echo "   started in $(($(date +%s) - start)) s; waiting until every node has a handshake with every other"
# steady: every node has a handshake with every other, within 3 minutes in all
deadline=$(($(date +%s) + 180))
for i in $(seq "$nodes"); do
	until has_handshakes "m$i" $((nodes - 1)); do
		[ "$(date +%s)" -lt "$deadline" ] || {
			not_steady "m$i"
			fail "not steady after 3 min: m$i has $(handshakes "m$i") of $((nodes - 1)) handshakes"
		}
		sleep 1
	done
done
echo "   steady after $(($(date +%s) - start)) s: $((nodes * (nodes - 1))) handshakes"
echo "-- the baseline: one node"
node_start b0 99 "/base-$TAG/" 10.98.0.0/24
wait_for 20 running b0 || fail "b0 did not start"

ours=() base=()
for r in $(seq "$rounds"); do
	for turn in 0 1; do
		if [ $(((turn + r) % 2)) = 1 ]; then
			join "j$r" $((100 + 2 * r)) "/mesh-$TAG/" 10.99.0.0/24 "$nodes"
			ours+=("$JOINED")
			# every other node has the joiner's peer with a handshake
			key=$(ip netns exec "${NODE_NS[j$r]}" wg show "${TAG}j$r" public-key)
			for i in $(seq "$nodes"); do
				ip netns exec "${NODE_NS[m$i]}" wg show "${TAG}m$i" latest-handshakes |
					awk -v k="$key" '$1 == k && $2 > 0 {f = 1} END {exit !f}' ||
					fail "m$i has no handshake with j$r"
			done
			echo "  round $r: j$r joined $nodes nodes in $JOINED s (every node has its handshake)"
			leave "j$r" m1 $((nodes - 1))
		else
			join "k$r" $((101 + 2 * r)) "/base-$TAG/" 10.98.0.0/24 1
			base+=("$JOINED")
			echo "  round $r: k$r joined 1 node in $JOINED s"
			leave "k$r" b0 0
		fi
	done
done
echo
echo "a node joining a mesh (start of meshgated -> a handshake with every node):"
figure "ours: joining $nodes nodes" s "${ours[@]}"
figure "baseline: joining 1 node" s "${base[@]}"
echo "goal (issue 12): < 2 s for the 51st node"
echo "machine: $(nproc) CPUs; $((nodes + 1)) meshgated and $((nodes + 1)) wireguard-go run on them"
table_row "node joining a mesh of $nodes: every node has a handshake" s \
	"joining a mesh of 1, same run" "${ours[*]}" "${base[*]}"
