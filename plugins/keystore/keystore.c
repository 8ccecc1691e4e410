/* The keystore plugin: the secret service's local back end, the default.
 * Every private key of the node (the wireguard plugin's server key, the
 * mesh key, ...) is sealed with libsodium under one key file of root's
 * (lib/seal), in STATE_DIR/OWNER/NAME.sealed, the very files the plugins
 * sealed themselves before the service existed: a node upgraded keeps its
 * keys. Versions of a key other than the one in use sit beside it
 * (NAME.next.sealed, NAME.previous.sealed); their numbers and times, and
 * nothing secret, are in the node-local database "secrets". */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <meshgate/meshgate.h>
#include <sodium.h>

#include "seal.h"
#include "secret.h"
#include "wg.h"

#define KS_DB "secrets"
/* The largest secret in bytes: SECRET_TEXT_MAX characters of base64. */
#define KS_SECRET_MAX (SECRET_TEXT_MAX / 4 * 3)

/* A schedule's timer is re-armed at least this often, so that a long
 * schedule ("90d") never overflows a timer's interval. */
#define KS_SCHEDULE_RECHECK_MS (3600 * 1000)
/* A scheduled rotation or prune that failed (a full disk) is tried again
 * after this long, not at once. */
#define KS_SCHEDULE_RETRY_MS 30000

struct keystore {
	char key_path[4096]; /* the sealing key */
	uint64_t grace_ms;
	uint64_t schedule_ms;       /* 0: keys are rotated only when asked */
	int schedule_timer;         /* > 0 while armed */
	uint64_t schedule_retry_ms; /* after a failure: nothing fires before */
};

static void schedule_arm(mg_ctx *ctx);

static const char *setting(mg_ctx *ctx, const char *name)
{
	return json_string_value(json_object_get(mg_config(ctx), name));
}

/* STATE_DIR/OWNER and NAME of "OWNER/NAME", plus a version's suffix. */
static void secret_place(mg_ctx *ctx, const char *name, const char *suffix, char *dir,
                         size_t dirlen, char *file, size_t filelen)
{
	const char *slash = strchr(name, '/');
	snprintf(dir, dirlen, "%s/%.*s", mg_state_dir(ctx), (int)(slash - name), name);
	snprintf(file, filelen, "%s%s", slash + 1, suffix);
}

/* One version's secret, as base64 text (a new string), or NULL with err. */
static json_t *load_version(mg_ctx *ctx, const char *name, const char *suffix, char *err,
                            size_t errlen)
{
	struct keystore *self = ctx->self;
	char dir[4200], file[200];
	unsigned char *secret = malloc(KS_SECRET_MAX + 1);
	char *text = malloc(SECRET_TEXT_MAX + 8);
	size_t len = 0;
	json_t *out = NULL;
	secret_place(ctx, name, suffix, dir, sizeof(dir), file, sizeof(file));
	if (secret && text &&
	    !seal_load(dir, file, self->key_path, secret, KS_SECRET_MAX + 1, &len, err, errlen)) {
		sodium_bin2base64(text, SECRET_TEXT_MAX + 8, secret, len,
		                  sodium_base64_VARIANT_ORIGINAL);
		out = json_string(text);
	} else if (!secret || !text) {
		snprintf(err, errlen, "out of memory");
	}
	if (secret)
		sodium_memzero(secret, KS_SECRET_MAX + 1);
	if (text)
		sodium_memzero(text, SECRET_TEXT_MAX + 8);
	free(secret);
	free(text);
	return out;
}

