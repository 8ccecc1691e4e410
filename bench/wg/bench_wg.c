/*
 * Peers on a wireguard-go interface: our way (lib/wg) against the plain way
 * a competent operator would use, measured in the same rounds:
 *
 *   cold load of 10,000 peers   wg_peers_reconcile   vs one `wg setconf`
 *   reconcile, nothing changed  wg_peers_reconcile   vs one `wg syncconf`
 *   one peer added              wg_peers_upsert      vs one `wg set` process
 *   one peer removed            wg_peers_remove      vs one `wg set ... remove`
 *
 * (the last two are what the wireguard plugin does on `device.changed`).
 * Each round starts two fresh wireguard-go, one for us and one for `wg`,
 * with the same peers (the conf file is written once, outside the timers);
 * who goes first alternates. The unchanged reconcile is split into its
 * parts (wireguard-go's answer to get=1, until its last byte; our parse of
 * it; the diff), and it is checked, not claimed, to write nothing: the
 * counts it returns are zero, and the device read back has the same peers,
 * allowed IPs and handshakes. In the first round a third wireguard-go makes
 * a real session with one of the 10,000 peers, which must survive the
 * reconcile (same handshake, traffic going on).
 *
 * Root, in a private network namespace (unshare): nothing outside is
 * touched, the daemons are our children and die with us. Prints figures,
 * never fails on time; exits 1 if a check fails.
 *
 *   bench_wg [--rounds N] [--peers N]     (3 rounds of 10,000 by default)
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nl.h"
#include "rounds.h"
#include "wg.h"
#include "wg_internal.h"
#include "wg_uapi.h"

#define CHANGES 20 /* one-peer adds and removes a round; the round's figure is their median */

extern char **environ;

/* the interfaces of a round: ours, wg's, and the peer that makes a session */
enum { OURS, THEIRS, SESSION, N_IFACES };

struct iface {
	char name[IF_NAMESIZE];
	pid_t pid;
};

static const struct wg_backend *be;
static struct iface ifaces[N_IFACES];
static char err[256];
static char conf_path[64];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this process: what a reconcile costs us, whatever the
 * daemon and the other tenants of the machine do meanwhile. */
static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench_wg: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return -1;
}

static void stop(struct iface *f)
{
	if (f->pid > 0)
		wg_interface_delete(be, f->name, f->pid, NULL, 0);
	f->pid = 0;
}

static void stop_all(void)
{
	for (int i = 0; i < N_IFACES; i++)
		stop(&ifaces[i]);
	if (conf_path[0])
		unlink(conf_path);
}

static void on_signal(int sig)
{
	for (int i = 0; i < N_IFACES; i++)
		if (ifaces[i].pid > 0)
			kill(ifaces[i].pid, SIGTERM);
	if (conf_path[0])
		unlink(conf_path);
	_exit(128 + sig);
}

/* A fresh wireguard-go with that key, on a port of the kernel's choice. */
static int start(struct iface *f, const char *tag, const wg_key priv)
{
	snprintf(f->name, sizeof(f->name), "mgb%s%d", tag, (int)getpid());
	if (wg_interface_create(be, f->name, WG_CREATE_DIE_WITH_PARENT, &f->pid, err,
	                        sizeof(err)) ||
	    wg_device_configure(be, f->name, priv, 0, -1, err, sizeof(err)))
		return fail("%s: %s", f->name, err);
	return 0;
}

/* `wg ARGS...` to its end, launched the lightest way (what a shell does),
 * so that the baseline carries no weight of ours. */
static int run_wg(char *const argv[])
{
	pid_t pid;
	int status;

	if (posix_spawnp(&pid, "wg", NULL, NULL, argv, environ))
		return fail("cannot run wg");
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		return fail("wg %s %s failed", argv[1], argv[2]);
	return 0;
}

static int wg_conf(const char *verb, const char *ifname)
{
	char wg[] = "wg", v[16], ifcopy[IF_NAMESIZE];
	char *argv[] = {wg, v, ifcopy, conf_path, NULL};

	snprintf(v, sizeof(v), "%s", verb);
	snprintf(ifcopy, sizeof(ifcopy), "%s", ifname);
	return run_wg(argv);
}

