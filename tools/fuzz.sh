#!/bin/bash
# Builds every libFuzzer target (clang) and runs each for SECONDS seconds
# on its seed corpus. usage: tools/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
CC=clang cmake -S . -B build-fuzz -DMESHGATE_FUZZ=ON -DBUILD_TESTING=ON \
	-DCMAKE_BUILD_TYPE=Debug >/dev/null
# every target of the fuzz build named fuzz_*, but the corpus replayers
targets=$(cmake --build build-fuzz --target help | sed -n 's/^\.\.\. \(fuzz_[a-z0-9_]*\)$/\1/p' |
	grep -v '_replay$' | sort -u)
# shellcheck disable=SC2086
cmake --build build-fuzz -j"$(nproc)" --target $targets
for t in $targets; do
	bin=$(find build-fuzz -type f -name "$t" -perm -u+x | head -1)
	src=$(grep -rl "add_executable($t" tests | head -1)
	corpus=$(dirname "$src")/corpus
	work=$(mktemp -d)
	[ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
	echo "-- $t for ${seconds}s"
	"$bin" -max_total_time="$seconds" -max_len=65536 "$work" 2>&1 | tail -2
	rm -rf "$work"
done
