#!/bin/bash
# A gateway with secrets = "vault", against the Vault stand-in
# (vault_standin.py: NOT Vault, a test double with the shapes of Vault's
# API), on the gateway namespace's loopback:
#
#   - meshgated comes up with the vault plugin loaded for `secrets`
#     (not listed in `plugins`): the wireguard plugin's key is made on the
#     node and stored in the stand-in's KV v2, and the interface runs it;
#   - a client onboards (tests/e2e/gateway.sh's way) and pings through;
#   - the key is in no file, no log, and key files are 0600 only;
#   - Vault stopped (SIGSTOP): the loaded key is still served, the tunnel
#     runs, `key status` says UNREACHABLE, a rotation waits; meanwhile a
#     newer version landed in Vault: once Vault answers, the plugin's
#     check-and-set write is refused and it takes the newer version
#     instead of overwriting it.
# usage: vault_gateway.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/../e2e/gateway.sh"
source "$here/standin.sh"
netns_init

VDIR=$WORK/vault
PORT=8200
standin_gateway "$VDIR" "$PORT"
gateway_up

vault_curl() { ns_exec "$GW" curl -sS --max-time 5 --cacert "$VDIR/ca.pem" "$@"; }
token=$(vault_curl -X POST -d "{\"role_id\": \"$STANDIN_ROLE_ID\", \"secret_id\": \"$(cat "$VDIR/secret_id")\"}" \
	"https://127.0.0.1:$PORT/v1/auth/approle/login" | json_field client_token)
[ -n "$token" ] || fail "no login at the stand-in"
NODE=$(ns_exec "$GW" hostname)
KV_URL="https://127.0.0.1:$PORT/v1/secret/data/meshgate/$NODE/wireguard/$WG_IF"
kv_get() { vault_curl -H "X-Vault-Token: $token" "$KV_URL"; }

echo "-- the vault plugin serves the secrets, loaded for secrets = \"vault\""
status=$(ctl key status --json)
grep -q '"backend": "vault"' <<<"$status" || fail "key status: $status"
grep -q "\"wireguard/$WG_IF\"" <<<"$status" || fail "no wireguard key in: $status"
ctl key status

echo "-- the key is in the stand-in's KV and runs the interface"
kv=$(kv_get)
priv=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["data"]["key"])' <<<"$kv")
[ -n "$priv" ] || fail "no key at $KV_URL"
[ "$(wg pubkey <<<"$priv")" = "$(ns_exec "$GW" wg show "$WG_IF" public-key)" ] ||
	fail "the interface does not run the key stored in Vault"

echo "-- a client onboards and pings through the tunnel"
code=$(ctl user add alice --role developer --json | json_field code)
[ -n "$code" ] || fail "no code"
client_up "$CL" "${TAG}c" "$code" >/dev/null || fail "meshgate up"
ns_exec "$CL" ping -c 2 -W 2 10.20.0.10 >/dev/null || fail "ping through the tunnel"

echo "-- the key is on no disk, in no log; key files are 0600"
[ -z "$(find "$STATE" -name '*.sealed')" ] || fail "a sealed key on disk with secrets = vault"
if grep -rqF -- "$priv" "$WORK" 2>/dev/null; then fail "the private key is in a file"; fi
bad=$(find "$WORK/gw" "$WORK/cl" \( -name '*.key' -o -name '*.sealed' -o -name '*key*' \) \
	-type f ! -perm 600)
[ -z "$bad" ] || fail "key files not 0600: $bad"

echo "-- a newer version lands in Vault behind the node's back"
marker=$(wg genkey)
newer=$(python3 -c '
import json, sys
d = json.load(sys.stdin)["data"]
rec = d["data"]
rec["next"] = {"version": rec["version"] + 1, "key": sys.argv[1], "created_ms": 1}
print(json.dumps({"options": {"cas": d["metadata"]["version"]}, "data": rec}))' "$marker" <<<"$kv")
vault_curl -H "X-Vault-Token: $token" -X POST -d "$newer" "$KV_URL" >/dev/null ||
	fail "the test's write to the stand-in"
kv_version() { kv_get | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["metadata"]["version"])'; }
[ "$(kv_version)" = 2 ] || fail "the test's version is not 2"

echo "-- Vault stops answering: the loaded key is still served, the tunnel runs"
kill -STOP "$STANDIN_PID"
got=$(ctl call secret.get "{\"name\": \"wireguard/$WG_IF\"}") || fail "secret.get with Vault down"
[ "$(json_field key <<<"$got")" = "$priv" ] || fail "another key served with Vault down"
unset got
ns_exec "$CL" ping -c 2 -W 2 10.20.0.10 >/dev/null || fail "ping with Vault down"

echo "-- a rotation waits for Vault; key status says so"
ctl --timeout 1000 key rotate --gateway >/dev/null 2>&1 && fail "a rotation answered with Vault down"
unreachable() { ctl key status | grep -q 'UNREACHABLE.*waiting'; }
wait_for 30 unreachable || { ctl key status; fail "key status does not tell Vault is unreachable"; }
ctl key status

echo "-- Vault back: the stale write is refused, the newer version stands"
kill -CONT "$STANDIN_PID"
taken() { ctl key status --json | grep -q '"writes_waiting": 0' &&
	[ "$(ctl key status --json | grep -cE '"created_ms": 1,?$')" = 1 ]; }
wait_for 60 taken || { ctl key status --json; fail "the newer version was not taken"; }
[ "$(kv_version)" = 2 ] || fail "Vault's version 2 was overwritten"
kv_get | grep -qF -- "$marker" || fail "the newer version's key is gone from Vault"
grep -q "Vault has a newer version" "$WORK/gw/meshgated.log" || fail "no word of the conflict"
[ "$(wg pubkey <<<"$priv")" = "$(ns_exec "$GW" wg show "$WG_IF" public-key)" ] ||
	fail "the interface's key changed"

echo "-- no key in meshgated's log or the stand-in's"
for k in "$priv" "$marker"; do
	if grep -qF -- "$k" "$WORK/gw/meshgated.log" "$VDIR/standin.log"; then
		fail "a key is in a log"
	fi
done
# a device's rotation is preauth's (tests/e2e/rotate_device.sh): no device d1
out=$(ctl key rotate --device d1 2>&1) && fail "rotate --device d1 answered ok"
grep -q "id must be" <<<"$out" || fail "rotate --device: $out"
echo "vault gateway: ok"