static int store_version(mg_ctx *ctx, const char *name, const char *suffix, const char *key,
                         char *err, size_t errlen)
{
	struct keystore *self = ctx->self;
	char dir[4200], file[200];
	unsigned char *secret = malloc(KS_SECRET_MAX + 1);
	size_t len = 0;
	int rc = -ENOMEM;
	secret_place(ctx, name, suffix, dir, sizeof(dir), file, sizeof(file));
	if (!secret) {
		snprintf(err, errlen, "out of memory");
	} else if (sodium_base642bin(secret, KS_SECRET_MAX + 1, key, strlen(key), NULL, &len, NULL,
	                             sodium_base64_VARIANT_ORIGINAL) ||
	           len == 0) {
		snprintf(err, errlen, "the key is not base64");
		rc = -EINVAL;
	} else {
		rc = seal_store(dir, file, self->key_path, secret, len, err, errlen);
	}
	if (secret)
		sodium_memzero(secret, KS_SECRET_MAX + 1);
	free(secret);
	return rc;
}

static void remove_version(mg_ctx *ctx, const char *name, const char *suffix)
{
	char dir[4200], file[200];
	secret_place(ctx, name, suffix, dir, sizeof(dir), file, sizeof(file));
	if (seal_remove(dir, file))
		mg_warn(ctx, "%s: cannot remove %s/%s.sealed", name, dir, file);
}

/* A key the store has never recorded: the sealed file a plugin of an
 * earlier version made (taken over as version 1, sealing key moved out of
 * the state dir if it was still inside), or a new WireGuard key. */
static json_t *take_over_or_make(mg_ctx *ctx, const char *name, char *err, size_t errlen)
{
	struct keystore *self = ctx->self;
	char dir[4200], file[200], moved_from[4200], path[4400];
	wg_key key;
	char text[WG_KEY_B64_LEN];
	int created;
	struct stat st;
	secret_place(ctx, name, "", dir, sizeof(dir), file, sizeof(file));
	if (sealed_key_load_or_create(dir, file, self->key_path, key, &created, moved_from,
	                              sizeof(moved_from), err, errlen))
		return NULL;
	if (moved_from[0])
		mg_info(ctx, "moved the sealing key from %s to %s (out of the state dir)",
		        moved_from, self->key_path);
	snprintf(path, sizeof(path), "%s/%s.sealed", dir, file);
	uint64_t created_ms =
	    !created && !stat(path, &st) ? (uint64_t)st.st_mtime * 1000 : mg_now_ms(ctx);
	wg_key_to_base64(text, key);
	json_t *record = json_pack("{s:s, s:i, s:s, s:I, s:b}", "name", name, "version", 1, "key",
	                           text, "created_ms", (json_int_t)created_ms, "created", created);
	sodium_memzero(key, sizeof(key));
	sodium_memzero(text, sizeof(text));
	mg_info(ctx, "%s: %s (version 1, sealed under %s)", name,
	        created ? "made a new key" : "took over the sealed key", self->key_path);
	return record;
}

/* The metadata of a record: the record without its keys and name. */
static int save_meta(mg_ctx *ctx, json_t *record)
{
	json_t *meta = secret_record_public(record);
	json_object_del(meta, "name");
	json_object_del(meta, "created");
	mg_txn *txn;
	int rc = meta ? mg_txn_begin(ctx, 0, &txn) : -ENOMEM;
	if (!rc && (rc = mg_state_put(ctx, txn, KS_DB,
	                              json_string_value(json_object_get(record, "name")), meta)))
		mg_txn_abort(ctx, txn);
	else if (!rc)
		rc = mg_txn_commit(ctx, txn);
	json_decref(meta);
	if (!rc) /* a key made, rotated or switched moves its next rotation */
		schedule_arm(ctx);
	return rc;
}

static json_t *read_meta(mg_ctx *ctx, const char *name)
{
	mg_txn *txn;
	json_t *meta = NULL;
	if (!mg_txn_begin(ctx, MG_TXN_READ, &txn)) {
		mg_state_get(ctx, txn, KS_DB, name, &meta);
		mg_txn_abort(ctx, txn);
	}
	return meta;
}

/* The record of `name` with its keys: NULL with err (-ENOENT when there
 * is none and `create` is false). A previous version past its grace goes. */
