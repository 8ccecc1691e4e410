#!/bin/bash
# The Debian packages, installed as an operator would: lintian on each, then
# a fresh Debian 12 root (debootstrap from the mirror), apt installs the
# three .deb files with their dependencies, and the test checks the files
# and their modes, the conffile, the units (systemd-analyze verify), the
# installed config (--check-config), meshgated started from the installed
# paths answering `meshgatectl status`, the SDK's example plugin built
# against the installed meshgate-sdk, and purge: nothing left, or the
# state only when the operator asked to keep it.
#
#   tests/package/install_test.sh [PACKAGE_DIR]   (default build/packages)
#   MIRROR=http://deb.debian.org/debian  BASE_TARBALL=FILE (a cached base)
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$PWD
packages=$(realpath "${1:-build/packages}")
. tests/lib/netns.sh
netns_init

# the mirror this machine's apt uses (deb822 or one-line sources), else Debian's
mirror=${MIRROR:-$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
	awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}')}
mirror=${mirror:-$(awk '/^deb / && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
root=$WORK/root
daemon_pid=

ls "$packages"/meshgate-gateway_*.deb "$packages"/meshgate-client_*.deb \
	"$packages"/meshgate-sdk_*.deb >/dev/null || fail "no packages in $packages: run tools/package.sh"

echo "== lintian"
for deb in "$packages"/*.deb; do
	rc=0
	lintian --tag-display-limit 0 --fail-on error "$deb" >"$WORK/lintian.log" 2>&1 || rc=$?
	grep -v 'root privileges' "$WORK/lintian.log" || true
	[ "$rc" = 0 ] || fail "lintian: errors in $(basename "$deb")"
	echo "  $(basename "$deb"): no errors"
done

echo "== a fresh Debian 12 root"
if [ -n "${BASE_TARBALL:-}" ] && [ -f "$BASE_TARBALL" ]; then
	debootstrap --variant=minbase --unpack-tarball="$BASE_TARBALL" bookworm "$root" "$mirror" \
		>"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap"; }
else
	debootstrap --variant=minbase bookworm "$root" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
		{ tail -20 "$WORK/debootstrap.log"; fail "debootstrap from $mirror"; }
fi
# everything below runs in a private mount namespace: its mounts (proc,
# dev, run) vanish with it, the host's stay untouched
in_root() {
	unshare --mount --propagation private -- bash -c '
		root=$1; shift
		mount -t proc proc "$root/proc"
		mount --rbind /dev "$root/dev"
		mount -t tmpfs tmpfs "$root/run"
		mount -t tmpfs tmpfs "$root/tmp"
		exec chroot "$root" "$@"' in_root "$root" "$@"
}
mkdir -p "$root/var/tmp/debs"
cp "$packages"/*.deb "$root/var/tmp/debs/"
# the paths as the root sees them
deb() { echo "/var/tmp/debs/$(basename "$packages"/meshgate-"$1"_*.deb)"; }
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	"$(deb gateway)" "$(deb client)" "$(deb sdk)" gcc make libc6-dev systemd procps \
	>"$WORK/apt.log" 2>&1 ||
	{ tail -30 "$WORK/apt.log"; fail "apt could not install the packages"; }

echo "== files in place"
mode() { stat -c '%a %U' "$root/$1" 2>/dev/null || echo "missing"; }
expect_mode() {
	local got
	got=$(mode "$1")
	[ "$got" = "$2" ] || fail "$1: $got, expected $2"
	echo "  $1 $got"
}
multiarch=$(gcc -print-multiarch)
expect_mode usr/sbin/meshgated "755 root"
expect_mode usr/sbin/meshgatectl "755 root"
expect_mode usr/bin/meshgate "755 root"
for p in api dns firewall keystore mesh preauth vault wireguard failover multiwan; do
	expect_mode "usr/lib/$multiarch/meshgate/plugins/meshgate-$p.so" "644 root"
done
expect_mode etc/meshgate/meshgated.conf "644 root"
expect_mode var/lib/meshgate-seal.key "600 root"
expect_mode lib/systemd/system/meshgated.service "644 root"
expect_mode lib/systemd/system/meshgate@.service "644 root"
expect_mode usr/share/man/man5/meshgated.conf.5.gz "644 root"
for page in meshgated meshgatectl meshgate; do
	expect_mode "usr/share/man/man8/$page.8.gz" "644 root"
done
expect_mode usr/include/meshgate/plugin.h "644 root"
# the web panel (api.panel_dir's default) and its QR library, a dependency
for f in index.html app.js style.css; do
	expect_mode "usr/share/meshgate/panel/$f" "644 root"
done
[ -s "$root/usr/share/javascript/qrcode-generator/qrcode.js" ] ||
	fail "no qrcode.js (node-qrcode-generator) for the panel"
echo "  usr/share/javascript/qrcode-generator/qrcode.js (node-qrcode-generator)"
[ "$(stat -c %s "$root/var/lib/meshgate-seal.key")" = 32 ] || fail "the sealing key is not 32 bytes"
in_root dpkg-query -W -f='${Conffiles}\n' meshgate-gateway | grep -q '/etc/meshgate/meshgated.conf' ||
	fail "meshgated.conf is not a conffile"
echo "  conffile: /etc/meshgate/meshgated.conf"
# nothing enabled or started by the installation
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/meshgated.service" ] ||
	fail "the package enabled meshgated.service"

echo "== units"
for unit in meshgated.service meshgate@.service; do
	systemd-analyze verify --man=no --root="$root" "$root/lib/systemd/system/$unit" \
		>"$WORK/verify.log" 2>&1 || { cat "$WORK/verify.log"; fail "systemd-analyze verify $unit"; }
	[ -s "$WORK/verify.log" ] && { cat "$WORK/verify.log"; fail "systemd-analyze verify $unit warns"; }
	score=$(systemd-analyze security --offline=true --root="$root" "$root/lib/systemd/system/$unit" 2>&1 |
		awk '/Overall exposure level/ {print $(NF-2), $(NF-1)}')
	echo "  $unit verifies; systemd-analyze security: $score"
done

echo "== the installed config"
in_root meshgated --config /etc/meshgate/meshgated.conf --check-config

echo "== meshgated from the installed paths"
ns_add gw gw
ip netns exec "$gw" unshare --mount --propagation private -- bash -c '
	root=$1
	mount -t proc proc "$root/proc"
	mount --rbind /dev "$root/dev"
	mount -t tmpfs tmpfs "$root/run"
	mount -t tmpfs tmpfs "$root/tmp"
	chroot "$root" /usr/sbin/meshgated --config /etc/meshgate/meshgated.conf &
	pid=$!
	for _ in $(seq 100); do
		chroot "$root" meshgatectl --timeout 500 status >/dev/null 2>&1 && break
		sleep 0.2
	done
	chroot "$root" meshgatectl status
	chroot "$root" meshgatectl status --json >"$root/var/tmp/status.json"
	# the panel from its installed files, at / of the admin listener (by
	# default the VPN address, port 8444), its certificate verified
	ca=$(find "$root/var/lib/meshgate" -name ca.pem | head -1)
	curl -sS --max-time 10 --cacert "$ca" -D "$root/var/tmp/panel.head" \
		-o "$root/var/tmp/panel.html" https://10.0.0.1:8444/ || echo "the panel did not answer"
	kill -TERM "$pid"
	wait "$pid"' gw "$root" >"$WORK/daemon.log" 2>&1 || { cat "$WORK/daemon.log"; fail "meshgated from the installed paths"; }
grep -v ' \(info\|debug\) \[' "$WORK/daemon.log" | head -30
grep -q '"state": "running"' "$root/var/tmp/status.json" || fail "no plugin running"
if grep -q '"state": "\(failed\|refused\)"' "$root/var/tmp/status.json"; then
	cat "$root/var/tmp/status.json"
	fail "a plugin failed from the installed paths"
fi
echo "  meshgated ran every plugin from /usr/lib/$multiarch/meshgate/plugins and answered meshgatectl status"
grep -qi '^content-security-policy:' "$root/var/tmp/panel.head" && grep -q '<script src=' "$root/var/tmp/panel.html" ||
	fail "the installed meshgated does not serve the panel at / of https://10.0.0.1:8444"
echo "  the panel served from /usr/share/meshgate/panel at https://10.0.0.1:8444/ (CA verified, CSP set)"

echo "== the SDK's example against the installed meshgate-sdk"
cp -r "$src/sdk/examples/hello" "$root/var/tmp/hello"
rm -f "$root/var/tmp/hello/CMakeLists.txt"
in_root make -s -C /var/tmp/hello >"$WORK/sdk.log" 2>&1 || { cat "$WORK/sdk.log"; fail "the example does not build"; }
in_root make -s -C /var/tmp/hello check | tee -a "$WORK/sdk.log" | grep -q '^hello: ok$' ||
	{ cat "$WORK/sdk.log"; fail "the example's test failed"; }
echo "  hello built and tested against the installed SDK"

echo "== purge"
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q meshgate-gateway meshgate-client \
	meshgate-sdk >"$WORK/purge.log" 2>&1 || { tail -20 "$WORK/purge.log"; fail "purge"; }
for path in etc/meshgate var/lib/meshgate var/lib/meshgate-seal.key usr/sbin/meshgated \
	"usr/lib/$multiarch/meshgate" lib/systemd/system/meshgated.service usr/include/meshgate \
	usr/share/doc/meshgate-gateway; do
	[ ! -e "$root/$path" ] || fail "purge left $path"
done
echo "  nothing left"

echo "== purge keeps the state the operator chose to keep"
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$(deb gateway)" \
	>>"$WORK/apt.log" 2>&1 || fail "reinstall"
mkdir -p "$root/var/lib/meshgate"
echo state >"$root/var/lib/meshgate/data.mdb"
touch "$root/var/lib/meshgate/KEEP"
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q meshgate-gateway >>"$WORK/purge.log" 2>&1 ||
	fail "second purge"
[ -e "$root/var/lib/meshgate/data.mdb" ] && [ -e "$root/var/lib/meshgate-seal.key" ] ||
	fail "purge removed the state the operator kept"
[ ! -e "$root/etc/meshgate" ] && [ ! -e "$root/usr/sbin/meshgated" ] || fail "second purge left files"
echo "  /var/lib/meshgate and its sealing key kept (KEEP), the rest gone"
echo "package install test: ok"
