/*
 * The dns plugin against dnsmasq, 10,000 internal names each, in one run.
 *
 * 10,000 active devices are written straight into a fresh state (one
 * transaction through the mock core, as preauth would write them), then
 * meshgated (the real core, plugins = ["dns"]) serves them on
 * 127.0.0.2:5300 and dnsmasq serves the same names from a hosts file on
 * 127.0.0.3:5300. Every figure is measured in rounds, ours and dnsmasq
 * (or the full rebuild) interleaved, the order alternating, and printed
 * as the median with its spread (bench/rounds.h), each headline figure as
 * one TABLE| row for bench/run-all.sh:
 *
 *  - queries per CPU-second: dnsperf sends the 10,000 names, shuffled, to
 *    each server in turn; the server's CPU is utime + stime of its
 *    process from /proc/PID/stat around the run (dnsperf shares the
 *    machine's cores with the server, so qps alone measures the pair);
 *  - memory per device: RssAnon of each server with the 10,000 names less
 *    that of the same server with none (both started fresh each round);
 *  - one device change at 10,000 and 50,000 devices, everything it costs
 *    (state write, event, the plugin's read of the record, the patch),
 *    against the same state write followed by a rebuild of the whole
 *    index (what a change cost before the index was patched in place).
 *
 * Also printed: the p50/p99 latency at a fixed rate, the same with
 * fast_path = false (everything through ldns), the in-process cost of one
 * query on each path, and the plugin's heap per device (mallinfo2).
 *
 * Runs as root in a private network namespace (its own loopback); the
 * servers are its children and die with it. Prints figures, never fails
 * on time. Usage: bench_dns [-l SECONDS] (each dnsperf run, default 10)
 * [-r ROUNDS] (default 5)
 * [--hold] (set up, print the servers' pids and wait: for profiling)
 * [--changes] (only the cost of one device change and the memory per
 * name, at 10,000 and 50,000 devices).
 */
#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "dns.h"
#include "mg_mock.h"
#include "rounds.h"

#define DEVICES 10000
#define ZONE    "corp.internal"
#define PORT    5300
#define RATE    "20000" /* queries per second of the latency runs */

extern const struct mg_plugin mg_plugin_descriptor; /* dns's, linked in */

static char dir[] = "/tmp/meshgate-bench-dns.XXXXXX";
static pid_t children[16];
static int nchildren;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void cleanup(void)
{
	char cmd[200];
	for (int i = 0; i < nchildren; i++)
		if (children[i] > 0) {
			kill(children[i], SIGTERM);
			waitpid(children[i], NULL, 0);
		}
	nchildren = 0;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", dir);
}

static void die(const char *what)
{
	fprintf(stderr, "bench_dns: %s\n", what);
	cleanup();
	exit(1);
}

static pid_t spawn(char *const argv[], const char *out)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (out && !freopen(out, "w", stdout))
			_exit(127);
		if (out && !freopen(out, "a", stderr))
			_exit(127);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static void device_name(int i, char *out, size_t len)
{
	snprintf(out, len, "user%d-laptop", i);
}

static void device_address(int i, char *out, size_t len)
{
	snprintf(out, len, "10.0.%d.%d", (i + 2) / 256, (i + 2) % 256);
}

/* ---- the state: 10,000 active devices, one transaction ---- */

static json_t *device_record(int i, const char *name)
{
	char id[32], user[32], addr[32], cidr[40];
	snprintf(id, sizeof(id), "%016x", 0x10000000u + (unsigned)i);
	snprintf(user, sizeof(user), "user%d", i);
	device_address(i, addr, sizeof(addr));
	snprintf(cidr, sizeof(cidr), "%s/32", addr);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "id", id, "user", user, "name",
	                 name, "role", "developer", "address", cidr, "state", "active",
	                 "public_key", "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=", "created_at",
	                 1732356000 + i);
}

/* n active devices, one transaction, as preauth writes them */
static void put_devices(mg_ctx *pa, int n)
{
	mg_txn *txn;
	if (mg_txn_begin(pa, 0, &txn))
		die("txn");
	for (int i = 0; i < n; i++) {
		char name[64];
		device_name(i, name, sizeof(name));
		json_t *dev = device_record(i, name);
		if (mg_state_put(pa, txn, "devices", json_string_value(json_object_get(dev, "id")),
		                 dev))
			die("put");
		json_decref(dev);
	}
	if (mg_txn_commit(pa, txn))
		die("commit");
}