static json_t *load_record(mg_ctx *ctx, const char *name, bool create, int *rc, char *err,
                           size_t errlen)
{
	json_t *meta = read_meta(ctx, name), *record = NULL;
	char dir[4200], file[200], path[4400];
	secret_place(ctx, name, "", dir, sizeof(dir), file, sizeof(file));
	snprintf(path, sizeof(path), "%s/%s.sealed", dir, file);
	*rc = 0;
	if (!meta && !create && access(path, F_OK)) {
		snprintf(err, errlen, "no secret named %s", name);
		*rc = -ENOENT;
		return NULL;
	}
	if (!meta) {
		record = take_over_or_make(ctx, name, err, errlen);
		if (record && (*rc = save_meta(ctx, record))) {
			snprintf(err, errlen, "cannot record %s: %s", name, strerror(-*rc));
			json_decref(record);
			return NULL;
		}
		*rc = record ? 0 : -EIO;
		return record;
	}
	record = json_deep_copy(meta);
	json_decref(meta);
	json_object_set_new(record, "name", json_string(name));
	json_t *key = load_version(ctx, name, "", err, errlen);
	json_object_set_new(record, "key", key);
	json_t *next = json_object_get(record, "next");
	if (key && next)
		json_object_set_new(next, "key",
		                    key = load_version(ctx, name, ".next", err, errlen));
	json_t *previous = json_object_get(record, "previous");
	uint64_t until = (uint64_t)json_integer_value(json_object_get(previous, "until_ms"));
	if (key && previous && until <= mg_now_ms(ctx)) {
		json_object_del(record, "previous");
		if (!save_meta(ctx, record))
			remove_version(ctx, name, ".previous");
	} else if (key && previous) {
		json_object_set_new(previous, "key",
		                    key = load_version(ctx, name, ".previous", err, errlen));
	}
	if (!key) {
		json_decref(record);
		*rc = -EIO;
		return NULL;
	}
	return record;
}

static json_t *failed(const char *name, int rc, const char *err)
{
	return mg_error(rc == -ENOENT ? "not_found" : "internal", "%s: %s", name, err);
}

static json_t *with_backend(json_t *record)
{
	json_object_set_new(record, "backend", json_string("local"));
	return record;
}

static json_t *secret_get(mg_ctx *ctx, const char *service, json_t *req, void *arg)
{
	char err[512];
	int rc;
	(void)service, (void)arg;
	json_t *bad = mg_request_check(ctx, req, secret_get_fields);
	if (bad)
		return bad;
	const char *name = json_string_value(json_object_get(req, "name"));
	if (secret_name_check(name, err, sizeof(err)))
		return mg_field_error("name", "%s", err);
	json_t *create = json_object_get(req, "create");
	json_t *record =
	    load_record(ctx, name, !create || json_is_true(create), &rc, err, sizeof(err));
	return record ? with_backend(record) : failed(name, rc, err);
}

/* Makes the next version of `name` (secret.rotate's work, and the
 * schedule's): the reply, the record without its keys and "made", or an
 * error reply. The next version is not used until the plugin that owns the
 * key switches to it (docs/rotation.md). */
static json_t *rotate_key(mg_ctx *ctx, const char *name)
{
	char err[512] = "";
	int rc;
	json_t *record = load_record(ctx, name, false, &rc, err, sizeof(err));
	if (!record)
		return failed(name, rc, err);
	int made = secret_record_rotate(record, mg_now_ms(ctx));
	if (made == -EMEDIUMTYPE) {
		json_decref(record);
		return mg_error("invalid",
		                "%s is not a WireGuard key: the service does not rotate it, its "
		                "owner replaces it (secret.put)",
		                name);
	}
	json_t *next = json_object_get(record, "next");
	if (made == 1 && ((rc = store_version(ctx, name, ".next",
	                                      json_string_value(json_object_get(next, "key")), err,
	                                      sizeof(err))) ||
	                  (rc = save_meta(ctx, record)))) {
		json_decref(record);
		return mg_error("internal", "%s: cannot store the next version: %s", name,
		                err[0] ? err : strerror(-rc));
	}
	if (made == 1) {
		mg_info(ctx, "%s: made version %lld (next, not in use yet)", name,
		        json_integer_value(json_object_get(next, "version")));
		secret_publish(ctx, SECRET_EVENT_NEXT, name,
		               json_integer_value(json_object_get(next, "version")));
	}
	json_t *reply = secret_record_public(record);
	json_object_set_new(reply, "made", json_boolean(made == 1));
	json_decref(record);
	return with_backend(reply);
}

