/* Onboardings per second over HTTPS through the real gateway: every
 * plugin loaded (wireguard, preauth, api, firewall, dns), 10,000 devices
 * already in state. Each onboarding is the client's two calls, redeem then
 * register, each durable (an LMDB commit), and each registered device
 * becoming a WireGuard peer, a member of its role's firewall set and a
 * name in DNS. Several clients run in parallel, each on its own keep-alive
 * TLS connection.
 *
 * Against it, in the same rounds (interleaved, who goes first alternates):
 * - the floor of durability: two bare durable LMDB commits per onboarding,
 *   one after another;
 * - a plain HTTPS server (libmicrohttpd, the same certificate, TLS
 *   priorities and thread count as the api) doing one durable LMDB commit
 *   per request, driven by the same clients: the TLS + 2 fsync work of an
 *   onboarding done the plain way, with its own latencies.
 * Also measured: the CPU the clients themselves use (they share the
 * machine's CPUs with the gateway), and the CPU time per onboarding of
 * the gateway (meshgated + wireguard-go) against the plain server's: the
 * figure a busy machine blurs least.
 * Prints figures; never a test.
 *
 * usage: bench_onboarding SOCKET URL STATE_DIR WORK_DIR GATEWAY_PIDS
 *                         [PRELOAD] [MEASURED] [CLIENTS] [ROUNDS]
 * GATEWAY_PIDS: comma-separated (meshgated, wireguard-go). MEASURED is per
 * round. run.sh sets up the gateway in a namespace and calls this there. */
#include <curl/curl.h>
#include <jansson.h>
#include <lmdb.h>
#include <microhttpd.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bus_client.h"
#include "device_key.h"
#include "rounds.h"

#define MAX_CLIENTS 64
#define PLAIN_PORT  8444

/* The preloaded users' roles, in the proportions of a company: most are
 * developers. run.sh gives the firewall a policy for each. */
static const char *const roles[] = {"developer", "developer", "developer", "developer",
                                    "admin",     "ops",       "support"};
#define NROLES (sizeof(roles) / sizeof(roles[0]))

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* CPU seconds (user + system) of the calling thread (RUSAGE_THREAD) or
 * of the whole process (RUSAGE_SELF). */
