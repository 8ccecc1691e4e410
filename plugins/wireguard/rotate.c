/* The gateway key's timed switch (rotate.h). */
#include "rotate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

/* A set of the key that failed (wireguard-go busy) is tried again this
 * soon: devices switch at T + margin and must find the key there. */
#define WGP_SWITCH_RETRY_MS 200
/* How long secret.promote may take (Vault: a login, a read and a write),
 * and how soon a promote that failed is asked again. */
#define WGP_PROMOTE_TIMEOUT_MS 10000
#define WGP_PROMOTE_RETRY_MS   5000

static void promote(mg_ctx *ctx, void *arg)
{
	struct wgp_rotation *r = arg;
	json_t *req = json_pack("{s:s, s:I}", "name", r->name, "version",
	                        (json_int_t)r->promote_version),
	       *reply = NULL;
	int rc =
	    req ? mg_request(ctx, "secret.promote", req, WGP_PROMOTE_TIMEOUT_MS, &reply) : -ENOMEM;
	json_decref(req);
	const char *code = json_string_value(json_object_get(reply, "error"));
	if (!rc || (code && !strcmp(code, "conflict"))) {
		if (rc) /* another version in use: nothing this plugin can redo */
			mg_error_log(ctx, "%s: version %lld switched to but not promoted: %s",
			             r->name, r->promote_version, mg_reply_error(reply));
		else
			mg_info(ctx, "%s: version %lld promoted in the secret service", r->name,
			        r->promote_version);
		r->promote_version = 0;
		if (r->promote_timer > 0)
			mg_timer_del(ctx, r->promote_timer);
		r->promote_timer = 0;
	} else if (r->promote_timer <= 0) {
		mg_warn(ctx, "%s: cannot promote version %lld (%s): trying again every %d s",
		        r->name, r->promote_version, reply ? mg_reply_error(reply) : strerror(-rc),
		        WGP_PROMOTE_RETRY_MS / 1000);
		r->promote_timer = mg_timer_add(ctx, WGP_PROMOTE_RETRY_MS, 1, promote, r);
	}
	json_decref(reply);
}

/* T: the interface takes the next key. Its sessions keep receiving; what
 * it sends waits in WireGuard's staging queue until each device, at T +
 * margin, replaced the peer and made a handshake with the new key. */
static void switch_key(mg_ctx *ctx, void *arg)
{
	struct wgp_rotation *r = arg;
	char err[256], pub_text[WG_KEY_B64_LEN];
	wg_key pub;
	r->switch_timer = 0;
	if (wg_device_configure(r->backend, r->ifname, r->next_key, -1, -1, err, sizeof(err))) {
		mg_warn(ctx, "%s: cannot set the next key on %s: %s (again in %d ms)", r->name,
		        r->ifname, err, WGP_SWITCH_RETRY_MS);
		r->switch_timer = mg_timer_add(ctx, WGP_SWITCH_RETRY_MS, 0, switch_key, r);
		return;
	}
	wg_key_public_from_private(pub, r->next_key);
	wg_key_to_base64(pub_text, pub);
	mg_info(ctx, "%s: switched %s to version %lld, public key %s", r->name, r->ifname,
	        r->next_version, pub_text);
	r->switched(ctx, r->next_key);
	r->promote_version = r->next_version;
	r->next_version = 0;
	r->switch_at_ms = 0;
	sodium_memzero(r->next_key, sizeof(r->next_key));
	if (r->publish(ctx))
		mg_warn(ctx, "%s: cannot write wg/server with the new public key", r->name);
	promote(ctx, r);
}

