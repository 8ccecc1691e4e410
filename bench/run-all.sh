#!/bin/bash
# Runs every benchmark in bench/ and prints one table: each figure, the
# baseline measured in the same run (the plain way a competent operator
# would use), the ratio ours/baseline (median of the per-round ratios) and
# the noise (the larger spread over rounds of the two, as a share of the
# median). Each benchmark's own output goes to build/bench-logs/NAME.log.
# Figures, never a test: nothing here fails on time. Root (namespaces).
#
#   bench/run-all.sh [BUILD_DIR]        (default build/)
set -uo pipefail
here=$(dirname "$(realpath "$0")")
build=$(realpath "${1:-$here/../build}")
logs="$build/bench-logs"
mkdir -p "$logs"
cmake --build "$build" -j"$(nproc)" >/dev/null || exit 1

# name and command of each benchmark; each prints its TABLE| rows
benches=(
	"state|$build/bench/core/bench_state"
	"bus|$build/bench/core/bench_bus"
	"wg|$build/bench/wg/bench_wg"
	"firewall|$build/bench/firewall/bench_fw"
	"forwarding|$here/firewall/bench_throughput.sh $build"
	"dns|$build/bench/dns/bench_dns"
	"onboarding|$here/onboarding/run.sh $build"
	"cluster|$here/cluster/bench.sh $build"
	"failover|$here/failover/run.sh $build"
	"multiwan|$here/multiwan/run.sh $build"
	"pmtu|$here/pmtu/run.sh $build"
	"rotation|$here/rotation/run.sh $build"
	"memory|$here/memory.sh $build"
	"startup|$here/startup.sh $build"
	"admin|$here/admin/run.sh $build"
	"panel|$here/panel/run.sh $build"
)

rows=()
for entry in "${benches[@]}"; do
	name=${entry%%|*}
	cmd=${entry#*|}
	script=${cmd%% *}
	if [ ! -x "$script" ]; then
		echo "$name: $script is missing, skipped" >&2
		continue
	fi
	echo "running $name ..." >&2
	start=$(date +%s)
	$cmd >"$logs/$name.log" 2>&1
	rc=$?
	echo "  $name: $(($(date +%s) - start)) s, exit $rc, log $logs/$name.log" >&2
	while IFS= read -r line; do
		rows+=("$name|${line#TABLE|}")
	done < <(grep '^TABLE|' "$logs/$name.log")
done

echo
echo "| bench | figure | ours (median) | baseline, same run (median) | ratio | spread | rounds |"
echo "|---|---|---|---|---|---|---|"
for row in "${rows[@]}"; do
	echo "| ${row//|/ | } |"
done