static json_t *secret_rotate(mg_ctx *ctx, const char *service, json_t *req, void *arg)
{
	char err[512];
	(void)service, (void)arg;
	json_t *bad = mg_request_check(ctx, req, secret_rotate_fields);
	if (bad)
		return bad;
	const char *name = json_string_value(json_object_get(req, "name"));
	if (secret_name_check(name, err, sizeof(err)))
		return mg_field_error("name", "%s", err);
	return rotate_key(ctx, name);
}

/* The key's owner switched to the next version: it becomes the one in
 * use, the one it replaces is kept as previous for the grace period. The
 * sealed files first (previous, then the key in use), the record last. */
static json_t *secret_promote(mg_ctx *ctx, const char *service, json_t *req, void *arg)
{
	struct keystore *self = ctx->self;
	char err[512] = "";
	int rc;
	(void)service, (void)arg;
	json_t *bad = mg_request_check(ctx, req, secret_promote_fields);
	if (bad)
		return bad;
	const char *name = json_string_value(json_object_get(req, "name"));
	if (secret_name_check(name, err, sizeof(err)))
		return mg_field_error("name", "%s", err);
	json_int_t version = json_integer_value(json_object_get(req, "version"));
	json_t *record = load_record(ctx, name, false, &rc, err, sizeof(err));
	if (!record)
		return failed(name, rc, err);
	json_t *replaced = json_incref(json_object_get(record, "key"));
	int promoted = secret_record_promote(record, version, mg_now_ms(ctx), self->grace_ms);
	if (promoted == -ESTALE) {
		json_t *reply =
		    mg_error("conflict", "%s is at version %lld with %s: not %lld", name,
		             json_integer_value(json_object_get(record, "version")),
		             json_object_get(record, "next") ? "a next one" : "no next one",
		             (long long)version);
		json_decref(replaced);
		json_decref(record);
		return reply;
	}
	err[0] = '\0';
	rc = promoted < 0 ? promoted : 0;
	if (!rc && promoted == 1 &&
	    !(rc = store_version(ctx, name, ".previous", json_string_value(replaced), err,
	                         sizeof(err))) &&
	    !(rc = store_version(ctx, name, "", json_string_value(json_object_get(record, "key")),
	                         err, sizeof(err))) &&
	    !(rc = save_meta(ctx, record)))
		remove_version(ctx, name, ".next");
	json_decref(replaced);
	if (rc) {
		json_decref(record);
		return mg_error("internal", "%s: cannot promote version %lld: %s", name,
		                (long long)version, err[0] ? err : strerror(-rc));
	}
	if (promoted == 1) {
		mg_info(ctx, "%s: version %lld in use, the previous one kept for the grace period",
		        name, (long long)version);
		secret_publish(ctx, SECRET_EVENT_PROMOTED, name, version);
	}
	json_t *reply = secret_record_public(record);
	json_object_set_new(reply, "promoted", json_boolean(promoted == 1));
	json_decref(record);
	return with_backend(reply);
}

/* A key made elsewhere (a TLS key: type "opaque", the default) becomes
 * the version after `cas`. */
