#!/usr/bin/env python3
"""meshgated under a stand-in service manager: the notify socket
($NOTIFY_SOCKET) and journald's socket are datagram sockets of this test,
in a private mount namespace (the caller's unshare), so nothing of the
host's systemd is touched.

Checks: READY=1 only once the probe plugin's start (2 s) has returned;
WATCHDOG=1 fed at a third of WATCHDOG_USEC; SIGHUP -> RELOADING=1 then
READY=1; SIGTERM -> STOPPING=1; with $JOURNAL_STREAM naming its stderr,
the lines go to the journal with PRIORITY and MESHGATE_PLUGIN.

usage: systemd_notify.py MESHGATED PROBE_PLUGIN WORKDIR"""
import os, signal, socket, struct, subprocess, sys, time

meshgated, probe, work = sys.argv[1:4]
os.makedirs(work + "/plugins", exist_ok=True)
os.symlink(probe, work + "/plugins/meshgate-probe.so")
with open(work + "/m.conf", "w") as f:
    f.write(f'state_dir = "{work}/state";\nsocket = "{work}/bus.sock";\n'
            f'plugin_dir = "{work}/plugins";\nplugins = ["probe"];\n'
            'probe = { start_sleep_ms = 2000; };\n')

def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)

notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(work + "/notify.sock")
# journald's socket, where sd_journal_send writes: our tmpfs over it
os.makedirs("/run/systemd/journal", exist_ok=True)
journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
journal.bind("/run/systemd/journal/socket")

stderr = open(work + "/stderr", "w")
st = os.fstat(stderr.fileno())
env = dict(os.environ, NOTIFY_SOCKET=work + "/notify.sock", WATCHDOG_USEC="600000",
           JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
started = time.monotonic()
daemon = subprocess.Popen([meshgated, "--config", work + "/m.conf"], stderr=stderr, env=env)

def messages(until, want=None):
    """Notifications until `until` (monotonic) or `want` arrives."""
    got = []
    while time.monotonic() < until:
        notify.settimeout(max(0.01, until - time.monotonic()))
        try:
            data = notify.recv(4096).decode()
        except socket.timeout:
            break
        got.append((time.monotonic(), data))
        if want and want in data:
            break
    return got

try:
    got = messages(started + 10, "READY=1")
    ready = [t for t, m in got if "READY=1" in m]
    if not ready:
        fail("no READY=1 within 10 s: %r" % got)
    if ready[0] - started < 1.9:
        fail("READY=1 %.2f s after the start, before the probe's start (2 s) returned"
             % (ready[0] - started))
    print("READY=1 after %.2f s (the probe plugin starts in 2 s)" % (ready[0] - started))

    got = messages(time.monotonic() + 1.0)
    feeds = [m for _, m in got if m == "WATCHDOG=1"]
    if len(feeds) < 3:
        fail("WATCHDOG=1 %d times in 1 s with WATCHDOG_USEC=600000 (fed every 200 ms)"
             % len(feeds))
    print("WATCHDOG=1 %d times in 1 s" % len(feeds))

    daemon.send_signal(signal.SIGHUP)
    got = messages(time.monotonic() + 5, "READY=1")
    states = [m for _, m in got if m != "WATCHDOG=1"]
    if states[:2] != ["RELOADING=1", "READY=1"]:
        fail("SIGHUP gave %r, not RELOADING=1 then READY=1" % states)
    print("SIGHUP: RELOADING=1, READY=1")

    daemon.send_signal(signal.SIGTERM)
    got = messages(time.monotonic() + 5, "STOPPING=1")
    if not any(m == "STOPPING=1" for _, m in got):
        fail("no STOPPING=1 on SIGTERM")
    if daemon.wait(10) != 0:
        fail("meshgated exited with %d" % daemon.returncode)
    print("SIGTERM: STOPPING=1, exit 0")
finally:
    if daemon.poll() is None:
        daemon.kill()
        daemon.wait()

# the journal's native protocol: KEY=VALUE lines, or KEY\n + 64-bit length
# + value for values with a newline
entries = []
journal.setblocking(False)
while True:
    try:
        data = journal.recv(65536)
    except BlockingIOError:
        break
    fields, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            k = line
            n = struct.unpack("<Q", data[nl + 1:nl + 9])[0]
            v = data[nl + 9:nl + 9 + n]
            i = nl + 9 + n + 1
        fields[k.decode()] = v.decode(errors="replace")
    entries.append(fields)
core_lines = [e for e in entries if e.get("MESHGATE_PLUGIN") == "core"]
if not core_lines:
    fail("the journal got %d entries, none from the core: %r" % (len(entries), entries[:3]))
for e in entries:
    if (e.get("SYSLOG_IDENTIFIER") != "meshgated" or e.get("PRIORITY") not in "0123467"
            or not e.get("MESSAGE", "").startswith("[%s] " % e.get("MESHGATE_PLUGIN"))):
        fail("an entry without its identifier, priority or plugin field: %r" % e)
if os.path.getsize(work + "/stderr"):
    fail("lines went to stderr although it is the journal's stream")
print("journal: %d entries, each with MESHGATE_PLUGIN (%s), e.g. %r"
      % (len(entries), ", ".join(sorted({e["MESHGATE_PLUGIN"] for e in entries})),
         core_lines[0]["MESSAGE"]))
print("systemd_notify: ok")
