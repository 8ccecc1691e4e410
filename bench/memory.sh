#!/bin/bash
# The memory of meshgated with every plugin (wireguard on wireguard-go,
# preauth, api, firewall, dns) holding 1,000, 10,000 and 50,000 devices,
# each onboarded through preauth's bus services as in the field (so each
# is a WireGuard peer, a member of the firewall's sets and a DNS name).
# At each size meshgated is restarted ROUNDS times on the same state and,
# once every plugin holds every device, measured: VmRSS split into
# RssAnon / RssFile / RssShmem (LMDB's map is counted: it is file-backed),
# the main mappings by kind (smaps: heap, malloc arenas, thread stacks,
# LMDB, libraries), and wireguard-go apart. Then the slope per 1,000
# devices, and one more start at 10,000 with glibc's arenas capped
# (GLIBC_TUNABLES, what mallopt(M_ARENA_MAX) in core/main.c would do).
# Prints figures and TABLE| rows for bench/run-all.sh; never fails on time.
# Root. usage: bench/memory.sh BUILD_DIR [ROUNDS (default 3)]
set -euo pipefail
build=$(realpath "${1:-build}")
rounds=${2:-3}
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
for n in 1000 10000 50000; do
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

# what capping glibc's arenas would save (a decision of core/main.c)
stop
start GLIBC_TUNABLES=glibc.malloc.arena_max=2
wait_for 300 holds 50000 || fail "arena_max=2: the plugins do not hold the devices"
sleep 1
read -r rss anon file shm wgr <<<"$(measure)"
echo "50000 devices, glibc.malloc.arena_max=2: meshgated VmRSS $rss KiB (anon $anon, file" \
	"$file, shmem $shm); by kind (KiB): $(by_kind "$MG_PID")"

slope() { echo $((($2 - $1) * 1000 / ($4 - $3))); } # KiB per 1k devices
s_low=$(slope "${med_rss[1000]}" "${med_rss[10000]}" 1000 10000)
s_high=$(slope "${med_rss[10000]}" "${med_rss[50000]}" 10000 50000)
w_high=$(slope "${med_wg[10000]}" "${med_wg[50000]}" 10000 50000)
echo
echo "meshgated VmRSS: 1k ${med_rss[1000]} KiB, 10k ${med_rss[10000]} KiB, 50k ${med_rss[50000]} KiB"
echo "slope per 1,000 devices: $s_low KiB (1k-10k), $s_high KiB (10k-50k);" \
	"wireguard-go $w_high KiB (10k-50k)"
mib=$(awk -v k="${med_rss[10000]}" 'BEGIN {printf "%.1f", k / 1024}')
ratio=$(awk -v k="${med_rss[10000]}" 'BEGIN {printf "%.2f", k / 1024 / 32}')
echo "TABLE|meshgated RSS at 10k devices, all plugins|$mib MiB|goal (not measured): 32 MiB|$ratio|${spread_rss[10000]}%|$rounds"
ratio=$(awk -v a="$s_high" -v b="$w_high" 'BEGIN {printf "%.2f", b ? a / b : 0}')
echo "TABLE|meshgated RSS per 1k devices (10k-50k)|$s_high KiB|wireguard-go per 1k peers, same run: $w_high KiB|$ratio|${spread_rss[50000]}%|$rounds"
