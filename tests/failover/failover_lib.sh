# Helpers for three nodes with the failover plugin (tests/failover/*.sh,
# bench/failover/run.sh). Source after netns.sh, etcd.sh and
# tests/cluster/cluster_lib.sh, once cluster_up has run.
#
# The nodes: gw_ns N, gw_pid N, node_of NAME, wg_pid N [IFNAME],
# keepalived_pids N; the VIP: has_vip N, holders, one_holder,
# holder_other_than N; the records: record N, state_of N, state_is N STATE;
# the active node: master N.
# The device of `meshgate up` in $CL1 (MESHGATE, IF and DIRS set by the
# caller): client ARGS..., status_field NAME, on_node NAME, on_master N.
# Pings every 10 ms: ping_start NS LOG [TARGET], ping_stop PID,
# ping_gap LOG [END_MS].

MESH_VIP=10.99.0.254

ms() { date +%s%3N; }

gw_ns() { eval "echo \$GW$1"; }
gw_pid() { eval "echo \$GW${1}_PID"; }
# node_of NAME: N of gwN
node_of() { echo "${1#gw}"; }

# wg_pid N [IFNAME]: the wireguard-go of gwN's interface IFNAME (the
# devices' one, TAGwN, by default), found among gwN's namespace's processes
wg_pid() {
	local ns p ifname=${2:-${TAG}w$1}
	ns=$(gw_ns "$1")
	for p in $(ip netns pids "$ns"); do
		if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "wireguard-go.* $ifname"; then
			echo "$p"
		fi
	done
}

# keepalived_pids N: gwN's keepalived, its VRRP child first (their pid files)
keepalived_pids() {
	cat "$WORK/gw$1/state/failover/vrrp.pid" "$WORK/gw$1/state/failover/keepalived.pid" 2>/dev/null
}

# has_vip N: gwN holds the mesh VIP on its mesh interface
has_vip() { ip -n "$(gw_ns "$1")" -4 addr show dev "${TAG}m$1" 2>/dev/null | grep -q "inet $MESH_VIP/"; }
# holders: the nodes (1 2 3) that hold the mesh VIP, on one line
holders() {
	local i out=""
	for i in 1 2 3; do has_vip "$i" && out+="${out:+ }$i"; done
	echo "$out"
}
one_holder() { [ "$(holders | wc -w)" = 1 ]; }
# holder_other_than N: one node other than N holds the VIP
holder_other_than() { local h; h=$(holders); [ -n "$h" ] && [ "$h" != "$1" ] && one_holder; }

# record N: gwN's record in the failover database, as etcd has it
record() {
	ns_exec "$GW1" etcdctl --endpoints http://198.18.0.1:2379,http://198.18.0.2:2379 \
		get --print-value-only "/meshgate/failover/gw$1"
}
state_of() { record "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["state"])'; }
state_is() { [ "$(state_of "$1")" = "$2" ]; }

# master N: the active node as gwN's node list says ("" none)
master() {
	ctln "$1" node list --json | python3 -c '
import json, sys
print(" ".join(n["name"] for n in json.load(sys.stdin)["nodes"] if n.get("active")))'
}

client() { ns_exec "$CL1" "$MESHGATE" "$@" --interface "$IF" "${DIRS[@]}"; }
status_field() { client status --json | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1]))' "$1"; }
on_node() { [ "$(status_field gateway)" = "$1" ]; }
# on_master N: one master as gwN sees it, and the agent on it
on_master() { local m; m=$(master "$1"); [ -n "$m" ] && [ "${m// /}" = "$m" ] && on_node "$m"; }
# moved_to_master OLD N: the agent has left OLD (just killed: until its
# lease ends, gwN still names it the master) and is on gwN's master
moved_to_master() { ! on_node "$1" && on_master "$2"; }

# ping_start NS LOG [TARGET]: pings TARGET (the gateway address) every 10 ms
# from NS, the answers timestamped in LOG; PING_PID is the ping's pid
ping_start() {
	ip netns exec "$1" ping -D -n -i 0.01 -W 1 "${3:-10.0.0.1}" >"$2" 2>&1 &
	PING_PID=$!
	bg_track $PING_PID
	sleep 1
}
ping_stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
# ping_gap LOG [END_MS]: the longest interval without an answer in LOG, in
# ms, up to END_MS (now by default: pings that never resumed count until
# then); 99999 with too few answers to tell
ping_gap() {
	python3 - "$1" "${2:-$(ms)}" <<'PY'
import re, sys
t = [float(m.group(1)) for m in (re.match(r"\[(\d+\.\d+)\] \d+ bytes from", l) for l in open(sys.argv[1])) if m]
t.append(int(sys.argv[2]) / 1000)
print(int(max(b - a for a, b in zip(t, t[1:])) * 1000) if len(t) > 10 else 99999)
PY
}
