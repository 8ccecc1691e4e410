/* Devices: preauth.redeem, .register, .device.list/.disable/.enable/.del,
 * and the reaper of pending devices that never registered. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "preauth.h"

#define TOKEN_TEXT_LEN 64

/* Reaping is cheap (it looks at the pending devices in memory only), so
 * the timer can be frequent; how long a device stays pending is
 * pending_ttl, give or take this. */
#define PURGE_EVERY_MS (3600 * 1000)

static json_t *internal(struct pa *pa, const char *what, const char *why)
{
	mg_error_log(pa->ctx, "%s: %s", what, why);
	return mg_error("internal", "%s: %s", what, why);
}

json_t *pa_internal_rc(struct pa *pa, const char *what, int rc)
{
	/* a cluster's lost race or missing quorum: pa_op_commit said so, and
	 * the caller answers with pa_commit_error */
	if (rc == -ESTALE || rc == -EHOSTUNREACH)
		return mg_error("internal", "%s: %s", what, strerror(-rc));
	return internal(pa, what, strerror(rc < 0 ? -rc : rc));
}

/* ---- failed attempts (the budgets are in pa_limit.c) ---- */

/* What a failed attempt tells the client: each counts against the
 * source. A register fails as a guess only with a wrong device id or
 * token (not_found): its other errors need the right token, and the api
 * refuses malformed bodies before they reach us. */
static const char *const redeem_failures[] = {"bad_request",  "unknown_code", "code_used",
                                              "code_expired", "code_revoked", NULL};
static const char *const register_failures[] = {"not_found", NULL};

static int is_failure(json_t *reply, const char *const *failures)
{
	const char *code = mg_reply_error(reply);
	for (const char *const *e = failures; code && *e; e++)
		if (!strcmp(code, *e))
			return 1;
	return 0;
}

/* The client's address, given by the api; one that is not a string or
 * too long is no source: the shared bucket. */
static const char *source_of(json_t *request)
{
	const char *source = pa_str(request, "source");
	if (source && json_string_length(json_object_get(request, "source")) > PA_SOURCE_MAX)
		return NULL;
	return source;
}

/* NULL when `source` may be heard now, else the rate_limited reply. It
 * is given before the request is looked at: even a good code or token
 * is then refused, and not spent. */
static json_t *refused(struct pa *pa, const char *what, const char *source, uint64_t now)
{
	char network[PA_SOURCE_MAX + 1];
	enum pa_blocked blocked = pa_guard_check(pa->guard, source, now);
	if (blocked == PA_BLOCKED_NONE)
		return NULL;
	/* debug only: under a brute force this line would flood the log */
	mg_debug(pa->ctx, "%s from %s refused: rate limited (%d)", what, source ? source : "-",
	         (int)blocked);
	if (blocked == PA_BLOCKED_ADDRESS)
		return mg_error("rate_limited",
		                "too many failed attempts from this address; wait a minute");
	if (blocked == PA_BLOCKED_NETWORK) {
		pa_source_network(source, network);
		return mg_error("rate_limited",
		                "too many failed attempts from this network (%s); wait a minute",
		                network);
	}
	return mg_error("rate_limited", "too many failed attempts at this gateway; wait a minute");
}

/* Counts a failed attempt, with a warning when it blocks its address or
 * network, or spends the global budget. */
