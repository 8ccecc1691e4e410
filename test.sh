#!/bin/bash
# Builds meshgate and runs the whole test suite (unit, integration in
# network namespaces, format check). Run as root on Debian 12:
#   ./test.sh                 # build/ , the normal build
#   SANITIZE=1 ./test.sh      # build-asan/ , ASan + UBSan
set -euo pipefail
cd "$(dirname "$0")"
tools/install-deps.sh
if [ "${SANITIZE:-0}" = 1 ]; then
	dir=build-asan
	# optimised (-O2 -g): the sanitizers' checks are the same, and the
	# suite's daemons run at about the speed of the normal build's
	flags=(-DMESHGATE_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
	# leaks in child daemons make their tests fail too: report, don't hide
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
else
	dir=build
	flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
cd "$dir"
ctest --output-on-failure -j2 --timeout 600
