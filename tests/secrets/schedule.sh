#!/bin/bash
# The rotation schedule of both back ends of the secret service, in a real
# meshgated on the real clock (a schedule of seconds):
#
#   - local store (keystore.schedule = "5s"): a key's next version is made
#     5 s after the key, measured (the window allows for a loaded machine);
#     `key status` shows the next rotation before, and none once the next
#     version waits for its owner's switch; a key that fell due while
#     meshgated was down is rotated at once when it starts again;
#   - Vault (the stand-in: vault_standin.py, NOT Vault): the same on time;
#     a previous version dropped from Vault once its grace is over; a
#     rotation falling due while Vault does not answer waits, `key status`
#     says so, and it is made once Vault answers again.
#
# The keys are asked for with secret.get under a test owner: no plugin
# switches to a next version here (the mesh and wireguard plugins do, in
# their own tests), so each key is rotated once.
# usage: schedule.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/../vault/standin.sh"
netns_init

SCHEDULE_MS=5000
LATE_MS=1500 # how late a rotation may be on a machine shared with other builds
ns_add NS sched

# start_meshgated NAME PLUGIN CONF: meshgated in the namespace, its pid in MG_PID
start_meshgated() {
	local dir=$WORK/$1
	mkdir -p "$dir"
	cat >"$dir/meshgated.conf" <<CONF
state_dir = "$dir/state";
socket = "$dir/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["$2"];
$3
CONF
	SOCK=$dir/bus.sock
	LOG=$dir/meshgated.log
	ip netns exec "$NS" "$build/core/meshgated" --config "$dir/meshgated.conf" >>"$LOG" 2>&1 &
	MG_PID=$!
	bg_track "$MG_PID"
	wait_for 10 plugins_ready "$build" "$SOCK" || { cat "$LOG"; fail "meshgated did not start"; }
}

stop_meshgated() {
	kill -TERM "$MG_PID"
	wait "$MG_PID" 2>/dev/null || true
}

ctl() { "$build/cli/meshgatectl" --socket "$SOCK" "$@"; }

now_ms() { date +%s%3N; }

# key_field NAME PATH: a field of key NAME in `key status --json`
# (PATH: "version", "created_ms", "next.created_ms", "next_rotation_ms"); empty when absent
key_field() {
	ctl key status --json | python3 -c '
import json, sys
for k in json.load(sys.stdin)["keys"]:
    if k["name"] == sys.argv[1]:
        v = k
        for part in sys.argv[2].split("."):
            v = v.get(part) if isinstance(v, dict) else None
        print("" if v is None else str(v).lower())' "$1" "$2"
}

has_next() { [ -n "$(key_field "$1" next.created_ms)" ]; }

# make_key NAME: the key made now (secret.get), its creation time printed
make_key() {
	ctl call secret.get "{\"name\": \"$1\"}" >/dev/null || fail "secret.get $1"
	key_field "$1" created_ms
}

# on_time NAME CREATED_MS: the next version of NAME is made SCHEDULE_MS
# after CREATED_MS, LATE_MS late at most
on_time() {
	local name=$1 created=$2
	wait_for $(((SCHEDULE_MS + LATE_MS) / 1000 + 5)) has_next "$name" ||
		fail "$name: no rotation within $((SCHEDULE_MS + LATE_MS)) ms"
	local made
	made=$(key_field "$name" next.created_ms)
	local after=$((made - created))
	echo "   $name: next version made ${after} ms after the key (schedule ${SCHEDULE_MS} ms)"
	[ "$after" -ge "$SCHEDULE_MS" ] || fail "$name: rotated early (${after} ms)"
	[ "$after" -le $((SCHEDULE_MS + LATE_MS)) ] || fail "$name: rotated late (${after} ms)"
	[ -z "$(key_field "$name" next_rotation_ms)" ] ||
		fail "$name: a next rotation shown while the next version waits for its switch"
}

