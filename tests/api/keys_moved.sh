#!/bin/bash
# The API's TLS private keys live in the secret service (docs/secrets.md):
# a gateway upgraded from an earlier version, whose state dir holds ca.key
# and api-server.key, moves them into the service at its start, removes
# the files and says so in its log; clients notice nothing (the same CA,
# the same server public key: their pins hold). The next start has nothing
# to move. Neither key is then in any file of the gateway in the clear:
# with the local back end they are sealed (0600), with Vault (the
# stand-in, tests/vault/vault_standin.py: NOT Vault) they are on no disk
# of the gateway at all.
# usage: keys_moved.sh BUILD_DIR [local|vault]
set -euo pipefail
build=$(realpath "$1")
SECRETS=${2:-local}
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/../lib/secret_hygiene.sh"
netns_init
ns_add NS keys
STATE=$WORK/state
OLD=$WORK/old # the earlier version's key files, kept to compare
mkdir -p "$OLD"
(umask 077 && mkdir -p "$STATE")

echo "-- an earlier version's state: ca.pem, ca.key, api-server.pem, api-server.key"
ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ec_key "$OLD/ca.key"
ec_key "$OLD/api-server.key"
openssl req -x509 -key "$OLD/ca.key" -subj "/O=meshgate/CN=meshgate gateway CA old" -days 3650 \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
	-out "$STATE/ca.pem" 2>/dev/null
openssl req -new -key "$OLD/api-server.key" -subj "/O=meshgate/CN=127.0.0.1" \
	-out "$OLD/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n' >"$OLD/ext"
openssl x509 -req -in "$OLD/server.csr" -CA "$STATE/ca.pem" -CAkey "$OLD/ca.key" \
	-CAcreateserial -CAserial "$OLD/serial" -days 365 -extfile "$OLD/ext" \
	-out "$STATE/api-server.pem" 2>/dev/null
install -m 0600 "$OLD/ca.key" "$STATE/ca.key"
install -m 0600 "$OLD/api-server.key" "$STATE/api-server.key"
# as PKCS#8 DER in base64: what a PEM of it holds (the plugin writes PKCS#8)
der_b64() { openssl pkcs8 -topk8 -nocrypt -in "$1" -outform DER | base64 -w0; }
KEYS=("$(der_b64 "$OLD/ca.key")" "$(der_b64 "$OLD/api-server.key")")
pin=$(openssl pkey -in "$OLD/api-server.key" -pubout -outform DER | openssl dgst -sha256 -binary | base64)
ca_fp=$(openssl x509 -in "$STATE/ca.pem" -outform DER | sha256sum | cut -d' ' -f1)
# the check below finds these keys where they are now
keys_nowhere "$STATE" "${KEYS[0]}" >/dev/null && fail "the check does not find ca.key"
keys_nowhere "$STATE" "${KEYS[1]}" >/dev/null && fail "the check does not find api-server.key"

CONF_EXTRA=""
if [ "$SECRETS" = vault ]; then
	source "$here/../vault/standin.sh"
	standin_certs "$WORK/vault"
	standin_start "$WORK/vault" 8200 3600 "$NS" || fail "the stand-in did not start"
	bg_track "$STANDIN_PID"
	CONF_EXTRA="secrets = \"vault\";