static double cpu_seconds(int who)
{
	struct rusage ru;
	getrusage(who, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* CPU seconds of the processes in `pids` (comma-separated), from /proc. */
static double processes_cpu(const char *pids)
{
	double total = 0;
	long hz = sysconf(_SC_CLK_TCK);
	char list[256];
	snprintf(list, sizeof(list), "%s", pids);
	for (char *save, *pid = strtok_r(list, ",", &save); pid; pid = strtok_r(NULL, ",", &save)) {
		char path[64], line[1024];
		snprintf(path, sizeof(path), "/proc/%s/stat", pid);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		unsigned long utime = 0, stime = 0;
		/* the fields after the command's closing parenthesis: utime is 14th */
		char *end = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
		if (end)
			sscanf(end + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			       &utime, &stime);
		fclose(f);
		total += (double)(utime + stime) / (double)hz;
	}
	return total;
}

static json_t *bus_call(struct mg_bus_client *bus, const char *service, json_t *request)
{
	json_t *reply = NULL;
	if (mg_bus_client_request(bus, service, request, 10000, &reply)) {
		char *text = reply ? json_dumps(reply, 0) : NULL;
		fprintf(stderr, "%s: %s\n", service, text ? text : "no reply");
		exit(1);
	}
	json_decref(request);
	return reply;
}

/* Users (each with a code) and, for the preload, their devices: made over
 * the bus, not measured, by several bus clients at once so that preauth's
 * group commit shares the durable commits. */
struct maker {
	void *zctx;
	const char *endpoint, *prefix;
	int from, n;  /* users from..from+n-1 */
	int onboard;  /* also redeem and register */
	char **codes; /* out: the codes (NULL when onboarded) */
};

static void *maker_loop(void *arg)
{
	struct maker *m = arg;
	char err[256];
	struct mg_bus_client *bus = mg_bus_client_new(m->zctx, m->endpoint, err, sizeof(err));
	if (!bus) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	for (int i = m->from; i < m->from + m->n; i++) {
		char name[32], key[WG_KEY_B64_LEN];
		snprintf(name, sizeof(name), "%s%d", m->prefix, i);
		json_t *user = bus_call(
		    bus, "preauth.user.add",
		    json_pack("{s:s, s:s}", "name", name, "role", roles[(size_t)i % NROLES]));
		json_t *code = json_object_get(user, "code");
		if (!m->onboard) {
			m->codes[i] = strdup(json_string_value(code));
			json_decref(user);
			continue;
		}
		json_t *cfg = bus_call(bus, "preauth.redeem", json_pack("{s:O}", "code", code));
		device_public_key(key);
		json_decref(bus_call(bus, "preauth.register",
		                     json_pack("{s:O, s:O, s:s, s:O}", "device_id",
		                               json_object_get(cfg, "device_id"), "register_token",
		                               json_object_get(cfg, "register_token"), "public_key",
		                               key, "address", json_object_get(cfg, "address"))));
		json_decref(cfg);
		json_decref(user);
	}
	mg_bus_client_free(bus);
	return NULL;
}

/* n users named PREFIX0..; their codes, or NULL when `onboard`: then each
 * has redeemed its code and registered a device. */
static char **make_users(void *zctx, const char *endpoint, const char *prefix, int n, int onboard)
{
	enum { MAKERS = 8 };
	pthread_t th[MAKERS];
	struct maker makers[MAKERS];
	char **codes = onboard ? NULL : calloc((size_t)n, sizeof(*codes));
	for (int i = 0; i < MAKERS; i++) {
		int from = n * i / MAKERS, to = n * (i + 1) / MAKERS;
		makers[i] = (struct maker){zctx, endpoint, prefix, from, to - from, onboard, codes};
		pthread_create(&th[i], NULL, maker_loop, &makers[i]);
	}
	for (int i = 0; i < MAKERS; i++)
		pthread_join(th[i], NULL);
	return codes;
}

/* ---- the clients ---- */

struct body {
	char data[8192];
	size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	size_t len = size * n;
	if (b->len + len < sizeof(b->data)) {
		memcpy(b->data + b->len, p, len);
		b->len += len;
		b->data[b->len] = '\0';
	}
	return len;
}

static json_t *post(CURL *curl, const char *url, json_t *request)
{
	struct body b = {.len = 0};
	char *text = json_dumps(request, JSON_COMPACT);
	long status = 0;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
	CURLcode rc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	free(text);
	if (rc != CURLE_OK || status != 200) {
		fprintf(stderr, "POST %s: %s, HTTP %ld: %s\n", url, curl_easy_strerror(rc), status,
		        b.data);
		return NULL;
	}
	return json_loads(b.data, 0, NULL);
}

struct client {
	const char *base, *ca;
	char **codes;
	int n;
	double *lat; /* ms, one per onboarding */
	int failed;
	double cpu; /* seconds this client's thread used */
};

static void *client_loop(void *arg)
{
	struct client *c = arg;
	char redeem[512], reg[512];
	double cpu0 = cpu_seconds(RUSAGE_THREAD);
	struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
	CURL *curl = curl_easy_init();
	snprintf(redeem, sizeof(redeem), "%s/api/v1/redeem", c->base);
	snprintf(reg, sizeof(reg), "%s/api/v1/register", c->base);
	curl_easy_setopt(curl, CURLOPT_CAINFO, c->ca);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	for (int i = 0; i < c->n; i++) {
		char key[WG_KEY_B64_LEN];
		double t0 = now();
		json_t *req = json_pack("{s:s}", "code", c->codes[i]);
		json_t *cfg = post(curl, redeem, req);
		json_t *done = NULL;
		if (cfg) {
			device_public_key(key);
			json_t *r = json_pack("{s:O, s:O, s:s, s:O}", "device_id",
			                      json_object_get(cfg, "device_id"), "register_token",
			                      json_object_get(cfg, "register_token"), "public_key",
			                      key, "address", json_object_get(cfg, "address"));
			done = post(curl, reg, r);
			json_decref(r);
		}
		c->failed += !done;
		c->lat[i] = (now() - t0) * 1000;
		json_decref(req), json_decref(cfg), json_decref(done);
	}
	curl_easy_cleanup(curl);
	curl_slist_free_all(headers);
	c->cpu = cpu_seconds(RUSAGE_THREAD) - cpu0;
	return NULL;
}

/* One round of load: n onboardings by nclients clients against `base`. */
struct load {
	double rate, p50, p99; /* onboardings/s, ms */
	double client_cpu;     /* seconds, all clients */
	double process_cpu;    /* seconds, this whole process (the plain server too) */
	double wall;           /* seconds */
	int failed;
};

static struct load run_clients(const char *base, const char *ca, char **codes, int n, int nclients)
{
	pthread_t th[MAX_CLIENTS];
	struct client clients[MAX_CLIENTS];
	int per = n / nclients;
	double *lat = calloc((size_t)n, sizeof(double));
	struct load l = {0};
	double cpu0 = cpu_seconds(RUSAGE_SELF);
	double t0 = now();
	for (int i = 0; i < nclients; i++) {
		clients[i] = (struct client){base, ca, codes + i * per, per, lat + i * per, 0, 0};
		pthread_create(&th[i], NULL, client_loop, &clients[i]);
	}
	for (int i = 0; i < nclients; i++) {
		pthread_join(th[i], NULL);
		l.failed += clients[i].failed;
		l.client_cpu += clients[i].cpu;
	}
	l.wall = now() - t0;
	l.process_cpu = cpu_seconds(RUSAGE_SELF) - cpu0;
	int done = per * nclients;
	qsort(lat, (size_t)done, sizeof(double), cmp);
	l.rate = done / l.wall;
	l.p50 = lat[done / 2];
	l.p99 = lat[done * 99 / 100];
	free(lat);
	return l;
}

/* ---- the baselines ---- */

static int lmdb_open(const char *dir, MDB_env **env, MDB_dbi *dbi)
{
	MDB_txn *txn;
	if (mdb_env_create(env) || mdb_env_set_mapsize(*env, 1UL << 30) ||
	    mdb_env_open(*env, dir, MDB_NOTLS, 0600) || mdb_txn_begin(*env, NULL, 0, &txn))
		return -1;
	if (mdb_dbi_open(txn, NULL, 0, dbi)) {
		mdb_txn_abort(txn);
		return -1;
	}
	return mdb_txn_commit(txn) ? -1 : 0;
}

/* One durable commit of one put. */
static int lmdb_put(MDB_env *env, MDB_dbi dbi, const char *key, const char *value, size_t len)
{
	MDB_txn *txn;
	MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)value};
	if (mdb_txn_begin(env, NULL, 0, &txn))
		return -1;
	if (mdb_put(txn, dbi, &k, &v, 0)) {
		mdb_txn_abort(txn);
		return -1;
	}
	return mdb_txn_commit(txn) ? -1 : 0;
}

