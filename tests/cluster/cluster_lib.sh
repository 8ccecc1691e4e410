# Three gateways sharing their state through etcd, in namespaces (source
# after netns.sh and etcd.sh, with `build` set):
#
#   cl1 198.18.0.11 ─┐
#   cl2 198.18.0.12 ─┤
#   gw1 198.18.0.1  ─┼─ inet (a bridge: the shared "internet" segment)
#   gw2 198.18.0.2  ─┤
#   gw3 198.18.0.3  ─┘
#
# Each gateway namespace runs an etcd member (client port 2379, peer 2380
# on its own address: every namespace has its own ports) and meshgated
# with cluster = { node = "gwN"; etcd = [all three] }, the same VPN
# address 10.0.0.1/16 on its own WireGuard interface, its own API on
# 198.18.0.N:8443 and DNS on 10.0.0.1 / 198.18.0.N.
#
# With "mesh" among the plugins, gwN also gets the mesh (interface TAGmN,
# port 51821, endpoint 198.18.0.N:51821, subnet 10.99.0.0/24) routing its
# site 172.19.N.0/24 (site_up N draws the site's namespace; cluster_up
# draws all three before any gateway starts).
#
# With "failover" among the plugins, gwN gets a failover section made of
# `failover_conf N` (empty unless a test redefines it); public_if N names
# gwN's interface on the shared segment (for failover.public_interface).
#
# cluster_up [PLUGINS] [NODES]; ctln N ARGS...; gw_config N PLUGINS; gw_start N;
# gw_kill9 N; site_up N; api N PATH JSON; redeem_register N CODE NAME.
# CLUSTER_ROLES replaces the firewall's roles.

CLUSTER_PLUGINS='"wireguard", "preauth", "firewall", "dns", "api"'
CLUSTER_ROLES='developer = ["10.0.0.0/16", "10.20.0.0/24"];
                       admin = ["10.0.0.0/16", "10.20.0.0/24", "172.19.0.0/16"];'

# bridge_port NS ADDR/LEN: a veth from NS into the bridge in $INET
bridge_port() {
	local ns=$1 addr=$2 inside=v$RANDOM$RANDOM outside=b$RANDOM$RANDOM
	ip link add "$inside" netns "$ns" type veth peer name "$outside" netns "$INET"
	ip -n "$INET" link set "$outside" master br0 up
	ip -n "$ns" addr add "$addr" dev "$inside"
	ip -n "$ns" link set "$inside" up
}

# cluster_up [PLUGINS] [NODES]: the namespaces and etcd members of all three;
# the gateways of NODES ("1 2 3" by default) configured and started (the
# others later with gw_config and gw_start)
cluster_up() {
	local plugins=${1:-$CLUSTER_PLUGINS} nodes=${2:-1 2 3} i initial=""
	ns_add INET inet
	ip -n "$INET" link add br0 type bridge
	ip -n "$INET" link set br0 up
	for i in 1 2 3; do
		ns_add "GW$i" "gw$i"
		eval "bridge_port \"\$GW$i\" 198.18.0.$i/24"
		eval "ns_exec \"\$GW$i\" sysctl -qw net.ipv4.ip_forward=1"
		initial+="${initial:+,}m$i=http://198.18.0.$i:2380"
	done
	ns_add CL1 cl1
	ns_add CL2 cl2
	bridge_port "$CL1" 198.18.0.11/24
	bridge_port "$CL2" 198.18.0.12/24
	for i in 1 2 3; do
		eval "etcd_member_start m$i \"$WORK/etcd-m$i\" http://198.18.0.$i:2379 \
			http://198.18.0.$i:2380 \"$initial\" \"\$GW$i\""
	done
	for i in 1 2 3; do etcd_wait_healthy "m$i" 20; done
	case $plugins in *'"mesh"'*) for i in 1 2 3; do site_up "$i"; done ;; esac
	for i in $nodes; do
		gw_config "$i" "$plugins"
		gw_start "$i"
	done
}

gw_config() {
	local i=$1 plugins=$2 dir=$WORK/gw$1
	mkdir -p "$dir"
	cat >"$dir/meshgated.conf" <<CONF
state_dir = "$dir/state";
socket = "$dir/bus.sock";
plugin_dir = "$build/plugins";
plugins = [$plugins];
cluster = { node = "gw$i";
            etcd = [ "http://198.18.0.$i:2379", "http://198.18.0.$((i % 3 + 1)):2379",
                     "http://198.18.0.$(((i + 1) % 3 + 1)):2379" ];
            timeout_ms = 1500; $([ "$i" = 2 ] && echo "max_txn_ops = 16;") };
wireguard = { interface = "${TAG}w$i"; backend = "userspace"; address = "10.0.0.1/16";
              endpoint = "198.18.0.$i:51820"; };
preauth = { networks = ["10.20.0.0/24"]; };
firewall = { roles = { $CLUSTER_ROLES }; };
dns = { listen = ["10.0.0.1:53", "198.18.0.$i:53"]; zone = "corp.internal"; upstream = []; };
api = { listen = "198.18.0.$i:8443"; names = ["198.18.0.$i"]; per_ip_limit = 512; threads = 8;
      head_timeout_ms = 20000; };
${CLUSTER_EXTRA_CONF:-}
CONF
	case $plugins in *'"mesh"'*)
		cat >>"$dir/meshgated.conf" <<CONF
