#!/bin/bash
# Installs the SDK into a prefix, builds sdk/examples/hello out of tree and
# runs its unit test against the installed mock core, once with make and
# pkg-config only and once with CMake and find_package(meshgate-sdk) only,
# loads the plugin into the real meshgated and calls its service.
set -euo pipefail
build=$1 src=$2 meshgated=$3 ctl=$4
work=$(mktemp -d /tmp/mgsdk.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/$(gcc -print-multiarch)/pkgconfig"
pkg-config --exists meshgate-sdk meshgate-mock

# make and pkg-config only: the plugin, then its unit test against the
# installed mock core
cp -r "$src/sdk/examples/hello" "$work/hello"
rm -f "$work/hello/CMakeLists.txt"
make -s -C "$work/hello"
make -s -C "$work/hello" check | tee "$work/make-check.log"
grep -q '^hello: ok$' "$work/make-check.log"

# CMake and find_package(meshgate-sdk) only, from an untouched copy
cp -r "$src/sdk/examples/hello" "$work/hello-cmake"
rm -f "$work/hello-cmake/Makefile"
cmake -S "$work/hello-cmake" -B "$work/hello-cmake/build" \
	-DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/hello-cmake/build" >/dev/null
test -f "$work/hello-cmake/build/meshgate-hello.so"
ctest --test-dir "$work/hello-cmake/build" --output-on-failure | tee "$work/ctest.log"
grep -q '100% tests passed, 0 tests failed out of 1' "$work/ctest.log"

mkdir -p "$work/plugins"
cp "$work/hello/meshgate-hello.so" "$work/plugins/"
cat >"$work/m.conf" <<CONF
state_dir = "$work/state";
socket = "$work/bus.sock";
plugin_dir = "$work/plugins";
plugins = ["hello"];
hello = { greeting = "Welcome"; };
CONF
"$meshgated" --config "$work/m.conf" 2>"$work/log" &
pid=$!
for _ in $(seq 50); do
	"$ctl" --socket "$work/bus.sock" --timeout 200 status >/dev/null 2>&1 && break
	sleep 0.1
done
reply=$("$ctl" --socket "$work/bus.sock" call hello.say '{"name": "out-of-tree"}')
echo "$reply"
grep -q '"Welcome, out-of-tree!"' <<<"$reply"
"$ctl" --socket "$work/bus.sock" status --json | grep -q '"state": "running"'
echo "sdk_out_of_tree: ok"