/* The floor: two durable LMDB commits per onboarding, nothing else. */
static double bare_lmdb_onboardings(MDB_env *env, MDB_dbi dbi, int round, int n)
{
	char value[300];
	memset(value, 'x', sizeof(value));
	double t0 = now();
	for (int i = 0; i < 2 * n; i++) {
		char key[32];
		snprintf(key, sizeof(key), "r%d-k%d", round, i);
		lmdb_put(env, dbi, key, value, sizeof(value));
	}
	return n / (now() - t0);
}

/* The plain HTTPS server: each POST is one durable commit of its body,
 * answered with what the client needs for its next call. */
struct plain {
	MDB_env *env;
	MDB_dbi dbi;
	atomic_uint next_id;
};

struct plain_request {
	char body[4096];
	size_t len;
};

static enum MHD_Result plain_answer(struct MHD_Connection *conn, unsigned status, json_t *reply)
{
	char *text = json_dumps(reply, JSON_COMPACT);
	json_decref(reply);
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	enum MHD_Result ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result plain_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                        const char *method, const char *version, const char *upload,
                                        size_t *upload_size, void **con_cls)
{
	struct plain *p = cls;
	struct plain_request *r = *con_cls;
	(void)method, (void)version;
	if (!r) {
		*con_cls = calloc(1, sizeof(*r));
		return *con_cls ? MHD_YES : MHD_NO;
	}
	if (*upload_size) {
		size_t n = *upload_size < sizeof(r->body) - 1 - r->len
		               ? *upload_size
		               : sizeof(r->body) - 1 - r->len;
		memcpy(r->body + r->len, upload, n);
		r->len += n;
		*upload_size = 0;
		return MHD_YES;
	}
	json_t *request = json_loadb(r->body, r->len, 0, NULL);
	if (!request)
		return plain_answer(conn, 400, json_pack("{s:s}", "error", "bad_request"));
	char key[32];
	json_t *reply;
	if (strstr(url, "/redeem")) {
		unsigned id = atomic_fetch_add(&p->next_id, 1);
		char token[65], address[16];
		unsigned char raw[32];
		randombytes_buf(raw, sizeof(raw));
		sodium_bin2hex(token, sizeof(token), raw, sizeof(raw));
		snprintf(key, sizeof(key), "%016x", id);
		snprintf(address, sizeof(address), "10.%u.%u.%u", 100 + (id >> 16 & 63),
		         id >> 8 & 255, id & 255);
		reply = json_pack("{s:s, s:s, s:s}", "device_id", key, "register_token", token,
		                  "address", address);
	} else {
		const char *id = json_string_value(json_object_get(request, "device_id"));
		snprintf(key, sizeof(key), "%.16s", id ? id : "?");
		reply = json_pack("{s:s, s:s}", "device_id", key, "state", "active");
	}
	char *record = json_dumps(request, JSON_COMPACT);
	int rc = lmdb_put(p->env, p->dbi, key, record, strlen(record));
	free(record);
	json_decref(request);
	if (rc) {
		json_decref(reply);
		return plain_answer(conn, 500, json_pack("{s:s}", "error", "internal"));
	}
	return plain_answer(conn, 200, reply);
}

