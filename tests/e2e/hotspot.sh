# The hotspot of tests/e2e/pmtu.sh and bench/pmtu (source after netns.sh and
# gateway.sh; `build` set): hotspot_up makes
#
#   client ns 192.168.8.2 ── hotspot ns ══ uplink ══ gw ns 198.18.0.1
#                            (router)                (meshgated, 10.0.0.1 in the
#                                                     tunnel, HTTP on 10.0.0.1:8080)
#
# The hotspot drops every IP fragment before conntrack could reassemble it
# (nft, prerouting priority -450) and black-holes the ICMP "fragmentation
# needed" it would send (dropped in its OUTPUT): over the uplink's MTU
# (uplink_mtu N, both ends), a packet vanishes without a word.
# Sets GW HOT CL STATE WG_IF MESHGATE IF CLIENT_DIRS; helpers client,
# download, path_mtu, path_is, link_mtu, ms.

hotspot_up() {
	local mtu=$1
	ns_add GW gw
	ns_add HOT hot
	ns_add CL cl
	UP_GW=${TAG}ug UP_HOT=${TAG}uh
	ns_link "$GW" 198.18.0.1/24 "$HOT" 198.18.0.254/24 "$UP_GW" "$UP_HOT"
	ns_link "$CL" 192.168.8.2/24 "$HOT" 192.168.8.1/24
	ns_exec "$CL" ip route add default via 192.168.8.1
	ns_exec "$GW" ip route add 192.168.8.0/24 via 198.18.0.254
	ns_exec "$HOT" sysctl -qw net.ipv4.ip_forward=1
	uplink_mtu "$mtu"
	ns_exec "$HOT" nft -f - <<-'NFT'
	table ip hotspot {
		chain fragments {
			type filter hook prerouting priority -450; policy accept;
			ip frag-off & 0x3fff != 0 drop
		}
		chain no_too_big {
			type filter hook output priority 0; policy accept;
			icmp type destination-unreachable icmp code frag-needed drop
		}
	}
	NFT

	gateway_configure
	IF=${TAG}c
	mkdir -p "$WORK/www"
	gateway_start
	head -c 1048576 /dev/urandom >"$WORK/www/1m"
	# the HTTP server on the gateway address, inside the tunnel
	ip netns exec "$GW" python3 -m http.server 8080 --bind 10.0.0.1 --directory "$WORK/www" \
		>"$WORK/http.log" 2>&1 &
	bg_track $!
}

# uplink_mtu N: the uplink's MTU, both ends
uplink_mtu() { ip -n "$HOT" link set "$UP_HOT" mtu "$1" && ip -n "$GW" link set "$UP_GW" mtu "$1"; }
client() { # client COMMAND [args]
	local cmd=$1
	shift
	ns_exec "$CL" "$MESHGATE" "$cmd" --interface "$IF" "${CLIENT_DIRS[@]}" "$@"
}
download() { # download SECONDS: 1 MB through the tunnel within that
	ns_exec "$CL" curl -sS -o /dev/null --max-time "$1" http://10.0.0.1:8080/1m
}
path_mtu() { # path_mtu FIELD: from status --json's path_mtu ("" when none)
	client status --json | python3 -c '
import json, sys
p = json.load(sys.stdin).get("path_mtu") or {}
print(p.get(sys.argv[1], ""))' "$1"
}
path_is() { [ "$(path_mtu path)" = "$1" ]; }
link_mtu() { ip -n "$CL" -o link show "$IF" | sed -n 's/.* mtu \([0-9]*\) .*/\1/p'; }
ms() { date +%s%3N; }
