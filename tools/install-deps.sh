#!/bin/sh
# Installs the Debian packages of tools/packages.txt that are missing and
# the npm packages of tests/node.
# Needs root; touches nothing but the package database and tests/node.
set -e
cd "$(dirname "$0")"
packages=$(grep -v '^#' packages.txt | tr '\n' ' ')
missing=
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
# npm comes with some builds of nodejs, from Debian's own package otherwise
command -v npm >/dev/null || missing="$missing npm"
if [ -n "$missing" ]; then
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q $missing
fi
# The browser and OpenID tests' npm packages (tests/node), as the lock
# file pins them; again only when the lock changed.
cd ../tests/node
if ! cmp -s package-lock.json node_modules/.installed-lock.json; then
	npm ci --no-audit --no-fund
	cp package-lock.json node_modules/.installed-lock.json
fi