# due_as_scheduled NAME CREATED_MS: key status shows the rotation at created + schedule
due_as_scheduled() {
	local due
	due=$(key_field "$1" next_rotation_ms)
	[ "$due" = $(($2 + SCHEDULE_MS)) ] || fail "$1: next rotation '$due', not $(($2 + SCHEDULE_MS))"
}

echo "-- local store: a key rotated on time"
start_meshgated local keystore "keystore = { schedule = \"5s\"; seal_key_file = \"$WORK/seal.key\"; };"
created=$(make_key sched/k1)
status=$(ctl key status)
grep -q "sched/k1 .* in [0-9]s" <<<"$status" || fail "no next rotation shown: $status"
due_as_scheduled sched/k1 "$created"
on_time sched/k1 "$created"
[ "$(key_field sched/k1 version)" = 1 ] || fail "the version in use changed"
ctl key status

echo "-- local store: a rotation that fell due while meshgated was down fires at start"
created=$(make_key sched/k2)
stop_meshgated
sleep $(((SCHEDULE_MS + 1000) / 1000))
started=$(now_ms)
start_meshgated local keystore "keystore = { schedule = \"5s\"; seal_key_file = \"$WORK/seal.key\"; };"
wait_for 5 has_next sched/k2 || fail "the missed rotation did not fire at start"
made=$(key_field sched/k2 next.created_ms)
echo "   sched/k2: due $((started - created - SCHEDULE_MS)) ms before the start, made $((made - started)) ms after it"
[ $((made - started)) -le "$LATE_MS" ] || fail "the missed rotation came late"
stop_meshgated

echo "-- Vault (the stand-in): a key rotated on time"
VDIR=$WORK/vault
standin_certs "$VDIR"
standin_start "$VDIR" 8200 3600 "$NS" || fail "the stand-in did not start"
bg_track "$STANDIN_PID"
VAULT_CONF="secrets = \"vault\";
vault = { address = \"https://127.0.0.1:8200\"; ca = \"$VDIR/ca.pem\";
          role_id = \"$STANDIN_ROLE_ID\"; secret_id_file = \"$VDIR/secret_id\";
          schedule = \"5s\"; grace = \"6s\"; };"
start_meshgated vault vault "$VAULT_CONF"
created=$(make_key sched/v1)
due_as_scheduled sched/v1 "$created"
on_time sched/v1 "$created"

echo "-- Vault: a previous version goes from Vault once its grace (6 s) is over"
ctl call secret.promote '{"name": "sched/v1", "version": 2}' >/dev/null || fail "secret.promote"
[ -n "$(key_field sched/v1 previous.until_ms)" ] || fail "no previous version after the promote"
promoted=$(now_ms)
no_previous() { [ -z "$(key_field sched/v1 previous.until_ms)" ]; }
wait_for 15 no_previous || fail "the previous version stays past its grace: $(ctl key status --json)"
echo "   sched/v1: previous version gone $(($(now_ms) - promoted)) ms after the promote"
grep -q "sched/v1: the previous version is gone from Vault" "$LOG" || fail "no word of the prune"

echo "-- Vault does not answer when a rotation falls due: it waits, key status says so"
created=$(make_key sched/v2)
kill -STOP "$STANDIN_PID"
waiting() { ctl key status | grep -q "sched/v2 .*now, waiting for Vault"; }
wait_for $(((SCHEDULE_MS + 15000) / 1000)) waiting || { ctl key status; fail "no word of the wait"; }
ctl key status
has_next sched/v2 && fail "a next version without Vault"
kill -CONT "$STANDIN_PID"
wait_for 45 has_next sched/v2 || { ctl key status; fail "the rotation was not made once Vault answered"; }
[ -z "$(key_field sched/v2 rotating)" ] || fail "still shown as under way"
grep -q "sched/v2: rotation due" "$LOG" || fail "no word of the scheduled rotation in the log"
stop_meshgated
echo "schedule: ok"