static void count_failure(struct pa *pa, const char *what, const char *source, json_t *reply,
                          uint64_t now)
{
	const struct pa_limits *max = &pa->cfg.failures;
	const char *from = source ? source : "-";
	char network[PA_SOURCE_MAX + 1];
	unsigned blocked = pa_guard_failed(pa->guard, source, now);
	char key[160]; /* as often as a client likes: limited per source and reason */
	snprintf(key, sizeof(key), "%s %s %s", what, from, mg_reply_error(reply));
	mg_log_limited(pa->ctx, MG_LOG_INFO, key, "failed %s from %s: %s", what, from,
	               mg_reply_error(reply));
	if (blocked & PA_BLOCKED_ADDRESS) {
		snprintf(key, sizeof(key), "blocked %s", from);
		mg_log_limited(pa->ctx, MG_LOG_WARN, key,
		               "%s made %d failed redeems or registers within a minute: blocked "
		               "for the rest of it",
		               from, max->address);
	}
	if (blocked & PA_BLOCKED_NETWORK) {
		pa_source_network(source, network);
		snprintf(key, sizeof(key), "blocked network %s", network);
		mg_log_limited(pa->ctx, MG_LOG_WARN, key,
		               "network %s made %d failed redeems or registers within a minute: "
		               "blocked for the rest of it",
		               network, max->prefix);
	}
	if (blocked & PA_BLOCKED_GLOBAL)
		mg_warn(
		    pa->ctx,
		    "%d failed redeems or registers within a minute from all sources: until the "
		    "budget refills, a network is blocked at its first failure",
		    max->global);
}

/* ---- redeem ---- */

/* The code's record, or the error reply that explains why it is not
 * usable. */
static json_t *usable_code(struct pa_op *op, const char *hash, json_t **code, json_t **user)
{
	mg_ctx *ctx = op->pa->ctx;
	*code = *user = NULL;
	if (mg_state_get(ctx, op->txn, PA_DB_CODES, hash, code))
		return mg_error("unknown_code", "unknown code: check it was typed correctly");
	const char *state = json_string_value(json_object_get(*code, "state"));
	json_int_t expires_at = json_integer_value(json_object_get(*code, "expires_at"));
	if (state && !strcmp(state, "used"))
		return mg_error("code_used", "this code was already used; ask for a new one");
	if (state && !strcmp(state, "revoked"))
		return mg_error("code_revoked", "this code was revoked; ask for a new one");
	if ((json_int_t)pa_now_s(op->pa) >= expires_at)
		return mg_error("code_expired",
		                "this code expired at %lld (unix time); ask for a "
		                "new one",
		                (long long)expires_at);
	const char *name = json_string_value(json_object_get(*code, "user"));
	if (!name || mg_state_get(ctx, op->txn, PA_DB_USERS, name, user))
		return mg_error("code_revoked", "the user of this code no longer exists");
	if (pa_access_ended(op->pa, *user))
		return pa_access_expired_error(name, *user);
	return NULL;
}

/* The lowest free address. The map comes from `ipam`, but the record is
 * checked too: an address is never handed out twice, even if the map
 * were wrong. */
static json_t *allocate(struct pa_op *op, uint32_t *addr, char ip[16])
{
	struct pa *pa = op->pa;
	json_t *old;
	for (;;) {
		if (pa_ipam_next_free(pa->ipam, addr))
			return mg_error("exhausted", "no free address left in %s (%u addresses)",
			                pa_ipam_subnet(pa->ipam), pa_ipam_capacity(pa->ipam));
		pa_ip_format(*addr, ip);
		if (mg_state_get(pa->ctx, op->txn, PA_DB_IPAM, ip, &old))
			return NULL;
		json_decref(old);
		mg_warn(pa->ctx, "address %s is recorded but was free in the map; skipped", ip);
		pa_ipam_take(pa->ipam, *addr);
	}
}

static int new_device_id(struct pa_op *op, char id[PA_DEVICE_ID_LEN + 1])
{
	json_t *old;
	for (int tries = 0; tries < 8; tries++) {
		pa_device_id_new(id);
		if (mg_state_get(op->pa->ctx, op->txn, PA_DB_DEVICES, id, &old))
			return 0;
		json_decref(old);
	}
	return -EEXIST;
}

struct redeem_in {
	const char *hash;
	const char *source;
	const char *hint;
};

/* The server's half of the client's config, checked before anything is
 * consumed: a redeem never spends a code on a reply it cannot complete. */