/* Publishes the next key and T = now + lead, and sets T's timer. */
static void schedule(mg_ctx *ctx, struct wgp_rotation *r)
{
	char pub_text[WG_KEY_B64_LEN];
	wg_key pub;
	r->switch_at_ms = mg_now_ms(ctx) + r->lead_ms;
	r->switch_timer = mg_timer_add(ctx, (unsigned)r->lead_ms, 0, switch_key, r);
	if (r->switch_timer <= 0) {
		mg_error_log(ctx, "%s: no timer for the switch: %s", r->name,
		             strerror(-r->switch_timer));
		r->switch_at_ms = 0;
		r->switch_timer = 0;
		return;
	}
	wg_key_public_from_private(pub, r->next_key);
	wg_key_to_base64(pub_text, pub);
	mg_info(ctx, "%s: version %lld (public key %s) published, %s switches to it in %llu ms",
	        r->name, r->next_version, pub_text, r->ifname, (unsigned long long)r->lead_ms);
	if (r->publish(ctx))
		mg_warn(ctx, "%s: cannot write wg/server with the next key", r->name);
}

/* secret.next for this interface's key: the next version is read and its
 * switch scheduled (one at a time: a switch under way goes on). */
static void on_secret_next(mg_ctx *ctx, const char *topic, json_t *event, void *arg)
{
	struct wgp_rotation *r = arg;
	struct secret_wg_key keys;
	char err[256];
	(void)topic;
	const char *name = json_string_value(json_object_get(event, "name"));
	if (!name || strcmp(name, r->name) || r->next_version || r->promote_version)
		return;
	if (secret_get_wg_keys(ctx, r->name, &keys, err, sizeof(err))) {
		mg_warn(ctx, "%s: a next version was made, but %s", r->name, err);
		return;
	}
	if (keys.has_next) {
		memcpy(r->next_key, keys.next_key, sizeof(r->next_key));
		r->next_version = keys.next_version;
		schedule(ctx, r);
	}
	sodium_memzero(&keys, sizeof(keys));
}

int wgp_rotation_init(mg_ctx *ctx, struct wgp_rotation *r, const struct secret_wg_key *keys,
                      const char *lead, char *err, size_t errlen)
{
	int rc = mg_duration_parse(lead, &r->lead_ms, err, errlen);
	if (rc)
		return rc;
	if (r->lead_ms > UINT32_MAX) {
		snprintf(err, errlen, "\"%s\" is too long", lead);
		return -EINVAL;
	}
	if (keys->has_next) {
		memcpy(r->next_key, keys->next_key, sizeof(r->next_key));
		r->next_version = keys->next_version;
	}
	return mg_subscribe(ctx, SECRET_EVENT_NEXT, on_secret_next, r);
}

bool wgp_rotation_adopt(mg_ctx *ctx, struct wgp_rotation *r, const wg_key iface_key)
{
	if (!r->next_version || !wg_key_equal(iface_key, r->next_key))
		return false;
	mg_info(ctx, "%s: %s runs version %lld already (switched before a restart)", r->name,
	        r->ifname, r->next_version);
	r->switched(ctx, r->next_key);
	r->promote_version = r->next_version;
	r->next_version = 0;
	sodium_memzero(r->next_key, sizeof(r->next_key));
	return true;
}

void wgp_rotation_start(mg_ctx *ctx, struct wgp_rotation *r)
{
	if (r->promote_version)
		promote(ctx, r);
	if (r->next_version && !r->switch_at_ms)
		schedule(ctx, r);
}

void wgp_rotation_describe(const struct wgp_rotation *r, json_t *server)
{
	char pub_text[WG_KEY_B64_LEN];
	wg_key pub;
	if (!r->next_version || !r->switch_at_ms)
		return;
	wg_key_public_from_private(pub, r->next_key);
	wg_key_to_base64(pub_text, pub);
	json_object_set_new(server, "next_public_key", json_string(pub_text));
	json_object_set_new(server, "switch_at_ms", json_integer((json_int_t)r->switch_at_ms));
	json_object_set_new(server, "next_version", json_integer(r->next_version));
}

void wgp_rotation_stop(struct wgp_rotation *r)
{
	sodium_memzero(r->next_key, sizeof(r->next_key));
}
