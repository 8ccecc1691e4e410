# Secret hygiene checks for bash tests (issue 15: keys never in logs, in
# etcd, or in files of another mode than 0600). Source it.
#
#   keys_nowhere DIR KEY...  # none of the private keys (base64: a WireGuard
#                            # key, or the PKCS#8 DER of a TLS key) is in any file
#                            # under DIR: as base64 (also the first line of
#                            # a PEM), raw bytes or hex; lists where otherwise.
#                            # KEYS_NOWHERE_SKIP=PATH: but there (a device's
#                            # own config, which holds its key in use)
#   state_private DIR        # every file under DIR is 0600 and every
#                            # directory 0700, but certificates (*.pem):
#                            # public, 0644

keys_nowhere() {
	local dir=$1
	shift
	printf '%s\n' "$@" | sort -u | python3 -c '
import base64, os, sys
keys = [l.strip() for l in sys.stdin if l.strip()]
forms = set()
for k in keys:
    raw = base64.b64decode(k)
    # a PEM breaks its base64 every 64 characters: its first line is enough
    forms |= {k.encode(), k[:64].encode(), raw, raw.hex().encode()}
found = []
skip = os.environ.get("KEYS_NOWHERE_SKIP", "")
for top, dirs, files in os.walk(sys.argv[1]):
    if skip and (top == skip or top.startswith(skip + "/")):
        continue
    for f in files:
        path = os.path.join(top, f)
        if not os.path.isfile(path) or os.path.islink(path):
            continue
        data = open(path, "rb").read()
        # etcd preallocates its WAL files: past the last byte written, zeros
        data = data[:len(data.rstrip(b"\0")) + 64]
        if any(form in data for form in forms):
            found.append(path)
if found:
    print("a private key in: " + ", ".join(found))
    sys.exit(1)' "$dir"
}

state_private() {
	local bad
	bad=$(find "$1" \( -type f ! -name '*.pem' ! -perm 600 \) -o \( -type d ! -perm 700 \))
	[ -z "$bad" ] || {
		echo "not 0600 (files) / 0700 (dirs): $(stat -c '%a %n' $bad)"
		return 1
	}
}
