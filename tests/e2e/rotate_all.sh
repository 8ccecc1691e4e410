#!/bin/bash
# Every key of a cluster rotated in turn under one client's pings, none
# lost (issue 15's combined test; docs/rotation.md). Two gateways of one
# cluster (etcd), meshed (tests/cluster/cluster_lib.sh draws them):
#
#   cl1 (meshgate + agent) ── gw1 ══ mesh ══ gw2 ── site2 172.19.2.10
#
# A device enrolled on gw1 pings 172.19.2.10, behind gw2, every 10 ms: its
# packets cross its tunnel to gw1 and the mesh to gw2. While they run, in
# turn: gw1's gateway key (`key rotate --gateway`), the device's key
# (`key rotate --device ID`), gw1's mesh key and gw2's (`key rotate
# --mesh`). Counted: 0 pings lost. Afterwards every end runs and knows
# only the new keys (`wg show` on the device, gw1 and gw2). First the same
# pings without a rotation: a machine that loses some then cannot tell
# whether a rotation loses one (a skip, 77). Then the hygiene of the run
# (tests/lib/secret_hygiene.sh): no private key of the run (before and
# after, the API's TLS keys too) in any log, in etcd's data or a dump of
# it, or any file of the gateways, and their state private (0600/0700).
# usage: rotate_all.sh BUILD_DIR [local|vault]   (vault: against the Vault
# stand-in, tests/vault/vault_standin.py: NOT Vault, one in each gateway's
# namespace)
set -euo pipefail
build=$(realpath "$1")
SECRETS=${2:-local}
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/../lib/etcd.sh"
source "$here/../lib/secret_hygiene.sh"
source "$here/../cluster/cluster_lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v etcd >/dev/null || { echo "SKIP: no etcd"; exit 77; }
netns_init
etcd_init

PLUGINS="$CLUSTER_PLUGINS, \"mesh\""
CLUSTER_ROLES='admin = ["10.0.0.0/16", "172.19.2.0/24"];' # the device's role: gw2's site
MESHGATE=$build/client/meshgate
TARGET=172.19.2.10 # site2, behind gw2
if [ "$SECRETS" = vault ]; then
	source "$here/../vault/standin.sh"
	standin_certs "$WORK/vault"
	CLUSTER_EXTRA_CONF="secrets = \"vault\";