static json_t *server_config(struct pa *pa, json_t *server, json_t **config)
{
	json_t *key = json_object_get(server, "public_key");
	json_t *endpoint = json_object_get(server, "endpoint");
	if (!json_is_string(key) || !json_is_string(endpoint))
		return internal(pa, "wg/server is incomplete", "public_key or endpoint missing");
	*config = json_pack("{s:O, s:O, s:i}", "server_public_key", key, "endpoint", endpoint,
	                    "keepalive", pa->cfg.keepalive);
	return NULL;
}

static json_t *write_device(struct pa_op *op, const struct redeem_in *in, json_t *code,
                            json_t *user, json_t *config)
{
	struct pa *pa = op->pa;
	mg_ctx *ctx = pa->ctx;
	char id[PA_DEVICE_ID_LEN + 1], ip[16], address[24], token[TOKEN_TEXT_LEN];
	char token_hash[PA_HASH_HEX + 1], name[PA_DEVICE_NAME_MAX + 1];
	uint32_t addr;
	json_t *error = allocate(op, &addr, ip);
	if (error)
		return error;
	int rc = new_device_id(op, id);
	if (rc)
		return pa_internal_rc(pa, "cannot make a device id", rc);
	pa_token_new(token, sizeof(token));
	pa_token_hash(token, token_hash);
	pa_device_name(in->hint ? in->hint : json_string_value(json_object_get(code, "user")),
	               name);
	snprintf(address, sizeof(address), "%s/32", ip);
	json_int_t now = (json_int_t)pa_now_s(pa);
	json_int_t expires_at = now + (json_int_t)(pa->cfg.pending_ttl_ms / 1000);

	json_t *device = json_pack(
	    "{s:s, s:O, s:s, s:O, s:s, s:n, s:s, s:I, s:I, s:s, s:s, s:s?}", "id", id, "user",
	    json_object_get(code, "user"), "name", name, "role", json_object_get(user, "role"),
	    "address", address, "public_key", "state", "pending", "created_at", now, "expires_at",
	    expires_at, "token_hash", token_hash, "code", in->hash, "source", in->source);
	json_t *lease =
	    json_pack("{s:s, s:O}", "device", id, "user", json_object_get(code, "user"));
	json_object_set_new(code, "state", json_string("used"));
	json_object_set_new(code, "used_at", json_integer(now));
	json_object_set_new(code, "device", json_string(id));
	rc = mg_state_put(ctx, op->txn, PA_DB_DEVICES, id, device);
	if (!rc)
		rc = mg_state_put(ctx, op->txn, PA_DB_IPAM, ip, lease);
	if (!rc)
		rc = mg_state_put(ctx, op->txn, PA_DB_CODES, in->hash, code);
	json_decref(lease);
	if (rc) {
		json_decref(device);
		return pa_internal_rc(pa, "cannot write the device", rc);
	}
	json_array_append_new(op->ips_taken, json_integer(addr));
	json_object_set_new(op->pending_add, id, json_integer(expires_at));
	pa_op_device_changed(op, device, NULL);
	json_decref(device);
	json_object_set_new(config, "device_id", json_string(id));
	json_object_set_new(config, "address", json_string(address));
	json_object_set_new(config, "register_token", json_string(token));
	json_object_set_new(config, "expires_at", json_integer(expires_at));
	sodium_memzero(token, sizeof(token)); /* the reply holds the only copy */
	return NULL;
}

/* The code consumed, the address allocated, the device created: one
 * transaction, so that a crash leaves either all of it or none. */
