#!/bin/bash
# The cluster's benchmarks, one after the other (each sets up and cleans
# up its own namespaces, so they never share the machine's two CPUs):
# run.sh (onboardings through three nodes, a change reaching every node),
# then mesh_join.sh (a node joining a mesh of 50). bench/run-all.sh runs
# this; both print TABLE| rows. Figures, never a test.
# usage: bench.sh BUILD_DIR
set -uo pipefail
here=$(dirname "$(realpath "$0")")
rc=0
"$here/run.sh" "$1" || rc=$?
"$here/mesh_join.sh" "$1" || rc=$?
exit $rc
