#!/bin/bash
# Split and full tunnel, end to end, with real WireGuard (wireguard-go), the
# firewall and real packets (topology in tunnel_lib.sh):
#
# - a developer's device, split (the default): its internet traffic goes
#   straight out, not through the gateway (the internet host sees the
#   device's own address), and no policy rule is made;
# - the same device with `meshgate up --full-tunnel`: wg-quick's routing
#   (fwmark on the interface, `not fwmark` rule, `suppress_prefixlength 0`),
#   the internet host sees the gateway's public address (masqueraded), the
#   gateway's endpoint still reached outside the tunnel; the choice is kept
#   in the saved config, across `meshgate sync`; `meshgate down`: no trace;
# - a guest's device (full_tunnel_roles): a full tunnel without the flag;
# - an admin's device asking --full-tunnel: its role has no internet at the
#   gateway (deny by default), so the internet is out of its reach.
# usage: full_tunnel.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/gateway.sh"
source "$here/tunnel_lib.sh"
netns_init
tunnel_gateway_up

before=$(client_traces)

echo "-- split tunnel (the default): the internet straight out"
out=$(client_up "$CL" "$IF" "$(new_code dana developer)") || fail "up failed: $out"
[ "$(seen_from_internet)" = 198.18.0.2 ] || fail "split: the internet saw $(seen_from_internet)"
[ "$(status_field full_tunnel)" = False ] || fail "split: status says full_tunnel $(status_field full_tunnel)"
grep -q fwmark <<<"$(ns_exec "$CL" ip -4 rule show)" && fail "split: a fwmark rule exists"
echo "split: the internet sees 198.18.0.2, no policy rule: ok"

echo "-- the same device, up again with --full-tunnel"
client down >/dev/null
CLIENT_UP_OPTS=(--full-tunnel)
out=$(client up --backend userspace --full-tunnel) || fail "up --full-tunnel failed: $out"
mark=$(ns_exec "$CL" wg show "$IF" fwmark)
[ -n "$mark" ] && [ "$mark" != off ] || fail "no fwmark on $IF"
rules=$(ns_exec "$CL" ip -4 rule show)
grep -q "not from all fwmark $mark lookup $((mark))" <<<"$rules" || fail "no 'not fwmark' rule: $rules"
grep -q "lookup main suppress_prefixlength 0" <<<"$rules" || fail "no suppress_prefixlength rule: $rules"
grep -q "default dev $IF" <<<"$(ns_exec "$CL" ip -4 route show table "$((mark))")" ||
	fail "no default route in table $((mark))"
[ "$(seen_from_internet)" = 203.0.113.1 ] ||
	fail "full tunnel: the internet saw $(seen_from_internet), not the gateway's 203.0.113.1"
[ "$(status_field full_tunnel)" = True ] || fail "status does not say full_tunnel"
grep -q '^# MeshgateFullTunnel = yes$' "$WORK/cl/etc/$IF.conf" || fail "the choice is not saved"
# the tunnel's own packets still leave by the main table: the handshake is fresh
ns_exec "$CL" wg show "$IF" latest-handshakes | awk '{exit !($2 > 0)}' || fail "no handshake"
client sync >/dev/null || fail "sync failed"
grep -q '^# MeshgateFullTunnel = yes$' "$WORK/cl/etc/$IF.conf" || fail "sync lost the choice"
grep -q '0.0.0.0/0' <<<"$(ns_exec "$CL" wg show "$IF" allowed-ips)" || fail "sync took 0.0.0.0/0 away"
[ "$(seen_from_internet)" = 203.0.113.1 ] || fail "after sync: the internet saw $(seen_from_internet)"
echo "full tunnel: fwmark $mark, rules, the internet sees the gateway's address, kept by sync: ok"

client down --forget >/dev/null
[ "$(client_traces)" = "$before" ] || fail "down left traces: $(diff <(echo "$before") <(client_traces))"
echo "down: no rule, route or table left: ok"

echo "-- a guest: the gateway gives the role a full tunnel"
unset CLIENT_UP_OPTS
out=$(client_up "$CL" "$IF" "$(new_code gus guest)") || fail "up failed: $out"
grep -q '^AllowedIPs = .*0.0.0.0/0' "$WORK/cl/etc/$IF.conf" || fail "the guest's networks lack 0.0.0.0/0"
[ "$(status_field full_tunnel)" = True ] || fail "guest: status does not say full_tunnel"
[ "$(seen_from_internet)" = 203.0.113.1 ] || fail "guest: the internet saw $(seen_from_internet)"
client down --forget >/dev/null
[ "$(client_traces)" = "$before" ] || fail "down left traces"
echo "guest: full tunnel without the flag, masqueraded: ok"

echo "-- an admin asks for a full tunnel: the gateway keeps it to its networks"
CLIENT_UP_OPTS=(--full-tunnel)
out=$(client_up "$CL" "$IF" "$(new_code ada admin)") || fail "up failed: $out"
[ "$(status_field full_tunnel)" = True ] || fail "admin: no full tunnel"
seen=$(seen_from_internet || true)
[ -z "$seen" ] || fail "admin: the internet was reached through the gateway ($seen)"
ns_exec "$CL" ping -c 1 -W 2 10.0.0.1 >/dev/null || fail "admin: the gateway itself is unreachable"
client down --forget >/dev/null
[ "$(client_traces)" = "$before" ] || fail "down left traces"
echo "admin: no internet through the gateway (deny by default), the VPN works: ok"
echo "PASS"