vault = { address = \"https://127.0.0.1:8200\"; ca = \"$WORK/vault/ca.pem\";
          role_id = \"$STANDIN_ROLE_ID\"; secret_id_file = \"$WORK/vault/secret_id\"; };"
fi

gw_ns() { eval "echo \$GW$1"; }
echo "-- two gateways, one cluster, meshed ($SECRETS back end)"
cluster_up "$PLUGINS" " " # the namespaces, etcd and the sites; no gateway yet
for i in 1 2; do
	if [ "$SECRETS" = vault ]; then # a stand-in in each gateway's namespace
		cp -r "$WORK/vault" "$WORK/vault$i"
		standin_start "$WORK/vault$i" 8200 3600 "$(gw_ns "$i")" || fail "the stand-in did not start"
		bg_track "$STANDIN_PID"
	fi
	gw_config "$i" "$PLUGINS"
	gw_start "$i"
done
wgs() { ns_exec "$(gw_ns "$1")" wg show "$2" "${@:3}"; } # wgs N IF ARGS
two_nodes() { [ "$(ctln "$1" node list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["nodes"]))')" = 2 ]; }
for i in 1 2; do wait_for 20 two_nodes "$i" || fail "gw$i does not list two nodes"; done
site_routed() { ip -n "$GW1" route show 172.19.2.0/24 | grep -q "dev ${TAG}m1"; }
wait_for 10 site_routed || fail "gw1 does not route gw2's site over the mesh"
# gw1's firewall lets the role's site out through the mesh (mesh_sites.sh)
site_open() { ns_exec "$GW1" iptables -S MESHGATE-FROM-VPN | grep -F -- "-d 172.19.2.0/24" | grep -qF -- "-o ${TAG}m1 "; }
wait_for 5 site_open || fail "gw1's firewall does not let gw2's site out through the mesh"

echo "-- a device on gw1, with its agent, reaching gw2's site over the mesh"
IF=${TAG}a
conf=$WORK/dev/etc/$IF.conf
code=$(ctln 1 user add ana --role admin --json | json_field code)
[ -n "$code" ] || fail "no code from gw1"
up_out=$(ns_exec "$CL1" "$MESHGATE" up --server https://198.18.0.1:8443 --ca "$WORK/gw1/state/ca.pem" \
	--interface "$IF" --backend userspace --config-dir "$WORK/dev/etc" --state-dir "$WORK/dev/run" \
	"$code" 2>&1) || fail "meshgate up: $up_out"
grep -q "agent [0-9]* follows" <<<"$up_out" || fail "no agent after up: $up_out"
# (a try takes up to its 1 s timeout: wait_for counts tries of 0.1 s)
wait_for 3 ns_exec "$CL1" ping -c1 -W1 "$TARGET" >/dev/null || fail "no ping from the device to $TARGET"
id=$(ctln 1 device list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["devices"][0]["id"])')

# the keys now: public ones to compare, private ones for the hygiene check
gw_key() { wgs 1 "${TAG}w1" "$1"; }        # gw1's gateway key
mesh_key() { wgs "$1" "${TAG}m$1" "$2"; }  # gwN's mesh key
dev_key() { ns_exec "$CL1" wg show "$IF" "$1"; }
KEYS=()
note_keys() { KEYS+=("$(gw_key private-key)" "$(mesh_key 1 private-key)" "$(mesh_key 2 private-key)" "$(dev_key private-key)"); }
note_keys
old_gw=$(gw_key public-key) old_dev=$(dev_key public-key)
old_m1=$(mesh_key 1 public-key) old_m2=$(mesh_key 2 public-key)

# pings COUNT: the device pings the site every 10 ms in the background;
# pings_lost: LOST, how many of them did not come back (not in a
# $(subshell): ping must be its child to be waited for)
pings() {
	ip netns exec "$CL1" ping -O -D -i 0.01 -c "$1" -W 2 "$TARGET" >"$WORK/ping.out" 2>&1 &
	PING_PID=$!
	bg_track $PING_PID
}
pings_lost() {
	wait "$PING_PID" || true
	local sent received
	sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$WORK/ping.out")
	received=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$WORK/ping.out")
	[ -n "$sent" ] && [ -n "$received" ] || fail "no summary from ping: $(cat "$WORK/ping.out")"
	LOST=$((sent - received))
}

echo "-- baseline: 500 pings every 10 ms without a rotation"
pings 500
pings_lost
if [ "$LOST" != 0 ]; then
	echo "SKIP: this machine loses pings without any rotation ($LOST of 500): too loaded to measure"
	exit 77
fi

COUNT=2500 # 25 s: the rotations take about 18 (a lead of 5 s for each but the device key)
echo "-- $COUNT pings every 10 ms while every key rotates in turn"
pings $COUNT
started=$SECONDS
sleep 1

echo "   gw1's gateway key (at $((SECONDS - started)) s, $(date +%s.%N))"
out=$(ctln 1 key rotate --gateway) || fail "key rotate --gateway: $out"
next=$(sed -n 's/.*(public key \([^)]*\)).*/\1/p' <<<"$out")
[ -n "$next" ] && [ "$next" != "$old_gw" ] || fail "no next gateway key told: $out"
# done: gw1 runs the new key, the device's only peer is it, with a
# handshake (the peer is new since the switch: any handshake is under the
# new key); then the next rotation, in turn
gw_switched() {
	[ "$(gw_key public-key)" = "$next" ] && [ "$(dev_key peers)" = "$next" ] &&
		[ "$(dev_key latest-handshakes | cut -f2)" -gt 0 ]
}
wait_for 15 gw_switched || fail "gw1 runs $(gw_key public-key), the device's peer is $(dev_key peers); not $next"
new_gw=$next

echo "   the device's key (at $((SECONDS - started)) s, $(date +%s.%N))"
ctln 1 key rotate --device "$id" >/dev/null || fail "key rotate --device $id"
dev_rotated() { [ "$(dev_key public-key)" != "$old_dev" ] && ! grep -q MeshgateNextKey "$conf"; }
wait_for 10 dev_rotated || fail "the device did not rotate its key: $(cat "$WORK/dev/run/$IF.agent.log")"
new_dev=$(dev_key public-key)
on_gw1() { wgs 1 "${TAG}w1" peers | grep -qxF "$1"; }
wait_for 5 on_gw1 "$new_dev" || fail "gw1 does not have the device's new key"

# mesh_switched N OLD: gwN runs a new mesh key and the other has only it as its peer
mesh_switched() {
	local n=$1 old=$2 other=$((3 - $1)) new
	new=$(mesh_key "$n" public-key)
	[ "$new" != "$old" ] && [ "$(mesh_key "$other" peers)" = "$new" ]
}
for n in 1 2; do
	echo "   gw$n's mesh key (at $((SECONDS - started)) s, $(date +%s.%N))"
	eval "old=\$old_m$n"
	ctln "$n" key rotate --mesh >/dev/null || fail "key rotate --mesh on gw$n"
	wait_for 15 mesh_switched "$n" "$old" || fail "gw$n's mesh key did not switch everywhere"
done
new_m1=$(mesh_key 1 public-key) new_m2=$(mesh_key 2 public-key)

echo "   all rotated at $((SECONDS - started)) s"
kill -0 "$PING_PID" 2>/dev/null || fail "ping ended before the rotations did: raise COUNT"
pings_lost
echo "lost pings while the gateway, device and two mesh keys rotated: $LOST of $COUNT"
# which ones, and when (-D: unix time), against the rotations' times above
[ "$LOST" = 0 ] || fail "$LOST pings lost across the rotations: $(grep -m5 'no answer' "$WORK/ping.out")
gw1: $(grep -E 'switched|promoted' "$WORK/gw1/meshgated.log" 2>/dev/null)
agent: $(cat "$WORK/dev/run/$IF.agent.log")"
note_keys

echo "-- only the new keys, everywhere"
[ "$(gw_key public-key)" = "$new_gw" ] || fail "gw1 does not run its new gateway key"
[ "$(dev_key peers)" = "$new_gw" ] || fail "the device's peers: $(dev_key peers)"
grep -q "^PublicKey = $new_gw" "$conf" || fail "the device's saved config does not name gw1's new key"
for i in 1 2; do
	! wgs "$i" "${TAG}w$i" peers | grep -qxF "$old_dev" || fail "gw$i still has the device's old key"
done
[ "$(mesh_key 2 peers)" = "$new_m1" ] || fail "gw2's mesh peer is not gw1's new key"
[ "$(mesh_key 1 peers)" = "$new_m2" ] || fail "gw1's mesh peer is not gw2's new key"
for k in "$old_m1" "$old_m2" "$old_gw"; do
	for i in 1 2; do
		! wgs "$i" "${TAG}m$i" peers | grep -qxF "$k" || fail "gw$i's mesh still has $k"
	done
done
ns_exec "$CL1" ping -c 2 -W 2 "$TARGET" >/dev/null || fail "no ping after the rotations"
status=$(ctln 1 key status --json)
python3 -c '
import json, sys
keys = {k["name"]: k for k in json.loads(sys.argv[1])["keys"]}
for name in sys.argv[2:]:
    k = keys[name]
    assert k["version"] == 2 and "next" not in k and k["previous"]["version"] == 1, (name, k)
' "$status" "wireguard/${TAG}w1" "mesh/${TAG}m1" || fail "gw1's service does not have version 2 of both keys: $status"

echo "-- no private key of the run in a log, etcd or the gateways' files"
for i in 1 2; do # the API's TLS keys too
	for name in api/ca api/server; do
		KEYS+=("$(ctln "$i" call secret.get "{\"name\": \"$name\", \"create\": false}" |
			python3 -c 'import base64, json, sys
pem = base64.b64decode(json.load(sys.stdin)["key"]).decode()
print("".join(l for l in pem.splitlines() if "-----" not in l))')")
	done
done
mkdir -p "$WORK/etcd-dump"
ns_exec "$GW1" etcdctl --endpoints http://198.18.0.1:2379 get --prefix "" >"$WORK/etcd-dump/all"
grep -q public_key "$WORK/etcd-dump/all" || fail "nothing read from etcd?"
KEYS_NOWHERE_SKIP=$WORK/dev/etc keys_nowhere "$WORK" "${KEYS[@]}" ||
	fail "a private key is readable outside the service"
# the device's config holds its key in use (0600), and no other
device=$(dev_key private-key)
others=()
for k in "${KEYS[@]}"; do [ "$k" = "$device" ] || others+=("$k"); done
keys_nowhere "$WORK/dev/etc" "${others[@]}" || fail "an old key in the device's config dir"
grep -qxF "PrivateKey = $device" "$conf" || fail "the device's config does not hold its key"
for i in 1 2; do
	bad=$(state_private "$WORK/gw$i/state") || fail "gw$i: $bad"
done
echo "rotate all ($SECRETS): ok"
