#!/bin/bash
# Path MTU: the time from a path change (the hotspot's uplink drops from
# 1500 to 1300, fragments dropped, ICMP "too big" black-holed: see
# tests/e2e/hotspot.sh) to a working tunnel again (a 1 MB download through
# it completes), and the MTU the agent found; N rounds (default 10). The
# baseline, in the same run: a device at WireGuard's fixed MTU of 1420
# (meshgate up --mtu 1420), which never recovers; it gets T seconds
# (default 20) a round, for 3 rounds. The agent recovers at the base MTU
# (1280 less WireGuard's 60, down to 16: 1216) as soon as it sees the size in
# use go unanswered, then searches up to the path's (1232). Figures only,
# never pass/fail.
# usage: bench/pmtu/run.sh BUILD_DIR [ROUNDS] [T]
set -euo pipefail
build=$(realpath "${1:-build}")
rounds=${2:-10}
limit=${3:-20}
here=$(dirname "$(realpath "$0")")
tests=$here/../../tests
source "$tests/lib/netns.sh"
source "$tests/e2e/gateway.sh"
source "$tests/e2e/hotspot.sh"
source "$here/../rounds.sh"
netns_init
export MESHGATE_PMTU_RAISE_MS=2000 # back to 1500 quickly between rounds

hotspot_up 1500
code=$(ctl user add bench --role developer --json | json_field code)
client up --server https://198.18.0.1:8443 --ca "$STATE/ca.pem" --backend userspace \
	"$code" >"$WORK/up.log" 2>&1 || fail "meshgate up: $(cat "$WORK/up.log")"

# recover: ms from now until a 1 MB download completes, or "" past $1 s
recover() {
	local t0 end
	t0=$(ms)
	end=$((t0 + $1 * 1000))
	while [ "$(ms)" -lt "$end" ]; do
		if download 2 2>/dev/null; then
			echo $(($(ms) - t0))
			return
		fi
	done
}

ours=() found=()
for r in $(seq "$rounds"); do
	uplink_mtu 1500
	wait_for 30 path_is 1500 || fail "round $r: the agent did not come back to 1500"
	download 10 || fail "round $r: no download at 1500"
	uplink_mtu 1300
	t=$(recover 60)
	[ -n "$t" ] || fail "round $r: no recovery within 60 s"
	ours+=("$t")
	echo "round $r: a working tunnel $t ms after the drop, at MTU $(link_mtu)"
	# the search goes on from the base: what it settles on
	wait_for 30 path_is 1300 || fail "round $r: the agent did not find 1300: $(path_mtu path)"
	found+=("$(link_mtu)")
	echo "round $r: then MTU $(link_mtu) (path 1300)"
done

client down --forget >/dev/null
uplink_mtu 1500
code=$(ctl user add baseline --role developer --json | json_field code)
client up --server https://198.18.0.1:8443 --ca "$STATE/ca.pem" --backend userspace \
	--mtu 1420 "$code" >"$WORK/up2.log" 2>&1 || fail "meshgate up --mtu 1420: $(cat "$WORK/up2.log")"
bare=()
for r in $(seq 3); do
	uplink_mtu 1500
	download 10 || fail "baseline round $r: no download at 1500"
	uplink_mtu 1300
	t=$(recover "$limit")
	echo "baseline round $r: ${t:+recovered after $t ms}${t:-no recovery within $limit s}"
	bare+=("${t:-$((limit * 1000))}")
done
client down --forget >/dev/null

figure "recovery after an MTU drop to 1300" ms "${ours[@]}"
figure "MTU found" bytes "${found[@]}"
figure "fixed 1420: recovery (capped at the limit)" ms "${bare[@]}"
median=$(printf '%s\n' "${ours[@]}" | sort -g | awk '{v[NR]=$1} END {print NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}')
spread=$(printf '%s\n' "${ours[@]}" | sort -g | awk -v m="$median" '{v[NR]=$1} END {printf "%.0f", m ? 100*(v[NR]-v[1])/m : 0}')
recovered=$(printf '%s\n' "${bare[@]}" | awk -v c=$((limit * 1000)) '$1 < c' | wc -l)
echo "TABLE|recovery after a path MTU drop (1500 to 1300, 1 MB download), MTU $(printf '%s\n' "${found[@]}" | sort -u | tr '\n' ' ')|$median ms|fixed MTU 1420: $([ "$recovered" = 0 ] && echo "no recovery within $limit s" || echo "$recovered of 3 recovered")|n/a|$spread%|$rounds"