/* A mock core on `state` with the owners of the dns plugin's inputs
 * (preauth's devices, wireguard's server address) as stubs. */
static struct mg_mock *mock_with_owners(const char *state)
{
	char err[512];
	static const char *const pa_owns[] = {"users", "codes", "devices", "ipam", NULL};
	static const char *const wg_owns[] = {"wg", NULL};
	struct mg_mock *m = mg_mock_new(state, err, sizeof(err));
	if (!m || mg_mock_add_stub(m, "preauth", pa_owns) ||
	    mg_mock_add_stub(m, "wireguard", wg_owns) || mg_mock_start(m, err, sizeof(err)))
		die(err);
	mg_mock_log_level(m, MG_LOG_ERROR);
	json_t *server = json_pack("{s:s}", "address", "10.0.0.1/16");
	mg_mock_state_put(m, "wireguard", "wg", "server", server);
	json_decref(server);
	return m;
}

static void write_state(const char *state)
{
	char err[512];
	struct mg_mock *m = mock_with_owners(state);
	put_devices(mg_mock_ctx(m, "preauth"), DEVICES);

	/* the time to build the names of 10,000 devices, as at start and on a change */
	json_t *cfg = json_pack("{s:[s]}", "listen", "127.0.0.9:0");
	double t0 = now();
	if (mg_mock_add(m, &mg_plugin_descriptor, cfg, err, sizeof(err)) ||
	    mg_mock_start(m, err, sizeof(err)))
		die(err);
	double t_start = now() - t0;
	json_decref(cfg);
	double best = 1e9;
	for (int i = 0; i < 20; i++) {
		t0 = now();
		dns_rebuild(mg_mock_ctx(m, "dns")->self);
		double t = now() - t0;
		best = t < best ? t : best;
	}
	printf("names of %d devices: plugin start (read state + build) %.1f ms, "
	       "rebuild %.1f ms (best of 20)\n",
	       DEVICES, t_start * 1e3, best * 1e3);
	mg_mock_free(m);
}

/* ---- one device change, and the memory per name ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Device i renamed (state write, one transaction, as preauth does):
 * k odd, into a collision (it takes the name of device i+1 and becomes
 * LABEL-ID), k even, back to its own name. Returns the record. */
static json_t *rename_device(mg_ctx *pa, int i, int k)
{
	char name[64];
	device_name(k % 2 ? i : i + 1, name, sizeof(name));
	json_t *dev = device_record(i, name);
	mg_txn *txn;
	if (mg_txn_begin(pa, 0, &txn) ||
	    mg_state_put(pa, txn, "devices", json_string_value(json_object_get(dev, "id")), dev) ||
	    mg_txn_commit(pa, txn))
		die("put");
	return dev;
}

/* n devices in a fresh state; the dns plugin started on them through the
 * mock core. Printed: the heap the plugin holds per device and per name
 * (mallinfo2 around its start: the device table, the index, the names),
 * then, in rounds, one device change from the state write to the patched
 * index (the median of CHANGES changes) against the same state write
 * followed by a rebuild of the whole index, and the plugin's share alone
 * (the event and the patch) against the rebuild alone. */