static void ip_text(char *out, size_t len, const struct wg_allowed_ip *ip)
{
	const uint8_t *b = (const uint8_t *)&ip->ip4;

	snprintf(out, len, "%u.%u.%u.%u/%u", b[0], b[1], b[2], b[3], ip->cidr);
}

/* `wg set IF peer KEY allowed-ips IP`, or `... peer KEY remove`. */
static int wg_set_peer(const char *ifname, const struct wg_peer *peer, bool remove)
{
	char b64[WG_KEY_B64_LEN], ip[64], ifcopy[IF_NAMESIZE];
	char wg[] = "wg", set[] = "set", peerw[] = "peer", allowed[] = "allowed-ips",
	     removew[] = "remove";
	char *add_argv[] = {wg, set, ifcopy, peerw, b64, allowed, ip, NULL};
	char *remove_argv[] = {wg, set, ifcopy, peerw, b64, removew, NULL};

	snprintf(ifcopy, sizeof(ifcopy), "%s", ifname);
	wg_key_to_base64(b64, peer->public_key);
	ip_text(ip, sizeof(ip), &peer->allowed_ips[0]);
	return run_wg(remove ? remove_argv : add_argv);
}

/* One /32 each: 10.(100 + i / 65536).(i / 256 % 256).(i % 256). Peer 0 is
 * the session interface's key. */
static void make_peers(struct wg_peer *peers, struct wg_allowed_ip *ips, size_t n,
                       const wg_key session_priv)
{
	char text[32];
	wg_key priv;

	for (size_t i = 0; i < n; i++) {
		wg_key_generate_private(priv);
		wg_key_public_from_private(peers[i].public_key, i ? priv : session_priv);
		snprintf(text, sizeof(text), "10.%zu.%zu.%zu/32", 100 + i / 65536, i / 256 % 256,
		         i % 256);
		wg_allowed_ip_parse(&ips[i], text);
		peers[i].allowed_ips = &ips[i];
		peers[i].n_allowed_ips = 1;
	}
}

/* What `wg setconf` and `wg syncconf` read: the same peers. No [Interface]
 * settings, so that they change what we change, the peers alone. */
static int write_conf(const struct wg_peer *peers, size_t n)
{
	char b64[WG_KEY_B64_LEN], ip[64];
	int fd;
	FILE *f;

	snprintf(conf_path, sizeof(conf_path), "/tmp/bench_wg.%d.XXXXXX", (int)getpid());
	fd = mkstemp(conf_path);
	if (fd < 0 || !(f = fdopen(fd, "w")))
		return fail("cannot write %s: %s", conf_path, strerror(errno));
	fprintf(f, "[Interface]\n");
	for (size_t i = 0; i < n; i++) {
		wg_key_to_base64(b64, peers[i].public_key);
		ip_text(ip, sizeof(ip), &peers[i].allowed_ips[0]);
		fprintf(f, "\n[Peer]\nPublicKey = %s\nAllowedIPs = %s\n", b64, ip);
	}
	return fclose(f) ? fail("cannot write %s", conf_path) : 0;
}

static struct wg_device *read_device(const char *ifname)
{
	struct wg_device *dev = NULL;

	if (wg_device_get(be, ifname, &dev, err, sizeof(err)))
		fail("cannot read %s: %s", ifname, err);
	return dev;
}

static int by_key(const void *a, const void *b)
{
	return memcmp(((const struct wg_peer *)a)->public_key,
	              ((const struct wg_peer *)b)->public_key, WG_KEY_LEN);
}

/* Same peers, same allowed IPs in the same order, same handshakes: what a
 * reconcile that wrote nothing leaves, and a replace_peers would not. */
static int same_peers(struct wg_device *a, struct wg_device *b)
{
	if (a->n_peers != b->n_peers)
		return fail("%zu peers before, %zu after", a->n_peers, b->n_peers);
	qsort(a->peers, a->n_peers, sizeof(*a->peers), by_key);
	qsort(b->peers, b->n_peers, sizeof(*b->peers), by_key);
	for (size_t i = 0; i < a->n_peers; i++) {
		const struct wg_peer *p = &a->peers[i], *q = &b->peers[i];

		if (!wg_key_equal(p->public_key, q->public_key) ||
		    p->n_allowed_ips != q->n_allowed_ips ||
		    memcmp(p->allowed_ips, q->allowed_ips,
		           p->n_allowed_ips * sizeof(*p->allowed_ips)) ||
		    p->last_handshake.tv_sec != q->last_handshake.tv_sec ||
		    p->last_handshake.tv_nsec != q->last_handshake.tv_nsec)
			return fail("peer #%zu differs after the unchanged reconcile", i);
	}
	return 0;
}

