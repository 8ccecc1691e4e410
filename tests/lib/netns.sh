# Test hosts made of network namespaces and veth pairs, for bash tests.
# Source it; every namespace, process and temp dir made through it is
# removed on exit, also when the test fails.
#
#   netns_init            # once: a unique tag, the EXIT trap
#   ns_add VAR NAME       # a namespace "$TAG-NAME" with lo up, its name in $VAR
#   ns_link A IPA/LEN B IPB/LEN  # a veth pair between two of them
#   ns_exec NAME cmd...   # run in the namespace (in the background, use
#                         # `ip netns exec NAME cmd &` so that $! is cmd)
#   bg_track PID          # kill this process at exit
#   fail "message"        # print and exit 1
#   plugins_ready BUILD SOCKET  # a meshgated answers, every plugin running

set -euo pipefail

netns_init() {
	netns_reap_dead
	# short: interface names have 15 characters at most
	TAG=mg$(printf '%x' $$)
	WORK=$(mktemp -d "/tmp/meshgate-test.$TAG.XXXXXX")
	NETNS_LIST=()
	BG_PIDS=()
	trap netns_cleanup EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
}

# A test killed with SIGKILL (ctest's timeout) never ran its EXIT trap: its
# namespaces, and the detached wireguard-go inside them, outlive it. Their
# names carry the test's pid (TAG = mg<pid in hex>): remove those whose
# test is gone, killing what runs inside by pid.
netns_reap_dead() {
	local ns tag pid
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^mg[0-9a-f]+-' || true); do
		tag=${ns%%-*}
		pid=$((16#${tag#mg}))
		[ -d "/proc/$pid" ] && continue
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null || true
		rm -f /var/run/wireguard/"$tag"*.sock 2>/dev/null
	done
}

netns_cleanup() {
	local rc=$?
	set +e
	for pid in "${BG_PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	sleep 0.2
	for pid in "${BG_PIDS[@]}"; do
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	for ns in "${NETNS_LIST[@]}"; do
		# whatever still runs inside (wireguard-go, ncat) goes with it
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	# wireguard-go sockets of our interfaces (one directory for all namespaces)
	rm -f /var/run/wireguard/"$TAG"*.sock 2>/dev/null
	[ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
	exit $rc
}

# Not in a $(subshell): the list of namespaces to remove must grow here.
ns_add() {
	local ns="$TAG-$2"
	ip netns add "$ns"
	NETNS_LIST+=("$ns")
	ip -n "$ns" link set lo up
	printf -v "$1" '%s' "$ns"
}

# ns_link NS_A ADDR_A NS_B ADDR_B [NAME_A NAME_B]
ns_link() {
	local a=$1 ipa=$2 b=$3 ipb=$4
	local ia=${5:-v$RANDOM$RANDOM} ib=${6:-v$RANDOM$RANDOM}
	ip link add "${ia:0:15}" netns "$a" type veth peer name "${ib:0:15}" netns "$b"
	ip -n "$a" addr add "$ipa" dev "${ia:0:15}"
	ip -n "$b" addr add "$ipb" dev "${ib:0:15}"
	ip -n "$a" link set "${ia:0:15}" up
	ip -n "$b" link set "${ib:0:15}" up
}

ns_exec() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

bg_track() { BG_PIDS+=("$1"); }

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# wait_for SECONDS cmd...: retries every 0.1 s
wait_for() {
	local tries=$(($1 * 10))
	shift
	for _ in $(seq "$tries"); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# plugins_ready BUILD SOCKET: the meshgated on SOCKET answers `meshgatectl
# status` and none of its plugins is still loading or starting, nor failed
plugins_ready() {
	local s
	s=$("$1/cli/meshgatectl" --socket "$2" status) || return 1
	! grep -qE ' (loaded|initialised|starting|failed|refused) ' <<<"$s"
}