static json_t *redeem_txn(struct pa *pa, const struct redeem_in *in)
{
	struct pa_op op;
	char err[256];
	json_t *server = NULL, *code = NULL, *user = NULL, *config = NULL, *reply;
	int rc = pa_op_begin_batched(pa, &op);
	if (rc)
		return pa_internal_rc(pa, "cannot begin a transaction", rc);
	if ((rc = pa_ipam_sync(pa, op.txn, &server, err, sizeof(err))))
		reply = internal(pa, "cannot redeem", err);
	else if (!(reply = server_config(pa, server, &config)) &&
	         !(reply = usable_code(&op, in->hash, &code, &user))) {
		/* the same networks preauth.device.config hands out later */
		json_t *networks = pa_device_networks(
		    pa, op.txn, server, json_string_value(json_object_get(user, "role")));
		if (!networks)
			reply = internal(pa, "cannot redeem", "wg/server has no usable address");
		else
			json_object_set_new(config, "allowed_ips", networks);
		/* the gateway's name server and zone, as wg-quick's DNS line */
		json_t *dns = pa_device_dns(pa, op.txn);
		if (dns)
			json_object_set_new(config, "dns", dns);
		if (!reply)
			reply = write_device(&op, in, code, user, config);
	}
	if (reply) {
		pa_op_abort(&op);
		pa_batch_settle(pa);
	} else if ((rc = pa_op_commit(&op))) {
		reply = pa_internal_rc(pa, "cannot commit the device", rc);
	} else {
		mg_info(pa->ctx, "device %s of user %s redeemed a code: %s, pending",
		        json_string_value(json_object_get(config, "device_id")),
		        json_string_value(json_object_get(code, "user")),
		        json_string_value(json_object_get(config, "address")));
		reply = pa_batch_reply(pa, json_incref(config));
	}
	json_decref(server);
	json_decref(code);
	json_decref(user);
	json_decref(config);
	return reply;
}

/* A checked redeem request, the part that a batch that lost a race runs
 * again. */
static json_t *redeem_checked(struct pa *pa, json_t *request)
{
	char canonical[PA_CODE_SYMBOLS + 1], hash[PA_HASH_HEX + 1];
	if (pa_code_normalize(pa_str(request, "code"), canonical))
		return mg_field_error("code", "malformed code");
	pa_code_hash(canonical, hash);
	struct redeem_in in = {hash, source_of(request), pa_str(request, "name")};
	return redeem_txn(pa, &in);
}

json_t *pa_redeem(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{"code", MG_FIELD_STRING, 1, 1, PA_CODE_TEXT_MAX},
	                                         {"source", MG_FIELD_STRING, 0, 1, PA_SOURCE_MAX},
	                                         {"name", MG_FIELD_STRING, 0, 1, PA_HOSTNAME_MAX},
	                                         {0}};
	struct pa *pa = arg;
	char canonical[PA_CODE_SYMBOLS + 1];
	uint64_t now = mg_now_ms(ctx);
	(void)service;

	const char *source = source_of(request);
	json_t *reply = refused(pa, "redeem", source, now);
	if (reply)
		return pa_count_outcome(pa, "redeem", reply);
	reply = mg_request_check(pa->ctx, request, fields);
	if (!reply && pa_code_normalize(pa_str(request, "code"), canonical))
		reply = mg_field_error(
		    "code",
		    "malformed code: expected %d characters of 0-9 and A-Z (without I, "
		    "L, O, U), dashes optional",
		    PA_CODE_SYMBOLS);
	if (!reply)
		reply = pa_batch_run(pa, redeem_checked, request);
	if (is_failure(reply, redeem_failures))
		count_failure(pa, "redeem", source, reply, now);
	return pa_count_outcome(pa, "redeem", reply);
}

/* ---- register ---- */

json_t *pa_not_registrable(void)
{
	/* the same answer for a wrong id and a wrong token: no probing for ids */
	return mg_error("not_found", "unknown device or wrong register_token");
}

static json_t *check_registration(struct pa *pa, json_t *device, const char *id, const char *key,
                                  uint32_t addr, int *done)
{
	const char *state = json_string_value(json_object_get(device, "state"));
	const char *address = json_string_value(json_object_get(device, "address"));
	const char *current = json_string_value(json_object_get(device, "public_key"));
	uint32_t assigned;
	*done = 0;
	if (!address || pa_ip_parse(address, 1, &assigned) || assigned != addr)
		return mg_field_error("address",
		                      "address is not the one assigned to this device (%s)",
		                      address ? address : "none");
	if (state && !strcmp(state, "disabled"))
		return mg_error("conflict", "device %s is disabled", id);
	if (state && !strcmp(state, "expired"))
		return mg_error("access_expired", "the access of the user of device %s has ended",
		                id);
	if (state && !strcmp(state, "active")) {
		if (current && !strcmp(current, key)) {
			*done = 1; /* a retry after a lost reply: same answer */
			return NULL;
		}
		return mg_error("conflict", "device %s is already registered with another key", id);
	}
	if ((json_int_t)pa_now_s(pa) >= json_integer_value(json_object_get(device, "expires_at")))
		return mg_error("not_found",
		                "device %s expired before it registered; redeem a new "
		                "code",
		                id);
	const char *owner = json_string_value(json_object_get(pa->keys, key));
	if (owner && strcmp(owner, id))
		return mg_error("conflict", "this public key belongs to another device");
	return NULL;
}

