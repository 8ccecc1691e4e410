# The Vault stand-in (vault_standin.py: NOT Vault, a test double with
# Vault's API shapes) for tests; source it. `standin_certs DIR` makes a CA
# and a server certificate for 127.0.0.1 with openssl, and the AppRole
# credentials (DIR/secret_id, 0600); `standin_start DIR PORT TTL [NS]`
# starts it on 127.0.0.1:PORT (in namespace NS when given) and sets
# STANDIN_PID; `standin_stop` ends it by that pid; `standin_gateway DIR PORT`
# makes the next gateway_up (tests/e2e/gateway.sh) keep its keys there.

STANDIN_ROLE_ID=meshgate-test-role

standin_certs() {
	local dir=$1
	mkdir -p "$dir"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=stand-in test CA" \
		-keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
		-keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\n' >"$dir/san.ext"
	openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
		-CAcreateserial -days 2 -extfile "$dir/san.ext" -out "$dir/server.pem" 2>/dev/null
	# a CA that did not sign it: what an impostor would present
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=other CA" \
		-keyout "$dir/other.key" -out "$dir/other-ca.pem" 2>/dev/null
	(umask 077 && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/secret_id")
}

standin_start() {
	local dir=$1 port=$2 ttl=$3 ns=${4:-}
	local run=()
	[ -n "$ns" ] && run=(ip netns exec "$ns")
	rm -f "$dir/standin.out"
	"${run[@]}" python3 "$(dirname "${BASH_SOURCE[0]}")/vault_standin.py" --port "$port" \
		--cert "$dir/server.pem" --key "$dir/server.key" --role-id "$STANDIN_ROLE_ID" \
		--secret-id "$(cat "$dir/secret_id")" --ttl "$ttl" --log "$dir/standin.log" \
		>"$dir/standin.out" 2>&1 &
	STANDIN_PID=$!
	local i
	for i in $(seq 50); do
		grep -q ready "$dir/standin.out" 2>/dev/null && return 0
		sleep 0.1
	done
	cat "$dir/standin.out" >&2
	return 1
}

standin_stop() {
	[ -n "${STANDIN_PID:-}" ] || return 0
	kill "$STANDIN_PID" 2>/dev/null || true
	wait "$STANDIN_PID" 2>/dev/null || true
	STANDIN_PID=
}

# standin_gateway DIR PORT: certificates and credentials in DIR, the
# gateway's config told `secrets = "vault"` (GATEWAY_EXTRA_CONF, appended),
# and the stand-in started in the gateway's namespace before meshgated, once.
standin_gateway() {
	STANDIN_DIR=$1 STANDIN_PORT=$2
	standin_certs "$STANDIN_DIR"
	GATEWAY_EXTRA_CONF="${GATEWAY_EXTRA_CONF:-}
secrets = \"vault\";
vault = { address = \"https://127.0.0.1:$STANDIN_PORT\"; ca = \"$STANDIN_DIR/ca.pem\";
          role_id = \"$STANDIN_ROLE_ID\"; secret_id_file = \"$STANDIN_DIR/secret_id\";
          mount = \"secret\"; path = \"meshgate\"; schedule = \"24h\"; grace = \"10m\"; };"
	eval "gateway_start_meshgated() $(declare -f gateway_start | tail -n +2)"
	gateway_start() {
		if [ -z "${STANDIN_PID:-}" ]; then
			standin_start "$STANDIN_DIR" "$STANDIN_PORT" 3600 "$GW" ||
				fail "the stand-in did not start"
			bg_track "$STANDIN_PID"
		fi
		gateway_start_meshgated
	}
}
