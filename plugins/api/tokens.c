/* Admin tokens: api.token.add/list/revoke, and the check of a presented
 * token on every admin request.
 *
 * A token is "mgt_" and 32 random bytes (base64url). Only its hash is
 * stored, in API_TOKENS_DB (cluster-wide, like preauth's users: a token
 * made on one node works on every node), keyed by the token's name.
 *
 * The hash is BLAKE2b (crypto_generichash), keyed with a fixed context
 * string that keeps these hashes apart from any other use of BLAKE2b. A
 * slow password hash (crypto_pwhash) is for secrets people choose, which
 * are guessable; 256 random bits are not, so inverting a fast hash of one
 * is as hopeless as guessing the token, and a slow hash would only make
 * every request (and every attacker's wrong guess) cost ~100 ms of CPU. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "admin.h"

#define TOKEN_PREFIX   "mgt_"
#define TOKEN_BYTES    32
#define TOKEN_B64_LEN  43 /* base64url of 32 bytes, no padding */
#define TOKEN_TEXT_LEN (sizeof(TOKEN_PREFIX) - 1 + TOKEN_B64_LEN)
#define HASH_BYTES     32
#define TOKEN_NAME_MAX 64
#define TOKENS_MAX     1000 /* checked at every admin request: keep the scan short */
#define HASH_CONTEXT   "meshgate admin token, BLAKE2b v1" /* 32 bytes */

static int token_hash(const char *token, char hex[2 * HASH_BYTES + 1])
{
	unsigned char hash[HASH_BYTES];
	if (strlen(token) != TOKEN_TEXT_LEN ||
	    strncmp(token, TOKEN_PREFIX, sizeof(TOKEN_PREFIX) - 1))
		return -EINVAL;
	for (const char *p = token + sizeof(TOKEN_PREFIX) - 1; *p; p++)
		if (!(*p >= 'A' && *p <= 'Z') && !(*p >= 'a' && *p <= 'z') &&
		    !(*p >= '0' && *p <= '9') && *p != '-' && *p != '_')
			return -EINVAL;
	crypto_generichash(hash, sizeof(hash), (const unsigned char *)token, TOKEN_TEXT_LEN,
	                   (const unsigned char *)HASH_CONTEXT, sizeof(HASH_CONTEXT) - 1);
	sodium_bin2hex(hex, 2 * HASH_BYTES + 1, hash, sizeof(hash));
	return 0;
}

