#!/bin/bash
# The web panel (issue 16) in a real Chromium against a gateway in
# namespaces (tests/e2e/gateway.sh): the browser runs in the gateway's
# namespace, where the admin listener is (10.0.0.1:8444), and trusts only
# the gateway's server key (a pin, not "ignore certificate errors").
# Sign in with a token, create a user, read the code off the page, enroll
# a device with it through `meshgate up`, find it by search, disable it
# from the page and see its traffic stop, enable it, enroll a phone by QR
# (its key made in the browser; a real wireguard-go tunnel brought up from
# the page's config), sign out. Plus the security checks: CSP and no
# violation, no inline script, the cookie's flags, CSRF, traversal.
# Screenshots go to BUILD_DIR/artifacts/panel/.
# usage: panel.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
for tool in node /usr/bin/chromium; do
	command -v "$tool" >/dev/null || { echo "skip: no $tool"; exit 77; }
done
[ -d "$here/../node/node_modules/playwright-core" ] ||
	{ echo "skip: no playwright-core (tools/install-deps.sh)"; exit 77; }
source "$here/../lib/netns.sh"
source "$here/../e2e/gateway.sh"
netns_init

# the panel's files from a copy, to which the traversal checks add links
PANEL=$WORK/panel
cp -r "$here/../../plugins/api/panel" "$PANEL"
# the firewall: the routes and roles page, and what a disabled device loses
GATEWAY_EXTRA_PLUGINS=', "firewall"'
GATEWAY_EXTRA_CONF='firewall = { roles = { developer = ["vpn", "10.20.0.0/24"]; }; };'
eval "$(declare -f gateway_configure | sed '1s/gateway_configure/gateway_configure_base/')"
gateway_configure() {
	gateway_configure_base
	sed -i "s|^api = { |api = { panel_dir = \"$PANEL\"; |" "$WORK/gw/meshgated.conf"
}
gateway_up
LOG=$WORK/gw/meshgated.log
URL=https://10.0.0.1:8444
SHOTS=$build/artifacts/panel
rm -rf "$SHOTS"
mkdir -p "$SHOTS" "$WORK/home"