static void plain_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                               enum MHD_RequestTerminationCode toe)
{
	(void)cls, (void)conn, (void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = calloc(1, 65536);
	if (!f || !text || !fread(text, 1, 65535, f)) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	fclose(f);
	return text;
}

/* Listens on 127.0.0.1:PLAIN_PORT with the api's certificate and settings. */
static struct MHD_Daemon *plain_start(struct plain *p, const char *state_dir, unsigned threads)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/api-server.pem", state_dir);
	char *cert = read_all(path);
	snprintf(path, sizeof(path), "%s/api-server.key", state_dir);
	char *key = read_all(path);
	struct MHD_Daemon *d = MHD_start_daemon(
	    MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, PLAIN_PORT, NULL, NULL,
	    plain_on_request, p, MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_HTTPS_MEM_KEY, key,
	    MHD_OPTION_HTTPS_PRIORITIES, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
	    MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED, plain_on_completed,
	    p, MHD_OPTION_END);
	/* MHD copies neither: they live as long as the server, freed at exit */
	return d;
}

/* ---- main ---- */

struct settings {
	const char *socket, *url, *state_dir, *work_dir, *pids;
	int preload, n, clients, rounds;
};

static int parse_args(int argc, char **argv, struct settings *s)
{
	if (argc < 6) {
		fprintf(stderr,
		        "usage: bench_onboarding SOCKET URL STATE_DIR WORK_DIR GATEWAY_PIDS "
		        "[PRELOAD] [MEASURED] [CLIENTS] [ROUNDS]\n");
		return -1;
	}
	*s = (struct settings){argv[1], argv[2], argv[3], argv[4], argv[5], 10000, 2000, 8, 5};
	if (argc > 6)
		s->preload = atoi(argv[6]);
	if (argc > 7)
		s->n = atoi(argv[7]);
	if (argc > 8)
		s->clients = atoi(argv[8]);
	if (argc > 9)
		s->rounds = atoi(argv[9]);
	if (s->preload < 0 || s->clients < 1 || s->clients > MAX_CLIENTS || s->n < s->clients ||
	    s->rounds < 1 || s->rounds > MAX_ROUNDS) {
		fprintf(stderr, "PRELOAD >= 0, CLIENTS 1-%d, MEASURED >= CLIENTS, ROUNDS 1-%d\n",
		        MAX_CLIENTS, MAX_ROUNDS);
		return -1;
	}
	return 0;
}

