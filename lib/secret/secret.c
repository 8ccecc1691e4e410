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
    {0},
};

const struct mg_field secret_rotate_fields[] = {
    {"name", MG_FIELD_STRING, 1, 3, 129},
    {0},
};

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
	if (json_object_get(record, "next"))
		return 0;
	json_int_t version = json_integer_value(json_object_get(record, "version"));
	json_t *next = json_pack("{s:I, s:o, s:I}", "version", version + 1, "key",
	                         secret_new_wg_key(), "created_ms", (json_int_t)now_ms);
	return next && !json_object_set_new(record, "next", next) ? 1 : -ENOMEM;
}

json_t *secret_record_put(const char *name, json_t *record, const char *key, uint64_t now_ms,
                          uint64_t grace_ms)
{
	json_int_t version = json_integer_value(json_object_get(record, "version"));
	json_t *out = json_pack("{s:s, s:I, s:s, s:I}", "name", name, "version", version + 1, "key",
	                        key, "created_ms", (json_int_t)now_ms);
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

int secret_get_wg_key(mg_ctx *ctx, const char *name, uint8_t key[32], long long *version,
                      int *created, char *err, size_t errlen)
{
	json_t *req = json_pack("{s:s}", "name", name), *reply = NULL;
	int rc = req ? mg_request(ctx, "secret.get", req, SECRET_GET_TIMEOUT_MS, &reply) : -ENOMEM;
	json_decref(req);
	if (rc) {
		const char *why = json_string_value(json_object_get(reply, "message"));
		snprintf(err, errlen, "secret.get %s: %s", name, why ? why : strerror(-rc));
	} else if (wg_key_from_base64(key, json_string_value(json_object_get(reply, "key")))) {
		snprintf(err, errlen, "secret.get %s: the answer holds no WireGuard key", name);
		rc = -EPROTO;
	} else {
		*version = json_integer_value(json_object_get(reply, "version"));
		*created = json_is_true(json_object_get(reply, "created"));
	}
	/* the reply's copy of the key: wiped before it is freed */
	const char *text = json_string_value(json_object_get(reply, "key"));
	if (text)
		sodium_memzero((char *)text, strlen(text));
	json_decref(reply);
	return rc;
}
