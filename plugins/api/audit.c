/* The audit: every change made through the admin API, and every change
 * meshgatectl makes (it reports them to api.audit.add after each call),
 * one record each in API_AUDIT_DB: who, through what, from where, which
 * service with which members (secrets left out), when, and the result.
 *
 * The admin API writes its records itself, after the service answered, so
 * none of its changes goes unrecorded. meshgatectl's records are its own
 * word: anyone on the bus socket (root) could change things without it.
 *
 * Keys sort by time ("MS-NODE-RANDOM": milliseconds, 13 digits), so the
 * newest are the last; the plugin keeps the newest api.audit_keep of
 * them (api_audit_prune, every minute). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "admin.h"

#define LIST_DEFAULT 100
#define LIST_MAX     10000

int api_audit_write(mg_ctx *ctx, const char *who, const char *via, const char *source,
                    const char *service, json_t *request, json_t *reply)
{
	char key[128];
	uint64_t now = mg_now_ms(ctx);
	const char *code = mg_reply_error(reply);
	snprintf(key, sizeof(key), "%013" PRIu64 "-%s-%08" PRIx32, now, mg_node_name(ctx),
	         randombytes_random());
	json_t *record = json_pack(
	    "{s:i, s:I, s:s, s:s, s:s?, s:s, s:o, s:s, s:s?}", "v", 1, "at", (json_int_t)now, "who",
	    who, "via", via, "source", source, "service", service, "request",
	    api_audit_members(request), "result", code ? code : "ok", "message",
	    code ? json_string_value(json_object_get(reply, "message")) : NULL);
	mg_txn *txn;
	int rc = mg_txn_begin(ctx, 0, &txn);
	if (!rc) {
		rc = mg_state_put(ctx, txn, API_AUDIT_DB, key, record);
		if (rc)
			mg_txn_abort(ctx, txn);
		else
			rc = mg_txn_commit(ctx, txn);
	}
	if (rc)
		mg_warn(ctx, "cannot write the audit record of %s by %s: %s", service, who,
		        strerror(-rc));
	json_decref(record);
	return rc;
}

/* ---- api.audit.add: meshgatectl's changes ---- */

static json_t *audit_add(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{"service", MG_FIELD_STRING, 1, 1, 128},
	                                         {"request", MG_FIELD_OBJECT, 0, 0, 0},
	                                         {"reply", MG_FIELD_OBJECT, 0, 0, 0},
	                                         {0}};
	json_t *bad;
	(void)service;
	(void)arg;
	if ((bad = mg_request_check(ctx, request, fields)))
		return bad;
	const char *what = json_string_value(json_object_get(request, "service"));
	if (!api_service_changes(what))
		return json_pack("{s:b}", "recorded", 0); /* a read: nothing to record */
	/* only a change's result goes in, never what it returned (a code) */
	json_t *reply = json_object_get(request, "reply");
	json_t *result = mg_reply_error(reply)
	                     ? json_pack("{s:O, s:O?}", "error", json_object_get(reply, "error"),
	                                 "message", json_object_get(reply, "message"))
	                     : json_object();
	int rc = api_audit_write(ctx, "meshgatectl (local root)", "meshgatectl", NULL, what,
	                         json_object_get(request, "request"), result);
	json_decref(result);
	if (rc)
		return mg_error("unavailable", "cannot write the audit record: %s", strerror(-rc));
	return json_pack("{s:b}", "recorded", 1);
}

/* ---- api.audit.list: the newest first ---- */

struct newest {
	json_t **ring; /* the last `limit` records seen */
	size_t limit, seen;
};

static int keep_newest(const char *key, json_t *value, void *arg)
{
	struct newest *n = arg;
	size_t slot = n->seen++ % n->limit;
	json_decref(n->ring[slot]);
	json_object_del(value, "v");
	json_object_set_new(value, "id", json_string(key));
	n->ring[slot] = json_incref(value);
	return 0;
}

static json_t *audit_list(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{"limit", MG_FIELD_INT, 0, 1, LIST_MAX}, {0}};
	json_t *bad;
	mg_txn *txn;
	(void)service;
	(void)arg;
	if ((bad = mg_request_check(ctx, request, fields)))
		return bad;
	json_int_t limit = json_integer_value(json_object_get(request, "limit"));
	struct newest n = {NULL, limit ? (size_t)limit : LIST_DEFAULT, 0};
	if (!(n.ring = calloc(n.limit, sizeof(*n.ring))))
		return mg_error("internal", "out of memory");
	int rc = mg_txn_begin(ctx, MG_TXN_READ, &txn);
	if (!rc) {
		rc = mg_state_foreach(ctx, txn, API_AUDIT_DB, NULL, keep_newest, &n);
		mg_txn_abort(ctx, txn);
	}
	json_t *entries = json_array();
	size_t have = n.seen < n.limit ? n.seen : n.limit;
	for (size_t i = 0; i < have; i++) /* newest first */
		json_array_append_new(entries, n.ring[(n.seen - 1 - i) % n.limit]);
	free(n.ring);
	if (rc) {
		json_decref(entries);
		return mg_error("unavailable", "cannot read the audit: %s", strerror(-rc));
	}
	return json_pack("{s:o}", "entries", entries);
}

/* ---- keeping the newest ---- */

struct oldest {
	json_t *keys; /* of the records to delete */
	size_t skip;  /* how many, from the oldest */
};

static int count_record(const char *key, json_t *value, void *arg)
{
	(void)key;
	(void)value;
	(*(size_t *)arg)++;
	return 0;
}

static int collect_oldest(const char *key, json_t *value, void *arg)
{
	struct oldest *o = arg;
	(void)value;
	if (json_array_size(o->keys) >= o->skip)
		return 1; /* the rest is kept */
	json_array_append_new(o->keys, json_string(key));
	return 0;
}

int api_audit_prune(mg_ctx *ctx, size_t keep)
{
	mg_txn *txn;
	size_t count = 0;
	int rc = mg_txn_begin(ctx, 0, &txn);
	if (rc)
		return rc;
	rc = mg_state_foreach(ctx, txn, API_AUDIT_DB, NULL, count_record, &count);
	if (rc || count <= keep) {
		mg_txn_abort(ctx, txn);
		return rc;
	}
	struct oldest o = {json_array(), count - keep};
	rc = mg_state_foreach(ctx, txn, API_AUDIT_DB, NULL, collect_oldest, &o);
	rc = rc == 1 ? 0 : rc;
	size_t i;
	json_t *key;
	json_array_foreach(o.keys, i, key)
	{
		if (!rc)
			rc = mg_state_del(ctx, txn, API_AUDIT_DB, json_string_value(key));
	}
	json_decref(o.keys);
	if (rc)
		mg_txn_abort(ctx, txn);
	else
		rc = mg_txn_commit(ctx, txn);
	return rc;
}

int api_audit_register(mg_ctx *ctx)
{
	int rc = mg_service_add(ctx, "api.audit.add", audit_add, NULL);
	if (!rc)
		rc = mg_service_add(ctx, "api.audit.list", audit_list, NULL);
	return rc;
}
