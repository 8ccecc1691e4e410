#include "secret.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "wg.h"

const struct mg_field secret_get_fields[] = {
    {"name", MG_FIELD_STRING, 1, 3, 129},
    {"create", MG_FIELD_BOOL, 0, 0, 0},
    {0},
};

const struct mg_field secret_put_fields[] = {
    {"name", MG_FIELD_STRING, 1, 3, 129},
    {"key", MG_FIELD_STRING, 1, 1, SECRET_TEXT_MAX},
    {"cas", MG_FIELD_INT, 0, 0, INT32_MAX},
    {"type", MG_FIELD_STRING, 0, 1, 16},
    {0},
};

const struct mg_field secret_rotate_fields[] = {
    {"name", MG_FIELD_STRING, 1, 3, 129},
    {0},
};

const struct mg_field secret_promote_fields[] = {
    {"name", MG_FIELD_STRING, 1, 3, 129},
    {"version", MG_FIELD_INT, 1, 1, INT32_MAX},
    {0},
};

int secret_publish(mg_ctx *ctx, const char *topic, const char *name, long long version)
{
	json_t *event = json_pack("{s:s, s:I}", "name", name, "version", (json_int_t)version);
	int rc = event ? mg_publish(ctx, topic, event) : -ENOMEM;
	json_decref(event);
	return rc;
}

static int part_valid(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
		            s[i]))
			return 0;
	return 1;
}

int secret_name_check(const char *name, char *err, size_t errlen)
{
	const char *slash = name ? strchr(name, '/') : NULL;
	if (!slash || !part_valid(name, (size_t)(slash - name)) ||
	    !part_valid(slash + 1, strlen(slash + 1))) {
		snprintf(err, errlen,
		         "a secret's name is OWNER/NAME, each 1 to 64 of letters, digits, '_' "
		         "and '-'");
		return -EINVAL;
	}
	return 0;
}

int secret_put_check(json_t *req, char *err, size_t errlen)
{
	const char *type = json_string_value(json_object_get(req, "type"));
	const char *key = json_string_value(json_object_get(req, "key"));
	size_t max = SECRET_TEXT_MAX / 4 * 3, len = 0;
	int wireguard = type && !strcmp(type, SECRET_TYPE_WIREGUARD);
	if (type && !wireguard && strcmp(type, SECRET_TYPE_OPAQUE)) {
		snprintf(err, errlen, "type: \"%s\" or \"%s\"", SECRET_TYPE_WIREGUARD,
		         SECRET_TYPE_OPAQUE);
		return -EINVAL;
	}
	unsigned char *bin = key ? malloc(max) : NULL;
	int bad = !bin ||
	          sodium_base642bin(bin, max, key, strlen(key), NULL, &len, NULL,
	                            sodium_base64_VARIANT_ORIGINAL) ||
	          len == 0;
	if (bin)
		sodium_memzero(bin, max);
	free(bin);
	if (bad || (wireguard && len != 32)) {
		snprintf(err, errlen, "key: %s",
		         bad ? "not base64 of 1 or more bytes" : "not a WireGuard key (32 bytes)");
		return -EINVAL;
	}
	return 0;
}

int secret_record_rotates(json_t *record)
{
	const char *type = json_string_value(json_object_get(record, "type"));
	return !type || !strcmp(type, SECRET_TYPE_WIREGUARD);
}

json_t *secret_new_wg_key(void)
{
	wg_key key;
	char text[WG_KEY_B64_LEN];
	wg_key_generate_private(key);
	wg_key_to_base64(text, key);
	json_t *out = json_string(text);
	sodium_memzero(key, sizeof(key));
	sodium_memzero(text, sizeof(text));
	return out;
}

json_t *secret_record_new(const char *name, uint64_t now_ms)
{
	return json_pack("{s:s, s:i, s:o, s:I}", "name", name, "version", 1, "key",
	                 secret_new_wg_key(), "created_ms", (json_int_t)now_ms);
}

