#!/bin/bash
# kill -9 of meshgated at random moments during a stream of onboardings,
# restarted each time. Then: every acknowledged device exists with its
# address, no address is given twice, no code is consumed without a device,
# and the interface's peers equal the active devices.
# usage: crash_onboarding.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/gateway.sh"
netns_init
gateway_up

USERS=200
ROUNDS=8
mkdir -p "$WORK/codes"
for i in $(seq $USERS); do
	ctl user add "u$i" --role developer --json | json_field code >"$WORK/codes/u$i"
done

# Onboards users from $1 on until killed; appends what was acknowledged.
onboard_stream() {
	local i=$1 reply id token address key
	while [ "$i" -le $USERS ]; do
		reply=$(ctl --timeout 2000 call preauth.redeem "{\"code\": \"$(cat "$WORK/codes/u$i")\"}" 2>/dev/null) || return 0
		id=$(json_field device_id <<<"$reply")
		token=$(json_field register_token <<<"$reply")
		address=$(json_field address <<<"$reply")
		echo "u$i $id $address" >>"$WORK/acked"
		key=$(wg genkey | wg pubkey)
		ctl --timeout 2000 call preauth.register "{\"device_id\": \"$id\", \"register_token\": \"$token\", \"public_key\": \"$key\", \"address\": \"$address\"}" >/dev/null 2>&1 || return 0
		echo "u$i $id $key" >>"$WORK/registered"
		i=$((i + 1))
	done
}

touch "$WORK/acked" "$WORK/registered"
next=1
for round in $(seq $ROUNDS); do
	onboard_stream "$next" &
	stream=$!
	sleep "0.$((RANDOM % 8 + 2))"
	gateway_kill9
	wait "$stream" 2>/dev/null || true
	gateway_start
	# the next round starts after the last user the stream touched
	last=$(tail -1 "$WORK/acked" | awk '{print $1}' | tr -d u)
	next=$(( ${last:-0} + 1 ))
	echo "round $round: killed after $(wc -l <"$WORK/acked") acknowledged redeems"
done
onboard_stream "$next" # the rest, without a kill

devices=$(ctl device list --json)
echo "$(wc -l <"$WORK/acked") redeems acknowledged, $(grep -c '"id"' <<<"$devices") devices"

# every acknowledged device exists with its address
while read -r user id address; do
	grep -q "\"$id\"" <<<"$devices" || fail "acknowledged device $id of $user is missing"
	ctl device list --json --user "$user" | grep -q "\"$address\"" || fail "$id lost its address $address"
done <"$WORK/acked"

# no address twice
dups=$(grep -o '"address": "[^"]*"' <<<"$devices" | sort | uniq -d)
[ -z "$dups" ] || fail "addresses given twice: $dups"

# no code consumed without a device: a user without a device can still redeem
for i in $(seq $USERS); do
	if ! ctl device list --json --user "u$i" | grep -q '"id"'; then
		ctl call preauth.redeem "{\"code\": \"$(cat "$WORK/codes/u$i")\"}" >/dev/null ||
			fail "u$i has no device but its code is spent"
	fi
done

# the interface's peers equal the active devices (after the last restart's
# reconcile)
active=$(ctl device list | awk '$5 == "active" {print $6}' | sort)
peers=$(wg show "$WG_IF" peers | sort)
[ "$active" = "$peers" ] || fail "peers differ from active devices"
echo "crash_onboarding: all checks passed ($(wc -w <<<"$active") active devices = peers)"
