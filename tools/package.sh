#!/bin/bash
# Builds the Debian packages meshgate-gateway, meshgate-client and
# meshgate-sdk into build/packages/ (CPack's DEB generator; docs/packaging.md).
#   tools/package.sh && tests/package/install_test.sh   # and check them
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
# installed under /usr: meshgated looks for its plugins where the package puts them
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build build -j"$(nproc)"
rm -rf build/packages
(cd build && cpack -G DEB >/dev/null)
ls -l build/packages/*.deb
