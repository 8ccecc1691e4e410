#!/bin/bash
# The demo: builds meshgate, then runs tools/demo/run.sh: a gateway and a
# laptop onboarded with a code, then three gateways sharing their state
# through etcd, all in namespaces. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")"
tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec tools/demo/run.sh "$PWD/build"
