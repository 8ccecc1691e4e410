#!/bin/sh
# Two network namespaces joined by a veth pair; wg_itest does the rest
# (wireguard-go in each, addresses, routes, pings). Everything made here is
# removed on exit, whatever the outcome. Exit 77 (skip) without root or
# wireguard-go.
#   wg_integration.sh PATH/TO/wg_itest
set -eu
driver=$1

if [ "$(id -u)" != 0 ]; then
	echo "SKIP: needs root"
	exit 77
fi
if ! command -v wireguard-go >/dev/null 2>&1; then
	echo "SKIP: wireguard-go not installed"
	exit 77
fi

# names unique to this run: other tests may run side by side
ns_a=mgwgA$$
ns_b=mgwgB$$
veth_a=mgvA$$
veth_b=mgvB$$

cleanup() {
	# deleting a namespace deletes the veth end and the tun inside it; the
	# daemons are the driver's children and stop with it
	ip netns del "$ns_a" 2>/dev/null || true
	ip netns del "$ns_b" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add "$veth_a" netns "$ns_a" type veth peer name "$veth_b" netns "$ns_b"

"$driver" "$ns_a" "$ns_b" "$veth_a" "$veth_b"
