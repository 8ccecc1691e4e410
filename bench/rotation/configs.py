"""The simulated devices of bench/rotation/run.sh: each re-reads its device
config (GET /api/v1/device/config over verified TLS, from its own tunnel
address, as its agent does when the config epoch changes), all at once,
CONCURRENCY at a time. Started ahead: writes READY_FILE, starts at GO_FILE.
Prints "READS OK SECONDS OK_WITHIN_LEAD": the last, the reads answered within
LEAD seconds of the start (those devices knew of the switch before it came).
usage: configs.py READY_FILE GO_FILE CA_FILE API_HOST:PORT CONCURRENCY LEAD ADDRESS_FILE"""
import concurrent.futures
import http.client
import os
import ssl
import sys
import time

ready, go, ca, api, concurrency = sys.argv[1:6]
lead = float(sys.argv[6])
addresses = open(sys.argv[7]).read().split()
host, port = api.rsplit(":", 1)
tls = ssl.create_default_context(cafile=ca)
tls.check_hostname = False  # the certificate names the public address


def read(address):
    """Seconds from the start until this device's config was answered,
    None when it was not."""
    conn = http.client.HTTPSConnection(host, int(port), context=tls, timeout=30,
                                       source_address=(address, 0))
    try:
        conn.request("GET", "/api/v1/device/config")
        resp = conn.getresponse()
        resp.read()
        return time.monotonic() - t0 if resp.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.002)
t0 = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(int(concurrency)) as pool:
    answered = [t for t in pool.map(read, addresses) if t is not None]
print(len(addresses), len(answered), round(time.monotonic() - t0, 3),
      sum(t <= lead for t in answered), flush=True)
