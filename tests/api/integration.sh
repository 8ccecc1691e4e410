#!/bin/bash
# The api plugin in the real meshgated, over real HTTPS with curl:
#   integration.sh MESHGATED MESHGATECTL API_SO FAKE_PREAUTH_SO
# A stand-in for preauth (fake_preauth.c) answers the bus requests. Loopback
# only, temp dirs, a free port; the daemon is killed on any exit.
set -u

MESHGATED=$1
CTL=$2
API_SO=$3
FAKE_SO=$4

tmp=$(mktemp -d /tmp/mg-api-test.XXXXXX)
pid=
failures=0
HOST=gw.meshgate.test

cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() { echo "ok   - $*"; }
bad() {
	echo "FAIL - $*"
	failures=$((failures + 1))
}
check() { # check DESCRIPTION EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: expected '$2', got '$3'"; fi
}

mkdir -p "$tmp/plugins" "$tmp/plugins-noprea"
ln -s "$API_SO" "$tmp/plugins/meshgate-api.so"
ln -s "$FAKE_SO" "$tmp/plugins/meshgate-apitest_preauth.so"
ln -s "$API_SO" "$tmp/plugins-noprea/meshgate-api.so"
# the secret service the api keeps its private keys in, beside it in the build
for dir in plugins plugins-noprea; do
	ln -s "$(dirname "$API_SO")/meshgate-keystore.so" "$tmp/$dir/meshgate-keystore.so"
done
STATE=$tmp/state
CA=$STATE/ca.pem

write_config() { # write_config FILE PLUGIN_DIR PORT STATE EXTRA_PLUGINS
	cat >"$1" <<EOF
state_dir = "$4";
socket = "$tmp/bus-$(basename "$1").sock";
plugin_dir = "$2";
plugins = ["api"$5];
log_level = "debug";
api = {
  listen = "127.0.0.1:$3";
  request_timeout_ms = 500;
  max_body = 4096;
  threads = 3;
  metrics_listen = ""; # on the host's loopback: not the port of a real exporter
};
EOF
	if [ -n "$5" ]; then
		echo "apitest_preauth = { wg_endpoint = \"$HOST:51820\"; };" >>"$1"
	fi
}

# curl against the daemon: the CA as only trust anchor, the test name
# resolved to loopback. Prints the status code; the body goes to $tmp/body.
req() {
	curl -sS --max-time 10 --cacert "$CA" --resolve "$HOST:$port:127.0.0.1" \
		-o "$tmp/body" -w '%{http_code}' "$@" 2>"$tmp/curl.err"
}
post() { # post PATH JSON [curl args...]
	local path=$1 body=$2
	shift 2
	req -X POST -H "Content-Type: ${CT:-application/json}" --data-binary "$body" "$@" \
		"https://$HOST:$port$path"
}
field() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$tmp/body" "$1"; }

