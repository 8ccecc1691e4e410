#!/bin/bash
# The memory of meshgated with every plugin (wireguard on wireguard-go,
# preauth, api, firewall, dns) holding 1,000, 10,000 and 50,000 devices
# (or the sizes given), each onboarded through preauth's bus services as
# in the field (so each is a WireGuard peer, a member of the firewall's
# sets and a DNS name). At each size meshgated is restarted ROUNDS times
# on the same state and, once every plugin holds every device, measured:
# VmRSS split into RssAnon / RssFile / RssShmem (LMDB's map is counted: it
# is file-backed), the main mappings by kind (smaps: heap, malloc arenas,
# thread stacks, LMDB, libraries), and wireguard-go apart. Then the slope
# per 1,000 devices between the sizes.
# Prints figures and TABLE| rows for bench/run-all.sh; never fails on time.
# Root. usage: bench/memory.sh BUILD_DIR [DEVICES...]   (ROUNDS=3 in the
# environment; e.g. `bench/memory.sh build 10000` measures 10k only,
# without the slow preload of 50k)
set -euo pipefail
build=$(realpath "${1:-build}")
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000 50000)
rounds=${ROUNDS:-3}
for n in "${sizes[@]}"; do
	[[ "$n" =~ ^[1-9][0-9]*$ ]] || {
		echo "memory.sh: a size is a number of devices, not '$n'"
		exit 2
	}
done
sizes=($(printf '%s\n' "${sizes[@]}" | sort -n -u))
here=$(dirname "$(realpath "$0")")
for tool in wireguard-go wg iptables ipset; do
	command -v "$tool" >/dev/null || {
		echo "memory.sh: $tool not installed"
		exit 1
	}
done
source "$here/../tests/lib/netns.sh"
netns_init
ns_add GW mem
WG_IF=${TAG}m
cat >"$WORK/m.conf" <<CONF
state_dir = "$WORK/state";
socket = "$WORK/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["wireguard", "preauth", "api", "firewall", "dns"];
log_level = "warn";
wireguard = { interface = "$WG_IF"; backend = "userspace"; address = "10.64.0.1/16";
              endpoint = "127.0.0.1:51820"; };
api = { listen = "127.0.0.1:8443"; names = ["127.0.0.1"]; };
CONF
ctl() { "$build/cli/meshgatectl" --socket "$WORK/bus.sock" "$@"; }
running() {
	[ "$(ctl status 2>/dev/null | grep -cE '^(wireguard|preauth|api|firewall|dns) +[^ ]+ +running')" = 5 ]
}
# every plugin holds n devices: n peers on the interface, n names
holds() {
	local n=$1
	[ "$(wg show "$WG_IF" peers 2>/dev/null | wc -l)" = "$n" ] &&
		ctl dns stats --json 2>/dev/null | tr -d ' \n' | grep -q "\"devices\":$n,"
}

MG_PID=
start() { # [env assignments...]
	ip netns exec "$GW" env "$@" "$build/core/meshgated" --config "$WORK/m.conf" \
		>>"$WORK/meshgated.log" 2>&1 &
	MG_PID=$!
	bg_track "$MG_PID"
	wait_for 60 running || {
		tail -20 "$WORK/meshgated.log"
		fail "meshgated did not start"
	}
}
stop() {
	kill "$MG_PID"
	wait "$MG_PID" 2>/dev/null || true
}
wg_pid() {
	local p
	for p in $(ip netns pids "$GW"); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = wireguard-go ] && echo "$p" && return
	done
}
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

# The resident memory of meshgated's mappings by kind, in KiB.
by_kind() {
	awk '
	/^[0-9a-f]+-[0-9a-f]+ / { path = $6 }
	/^Size:/ {
		if (path ~ /data\.mdb/) kind = "lmdb"
		else if (path ~ /\.so/) kind = "libraries"
		else if (path == "[heap]") kind = "main-heap"
		else if (path == "[stack]") kind = "main-stack"
		else if (path == "") kind = ($2 == 8192 ? "thread-stacks" : "arenas+mmaps")
		else kind = "other"
	}
	/^Rss:/ { rss[kind] += $2 }
	END { for (k in rss) printf "%s=%d ", k, rss[k]; print "" }' "/proc/$1/smaps"
}

