#!/bin/bash
# lib/etcd against real etcd members on loopback (free ports, data in a
# temp dir, killed by pid on exit): one member for the API, then three
# for quorum: two killed, then restarted.
# usage: etcd_test.sh TEST_ETCD_BINARY
set -euo pipefail
here=$(dirname "$0")
# shellcheck source=../lib/netns.sh
source "$here/../lib/netns.sh"
# shellcheck source=../lib/etcd.sh
source "$here/../lib/etcd.sh"
test_etcd=$1
netns_init
etcd_init

etcd_single_start solo
etcd_wait_healthy solo
dead=$(etcd_free_ports 1)
ETCD_ENDPOINTS=$ETCD_ENDPOINTS ETCD_DEAD=http://127.0.0.1:$dead "$test_etcd" single
etcd_member_stop solo

etcd_cluster_start 3
for m in m1 m2 m3; do etcd_wait_healthy $m 20; done
ETCD_ENDPOINTS=$ETCD_ENDPOINTS "$test_etcd" cluster-up
etcd_member_kill m1
etcd_member_kill m2
ETCD_ENDPOINTS=$ETCD_ENDPOINTS ETCD_KILLED_AT=$(date +%s%3N) "$test_etcd" cluster-down
etcd_member_restart m1
etcd_member_restart m2
for m in m1 m2 m3; do etcd_wait_healthy $m 20; done
ETCD_ENDPOINTS=$ETCD_ENDPOINTS "$test_etcd" cluster-again
echo "etcd client: all passed"