static json_t *secret_put(mg_ctx *ctx, const char *service, json_t *req, void *arg)
{
	struct keystore *self = ctx->self;
	char err[512] = "";
	int rc;
	(void)service, (void)arg;
	json_t *bad = mg_request_check(ctx, req, secret_put_fields);
	if (bad)
		return bad;
	const char *name = json_string_value(json_object_get(req, "name"));
	if (secret_name_check(name, err, sizeof(err)))
		return mg_field_error("name", "%s", err);
	if (secret_put_check(req, err, sizeof(err)))
		return mg_field_error(strncmp(err, "type", 4) ? "key" : "type", "%s", err);
	const char *type = json_string_value(json_object_get(req, "type"));
	json_t *old = load_record(ctx, name, false, &rc, err, sizeof(err));
	if (!old && rc != -ENOENT)
		return failed(name, rc, err);
	json_int_t current = json_integer_value(json_object_get(old, "version"));
	json_int_t cas = json_integer_value(json_object_get(req, "cas"));
	if (cas != current) {
		json_decref(old);
		return mg_error("conflict", "%s is at version %lld, not %lld: read it again", name,
		                (long long)current, (long long)cas);
	}
	json_t *record =
	    secret_record_put(name, old, json_string_value(json_object_get(req, "key")),
	                      type ? type : SECRET_TYPE_OPAQUE, mg_now_ms(ctx), self->grace_ms);
	err[0] = '\0';
	rc = record ? 0 : -ENOMEM;
	if (!rc && old)
		rc =
		    store_version(ctx, name, ".previous",
		                  json_string_value(json_object_get(old, "key")), err, sizeof(err));
	if (!rc)
		rc = store_version(ctx, name, "", json_string_value(json_object_get(record, "key")),
		                   err, sizeof(err));
	if (!rc)
		rc = save_meta(ctx, record);
	json_decref(old);
	if (rc) {
		json_decref(record);
		return rc == -EINVAL
		           ? mg_field_error("key", "%s", err)
		           : mg_error("internal", "%s: %s", name, err[0] ? err : strerror(-rc));
	}
	mg_info(ctx, "%s: stored version %lld", name,
	        json_integer_value(json_object_get(record, "version")));
	json_t *reply = secret_record_public(record);
	json_decref(record);
	return with_backend(reply);
}

/* ---- the schedule: every key rotated `schedule` after it was made ---- */

/* When a key falls due: made + schedule. A key whose next version waits
 * for its owner's switch is not due again until that version is in use
 * (the switch promotes it, with its own creation time). 0: never (also
 * for a secret the service does not rotate: a TLS key). */
static uint64_t rotation_due(struct keystore *self, json_t *meta)
{
	if (!self->schedule_ms || json_object_get(meta, "next") || !secret_record_rotates(meta))
		return 0;
	return (uint64_t)json_integer_value(json_object_get(meta, "created_ms")) +
	       self->schedule_ms;
}

struct due_scan {
	struct keystore *self;
	uint64_t now_ms, earliest_ms; /* earliest: UINT64_MAX when none */
	json_t *due, *expired;        /* names to rotate, and with a previous version to
	                               * drop, by now, when collected */
};

static int scan_due(const char *name, json_t *meta, void *arg)
{
	struct due_scan *scan = arg;
	uint64_t due = rotation_due(scan->self, meta);
	json_t *previous = json_object_get(meta, "previous");
	/* a previous version goes once its grace is over (load_record drops it) */
	uint64_t expires =
	    previous ? (uint64_t)json_integer_value(json_object_get(previous, "until_ms")) : 0;
	if (previous && !expires)
		expires = 1;
	if (due && due < scan->earliest_ms)
		scan->earliest_ms = due;
	if (expires && expires < scan->earliest_ms)
		scan->earliest_ms = expires;
	if (scan->due && due && due <= scan->now_ms &&
	    json_array_append_new(scan->due, json_string(name)))
		return -ENOMEM;
	if (scan->expired && expires && expires <= scan->now_ms &&
	    json_array_append_new(scan->expired, json_string(name)))
		return -ENOMEM;
	return 0;
}

