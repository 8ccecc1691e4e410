#!/usr/bin/python3
"""Tools of the slow-attack test (slow_attack.sh).

  slow_client.py attack HOST PORT SOURCES CONNS SECONDS
      CONNS connections spread over the SOURCES addresses (comma separated),
      for SECONDS: half only connect (an idle TCP connection, no TLS hello),
      half complete TLS then send a request head one byte a second; a
      connection closed by the server is opened again after 0.5 s.
  slow_client.py real HOST PORT CAFILE CODES_FILE
      for each code (one a line): redeem, then register, each on a fresh
      TLS connection; prints each request's time, then "p99 MS"; exits 1
      when a request fails or gets no answer.
  slow_client.py flood HOST PORT CAFILE N
      N redeems of a wrong code over keep-alive connections; prints the
      statuses seen.
"""
import base64, http.client, json, os, socket, ssl, sys, threading, time


def attack(host, port, sources, conns, seconds):
    end = time.time() + seconds
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    head = b"POST /api/v1/redeem HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"

    def one(i):
        src = sources[i % len(sources)]
        tls = i % 2 == 1
        while time.time() < end:
            s = socket.socket()
            s.settimeout(3)
            try:
                s.bind((src, 0))
                s.connect((host, port))
                if tls:
                    s = ctx.wrap_socket(s)
                n = 0
                while time.time() < end:
                    if tls:
                        s.send(head[n % len(head):n % len(head) + 1])
                        n += 1
                    else:  # idle: does the server notice?
                        s.settimeout(1)
                        try:
                            if s.recv(1) == b"":
                                break
                        except socket.timeout:
                            continue
                    time.sleep(1)
            except OSError:
                pass
            finally:
                s.close()
            time.sleep(0.5)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, end - time.time() + 5))


def post(host, port, ctx, path, body):
    c = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
    t0 = time.monotonic()
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    ms = (time.monotonic() - t0) * 1000
    c.close()
    return r.status, json.loads(data or b"{}"), ms


def real(host, port, cafile, codes_file):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False  # the test reaches it by address
    times, failed = [], 0
    for n, code in enumerate(open(codes_file).read().split()):
        key = base64.b64encode(os.urandom(32)).decode()
        try:
            st, rep, ms = post(host, port, ctx, "/api/v1/redeem", {"code": code, "name": "d%d" % n})
            times.append(ms)
            print("redeem %d: %d in %.0f ms" % (n, st, ms), flush=True)
            if st != 200:
                failed += 1
                continue
            st, _, ms = post(host, port, ctx, "/api/v1/register",
                             {"device_id": rep["device_id"], "register_token": rep["register_token"],
                              "public_key": key, "address": rep["address"]})
            times.append(ms)
            print("register %d: %d in %.0f ms" % (n, st, ms), flush=True)
            failed += st != 200
        except (OSError, http.client.HTTPException) as e:
            print("request %d: no answer: %s" % (n, e), flush=True)
            failed += 1
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] if times else float("inf")
    print("real client: %d requests, %d failed, p99 %.0f ms, max %.0f ms" %
          (len(times), failed, p99, times[-1] if times else 0))
    print("p99 %.0f" % p99)
    sys.exit(1 if failed else 0)


def flood(host, port, cafile, n):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    statuses = {}
    c = None
    for i in range(n):
        if c is None:
            c = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
        try:
            c.request("POST", "/api/v1/redeem", '{"code": "AAAA-BBBB-CCCC-DDDD"}',
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.getheader("Connection", "").lower() == "close":
                c.close()
                c = None
        except (OSError, http.client.HTTPException):
            c.close()
            c = None
    print(" ".join("%s:%d" % kv for kv in sorted(statuses.items())))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "attack":
        attack(sys.argv[2], int(sys.argv[3]), sys.argv[4].split(","), int(sys.argv[5]),
               float(sys.argv[6]))
    elif cmd == "real":
        real(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif cmd == "flood":
        flood(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
