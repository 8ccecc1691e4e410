#!/bin/bash
# Runs test_cluster against one real etcd member on loopback (free ports,
# its data in the test's temp dir, killed by pid at the end).
# usage: cluster_test.sh TEST_BINARY
set -euo pipefail
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/../lib/etcd.sh"
netns_init
etcd_init
etcd_single_start solo
etcd_wait_healthy solo 20
ETCD_ENDPOINTS=$ETCD_ENDPOINTS "$1"