static void change_cost(int n, int rounds)
{
	char err[512], state[320];
	snprintf(state, sizeof(state), "%s/state%d", dir, n);
	struct mg_mock *m = mock_with_owners(state);
	mg_ctx *pa = mg_mock_ctx(m, "preauth");
	put_devices(pa, n);

	json_t *cfg = json_pack("{s:[s]}", "listen", "127.0.0.9:0");
	struct mallinfo2 before = mallinfo2();
	if (mg_mock_add(m, &mg_plugin_descriptor, cfg, err, sizeof(err)) ||
	    mg_mock_start(m, err, sizeof(err)))
		die(err);
	json_decref(cfg);
	struct mallinfo2 after = mallinfo2();
	struct dns *d = mg_mock_ctx(m, "dns")->self;
	size_t names = dns_index_names(d->srv.index);
	double heap = (double)(after.uordblks - before.uordblks);
	struct mallinfo2 bare = mallinfo2();
	struct dns_index *idx = dns_build(d, 1); /* a second index: what one costs */
	double index = (double)(mallinfo2().uordblks - bare.uordblks);
	dns_index_free(idx);
	printf("%d devices, %zu names: the plugin's heap %.1f MB, %.0f bytes per device, %.0f "
	       "per name; of it the index %.0f bytes per device, the device table and the "
	       "naming %.0f\n",
	       n, names, heap / 1e6, heap / n, heap / (double)names, index / n, (heap - index) / n);

	enum { CHANGES = 80 };
	char what[4][80];
	snprintf(what[0], sizeof(what[0]), "one change at %dk, all costs", n / 1000);
	snprintf(what[1], sizeof(what[1]), "state write + full rebuild at %dk", n / 1000);
	snprintf(what[2], sizeof(what[2]), "one change at %dk, event + patch", n / 1000);
	snprintf(what[3], sizeof(what[3]), "full rebuild at %dk", n / 1000);
	struct figure change = {.name = what[0], .unit = "us"},
	              rebuild_all = {.name = what[1], .unit = "us"},
	              patch = {.name = what[2], .unit = "us"},
	              rebuild = {.name = what[3], .unit = "us"};
	unsigned seed = 3;
	int k = 0;
	for (int r = 0; r < rounds; r++) {
		for (int order = 0; order < 2; order++) {
			if ((r + order) % 2 == 0) {
				double t[CHANGES], te[CHANGES];
				for (int c = 0; c < CHANGES; c++, k++) {
					int i = rand_r(&seed) % (n - 1);
					double t0 = now();
					json_t *dev = rename_device(pa, i, k);
					double t1 = now();
					mg_mock_publish(m, "device.changed", dev);
					mg_mock_advance(m, 0);
					t[c] = now() - t0;
					te[c] = now() - t1;
					json_decref(dev);
				}
				qsort(t, CHANGES, sizeof(*t), cmp_double);
				qsort(te, CHANGES, sizeof(*te), cmp_double);
				change.v[change.n++] = t[CHANGES / 2] * 1e6;
				patch.v[patch.n++] = te[CHANGES / 2] * 1e6;
			} else {
				/* the same write, then the whole index rebuilt; the
				 * event is delivered afterwards, untimed, so that the
				 * plugin follows the state */
				int i = rand_r(&seed) % (n - 1);
				double t0 = now();
				json_t *dev = rename_device(pa, i, k++);
				double t1 = now();
				dns_rebuild(d);
				double t2 = now();
				rebuild_all.v[rebuild_all.n++] = (t2 - t0) * 1e6;
				rebuild.v[rebuild.n++] = (t2 - t1) * 1e6;
				mg_mock_publish(m, "device.changed", dev);
				mg_mock_advance(m, 0);
				json_decref(dev);
			}
		}
	}
	figure_print(&change);
	figure_print(&rebuild_all);
	ratio_print("  change / (write + rebuild)", &change, &rebuild_all);
	figure_print(&patch);
	figure_print(&rebuild);
	ratio_print("  event + patch / rebuild", &patch, &rebuild);
	snprintf(what[0], sizeof(what[0]), "DNS one device change at %dk (write+event+patch)",
	         n / 1000);
	table_row(what[0], &change, "state write + full rebuild", &rebuild_all);
	snprintf(what[2], sizeof(what[2]), "DNS one device change at %dk, the plugin's share",
	         n / 1000);
	table_row(what[2], &patch, "full index rebuild", &rebuild);
	mg_mock_free(m);
}

/* ---- in process: one query on each path ---- */