/* A real session between the session interface and ours, over loopback:
 * its peer is ours at 127.0.0.1, with a keepalive every second, which
 * starts the handshake and keeps traffic flowing. */
static int make_session(const wg_key priv, const struct wg_device *ours)
{
	struct wg_allowed_ip ip;
	struct wg_peer peer = {.flags = WG_PEER_HAS_KEEPALIVE, .persistent_keepalive = 1};
	char text[32];

	if (start(&ifaces[SESSION], "S", priv))
		return -1;
	memcpy(peer.public_key, ours->public_key, WG_KEY_LEN);
	snprintf(text, sizeof(text), "127.0.0.1:%u", ours->listen_port);
	wg_endpoint_parse(&peer.endpoint, text);
	wg_allowed_ip_parse(&ip, "10.99.0.1/32");
	peer.allowed_ips = &ip;
	peer.n_allowed_ips = 1;
	if (nl_link_set_up(ifaces[OURS].name, true) || nl_link_set_up(ifaces[SESSION].name, true) ||
	    wg_peers_upsert(be, ifaces[SESSION].name, &peer, 1, err, sizeof(err)))
		return fail("session: %s", err);
	for (int waited = 0; waited < 10000; waited += 50) {
		struct wg_device *dev = read_device(ifaces[SESSION].name);
		bool done = dev && dev->n_peers == 1 && dev->peers[0].last_handshake.tv_sec > 0;

		wg_device_free(dev);
		if (done)
			return 0;
		sleep_ms(50);
	}
	return fail("no handshake between %s and %s in 10 s", ifaces[SESSION].name,
	            ifaces[OURS].name);
}

struct figures {
	struct figure cold, setconf, same, syncconf, add, add_wg, del, del_wg;
	struct figure get, stream, beyond, parse, diff, cpu;
};

/* wireguard-go's own time for get=1: the request, then its answer read
 * into one reused buffer and dropped, until the empty line that ends it.
 * No parse, no copy: what any reader must wait for. */
static int bare_get(const char *ifname)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	static char buf[WG_UAPI_CHUNK];
	char last = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), ret = -EPROTO;

	if (fd < 0 || wg_uapi_socket_path(addr.sun_path, sizeof(addr.sun_path), ifname) ||
	    connect(fd, (struct sockaddr *)&addr, sizeof(addr)) ||
	    send(fd, "get=1\n\n", 7, MSG_NOSIGNAL) != 7) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n <= 0)
			break;
		/* the end: "\n\n", perhaps across two reads */
		if ((n >= 2 && buf[n - 2] == '\n' && buf[n - 1] == '\n') ||
		    (n == 1 && last == '\n' && buf[0] == '\n')) {
			ret = 0;
			break;
		}
		last = buf[n - 1];
	}
	close(fd);
	return ret;
}

static int skip_peer(const struct wg_peer *peer, void *arg)
{
	(void)peer;
	(void)arg;
	return 0;
}

/* The parts of an unchanged reconcile, each timed alone on OURS: the get
 * as wireguard-go answers it, then our streamed read with its diff, and
 * what that costs beyond the get; then, from the buffered answer, the
 * parse alone and the diff alone. */
