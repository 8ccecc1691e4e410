#!/bin/bash
# Instructions per operation, ours against the bare way, from callgrind:
# stable on a busy machine where wall clock is not. Usage, from the build
# directory: ../bench/core/callgrind.sh [build dir]
#   state: instructions per put (1 put/txn and 100 puts/txn runs together),
#          the state layer (bench_state.c:ours) against bare LMDB
#          (bench_state.c:bare_lmdb); both include the bench's key snprintf.
#   bus:   instructions per round trip in the client, broker and plugin
#          threads (hello.say, which also publishes an event), against the
#          REQ/REP echo's two threads; ZeroMQ's own I/O thread (ipc) is left
#          out of both.
set -euo pipefail
build=$(realpath "${1:-.}")
out=$(mktemp -d /tmp/mgcallgrind.XXXXXX)
trap 'rm -rf "$out"' EXIT

inclusive() { # file function-regex: the summed inclusive cost
	callgrind_annotate --inclusive=yes "$1" 2>/dev/null |
		awk -v re="$2" '$0 ~ re && $1 ~ /^[0-9,]+$/ {gsub(",", "", $1); s += $1} END {print s + 0}'
}

single=200 batches=50
valgrind --tool=callgrind --callgrind-out-file="$out/state" \
	"$build/bench/core/bench_state" $single $batches 1 >/dev/null 2>&1
puts=$((single + batches * 100))
ours=$(inclusive "$out/state" 'bench_state.c:ours \[')
bare=$(inclusive "$out/state" 'bench_state.c:bare_lmdb \[')
awk -v o="$ours" -v b="$bare" -v n=$puts 'BEGIN {
	printf "state: %.0f instructions per put, bare LMDB %.0f, ratio (bare/ours) %.2f\n",
	       o / n, b / n, b / o }'

n=2000
valgrind --tool=callgrind --callgrind-out-file="$out/bus" \
	"$build/bench/core/bench_bus" $n "$build/plugins" 1 >/dev/null 2>&1
trips=$((2 * (n + 4 * (n / 4)))) # inproc and ipc; 1 client, then 4
bare_trips=$((2 * n))
ours=$(inclusive "$out/bus" '(bench_bus.c:client_loop|broker.c:broker_thread|actor.c:actor_main) \[')
bare=$(inclusive "$out/bus" '(bench_bus.c:bare_zmq|bench_bus.c:echo_server) \[')
awk -v o="$ours" -v b="$bare" -v n=$trips -v m=$bare_trips 'BEGIN {
	printf "bus: %.0f instructions per round trip, bare ZeroMQ echo %.0f, ratio (bare/ours) %.2f\n",
	       o / n, b / m, (b / m) / (o / n) }'
