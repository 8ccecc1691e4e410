/* GET /api/v1/admin/handshakes?keys=K1,K2,...: the last handshake of the
 * devices of one page of the panel's list. WireGuard tells them only all
 * at once (wg.status reads every peer), so the answer comes from a copy
 * at most API_HANDSHAKES_MAX_AGE_MS old, read again by one request while
 * the others wait for it: at 10,000 devices any number of panels cost one
 * wg.status every few seconds, and each gets only its page's figures. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

#define API_HANDSHAKES_MAX_AGE_MS 5000u
#define KEYS_MAX                  200

struct api_handshakes {
	pthread_mutex_t lock;
	json_t *by_key; /* public key -> seconds since the epoch (0: never) */
	uint64_t at_ms; /* when by_key was read */
};

struct api_handshakes *api_handshakes_new(void)
{
	struct api_handshakes *h = calloc(1, sizeof(*h));
	if (h)
		pthread_mutex_init(&h->lock, NULL);
	return h;
}

void api_handshakes_free(struct api_handshakes *h)
{
	if (!h)
		return;
	json_decref(h->by_key);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* Reads wg.status again when the copy is too old. Under the lock. */
static json_t *refresh(struct api_handshakes *h, mg_ctx *ctx, int timeout_ms)
{
	uint64_t now = mg_now_ms(ctx);
	if (h->by_key && now >= h->at_ms && now - h->at_ms < API_HANDSHAKES_MAX_AGE_MS)
		return NULL;
	json_t *reply = NULL, *peer;
	size_t i;
	mg_request(ctx, "wg.status", NULL, timeout_ms, &reply);
	if (!reply || mg_reply_error(reply)) {
		json_t *error = reply
		                    ? api_admin_error_of_reply(reply)
		                    : api_admin_error("internal", NULL, "no reply from wg.status");
		json_decref(reply);
		return error;
	}
	json_t *by_key = json_object();
	json_array_foreach(json_object_get(reply, "peers"), i, peer)
	{
		const char *key = json_string_value(json_object_get(peer, "public_key"));
		if (key)
			json_object_set(by_key, key, json_object_get(peer, "last_handshake"));
	}
	json_decref(reply);
	json_decref(h->by_key);
	h->by_key = by_key;
	h->at_ms = now;
	return NULL;
}

unsigned api_handshakes_answer(struct api_handshakes *h, mg_ctx *ctx, int timeout_ms, json_t *query,
                               json_t **answer)
{
	const char *keys = json_string_value(json_object_get(query, "keys"));
	if (!keys || json_object_size(query) != 1) {
		*answer = api_admin_error("bad_request", "keys",
		                          "give ?keys=KEY,KEY,... (the devices' public keys) and "
		                          "nothing else");
		return 400;
	}
	json_t *wanted = json_array();
	for (const char *p = keys; *p;) {
		size_t n = strcspn(p, ",");
		char key[API_WG_KEY_LEN + 1];
		if (n != API_WG_KEY_LEN || json_array_size(wanted) == KEYS_MAX) {
			json_decref(wanted);
			*answer = api_admin_error(
			    "bad_request", "keys",
			    "keys must be at most %d WireGuard public keys, separated by ','",
			    KEYS_MAX);
			return 400;
		}
		memcpy(key, p, n);
		key[n] = '\0';
		if (!api_wg_key_valid(key)) {
			json_decref(wanted);
			*answer = api_admin_error("bad_request", "keys",
			                          "'%s' is not a WireGuard public key", key);
			return 400;
		}
		json_array_append_new(wanted, json_string(key));
		p += n + (p[n] == ',');
	}
	pthread_mutex_lock(&h->lock);
	json_t *error = refresh(h, ctx, timeout_ms);
	json_t *found = json_object(), *key;
	size_t i;
	json_array_foreach(wanted, i, key)
	{
		json_t *at = error ? NULL : json_object_get(h->by_key, json_string_value(key));
		if (at)
			json_object_set(found, json_string_value(key), at);
	}
	pthread_mutex_unlock(&h->lock);
	json_decref(wanted);
	if (error) {
		json_decref(found);
		*answer = error;
		return api_http_status(
		    json_string_value(json_object_get(json_object_get(error, "error"), "code")));
	}
	*answer = json_pack("{s:o, s:s}", "handshakes", found, "node", mg_node_name(ctx));
	return 200;
}