/* The access_expired reply when the access of the device's user has
 * ended: a device asks again with its token, and learns why its tunnel
 * stopped (the client's agent does, docs/client.md). */
json_t *pa_access_ended_reply(struct pa_op *op, json_t *device)
{
	const char *name = json_string_value(json_object_get(device, "user"));
	json_t *user, *reply = NULL;
	if (!name || mg_state_get(op->pa->ctx, op->txn, PA_DB_USERS, name, &user))
		return NULL;
	if (pa_access_ended(op->pa, user))
		reply = pa_access_expired_error(name, user);
	json_decref(user);
	return reply;
}

static json_t *register_device(struct pa *pa, json_t *request)
{
	static const struct mg_field fields[] = {
	    {"device_id", MG_FIELD_STRING, 1, 1, PA_DEVICE_ID_LEN},
	    {"register_token", MG_FIELD_STRING, 1, 1, PA_TOKEN_MAX},
	    {"public_key", MG_FIELD_STRING, 1, 1, 64},
	    {"address", MG_FIELD_STRING, 1, 1, PA_ADDRESS_MAX},
	    {"source", MG_FIELD_STRING, 0, 1, PA_SOURCE_MAX},
	    {0}};
	mg_ctx *ctx = pa->ctx;
	struct pa_op op;
	char key[PA_WG_KEY_B64_LEN + 1];
	uint32_t addr;
	json_t *device;
	int done;

	json_t *reply = mg_request_check(pa->ctx, request, fields);
	if (reply)
		return reply;
	const char *id = pa_str(request, "device_id");
	if (!pa_device_id_valid(id))
		return mg_field_error("device_id", "device_id must be %d lowercase hex characters",
		                      PA_DEVICE_ID_LEN);
	if (!pa_wg_key_valid(pa_str(request, "public_key"), key))
		return mg_field_error(
		    "public_key", "public_key must be a WireGuard public key: base64 of 32 bytes");
	if (pa_ip_parse(pa_str(request, "address"), 1, &addr))
		return mg_field_error("address",
		                      "address must be an IPv4 address (optionally /32)");
	int rc = pa_op_begin_batched(pa, &op);
	if (rc)
		return pa_internal_rc(pa, "cannot begin a transaction", rc);
	if (mg_state_get(ctx, op.txn, PA_DB_DEVICES, id, &device)) {
		pa_op_abort(&op);
		pa_batch_settle(pa);
		return pa_not_registrable();
	}
	if (!pa_token_matches(pa_str(request, "register_token"),
	                      json_string_value(json_object_get(device, "token_hash"))))
		reply = pa_not_registrable();
	else if (!(reply = pa_access_ended_reply(&op, device)))
		reply = check_registration(pa, device, id, key, addr, &done);
	pa->register_repeated = !reply && done; /* not one more onboarding (pa_metrics.c) */
	if (!reply && !done) {
		json_object_set_new(device, "state", json_string("active"));
		json_object_set_new(device, "public_key", json_string(key));
		json_object_set_new(device, "registered_at",
		                    json_integer((json_int_t)pa_now_s(pa)));
		json_object_del(device, "expires_at");
		if ((rc = mg_state_put(ctx, op.txn, PA_DB_DEVICES, id, device))) {
			reply = pa_internal_rc(pa, "cannot write the device", rc);
		} else {
			json_object_set_new(op.keys_add, key, json_string(id));
			json_array_append_new(op.pending_del, json_string(id));
			pa_op_device_changed(&op, device, NULL);
			if ((rc = pa_op_commit(&op)))
				reply = pa_internal_rc(pa, "cannot commit the device", rc);
			else
				mg_info(ctx, "device %s of user %s registered", id,
				        json_string_value(json_object_get(device, "user")));
		}
	}
	if (op.txn)
		pa_op_abort(&op);
	json_decref(device);
	if (reply) {
		pa_batch_settle(pa);
		return reply;
	}
	return pa_batch_reply(pa, json_pack("{s:s, s:s}", "device_id", id, "state", "active"));
}

