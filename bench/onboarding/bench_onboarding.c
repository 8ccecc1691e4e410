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

#include "onboard_clients.h"
#include "rounds.h"

#define PLAIN_PORT 8444

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

/* The api's server key: a secret of the secret service (api/server,
 * base64 of its PEM), not a file. */
static char *api_server_key(void *zctx, const char *endpoint)
{
	char err[256];
	size_t len = 0;
	struct mg_bus_client *bus = mg_bus_client_new(zctx, endpoint, err, sizeof(err));
	json_t *reply = bus ? bus_call(bus, "secret.get",
	                               json_pack("{s:s, s:b}", "name", "api/server", "create", 0))
	                    : NULL;
	const char *text = json_string_value(json_object_get(reply, "key"));
	char *key = text ? calloc(1, strlen(text) + 1) : NULL;
	if (!key || sodium_base642bin((unsigned char *)key, strlen(text), text, strlen(text), NULL,
	                              &len, NULL, sodium_base64_VARIANT_ORIGINAL)) {
		fprintf(stderr, "cannot read the api's server key (secret.get api/server)\n");
		exit(1);
	}
	json_decref(reply);
	mg_bus_client_free(bus);
	return key;
}

/* Listens on 127.0.0.1:PLAIN_PORT with the api's certificate and settings. */
static struct MHD_Daemon *plain_start(struct plain *p, const char *state_dir, char *key,
                                      unsigned threads)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/api-server.pem", state_dir);
	char *cert = read_all(path);
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
	struct MHD_Daemon *plain_server =
	    plain_start(&plain, s.state_dir, api_server_key(zctx, endpoint), (unsigned)s.clients);
	if (!plain_server) {
		fprintf(stderr, "cannot start the plain HTTPS server on port %d\n", PLAIN_PORT);
		return 1;
	}
	char plain_url[64];
	snprintf(plain_url, sizeof(plain_url), "https://127.0.0.1:%d", PLAIN_PORT);
	const char *plain_base = plain_url, *ca_file = ca;

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
	json_t *threads = json_object(); /* the gateway's CPU by thread, our rounds */
	double onboarded = 0;
	printf("%d rounds of %d onboardings, %d clients, %d devices in state at the start; "
	       "ours, the plain HTTPS server and the bare commits alternate who goes first\n",
	       s.rounds, s.n, s.clients, s.preload);
	for (int r = 0; r < s.rounds; r++) {
		for (int turn = 0; turn < 3; turn++) {
			int who = r % 2 ? 2 - turn : turn; /* 0 ours, 1 plain, 2 bare */
			if (who == 0) {
				double gw0 = processes_cpu(s.pids);
				threads_cpu(s.pids, threads, -1);
				struct load l = run_clients(&s.url, &ca_file, 1, codes + r * s.n,
				                            s.n, s.clients);
				double gw = processes_cpu(s.pids) - gw0;
				threads_cpu(s.pids, threads, +1);
				onboarded += l.rate * l.wall;
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
				struct load l =
				    run_clients(&plain_base, &ca_file, 1, codes, s.n, s.clients);
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
	threads_cpu_print(threads, onboarded, "onboarding");
	json_decref(threads);
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
