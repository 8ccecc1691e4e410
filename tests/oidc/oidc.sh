#!/bin/bash
# Identity login (issue 16, docs/oidc.md) against a real OpenID provider
# (npm oidc-provider, tests/oidc/idp.mjs) in a namespace of its own, with a
# test CA, behind the gateway (tests/e2e/gateway.sh):
# - GET /api/v1/oidc names the provider, over the gateway's verified TLS;
# - `meshgate up --login` in the client's namespace: the employee logs in
#   in chromium (playwright-core) at the address it prints; the device is
#   enrolled with the role of her group and reaches the service through
#   the tunnel; a second login of hers keeps her one user;
# - refused with the reason shown, nothing enrolled: a forged token (a key
#   not the provider's), an expired one, another audience (these signed by
#   the test with the provider's own key, so only that claim differs), a
#   person in no mapped group (a real login), another person's user name;
# - admins sign in to the panel with "Sign in with SSO" in chromium (the
#   authorization code flow with PKCE): each lands signed in with the role
#   of their group; one in no admin group is refused;
# - Ctrl-C while waiting for the login: nothing left; refused logins from
#   one address are limited (429).
# usage: oidc.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/../e2e/gateway.sh"
for tool in node /usr/bin/chromium openssl ncat wireguard-go; do
	command -v "$tool" >/dev/null || { echo "SKIP: no $tool"; exit 77; }
done
[ -d "$here/../node/node_modules/oidc-provider" ] ||
	{ echo "SKIP: tests/node/node_modules missing (tools/install-deps.sh)"; exit 77; }
netns_init