vault = { address = \"https://127.0.0.1:8200\"; ca = \"$WORK/vault/ca.pem\";
          role_id = \"$STANDIN_ROLE_ID\"; secret_id_file = \"$WORK/vault/secret_id\"; };"
fi
cat >"$WORK/meshgated.conf" <<CONF
state_dir = "$STATE";
socket = "$WORK/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["api"];
api = { listen = "127.0.0.1:8443"; names = ["127.0.0.1"]; };
$CONF_EXTRA
CONF
ctl() { "$build/cli/meshgatectl" --socket "$WORK/bus.sock" "$@"; }
start() {
	ip netns exec "$NS" "$build/core/meshgated" --config "$WORK/meshgated.conf" \
		>"$WORK/meshgated.$1.log" 2>&1 &
	GW_PID=$!
	bg_track $GW_PID
	wait_for 20 plugins_ready "$build" "$WORK/bus.sock" ||
		fail "meshgated did not start: $(tail -20 "$WORK/meshgated.$1.log")"
}
stop() {
	kill -TERM "$GW_PID"
	wait "$GW_PID" 2>/dev/null || true
}
# serves_old: the API verifies with the old CA and the old server key's pin
serves_old() {
	ns_exec "$NS" curl -sS --max-time 5 --cacert "$STATE/ca.pem" --pinnedpubkey "sha256//$pin" \
		-o /dev/null -w '%{http_code}' https://127.0.0.1:8443/api/v1/health/live
}

echo "-- the start ($SECRETS back end) moves the keys into the service"
start 1
moved="moved the private keys into the secret service, files removed: $STATE/ca.key -> api/ca, $STATE/api-server.key -> api/server"
grep -qF "$moved" "$WORK/meshgated.1.log" || fail "no word of the move: $(grep api "$WORK/meshgated.1.log")"
for f in ca.key api-server.key; do
	[ ! -e "$STATE/$f" ] || fail "$f is still in the state dir"
done
[ "$(serves_old)" = 200 ] || fail "the API does not serve the old CA's certificate with the old key"
[ "$(openssl x509 -in "$STATE/ca.pem" -outform DER | sha256sum | cut -d' ' -f1)" = "$ca_fp" ] ||
	fail "the CA changed"
status=$(ctl call secret.status '{}')
for name in api/ca api/server; do
	python3 -c '
import json, sys
keys = {k["name"]: k for k in json.loads(sys.argv[1])["keys"]}
k = keys.get(sys.argv[2])
sys.exit(0 if k and k["version"] == 1 and k["type"] == "opaque" and "key" not in k else 1)' \
		"$status" "$name" || fail "the service has no opaque $name at version 1: $status"
done
# each key also as the service holds it (the PKCS#8 the plugin wrote)
for name in api/ca api/server; do
	KEYS+=("$(ctl call secret.get "{\"name\": \"$name\", \"create\": false}" |
		python3 -c 'import base64, json, sys
pem = base64.b64decode(json.load(sys.stdin)["key"]).decode()
print("".join(l for l in pem.splitlines() if "-----" not in l))')")
done
# not a WireGuard key: the service does not rotate it
out=$(ctl call secret.rotate '{"name": "api/server"}' 2>&1) && fail "secret.rotate of api/server: $out"
grep -q "not a WireGuard key" <<<"$out" || fail "secret.rotate of api/server: $out"
echo "   moved, removed, the same CA and server key; secret.rotate refuses a TLS key"

echo "-- the next start has nothing to move"
stop
start 2
grep -q "moved the private keys" "$WORK/meshgated.2.log" && fail "moved again"
[ "$(serves_old)" = 200 ] || fail "after a restart the API does not serve the old key"
for f in ca.key api-server.key; do [ ! -e "$STATE/$f" ] || fail "$f came back"; done

echo "-- no private key in the clear on the gateway's disk"
sealed=$(find "$STATE" -path '*/api/*.sealed' | sort | tr '\n' ' ')
if [ "$SECRETS" = vault ]; then
	[ -z "$sealed" ] || fail "with Vault, TLS keys on the gateway's disk: $sealed"
else
	[ "$sealed" = "$STATE/api/ca.sealed $STATE/api/server.sealed " ] || fail "sealed: $sealed"
fi
bad=$(state_private "$STATE") || fail "$bad"
rm -rf "$OLD"
stop
keys_nowhere "$WORK" "${KEYS[@]}" || fail "a TLS private key is readable outside the service"
echo "keys moved ($SECRETS): ok"
