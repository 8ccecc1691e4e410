/* Fills a running gateway's state with N devices the way the field does:
 * for each, preauth.user.add (a code), preauth.redeem and
 * preauth.register with a fresh WireGuard key, over the bus, each one
 * durable and announced like an employee's onboarding. For
 * bench/startup.sh, which then times start-ups on that state.
 *
 * usage: preload_devices SOCKET N [ROLE] */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <zmq.h>

#include "bus_client.h"

/* A fresh WireGuard public key (the device's; its private half is dropped). */
static void public_key(char out[64])
{
	unsigned char priv[32], pub[32];
	randombytes_buf(priv, sizeof(priv));
	priv[0] &= 248, priv[31] = (priv[31] & 127) | 64;
	crypto_scalarmult_base(pub, priv);
	sodium_bin2base64(out, 64, pub, 32, sodium_base64_VARIANT_ORIGINAL);
}

/* One request that must succeed; exits with its error otherwise. */
static json_t *call(struct mg_bus_client *bus, const char *service, json_t *request)
{
	json_t *reply;
	if (mg_bus_client_request(bus, service, request, 30000, &reply)) {
		char *text = json_dumps(reply, JSON_COMPACT);
		fprintf(stderr, "preload_devices: %s: %s\n", service, text ? text : "?");
		exit(1);
	}
	json_decref(request);
	return reply;
}

int main(int argc, char **argv)
{
	if (argc < 3 || atoi(argv[2]) <= 0) {
		fprintf(stderr, "usage: preload_devices SOCKET N [ROLE]\n");
		return 2;
	}
	const char *role = argc > 3 ? argv[3] : "developer";
	int n = atoi(argv[2]);
	char endpoint[4200], err[256];
	if (sodium_init() < 0)
		return 1;
	snprintf(endpoint, sizeof(endpoint), "ipc://%s", argv[1]);
	void *zctx = zmq_ctx_new();
	struct mg_bus_client *bus = mg_bus_client_new(zctx, endpoint, err, sizeof(err));
	if (!bus) {
		fprintf(stderr, "preload_devices: %s\n", err);
		return 1;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++) {
		char name[32], key[64];
		snprintf(name, sizeof(name), "user%d", i);
		json_t *user = call(bus, "preauth.user.add",
		                    json_pack("{s:s, s:s}", "name", name, "role", role));
		json_t *redeemed = call(bus, "preauth.redeem",
		                        json_pack("{s:O}", "code", json_object_get(user, "code")));
		public_key(key);
		json_decref(
		    call(bus, "preauth.register",
		         json_pack("{s:O, s:O, s:s, s:O}", "device_id",
		                   json_object_get(redeemed, "device_id"), "register_token",
		                   json_object_get(redeemed, "register_token"), "public_key", key,
		                   "address", json_object_get(redeemed, "address"))));
		json_decref(user);
		json_decref(redeemed);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("preload: %d devices onboarded over the bus in %.1f s\n", n,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	mg_bus_client_free(bus);
	zmq_ctx_term(zctx);
	return 0;
}