static void per_query_cost(void)
{
	struct dns_index *idx = dns_index_new(30, 1);
	uint8_t zone[DNS_NAME_MAX], name[DNS_NAME_MAX], rel[DNS_NAME_MAX];
	size_t zlen, nlen, rlen;
	dns_name_from_text(ZONE, zone, &zlen);
	dns_index_zone(idx, zone, zlen, zone, zlen);
	static uint8_t queries[DEVICES][128];
	static size_t qlen[DEVICES];
	for (int i = 0; i < DEVICES; i++) {
		char text[64], addr[32];
		uint8_t a[16];
		int family;
		device_name(i, text, sizeof(text));
		device_address(i, addr, sizeof(addr));
		dns_name_from_text(text, rel, &rlen);
		dns_name_concat(rel, rlen, zone, zlen, name, &nlen);
		dns_ip_parse(addr, &family, a);
		dns_index_add(idx, name, nlen, DNS_T_A, a, 4);
		ldns_pkt *q = NULL;
		uint8_t *wire;
		char fq[128];
		snprintf(fq, sizeof(fq), "%s.%s", text, ZONE);
		ldns_pkt_query_new_frm_str(&q, fq, LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, LDNS_RD);
		ldns_pkt2wire(&wire, q, &qlen[i]);
		memcpy(queries[i], wire, qlen[i]);
		free(wire);
		ldns_pkt_free(q);
	}
	dns_index_freeze(idx);
	static uint8_t out[DNS_UDP_PAYLOAD];
	static int order[DEVICES];
	unsigned seed = 2;
	for (int i = 0; i < DEVICES; i++)
		order[i] = i;
	for (int i = DEVICES - 1; i > 0; i--) { /* in random order, as clients ask */
		int j = rand_r(&seed) % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (int fast = 1; fast >= 0; fast--) {
		struct dns_view v = {idx, 0, fast};
		size_t n, rounds = fast ? 200 : 20;
		double t0 = now();
		for (size_t r = 0; r < rounds; r++)
			for (int i = 0; i < DEVICES; i++)
				dns_serve(&v, queries[order[i]], qlen[order[i]], 0, out,
				          sizeof(out), &n);
		double per = (now() - t0) / (double)(rounds * DEVICES);
		printf("in process, one query (decode, look up, encode): %s %.3f us\n",
		       fast ? "fast path" : "ldns     ", per * 1e6);
	}
	dns_index_free(idx);
}

/* ---- a server under dnsperf ---- */

struct result {
	double qps, avg_ms, sd_ms, p50_ms, p99_ms, cpu_s, per_cpu;
	long completed, lost;
};

static long cpu_ticks(pid_t pid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	long utime = 0, stime = 0;
	/* after the command: state ppid ... field 14 utime, 15 stime */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime,
	                 &stime) != 2)
		return -1;
	return utime + stime;
}

static double field(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	return p ? atof(p + strlen(key)) : -1;
}

static char *run_capture(char *const argv[])
{
	char out[300];
	snprintf(out, sizeof(out), "%s/dnsperf.out", dir);
	pid_t pid = spawn(argv, out);
	int status;
	waitpid(pid, &status, 0);
	FILE *f = fopen(out, "r");
	if (!f)
		die("dnsperf output");
	char *text = calloc(1, 64 << 20);
	size_t n = fread(text, 1, (64 << 20) - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

/* Throughput: dnsperf at its defaults (one client, 100 outstanding) for
 * `seconds`, and the server's CPU time over the run. */
static void measure_load(pid_t server, const char *addr, const char *queries, int seconds,
                         struct result *r)
{
	char l[16], port[16];
	snprintf(l, sizeof(l), "%d", seconds);
	snprintf(port, sizeof(port), "%d", PORT);
	char *const load[] = {"dnsperf", "-s", (char *)addr, "-p", port, "-d", (char *)queries,
	                      "-l",      l,    NULL};
	long t0 = cpu_ticks(server);
	char *text = run_capture(load);
	long t1 = cpu_ticks(server);
	r->qps = field(text, "Queries per second:");
	r->completed = (long)field(text, "Queries completed:");
	r->lost = (long)field(text, "Queries lost:");
	r->avg_ms = field(text, "Average Latency (s):") * 1e3;
	r->sd_ms = field(text, "Latency StdDev (s):") * 1e3;
	r->cpu_s = (double)(t1 - t0) / (double)sysconf(_SC_CLK_TCK);
	r->per_cpu = r->cpu_s > 0 ? (double)r->completed / r->cpu_s : 0;
	free(text);
}

/* Latency percentiles at a fixed rate, from every reply's latency (-v). */
static void measure_latency(const char *addr, const char *queries, struct result *r)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", PORT);
	char *const paced[] = {"dnsperf", "-s", (char *)addr, "-p", port, "-d", (char *)queries,
	                       "-l",      "5",  "-Q",         RATE, "-v", NULL};
	char *text = run_capture(paced);
	size_t n = 0, cap = 200000;
	double *lat = malloc(cap * sizeof(*lat));
	for (char *p = strstr(text, "\n> "); p && n < cap; p = strstr(p + 1, "\n> ")) {
		char *eol = strchr(p + 1, '\n');
		char *sp = eol ? eol : p + strlen(p);
		while (sp > p && sp[-1] != ' ')
			sp--;
		lat[n++] = atof(sp);
	}
	qsort(lat, n, sizeof(*lat), cmp_double);
	if (n) {
		r->p50_ms = lat[n / 2] * 1e3;
		r->p99_ms = lat[n * 99 / 100] * 1e3;
	}
	free(lat);
	free(text);
}

/* The run whose queries per CPU-second is the median of `n`. */
static struct result median(struct result *runs, int n)
{
	struct result sorted[16];
	memcpy(sorted, runs, (size_t)n * sizeof(*runs));
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && sorted[j].per_cpu < sorted[j - 1].per_cpu; j--) {
			struct result t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	return sorted[n / 2];
}

static void print_result(const char *what, const struct result *r)
{
	printf("%-26s %8.0f qps  avg %.3f ms (sd %.3f)  lost %ld  cpu %5.2f s  %8.0f "
	       "queries/CPU-s\n",
	       what, r->qps, r->avg_ms, r->sd_ms, r->lost, r->cpu_s, r->per_cpu);
}

/* Does the server at addr answer? expect: the address user1-laptop must
 * have, or NULL (a server without names: any reply). */
static int answers(const char *addr, const char *expect)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd),
	         "dig +time=1 +tries=1 -p %d @%s user1-laptop.%s A 2>/dev/null | grep -q '%s'",
	         PORT, addr, ZONE, expect ? expect : "status:");
	return system(cmd) == 0;
}

