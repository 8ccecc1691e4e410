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

struct keystore {
	char key_path[4096]; /* the sealing key */
	uint64_t grace_ms;
};

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

/* Makes the next version, not used until the hitless rotation (a later
 * part of the secret service) publishes it and switches. */
static json_t *secret_rotate(mg_ctx *ctx, const char *service, json_t *req, void *arg)
{
	char err[512];
	int rc;
	(void)service, (void)arg;
	json_t *bad = mg_request_check(ctx, req, secret_rotate_fields);
	if (bad)
		return bad;
	const char *name = json_string_value(json_object_get(req, "name"));
	if (secret_name_check(name, err, sizeof(err)))
		return mg_field_error("name", "%s", err);
	json_t *record = load_record(ctx, name, false, &rc, err, sizeof(err));
	if (!record)
		return failed(name, rc, err);
	int made = secret_record_rotate(record, mg_now_ms(ctx));
	json_t *next = json_object_get(record, "next");
	if (made == 1 && ((rc = store_version(ctx, name, ".next",
	                                      json_string_value(json_object_get(next, "key")), err,
	                                      sizeof(err))) ||
	                  (rc = save_meta(ctx, record)))) {
		json_decref(record);
		return mg_error("internal", "%s: cannot store the next version: %s", name,
		                err[0] ? err : strerror(-rc));
	}
	if (made == 1)
		mg_info(ctx, "%s: made version %lld (next, not in use yet)", name,
		        json_integer_value(json_object_get(next, "version")));
	json_t *reply = secret_record_public(record);
	json_object_set_new(reply, "made", json_boolean(made == 1));
	json_decref(record);
	return with_backend(reply);
}

/* A key made elsewhere (a TLS key) becomes the version after `cas`. */
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
	                      mg_now_ms(ctx), self->grace_ms);
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

static int collect_status(const char *key, json_t *meta, void *arg)
{
	json_t *entry = json_deep_copy(meta);
	json_object_set_new(entry, "name", json_string(key));
	return json_array_append_new(arg, entry) ? -ENOMEM : 0;
}

static json_t *secret_status(mg_ctx *ctx, const char *service, json_t *req, void *arg)
{
	(void)service, (void)req, (void)arg;
	json_t *keys = json_array();
	mg_txn *txn;
	if (!keys || mg_txn_begin(ctx, MG_TXN_READ, &txn)) {
		json_decref(keys);
		return mg_error("internal", "cannot read the keys' records");
	}
	int rc = mg_state_foreach(ctx, txn, KS_DB, NULL, collect_status, keys);
	mg_txn_abort(ctx, txn);
	if (rc) {
		json_decref(keys);
		return mg_error("internal", "cannot read the keys' records");
	}
	return json_pack("{s:s, s:I, s:o}", "backend", "local", "now_ms",
	                 (json_int_t)mg_now_ms(ctx), "keys", keys);
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
	    (rc = mg_duration_parse(setting(ctx, "grace"), &self->grace_ms, err, sizeof(err)))) {
		mg_error_log(ctx, "keystore: %s", err);
		free(self);
		ctx->self = NULL;
		return rc;
	}
	if ((rc = mg_service_add(ctx, "secret.get", secret_get, NULL)) ||
	    (rc = mg_service_add(ctx, "secret.put", secret_put, NULL)) ||
	    (rc = mg_service_add(ctx, "secret.rotate", secret_rotate, NULL)) ||
	    (rc = mg_service_add(ctx, "secret.status", secret_status, NULL))) {
		free(self);
		ctx->self = NULL;
		return rc;
	}
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
    {0},
};

static const char *const keystore_owns[] = {KS_DB, NULL};
static const char *const keystore_provides[] = {"secrets", NULL};

MG_PLUGIN(.name = "keystore", .version = "0.1.0",
          .description = "the node's private keys, sealed on this node (secrets = \"local\")",
          .provides = keystore_provides, .owns = keystore_owns, .settings = keystore_settings,
          .init = keystore_init, .stop = keystore_stop);
