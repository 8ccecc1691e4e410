#!/bin/sh
# Regenerates docs/config.md from the settings every part declares.
# usage: tools/gen-config-doc.sh [BUILD_DIR]
set -e
build=${1:-build}
conf=$(mktemp)
trap 'rm -f "$conf"' EXIT
echo "plugin_dir = \"$(realpath "$build")/plugins\";" >"$conf"
"$build/core/meshgated" --config "$conf" --config-doc >docs/config.md