static void wait_answering(const char *addr, const char *expect, const char *log)
{
	for (int i = 0; i < 200; i++) {
		if (answers(addr, expect))
			return;
		usleep(50000);
	}
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "cat %s >&2", log);
	if (system(cmd))
		fprintf(stderr, "(no log)\n");
	die("a server does not answer");
}

static void track(pid_t pid)
{
	for (int i = 0; i < nchildren; i++)
		if (children[i] <= 0) {
			children[i] = pid;
			return;
		}
	if (nchildren == (int)(sizeof(children) / sizeof(*children)))
		die("too many children");
	children[nchildren++] = pid;
}

/* meshgated with the dns plugin on `state`, answering on addr:PORT;
 * `tag` names its config and log. expect: as for answers(). */
static pid_t start_meshgated(const char *state, int fast_path, const char *addr, const char *tag,
                             const char *expect)
{
	char conf[300], log[300];
	snprintf(conf, sizeof(conf), "%s/meshgated-%s.conf", dir, tag);
	snprintf(log, sizeof(log), "%s/meshgated-%s.log", dir, tag);
	FILE *f = fopen(conf, "w");
	if (!f)
		die("config");
	fprintf(f,
	        "state_dir = \"%s\";\nsocket = \"%s/bus-%s.sock\";\nplugin_dir = \"%s\";\n"
	        "plugins = [\"dns\"];\nlog_level = \"warn\";\n"
	        "dns = { listen = [\"%s:%d\"]; zone = \"%s\"; fast_path = %s; };\n",
	        state, dir, tag, PLUGIN_DIR, addr, PORT, ZONE, fast_path ? "true" : "false");
	fclose(f);
	char *const argv[] = {MESHGATED, "--config", conf, NULL};
	pid_t pid = spawn(argv, log);
	track(pid);
	wait_answering(addr, expect, log);
	return pid;
}

/* dnsmasq with the names of `hosts` on addr:PORT. */
static pid_t start_dnsmasq(const char *hosts, const char *addr, const char *tag, const char *expect)
{
	char port[16], addn[320], listen[64], log[300];
	snprintf(port, sizeof(port), "--port=%d", PORT);
	snprintf(addn, sizeof(addn), "--addn-hosts=%s", hosts);
	snprintf(listen, sizeof(listen), "--listen-address=%s", addr);
	snprintf(log, sizeof(log), "%s/dnsmasq-%s.log", dir, tag);
	char *const argv[] = {
	    "dnsmasq", "-k",   "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
	    addn,      listen, "--bind-interfaces",     port,          "--user=root",
	    NULL};
	pid_t pid = spawn(argv, log);
	track(pid);
	wait_answering(addr, expect, log);
	return pid;
}

static void stop_child(pid_t pid)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	for (int i = 0; i < nchildren; i++)
		if (children[i] == pid)
			children[i] = -1;
}

/* RssAnon of a process, in bytes: its heap, stacks and other private
 * memory (not the mapped files: LMDB's map, the libraries). */
