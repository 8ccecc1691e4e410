/* Onboards N devices into a running gateway the way devices in the field
 * are: for each, a user and its code (preauth.user.add), the redeem
 * (preauth.redeem) and the register with a fresh WireGuard key
 * (preauth.register), all over the local bus socket. Several threads,
 * each with its own bus client, send at once, so that preauth's group
 * commit shares each durable commit among them (one at a time, 50,000
 * devices would be 150,000 fsyncs). Not a benchmark: bench/memory.sh
 * and bench/startup.sh fill the gateway with it, then measure.
 *
 * usage: bench_preload SOCKET N [PREFIX] [THREADS]   (PREFIX: user names,
 * default "u": give each call its own to add more) */
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "bus_client.h"
#include "device_key.h"

struct worker {
	void *zctx;
	const char *endpoint, *prefix;
	int from, to; /* the devices [from, to) */
	int failed;
};

/* One request; its reply, or NULL (said on stderr). */
static json_t *call(struct mg_bus_client *bus, const char *service, json_t *request)
{
	json_t *reply;
	int rc = mg_bus_client_request(bus, service, request, 60000, &reply);
	json_decref(request);
	if (rc) {
		char *text = json_dumps(reply, JSON_COMPACT);
		fprintf(stderr, "bench_preload: %s: %s\n", service, text ? text : "?");
		free(text);
		json_decref(reply);
		return NULL;
	}
	return reply;
}

static int onboard(struct mg_bus_client *bus, const char *prefix, int i)
{
	char name[64], key[WG_KEY_B64_LEN];
	snprintf(name, sizeof(name), "%s%d", prefix, i);
	json_t *user = call(bus, "preauth.user.add",
	                    json_pack("{s:s, s:s}", "name", name, "role", "developer"));
	if (!user)
		return -1;
	json_t *cfg =
	    call(bus, "preauth.redeem", json_pack("{s:O}", "code", json_object_get(user, "code")));
	json_decref(user);
	if (!cfg)
		return -1;
	device_public_key(key);
	json_t *done =
	    call(bus, "preauth.register",
	         json_pack("{s:O, s:O, s:s, s:O}", "device_id", json_object_get(cfg, "device_id"),
	                   "register_token", json_object_get(cfg, "register_token"), "public_key",
	                   key, "address", json_object_get(cfg, "address")));
	json_decref(cfg);
	json_decref(done);
	return done ? 0 : -1;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	char err[256];
	struct mg_bus_client *bus = mg_bus_client_new(w->zctx, w->endpoint, err, sizeof(err));
	if (!bus) {
		fprintf(stderr, "bench_preload: %s\n", err);
		w->failed = w->to - w->from;
		return NULL;
	}
	for (int i = w->from; i < w->to && !w->failed; i++)
		w->failed += onboard(bus, w->prefix, i) != 0;
	mg_bus_client_free(bus);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3 || atoi(argv[2]) < 0) {
		fprintf(stderr, "usage: bench_preload SOCKET N [PREFIX] [THREADS]\n");
		return 2;
	}
	int n = atoi(argv[2]), threads = argc > 4 ? atoi(argv[4]) : 16;
	const char *prefix = argc > 3 ? argv[3] : "u";
	if (threads < 1 || threads > 256)
		threads = 16;
	if (sodium_init() < 0)
		return 1;
	char endpoint[512];
	snprintf(endpoint, sizeof(endpoint), "ipc://%s", argv[1]);
	void *zctx = zmq_ctx_new();
	struct worker *w = calloc((size_t)threads, sizeof(*w));
	pthread_t *tid = calloc((size_t)threads, sizeof(*tid));
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int t = 0; t < threads; t++) {
		w[t] = (struct worker){zctx,
		                       endpoint,
		                       prefix,
		                       (int)((long)n * t / threads),
		                       (int)((long)n * (t + 1) / threads),
		                       0};
		pthread_create(&tid[t], NULL, work, &w[t]);
	}
	int failed = 0;
	for (int t = 0; t < threads; t++) {
		pthread_join(tid[t], NULL);
		failed += w[t].failed;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("bench_preload: %d devices onboarded in %.1f s (%.0f/s), %d failed\n", n - failed, s,
	       s > 0 ? (n - failed) / s : 0, failed);
	free(w);
	free(tid);
	zmq_ctx_term(zctx);
	return failed ? 1 : 0;
}