json_t *pa_token_guarded(struct pa *pa, const char *what, json_t *request, pa_txn_fn fn)
{
	uint64_t now = mg_now_ms(pa->ctx);
	const char *source = source_of(request);
	json_t *reply = refused(pa, what, source, now);
	if (reply)
		return reply;
	reply = fn(pa, request);
	if (is_failure(reply, register_failures))
		count_failure(pa, what, source, reply, now);
	return reply;
}

static json_t *register_batched(struct pa *pa, json_t *request)
{
	return pa_batch_run(pa, register_device, request);
}

json_t *pa_register(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	struct pa *pa = arg;
	(void)ctx;
	(void)service;
	pa->register_repeated = false;
	return pa_count_outcome(pa, "register",
	                        pa_token_guarded(pa, "register", request, register_batched));
}

/* ---- list, disable, enable, delete ---- */

/* What the outside may see of a device: never its token's hash. */
static json_t *public_view(const char *id, json_t *device)
{
	json_t *out = json_pack("{s:s}", "id", id);
	static const char *const members[] = {"user",
	                                      "name",
	                                      "role",
	                                      "address",
	                                      "public_key",
	                                      "state",
	                                      "created_at",
	                                      "expires_at",
	                                      "registered_at",
	                                      "source",
	                                      "rotate_requested",
	                                      "rotated",
	                                      "key_switched_at"};
	for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
		json_t *v = json_object_get(device, members[i]);
		if (v)
			json_object_set(out, members[i], v);
	}
	return out;
}

/* A page of the device list comes from its index (pa_list.c): no record
 * is parsed to find it, and only the page's records are read from state. */
#define LIST_LIMIT_MAX 1000
#define LIST_QUERY_MAX 128

json_t *pa_device_list(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{"user", MG_FIELD_STRING, 0, 1, PA_NAME_MAX},
	                                         {"q", MG_FIELD_STRING, 0, 1, LIST_QUERY_MAX},
	                                         {"limit", MG_FIELD_INT, 0, 1, LIST_LIMIT_MAX},
	                                         {"after", MG_FIELD_STRING, 0, 1, PA_DEVICE_ID_LEN},
	                                         {0}};
	struct pa *pa = arg;
	mg_txn *txn;
	json_t *user, *id;
	size_t i;
	const char *next;
	(void)service;

	json_t *error = mg_request_check(pa->ctx, request, fields);
	if (error)
		return error;
	const char *who = pa_str(request, "user"), *after = pa_str(request, "after");
	size_t limit = (size_t)json_integer_value(json_object_get(request, "limit"));
	char q[LIST_QUERY_MAX + 1];
	snprintf(q, sizeof(q), "%s", pa_str(request, "q") ? pa_str(request, "q") : "");
	for (const char *p = q; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return mg_field_error("q", "q must be text without control characters");
	pa_list_lower(q);
	if (after && !pa_device_id_valid(after))
		return mg_field_error("after",
		                      "after must be a device id (%d lowercase hex characters)",
		                      PA_DEVICE_ID_LEN);
	int rc = mg_txn_begin(ctx, MG_TXN_READ, &txn);
	if (rc)
		return pa_internal_rc(pa, "cannot begin a transaction", rc);
	if (who && mg_state_get(ctx, txn, PA_DB_USERS, who, &user)) {
		mg_txn_abort(ctx, txn);
		return mg_error("not_found", "no user '%.40s'", who);
	}
	if (who)
		json_decref(user);
	json_t *page = pa_list_page(pa->list, who, *q ? q : NULL, after, limit, &next);
	if (!page) {
		mg_txn_abort(ctx, txn);
		return mg_error("internal", "out of memory");
	}
	json_t *devices = json_array();
	json_array_foreach(page, i, id)
	{
		json_t *device;
		/* the cache follows every commit; a device it still has and
		 * state no longer has is gone */
		if (!mg_state_get(ctx, txn, PA_DB_DEVICES, json_string_value(id), &device)) {
			json_array_append_new(devices, public_view(json_string_value(id), device));
			json_decref(device);
		}
	}
	mg_txn_abort(ctx, txn);
	json_t *reply = json_pack("{s:o}", "devices", devices);
	if (next)
		json_object_set_new(reply, "next", json_string(next));
	json_decref(page);
	return reply;
}