static int scan_keys(mg_ctx *ctx, struct due_scan *scan)
{
	mg_txn *txn;
	int rc = mg_txn_begin(ctx, MG_TXN_READ, &txn);
	if (rc)
		return rc;
	rc = mg_state_foreach(ctx, txn, KS_DB, NULL, scan_due, scan);
	mg_txn_abort(ctx, txn);
	return rc;
}

static void schedule_fire(mg_ctx *ctx, void *arg);

/* One timer, for the earliest key due (a rotation, or a previous version
 * to drop): at start (a rotation missed while meshgated was down fires at
 * once) and after every change of a key. */
static void schedule_arm(mg_ctx *ctx)
{
	struct keystore *self = ctx->self;
	struct due_scan scan = {self, mg_now_ms(ctx), UINT64_MAX, NULL, NULL};
	if (self->schedule_timer > 0)
		mg_timer_del(ctx, self->schedule_timer);
	self->schedule_timer = 0;
	if (scan_keys(ctx, &scan) || scan.earliest_ms == UINT64_MAX)
		return;
	uint64_t at =
	    scan.earliest_ms > self->schedule_retry_ms ? scan.earliest_ms : self->schedule_retry_ms;
	uint64_t wait = at > scan.now_ms ? at - scan.now_ms : 0;
	self->schedule_timer = mg_timer_add(
	    ctx, (unsigned)(wait < KS_SCHEDULE_RECHECK_MS ? wait : KS_SCHEDULE_RECHECK_MS), 0,
	    schedule_fire, NULL);
	if (self->schedule_timer < 0)
		mg_warn(ctx, "cannot arm the rotation schedule: %s",
		        strerror(-self->schedule_timer));
}

static void schedule_fire(mg_ctx *ctx, void *arg)
{
	struct keystore *self = ctx->self;
	struct due_scan scan = {self, mg_now_ms(ctx), UINT64_MAX, json_array(), json_array()};
	size_t i;
	json_t *name;
	bool failed = false;
	char err[512];
	int rc;
	(void)arg;
	self->schedule_timer = 0; /* it fired: a one-shot timer is gone */
	if (scan.due && scan.expired && !scan_keys(ctx, &scan)) {
		json_array_foreach(scan.due, i, name)
		{
			json_t *reply = rotate_key(ctx, json_string_value(name));
			if (json_object_get(reply, "error")) {
				mg_warn(ctx, "scheduled rotation: %s",
				        json_string_value(json_object_get(reply, "message")));
				failed = true;
			}
			json_decref(reply);
		}
		json_array_foreach(scan.expired, i, name)
		{
			json_t *record =
			    load_record(ctx, json_string_value(name), false, &rc, err, sizeof(err));
			failed |= !record || json_object_get(record, "previous");
			json_decref(record);
		}
	}
	json_decref(scan.due);
	json_decref(scan.expired);
	self->schedule_retry_ms = failed ? mg_now_ms(ctx) + KS_SCHEDULE_RETRY_MS : 0;
	schedule_arm(ctx); /* also when nothing was due: a recheck of a long schedule */
}

struct status_scan {
	struct keystore *self;
	json_t *keys;
};

static int collect_status(const char *key, json_t *meta, void *arg)
{
	struct status_scan *scan = arg;
	json_t *entry = json_deep_copy(meta);
	uint64_t due = rotation_due(scan->self, meta);
	json_object_set_new(entry, "name", json_string(key));
	if (due)
		json_object_set_new(entry, "next_rotation_ms", json_integer((json_int_t)due));
	return json_array_append_new(scan->keys, entry) ? -ENOMEM : 0;
}

