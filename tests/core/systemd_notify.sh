#!/bin/bash
# Runs systemd_notify.py in a private mount namespace whose /run is a
# tmpfs of its own: the journal socket it binds is never the host's.
# usage: systemd_notify.sh MESHGATED PROBE_PLUGIN
set -euo pipefail
work=$(mktemp -d /tmp/mgsdnotify.XXXXXX)
trap 'rm -rf "$work"' EXIT
unshare --mount --propagation private -- bash -c \
	'mount -t tmpfs tmpfs /run && exec python3 "$0" "$@"' \
	"$(dirname "$0")/systemd_notify.py" "$1" "$2" "$work"