static void token_new(char token[TOKEN_TEXT_LEN + 1])
{
	unsigned char bytes[TOKEN_BYTES];
	randombytes_buf(bytes, sizeof(bytes));
	memcpy(token, TOKEN_PREFIX, sizeof(TOKEN_PREFIX) - 1);
	sodium_bin2base64(token + sizeof(TOKEN_PREFIX) - 1, TOKEN_B64_LEN + 1, bytes, sizeof(bytes),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(bytes, sizeof(bytes));
}

/* Letters, digits, '.', '_' and '-': a name that reads well in the
 * audit and needs no quoting in a URL. */
static int name_valid(const char *name)
{
	size_t n = strlen(name);
	if (!n || n > TOKEN_NAME_MAX)
		return 0;
	for (const char *p = name; *p; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && !strchr("._-", *p))
			return 0;
	return 1;
}

static json_int_t now_s(mg_ctx *ctx)
{
	return (json_int_t)(mg_now_ms(ctx) / 1000);
}

/* ---- checking a presented token (MHD's threads) ---- */

struct lookup {
	const char *hash;
	json_t *found; /* the record, with its "name" */
	size_t count;
};

static int match_token(const char *key, json_t *value, void *arg)
{
	struct lookup *l = arg;
	const char *hash = json_string_value(json_object_get(value, "hash"));
	l->count++;
	/* constant time: no timing tells how much of a guess was right */
	if (hash && strlen(hash) == strlen(l->hash) &&
	    !sodium_memcmp(hash, l->hash, strlen(l->hash)) && !l->found) {
		l->found = json_incref(value);
		json_object_set_new(l->found, "name", json_string(key));
	}
	return 0;
}

int api_token_check(mg_ctx *ctx, const char *token, char *name, size_t name_len,
                    enum api_role *role, const char **why)
{
	char hex[2 * HASH_BYTES + 1];
	mg_txn *txn;
	*role = API_ROLE_NONE;
	name[0] = '\0';
	if (token_hash(token, hex)) {
		*why = "not a meshgate admin token";
		return -EACCES;
	}
	struct lookup l = {hex, NULL, 0};
	int rc = mg_txn_begin(ctx, MG_TXN_READ, &txn);
	if (rc) {
		*why = "cannot read the tokens";
		return rc;
	}
	rc = mg_state_foreach(ctx, txn, API_TOKENS_DB, NULL, match_token, &l);
	mg_txn_abort(ctx, txn);
	if (rc) {
		*why = "cannot read the tokens";
		return rc;
	}
	if (!l.found) {
		*why = "unknown or revoked token";
		return -EACCES;
	}
	json_int_t expires = json_integer_value(json_object_get(l.found, "expires_at"));
	enum api_role r = api_role_parse(json_string_value(json_object_get(l.found, "role")));
	snprintf(name, name_len, "%s", json_string_value(json_object_get(l.found, "name")));
	json_decref(l.found);
	if (expires && expires <= now_s(ctx)) {
		*why = "the token has expired";
		return -EACCES;
	}
	if (r == API_ROLE_NONE) {
		*why = "the token's role is unknown";
		return -EACCES;
	}
	*role = r;
	return 0;
}

int api_token_alive(mg_ctx *ctx, const char *name)
{
	mg_txn *txn;
	json_t *record = NULL;
	int rc = mg_txn_begin(ctx, MG_TXN_READ, &txn);
	if (rc)
		return rc;
	rc = mg_state_get(ctx, txn, API_TOKENS_DB, name, &record);
	mg_txn_abort(ctx, txn);
	if (rc)
		return rc == -ENOENT ? -EACCES : rc;
	json_int_t expires = json_integer_value(json_object_get(record, "expires_at"));
	json_decref(record);
	return expires && expires <= now_s(ctx) ? -EACCES : 0;
}

/* ---- the services (the plugin's thread) ---- */

static int count_tokens(const char *key, json_t *value, void *arg)
{
	(void)key;
	(void)value;
	(*(size_t *)arg)++;
	return 0;
}

static json_t *token_add(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{"name", MG_FIELD_STRING, 1, 1, TOKEN_NAME_MAX},
	                                         {"role", MG_FIELD_STRING, 1, 1, 16},
	                                         {"expires", MG_FIELD_STRING, 0, 1, 16},
	                                         {0}};
	char err[256], token[TOKEN_TEXT_LEN + 1], hex[2 * HASH_BYTES + 1];
	uint64_t ttl_ms = 0;
	size_t count = 0;
	mg_txn *txn;
	json_t *bad, *old;
	(void)service;
	(void)arg;
	if ((bad = mg_request_check(ctx, request, fields)))
		return bad;
	const char *name = json_string_value(json_object_get(request, "name"));
	const char *role = json_string_value(json_object_get(request, "role"));
	const char *expires = json_string_value(json_object_get(request, "expires"));
	if (!name_valid(name))
		return mg_field_error("name",
		                      "a token's name is 1 to %d letters, digits, '.', '_' or '-'",
		                      TOKEN_NAME_MAX);
	if (api_role_parse(role) == API_ROLE_NONE)
		return mg_field_error("role", "role must be admin, operator or viewer");
	if (expires && mg_duration_parse(expires, &ttl_ms, err, sizeof(err)))
		return mg_field_error("expires", "expires: %s", err);
	int rc = mg_txn_begin(ctx, 0, &txn);
	if (rc)
		return mg_error("unavailable", "cannot write the tokens: %s", strerror(-rc));
	if (!mg_state_get(ctx, txn, API_TOKENS_DB, name, &old)) {
		json_decref(old);
		mg_txn_abort(ctx, txn);
		return mg_error("exists", "token '%s' exists: revoke it first", name);
	}
	mg_state_foreach(ctx, txn, API_TOKENS_DB, NULL, count_tokens, &count);
	if (count >= TOKENS_MAX) {
		mg_txn_abort(ctx, txn);
		return mg_error("conflict", "there are %d tokens already: revoke some", TOKENS_MAX);
	}
	token_new(token);
	token_hash(token, hex);
	json_int_t now = now_s(ctx), expires_at = ttl_ms ? now + (json_int_t)(ttl_ms / 1000) : 0;
	json_t *record = json_pack("{s:i, s:s, s:s, s:I, s:I}", "v", 1, "role", role, "hash", hex,
	                           "created_at", now, "expires_at", expires_at);
	rc = mg_state_put(ctx, txn, API_TOKENS_DB, name, record);
	json_decref(record);
	if (rc)
		mg_txn_abort(ctx, txn);
	else
		rc = mg_txn_commit(ctx, txn);
	if (rc) {
		sodium_memzero(token, sizeof(token));
		return mg_error("unavailable", "cannot write the token: %s", strerror(-rc));
	}
	mg_info(ctx, "admin token '%s' (%s) added", name, role);
	json_t *reply = json_pack("{s:s, s:s, s:s, s:I, s:I}", "name", name, "role", role, "token",
	                          token, "created_at", now, "expires_at", expires_at);
	sodium_memzero(token, sizeof(token));
	return reply;
}

