#!/bin/bash
# The gateway's key rotates without a lost packet (docs/rotation.md,
# "Gateway key"), with real WireGuard (wireguard-go) on both ends:
#
#   client ns (meshgate + agent) ── gw ns (meshgated) ── svc ns 10.20.0.10
#
# A device with its agent pings the service every 10 ms through the tunnel
# while `meshgatectl key rotate --gateway` runs: the wireguard plugin
# publishes the next public key and the switch time, the agent reads them
# (the config epoch changed), the gateway sets the new key at that time and
# the agent replaces the gateway's peer 100 ms later in one set. Counted:
# 0 pings lost. Afterwards `wg show` on both ends has only the new key, the
# device's saved config names it, and `key status` shows version 2 in use
# with version 1 kept for the grace period.
# usage: rotate_gateway.sh BUILD_DIR [local|vault]   (vault: against the
# Vault stand-in, tests/vault/vault_standin.py: NOT Vault)
set -euo pipefail
build=$(realpath "$1")
SECRETS=${2:-local}
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/gateway.sh"
netns_init

if [ "$SECRETS" = vault ]; then
	source "$here/../vault/standin.sh"
	VDIR=$WORK/vault
	PORT=8200
	standin_gateway "$VDIR" "$PORT"
fi
gateway_up

IF=${TAG}c
COUNT=1500 # 15 s of pings: the rotation takes the default lead of 5 s
key_field() { # key_field FIELD: of the gateway's key in `key status --json`
	ctl key status --json | python3 -c '
import json, sys
keys = [k for k in json.load(sys.stdin)["keys"] if k["name"] == "wireguard/" + sys.argv[1]]
k = keys[0] if keys else {}
v = k
for part in sys.argv[2].split("."):
    v = v.get(part) if isinstance(v, dict) else None
print("-" if v is None else v)' "$WG_IF" "$1"
}
gw_public() { ns_exec "$GW" wg show "$WG_IF" public-key; }
cl_peers() { ns_exec "$CL" wg show "$IF" peers; }

echo "-- a device with its agent ($SECRETS back end)"
code=$(ctl user add alice --role developer --json | json_field code)
[ -n "$code" ] || fail "no code"
up_out=$(client_up "$CL" "$IF" "$code") || fail "meshgate up: $up_out"
grep -q "agent [0-9]* follows" <<<"$up_out" || fail "no agent after up: $up_out"
ns_exec "$CL" ping -c 2 -W 2 10.20.0.10 >/dev/null || fail "no ping through the tunnel"
old=$(gw_public)
[ "$(cl_peers)" = "$old" ] || fail "the device's peer is not the gateway's key"
[ "$(key_field version)" = 1 ] || fail "the gateway's key is not at version 1"

echo "-- $COUNT pings every 10 ms through the tunnel while the key rotates"
ip netns exec "$CL" ping -O -D -i 0.01 -c $COUNT -W 1 10.20.0.10 >"$WORK/ping.out" 2>&1 &
ping_pid=$!
bg_track $ping_pid
sleep 2
out=$(ctl key rotate --gateway) || fail "key rotate --gateway: $out"
echo "$out"
grep -q "switches to version 2" <<<"$out" || fail "no switch scheduled: $out"
next=$(sed -n 's/.*(public key \([^)]*\)).*/\1/p' <<<"$out")
[ -n "$next" ] && [ "$next" != "$old" ] || fail "no next public key told: $out"
ctl key status | tee "$WORK/status.txt"
grep -q "switches to version 2" "$WORK/status.txt" || fail "key status shows no switch under way"
[ "$(gw_public)" = "$old" ] || fail "the gateway switched before its time"

switched() { [ "$(gw_public)" = "$next" ]; }
wait_for 10 switched || fail "the gateway did not switch to $next"
followed() { [ "$(cl_peers)" = "$next" ]; }
wait_for 5 followed || fail "the device's peer is $(cl_peers), not $next"
promoted() { [ "$(key_field version)" = 2 ]; }
wait_for 10 promoted || fail "key status: version $(key_field version), not 2"

kill -0 $ping_pid 2>/dev/null || fail "ping ended before the rotation did: raise COUNT"
wait $ping_pid || true
tail -3 "$WORK/ping.out"
sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$WORK/ping.out")
received=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$WORK/ping.out")
[ -n "$sent" ] && [ -n "$received" ] || fail "no summary from ping"
echo "lost pings across the gateway key's rotation: $((sent - received)) of $sent"
# which ones, and when (-D: unix time), against the moments of the switch
[ "$sent" = "$received" ] || fail "$((sent - received)) pings lost across the rotation: $(grep -m5 'no answer' "$WORK/ping.out")
gateway: $(grep -E 'switched|promoted|published' "$WORK/gw/meshgated.log")
agent: $(cat "$WORK/cl/run/$IF.agent.log")"

echo "-- only the new key on both ends; version 1 kept for the grace period"
[ "$(cl_peers | wc -l)" = 1 ] || fail "the device has more than one peer: $(cl_peers)"
grep -q "^PublicKey = $next" "$WORK/cl/etc/$IF.conf" ||
	fail "the device's saved config does not name the new key"
[ "$(key_field next)" = - ] || fail "a next version is still pending"
[ "$(key_field previous.version)" = 1 ] || fail "version 1 is not kept as previous"
ns_exec "$GW" wg show "$WG_IF" dump | head -1 | grep -q "$next" ||
	fail "the gateway's interface does not run the new key"
grep -q "switched $WG_IF to version 2" "$WORK/gw/meshgated.log" || fail "no word of the switch"
grep -q "the node switched to its next key" "$WORK/cl/run/$IF.agent.log" ||
	fail "the agent did not follow at the switch time: $(cat "$WORK/cl/run/$IF.agent.log")"
ns_exec "$CL" ping -c 2 -W 2 10.20.0.10 >/dev/null || fail "no ping after the rotation"

if [ "$SECRETS" = vault ]; then
	echo "-- the promoted record is in the stand-in's KV (a check-and-set write)"
	vault_curl() { ns_exec "$GW" curl -sS --max-time 5 --cacert "$VDIR/ca.pem" "$@"; }
	token=$(vault_curl -X POST -d "{\"role_id\": \"$STANDIN_ROLE_ID\", \"secret_id\": \"$(cat "$VDIR/secret_id")\"}" \
		"https://127.0.0.1:$PORT/v1/auth/approle/login" | json_field client_token)
	NODE=$(ns_exec "$GW" hostname)
	kv=$(vault_curl -H "X-Vault-Token: $token" \
		"https://127.0.0.1:$PORT/v1/secret/data/meshgate/$NODE/wireguard/$WG_IF")
	python3 -c '
import json, sys
d = json.loads(sys.argv[1])["data"]
rec = d["data"]
assert rec["version"] == 2 and "next" not in rec, rec.keys()
assert rec["previous"]["version"] == 1
assert d["metadata"]["version"] == 3, d["metadata"]  # made, rotated, promoted
' "$kv" || fail "the stand-in's record is not the promoted one"
	[ "$(wg pubkey <<<"$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["data"]["data"]["key"])' "$kv")")" = "$next" ] ||
		fail "Vault's key in use is not the interface's"
	unset kv
fi
echo "rotate gateway ($SECRETS): ok"