static double rss_anon(pid_t pid)
{
	char path[64], line[256];
	double kb = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %lf", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

/* The memory each server takes per device: its RssAnon with the 10,000
 * names less its RssAnon with none, each started fresh every round. */
static void memory_per_device(const char *state, const char *empty_state, const char *hosts,
                              const char *empty_hosts, int rounds)
{
	struct figure ours = {.name = "meshgate dns, RssAnon per device", .unit = "bytes"},
	              masq = {.name = "dnsmasq, RssAnon per device (hosts line)", .unit = "bytes"};
	for (int r = 0; r < rounds; r++)
		for (int k = 0; k < 2; k++) {
			pid_t empty, full;
			if ((r + k) % 2 == 0) {
				empty = start_meshgated(empty_state, 1, "127.0.0.4", "empty", NULL);
				full = start_meshgated(state, 1, "127.0.0.5", "full", "10.0.0.3");
				ours.v[ours.n++] = (rss_anon(full) - rss_anon(empty)) / DEVICES;
			} else {
				empty = start_dnsmasq(empty_hosts, "127.0.0.4", "empty", NULL);
				full = start_dnsmasq(hosts, "127.0.0.5", "full", "10.0.0.3");
				masq.v[masq.n++] = (rss_anon(full) - rss_anon(empty)) / DEVICES;
			}
			stop_child(empty);
			stop_child(full);
		}
	figure_print(&ours);
	figure_print(&masq);
	ratio_print("  meshgate / dnsmasq (goal <= 3)", &ours, &masq);
	table_row("DNS memory per device (RssAnon, 10k names)", &ours, "dnsmasq", &masq);
}

int main(int argc, char **argv)
{
	int seconds = 10, hold = 0, rounds = 5, changes_only = 0;
	char state[300], empty_state[300], hosts[300], empty_hosts[300], queries[300];
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-l") && i + 1 < argc)
			seconds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-r") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--hold"))
			hold = 1;
		else if (!strcmp(argv[i], "--changes"))
			changes_only = 1;
	if (seconds <= 0)
		seconds = 10;
	if (rounds < 1 || rounds > MAX_ROUNDS)
		rounds = 5;
	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "bench_dns: needs root (a private network namespace): %s\n",
		        strerror(errno));
		return 1;
	}
	if (system("ip link set lo up") || !mkdtemp(dir))
		return 1;
	atexit(cleanup);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(empty_state, sizeof(empty_state), "%s/state0", dir);
	snprintf(hosts, sizeof(hosts), "%s/hosts10k", dir);
	snprintf(empty_hosts, sizeof(empty_hosts), "%s/hosts0", dir);
	snprintf(queries, sizeof(queries), "%s/queries10k.txt", dir);

	printf("bench_dns: %d devices, %d rounds (dnsperf -l %d per server and round), %ld CPUs, "
	       "loopback in a private network namespace\n\n",
	       DEVICES, rounds, seconds, sysconf(_SC_NPROCESSORS_ONLN));
	write_state(state);
	mg_mock_free(mock_with_owners(empty_state)); /* the same state, no device */
	change_cost(10000, rounds);
	change_cost(50000, rounds);
	if (changes_only)
		return 0;
	per_query_cost();

	/* the same names for dnsmasq, and the queries shuffled */
	FILE *h = fopen(hosts, "w"), *h0 = fopen(empty_hosts, "w"), *q = fopen(queries, "w");
	int *order = malloc(DEVICES * sizeof(*order));
	if (!h || !h0 || !q || !order)
		die("files");
	for (int i = 0; i < DEVICES; i++) {
		char name[64], addr[32];
		device_name(i, name, sizeof(name));
		device_address(i, addr, sizeof(addr));
		fprintf(h, "%s %s.%s\n", addr, name, ZONE);
		order[i] = i;
	}
	unsigned seed = 1;
	for (int i = DEVICES - 1; i > 0; i--) {
		int j = rand_r(&seed) % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (int i = 0; i < DEVICES; i++) {
		char name[64];
		device_name(order[i], name, sizeof(name));
		fprintf(q, "%s.%s A\n", name, ZONE);
	}
	fclose(h);
	fclose(h0);
	fclose(q);
	free(order);

	printf("\nmemory, %d rounds:\n", rounds);
	memory_per_device(state, empty_state, hosts, empty_hosts, rounds);
	fflush(stdout);

	pid_t dm = start_dnsmasq(hosts, "127.0.0.3", "load", "10.0.0.3");
	pid_t mg = start_meshgated(state, 1, "127.0.0.2", "load", "10.0.0.3");
	if (hold) { /* for profiling: the servers run until stdin closes */
		printf("meshgated pid %d on 127.0.0.2:%d, dnsmasq pid %d on 127.0.0.3:%d, queries "
		       "in %s; Enter stops\n",
		       (int)mg, PORT, (int)dm, PORT, queries);
		fflush(stdout);
		while (getchar() != EOF && getchar() != '\n')
			;
		return 0;
	}

	/* rounds alternate which server goes first: the machine's noise (other
	 * processes, the VM) falls on both alike */
	struct result plugin[MAX_ROUNDS] = {0}, masq[MAX_ROUNDS] = {0}, ldns_only = {0};
	struct figure ours_cpu = {.name = "meshgate dns", .unit = "q/CPU-s"},
	              masq_cpu = {.name = "dnsmasq", .unit = "q/CPU-s"},
	              ours_qps = {.name = "meshgate dns", .unit = "q/s"},
	              masq_qps = {.name = "dnsmasq", .unit = "q/s"};
	printf("\nqueries per CPU-second, %d rounds:\n", rounds);
	for (int r = 0; r < rounds; r++) {
		printf("round %d\n", r + 1);
		for (int k = 0; k < 2; k++)
			if ((r + k) % 2 == 0) {
				measure_load(mg, "127.0.0.2", queries, seconds, &plugin[r]);
				print_result("  meshgate dns", &plugin[r]);
			} else {
				measure_load(dm, "127.0.0.3", queries, seconds, &masq[r]);
				print_result("  dnsmasq", &masq[r]);
			}
		printf("  queries per CPU-second, meshgate / dnsmasq: %.2f\n",
		       masq[r].per_cpu > 0 ? plugin[r].per_cpu / masq[r].per_cpu : 0);
		ours_cpu.v[ours_cpu.n++] = plugin[r].per_cpu;
		masq_cpu.v[masq_cpu.n++] = masq[r].per_cpu;
		ours_qps.v[ours_qps.n++] = plugin[r].qps;
		masq_qps.v[masq_qps.n++] = masq[r].qps;
		fflush(stdout);
	}
	struct result mp = median(plugin, rounds), md = median(masq, rounds);
	measure_latency("127.0.0.2", queries, &mp);
	measure_latency("127.0.0.3", queries, &md);
	stop_child(mg);
	mg = start_meshgated(state, 0, "127.0.0.2", "ldns", "10.0.0.3");
	measure_load(mg, "127.0.0.2", queries, seconds, &ldns_only);
	measure_latency("127.0.0.2", queries, &ldns_only);

	printf("\n%-26s %9s %9s %9s %9s %12s\n", "the median round", "qps", "avg ms", "p50 ms",
	       "p99 ms", "queries/CPU-s");
	printf("%-26s %9.0f %9.3f %9.3f %9.3f %12.0f\n", "meshgate dns", mp.qps, mp.avg_ms,
	       mp.p50_ms, mp.p99_ms, mp.per_cpu);
	printf("%-26s %9.0f %9.3f %9.3f %9.3f %12.0f\n", "dnsmasq", md.qps, md.avg_ms, md.p50_ms,
	       md.p99_ms, md.per_cpu);
	printf("%-26s %9.0f %9.3f %9.3f %9.3f %12.0f\n", "meshgate dns, ldns only (1 run)",
	       ldns_only.qps, ldns_only.avg_ms, ldns_only.p50_ms, ldns_only.p99_ms,
	       ldns_only.per_cpu);
	printf("(p50/p99: a separate 5 s run at %s queries/s)\n\n", RATE);
	figure_print(&ours_cpu);
	figure_print(&masq_cpu);
	ratio_print("  per CPU-second, meshgate / dnsmasq (goal >= 2 every round)", &ours_cpu,
	            &masq_cpu);
	figure_print(&ours_qps);
	figure_print(&masq_qps);
	ratio_print("  qps, meshgate / dnsmasq", &ours_qps, &masq_qps);
	printf("ldns only / dnsmasq per CPU-second (1 run): %.2f\n",
	       md.per_cpu > 0 ? ldns_only.per_cpu / md.per_cpu : 0);
	table_row("DNS queries per CPU-second (10k names)", &ours_cpu, "dnsmasq", &masq_cpu);
	return 0;
}