# One measurement of the running gateway: "VmRSS RssAnon RssFile RssShmem wgRSS"
measure() {
	local wp
	wp=$(wg_pid)
	echo "$(kib "$MG_PID" VmRSS) $(kib "$MG_PID" RssAnon) $(kib "$MG_PID" RssFile)" \
		"$(kib "$MG_PID" RssShmem) $(kib "$wp" VmRSS)"
}

start
loaded=0
declare -A med_rss med_wg spread_rss
for n in "${sizes[@]}"; do
	"$build/bench/preload/bench_preload" "$WORK/bus.sock" $((n - loaded)) "u$n-" 16
	loaded=$n
	wait_for 300 holds "$n" || fail "the plugins do not hold $n devices"
	sleep 1
	read -r rss anon file shm wgr <<<"$(measure)"
	echo "$n devices, as grown: meshgated VmRSS $rss KiB (anon $anon, file $file, shmem $shm)," \
		"wireguard-go $wgr KiB"
	vals=()
	wgs=()
	for r in $(seq "$rounds"); do
		stop
		start
		wait_for 300 holds "$n" || fail "after a restart the plugins do not hold $n devices"
		sleep 1
		read -r rss anon file shm wgr <<<"$(measure)"
		echo "$n devices, start $r: meshgated VmRSS $rss KiB (anon $anon, file $file," \
			"shmem $shm), wireguard-go $wgr KiB; by kind (KiB): $(by_kind "$MG_PID")"
		vals+=("$rss")
		wgs+=("$wgr")
	done
	sorted=($(printf '%s\n' "${vals[@]}" | sort -n))
	med_rss[$n]=${sorted[$((${#sorted[@]} / 2))]}
	spread_rss[$n]=$(((sorted[-1] - sorted[0]) * 100 / med_rss[$n]))
	sorted=($(printf '%s\n' "${wgs[@]}" | sort -n))
	med_wg[$n]=${sorted[$((${#sorted[@]} / 2))]}
	echo "$n devices: meshgated VmRSS median $((med_rss[$n] / 1024)) MiB (${med_rss[$n]} KiB," \
		"spread ${spread_rss[$n]}% over $rounds starts), wireguard-go ${med_wg[$n]} KiB"
done

slope() { echo $((($2 - $1) * 1000 / ($4 - $3))); } # KiB per 1k devices
echo
line="meshgated VmRSS:"
for n in "${sizes[@]}"; do line+=" $((n / 1000))k ${med_rss[$n]} KiB,"; done
echo "${line%,}"
if [ -n "${med_rss[10000]:-}" ]; then
	mib=$(awk -v k="${med_rss[10000]}" 'BEGIN {printf "%.1f", k / 1024}')
	ratio=$(awk -v k="${med_rss[10000]}" 'BEGIN {printf "%.2f", k / 1024 / 32}')
	echo "TABLE|meshgated RSS at 10k devices, all plugins|$mib MiB|goal (not measured): 32 MiB|$ratio|${spread_rss[10000]}%|$rounds"
fi
# the slope between each two sizes measured; the row for the last two
for ((i = 1; i < ${#sizes[@]}; i++)); do
	lo=${sizes[$((i - 1))]} hi=${sizes[$i]}
	s_mg=$(slope "${med_rss[$lo]}" "${med_rss[$hi]}" "$lo" "$hi")
	s_wg=$(slope "${med_wg[$lo]}" "${med_wg[$hi]}" "$lo" "$hi")
	echo "slope per 1,000 devices, $lo-$hi: meshgated $s_mg KiB, wireguard-go $s_wg KiB"
done
if [ ${#sizes[@]} -gt 1 ]; then
	ratio=$(awk -v a="$s_mg" -v b="$s_wg" 'BEGIN {printf "%.2f", b ? a / b : 0}')
	echo "TABLE|meshgated RSS per 1k devices ($((lo / 1000))k-$((hi / 1000))k)|$s_mg KiB|wireguard-go per 1k peers, same run: $s_wg KiB|$ratio|${spread_rss[$hi]}%|$rounds"
fi
