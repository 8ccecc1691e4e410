#!/bin/bash
# The etcd client key (cluster.key) lives in the secret service, as every
# private key of the node (docs/cluster.md): the first start moves the file
# into it (secret.put, "core/etcd-client-key") and removes the file
# (logged); the node speaks TLS with client certificates to etcd with the
# key from secret.get, held in memory, also after a restart with no key
# file at all; a renewed key file is put anew; a key sealed by an earlier
# meshgated (STATE_DIR/core/etcd-client.sealed) is moved in too; a file
# that is no key is refused and kept. The key is then in no file in the
# clear (tests/lib/secret_hygiene.sh); with Vault (the stand-in,
# tests/vault/standin.sh: NOT Vault) in no file of the node at all.
# usage: client_key.sh BUILD_DIR [local|vault]
set -euo pipefail
build=$(realpath "$1")
SECRETS=${2:-local}
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/../lib/secret_hygiene.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v etcd >/dev/null || { echo "SKIP: no etcd"; exit 77; }
netns_init
ns_add NS etcdtls

echo "-- etcd with TLS and client certificates (openssl)"
PKI=$WORK/pki ETC=$WORK/etc
mkdir -p "$PKI" "$ETC"
ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ec_key "$PKI/ca.key"
openssl req -x509 -key "$PKI/ca.key" -subj "/CN=etcd test CA" -days 2 -out "$PKI/ca.pem" 2>/dev/null
# sign NAME EXT: NAME.pem for NAME.key, signed by the CA
sign() {
	openssl req -new -key "$PKI/$1.key" -subj "/CN=$1" -out "$PKI/$1.csr" 2>/dev/null
	printf '%s\n' "$2" >"$PKI/$1.ext"
	openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial \
		-CAserial "$PKI/serial" -days 2 -extfile "$PKI/$1.ext" -out "$PKI/$1.pem" 2>/dev/null
}
ec_key "$PKI/server.key"
# clientAuth too: etcd's JSON gateway dials etcd itself with this certificate
sign server "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth"
for name in gw1 gw1-renewed; do
	ec_key "$PKI/$name.key"
	sign "$name" "extendedKeyUsage=clientAuth"
done
ip netns exec "$NS" etcd --data-dir "$WORK/etcd" --listen-client-urls https://127.0.0.1:2379 \
	--advertise-client-urls https://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
	--cert-file "$PKI/server.pem" --key-file "$PKI/server.key" --client-cert-auth \
	--trusted-ca-file "$PKI/ca.pem" >"$WORK/etcd.log" 2>&1 &
bg_track $!
etcdctl_tls() {
	ns_exec "$NS" etcdctl --endpoints https://127.0.0.1:2379 --cacert "$PKI/ca.pem" \
		--cert "$PKI/gw1-renewed.pem" --key "$PKI/gw1-renewed.key" "$@"
}
wait_for 20 etcdctl_tls endpoint health || fail "etcd does not answer"
ns_exec "$NS" etcdctl --endpoints https://127.0.0.1:2379 --cacert "$PKI/ca.pem" \
	--dial-timeout 2s endpoint health >/dev/null 2>&1 && fail "etcd answers a client without a certificate"

install -m 0600 "$PKI/gw1.key" "$ETC/etcd-client.key"
install -m 0644 "$PKI/gw1.pem" "$ETC/etcd-client.pem"
STATE=$WORK/state
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
plugins = []; # the core alone (and the secret service's back end): it speaks to etcd
cluster = { node = "gw1"; etcd = [ "https://127.0.0.1:2379" ]; prefix = "/meshgate-$TAG/";
            ca = "$PKI/ca.pem"; cert = "$ETC/etcd-client.pem"; key = "$ETC/etcd-client.key"; };
