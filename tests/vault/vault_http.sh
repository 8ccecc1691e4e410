#!/bin/bash
# Runs test_vault_http against the Vault stand-in (NOT Vault: see
# vault_standin.py) on loopback with a token TTL of 4 s.
# usage: vault_http.sh TEST_BINARY
set -euo pipefail
here=$(dirname "$(realpath "$0")")
source "$here/standin.sh"
dir=$(mktemp -d /tmp/vault-http.XXXXXX)
trap 'standin_stop; rm -rf "$dir"' EXIT
standin_certs "$dir"
port=$((20000 + $$ % 20000))
standin_start "$dir" "$port" 4
STANDIN_DIR=$dir STANDIN_PORT=$port STANDIN_PID=$STANDIN_PID "$1"
# the stand-in's log names requests and statuses, never a body: no key there
! grep -q '"key"' "$dir/standin.log"
