/* Onboardings per second over HTTPS with 10,000 devices already in state:
 * each onboarding is the client's two calls, redeem then register, to the
 * real api + preauth + wireguard plugins, each durable (two LMDB commits)
 * and each registered device becoming a WireGuard peer. Several clients
 * run in parallel, each on its own keep-alive TLS connection. Against it,
 * in the same run, the floor of durability: two bare LMDB commits per
 * onboarding. Prints figures; never a test.
 *
 * usage: bench_onboarding SOCKET URL CA_FILE [PRELOAD] [MEASURED] [CLIENTS]
 * (run.sh sets up the gateway in a namespace and calls this inside it) */
#include <curl/curl.h>
#include <jansson.h>
#include <lmdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "bus_client.h"

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

/* A fresh WireGuard public key (the device's; its private half is thrown away). */
static void public_key(char out[64])
{
	unsigned char priv[32], pub[32];
	randombytes_buf(priv, sizeof(priv));
	priv[0] &= 248, priv[31] = (priv[31] & 127) | 64;
	crypto_scalarmult_base(pub, priv);
	sodium_bin2base64(out, 64, pub, 32, sodium_base64_VARIANT_ORIGINAL);
}

/* Codes for n new users, made over the bus (not measured). */
static char **make_codes(struct mg_bus_client *bus, const char *prefix, int n)
{
	char **codes = calloc((size_t)n, sizeof(*codes));
	for (int i = 0; i < n; i++) {
		char name[32];
		json_t *reply;
		snprintf(name, sizeof(name), "%s%d", prefix, i);
		json_t *req = json_pack("{s:s, s:s}", "name", name, "role", "developer");
		if (mg_bus_client_request(bus, "preauth.user.add", req, 10000, &reply)) {
			fprintf(stderr, "user.add: %s\n", json_dumps(reply, 0));
			exit(1);
		}
		codes[i] = strdup(json_string_value(json_object_get(reply, "code")));
		json_decref(req);
		json_decref(reply);
	}
	return codes;
}

/* The preload: devices onboarded straight over the bus. */
static void preload(struct mg_bus_client *bus, int n)
{
	char **codes = make_codes(bus, "pre", n);
	for (int i = 0; i < n; i++) {
		json_t *reply, *reply2;
		char key[64];
		json_t *req = json_pack("{s:s}", "code", codes[i]);
		if (mg_bus_client_request(bus, "preauth.redeem", req, 10000, &reply))
			exit(1);
		public_key(key);
		json_t *reg = json_pack("{s:O, s:O, s:s, s:O}", "device_id",
		                        json_object_get(reply, "device_id"), "register_token",
		                        json_object_get(reply, "register_token"), "public_key", key,
		                        "address", json_object_get(reply, "address"));
		if (mg_bus_client_request(bus, "preauth.register", reg, 10000, &reply2))
			exit(1);
		json_decref(req), json_decref(reg), json_decref(reply), json_decref(reply2);
		free(codes[i]);
	}
	free(codes);
}

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
	double *lat;
	int failed;
};

static void *client_loop(void *arg)
{
	struct client *c = arg;
	char redeem[512], reg[512];
	struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
	CURL *curl = curl_easy_init();
	snprintf(redeem, sizeof(redeem), "%s/api/v1/redeem", c->base);
	snprintf(reg, sizeof(reg), "%s/api/v1/register", c->base);
	curl_easy_setopt(curl, CURLOPT_CAINFO, c->ca);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	for (int i = 0; i < c->n; i++) {
		char key[64];
		double t0 = now();
		json_t *req = json_pack("{s:s}", "code", c->codes[i]);
		json_t *cfg = post(curl, redeem, req);
		json_t *done = NULL;
		if (cfg) {
			public_key(key);
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
	return NULL;
}

/* The floor: two durable LMDB commits per onboarding, nothing else. */
static double bare_lmdb_onboardings(int n)
{
	char dir[] = "/var/tmp/mgonb.XXXXXX", cmd[64];
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn;
	char value[300];
	memset(value, 'x', sizeof(value));
	if (!mkdtemp(dir))
		return 0;
	mdb_env_create(&env);
	mdb_env_set_mapsize(env, 1UL << 30);
	mdb_env_open(env, dir, 0, 0600);
	mdb_txn_begin(env, NULL, 0, &txn);
	mdb_dbi_open(txn, NULL, 0, &dbi);
	mdb_txn_commit(txn);
	double t0 = now();
	for (int i = 0; i < 2 * n; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k%d", i);
		MDB_val k = {strlen(key), key}, v = {sizeof(value), value};
		mdb_txn_begin(env, NULL, 0, &txn);
		mdb_put(txn, dbi, &k, &v, 0);
		mdb_txn_commit(txn);
	}
	double rate = n / (now() - t0);
	mdb_env_close(env);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) ? rate : rate;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr,
		        "usage: bench_onboarding SOCKET URL CA [PRELOAD] [MEASURED] [CLIENTS]\n");
		return 2;
	}
	const char *socket = argv[1], *url = argv[2], *ca = argv[3];
	int pre = argc > 4 ? atoi(argv[4]) : 10000;
	int n = argc > 5 ? atoi(argv[5]) : 2000;
	int nclients = argc > 6 ? atoi(argv[6]) : 4;
	char endpoint[512], err[256];

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT))
		return 1;
	snprintf(endpoint, sizeof(endpoint), "ipc://%s", socket);
	void *zctx = zmq_ctx_new();
	struct mg_bus_client *bus = mg_bus_client_new(zctx, endpoint, err, sizeof(err));
	if (!bus) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	double t0 = now();
	preload(bus, pre);
	printf("preload: %d devices onboarded over the bus in %.1f s\n", pre, now() - t0);
	char **codes = make_codes(bus, "dev", n);

	pthread_t th[64];
	struct client clients[64];
	double *lat = calloc((size_t)n, sizeof(double));
	int per = n / nclients, failed = 0;
	t0 = now();
	for (int i = 0; i < nclients; i++) {
		clients[i] = (struct client){url, ca, codes + i * per, per, lat + i * per, 0};
		pthread_create(&th[i], NULL, client_loop, &clients[i]);
	}
	for (int i = 0; i < nclients; i++) {
		pthread_join(th[i], NULL);
		failed += clients[i].failed;
	}
	double took = now() - t0;
	int done = per * nclients;
	qsort(lat, (size_t)done, sizeof(double), cmp);
	double rate = done / took;
	printf("onboardings over HTTPS (redeem + register, durable), %d clients, %d devices in "
	       "state: %.0f/s, p50 %.2f ms, p99 %.2f ms, %d failed\n",
	       nclients, pre, rate, lat[done / 2], lat[done * 99 / 100], failed);
	double floor_rate = bare_lmdb_onboardings(2000);
	printf("floor: 2 bare durable LMDB commits per onboarding, sequential: %.0f/s; ratio "
	       "ours/floor %.2f\n",
	       floor_rate, rate / floor_rate);
	mg_bus_client_free(bus);
	zmq_ctx_term(zctx);
	return failed ? 1 : 0;
}