json_t *pa_device_begin(struct pa *pa, const char *id, struct pa_op *op, json_t **device)
{
	if (!pa_device_id_valid(id))
		return mg_field_error("id", "id must be %d lowercase hex characters",
		                      PA_DEVICE_ID_LEN);
	int rc = pa_op_begin_alone(pa, op);
	if (rc)
		return pa_internal_rc(pa, "cannot begin a transaction", rc);
	if (mg_state_get(pa->ctx, op->txn, PA_DB_DEVICES, id, device)) {
		pa_op_abort(op);
		return mg_error("not_found", "no device %s", id);
	}
	return NULL;
}

enum device_action { DISABLE, ENABLE, DELETE };

static json_t *device_change(struct pa *pa, json_t *request, enum device_action action)
{
	static const struct mg_field fields[] = {{"id", MG_FIELD_STRING, 1, 1, PA_DEVICE_ID_LEN},
	                                         {0}};
	static const char *const verbs[] = {"disabled", "enabled", "deleted"};
	mg_ctx *ctx = pa->ctx;
	struct pa_op op;
	json_t *device, *reply = NULL;

	if ((reply = mg_request_check(pa->ctx, request, fields)))
		return reply;
	const char *id = pa_str(request, "id");
	if ((reply = pa_device_begin(pa, id, &op, &device)))
		return reply;
	int rc = 0;
	const char *state = json_string_value(json_object_get(device, "state"));
	const char *next = action == DISABLE ? "disabled" : action == ENABLE ? "active" : "deleted";
	int pending = state && !strcmp(state, "pending");
	if (action == DELETE) {
		rc = pa_op_device_delete(&op, device);
	} else if (pending) {
		reply =
		    mg_error("conflict", "device %s has not registered yet: delete it instead", id);
	} else if (action == ENABLE && (reply = pa_access_ended_reply(&op, device))) {
		/* extended with `meshgatectl user set-access`, it is active again */
	} else if (state && strcmp(state, next)) {
		json_object_set_new(device, "state", json_string(next));
		rc = mg_state_put(ctx, op.txn, PA_DB_DEVICES, id, device);
		pa_op_device_changed(&op, device, NULL);
	} else {
		pa_op_abort(&op); /* already so: nothing to write, nothing to announce */
	}
	if (rc)
		reply = pa_internal_rc(pa, "cannot change the device", rc);
	if (!reply && op.txn) {
		if ((rc = pa_op_commit(&op)))
			reply = pa_internal_rc(pa, "cannot commit the device", rc);
		else
			mg_info(ctx, "device %s of user %s %s", id,
			        json_string_value(json_object_get(device, "user")), verbs[action]);
	}
	if (op.txn)
		pa_op_abort(&op);
	json_decref(device);
	return reply ? reply : json_pack("{s:s, s:s}", "id", id, "state", next);
}

json_t *pa_device_disable(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	(void)ctx;
	(void)service;
	return device_change(arg, request, DISABLE);
}

