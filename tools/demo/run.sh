#!/bin/bash
# The demo proper (demo.sh builds first). usage: tools/demo/run.sh BUILD_DIR
set -euo pipefail
build=$1
work=$(mktemp -d /tmp/meshgate-demo.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cat >"$work/meshgated.conf" <<CONF
state_dir = "$work/state";
socket = "$work/meshgate.sock";
plugin_dir = "$build/plugins";
plugins = ["hello"];
hello = { greeting = "Welcome"; };
CONF
say "meshgated --check-config"
"$build/core/meshgated" --config "$work/meshgated.conf" --check-config
say "starting meshgated"
"$build/core/meshgated" --config "$work/meshgated.conf" &
pid=$!
ctl() { "$build/cli/meshgatectl" --socket "$work/meshgate.sock" "$@"; }
for _ in $(seq 50); do ctl --timeout 200 status >/dev/null 2>&1 && break; sleep 0.1; done
say "meshgatectl status"
ctl status
say "a request over the bus: meshgatectl call hello.say"
ctl call hello.say '{"name": "operator"}'
say "done; stopping"