ok() { echo "ok   - $*"; }
check() { # check DESCRIPTION EXPECTED ACTUAL
	[ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
	ok "$1"
}
# browser STEP [ARG]: one step of panel.mjs in the gateway's namespace; its
# JSON result on stdout
browser() {
	ip netns exec "$GW" env HOME="$WORK/home" PANEL_URL="$URL/" PANEL_PIN="$PIN" \
		PANEL_STATE="$WORK/browser.json" PANEL_SHOTS="$SHOTS" PANEL_TOKEN="$TOKEN" \
		PANEL_ARG="${2:-}" timeout 90 node "$here/panel.mjs" "$1" 2>"$WORK/browser.err" ||
		fail "browser step $1: $(cat "$WORK/browser.err")"
}
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
# http METHOD PATH [CURL ARGS...]: the status (answer in $WORK/body), CA-verified
http() {
	local method=$1 path=$2
	shift 2
	ns_exec "$GW" curl -sS --max-time 10 --cacert "$STATE/ca.pem" --path-as-is -o "$WORK/body" \
		-D "$WORK/headers" -w '%{http_code}' -X "$method" "$@" "$URL$path"
}
header() { sed -n "s/^$1: *//Ip" "$WORK/headers" | tr -d '\r' | head -1; }
users() { ctl --json user list | python3 -c 'import json,sys; print(sorted(u["name"] for u in json.load(sys.stdin)["users"]))'; }
ping_svc() { ns_exec "$1" ping -c1 -W1 10.20.0.10 >/dev/null 2>&1; }

wait_for 10 ns_exec "$GW" bash -c "ss -Htln | grep -q '10.0.0.1:8444'" ||
	fail "no admin listener: $(grep -i admin "$LOG" | tail -3)"
PIN=$(ctl --json call api.info | python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey_pin"])')
TOKEN=$(ctl token add panel-admin --role admin 2>/dev/null)
echo "screenshots of each page: $SHOTS"

echo "-- the files: types, headers, nothing outside the directory"
check "GET / is the panel" 200 "$(http GET /)"
check "as HTML" "text/html; charset=utf-8" "$(header Content-Type)"
for h in "Content-Security-Policy:default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'" \
	"X-Content-Type-Options:nosniff" "Referrer-Policy:no-referrer" "Cache-Control:no-cache"; do
	check "its ${h%%:*}" "${h#*:}" "$(header "${h%%:*}")"
done
check "app.js" 200 "$(http GET /app.js)"
check "as JavaScript" "text/javascript; charset=utf-8" "$(header Content-Type)"
check "style.css" 200 "$(http GET /style.css)"
check "as CSS" "text/css; charset=utf-8" "$(header Content-Type)"
check "the QR library at /lib/qrcode.js" 200 "$(http GET /lib/qrcode.js)"
grep -q "var qrcode = function" "$WORK/body" || fail "/lib/qrcode.js is not qrcode-generator"
check "HEAD /" 200 "$(http HEAD / -I)"
check "POST / is not allowed" 405 "$(http POST / -d x)"
check "an API answer has the CSP too" "default-src 'none'" "$(http GET /api/v1/admin/users >/dev/null; header Content-Security-Policy | cut -d';' -f1)"
echo secret >"$WORK/secret.txt"
ln -s ../secret.txt "$PANEL/leak.txt"
ln -s style.css "$PANEL/alias.css"
mkdir "$PANEL/sub" && echo "x" >"$PANEL/sub/a.txt"
check "a link inside the directory is served" 200 "$(http GET /alias.css)"
for path in /../secret.txt /../../../../etc/passwd /%2e%2e/secret.txt /%2E%2E/%2e%2e/etc/passwd \
	/..%2fsecret.txt /sub/../../secret.txt /sub/%2e%2e/%2e%2e/secret.txt /%252e%252e/secret.txt \
	/leak.txt /sub /sub/ /lib/ /lib /nothing.html /./index.html; do
	check "GET $path: 404" 404 "$(http GET "$path")"
	grep -q secret "$WORK/body" && fail "$path served the file outside"
done
check "a file of a subdirectory is served" 200 "$(http GET /sub/a.txt)"

echo "-- sign in, a user and its code, from the page"
out=$(browser signin)
ok "signed in with the token; the cookie is HttpOnly, Secure, SameSite=Strict; no CSP violation"
echo "   a wrong token said: $(field "$out" bad_token_message)"
COOKIE=$(field "$out" cookie)
CSRF=$(field "$out" csrf)
before=$(users)
check "a change by the cookie without X-CSRF-Token: 403" 403 \
	"$(http POST /api/v1/admin/users -H "Cookie: meshgate_session=$COOKIE" \
		-H 'Content-Type: application/json' -d '{"name":"mallory","role":"developer"}')"
check "its error" csrf "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"]["code"])' "$WORK/body")"
check "a wrong X-CSRF-Token: 403" 403 \
	"$(http POST /api/v1/admin/users -H "Cookie: meshgate_session=$COOKIE" -H "X-CSRF-Token: x$CSRF" \
		-H 'Content-Type: application/json' -d '{"name":"mallory","role":"developer"}')"
check "nothing changed" "$before" "$(users)"
check "a read by the cookie needs none" 200 "$(http GET /api/v1/admin/users -H "Cookie: meshgate_session=$COOKIE")"
check "a wrong cookie: 401" 401 "$(http GET /api/v1/admin/users -H "Cookie: meshgate_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")"

out=$(browser create-user carol)
CODE=$(field "$out" code)
[ -n "$CODE" ] || fail "no code on the page"
ok "user carol created from the page; its code read off the page"
check "carol is there" 1 "$(users | grep -c "'carol'")"

