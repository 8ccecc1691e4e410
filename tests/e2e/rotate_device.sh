#!/bin/bash
# A device's key rotated end to end, without losing a packet
# (docs/rotation.md): a gateway (meshgated: wireguard, preauth, api) and a
# device with its agent, in namespaces, real wireguard-go. While the device
# pings the gateway through the tunnel every 10 ms, `meshgatectl key rotate
# --device ID` asks for a new key: the agent makes the key pair, registers
# the next public key, switches its interface, asks the gateway to switch;
# the gateway's wireguard plugin replaces the device's peer. Counted: 0
# pings lost. Afterwards the gateway has only the new key as the device's
# peer (with the device's /32), the device's interface uses the new private
# key, its config holds it (mode 0600), and the old private key is in no
# file of the device. A second rotation, and one the device's user starts
# (`meshgate rotate-key`, carried out by the agent), go the same way; bad
# requests change nothing. With SECRETS=vault the gateway keeps its own keys in
# the Vault stand-in (tests/vault/standin.sh) instead of the local store: a
# device's key lives on the device, so its rotation is the same.
# usage: [SECRETS=vault] rotate_device.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/gateway.sh"
netns_init

if [ "${SECRETS:-local}" = vault ]; then
	source "$here/../vault/standin.sh"
	standin_gateway "$WORK/vault" 8200
fi
gateway_up # GW, CL, SVC namespaces, meshgated running: see gateway.sh
ctl key status | head -1

