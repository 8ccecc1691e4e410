#!/bin/bash
# The WireGuard mechanism of a device's hitless key rotation (docs/rotation.md),
# without meshgate: the device changes its private key first, then the
# gateway replaces the device's peer in one set (the old key removed, the new
# one with the device's /32, the old peer's endpoint and a keepalive, as the
# wireguard plugin does). A ping every 10 ms
# runs throughout: none may be lost. Fails too if wireguard-go stops keeping
# the receiving half of a session across a private key change.
# Usage: rotate_device_wg.sh (BUILD, the first argument of the e2e tests, unused)
. "$(dirname "$0")/../lib/netns.sh"
netns_init

ns_add GW gw
ns_add DEV dev
ns_link "$GW" 10.99.0.1/24 "$DEV" 10.99.0.2/24
GIF=${TAG}g
DIF=${TAG}d

umask 077
wg genkey >"$WORK/gw.key"
wg genkey >"$WORK/dev.key"
wg genkey >"$WORK/next.key"
gw_pub=$(wg pubkey <"$WORK/gw.key")
dev_pub=$(wg pubkey <"$WORK/dev.key")
next_pub=$(wg pubkey <"$WORK/next.key")

# wireguard-go detaches: its pid is found (and killed) through the namespace
ns_exec "$GW" wireguard-go "$GIF" >/dev/null 2>&1
ns_exec "$DEV" wireguard-go "$DIF" >/dev/null 2>&1
ns_exec "$GW" wg set "$GIF" listen-port 51820 private-key "$WORK/gw.key" \
	peer "$dev_pub" allowed-ips 10.100.0.2/32
ns_exec "$DEV" wg set "$DIF" private-key "$WORK/dev.key" \
	peer "$gw_pub" allowed-ips 10.100.0.0/24 endpoint 10.99.0.1:51820
ip -n "$GW" addr add 10.100.0.1/24 dev "$GIF"
ip -n "$GW" link set "$GIF" up
ip -n "$DEV" addr add 10.100.0.2/24 dev "$DIF"
ip -n "$DEV" link set "$DIF" up
wait_for 5 ns_exec "$DEV" ping -c1 -W1 10.100.0.1 || fail "no tunnel before the rotation"

PINGS=300
ns_exec "$DEV" ping -O -D -i 0.01 -c "$PINGS" -W 2 10.100.0.1 >"$WORK/ping" 2>&1 &
PING=$!
bg_track "$PING"
sleep 1

handshake_of() { # handshake_of NS IF KEY: its latest handshake, 0 for none
	ns_exec "$1" wg show "$2" latest-handshakes | awk -v k="$3" '$1 == k {print $2}'
}
has_handshake() { [ "$(handshake_of "$@")" -gt 0 ]; }

# 1. the device: its new key (its packets are staged from here on)
changed_at=$(date +%s.%N)
ns_exec "$DEV" wg set "$DIF" private-key "$WORK/next.key"
# the round trip of the agent's switch request, made long on purpose
sleep 0.2
# 2. the gateway, in one set (one wg invocation is one UAPI set): the old
# peer goes first, then the new key takes the /32 and the old peer's
# endpoint; the keepalive starts its handshake at once
endpoint=$(ns_exec "$GW" wg show "$GIF" endpoints | awk -v k="$dev_pub" '$1 == k {print $2}')
[ -n "$endpoint" ] && [ "$endpoint" != "(none)" ] || fail "the old peer has no endpoint"
ns_exec "$GW" wg set "$GIF" peer "$dev_pub" remove peer "$next_pub" allowed-ips 10.100.0.2/32 \
	endpoint "$endpoint" persistent-keepalive 25
wait_for 3 has_handshake "$GW" "$GIF" "$next_pub" || fail "no handshake with the new key"

wait "$PING" || true
received=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$WORK/ping")
lost=$((PINGS - ${received:-0}))
echo "rotation (key changed at $changed_at): $PINGS pings every 10 ms, $lost lost"
# which ones, and when (-D: unix time), against the rotation's moments
[ "$lost" -eq 0 ] || fail "$lost of $PINGS pings lost during the rotation: $(grep -m5 'no answer' "$WORK/ping") $(tail -2 "$WORK/ping")"

# afterwards: only the new key on both ends
peers=$(ns_exec "$GW" wg show "$GIF" peers)
[ "$peers" = "$next_pub" ] || fail "the gateway's peers are not only the new key: $peers"
[ "$(ns_exec "$DEV" wg show "$DIF" public-key)" = "$next_pub" ] ||
	fail "the device does not use the new key"
[ "$(ns_exec "$GW" wg show "$GIF" allowed-ips | awk '{print $2}')" = 10.100.0.2/32 ] ||
	fail "the new peer does not hold the device's address"
ns_exec "$DEV" ping -c1 -W1 10.100.0.1 >/dev/null || fail "no tunnel after the rotation"
echo "PASS: device key rotated, 0 of $PINGS lost"