int secret_record_rotate(json_t *record, uint64_t now_ms)
{
	if (!secret_record_rotates(record))
		return -EMEDIUMTYPE;
	if (json_object_get(record, "next"))
		return 0;
	json_int_t version = json_integer_value(json_object_get(record, "version"));
	json_t *next = json_pack("{s:I, s:o, s:I}", "version", version + 1, "key",
	                         secret_new_wg_key(), "created_ms", (json_int_t)now_ms);
	return next && !json_object_set_new(record, "next", next) ? 1 : -ENOMEM;
}

int secret_record_promote(json_t *record, long long version, uint64_t now_ms, uint64_t grace_ms)
{
	json_t *next = json_object_get(record, "next");
	if (json_integer_value(json_object_get(record, "version")) == version)
		return 0;
	if (!next || json_integer_value(json_object_get(next, "version")) != version)
		return -ESTALE;
	json_t *previous =
	    json_pack("{s:O, s:O, s:I}", "version", json_object_get(record, "version"), "key",
	              json_object_get(record, "key"), "until_ms", (json_int_t)(now_ms + grace_ms));
	if (!previous)
		return -ENOMEM;
	json_incref(next);
	json_object_del(record, "next");
	json_object_set_new(record, "previous", previous);
	json_object_set(record, "version", json_object_get(next, "version"));
	json_object_set(record, "key", json_object_get(next, "key"));
	json_object_set(record, "created_ms", json_object_get(next, "created_ms"));
	json_decref(next);
	return 1;
}

json_t *secret_record_put(const char *name, json_t *record, const char *key, const char *type,
                          uint64_t now_ms, uint64_t grace_ms)
{
	json_int_t version = json_integer_value(json_object_get(record, "version"));
	json_t *out = json_pack("{s:s, s:I, s:s, s:I, s:s}", "name", name, "version", version + 1,
	                        "key", key, "created_ms", (json_int_t)now_ms, "type", type);
	if (out && record)
		json_object_set_new(out, "previous",
		                    json_pack("{s:I, s:O, s:I}", "version", version, "key",
		                              json_object_get(record, "key"), "until_ms",
		                              (json_int_t)(now_ms + grace_ms)));
	return out;
}

json_t *secret_record_public(json_t *record)
{
	json_t *out = json_deep_copy(record);
	json_object_del(out, "key");
	json_object_del(json_object_get(out, "next"), "key");
	json_object_del(json_object_get(out, "previous"), "key");
	return out;
}

static const char *key_text(json_t *holder)
{
	return json_string_value(json_object_get(holder, "key"));
}

/* A key's text in a reply: wiped before the reply is freed. */
static void wipe_key_text(json_t *holder)
{
	const char *text = key_text(holder);
	if (text)
		sodium_memzero((char *)text, strlen(text));
}

int secret_get_wg_keys(mg_ctx *ctx, const char *name, struct secret_wg_key *out, char *err,
                       size_t errlen)
{
	json_t *req = json_pack("{s:s}", "name", name), *reply = NULL;
	int rc = req ? mg_request(ctx, "secret.get", req, SECRET_GET_TIMEOUT_MS, &reply) : -ENOMEM;
	json_decref(req);
	memset(out, 0, sizeof(*out));
	json_t *next = json_object_get(reply, "next");
	if (rc) {
		const char *why = json_string_value(json_object_get(reply, "message"));
		snprintf(err, errlen, "secret.get %s: %s", name, why ? why : strerror(-rc));
	} else if (wg_key_from_base64(out->key, key_text(reply)) ||
	           (next && wg_key_from_base64(out->next_key, key_text(next)))) {
		snprintf(err, errlen, "secret.get %s: the answer holds no WireGuard key", name);
		rc = -EPROTO;
	} else {
		out->version = json_integer_value(json_object_get(reply, "version"));
		out->created = json_is_true(json_object_get(reply, "created"));
		out->has_next = next != NULL;
		out->next_version = json_integer_value(json_object_get(next, "version"));
	}
	wipe_key_text(reply);
	wipe_key_text(next);
	wipe_key_text(json_object_get(reply, "previous"));
	json_decref(reply);
	if (rc)
		sodium_memzero(out, sizeof(*out));
	return rc;
}