mesh = { interface = "${TAG}m$i"; backend = "userspace"; listen_port = 51821;
         endpoint = "198.18.0.$i:51821"; subnet = "10.99.0.0/24"; subnets = [ "172.19.$i.0/24" ]; };
CONF
		;;
	esac
	case $plugins in *'"failover"'*)
		echo "failover = { $(failover_conf "$i") };" >>"$dir/meshgated.conf"
		;;
	esac
}

failover_conf() { :; }

public_if() {
	local ns
	eval "ns=\$GW$1"
	ip -n "$ns" -o -4 addr show to "198.18.0.$1/32" | awk '{ print $2 }'
}

# site_up N: a namespace siteN behind gwN, 172.19.N.10/24 (gwN is
# 172.19.N.1, its default route), with a TCP service on port 7000 that
# answers a line with "siteN from SOURCE: LINE" (SOURCE: the address it
# saw the connection come from); gwN gets an uplink default route (via
# 198.18.0.254, nobody), as a real gateway has one
site_up() {
	local i=$1 gw site
	eval "gw=\$GW$i"
	ns_add "SITE$i" "site$i"
	eval "site=\$SITE$i"
	ns_link "$gw" "172.19.$i.1/24" "$site" "172.19.$i.10/24"
	ns_exec "$site" ip route add default via "172.19.$i.1"
	# which covers the other sites until the mesh routes them
	ns_exec "$gw" ip route add default via 198.18.0.254
	ip netns exec "$site" ncat -lk "172.19.$i.10" 7000 \
		--sh-exec "read l; echo \"site$i from \$NCAT_REMOTE_ADDR: \$l\"" &
	bg_track $!
}

ctln() {
	local i=$1
	shift
	"$build/cli/meshgatectl" --socket "$WORK/gw$i/bus.sock" "$@"
}

gw_running() { plugins_ready "$build" "$WORK/gw$1/bus.sock"; }

gw_start() {
	local i=$1 ns
	eval "ns=\$GW$i"
	ip netns exec "$ns" "$build/core/meshgated" --config "$WORK/gw$i/meshgated.conf" \
		>>"$WORK/gw$i/meshgated.log" 2>&1 &
	eval "GW${i}_PID=$!"
	bg_track $!
	wait_for 20 gw_running "$i" || { tail -40 "$WORK/gw$i/meshgated.log"; fail "gw$i did not start"; }
}

gw_kill9() {
	local pid
	eval "pid=\$GW${1}_PID"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# json_field NAME: the first "NAME": "value" of the JSON on stdin
json_field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -1; }

# api N PATH JSON [CLIENT_NS]: a POST to gwN's API from cl2 (cl1 takes the tests
# of refusals, which its rate limit ends up blocking; verified TLS: gwN's CA);
# prints the body, then the status on a line of its own
api() {
	local i=$1 path=$2 body=$3 ns=${4:-$CL2}
	ip netns exec "$ns" curl -sS --max-time 10 --cacert "$WORK/gw$i/state/ca.pem" \
		-H 'Content-Type: application/json' -d "$body" -w '\n%{http_code}\n' \
		"https://198.18.0.$i:8443$path"
}

# redeem_register N CODE NAME: through gwN's API; a device made on this
# side (its key: wg genkey); sets DEV_ID DEV_IP DEV_KEY DEV_PUB
redeem_register() {
	local i=$1 code=$2 name=$3 out status
	out=$(api "$i" /api/v1/redeem "{\"code\": \"$code\", \"name\": \"$name\"}")
	status=$(tail -1 <<<"$out")
	[ "$status" = 200 ] || fail "redeem through gw$i: $out"
	DEV_ID=$(json_field device_id <<<"$out")
	DEV_IP=$(json_field address <<<"$out")
	DEV_KEY=$(wg genkey)
	DEV_PUB=$(wg pubkey <<<"$DEV_KEY")
	out=$(api "$i" /api/v1/register "{\"device_id\": \"$DEV_ID\", \"register_token\": \"$(json_field register_token <<<"$out")\", \"public_key\": \"$DEV_PUB\", \"address\": \"$DEV_IP\"}")
	[ "$(tail -1 <<<"$out")" = 200 ] || fail "register through gw$i: $out"
}

# peer_on N PUBKEY: the key is a peer of gwN's WireGuard interface
peer_on() {
	local ns
	eval "ns=\$GW$1"
	ns_exec "$ns" wg show "${TAG}w$1" peers | grep -xF "$2" >/dev/null
}

# name_on N NAME ADDRESS: gwN's DNS answers NAME with ADDRESS (asked on its VPN
# address from inside: the firewall keeps DNS off the public side)
name_on() {
	local ns
	eval "ns=\$GW$1"
	local got
	got=$(ns_exec "$ns" dig +short +time=1 +tries=1 @10.0.0.1 "$2" A)
	echo "dig @gw$1 $2: $got" >>"$WORK/dig.log"
	[ "$got" = "$3" ]
}
