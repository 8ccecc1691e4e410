#!/bin/bash
# A gateway that ran alone joins a cluster (docs/cluster.md, "Adding a
# node"): its users stay, writes wait until `meshgatectl cluster import`
# copied them into the empty prefix, a second node then sees them, and a
# second import is refused with nothing written. One namespace holds an
# etcd member and both nodes (wireguard and preauth, each its interface).
# usage: import.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/../lib/etcd.sh"
netns_init
etcd_init
ns_add NS host
etcd_member_start solo "$WORK/etcd" http://127.0.0.1:2379 http://127.0.0.1:2380 \
	solo=http://127.0.0.1:2380 "$NS"
etcd_wait_healthy solo 20

# conf NAME CLUSTER PORT: a node's config, alone (CLUSTER "") or in the cluster
conf() {
	mkdir -p "$WORK/$1"
	cat >"$WORK/$1/meshgated.conf" <<CONF
state_dir = "$WORK/$1/state";
socket = "$WORK/$1/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["wireguard", "preauth"];
wireguard = { interface = "${TAG}$1"; backend = "userspace"; address = "10.0.0.1/24";
              listen_port = $3; endpoint = "192.0.2.1:$3"; };
${2:-}
CONF
}
start() {
	ip netns exec "$NS" "$build/core/meshgated" --config "$WORK/$1/meshgated.conf" \
		>>"$WORK/$1/log" 2>&1 &
	eval "PID_$1=$!"
	bg_track $!
	wait_for 10 ctl "$1" status || { tail -20 "$WORK/$1/log"; fail "$1 did not start"; }
}
stop() {
	local pid
	eval "pid=\$PID_$1"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}
ctl() {
	local n=$1
	shift
	"$build/cli/meshgatectl" --socket "$WORK/$n/bus.sock" "$@"
}
cluster() { echo "cluster = { node = \"$1\"; etcd = [ \"http://127.0.0.1:2379\" ]; };"; }

echo "-- a gateway runs alone, with users of its own"
conf a "" 51820
start a
for u in ann ben cid; do ctl a user add "$u" --role developer >/dev/null; done
stop a

echo "-- it joins an empty cluster: its users stay, writes wait for the import"
conf a "$(cluster a)" 51820
start a
[ "$(ctl a user list --json | grep -c '"name"')" = 3 ] || fail "the lone node's users are gone"
ctl a --json status | grep '"import_pending": *true' >/dev/null || fail "no import pending in status"
ls "$WORK/a/state/"before-cluster-*.mdb >/dev/null || fail "no copy of the state before joining"
out=$(ctl a user add dan --role developer 2>&1) && fail "a write before the import: $out"
grep -q "cannot take a write" <<<"$out" || fail "not the unavailable message: $out"
echo "   refused: $out"

echo "-- meshgatectl cluster import"
ctl a cluster import
ctl a user add dan --role developer >/dev/null || fail "a write after the import"
out=$(ctl a cluster import 2>&1) && fail "a second import was accepted"
grep -q "holds data" <<<"$out" || fail "not the refusal: $out"
echo "   second import refused: $out"

echo "-- a second node joins and sees every user"
conf b "$(cluster b)" 51830
start b
users_on_b() { [ "$(ctl b user list --json | grep -c '"name"')" = 4 ]; }
wait_for 5 users_on_b || fail "b lists $(ctl b user list --json | grep -c '"name"') users, not 4"
echo "import: all checks passed"
