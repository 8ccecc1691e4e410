#!/bin/bash
# The demo proper (demo.sh builds first). usage: tools/demo/run.sh BUILD_DIR
#
#   laptop ns (198.18.0.2) --- gateway ns (198.18.0.1 | 10.20.0.1) --- service ns (10.20.0.10)
#                               meshgated: wireguard, preauth, api, firewall, dns
#
# keys rotated under traffic, then three gateways sharing their state through etcd, with a mesh and a
# site behind each (tools/demo/cluster.sh).
#
# Everything lives in namespaces and a temp dir, removed at the end.
build=$(realpath "$1")
root=$(dirname "$(realpath "$0")")/../..
source "$root/tests/lib/netns.sh"
source "$root/tests/e2e/gateway.sh"
netns_init

say() { printf '\n\033[1;34m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; }

say "a gateway, a laptop and an internal service, each in its own network namespace"
GATEWAY_EXTRA_PLUGINS=', "firewall", "dns"'
GATEWAY_EXTRA_CONF='firewall = { roles = { developer = ["vpn", "10.20.0.0/24"];
                               admin = ["vpn", "10.20.0.0/24", "10.30.0.0/24"]; };
                    vpn_only_ports = ["8080/tcp"]; };
dns = { listen = ["10.0.0.1:53"]; zone = "corp.internal";
        records = ( { name = "gitlab"; address = "10.20.0.10"; } ); };'
gateway_up
# the gateway's own services: an SSH-like port and a VPN-only web port
ip netns exec "$GW" ncat -lk 0.0.0.0 22 --sh-exec 'echo ssh' &
bg_track $!
ip netns exec "$GW" ncat -lk 0.0.0.0 8080 --sh-exec 'echo intranet' &
bg_track $!
show "meshgatectl status"
ctl status

say "the admin creates a user: a single-use pre-auth code"
show "meshgatectl user add alice --role developer"
out=$(ctl user add alice --role developer)
echo "$out"
code=$(sed -n 's/^code //p' <<<"$out")

say "the laptop cannot reach the internal service yet"
show "ping -c1 -W1 10.20.0.10   (on the laptop)"
ns_exec "$CL" ping -c1 -W1 10.20.0.10 >/dev/null 2>&1 && echo "reachable?!" || echo "no route: unreachable, as it should be"

say "the employee runs one command on the laptop"
show "meshgate up --server https://198.18.0.1:8443 --ca ca.pem $code"
client_up "$CL" "${TAG}c" "$code"
show "meshgate status"
ns_exec "$CL" "$MESHGATE" status --interface "${TAG}c" "${CLIENT_DIRS[@]}"

say "traffic through the tunnel to the internal service"
show "ping -c2 10.20.0.10"
ns_exec "$CL" ping -c2 -W2 10.20.0.10
show "echo hello | ncat 10.20.0.10 7000"
echo hello | ns_exec "$CL" ncat --no-shutdown -w 3 10.20.0.10 7000

say "the policy: deny by default, open per role"
tcp() { echo | ns_exec "$CL" ncat --no-shutdown -w 2 "$1" "$2" 2>/dev/null; }
show "ncat 10.0.0.1 22      (the gateway's SSH, through the tunnel)"
tcp 10.0.0.1 22 || echo "denied: the gateway protects its own ports"
show "ncat 10.0.0.1 8080    (a VPN-only port, through the tunnel)"
tcp 10.0.0.1 8080 || echo "denied?!"
show "ncat 198.18.0.1 8080  (the same port from the public side)"
tcp 198.18.0.1 8080 || echo "denied: VPN-only ports are closed on the public interface"
show "meshgatectl route list; iptables -S MESHGATE-FROM-VPN; ipset list -t (on the gateway)"
ctl route list
ns_exec "$GW" iptables -S MESHGATE-FROM-VPN
ns_exec "$GW" ipset list -t | grep -E 'Name|entries'

say "internal names, answered by the gateway through the tunnel"
show "dig @10.0.0.1 gitlab.corp.internal +short"
ns_exec "$CL" dig @10.0.0.1 gitlab.corp.internal +short +time=2 +tries=1
device=$(ctl device list --json | json_field name)
show "dig @10.0.0.1 $device.corp.internal +short   (the laptop itself)"
ns_exec "$CL" dig @10.0.0.1 "$device.corp.internal" +short +time=2 +tries=1
show "dig @10.0.0.1 -x 10.0.0.2 +short"
ns_exec "$CL" dig @10.0.0.1 -x 10.0.0.2 +short +time=2 +tries=1
show "dig @10.0.0.1 nosuch.corp.internal   (status)"
ns_exec "$CL" dig @10.0.0.1 nosuch.corp.internal +time=2 +tries=1 | grep -o 'status: [A-Z]*'
show "meshgatectl dns add vault 10.20.0.11; dig @10.0.0.1 vault.corp.internal +short"
ctl dns add vault 10.20.0.11 >/dev/null
ns_exec "$CL" dig @10.0.0.1 vault.corp.internal +short +time=2 +tries=1

say "an upgrade: meshgated restarts, the tunnel does not drop"
show "ping -i 0.01 -c 300 10.20.0.10 (laptop)   while   systemctl restart meshgated (gateway)"
ip netns exec "$CL" ping -i 0.01 -c 300 -W 1 -q 10.20.0.10 >"$WORK/ping.out" 2>&1 &
pinger=$!
bg_track $pinger
sleep 0.5
gateway_stop
gateway_start
wait $pinger || true
grep -E 'packets transmitted' "$WORK/ping.out"

say "keys rotated while traffic flows: the gateway's, then the laptop's"
show "ping -i 0.01 -c 1200 10.20.0.10 (laptop)   while   meshgatectl key rotate --gateway; meshgatectl key rotate --device ID"
gw_key=$(wg show "$WG_IF" public-key)
laptop_key=$(ns_exec "$CL" wg show "${TAG}c" public-key)
ip netns exec "$CL" ping -i 0.01 -c 1200 -W 1 -q 10.20.0.10 >"$WORK/ping.out" 2>&1 &
pinger=$!
bg_track $pinger
sleep 0.5
ctl key rotate --gateway
sleep 6 # the switch is published 5 s ahead (wireguard.key_switch_lead), then made
ctl key rotate --device "$(ctl device list --json | json_field id)"
wait $pinger || true
grep -E 'packets transmitted' "$WORK/ping.out"
echo "gateway: $gw_key -> $(wg show "$WG_IF" public-key)"
echo "laptop:  $laptop_key -> $(ns_exec "$CL" wg show "${TAG}c" public-key)"
show "meshgatectl key status"
ctl key status

say "the gateway's view"
show "meshgatectl device list"
ctl device list
show "wg show $WG_IF"
wg show "$WG_IF"

say "the same code a second time"
show "meshgate up ... $code"
client_up "$CL" "${TAG}d" "$code" || echo "(exit $?: refused, nothing changed)"

ns_exec "$CL" "$MESHGATE" down --interface "${TAG}c" "${CLIENT_DIRS[@]}"

source "$root/tools/demo/cluster.sh"

say "done: removing every namespace, interface and process"