json_t *pa_device_enable(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	(void)ctx;
	(void)service;
	return device_change(arg, request, ENABLE);
}

json_t *pa_device_del(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	(void)ctx;
	(void)service;
	return device_change(arg, request, DELETE);
}

/* ---- the reaper ---- */

static void reap_pending(struct pa *pa)
{
	json_int_t now = (json_int_t)pa_now_s(pa);
	json_t *due = json_array(), *v, *device;
	const char *id;
	struct pa_op op;
	size_t i;

	json_object_foreach(pa->pending, id, v) if (json_integer_value(v) <= now)
	    json_array_append_new(due, json_string(id));
	if (!json_array_size(due) || pa_op_begin_alone(pa, &op)) {
		json_decref(due);
		return;
	}
	int rc = 0, n = 0;
	json_array_foreach(due, i, v)
	{
		id = json_string_value(v);
		if (mg_state_get(pa->ctx, op.txn, PA_DB_DEVICES, id, &device)) {
			/* gone already: forget it */
			json_array_append(op.pending_del, v);
			continue;
		}
		const char *state = json_string_value(json_object_get(device, "state"));
		if (!rc && state && !strcmp(state, "pending") &&
		    json_integer_value(json_object_get(device, "expires_at")) <= now) {
			rc = pa_op_device_delete(&op, device);
			n++;
		} else {
			json_array_append(op.pending_del, v);
		}
		json_decref(device);
	}
	if (rc)
		pa_op_abort(&op);
	else if ((rc = pa_op_commit(&op)) == 0 && n)
		mg_info(pa->ctx, "reaped %d pending devices that did not register in time", n);
	/* a lost race or no quorum (logged by pa_op_commit): the next tick
	 * looks again */
	if (rc && rc != -ESTALE && rc != -EHOSTUNREACH)
		mg_error_log(pa->ctx, "reaping pending devices failed: %s", strerror(-rc));
	json_decref(due);
}

static int collect_old_code(const char *key, json_t *code, void *arg)
{
	json_t **found = arg; /* [0]: keys, [1]: cutoff */
	/* bounded, so that one purge stays one modest transaction */
	if (json_integer_value(json_object_get(code, "expires_at")) <
	        json_integer_value(found[1]) &&
	    json_array_size(found[0]) < 10000)
		json_array_append_new(found[0], json_string(key));
	return 0;
}

/* Codes past expiry + code_retention: kept that long so that a late
 * redeem says "expired" or "used" rather than "unknown". */
static void purge_codes(struct pa *pa)
{
	struct pa_op op;
	json_int_t cutoff =
	    (json_int_t)pa_now_s(pa) - (json_int_t)(pa->cfg.code_retention_ms / 1000);
	json_t *found[2] = {json_array(), json_integer(cutoff)}, *v;
	size_t i;
	int rc = pa_op_begin_alone(pa, &op);
	if (!rc)
		rc = mg_state_foreach(pa->ctx, op.txn, PA_DB_CODES, NULL, collect_old_code, found);
	json_array_foreach(found[0], i, v) if (!rc) rc =
	    mg_state_del(pa->ctx, op.txn, PA_DB_CODES, json_string_value(v));
	if (rc || !json_array_size(found[0]))
		pa_op_abort(&op);
	else if (!(rc = pa_op_commit(&op)))
		mg_info(pa->ctx, "purged %zu old codes", json_array_size(found[0]));
	if (rc && rc != -ESTALE && rc != -EHOSTUNREACH)
		mg_error_log(pa->ctx, "purging old codes failed: %s", strerror(-rc));
	json_decref(found[0]);
	json_decref(found[1]);
}

void pa_reap(mg_ctx *ctx, void *arg)
{
	struct pa *pa = arg;
	uint64_t now = mg_now_ms(ctx);
	reap_pending(pa);
	pa_guard_expire(pa->guard, now);
	if (now - pa->last_purge_ms >= PURGE_EVERY_MS) {
		pa->last_purge_ms = now;
		purge_codes(pa);
	}
}