wait_healthy() { # wait_healthy LOG: 0 once health answers 200
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || return 1
		grep -q "started api" "$1" 2>/dev/null &&
			[ "$(curl -s -o /dev/null -w '%{http_code}' -k "https://127.0.0.1:$port/api/v1/health")" = 200 ] &&
			return 0
		sleep 0.1
	done
	return 1
}

# start PLUGIN_DIR EXTRA_PLUGINS LOG: a daemon on a free port (retries when
# the port is taken by someone else)
start() {
	for attempt in 1 2 3 4 5 6 7 8; do
		port=${FIXED_PORT:-$((20000 + ($$ * 7 + attempt * 101 + RANDOM) % 40000))}
		write_config "$tmp/mg.conf" "$1" "$port" "$STATE" "$2"
		"$MESHGATED" --config "$tmp/mg.conf" >"$3" 2>&1 &
		pid=$!
		if wait_healthy "$3"; then
			return 0
		fi
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		pid=
		grep -q "Address already in use" "$3" || break
	done
	echo "meshgated did not come up:"
	cat "$3"
	exit 1
}

stop() {
	kill "$pid"
	wait "$pid"
	local rc=$?
	pid=
	check "meshgated stops cleanly on SIGTERM" 0 "$rc"
}

calls() { "$CTL" --socket "$tmp/bus-mg.conf.sock" --json call apitest.calls 2>/dev/null |
	/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["calls"])'; }

###########################################################################
echo "# phase 1: api + stand-in preauth"
start "$tmp/plugins" ', "apitest_preauth"' "$tmp/log1"

check "health with --cacert" 200 "$(req "https://$HOST:$port/api/v1/health")"
check "health body" "ok" "$(field 'd["status"]')"
check "HEAD health" 200 "$(req -I "https://$HOST:$port/api/v1/health")"

# the certificate and its fingerprint
# the private keys are in the secret service (sealed, 0600), not in files
check "no ca.key" no "$([ -e "$STATE/ca.key" ] && echo yes || echo no)"
check "no api-server.key" no "$([ -e "$STATE/api-server.key" ] && echo yes || echo no)"
check "the CA's key sealed" 600 "$(stat -c %a "$STATE/api/ca.sealed")"
check "the server key sealed" 600 "$(stat -c %a "$STATE/api/server.sealed")"
fp=$(openssl x509 -in "$CA" -outform DER | sha256sum | cut -d' ' -f1)
grep -q "CA fingerprint (SHA-256 of ca.pem, hex): $fp" "$tmp/log1" &&
	ok "the logged fingerprint is SHA-256 of ca.pem's DER" ||
	bad "fingerprint $fp not in the log"
pin=$(sed -n 's/.*server public key pin: sha256\/\/\([A-Za-z0-9+/=]*\).*/\1/p' "$tmp/log1" | head -1)
info_fp=$("$CTL" --socket "$tmp/bus-mg.conf.sock" --json call api.info |
	/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["ca_fingerprint"])')
check "api.info shows the fingerprint" "$fp" "$info_fp"
openssl x509 -in "$STATE/api-server.pem" -noout -ext subjectAltName 2>/dev/null | grep -q "DNS:$HOST" &&
	ok "server certificate names the wireguard endpoint's host" ||
	bad "server certificate lacks DNS:$HOST"

# trust
curl -sS --max-time 10 --resolve "$HOST:$port:127.0.0.1" -o /dev/null \
	"https://$HOST:$port/api/v1/health" 2>/dev/null
check "curl without --cacert fails verification (exit 60)" 60 $?
curl -sS --max-time 10 -k --pinnedpubkey "sha256//$pin" -o /dev/null \
	"https://127.0.0.1:$port/api/v1/health" 2>/dev/null
check "curl --pinnedpubkey with the logged pin works" 0 $?
curl -sS --max-time 10 -k --pinnedpubkey "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" \
	-o /dev/null "https://127.0.0.1:$port/api/v1/health" 2>/dev/null
check "curl --pinnedpubkey with a wrong pin fails (exit 90)" 90 $?
# a client that knows only the fingerprint: take the CA from the handshake,
# check its digest, then trust it
openssl s_client -connect "127.0.0.1:$port" -servername "$HOST" -showcerts </dev/null 2>/dev/null |
	awk '/BEGIN CERT/{n++} n==2{print} /END CERT/ && n==2{exit}' >"$tmp/handshake-ca.pem"
got=$(openssl x509 -in "$tmp/handshake-ca.pem" -outform DER 2>/dev/null | sha256sum | cut -d' ' -f1)
check "the handshake carries the CA with the logged fingerprint" "$fp" "$got"
code=$(curl -sS --max-time 10 --cacert "$tmp/handshake-ca.pem" --resolve "$HOST:$port:127.0.0.1" \
	-o /dev/null -w '%{http_code}' "https://$HOST:$port/api/v1/health" 2>/dev/null)
check "the pinned CA from the handshake verifies the server" 200 "$code"
code=$(curl -sS --max-time 10 --cacert "$CA" -o /dev/null -w '%{http_code}' \
	"https://127.0.0.1:$port/api/v1/health" 2>/dev/null)
check "a name the certificate lacks (127.0.0.1) fails verification" 000 "$code"
curl -sS --max-time 10 --http1.1 --tls-max 1.1 -k -o /dev/null \
	"https://127.0.0.1:$port/api/v1/health" 2>/dev/null
[ $? -ne 0 ] && ok "TLS 1.1 is refused" || bad "TLS 1.1 was accepted"
curl -sS --max-time 5 -o /dev/null "http://127.0.0.1:$port/api/v1/health" 2>/dev/null
[ $? -ne 0 ] && ok "plain HTTP gets no answer" || bad "plain HTTP answered"

# redeem passes through
check "redeem GOOD" 200 "$(post /api/v1/redeem '{"code":"GOOD","name":"laptop","extra":1,"source":"6.6.6.6"}')"
check "redeem reply: device_id" dev-1 "$(field 'd["device_id"]')"
check "redeem reply: register_token" tok-1 "$(field 'd["register_token"]')"
check "redeem reply: what preauth adds (dns)" "['10.100.0.1']" "$(field 'd["dns"]')"
check "redeem sends the client's address as source" 127.0.0.1 "$(field 'd["echo"]["source"]')"
check "redeem sends the name" laptop "$(field 'd["echo"]["name"]')"
check "redeem drops unknown fields" False "$(field '"extra" in d["echo"]')"
# every node's CA for the device: alone, this node's own (ca.pem)
check "redeem reply: api_cas is [ca.pem]" True \
	"$(field "d['api_cas'] == [open('$CA').read()]")"
check "api.info: the CAs devices are told, by fingerprint" "['$fp']" \
	"$("$CTL" --socket "$tmp/bus-mg.conf.sock" --json call api.info |
		/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["api_cas"])')"
