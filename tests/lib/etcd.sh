# Real etcd members for bash tests, on loopback or inside a namespace.
# Source it after netns.sh and call etcd_init after netns_init: members
# live in $WORK, and are killed (by pid) on exit, also when the test fails.
#
#   etcd_init                     # once, after netns_init
#   etcd_free_ports N             # N free TCP ports on this host's loopback
#   etcd_member_start NAME DIR CLIENT_URL PEER_URL INITIAL_CLUSTER [NETNS]
#   etcd_single_start NAME        # one member on free loopback ports
#   etcd_cluster_start N          # members m1..mN, static --initial-cluster
#                                 # both set ETCD_ENDPOINTS (comma-separated)
#   etcd_wait_healthy NAME [SECONDS]  # its /health says true (default 10 s)
#   etcd_member_stop NAME         # SIGTERM, and wait for it
#   etcd_member_kill NAME         # SIGKILL, and wait for it
#   etcd_member_restart NAME      # again, with the same data and flags
#   etcd_cleanup                  # every member still running, killed

declare -gA ETCD_PID ETCD_ARGS ETCD_NS ETCD_URL

etcd_init() {
	[ -n "${WORK:-}" ] || fail "etcd.sh: call netns_init first"
	command -v etcd >/dev/null || fail "etcd.sh: no etcd in PATH (Debian: etcd-server)"
	etcd_reap_dead
	ETCD_PORTS_TAKEN=" "
	# netns.sh's EXIT trap runs after ours, with the test's exit status
	trap etcd_exit EXIT
}

# A test killed with SIGKILL (ctest's timeout) never ran its EXIT trap:
# its members outlive it. Their data dirs carry the test's pid (TAG =
# mg<pid in hex>, netns.sh): kill, by pid, those whose test is gone.
etcd_reap_dead() {
	local pid dir tag
	for pid in $(pgrep -x etcd || true); do
		dir=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -A1 -x -- --data-dir | tail -1)
		case $dir in /tmp/meshgate-test.mg*) ;; *) continue ;; esac
		tag=${dir#/tmp/meshgate-test.mg}
		tag=${tag%%.*}
		[ -d "/proc/$((16#$tag))" ] || kill -9 "$pid" 2>/dev/null || true
	done
}

etcd_exit() {
	local rc=$?
	set +e # a failed test's status must reach netns_cleanup, which removes $WORK
	etcd_cleanup
	(exit $rc)
	netns_cleanup
}

etcd_cleanup() {
	local name
	for name in "${!ETCD_PID[@]}"; do
		kill -9 "${ETCD_PID[$name]}" 2>/dev/null || true
		wait "${ETCD_PID[$name]}" 2>/dev/null || true
		unset "ETCD_PID[$name]"
	done
	return 0
}

# Random ports that nothing uses now, in no state, and that this test has
# not handed out before (never a well-known port: other tests run at once).
etcd_free_ports() {
	local want=$1 port used
	used=$(ss -Htan | awk '{n = split($4, a, ":"); print a[n]}' | sort -u | tr '\n' ' ')
	while [ "$want" -gt 0 ]; do
		port=$((20000 + RANDOM % 40000))
		case " $used $ETCD_PORTS_TAKEN " in *" $port "*) continue ;; esac
		ETCD_PORTS_TAKEN+="$port "
		echo "$port"
		want=$((want - 1))
	done
}

etcd_member_start() {
	local name=$1 dir=$2 client=$3 peer=$4 cluster=$5 ns=${6:-}
	mkdir -p "$dir"
	ETCD_ARGS[$name]="--name $name --data-dir $dir/data
		--listen-client-urls $client --advertise-client-urls $client
		--listen-peer-urls $peer --initial-advertise-peer-urls $peer
		--initial-cluster $cluster --initial-cluster-token ${TAG}-etcd
		--initial-cluster-state new --heartbeat-interval 100 --election-timeout 1000
		--logger zap --log-outputs $dir/log"
	ETCD_NS[$name]=$ns
	ETCD_URL[$name]=$client
	etcd_member_run "$name"
}

# `ip netns exec` execs etcd: $! is the member's own pid.
etcd_member_run() {
	local name=$1
	# shellcheck disable=SC2086
	if [ -n "${ETCD_NS[$name]}" ]; then
		ip netns exec "${ETCD_NS[$name]}" etcd ${ETCD_ARGS[$name]} </dev/null >/dev/null 2>&1 &
	else
		etcd ${ETCD_ARGS[$name]} </dev/null >/dev/null 2>&1 &
	fi
	ETCD_PID[$name]=$!
}

etcd_single_start() {
	local name=$1 ports
	ports=($(etcd_free_ports 2))
	etcd_member_start "$name" "$WORK/etcd-$name" "http://127.0.0.1:${ports[0]}" \
		"http://127.0.0.1:${ports[1]}" "$name=http://127.0.0.1:${ports[1]}"
	ETCD_ENDPOINTS=${ETCD_URL[$name]}
}

etcd_cluster_start() {
	local n=$1 i ports cluster="" endpoints=""
	ports=($(etcd_free_ports $((2 * n))))
	for i in $(seq "$n"); do
		cluster+="${cluster:+,}m$i=http://127.0.0.1:${ports[2 * i - 1]}"
		endpoints+="${endpoints:+,}http://127.0.0.1:${ports[2 * i - 2]}"
	done
	for i in $(seq "$n"); do
		etcd_member_start "m$i" "$WORK/etcd-m$i" "http://127.0.0.1:${ports[2 * i - 2]}" \
			"http://127.0.0.1:${ports[2 * i - 1]}" "$cluster"
	done
	ETCD_ENDPOINTS=$endpoints
}

etcd_is_healthy() {
	local name=$1 ns=${ETCD_NS[$1]}
	${ns:+ip netns exec "$ns"} curl -s -m 2 "${ETCD_URL[$name]}/health" |
		grep -q '"health":"true"'
}

etcd_wait_healthy() {
	local name=$1 seconds=${2:-10}
	wait_for "$seconds" etcd_is_healthy "$name" ||
		fail "etcd member $name not healthy after ${seconds}s (log: $WORK/etcd-$name/log)"
}

etcd_member_stop() {
	kill "${ETCD_PID[$1]}"
	wait "${ETCD_PID[$1]}" 2>/dev/null || true
	unset "ETCD_PID[$1]"
}

etcd_member_kill() {
	kill -9 "${ETCD_PID[$1]}"
	wait "${ETCD_PID[$1]}" 2>/dev/null || true
	unset "ETCD_PID[$1]"
}

etcd_member_restart() {
	[ -z "${ETCD_PID[$1]:-}" ] || fail "etcd member $1 still runs"
	etcd_member_run "$1"
}