static void print_load(const char *who, int round, const struct load *l)
{
	printf("  round %d %-14s %6.0f onboardings/s, p50 %6.2f ms, p99 %6.2f ms, clients' CPU "
	       "%.2f s (%.0f%% of one CPU), %d failed\n",
	       round + 1, who, l->rate, l->p50, l->p99, l->client_cpu,
	       100 * l->client_cpu / l->wall, l->failed);
}

int main(int argc, char **argv)
{
	struct settings s;
	char endpoint[512], ca[512], dir[512];
	if (parse_args(argc, argv, &s))
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT))
		return 1;
	snprintf(ca, sizeof(ca), "%s/ca.pem", s.state_dir);
	snprintf(endpoint, sizeof(endpoint), "ipc://%s", s.socket);
	void *zctx = zmq_ctx_new();
	double t0 = now();
	make_users(zctx, endpoint, "pre", s.preload, 1);
	printf("preload: %d devices onboarded over the bus in %.1f s\n", s.preload, now() - t0);
	char **codes = make_users(zctx, endpoint, "dev", s.n * s.rounds, 0);

	MDB_env *bare_env;
	MDB_dbi bare_dbi;
	struct plain plain = {0};
	snprintf(dir, sizeof(dir), "%s/bare", s.work_dir);
	mkdir(dir, 0700);
	if (lmdb_open(dir, &bare_env, &bare_dbi))
		return 1;
	snprintf(dir, sizeof(dir), "%s/plain", s.work_dir);
	mkdir(dir, 0700);
	if (lmdb_open(dir, &plain.env, &plain.dbi))
		return 1;
	struct MHD_Daemon *plain_server = plain_start(&plain, s.state_dir, (unsigned)s.clients);
	if (!plain_server) {
		fprintf(stderr, "cannot start the plain HTTPS server on port %d\n", PLAIN_PORT);
		return 1;
	}
	char plain_url[64];
	snprintf(plain_url, sizeof(plain_url), "https://127.0.0.1:%d", PLAIN_PORT);

	struct figure ours = {.name = "ours: onboardings/s", .unit = "/s"},
	              ours_p99 = {.name = "ours: p99", .unit = "ms"},
	              ours_p50 = {.name = "ours: p50", .unit = "ms"},
	              bare = {.name = "2 bare durable LMDB commits", .unit = "/s"},
	              plain_rate = {.name = "plain HTTPS server", .unit = "/s"},
	              plain_p99 = {.name = "plain HTTPS server: p99", .unit = "ms"},
	              client_share = {.name = "ours: clients' CPU, share of all CPUs", .unit = "%"},
	              gateway_cpu = {.name = "ours: gateway's CPU per onboarding", .unit = "ms"},
	              plain_cpu = {.name = "plain HTTPS server's CPU per onboarding", .unit = "ms"},
	              gateway_share = {.name = "ours: gateway's CPU, share of all CPUs",
	                               .unit = "%"};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int failed = 0;
	printf("%d rounds of %d onboardings, %d clients, %d devices in state at the start; "
	       "ours, the plain HTTPS server and the bare commits alternate who goes first\n",
	       s.rounds, s.n, s.clients, s.preload);
	for (int r = 0; r < s.rounds; r++) {
		for (int turn = 0; turn < 3; turn++) {
			int who = r % 2 ? 2 - turn : turn; /* 0 ours, 1 plain, 2 bare */
			if (who == 0) {
				double gw0 = processes_cpu(s.pids);
				struct load l =
				    run_clients(s.url, ca, codes + r * s.n, s.n, s.clients);
				double gw = processes_cpu(s.pids) - gw0;
				print_load("ours", r, &l);
				printf(
				    "  round %d %-14s gateway's CPU %.2f s (%.0f%% of one CPU)\n",
				    r + 1, "", gw, 100 * gw / l.wall);
				failed += l.failed;
				ours.v[ours.n++] = l.rate;
				ours_p50.v[ours_p50.n++] = l.p50;
				ours_p99.v[ours_p99.n++] = l.p99;
				client_share.v[client_share.n++] =
				    100 * l.client_cpu / l.wall / ncpu;
				gateway_share.v[gateway_share.n++] = 100 * gw / l.wall / ncpu;
				gateway_cpu.v[gateway_cpu.n++] = 1000 * gw / (l.rate * l.wall);
			} else if (who == 1) {
				struct load l = run_clients(plain_url, ca, codes, s.n, s.clients);
				print_load("plain HTTPS", r, &l);
				plain_rate.v[plain_rate.n++] = l.rate;
				plain_p99.v[plain_p99.n++] = l.p99;
				/* the server's threads: the process but the clients */
				plain_cpu.v[plain_cpu.n++] =
				    1000 * (l.process_cpu - l.client_cpu) / (l.rate * l.wall);
			} else {
				bare.v[bare.n++] =
				    bare_lmdb_onboardings(bare_env, bare_dbi, r, s.n);
				printf("  round %d %-14s %6.0f onboardings/s\n", r + 1, "bare LMDB",
				       bare.v[bare.n - 1]);
			}
		}
	}
	printf("onboardings over HTTPS (redeem + register, durable), all five plugins:\n");
	figure_print(&ours);
	figure_print(&ours_p50);
	figure_print(&ours_p99);
	figure_print(&plain_rate);
	figure_print(&plain_p99);
	figure_print(&bare);
	ratio_print("ours / plain HTTPS server", &ours, &plain_rate);
	ratio_print("ours / 2 bare durable LMDB commits", &ours, &bare);
	figure_print(&client_share);
	figure_print(&gateway_share);
	figure_print(&gateway_cpu);
	figure_print(&plain_cpu);
	char what[160];
	snprintf(what, sizeof(what),
	         "onboardings/s, real gateway (5 plugins, %dk devices, %d clients)",
	         s.preload / 1000, s.clients);
	table_row(what, &ours, "plain HTTPS server (TLS + 2 durable commits)", &plain_rate);
	table_row("onboarding p99 latency", &ours_p99, "plain HTTPS server", &plain_p99);
	/* CPU time per onboarding: what the machine's noise blurs least */
	table_row("gateway CPU per onboarding (meshgated + wireguard-go)", &gateway_cpu,
	          "plain HTTPS server", &plain_cpu);
	table_row("onboardings/s vs the floor", &ours, "2 bare durable LMDB commits, sequential",
	          &bare);
	MHD_stop_daemon(plain_server);
	mdb_env_close(plain.env);
	mdb_env_close(bare_env);
	zmq_ctx_term(zctx);
	return failed ? 1 : 0;
}