echo "-- the code enrolls a device; the page finds, disables and enables it"
client_up "$CL" "${TAG}c" "$CODE" >"$WORK/up.log" 2>&1 || fail "meshgate up: $(cat "$WORK/up.log")"
ok "meshgate up with the code from the page"
wait_for 20 ping_svc "$CL" || fail "no traffic through the gateway after meshgate up"
ok "the device reaches the service through the gateway"
out=$(browser devices carol)
check "the search finds carol's device" 1 "$(field "$out" rows)"
check "active" active "$(field "$out" state)"
echo "   its last handshake: $(field "$out" handshake)"
browser disable carol >/dev/null
check "disabled from the page" disabled "$(ctl --json device list --user carol | python3 -c 'import json,sys; print(json.load(sys.stdin)["devices"][0]["state"])')"
for _ in $(seq 30); do ping_svc "$CL" || break; sleep 0.3; done
ping_svc "$CL" && fail "the disabled device's traffic still passes"
ok "its traffic stops"
browser enable carol >/dev/null
wait_for 30 ping_svc "$CL" || fail "the enabled device's traffic does not come back"
ok "enabled from the page: its traffic passes again"

echo "-- a phone by QR: the key made in the browser"
out=$(browser qr carol)
printf '%s' "$(field "$out" config)" >"$WORK/phone.conf"
grep -q '^PrivateKey = ' "$WORK/phone.conf" || fail "no private key in the page's config"
PRIV=$(sed -n 's/^PrivateKey = //p' "$WORK/phone.conf")
ADDR=$(sed -n 's/^Address = //p' "$WORK/phone.conf")
ok "the page drew the QR and shows the config ($ADDR)"
ns_add PH ph
ns_link "$GW" 198.18.2.1/24 "$PH" 198.18.2.2/24
ns_exec "$PH" ip route add default via 198.18.2.1
PH_IF=${TAG}p
ip netns exec "$PH" wireguard-go "$PH_IF" >/dev/null 2>&1
grep -vE '^(Address|DNS) = ' "$WORK/phone.conf" >"$WORK/phone.wg"
ns_exec "$PH" wg setconf "$PH_IF" "$WORK/phone.wg"
ns_exec "$PH" ip addr add "$ADDR" dev "$PH_IF"
ns_exec "$PH" ip link set "$PH_IF" up
for net in $(sed -n 's/^AllowedIPs = //p' "$WORK/phone.conf" | tr ',' ' '); do
	ns_exec "$PH" ip route replace "$net" dev "$PH_IF"
done
wait_for 20 ping_svc "$PH" || fail "no traffic through the phone's tunnel: $(ns_exec "$PH" wg show)"
ok "a real wireguard-go tunnel from the page's config passes traffic through the gateway"
rm -f "$WORK/phone.conf" "$WORK/phone.wg"
if grep -raqF -- "$PRIV" "$WORK/gw"; then fail "the phone's private key is in the gateway's state or log"; fi
ok "the phone's private key is in no file of the gateway (state, log)"
ctl --json audit --limit 20 | grep -q '"api.device.enroll"' || fail "no audit of the QR enrolment"
ok "the audit records the enrolment"

echo "-- the other pages"
out=$(browser routes)
check "routes and roles: developer reaches the service's subnet" True \
	"$(python3 -c 'import json,sys; print("10.20.0.0/24" in json.loads(sys.argv[1])["roles"]["developer"])' "$out")"
out=$(browser nodes)
check "nodes: the active one marked" 1 "$(field "$out" active)"

echo "-- sign out"
out=$(browser logout)
check "the browser has no session cookie left" False "$(field "$out" cookie_left)"
check "the old cookie: 401" 401 "$(http GET /api/v1/admin/session -H "Cookie: meshgate_session=$COOKIE")"
check "login-options are public" 200 "$(http GET /api/v1/admin/login-options)"
check "the token is offered, OIDC not" "True False" "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["token"], d["oidc"])' "$WORK/body")"
if grep -raqF -- "$COOKIE" "$WORK/gw"; then fail "a session cookie in the gateway's state or log"; fi
ok "no session cookie in state or the log"
ls "$SHOTS"/*.png >/dev/null || fail "no screenshots"
echo "screenshots kept in $SHOTS: $(cd "$SHOTS" && ls *.png | tr '\n' ' ')"
echo "all panel checks passed"