static json_t *secret_status(mg_ctx *ctx, const char *service, json_t *req, void *arg)
{
	struct keystore *self = ctx->self;
	(void)service, (void)req, (void)arg;
	struct status_scan scan = {self, json_array()};
	mg_txn *txn;
	if (!scan.keys || mg_txn_begin(ctx, MG_TXN_READ, &txn)) {
		json_decref(scan.keys);
		return mg_error("internal", "cannot read the keys' records");
	}
	int rc = mg_state_foreach(ctx, txn, KS_DB, NULL, collect_status, &scan);
	mg_txn_abort(ctx, txn);
	if (rc) {
		json_decref(scan.keys);
		return mg_error("internal", "cannot read the keys' records");
	}
	return json_pack("{s:s, s:I, s:I, s:o}", "backend", "local", "now_ms",
	                 (json_int_t)mg_now_ms(ctx), "schedule_ms", (json_int_t)self->schedule_ms,
	                 "keys", scan.keys);
}

static int keystore_init(mg_ctx *ctx)
{
	struct keystore *self = calloc(1, sizeof(*self));
	char err[512];
	int rc;
	if (!self)
		return -ENOMEM;
	ctx->self = self;
	if ((rc = seal_key_path(setting(ctx, "seal_key_file"), mg_state_dir(ctx), self->key_path,
	                        sizeof(self->key_path), err, sizeof(err))) ||
	    (rc = mg_duration_parse(setting(ctx, "grace"), &self->grace_ms, err, sizeof(err))) ||
	    (setting(ctx, "schedule")[0] &&
	     (rc = mg_duration_parse(setting(ctx, "schedule"), &self->schedule_ms, err,
	                             sizeof(err))))) {
		mg_error_log(ctx, "keystore: %s", err);
		free(self);
		ctx->self = NULL;
		return rc;
	}
	if ((rc = mg_service_add(ctx, "secret.get", secret_get, NULL)) ||
	    (rc = mg_service_add(ctx, "secret.put", secret_put, NULL)) ||
	    (rc = mg_service_add(ctx, "secret.rotate", secret_rotate, NULL)) ||
	    (rc = mg_service_add(ctx, "secret.promote", secret_promote, NULL)) ||
	    (rc = mg_service_add(ctx, "secret.status", secret_status, NULL))) {
		free(self);
		ctx->self = NULL;
		return rc;
	}
	return 0;
}

/* After every plugin's init: their keys are made, and a rotation missed
 * while meshgated was down fires now, when their owners can follow it. */
static int keystore_start(mg_ctx *ctx)
{
	struct keystore *self = ctx->self;
	schedule_arm(ctx);
	if (self->schedule_ms)
		mg_info(ctx, "keys are rotated every %s", setting(ctx, "schedule"));
	return 0;
}

static void keystore_stop(mg_ctx *ctx)
{
	free(ctx->self);
	ctx->self = NULL;
}

static const struct mg_setting keystore_settings[] = {
    {"seal_key_file", MG_SETTING_STRING, "\"\"",
     "File of the key that seals every private key of the node, kept out of the state dir "
     "(made on first start). Empty: the systemd credential \"" SEAL_CREDENTIAL "\" when the "
     "service has one ($CREDENTIALS_DIRECTORY), else STATE_DIR-seal.key beside the state dir "
     "(/var/lib/meshgate-seal.key).",
     NULL, 0},
    {"grace", MG_SETTING_STRING, "\"10m\"",
     "How long a key's previous version is kept once a new one replaced it (a duration: "
     "\"30s\", \"10m\", \"24h\").",
     NULL, 0},
    {"schedule", MG_SETTING_STRING, "\"\"",
     "How often each key is rotated (a duration: \"30s\", \"10m\", \"24h\"), counted from "
     "when its version in use was made; its owner switches to the new version without losing "
     "a packet (docs/rotation.md). Empty: only `meshgatectl key rotate` rotates.",
     NULL, 0},
    {0},
};

static const char *const keystore_owns[] = {KS_DB, NULL};
static const char *const keystore_provides[] = {"secrets", NULL};

MG_PLUGIN(.name = "keystore", .version = "0.1.0",
          .description = "the node's private keys, sealed on this node (secrets = \"local\")",
          .provides = keystore_provides, .owns = keystore_owns, .settings = keystore_settings,
          .init = keystore_init, .start = keystore_start, .stop = keystore_stop);
