#!/bin/bash
# The demo: builds meshgate, starts meshgated with its plugins in a temp
# dir and shows `meshgatectl status`. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")"
tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec tools/demo/run.sh "$PWD/build"