struct token_listing {
	json_t *tokens;
	json_int_t now;
};

static int list_token(const char *key, json_t *value, void *arg)
{
	struct token_listing *l = arg;
	json_int_t expires = json_integer_value(json_object_get(value, "expires_at"));
	json_array_append_new(l->tokens,
	                      json_pack("{s:s, s:O?, s:O?, s:I, s:b}", "name", key, "role",
	                                json_object_get(value, "role"), "created_at",
	                                json_object_get(value, "created_at"), "expires_at", expires,
	                                "expired", expires && expires <= l->now));
	return 0;
}

static json_t *token_list(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	mg_txn *txn;
	json_t *bad;
	(void)service;
	(void)arg;
	if ((bad = mg_request_check(ctx, request, fields)))
		return bad;
	struct token_listing l = {json_array(), now_s(ctx)};
	int rc = mg_txn_begin(ctx, MG_TXN_READ, &txn);
	if (!rc) {
		rc = mg_state_foreach(ctx, txn, API_TOKENS_DB, NULL, list_token, &l);
		mg_txn_abort(ctx, txn);
	}
	if (rc) {
		json_decref(l.tokens);
		return mg_error("unavailable", "cannot read the tokens: %s", strerror(-rc));
	}
	return json_pack("{s:o}", "tokens", l.tokens);
}

static json_t *token_revoke(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{"name", MG_FIELD_STRING, 1, 1, TOKEN_NAME_MAX},
	                                         {0}};
	mg_txn *txn;
	json_t *bad, *old;
	(void)service;
	(void)arg;
	if ((bad = mg_request_check(ctx, request, fields)))
		return bad;
	const char *name = json_string_value(json_object_get(request, "name"));
	int rc = mg_txn_begin(ctx, 0, &txn);
	if (rc)
		return mg_error("unavailable", "cannot write the tokens: %s", strerror(-rc));
	if (mg_state_get(ctx, txn, API_TOKENS_DB, name, &old)) {
		mg_txn_abort(ctx, txn);
		return mg_error("not_found", "no token '%.64s'", name);
	}
	json_decref(old);
	rc = mg_state_del(ctx, txn, API_TOKENS_DB, name);
	if (rc)
		mg_txn_abort(ctx, txn);
	else
		rc = mg_txn_commit(ctx, txn);
	if (rc) {
		return mg_error("unavailable", "cannot revoke the token: %s", strerror(-rc));
	}
	mg_info(ctx, "admin token '%s' revoked", name);
	return json_pack("{s:s, s:s}", "name", name, "state", "revoked");
}

int api_tokens_register(mg_ctx *ctx)
{
	int rc = mg_service_add(ctx, "api.token.add", token_add, NULL);
	if (!rc)
		rc = mg_service_add(ctx, "api.token.list", token_list, NULL);
	if (!rc)
		rc = mg_service_add(ctx, "api.token.revoke", token_revoke, NULL);
	return rc;
}