ISSUER=https://198.19.0.2:9443
IDP_DIR=$WORK/idp
SHOTS=$build/artifacts/oidc # the browser's screenshots, kept
mkdir -p "$IDP_DIR" "$SHOTS"
ok() { echo "ok   - $*"; }
check() { [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"; ok "$1"; }
# the scripts next to the npm packages, so that node finds them
ln -s "$(realpath "$here/../node/node_modules")" "$IDP_DIR/node_modules"
cp "$here/idp.mjs" "$IDP_DIR/"
idp() { node "$IDP_DIR/idp.mjs" "$@"; }

echo "-- the provider: a test CA, its certificate for 198.19.0.2, its signing key"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-idp-ca \
	-keyout "$IDP_DIR/ca.key" -out "$IDP_DIR/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=198.19.0.2 \
	-keyout "$IDP_DIR/idp.key" -out "$IDP_DIR/idp.csr" 2>/dev/null
openssl x509 -req -in "$IDP_DIR/idp.csr" -CA "$IDP_DIR/ca.pem" -CAkey "$IDP_DIR/ca.key" \
	-CAcreateserial -days 2 -extfile <(echo "subjectAltName=IP:198.19.0.2") \
	-out "$IDP_DIR/idp.pem" 2>/dev/null
idp keys "$IDP_DIR/jwks.json"

# the gateway with api.oidc; the provider behind it on 198.19.0.0/24
eval "$(declare -f gateway_configure | sed '1s/gateway_configure/gateway_configure_base/')"
gateway_configure() {
	gateway_configure_base
	sed -i "s|^api = { |api = { admin_listen = \"198.18.0.1:8444\"; \
panel_dir = \"$here/../../plugins/api/panel\"; oidc = { issuer = \"$ISSUER\"; client_id = \"meshgate\"; \
ca_file = \"$IDP_DIR/ca.pem\"; login_failures = 8; \
roles = { developers = \"developer\"; vpn-admins = \"admin\"; }; \
admin_roles = { vpn-admins = \"admin\"; vpn-ops = \"operator\"; }; }; |" "$WORK/gw/meshgated.conf"
}
ns_add IDP idp
gateway_up
ns_link "$GW" 198.19.0.1/24 "$IDP" 198.19.0.2/24
ns_exec "$IDP" ip route add default via 198.19.0.1
ns_exec "$CL" ip route add 198.19.0.0/24 via 198.18.0.1
ip netns exec "$IDP" node "$IDP_DIR/idp.mjs" serve "$ISSUER" 198.19.0.2 9443 "$IDP_DIR/idp.pem" \
	"$IDP_DIR/idp.key" "$IDP_DIR/jwks.json" https://198.18.0.1:8444/auth/oidc/callback \
	>"$WORK/idp.log" 2>&1 &
bg_track $!
wait_for 20 ns_exec "$CL" curl -sf --cacert "$IDP_DIR/ca.pem" "$ISSUER/.well-known/openid-configuration" ||
	fail "the provider does not answer: $(cat "$WORK/idp.log")"
ok "the provider answers on $ISSUER (TLS verified against the test CA)"

API=https://198.18.0.1:8443/api/v1
BODY=$WORK/body
# gw METHOD PATH [JSON]: from the client's namespace, the gateway's CA the
# only trust; the status, the answer in $BODY
gw() {
	local args=()
	[ $# -ge 3 ] && args+=(-H "Content-Type: application/json" --data-binary "$3")
	ns_exec "$CL" curl -sS --max-time 15 --cacert "$STATE/ca.pem" -o "$BODY" -w '%{http_code}' \
		-X "$1" "${args[@]}" "$API$2"
}
py() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$BODY" "$1"; }
users() { ctl --json user list | python3 -c 'import json,sys; print(sorted((u["name"], u["role"]) for u in json.load(sys.stdin)["users"]))'; }
devices() { ctl --json device list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["devices"]))'; }
# login_up IFNAME: meshgate up --login in the client's namespace, in the
# background (LOGIN_PID), its output in $WORK/IFNAME.log
login_up() {
	ip netns exec "$CL" "$MESHGATE" up --login --server https://198.18.0.1:8443 \
		--ca "$STATE/ca.pem" --interface "$1" --backend userspace --no-agent \
		"${CLIENT_DIRS[@]}" >"$WORK/$1.log" 2>&1 &
	LOGIN_PID=$!
	bg_track $LOGIN_PID
}
# the address with the code that `meshgate up --login` printed
login_url() { sed -n 's/^meshgate: (or open \(.*\))$/\1/p' "$WORK/$1.log"; }
has_login_url() { [ -n "$(login_url "$1")" ]; }
# enroll TOKEN: POST /api/v1/oidc/enroll as a device would
enroll() { gw POST /oidc/enroll "{\"id_token\": \"$1\", \"name\": \"laptop\"}"; }
claims() { # claims SUB USERNAME AUD GROUPS_JSON [EXTRA_JSON_MEMBERS]
	echo "{\"iss\": \"$ISSUER\", \"sub\": \"$1\", \"preferred_username\": \"$2\", \"aud\": \"$3\", \"groups\": $4${5:+, $5}}"
}

echo "-- the gateway names the provider"
check "GET /api/v1/oidc" 200 "$(gw GET /oidc)"
check "its issuer" "$ISSUER" "$(py 'd["issuer"]')"
check "the devices' client" meshgate "$(py 'd["client_id"]')"
check "the device authorization endpoint" "$ISSUER/device/auth" "$(py 'd["device_authorization_endpoint"]')"
check "the provider's CA for the devices" True "$(py '"BEGIN CERTIFICATE" in d["ca"]')"
grep -q "identity login (OIDC) with $ISSUER" "$WORK/gw/meshgated.log" || fail "no startup line"

echo "-- refused, with the reason, and nothing enrolled"
before_users=$(users)
check "a forged token (a key not the provider's, its kid): 403" 403 \
	"$(enroll "$(idp token "$IDP_DIR/jwks.json" "$(claims sub-alice alice meshgate '["developers"]')" forge)")"
check "the reason" "the ID token's signature does not verify with the provider's keys" "$(py 'd["message"]')"
check "the error code" identity_refused "$(py 'd["error"]')"
now=$(date +%s)
check "an expired token: 403" 403 "$(enroll "$(idp token "$IDP_DIR/jwks.json" \
	"$(claims sub-alice alice meshgate '["developers"]' "\"iat\": $((now - 7200)), \"exp\": $((now - 3600))")")")"
check "the reason" "the ID token expired at $(date -u -d @$((now - 3600)) '+%Y-%m-%d %H:%M:%S') UTC" "$(py 'd["message"]')"
check "a token for another client: 403" 403 \
	"$(enroll "$(idp token "$IDP_DIR/jwks.json" "$(claims sub-alice alice other-app '["developers"]')")")"
check "the reason" "the ID token's audience is other-app, not meshgate" "$(py 'd["message"]')"
check "not a token at all: 400" 400 "$(enroll 'not a token')"
check "no user made" "$before_users" "$(users)"
check "no device enrolled" 0 "$(devices)"

echo "-- meshgate up --login: alice logs in in the browser"
login_up "${TAG}a"
wait_for 20 has_login_url "${TAG}a" || fail "no login address: $(cat "$WORK/${TAG}a.log")"
grep -q "^meshgate: to log in, open $ISSUER/device and enter the code " "$WORK/${TAG}a.log" ||
	fail "the login's first line: $(cat "$WORK/${TAG}a.log")"
ns_exec "$CL" node "$IDP_DIR/idp.mjs" browse "$(login_url "${TAG}a")" alice "$SHOTS" ||
	fail "the browser could not log in: $(cat "$WORK/idp.log")"
wait "$LOGIN_PID" || fail "meshgate up --login failed: $(cat "$WORK/${TAG}a.log")"
grep -q "^meshgate: ${TAG}a is up" "$WORK/${TAG}a.log" || fail "$(cat "$WORK/${TAG}a.log")"
ok "meshgate up --login enrolled the device and brought the tunnel up"
check "alice is a user with her group's role" "[('alice', 'developer')]" "$(users)"
check "her device" 1 "$(devices)"
wait_for 10 ns_exec "$CL" ping -c1 -W1 10.20.0.10 || fail "no ping to the service through the tunnel"
ok "the device pings the service through the tunnel"
check "and talks to it" "svc:hello" "$(echo hello | ns_exec "$CL" ncat --no-shutdown -w 3 10.20.0.10 7000 || true)"
grep -q "oidc alice" <(ctl --json audit list 2>/dev/null || ctl --json audit) ||
	fail "the audit does not show the login's user: $(ctl audit 2>&1 | tail -3)"
ok "the audit records the user the login made, by 'oidc alice'"

echo "-- a returning person keeps one user (bound to iss and sub)"
check "alice again, named otherwise at the provider now: 200" 200 \
	"$(enroll "$(idp token "$IDP_DIR/jwks.json" "$(claims sub-alice alice.smith meshgate '["developers"]')")")"
check "the redeem's answer" True "$(py '"register_token" in d and "address" in d')"
check "still one user, alice" "[('alice', 'developer')]" "$(users)"
check "another person named alice: 403" 403 \
	"$(enroll "$(idp token "$IDP_DIR/jwks.json" "$(claims sub-mallory alice meshgate '["developers"]')")")"
check "the reason" "the user name 'alice' is another person's at the provider" "$(py 'd["message"]')"
check "no user made" "[('alice', 'developer')]" "$(users)"

echo "-- bob logs in, but no group of his has a role"
devices_before=$(devices)
login_up "${TAG}b"
wait_for 20 has_login_url "${TAG}b" || fail "no login address: $(cat "$WORK/${TAG}b.log")"
ns_exec "$CL" node "$IDP_DIR/idp.mjs" browse "$(login_url "${TAG}b")" bob "$SHOTS" >/dev/null ||
	fail "the browser could not log in bob"
rc=0
wait "$LOGIN_PID" || rc=$?
check "meshgate up --login exits 12 (login refused)" 12 "$rc"
grep -q 'identity refused: none of your groups (\["staff","sales"\]) has a role here' "$WORK/${TAG}b.log" ||
	fail "the reason is not shown: $(cat "$WORK/${TAG}b.log")"
ok "the reason is shown: $(tail -1 "$WORK/${TAG}b.log")"
check "no user made" "[('alice', 'developer')]" "$(users)"
check "no device enrolled" "$devices_before" "$(devices)"
[ ! -e "$WORK/cl/etc/${TAG}b.conf" ] || fail "a config was left"

echo "-- Ctrl-C while waiting for the login"
login_up "${TAG}c"
wait_for 20 grep -q "waiting for the login" "$WORK/${TAG}c.log" || fail "$(cat "$WORK/${TAG}c.log")"
kill -INT "$LOGIN_PID"
rc=0
wait "$LOGIN_PID" || rc=$?
check "meshgate up --login stops at Ctrl-C (exit 12)" 12 "$rc"
grep -q "interrupted" "$WORK/${TAG}c.log" || fail "$(cat "$WORK/${TAG}c.log")"
[ ! -e "$WORK/cl/etc/${TAG}c.conf" ] || fail "a config was left"
ok "nothing left"

echo "-- admins sign in to the panel through the provider"
ADMIN=https://198.18.0.1:8444
check "login-options offers the SSO sign-in" true \
	"$(ns_exec "$CL" curl -sS --cacert "$STATE/ca.pem" "$ADMIN/api/v1/admin/login-options" |
		python3 -c 'import json,sys; print(str(json.load(sys.stdin)["oidc"]).lower())')"