$CONF_EXTRA
CONF
ctl() { "$build/cli/meshgatectl" --socket "$WORK/bus.sock" "$@"; }
writable() { ctl --json status | grep -q '"writable": *true'; }
start() {
	ip netns exec "$NS" "$build/core/meshgated" --config "$WORK/meshgated.conf" \
		>"$WORK/meshgated.$1.log" 2>&1 &
	GW_PID=$!
	bg_track $GW_PID
	wait_for 20 plugins_ready "$build" "$WORK/bus.sock" ||
		fail "meshgated did not start: $(tail -20 "$WORK/meshgated.$1.log")"
	wait_for 10 writable || fail "the cluster is not writable: $(tail -20 "$WORK/meshgated.$1.log")"
}
stop() {
	kill -TERM "$GW_PID"
	wait "$GW_PID" 2>/dev/null || true
}
# the node reads and watches etcd over TLS with its client certificate:
# writable (its health check answered), at the revision etcd is at
write_through() {
	local want got
	etcdctl_tls put "/meshgate-$TAG/_test/$1" "{}" >/dev/null || fail "etcdctl put"
	want=$(etcdctl_tls get "/meshgate-$TAG/_test/$1" -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
	caught_up() {
		got=$(ctl --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["cluster"]["revision"])')
		[ "$got" -ge "$want" ]
	}
	wait_for 10 caught_up || fail "the node does not follow etcd: $(ctl --json status)"
}
SECRET=core/etcd-client-key
# the service's record of the key: version and type, never the key itself
record() {
	ctl call secret.status '{}' | python3 -c '
import json, sys
keys = {k["name"]: k for k in json.load(sys.stdin)["keys"]}
k = keys.get(sys.argv[1])
print("none" if not k else "%s %s %s" % (k["version"], k.get("type"), "key" in k))' "$SECRET"
}
# the key as secret.get answers it, PEM's base64 lines joined
served_key() {
	ctl call secret.get "{\"name\": \"$SECRET\", \"create\": false}" | python3 -c '
import base64, json, sys
pem = base64.b64decode(json.load(sys.stdin)["key"]).decode()
print("".join(l for l in pem.splitlines() if "-----" not in l))'
}
der() { openssl pkcs8 -topk8 -nocrypt -in "$1" -outform DER | base64 -w0; }
STORED=$STATE/core/etcd-client-key.sealed # the local back end's file of it

echo "-- the first start ($SECRETS) moves the key into the secret service and removes the file"
start 1
grep -qF "moved the etcd client key $ETC/etcd-client.key into the secret service ($SECRET, version 1) and removed the file" \
	"$WORK/meshgated.1.log" || fail "no word of the move: $(grep cluster "$WORK/meshgated.1.log")"
[ ! -e "$ETC/etcd-client.key" ] || fail "the key file is still there"
[ "$(record)" = "1 opaque False" ] || fail "the service's record: $(record)"
[ "$(served_key)" = "$(der "$PKI/gw1.key")" ] || fail "secret.get does not answer the key moved in"
ctl key status | grep -q "$SECRET" || fail "key status does not list $SECRET: $(ctl key status)"
if [ "$SECRETS" = local ]; then
	[ "$(stat -c %a "$STORED")" = 600 ] || fail "the sealed key is not 0600"
fi
write_through alice

echo "-- a restart without the key file: the key from secret.get"
stop
start 2
grep -q "moved the etcd client key" "$WORK/meshgated.2.log" && fail "moved again without a file"
[ "$(record)" = "1 opaque False" ] || fail "the service's record changed: $(record)"
write_through bob

echo "-- a renewed pair: the new key file put anew, the pair used together"
stop
install -m 0600 "$PKI/gw1-renewed.key" "$ETC/etcd-client.key"
install -m 0644 "$PKI/gw1-renewed.pem" "$ETC/etcd-client.pem"
start 3
grep -q "moved the etcd client key $ETC/etcd-client.key into the secret service ($SECRET, version 2)" \
	"$WORK/meshgated.3.log" || fail "the renewed key was not put"
[ ! -e "$ETC/etcd-client.key" ] || fail "the renewed key file is still there"
[ "$(served_key)" = "$(der "$PKI/gw1-renewed.key")" ] || fail "secret.get does not answer the renewed key"
write_through carol

echo "-- a key sealed by an earlier meshgated (core/etcd-client.sealed) is moved in"
stop
# that file is what the keystore makes of a secret named core/etcd-client
# (the same sealing, under the node's sealing key): one made in a state
# dir of its own, the first pair's key in it, the first pair's certificate
LEGACY=$WORK/legacy
(umask 077 && mkdir -p "$LEGACY/state")
cat >"$LEGACY/meshgated.conf" <<CONF
state_dir = "$LEGACY/state";
socket = "$LEGACY/bus.sock";
plugin_dir = "$build/plugins";
plugins = ["keystore"];
keystore = { seal_key_file = "$STATE-seal.key"; };
CONF
ip netns exec "$NS" "$build/core/meshgated" --config "$LEGACY/meshgated.conf" >"$LEGACY/log" 2>&1 &
LEGACY_PID=$!
bg_track $LEGACY_PID
wait_for 20 plugins_ready "$build" "$LEGACY/bus.sock" || fail "the keystore alone did not start: $(tail "$LEGACY/log")"
"$build/cli/meshgatectl" --socket "$LEGACY/bus.sock" call secret.put \
	"{\"name\": \"core/etcd-client\", \"key\": \"$(base64 -w0 "$PKI/gw1.key")\"}" >/dev/null ||
	fail "cannot seal the earlier file"
kill -TERM $LEGACY_PID
wait $LEGACY_PID 2>/dev/null || true
install -d -m 0700 "$STATE/core" # with Vault, nothing else of the core is there
install -m 0600 "$LEGACY/state/core/etcd-client.sealed" "$STATE/core/etcd-client.sealed"
rm -rf "$LEGACY"
install -m 0644 "$PKI/gw1.pem" "$ETC/etcd-client.pem"
start 4
grep -qF "moved the etcd client key sealed in $STATE/core/etcd-client.sealed into the secret service ($SECRET, version 3) and removed the file" \
	"$WORK/meshgated.4.log" || fail "no word of the sealed key's move: $(grep cluster "$WORK/meshgated.4.log")"
[ ! -e "$STATE/core/etcd-client.sealed" ] || fail "the earlier sealed file is still there"
[ "$(served_key)" = "$(der "$PKI/gw1.key")" ] || fail "secret.get does not answer the key sealed earlier"
write_through dave

echo "-- a key file that is no key: refused, kept, the service's key unchanged"
stop
echo "not a key" >"$ETC/etcd-client.key"
ip netns exec "$NS" "$build/core/meshgated" --config "$WORK/meshgated.conf" >"$WORK/meshgated.5.log" 2>&1 &&
	fail "meshgated started with a bad cluster.key"
grep -q "not a PEM private key" "$WORK/meshgated.5.log" || fail "no clear error: $(tail -5 "$WORK/meshgated.5.log")"
[ -e "$ETC/etcd-client.key" ] || fail "the bad file was removed"
rm "$ETC/etcd-client.key"
start 6
[ "$(record)" = "3 opaque False" ] || fail "the service's record changed: $(record)"
[ "$(served_key)" = "$(der "$PKI/gw1.key")" ] || fail "the service's key changed"
write_through erin

echo "-- no key in the clear in any file of the node"
sealed=$(find "$STATE" -name '*.sealed' | sort | tr '\n' ' ')
if [ "$SECRETS" = vault ]; then
	[ -z "$sealed" ] || fail "with Vault, keys on the node's disk: $sealed"
else
	[ "$sealed" = "$STATE/core/etcd-client-key.previous.sealed $STORED " ] || fail "sealed: $sealed"
fi
stop
keys=("$(der "$PKI/gw1.key")" "$(der "$PKI/gw1-renewed.key")")
rm -rf "$PKI" # the test's own copies
keys_nowhere "$WORK" "${keys[@]}" || fail "the etcd client key is readable outside the secret service"
bad=$(state_private "$STATE") || fail "$bad"
echo "cluster client key ($SECRETS): ok"
