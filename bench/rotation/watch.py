"""Watches a gateway key's switch through wireguard-go's UAPI sockets
(/var/run/wireguard/IF.sock, reachable from any namespace): the gateway's
private key, and each device's peers. Started ahead (Python may take long
to start on a loaded machine): it writes READY_FILE, waits for GO_FILE,
which holds the gateway's new public key (hex), then polls every 5 ms and
prints, in ms from GO_FILE, "SWITCH_MS ALL_MS": when the gateway's key
changed and when every device had exactly that key as its one peer (-1:
not within LIMIT seconds). Nothing is read for the first QUIET seconds
(before the switch can come): every read of the gateway makes
wireguard-go write out all its peers (10,000 of them: megabytes), and
reading it every 5 ms through a 100 s lead starved the gateway's own
packets and its switch. Around the switch the gateway is read every 50 ms.
usage: watch.py LIMIT_S QUIET_S READY_FILE GO_FILE GATEWAY_IF DEVICE_IF..."""
import os
import socket
import sys
import time

limit, quiet = float(sys.argv[1]), float(sys.argv[2])
ready, go, gateway, devices = sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]


def uapi_get(ifname):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    try:
        s.connect("/var/run/wireguard/%s.sock" % ifname)
        s.sendall(b"get=1\n\n")
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        return data.decode()
    except OSError:
        return ""
    finally:
        s.close()


def private_key(ifname):
    """The interface's private key: the dump's first line, without reading
    on through a gateway's 10,000 peers."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    try:
        s.connect("/var/run/wireguard/%s.sock" % ifname)
        s.sendall(b"get=1\n\n")
        data = b""
        while b"\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return field(data.decode(errors="replace"), "private_key")
    except OSError:
        return []
    finally:
        s.close()


def field(text, name):
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(name + "=")]


first_key = private_key(gateway)
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.002)
t0 = time.monotonic()
new_public = open(go).read().strip()
switch_ms = all_ms = -1
gateway_read = 0
time.sleep(quiet)
while time.monotonic() - t0 < limit and all_ms < 0:
    now = (time.monotonic() - t0) * 1000
    if switch_ms < 0 and now - gateway_read >= 50:
        gateway_read = now
        if private_key(gateway) not in ([], first_key):
            switch_ms = now
    if all(field(uapi_get(d), "public_key") == [new_public] for d in devices):
        all_ms = now
    time.sleep(0.005)
print(round(switch_ms), round(all_ms), flush=True)