location=$(ns_exec "$CL" curl -sS --cacert "$STATE/ca.pem" -o /dev/null -w '%{redirect_url}' "$ADMIN/auth/oidc/login")
case "$location" in
"$ISSUER/auth?"*code_challenge_method=S256*) ;;
*) fail "/auth/oidc/login sends to '$location'" ;;
esac
for part in response_type=code client_id=meshgate state= nonce= code_challenge= \
	"redirect_uri=https%3A%2F%2F198.18.0.1%3A8444%2Fauth%2Foidc%2Fcallback"; do
	[[ "$location" == *"$part"* ]] || fail "no $part in $location"
done
ok "/auth/oidc/login: 302 to the provider with a code request, state, nonce and PKCE S256"
check "a callback of an unknown state: 400" 400 "$(ns_exec "$CL" curl -sS --cacert "$STATE/ca.pem" \
	-o "$BODY" -w '%{http_code}' "$ADMIN/auth/oidc/callback?code=x&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")"
signin() { ns_exec "$CL" node "$IDP_DIR/idp.mjs" signin "$ADMIN/" "$1" "$SHOTS"; }
check "carol (vpn-admins) lands on the panel signed in as admin" "who: oidc carol (admin)" "$(signin carol)"
check "dave (vpn-ops) as operator" "who: oidc dave (operator)" "$(signin dave)"
out=$(signin alice)
[[ "$out" == *'none of your groups'*'has a role here'* ]] || fail "alice (no admin group): $out"
ok "alice (developers, no admin group) is refused: ${out:0:160}"
grep -q "oidc carol signed in from" "$WORK/gw/meshgated.log" || fail "no sign-in line in the log"

echo "-- refused logins from one address are limited"
forged=$(idp token "$IDP_DIR/jwks.json" "$(claims sub-alice alice meshgate '["developers"]')" forge)
# the budget refills at login_failures a minute: a slow machine's requests
# may earn one back now and then, so up to 30 tries
statuses=""
for _ in $(seq 30); do
	status=$(enroll "$forged")
	statuses+="$status "
	[ "$status" = 429 ] && break
done
[ "$status" = 429 ] || fail "never limited: $statuses"
check "the limit's answer" rate_limited "$(py 'd["error"]')"
ok "limited after api.oidc.login_failures refusals ($statuses)"
echo "all OIDC checks passed"