IF=${TAG}c
conf=$WORK/cl/etc/$IF.conf
private_key() { sed -n 's/^PrivateKey = //p' "$conf"; }
device_field() { # device_field NAME: of the one device, from meshgatectl device list --json
	ctl device list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["devices"][0].get(sys.argv[1], ""))' "$1"
}
gw_peers() { ns_exec "$GW" wg show "$WG_IF" peers; }
# both ends' peers as WireGuard has them (no private key), for a failure
wg_state() {
	local ns what
	for ns in "$GW:$WG_IF" "$CL:$IF"; do
		for what in allowed-ips latest-handshakes endpoints transfer; do
			echo "${ns#*:} $what: $(ns_exec "${ns%%:*}" wg show "${ns#*:}" "$what" | tr '\n' ' ')"
		done
	done
}

echo "-- a device onboards, with its agent"
code=$(ctl user add dana --role admin --json | json_field code)
[ -n "$code" ] || fail "no code from user add"
up_out=$(client_up "$CL" "$IF" "$code") || fail "meshgate up failed: $up_out"
grep -q "agent [0-9]* follows" <<<"$up_out" || fail "no agent after up: $up_out"
id=$(device_field id)
address=$(device_field address)
old_private=$(private_key)
old_public=$(wg pubkey <<<"$old_private")
[ "$(device_field public_key)" = "$old_public" ] || fail "the gateway has another key for the device"
wait_for 5 ns_exec "$CL" ping -c1 -W1 10.0.0.1 >/dev/null || fail "no tunnel before the rotation"

echo "-- the key rotates while the device and the gateway ping each other every 10 ms"
# both ends send: each starts a handshake under the new key, and the two
# must not cross (plugins/wireguard/takeover.h)
PINGS=500
ns_exec "$CL" ping -O -D -i 0.01 -c "$PINGS" -W 2 10.0.0.1 >"$WORK/ping" 2>&1 &
PING=$!
bg_track "$PING"
ns_exec "$GW" ping -O -D -i 0.01 -c "$PINGS" -W 2 "${address%/*}" >"$WORK/ping-back" 2>&1 &
PING_BACK=$!
bg_track "$PING_BACK"
sleep 1
asked_at=$(date +%s.%N)
rotate_out=$(ctl key rotate --device "$id") || fail "key rotate --device: $rotate_out"
echo "$rotate_out"
rotated() { [ "$(private_key)" != "$old_private" ] && ! grep -q MeshgateNextKey "$conf"; }
wait_for 5 rotated || fail "the device did not rotate its key: $(cat "$WORK/cl/run/$IF.agent.log" 2>/dev/null)"
wait "$PING" || true
wait "$PING_BACK" || true
# The device's pings: none lost. The gateway's: one now and then (about 1
# run in 20 here), the packet crossing the moment its address moves to the
# new peer (docs/rotation.md, "Limit"); a crossed handshake would lose
# dozens.
for flow in ping ping-back; do
	received=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$WORK/$flow")
	lost=$((PINGS - ${received:-0}))
	allowed=$([ "$flow" = ping ] && echo 0 || echo 1)
	echo "rotation (asked at $asked_at): $flow, $PINGS pings every 10 ms, $lost lost"
	# which ones, and when (-D: unix time), against the rotation's moments
	[ "$lost" -le "$allowed" ] || fail "$flow: $lost of $PINGS pings lost during the rotation: $(grep -m5 'no answer' "$WORK/$flow") $(tail -2 "$WORK/$flow")
gateway: $(grep -E 'new key|switched' "$WORK/gw/meshgated.log")
$(wg_state)
agent: $(cat "$WORK/cl/run/$IF.agent.log")"
done

echo "-- afterwards: only the new key, on both ends"
new_private=$(private_key)
new_public=$(wg pubkey <<<"$new_private")
[ "$new_public" != "$old_public" ] || fail "the same key"
# the node drops the old peer once the new one has a handshake (checked
# every 50 ms, plugins/wireguard/takeover.c): a moment after the agent's
# own word
only_current() { [ "$(gw_peers)" = "$(wg pubkey <<<"$(private_key)")" ]; }
wait_for 2 only_current || fail "the gateway's peers are not only the new key: $(gw_peers)"
[ "$(ns_exec "$GW" wg show "$WG_IF" allowed-ips | cut -f2)" = "$address" ] ||
	fail "the new peer does not hold the device's address $address"
[ "$(ns_exec "$CL" wg show "$IF" public-key)" = "$new_public" ] ||
	fail "the device's interface does not use the new key"
[ "$(device_field public_key)" = "$new_public" ] || fail "the gateway's record has another key"
[ "$(device_field rotated)" = 1 ] || fail "the device's record does not count the rotation"
[ "$(stat -c %a "$conf")" = 600 ] || fail "the config is not 0600"
if grep -rqF -- "$old_private" "$WORK/cl"; then
	fail "the old private key is still in a file of the device: $(grep -rlF -- "$old_private" "$WORK/cl")"
fi
grep "rotated the device's key" "$WORK/cl/run/$IF.agent.log" || fail "the agent did not say it rotated"
ns_exec "$CL" ping -c1 -W1 10.0.0.1 >/dev/null || fail "no tunnel after the rotation"

echo "-- a second rotation: the same way"
ctl key rotate --device "$id" >/dev/null || fail "a second key rotate --device"
second() { [ "$(private_key)" != "$new_private" ] && ! grep -q MeshgateNextKey "$conf"; }
wait_for 5 second || fail "the second rotation did not happen"
wait_for 2 only_current || fail "after the second rotation: $(gw_peers)"
[ "$(device_field rotated)" = 2 ] || fail "the second rotation is not counted"
ns_exec "$CL" ping -c1 -W1 10.0.0.1 >/dev/null || fail "no tunnel after the second rotation"

echo "-- meshgate rotate-key on the device: its agent rotates"
before=$(private_key)
out=$(ns_exec "$CL" "$MESHGATE" rotate-key --interface "$IF" "${CLIENT_DIRS[@]}") ||
	fail "meshgate rotate-key: $out"
echo "$out"
[ "$(private_key)" != "$before" ] || fail "rotate-key left the key as it was"
wait_for 2 only_current || fail "after rotate-key: $(gw_peers)"
ns_exec "$CL" ping -c1 -W1 10.0.0.1 >/dev/null || fail "no tunnel after rotate-key"

echo "-- bad input changes nothing"
ctl key rotate --device 0123456789abcdef >/dev/null 2>&1 && fail "an unknown device was rotated"
out=$(ns_exec "$CL" curl -s --cacert "$STATE/ca.pem" -X POST -H 'Content-Type: application/json' \
	-d "{\"register_token\": \"wrong\", \"public_key\": \"$old_public\"}" \
	-w ' %{http_code}' "https://198.18.0.1:8443/api/v1/devices/$id/next-key")
[ "${out##* }" = 404 ] || fail "a wrong token was not answered 404: $out"
out=$(ns_exec "$CL" curl -s --cacert "$STATE/ca.pem" -X POST -H 'Content-Type: application/json' \
	-d '{"register_token": "x"}' -w ' %{http_code}' \
	"https://198.18.0.1:8443/api/v1/devices/$id/switch-key")
[ "${out##* }" = 400 ] || fail "a body without a key was not answered 400: $out"
[ "$(device_field public_key)" = "$(wg pubkey <<<"$(private_key)")" ] || fail "bad input changed the key"
echo "PASS: device key rotated through meshgate, 0 of $PINGS pings lost"
