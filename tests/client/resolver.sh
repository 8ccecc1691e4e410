#!/bin/bash
# The client's resolver step (client/resolver.c) against stand-in resolvectl
# and resolvconf, in a mount namespace of the test's own: what they are
# called with, the fallback from one to the other, and that inside a network
# namespace neither is called. The host's resolver is never reachable from
# here: the stand-ins are laid over the directories the client searches.
#   resolver.sh RESOLVER_STEP
set -euo pipefail
STEP=$1
SKIP=77

if [ -z "${MG_RESOLVER_INSIDE:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (mount namespace)"; exit $SKIP; }
	command -v unshare >/dev/null || { echo "SKIP: no unshare (util-linux)"; exit $SKIP; }
	# own pid namespace too: pid 1 is then this script, in this network
	# namespace, so the client's "host namespace?" check says yes here
	# whatever namespace the suite runs in
	exec env MG_RESOLVER_INSIDE=1 unshare --mount --propagation private --pid --fork \
		--mount-proc "$0" "$@"
fi

fail() { echo "FAIL: $*"; exit 1; }
WORK=$(mktemp -d /tmp/mg-resolver.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/bin" "$WORK/run/systemd/resolve"
touch "$WORK/run/systemd/resolve/resolv.conf"

# Each stand-in logs its arguments (and resolvconf its stdin) and exits with
# the code in $WORK/NAME.rc.
for name in resolvectl resolvconf; do
	cat >"$WORK/bin/$name" <<-SCRIPT
	#!/bin/sh
	echo "$name \$*" >>"$WORK/calls"
	[ "$name" = resolvconf ] && sed 's/^/  | /' >>"$WORK/calls"
	exit \$(cat "$WORK/$name.rc" 2>/dev/null || echo 0)
	SCRIPT
	chmod 755 "$WORK/bin/$name"
done

# Read-only overlays: the stand-ins above each directory the client searches
# (client/resolver.c: /usr/bin, /bin, /usr/sbin, /sbin), seen only here.
declare -A laid=()
for dir in /usr/bin /bin /usr/sbin /sbin; do
	real=$(realpath "$dir")
	[ -n "${laid[$real]:-}" ] && continue
	mount -t overlay overlay -o "lowerdir=$WORK/bin:$real" "$real" ||
		{ echo "SKIP: no overlay mount"; exit $SKIP; }
	laid[$real]=1
done
for dir in /usr/bin /bin /usr/sbin /sbin; do
	cmp -s "$dir/resolvectl" "$WORK/bin/resolvectl" || fail "$dir/resolvectl is not the stand-in"
done
# systemd-resolved is "running" when /run/systemd/resolve/resolv.conf is
# there: laid over /run/systemd, or /run if there is none
if [ -d /run/systemd ]; then
	resolved_on() { mount -t overlay overlay -o "lowerdir=$WORK/run/systemd:/run/systemd" /run/systemd; }
	resolved_off() { umount /run/systemd; }
else
	resolved_on() { mount -t overlay overlay -o "lowerdir=$WORK/run:/run" /run; }
	resolved_off() { umount /run; }
fi

# step ARGS...: runs the step with fresh logs; its output in $WORK/out
step() {
	rm -f "$WORK/calls"
	touch "$WORK/calls"
	"$STEP" "$@" >"$WORK/out" 2>&1 || fail "resolver_step $* exited with $?: $(cat "$WORK/out")"
}
expect_calls() {
	diff -u <(printf '%s' "$1") "$WORK/calls" || fail "$2: not the calls expected"
	echo "  ok: $2"
}

echo "-- systemd-resolved: per-link servers and the zone as a routing domain"
resolved_on
step apply mgt0 10.8.0.1 fd00::1 corp.example
expect_calls "resolvectl dns mgt0 10.8.0.1 fd00::1
resolvectl domain mgt0 ~corp.example
" "resolvectl for the link, resolvconf untouched"
grep -q "resolved by 10.8.0.1 (systemd-resolved, mgt0)" "$WORK/out" || fail "no line: $(cat "$WORK/out")"

echo "-- resolvectl refuses: resolvconf instead"
echo 1 >"$WORK/resolvectl.rc"
step apply mgt0 10.8.0.1 corp.example
expect_calls "resolvectl dns mgt0 10.8.0.1
resolvconf -a mgt0.meshgate
  | nameserver 10.8.0.1
  | search corp.example
" "fallback to resolvconf"
grep -q "resolvectl exited with 1" "$WORK/out" || fail "the refusal is not reported: $(cat "$WORK/out")"
rm "$WORK/resolvectl.rc"
resolved_off

echo "-- no systemd-resolved: resolvconf only"
step apply mgt0 10.8.0.1
expect_calls "resolvconf -a mgt0.meshgate
  | nameserver 10.8.0.1
" "resolvconf, no search line without a zone"
step remove mgt0
expect_calls "resolvconf -d mgt0.meshgate -f
" "remove"

echo "-- no name server in the profile: nothing to do"
step apply mgt0 corp.example
expect_calls "" "no call without a server"

echo "-- inside a network namespace: neither is called"
resolved_on
rm -f "$WORK/calls"
touch "$WORK/calls"
unshare --net "$STEP" apply mgt0 10.8.0.1 corp.example >"$WORK/out" 2>&1 || fail "step in a netns failed"
unshare --net "$STEP" remove mgt0 >>"$WORK/out" 2>&1 || fail "remove in a netns failed"
expect_calls "" "no resolver call from a network namespace"
grep -q "inside a network namespace" "$WORK/out" || fail "no explanation: $(cat "$WORK/out")"
echo "PASS"
