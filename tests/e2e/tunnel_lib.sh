# The full tunnel's and the kill switch's tests (source after netns.sh and
# gateway.sh): a gateway whose public side faces an "internet" host, and a
# client that also reaches that host directly (its default route goes by
# the gateway's client-side address, outside any tunnel):
#
#   cl ns 198.18.0.2 ── gw ns (meshgated; wireguard, preauth, api, firewall)
#                        198.18.0.1 │ 203.0.113.1 (public_interface)
#                                   └── inet ns 203.0.113.10: TCP 7001 answers
#                                       with the address it sees
#
# Roles: developer = ["vpn"] and may use a full tunnel (internet_roles);
# guest = ["vpn"] is given one (full_tunnel_roles); admin = ["vpn"] has no
# internet through the gateway.

tunnel_gateway_up() {
	GW_PUBLIC_IF=${TAG}gp
	GATEWAY_EXTRA_PLUGINS=', "firewall"'
	GATEWAY_PREAUTH_CONF='roles = ["admin", "developer", "guest"];'
	GATEWAY_EXTRA_CONF="firewall = { public_interface = \"$GW_PUBLIC_IF\";
  roles = { developer = [\"vpn\"]; guest = [\"vpn\"]; admin = [\"vpn\"]; };
  internet_roles = [\"developer\"]; full_tunnel_roles = [\"guest\"]; };"
	gateway_up
	ns_add INET inet
	ns_link "$GW" 203.0.113.1/24 "$INET" 203.0.113.10/24 "$GW_PUBLIC_IF" "${TAG}gq"
	ns_exec "$INET" ip route add default via 203.0.113.1
	ns_exec "$CL" ip route add default via 198.18.0.1
	ns_exec "$INET" ncat -lk 203.0.113.10 7001 --sh-exec 'echo "seen:$NCAT_REMOTE_ADDR"' &
	bg_track $!
	wait_for 5 seen_from_internet || fail "the internet host does not answer"
	IF=${TAG}c
}

client() { # client COMMAND [args]
	local cmd=$1
	shift
	ns_exec "$CL" "$MESHGATE" "$cmd" --interface "$IF" "${CLIENT_DIRS[@]}" "$@"
}

# The source address the internet host sees of the client's connection.
seen_from_internet() {
	ns_exec "$CL" ncat --recv-only -w 2 203.0.113.10 7001 | sed -n 's/^seen://p' | grep .
}

status_field() { # status_field NAME: from meshgate status --json
	client status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# What the client namespace holds of ours: routing rules, nftables, iptables.
client_traces() {
	ns_exec "$CL" ip -4 rule show
	ns_exec "$CL" ip -4 route show table all | grep -v '^local\|^broadcast' || true
	ns_exec "$CL" nft list ruleset
	ns_exec "$CL" iptables-save | grep -v '^#' || true
}

new_code() { # new_code USER ROLE
	local code
	code=$(ctl user add "$1" --role "$2" --json | json_field code)
	[ -n "$code" ] || fail "no code for $1"
	echo "$code"
}

reaches_internet() { ns_exec "$CL" ping -c 1 -W 1 203.0.113.10 >/dev/null 2>&1; }