int secret_get_wg_key(mg_ctx *ctx, const char *name, uint8_t key[32], long long *version,
                      int *created, char *err, size_t errlen)
{
	struct secret_wg_key keys;
	int rc = secret_get_wg_keys(ctx, name, &keys, err, errlen);
	if (!rc) {
		memcpy(key, keys.key, 32);
		*version = keys.version;
		*created = keys.created;
	}
	sodium_memzero(&keys, sizeof(keys));
	return rc;
}

/* The error code of a reply ("not_found", "conflict", ...), or "". */
static const char *error_code(json_t *reply)
{
	const char *code = json_string_value(json_object_get(reply, "error"));
	return code ? code : "";
}

static void request_failed(json_t *reply, int rc, const char *service, const char *name, char *err,
                           size_t errlen)
{
	const char *why = json_string_value(json_object_get(reply, "message"));
	snprintf(err, errlen, "%s %s: %s", service, name, why ? why : strerror(-rc));
}

int secret_get_opaque(mg_ctx *ctx, const char *name, unsigned char **data, size_t *len,
                      long long *version, char *err, size_t errlen)
{
	json_t *req = json_pack("{s:s, s:b}", "name", name, "create", 0), *reply = NULL;
	int rc = req ? mg_request(ctx, "secret.get", req, SECRET_GET_TIMEOUT_MS, &reply) : -ENOMEM;
	json_decref(req);
	const char *text = key_text(reply);
	size_t max = text ? strlen(text) / 4 * 3 + 3 : 0;
	*data = NULL;
	*len = 0;
	if (rc) {
		request_failed(reply, rc, "secret.get", name, err, errlen);
		rc = !strcmp(error_code(reply), "not_found") ? -ENOENT : rc;
	} else if (secret_record_rotates(reply)) {
		snprintf(err, errlen, "secret.get %s: a WireGuard key, not the secret asked for",
		         name);
		rc = -EPROTO;
	} else if (!(*data = malloc(max + 1))) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
	} else if (sodium_base642bin(*data, max, text, strlen(text), NULL, len, NULL,
	                             sodium_base64_VARIANT_ORIGINAL)) {
		snprintf(err, errlen, "secret.get %s: the answer is not base64", name);
		rc = -EPROTO;
	} else {
		(*data)[*len] = '\0';
		*version = json_integer_value(json_object_get(reply, "version"));
	}
	if (rc && *data) {
		sodium_memzero(*data, max + 1);
		free(*data);
		*data = NULL;
		*len = 0;
	}
	wipe_key_text(reply);
	wipe_key_text(json_object_get(reply, "previous"));
	json_decref(reply);
	return rc;
}

int secret_put_opaque(mg_ctx *ctx, const char *name, const void *data, size_t len, long long cas,
                      char *err, size_t errlen)
{
	size_t textlen = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *text = textlen <= SECRET_TEXT_MAX + 1 ? malloc(textlen) : NULL;
	json_t *req = NULL, *reply = NULL;
	int rc = -ENOMEM;
	if (textlen > SECRET_TEXT_MAX + 1) {
		snprintf(err, errlen, "%s: %zu bytes, more than a secret holds", name, len);
		return -EFBIG;
	}
	if (text) {
		sodium_bin2base64(text, textlen, data, len, sodium_base64_VARIANT_ORIGINAL);
		req = json_pack("{s:s, s:s, s:I, s:s}", "name", name, "key", text, "cas",
		                (json_int_t)cas, "type", SECRET_TYPE_OPAQUE);
		sodium_memzero(text, textlen);
		free(text);
	}
	if (req)
		rc = mg_request(ctx, "secret.put", req, SECRET_GET_TIMEOUT_MS, &reply);
	else
		snprintf(err, errlen, "out of memory");
	if (req)
		wipe_key_text(req);
	json_decref(req);
	if (rc && rc != -ENOMEM) {
		request_failed(reply, rc, "secret.put", name, err, errlen);
		rc = !strcmp(error_code(reply), "conflict") ? -EEXIST : rc;
	}
	json_decref(reply);
	return rc;
}