check "redeem with charset param" 200 "$(CT='application/json; charset=utf-8' post /api/v1/redeem '{"code":"GOOD"}')"
check "register" 200 "$(post /api/v1/register '{"device_id":"dev-1","register_token":"tok-1","public_key":"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=","address":"10.100.0.2/32"}')"
check "register reply: state" active "$(field 'd["state"]')"
check "register reply: device_id" dev-1 "$(field 'd["device_id"]')"

# bus errors map to statuses, with a JSON error body
for pair in bad_request:400 unknown_code:404 not_found:404 code_used:409 exists:409 \
	conflict:409 unavailable:503 code_expired:410 code_revoked:410 rate_limited:429 unknown_service:503 \
	timeout:504 internal:500 something_new:500; do
	code=${pair%%:*} status=${pair##*:}
	check "redeem error $code -> $status" "$status" "$(post /api/v1/redeem "{\"code\":\"ERR-$code\"}")"
	check "  body {error: $code}" "$code" "$(field 'd["error"]')"
	check "  body has a message" True "$(field 'isinstance(d["message"], str) and len(d["message"]) > 0')"
done
check "register error code_used -> 409" 409 "$(post /api/v1/register '{"device_id":7,"register_token":"ERR-code_used","public_key":"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=","address":"10.100.0.2"}')"
check "a slow preauth -> 504" 504 "$(post /api/v1/redeem '{"code":"SLOW"}')"
check "  body {error: timeout}" timeout "$(field 'd["error"]')"
sleep 1.2 # let the stand-in finish the slow one

# malformed requests: 4xx, JSON errors, nothing reaches the bus
before=$(calls)
big=$(head -c 100000 /dev/zero | tr '\0' a)
check "bad JSON" 400 "$(post /api/v1/redeem '{"code": ')"
check "  body {error: bad_request}" bad_request "$(field 'd["error"]')"
check "not an object" 400 "$(post /api/v1/redeem '["GOOD"]')"
check "missing code" 400 "$(post /api/v1/redeem '{"name":"x"}')"
check "code of the wrong type" 400 "$(post /api/v1/redeem '{"code":42}')"
check "overlong code" 400 "$(post /api/v1/redeem "{\"code\":\"$(head -c 200 /dev/zero | tr '\0' a)\"}")"
check "duplicate keys" 400 "$(post /api/v1/redeem '{"code":"GOOD","code":"ERR-x"}')"
check "empty body" 400 "$(post /api/v1/redeem '')"
check "register without public_key" 400 "$(post /api/v1/register '{"device_id":"dev-1","register_token":"tok-1","address":"10.100.0.2"}')"
check "register with a bad key" 400 "$(post /api/v1/register '{"device_id":"dev-1","register_token":"tok-1","public_key":"not-a-key","address":"10.100.0.2"}')"
check "register with a bad address" 400 "$(post /api/v1/register '{"device_id":"dev-1","register_token":"tok-1","public_key":"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=","address":"10.100.0.300"}')"
check "huge body (Content-Length)" 413 "$(post /api/v1/redeem "{\"code\":\"$big\"}")"
check "  body {error: too_large}" too_large "$(field 'd["error"]')"
check "huge body (Expect: 100-continue)" 413 "$(post /api/v1/redeem "{\"code\":\"$big\"}" -H 'Expect: 100-continue')"
check "huge body (chunked)" 413 "$(post /api/v1/redeem "{\"code\":\"$big\"}" -H 'Transfer-Encoding: chunked')"
# chunked has no size to judge up front: over 1 MiB still gets its 413
head -c 3000000 /dev/zero | tr '\0' a >"$tmp/huge.json"
check "huge body (chunked, 3 MB)" 413 "$(post /api/v1/redeem @"$tmp/huge.json" -H 'Transfer-Encoding: chunked')"
check "  body {error: too_large}" too_large "$(field 'd["error"]')"
check "wrong method on redeem" 405 "$(req -X GET "https://$HOST:$port/api/v1/redeem")"
check "  body {error: method_not_allowed}" method_not_allowed "$(field 'd["error"]')"
allow=$(curl -sS --max-time 10 --cacert "$CA" --resolve "$HOST:$port:127.0.0.1" -o /dev/null -D - \
	-X PUT "https://$HOST:$port/api/v1/register" | tr -d '\r' | sed -n 's/^Allow: //Ip')
check "  Allow header" POST "$allow"
check "wrong method on health" 405 "$(req -X POST "https://$HOST:$port/api/v1/health")"
check "unknown path" 404 "$(req "https://$HOST:$port/api/v2/redeem")"
check "  body {error: not_found}" not_found "$(field 'd["error"]')"
check "path with a trailing slash" 404 "$(req -X POST "https://$HOST:$port/api/v1/redeem/")"
check "wrong Content-Type" 415 "$(CT=text/plain post /api/v1/redeem '{"code":"GOOD"}')"
check "  body {error: unsupported_media_type}" unsupported_media_type "$(field 'd["error"]')"
check "no Content-Type" 415 "$(req -X POST --data-binary '{"code":"GOOD"}' -H 'Content-Type:' "https://$HOST:$port/api/v1/redeem")"
check "device config with a body-less POST" 405 "$(req -X POST "https://$HOST:$port/api/v1/device/config")"
check "  Allow: GET" GET "$(curl -sS --max-time 10 --cacert "$CA" --resolve "$HOST:$port:127.0.0.1" -o /dev/null -D - \
	-X POST "https://$HOST:$port/api/v1/device/config" | tr -d '\r' | sed -n 's/^Allow: //Ip')"
check "device config while no VPN subnet is known -> 403" 403 "$(req "https://$HOST:$port/api/v1/device/config")"
check "  body {error: forbidden}" forbidden "$(field 'd["error"]')"
check "malformed requests never reached the bus" "$before" "$(calls)"
check "redeem while the VPN is unknown" 200 "$(post /api/v1/redeem '{"code":"GOOD"}')"
check "  the reply has no vpn_api" False "$(field '"vpn_api" in d')"

# the certificate follows the wireguard endpoint
"$CTL" --socket "$tmp/bus-mg.conf.sock" call apitest.wg '{"endpoint":"127.0.0.1:51820"}' >/dev/null
code=000
for _ in $(seq 1 50); do
	code=$(curl -sS --max-time 5 --cacert "$CA" -o /dev/null -w '%{http_code}' \
		"https://127.0.0.1:$port/api/v1/health" 2>/dev/null)
	[ "$code" = 200 ] && break
	sleep 0.1
done
check "a new wg endpoint re-issues the certificate (127.0.0.1 verifies)" 200 "$code"
check "  the CA stays" "$fp" "$(openssl x509 -in "$CA" -outform DER | sha256sum | cut -d' ' -f1)"

kill -0 "$pid" 2>/dev/null && ok "meshgated still running" || bad "meshgated died"
code=$(curl -sS --max-time 5 --cacert "$CA" -o /dev/null -w '%{http_code}' \
	"https://127.0.0.1:$port/api/v1/health" 2>/dev/null)
check "health on the new name" 200 "$code"

# the VPN side: wg/server gets an address; the API listens on the gateway's
# address too (listen is a specific address), the certificate names it, and
# devices (sources inside the VPN subnet) get their config
vget() { # vget URL [curl args...]: the device config, as a device asks for it
	local url=$1
	shift
	curl -sS --max-time 10 --cacert "$CA" -o "$tmp/body" -w '%{http_code}' "$@" "$url" 2>"$tmp/curl.err"
}
"$CTL" --socket "$tmp/bus-mg.conf.sock" call apitest.wg \
	'{"endpoint":"127.0.0.1:51820","address":"127.0.0.2/8"}' >/dev/null
code=000
for _ in $(seq 1 50); do
	code=$(vget "https://127.0.0.2:$port/api/v1/health")
	[ "$code" = 200 ] && break
	sleep 0.1
done
check "the API listens on the VPN gateway address, and its certificate names it" 200 "$code"
openssl x509 -in "$STATE/api-server.pem" -noout -ext subjectAltName 2>/dev/null | grep -q "IP Address:127.0.0.2" &&
	ok "  subjectAltName IP:127.0.0.2" || bad "  the certificate lacks IP:127.0.0.2"
check "  the CA stays" "$fp" "$(openssl x509 -in "$CA" -outform DER | sha256sum | cut -d' ' -f1)"
before=$(calls)
check "device config from inside the VPN subnet" 200 "$(vget "https://127.0.0.2:$port/api/v1/device/config")"
check "  asks preauth for the source address" 127.0.0.1 "$(field 'd["echo"]["address"]')"
check "  passes preauth's reply" "['10.100.0.0/16', '10.20.0.0/24']" "$(field 'd["allowed_ips"]')"
check "  says where the API is inside the tunnel" "https://127.0.0.2:$port" "$(field 'd["vpn_api"]')"
check "  carries every node's CA (api_cas)" True "$(field "d['api_cas'] == [open('$CA').read()]")"
check "a query string" 200 "$(vget "https://127.0.0.2:$port/api/v1/device/config?address=127.0.0.9")"
check "  cannot choose the address" 127.0.0.1 "$(field 'd["echo"]["address"]')"
check "  the same on the main listener" 200 "$(vget "https://127.0.0.1:$port/api/v1/device/config")"
check "api.info shows vpn_api" "https://127.0.0.2:$port" "$("$CTL" --socket "$tmp/bus-mg.conf.sock" --json call api.info |
	/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin).get("vpn_api"))')"
