#!/bin/sh
# Installs the Debian packages of tools/packages.txt that are missing.
# Needs root; touches nothing but the package database.
set -e
cd "$(dirname "$0")"
packages=$(grep -v '^#' packages.txt | tr '\n' ' ')
missing=
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q $missing
