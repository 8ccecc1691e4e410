# The demo's second act (sourced by run.sh): three gateways, one network.
#
#   laptop (198.18.0.11) ── gw1, gw2, gw3 (198.18.0.1-3, one segment; a mesh between them, one active)
#                            │     │     │
#                          site1 site2 site3 (172.19.N.0/24, a service on 172.19.N.10:7000)
#
# Each gateway runs an etcd member and meshgated with every plugin, the
# mesh and failover (keepalived): the state is shared, every node serves
# every device, one node is active and the laptop's agent follows it.
source "$root/tests/lib/etcd.sh"
source "$root/tests/cluster/cluster_lib.sh"
source "$root/tests/failover/failover_lib.sh"
etcd_init

say "several gateways, one network: three nodes sharing their state through etcd"
CLUSTER_ROLES='developer = ["10.0.0.0/16", "172.19.1.0/24"]; admin = ["10.0.0.0/16", "172.19.0.0/16"];'
cluster_up "$CLUSTER_PLUGINS, \"mesh\", \"failover\""
two_peers() { [ "$(ns_exec "$GW1" wg show "${TAG}m1" peers | grep -c .)" = 2 ]; }
wait_for 20 two_peers || echo "(the mesh is still coming up)"
active_node() { master 1; }
one_active() { [ "$(active_node | wc -w)" = 1 ]; }
wait_for 20 one_active || echo "(keepalived is still electing)"
show "meshgatectl node list   (on gw1: every node made its own key and registered itself; ACTIVE: keepalived's master)"
ctln 1 node list
show "meshgatectl status   (on gw3)"
ctln 3 status | head -3

say "a user made on gw1; the laptop enrolls through gw2"
show "meshgatectl user add bob --role developer   (on gw1)"
code=$(ctln 1 user add bob --role developer --json | json_field code)
echo "code $code"
show "meshgate up --server https://198.18.0.2:8443 --ca gw2-ca.pem $code   (on the laptop)"
IF=${TAG}k
DIRS=(--config-dir "$WORK/bob/etc" --state-dir "$WORK/bob/run")
client up --server https://198.18.0.2:8443 --ca "$WORK/gw2/state/ca.pem" --backend userspace "$code"
bob_key=$(ns_exec "$CL1" wg show "$IF" public-key)
peer_everywhere() {
	local i ns
	for i in 1 2 3; do
		eval "ns=\$GW$i"
		ns_exec "$ns" wg show "${TAG}w$i" peers | grep -xF "$bob_key" >/dev/null || return 1
	done
}
wait_for 5 peer_everywhere && echo "the laptop's key is a WireGuard peer of gw1, gw2 and gw3"
wait_for 10 on_master 1 || true
show "meshgate status   (on the laptop: up left an agent that probes its node through the tunnel)"
client status
device=$(ctln 3 device list --json --user bob | json_field name)
show "dig @10.0.0.1 $device.corp.internal +short   (gw3's DNS, from gw3)"
ns_exec "$GW3" dig @10.0.0.1 "$device.corp.internal" +short +time=2 +tries=1

on=$(client status --json | json_field gateway)
far=3
[ "$on" != gw3 ] || far=2
say "site to site: through $on and the mesh, the laptop reaches what its role allows"
show "echo hi | ncat 172.19.1.10 7000   (the service behind gw1: developers may; the laptop is on $on)"
echo hi | ns_exec "$CL1" ncat --no-shutdown -w 3 172.19.1.10 7000 || echo "(no answer)"
[ "$on" = gw1 ] ||
	echo "(it saw $on's mesh address: $on source-NATs into the mesh, so the answer comes back through $on)"
show "echo hi | ncat 172.19.3.10 7000   (behind gw3: admins only)"
echo hi | ns_exec "$CL1" ncat --no-shutdown -w 2 172.19.3.10 7000 2>/dev/null ||
	echo "unreachable: not among the networks of the laptop's role, neither routed nor allowed"

say "the active node crashes: keepalived moves the VIP, the laptop's agent switches by itself"
dead=$(active_node)
n=${dead#gw}
ping_start "$CL1" "$WORK/ping.log"
show "kill -9 <$dead's meshgated>   (its keepalived dies with it; the laptop pings 10.0.0.1, the gateway address every node has, every 10 ms)"
gw_kill9 "$n"
sleep 3
ping_stop "$PING_PID"
stopped=$(ms)
show "meshgate status   (on the laptop)"
client status | sed -n '/agent:/,$p'
echo "the laptop's longest gap in its 10 ms pings: $(ping_gap "$WORK/ping.log" "$stopped") ms (a plain WireGuard client keeps sending to the dead node)"
show "meshgatectl node list   (on a live node)"
for i in 1 2 3; do [ "$i" = "$n" ] || { ctln "$i" node list; break; }; done
gw_start "$n"
echo "$dead restarted: it comes back as a backup (no preemption), the laptop stays where it is"

say "etcd loses its quorum: the tunnels go on, writes wait"
etcd_member_stop m2
etcd_member_stop m3
writable() { ctln 1 --json status | grep '"writable": *true' >/dev/null; }
# gw1's health check (every 300 ms) sees it; a write sent in between
# would time out with its outcome unknown (docs/cluster.md)
unwritable() { ! writable; }
wait_for 5 unwritable || true
show "ping -c3 172.19.1.10   (on the laptop)"
ns_exec "$CL1" ping -c3 -i0.3 -W1 172.19.1.10 | grep -E 'packets transmitted'
show "meshgatectl user add carol --role developer   (on gw1)"
ctln 1 user add carol --role developer || true
etcd_member_restart m2
etcd_member_restart m3
etcd_wait_healthy m2 20
etcd_wait_healthy m3 20
wait_for 10 writable
show "meshgatectl user add carol --role developer   (quorum back, no restart)"
ctln 1 user add carol --role developer
show "meshgate down   (on the laptop: the agent stops, the tunnel goes)"
client down || true
