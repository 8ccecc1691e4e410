#!/bin/bash
# The admin API (issue 16) on a real gateway in namespaces (wireguard,
# preauth, api; tests/e2e/gateway.sh): tokens from meshgatectl, curl with
# the bearer token over verified TLS on the default admin listener (the VPN
# gateway address, 10.0.0.1:8444), roles, bad tokens, bodies and paths,
# a code from POST users that `meshgate up` accepts, the device list's
# paging and search, the audit, no token in plain text anywhere, and the
# limit of failed authentications.
# usage: admin.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
source "$here/../lib/netns.sh"
source "$here/../e2e/gateway.sh"
netns_init

# the failures' budget is small so that the last step reaches it quickly
eval "$(declare -f gateway_configure | sed '1s/gateway_configure/gateway_configure_base/')"
gateway_configure() {
	gateway_configure_base
	sed -i 's/^api = { /api = { admin_auth_failures = 5; /' "$WORK/gw/meshgated.conf"
}
gateway_up
LOG=$WORK/gw/meshgated.log
ADMIN=https://10.0.0.1:8444/api/v1/admin
BODY=$WORK/body

ok() { echo "ok   - $*"; }
check() { # check DESCRIPTION EXPECTED ACTUAL
	[ "$2" = "$3" ] || fail "$1: expected '$2', got '$3' ($(head -c 400 "$BODY" 2>/dev/null))"
	ok "$1"
}
# api TOKEN METHOD PATH [JSON]: the status; the answer goes to $BODY. From
# the gateway's namespace, the CA as the only trust anchor.
api() {
	local token=$1 method=$2 path=$3 args=()
	[ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
	[ $# -ge 4 ] && args+=(-H "Content-Type: application/json" --data-binary "$4")
	ns_exec "$GW" curl -sS --max-time 10 --cacert "$STATE/ca.pem" -o "$BODY" \
		-w '%{http_code}' -X "$method" "${args[@]}" "$ADMIN$path"
}
# py EXPR: EXPR of the JSON answer in $BODY (as `d`)
py() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$BODY" "$1"; }
users() { ctl --json user list | python3 -c 'import json,sys; print(sorted(u["name"] for u in json.load(sys.stdin)["users"]))'; }

wait_for 10 ns_exec "$GW" bash -c "ss -Htln | grep -q '10.0.0.1:8444'" ||
	fail "no admin listener on 10.0.0.1:8444: $(grep -i admin "$LOG" | tail -3)"
ok "the admin API listens on the VPN gateway address by default"
check "and on no other address" 10.0.0.1:8444 "$(ns_exec "$GW" ss -Htln '( sport = :8444 )' | awk '{print $4}' | sort -u | tr '\n' ' ' | xargs)"
code=$(ns_exec "$CL" curl -s -o /dev/null -w '%{http_code}' --max-time 3 -k \
	https://198.18.0.1:8444/api/v1/admin/users || true)
check "not on the public side" 000 "$code"

echo "-- tokens"
ADM=$(ctl token add ops-admin --role admin 2>/dev/null)
[[ "$ADM" == mgt_* ]] || fail "token add printed '$ADM'"
VIEW=$(ctl token add ro --role viewer --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
OPER=$(ctl token add helpdesk --role operator --expires 30d --json |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
ctl token add ops-admin --role admin >/dev/null 2>&1 && fail "a second token of one name was made"
ctl token add bad --role root >/dev/null 2>&1 && fail "a token of an unknown role was made"
ctl --json token list | grep -q '"helpdesk"' || fail "token list: $(ctl token list)"
ctl --json token list | grep -q "$VIEW" && fail "token list shows a token"
ok "token add, refused twice and with an unknown role, list without the tokens"

echo "-- reading and roles"
check "GET users with the admin token" 200 "$(api "$ADM" GET /users)"
py 'd["users"]' >/dev/null
check "GET users with the viewer token" 200 "$(api "$VIEW" GET /users)"
before=$(users)
check "the viewer cannot POST users" 403 "$(api "$VIEW" POST /users '{"name":"eve","role":"developer"}')"
check "403's error shape" forbidden "$(py 'd["error"]["code"]')"
check "the operator cannot POST users" 403 "$(api "$OPER" POST /users '{"name":"eve","role":"developer"}')"
check "no token: 401" 401 "$(api "" POST /users '{"name":"eve","role":"developer"}')"
check "a wrong token: 401" 401 "$(api "mgt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" POST /users '{"name":"eve","role":"developer"}')"
check "401's error shape" unauthorized "$(py 'd["error"]["code"]')"
check "users unchanged by the refused requests" "$before" "$(users)"

echo "-- bad requests change nothing"
check "not JSON: 400" 400 "$(api "$ADM" POST /users '{"name":')"
check "an unknown member: 400 naming it" 400 "$(api "$ADM" POST /users '{"name":"eve","role":"developer","admin":true}')"
check "the field of the error" admin "$(py 'd["error"].get("field")')"
check "an unknown role: 400" 400 "$(api "$ADM" POST /users '{"name":"eve","role":"nope"}')"
check "an unknown path: 404" 404 "$(api "$ADM" GET /nothing)"
check "a wrong method: 405" 405 "$(api "$ADM" PUT /users '{}')"
check "an unknown query parameter: 400" 400 "$(api "$ADM" GET '/devices?sort=name')"
check "a limit that is not a number: 400" 400 "$(api "$ADM" GET '/devices?limit=ten')"
big=$(python3 -c 'print("{\"name\":\"" + "x"*20000 + "\",\"role\":\"developer\"}")')
check "a body over max_body: 413" 413 "$(api "$ADM" POST /users "$big")"
check "users unchanged by the bad requests" "$before" "$(users)"

echo "-- a user and its code, through the admin API, onboard a device"
check "POST users" 200 "$(api "$ADM" POST /users '{"name":"alice","role":"developer"}')"
CODE=$(py 'd["code"]')
[ -n "$CODE" ] || fail "no code in $(cat "$BODY")"
client_up "$CL" "${TAG}c" "$CODE" >"$WORK/up.log" 2>&1 || fail "meshgate up: $(cat "$WORK/up.log")"
ok "meshgate up accepts the code POST users made"
check "PATCH users/alice role" 200 "$(api "$ADM" PATCH /users/alice '{"role":"developer"}')"
check "PATCH with both changes: 400" 400 "$(api "$ADM" PATCH /users/alice '{"role":"developer","access_until":"never"}')"
check "POST users/alice/codes by the operator" 200 "$(api "$OPER" POST /users/alice/codes '{}')"
SECOND=$(py 'd["code"]')
check "DELETE codes/CODE revokes it" 200 "$(api "$OPER" DELETE "/codes/$SECOND")"
check "the code is revoked" revoked "$(py 'd["state"]')"

echo "-- the device list: paging and search, done by preauth"
"$build/bench/preload/bench_preload" "$WORK/gw/bus.sock" 25 pg 2 >/dev/null
check "first page" 200 "$(api "$VIEW" GET '/devices?limit=10')"
check "10 devices on it" 10 "$(py 'len(d["devices"])')"
NEXT=$(py 'd["next"]')
FIRST=$(py '",".join(x["id"] for x in d["devices"])')
check "second page" 200 "$(api "$VIEW" GET "/devices?limit=10&after=$NEXT")"
SECOND_PAGE=$(py '",".join(x["id"] for x in d["devices"])')
python3 -c 'import sys; a=set(sys.argv[1].split(",")); b=set(sys.argv[2].split(",")); sys.exit(bool(a&b))' \
	"$FIRST" "$SECOND_PAGE" || fail "pages overlap"
check "the pages go on in id order" 1 "$(python3 -c 'import sys; print(int(sys.argv[1] < sys.argv[2].split(",")[0]))' "$NEXT" "$SECOND_PAGE")"
check "the last page" 200 "$(api "$VIEW" GET "/devices?limit=100&after=$NEXT")"
check "26 devices in all (25 + alice's)" 26 "$(python3 -c 'import sys; print(10 + int(sys.argv[1]))' "$(py 'len(d["devices"])')")"
check "no next after the last page" False "$(py '"next" in d')"
check "search" 200 "$(api "$VIEW" GET '/devices?q=PG17')"
check "the search finds pg17's device, ASCII case ignored" "['pg17']" "$(py '[x["user"] for x in d["devices"]]')"
check "search by the device list's other texts" 200 "$(api "$VIEW" GET '/devices?q=alice')"
check "alice's device" 1 "$(py 'len(d["devices"])')"
DEV=$(py 'd["devices"][0]["id"]')
check "the viewer cannot disable a device" 403 "$(api "$VIEW" POST "/devices/$DEV/disable")"
check "the operator disables it" 200 "$(api "$OPER" POST "/devices/$DEV/disable")"
check "it is disabled" disabled "$(ctl --json device list --user alice | python3 -c 'import json,sys; print(json.load(sys.stdin)["devices"][0]["state"])')"
check "the operator enables it" 200 "$(api "$OPER" POST "/devices/$DEV/enable")"
check "a device that does not exist: 404" 404 "$(api "$OPER" DELETE /devices/0123456789abcdef)"
check "the bus error's shape" not_found "$(py 'd["error"]["code"]')"
check "the operator cannot delete users" 403 "$(api "$OPER" DELETE /users/alice)"

echo "-- tokens expire and are revoked"
SHORT=$(ctl token add brief --role admin --expires 1s 2>/dev/null)
sleep 2.2
check "an expired token: 401" 401 "$(api "$SHORT" GET /users)"
ctl token revoke ro >/dev/null
check "a revoked token: 401" 401 "$(api "$VIEW" GET /users)"

echo "-- the audit"
ctl user add bob --role developer >/dev/null
ctl --json audit --limit 50 >"$WORK/audit.json"
python3 - "$WORK/audit.json" <<'PY' || fail "audit: $(ctl audit --limit 20)"
import json, sys
entries = json.load(open(sys.argv[1]))["entries"]
def find(**want):
    return [e for e in entries if all(e.get(k) == v for k, v in want.items())]
assert find(who="token ops-admin", service="preauth.user.add", result="ok"), "POST users"
assert find(who="token helpdesk", service="preauth.device.disable", result="ok"), "disable"
assert find(who="token helpdesk", service="preauth.code.revoke"), "revoke"
assert all(e["request"].get("code") in (None, "(secret)") for e in entries), "a code in the audit"
assert find(who="meshgatectl (local root)", service="preauth.user.add"), "meshgatectl's user add"
assert find(who="meshgatectl (local root)", service="api.token.revoke"), "meshgatectl's revoke"
assert find(service="preauth.device.del", result="not_found"), "a refused change"
assert not find(service="preauth.user.list"), "reads are not changes"
assert entries == sorted(entries, key=lambda e: e["at"], reverse=True), "newest first"
PY
ok "the audit has the changes with the token's name, meshgatectl's, results, no reads, no codes"
check "the audit through the admin API" 200 "$(api "$ADM" GET '/audit?limit=5')"
check "5 entries" 5 "$(py 'len(d["entries"])')"

echo "-- no token in plain text"
for t in "$ADM" "$VIEW" "$OPER" "$SHORT"; do
	if grep -raq -- "$t" "$STATE" "$LOG"; then fail "a token in state or the log"; fi
	if grep -raq -- "${t#mgt_}" "$STATE" "$LOG"; then fail "a token's secret in state or the log"; fi
done
ok "no token in state nor in the log"

echo "-- failed authentications are limited per source address"
# from an address of its own (198.18.0.1, the gateway's public one): a
# budget nothing else in this test has spent
from_public() { # from_public TOKEN: GET users from 198.18.0.1
	ns_exec "$GW" curl -sS --max-time 10 --cacert "$STATE/ca.pem" --interface 198.18.0.1 \
		-o "$BODY" -w '%{http_code}' -H "Authorization: Bearer $1" "$ADMIN/users"
}
codes=""
for _ in 1 2 3 4 5 6 7; do
	codes="$codes $(from_public "mgt_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB")"
done
check "5 failures, then 429" " 401 401 401 401 401 429 429" "$codes"
check "the 429's error" rate_limited "$(py 'd["error"]["code"]')"
check "the good token from that address waits too" 429 "$(from_public "$ADM")"
# another address is still heard: the device, through its tunnel (back
# since the enable above; its agent may take a few probes to notice)
wait_for 20 ns_exec "$CL" ping -c1 -W1 10.0.0.1 >/dev/null 2>&1 ||
	fail "the device's tunnel did not come back after its enable"
code=$(ns_exec "$CL" curl -sS --max-time 10 --cacert "$STATE/ca.pem" -o "$BODY" -w '%{http_code}' \
	-H "Authorization: Bearer $ADM" "$ADMIN/users")
check "another source address is served" 200 "$code"
echo "all admin API checks passed"