static int time_parts(struct figures *f, int r, const struct wg_peer *peers, size_t n)
{
	static const char request[] = "get=1\n\n";
	struct wg_device *dev = NULL, diff;
	struct wg_uapi_reader reader;
	struct wg_diff d;
	struct wg_device header = {0};
	char *answer;
	size_t len;
	double t;

	/* the two reads alternate who goes first: the daemon's later answers
	 * come faster than its first */
	for (int turn = 0; turn < 2; turn++) {
		t = now();
		if ((turn == 0) == (r % 2 == 0)) {
			if (bare_get(ifaces[OURS].name))
				return fail("get=1 on %s got no whole answer", ifaces[OURS].name);
			f->get.v[r] = (now() - t) * 1e3;
			continue;
		}
		if (wg_diff_begin(&d, peers, n, err, sizeof(err)))
			return fail("diff: %s", err);
		if (wg_uapi_get_peers(ifaces[OURS].name, wg_diff_peer, &d, err, sizeof(err)))
			return fail("streamed get: %s", err);
		if (wg_diff_end(&d, ifaces[OURS].name, &diff, NULL, err, sizeof(err)))
			return fail("diff: %s", err);
		f->stream.v[r] = (now() - t) * 1e3;
		free(diff.peers);
		if (diff.n_peers)
			return fail("the streamed diff of the unchanged device has %zu peers",
			            diff.n_peers);
	}
	f->beyond.v[r] = f->stream.v[r] - f->get.v[r];
	if (wg_uapi_exchange(ifaces[OURS].name, request, sizeof(request) - 1, &answer, &len, err,
	                     sizeof(err)))
		return fail("get: %s", err);
	t = now();
	wg_uapi_reader_init(&reader, &header, skip_peer, NULL);
	wg_uapi_reader_feed(&reader, answer, len, NULL, err, sizeof(err));
	int ret = wg_uapi_reader_finish(&reader, err, sizeof(err));
	f->parse.v[r] = (now() - t) * 1e3;
	if (ret)
		return fail("parse: %s", err);
	ret = wg_uapi_parse_get(answer, len, &dev, err, sizeof(err));
	free(answer);
	if (ret)
		return fail("parse: %s", err);
	t = now();
	if (wg_peers_diff(dev, peers, n, &diff, NULL, err, sizeof(err)))
		return fail("diff: %s", err);
	f->diff.v[r] = (now() - t) * 1e3;
	wg_device_free(dev);
	free(diff.peers);
	if (diff.n_peers)
		return fail("the diff of the unchanged device has %zu peers", diff.n_peers);
	return 0;
}

static double median(double *v, int n)
{
	struct figure f = {.n = n};
	double sorted[MAX_ROUNDS];

	memcpy(f.v, v, (size_t)n * sizeof(*v));
	return figure_median(&f, sorted);
}

/* One peer added then removed, CHANGES times, ours and `wg set` in turns;
 * the round's figure is the median of each. */
static int time_changes(struct figures *f, int r, const struct wg_peer *extra)
{
	double add[CHANGES], add_wg[CHANGES], del[CHANGES], del_wg[CHANGES];

	for (int i = 0; i < CHANGES; i++) {
		for (int turn = 0; turn < 2; turn++) {
			double t;

			if ((turn + i + r) % 2 == 0) {
				t = now();
				if (wg_peers_upsert(be, ifaces[OURS].name, extra, 1, err,
				                    sizeof(err)))
					return fail("add: %s", err);
				add[i] = (now() - t) * 1e3;
				t = now();
				if (wg_peers_remove(be, ifaces[OURS].name, &extra->public_key, 1,
				                    err, sizeof(err)))
					return fail("remove: %s", err);
				del[i] = (now() - t) * 1e3;
			} else {
				t = now();
				if (wg_set_peer(ifaces[THEIRS].name, extra, false))
					return -1;
				add_wg[i] = (now() - t) * 1e3;
				t = now();
				if (wg_set_peer(ifaces[THEIRS].name, extra, true))
					return -1;
				del_wg[i] = (now() - t) * 1e3;
			}
		}
	}
	f->add.v[r] = median(add, CHANGES);
	f->add_wg.v[r] = median(add_wg, CHANGES);
	f->del.v[r] = median(del, CHANGES);
	f->del_wg.v[r] = median(del_wg, CHANGES);
	return 0;
}

static size_t count_peers(const char *ifname)
{
	struct wg_device *dev = read_device(ifname);
	size_t n = dev ? dev->n_peers : 0;

	wg_device_free(dev);
	return n;
}