check "redeem" 200 "$(vget "https://127.0.0.1:$port/api/v1/redeem" -H 'Content-Type: application/json' -d '{"code":"GOOD"}')"
check "  the reply says where the API is inside the tunnel" "https://127.0.0.2:$port" "$(field 'd.get("vpn_api")')"
check "  and keeps preauth's fields" dev-1 "$(field 'd["device_id"]')"
check "register" 200 "$(vget "https://127.0.0.1:$port/api/v1/register" -H 'Content-Type: application/json' \
	-d '{"device_id":"dev-1","register_token":"tok-1","public_key":"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=","address":"10.100.0.2/32"}')"
check "  the register reply has no vpn_api" False "$(field '"vpn_api" in d')"
check "  nor api_cas" False "$(field '"api_cas" in d')"
# a narrower VPN subnet: 127.0.0.1 is outside, 127.0.0.2 inside
"$CTL" --socket "$tmp/bus-mg.conf.sock" call apitest.wg \
	'{"endpoint":"127.0.0.1:51820","address":"127.0.0.2/32"}' >/dev/null
code=000
for _ in $(seq 1 50); do
	code=$(vget "https://127.0.0.2:$port/api/v1/device/config")
	[ "$code" = 403 ] && break
	sleep 0.1
done
check "device config from outside the VPN subnet -> 403" 403 "$code"
check "  body {error: forbidden}" forbidden "$(field 'd["error"]')"
check "device config from the one address inside" 200 \
	"$(vget "https://127.0.0.2:$port/api/v1/device/config" --interface 127.0.0.2)"
check "  for that address" 127.0.0.2 "$(field 'd["echo"]["address"]')"
check "the 403s never reached the bus" "$((before + 6))" "$(calls)"
stop

###########################################################################
echo "# phase 2: restart without preauth"
start "$tmp/plugins-noprea" '' "$tmp/log2"
grep -q "made a new CA\|issued a new server" "$tmp/log2" &&
	bad "a restart made new certificates" || ok "a restart reuses the CA and certificate"
check "same fingerprint after restart" "$fp" "$(openssl x509 -in "$CA" -outform DER | sha256sum | cut -d' ' -f1)"
code=$(curl -sS --max-time 10 --cacert "$CA" -o "$tmp/body" -w '%{http_code}' \
	-H 'Content-Type: application/json' -d '{"code":"GOOD"}' \
	"https://127.0.0.1:$port/api/v1/redeem" 2>/dev/null)
check "redeem without preauth -> 503" 503 "$code"
check "  body {error: unknown_service}" unknown_service "$(field 'd["error"]')"
code=$(curl -sS --max-time 10 --cacert "$CA" -o /dev/null -w '%{http_code}' \
	"https://127.0.0.1:$port/api/v1/health" 2>/dev/null)
check "health without preauth" 200 "$code"

# a second daemon on the same port fails to start and says why
mkdir -p "$tmp/state2"
write_config "$tmp/second.conf" "$tmp/plugins-noprea" "$port" "$tmp/state2" ''
timeout 20 "$MESHGATED" --config "$tmp/second.conf" >"$tmp/log3" 2>&1
rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && ok "bind failure stops the start" ||
	bad "second meshgated exited $rc"
grep -q "cannot listen on 127.0.0.1:$port: Address already in use" "$tmp/log3" &&
	ok "bind failure is logged clearly" || { bad "no clear bind failure message"; cat "$tmp/log3"; }
stop

# a sanitizer build reports here what it found in the daemon
if grep -q "Sanitizer\|runtime error:" "$tmp/log1" "$tmp/log2" "$tmp/log3" 2>/dev/null; then
	bad "sanitizer reports in the daemon's log"
else
	ok "no sanitizer reports"
fi

if [ "$failures" -ne 0 ]; then
	echo "$failures check(s) failed; daemon logs:"
	cat "$tmp/log1" "$tmp/log2" 2>/dev/null | grep -v ' debug \[' | tail -60
	exit 1
fi
echo "all checks passed"