static int round_run(struct figures *f, int r, const struct wg_peer *peers, size_t n,
                     const wg_key session_priv)
{
	struct wg_reconcile_counts c;
	struct wg_device *before = NULL, *after = NULL;
	wg_key priv;
	bool ours_first = r % 2 == 0;
	int ret = -1;

	wg_key_generate_private(priv);
	if (start(&ifaces[OURS], "O", priv) || start(&ifaces[THEIRS], "T", priv))
		goto out;

	/* cold load */
	for (int turn = 0; turn < 2; turn++) {
		double t = now();

		if ((turn == 0) == ours_first) {
			if (wg_peers_reconcile(be, ifaces[OURS].name, peers, n, &c, err,
			                       sizeof(err))) {
				fail("cold load: %s", err);
				goto out;
			}
			f->cold.v[r] = now() - t;
			if (c.added != n || c.changed || c.removed) {
				fail("cold load: %zu added, %zu changed, %zu removed", c.added,
				     c.changed, c.removed);
				goto out;
			}
		} else {
			if (wg_conf("setconf", ifaces[THEIRS].name))
				goto out;
			f->setconf.v[r] = now() - t;
		}
	}
	if (count_peers(ifaces[OURS].name) != n || count_peers(ifaces[THEIRS].name) != n) {
		fail("after the cold load: %zu and %zu peers, not %zu",
		     count_peers(ifaces[OURS].name), count_peers(ifaces[THEIRS].name), n);
		goto out;
	}

	if (r == 0) {
		before = read_device(ifaces[OURS].name);
		if (!before || make_session(session_priv, before))
			goto out;
		wg_device_free(before);
	}
	before = read_device(ifaces[OURS].name);
	if (!before)
		goto out;

	/* reconcile, nothing changed */
	for (int turn = 0; turn < 2; turn++) {
		double t = now();

		if ((turn == 0) == ours_first) {
			double cpu = cpu_now();

			if (wg_peers_reconcile(be, ifaces[OURS].name, peers, n, &c, err,
			                       sizeof(err))) {
				fail("reconcile: %s", err);
				goto out;
			}
			f->same.v[r] = (now() - t) * 1e3;
			f->cpu.v[r] = (cpu_now() - cpu) * 1e3;
			if (c.added || c.changed || c.removed) {
				fail("the unchanged reconcile wrote %zu added, %zu changed, %zu "
				     "removed",
				     c.added, c.changed, c.removed);
				goto out;
			}
		} else {
			if (wg_conf("syncconf", ifaces[THEIRS].name))
				goto out;
			f->syncconf.v[r] = (now() - t) * 1e3;
		}
	}
	after = read_device(ifaces[OURS].name);
	if (!after || same_peers(before, after))
		goto out;
	if (r == 0) {
		const struct wg_peer *p = wg_device_find_peer(after, peers[0].public_key);

		/* sorted by same_peers: found by key; the session goes on after */
		sleep_ms(1500);
		struct wg_device *later = read_device(ifaces[OURS].name);
		const struct wg_peer *q =
		    later ? wg_device_find_peer(later, peers[0].public_key) : NULL;
		bool kept = p && q && p->last_handshake.tv_sec > 0 &&
		            q->last_handshake.tv_sec == p->last_handshake.tv_sec &&
		            q->rx_bytes > p->rx_bytes;

		printf("  session kept: peer 0's handshake %s, received bytes %llu -> %llu after "
		       "the reconcile\n",
		       kept ? "unchanged" : "LOST", p ? (unsigned long long)p->rx_bytes : 0ULL,
		       q ? (unsigned long long)q->rx_bytes : 0ULL);
		wg_device_free(later);
		stop(&ifaces[SESSION]);
		if (!kept) {
			fail("the session with peer 0 did not survive the unchanged reconcile");
			goto out;
		}
	}

	if (time_parts(f, r, peers, n) || time_changes(f, r, &peers[n]))
		goto out;
	if (count_peers(ifaces[OURS].name) != n || count_peers(ifaces[THEIRS].name) != n) {
		fail("after the changes: not %zu peers", n);
		goto out;
	}
	ret = 0;
out:
	wg_device_free(before);
	wg_device_free(after);
	for (int i = 0; i < N_IFACES; i++)
		stop(&ifaces[i]);
	return ret;
}

static void name(struct figure *f, const char *what, const char *unit, int rounds)
{
	f->name = what;
	f->unit = unit;
	f->n = rounds;
}

int main(int argc, char **argv)
{
	static struct figures f;
	struct wg_peer *peers;
	struct wg_allowed_ip *ips;
	size_t n = 10000;
	int rounds = 3, ret = 1;
	wg_key session_priv;
	char label[5][80];

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--peers"))
			n = (size_t)atol(argv[i + 1]);
	}
	if (rounds < 1 || rounds > MAX_ROUNDS || n < 2 || n > 60000 || argc % 2 == 0) {
		fprintf(stderr, "usage: bench_wg [--rounds 1-%d] [--peers 2-60000]\n", MAX_ROUNDS);
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "bench_wg: needs root (a network namespace, wireguard-go)\n");
		return 1;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		perror("bench_wg: unshare");
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	wg_backend_select("userspace", &be, NULL, 0);
	if (nl_link_set_up("lo", true))
		return fail("cannot set lo up"), 1;

	/* peers[n] is the one added and removed on the full device */
	peers = calloc(n + 1, sizeof(*peers));
	ips = calloc(n + 1, sizeof(*ips));
	if (!peers || !ips)
		return fail("out of memory"), 1;
	wg_key_generate_private(session_priv);
	printf("generating %zu peer keys and the conf file of `wg setconf`... ", n + 1);
	fflush(stdout);
	double t = now();
	make_peers(peers, ips, n + 1, session_priv);
	if (write_conf(peers, n))
		goto out;
	printf("%.2f s (not counted)\n", now() - t);

	snprintf(label[0], sizeof(label[0]), "cold load of %zu peers", n);
	snprintf(label[1], sizeof(label[1]), "reconcile of the unchanged %zu", n);
	snprintf(label[2], sizeof(label[2]), "one peer added to %zu", n);
	snprintf(label[3], sizeof(label[3]), "one peer removed from %zu", n);
	snprintf(label[4], sizeof(label[4]), "unchanged %zu: ours beyond the daemon's get", n);
	name(&f.cold, "ours: cold load (one get, one set)", "s", rounds);
	name(&f.setconf, "wg setconf", "s", rounds);
	name(&f.same, "ours: unchanged reconcile", "ms", rounds);
	name(&f.syncconf, "wg syncconf", "ms", rounds);
	name(&f.cpu, "  ours: CPU time of it, in this process", "ms", rounds);
	name(&f.get, "  wireguard-go: get=1 until its last byte, read and dropped", "ms", rounds);
	name(&f.stream, "  ours: get=1 read and diffed as it streams", "ms", rounds);
	name(&f.beyond, "  ours: that beyond wireguard-go's get", "ms", rounds);
	name(&f.parse, "  ours: parse of its answer, buffered", "ms", rounds);
	name(&f.diff, "  ours: diff against the list", "ms", rounds);
	name(&f.add, "ours: add one peer (one UAPI set)", "ms", rounds);
	name(&f.add_wg, "wg set peer KEY allowed-ips IP", "ms", rounds);
	name(&f.del, "ours: remove one peer (one UAPI set)", "ms", rounds);
	name(&f.del_wg, "wg set peer KEY remove", "ms", rounds);

	for (int r = 0; r < rounds; r++) {
		printf("round %d of %d (%s first)\n", r + 1, rounds, r % 2 ? "wg" : "ours");
		fflush(stdout);
		if (round_run(&f, r, peers, n, session_priv))
			goto out;
	}

	printf("\nwireguard-go, %zu peers with one /32 each, %d rounds; one change: median of "
	       "%d a round\n",
	       n, rounds, CHANGES);
	const struct figure *all[] = {&f.cold, &f.setconf, &f.same,   &f.syncconf, &f.cpu,
	                              &f.get,  &f.stream,  &f.beyond, &f.parse,    &f.diff,
	                              &f.add,  &f.add_wg,  &f.del,    &f.del_wg};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		figure_print(all[i]);
	ratio_print("cold load / wg setconf", &f.cold, &f.setconf);
	ratio_print("unchanged reconcile / wg syncconf", &f.same, &f.syncconf);
	ratio_print("add one / wg set", &f.add, &f.add_wg);
	ratio_print("remove one / wg set", &f.del, &f.del_wg);
	printf("goal: unchanged reconcile < 50 ms; cold load no slower than wg setconf\n");
	table_row(label[0], &f.cold, "wg setconf", &f.setconf);
	table_row(label[1], &f.same, "wg syncconf", &f.syncconf);
	/* the goal's share that is ours: the read and diff beyond the daemon's own get */
	table_row(label[4], &f.beyond, "wireguard-go's own get=1", &f.get);
	table_row(label[2], &f.add, "wg set", &f.add_wg);
	table_row(label[3], &f.del, "wg set remove", &f.del_wg);
	ret = 0;
out:
	stop_all();
	free(peers);
	free(ips);
	return ret;
}
