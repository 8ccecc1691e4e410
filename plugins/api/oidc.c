/* The identity provider as the gateway sees it (oidc.h): its discovery
 * document and its keys (fetched on first use, over verified TLS; the keys
 * again when a token names one not seen yet, at most every
 * JWKS_REFETCH_MS); the devices' enrolment with an ID token; the admins'
 * sign-in to the panel (the authorization code flow with PKCE).
 *
 * Who is who (API_OIDC_DB): "sub:" + hex SHA-256 of iss and sub -> {"iss",
 * "sub", "user"}, so that a person keeps one user however their name
 * changes at the provider; and "user:" + name -> {"iss", "sub"}, so that
 * no second person gets that user. A user an admin made (with a code) is
 * never taken over by a login. */
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "admin.h"
#include "curl_body.h"
#include "limit.h"
#include "oidc.h"

/* Largest document taken from the provider. */
#define FETCH_MAX (256 * 1024)
/* A failed discovery, or keys that lack a token's kid, are fetched again
 * no sooner than this: a flood of forged kids cannot make us hammer the
 * provider. */
#define JWKS_REFETCH_MS 10000u
/* The single-use code a login makes lives this long: it is redeemed at
 * once, in the same request. */
#define CODE_TTL "5m"

/* An admin's sign-in between /auth/oidc/login and its callback. */
#define SECRET_LEN 43 /* base64url of 32 random bytes */
struct signin {
	char state[SECRET_LEN + 1]; /* "" free */
	char nonce[SECRET_LEN + 1];
	char verifier[SECRET_LEN + 1]; /* PKCE's code_verifier */
	uint64_t started_ms;
};

struct api_oidc {
	mg_ctx *ctx;
	json_t *config; /* a copy of api.oidc: st's strings point into it */
	struct api_oidc_settings st;
	int timeout_ms;
	struct api_limit *limit; /* failed logins per source */
	char *secret;            /* the gateway's client secret, or NULL */
	char *ca_pem;            /* ca_file's certificates, told to devices, or NULL */
	pthread_mutex_t lock;    /* of what follows */
	json_t *discovery;       /* the provider's document, once fetched */
	json_t *jwks;            /* its keys */
	uint64_t fetched_ms;     /* when the keys (or a failed discovery) were last tried */
	char fetch_error[256];   /* why the last discovery failed */
	struct signin signins[API_OIDC_SIGNINS_MAX]; /* admins' sign-ins under way */
};

static int fail(char *why, size_t whylen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *why, size_t whylen, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return rc;
}

/* The first line of the client secret file. */
static char *read_secret(const char *path, char *why, size_t whylen)
{
	struct stat sb;
	char line[1024];
	FILE *f = fopen(path, "re");
	if (!f) {
		fail(why, whylen, -errno, "api.oidc.client_secret_file %s: %s", path,
		     strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &sb) || (sb.st_mode & 077)) {
		fclose(f);
		fail(why, whylen, -EPERM,
		     "api.oidc.client_secret_file %s may be read by others (mode %03o): chmod 600 "
		     "it",
		     path, (unsigned)(sb.st_mode & 0777));
		return NULL;
	}
	char *secret = fgets(line, sizeof(line), f) ? line : NULL;
	fclose(f);
	if (secret)
		secret[strcspn(secret, "\r\n")] = '\0';
	if (!secret || !*secret) {
		fail(why, whylen, -EINVAL, "api.oidc.client_secret_file %s is empty", path);
		return NULL;
	}
	secret = strdup(line);
	sodium_memzero(line, sizeof(line));
	return secret;
}

/* The provider's CA file, whole (a few certificates). */
static char *read_pem(const char *path, char *why, size_t whylen)
{
	char *text = calloc(1, FETCH_MAX + 1);
	FILE *f = fopen(path, "re");
	size_t n = f && text ? fread(text, 1, FETCH_MAX, f) : 0;
	int err = errno;
	if (f)
		fclose(f);
	if (!f || !strstr(text, "-----BEGIN CERTIFICATE-----")) {
		fail(why, whylen, -EINVAL, "api.oidc.ca_file %s: %s", path,
		     !f ? strerror(err) : "no PEM certificate in it");
		free(text);
		return NULL;
	}
	text[n] = '\0';
	return text;
}

struct api_oidc *api_oidc_new(mg_ctx *ctx, json_t *config, unsigned failures_per_minute,
                              int timeout_ms, char *why, size_t whylen)
{
	struct api_oidc *o = calloc(1, sizeof(*o));
	if (!o) {
		fail(why, whylen, -ENOMEM, "out of memory");
		return NULL;
	}
	o->ctx = ctx;
	o->timeout_ms = timeout_ms;
	pthread_mutex_init(&o->lock, NULL);
	o->config = json_deep_copy(config);
	if (api_oidc_settings_read(o->config, &o->st, why, whylen))
		goto fail;
	if (!o->st.issuer) {
		fail(why, whylen, -EINVAL, "api.oidc.issuer is not set");
		goto fail;
	}
	if (o->st.client_secret_file &&
	    !(o->secret = read_secret(o->st.client_secret_file, why, whylen)))
		goto fail;
	/* devices log in at the provider too: they are told what to trust */
	if (o->st.ca_file && !(o->ca_pem = read_pem(o->st.ca_file, why, whylen)))
		goto fail;
	if (!(o->limit = api_limit_new(ctx, failures_per_minute))) {
		fail(why, whylen, -ENOMEM, "out of memory");
		goto fail;
	}
	return o;
fail:
	api_oidc_free(o);
	return NULL;
}

void api_oidc_free(struct api_oidc *o)
{
	if (!o)
		return;
	api_limit_free(o->limit);
	json_decref(o->discovery);
	json_decref(o->jwks);
	json_decref(o->config);
	free(o->ca_pem);
	if (o->secret) {
		sodium_memzero(o->secret, strlen(o->secret));
		free(o->secret);
	}
	pthread_mutex_destroy(&o->lock);
	sodium_memzero(o, sizeof(*o));
	free(o);
}

/* ---- talking to the provider ---- */

/* GETs `url` (form NULL) or POSTs the form to it, over verified TLS (the
 * provider's CA, else the system's store), https only. 0 with the HTTP
 * status and the answer (a JSON object, new); -EIO with why. */
static int fetch(struct api_oidc *o, const char *url, const char *form, long *status, json_t **out,
                 char *why, size_t whylen)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_body b = {.max = FETCH_MAX};
	*out = NULL;
	CURL *c = curl_easy_init();
	if (!c)
		return fail(why, whylen, -ENOMEM, "out of memory");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (o->st.ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->st.ca_file);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "meshgate/" MG_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_body_collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	if (form) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
		if (o->secret) { /* client_secret_basic */
			curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
			curl_easy_setopt(c, CURLOPT_USERNAME, o->st.client_id);
			curl_easy_setopt(c, CURLOPT_PASSWORD, o->secret);
		}
	}
	CURLcode rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK || b.too_big) {
		free(b.data);
		return fail(why, whylen, -EIO, "%s: %s", url,
		            b.too_big ? "the answer is too large"
		            : *errbuf ? errbuf
		                      : curl_easy_strerror(rc));
	}
	*out = b.data ? json_loadb(b.data, b.len, 0, NULL) : NULL;
	free(b.data);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return fail(why, whylen, -EIO, "%s: the answer (HTTP %ld) is not a JSON object",
		            url, *status);
	}
	return 0;
}

static int fetch_ok(struct api_oidc *o, const char *url, json_t **out, char *why, size_t whylen)
{
	long status = 0;
	if (fetch(o, url, NULL, &status, out, why, whylen))
		return -EIO;
	if (status != 200) {
		json_decref(*out);
		*out = NULL;
		return fail(why, whylen, -EIO, "%s answered HTTP %ld", url, status);
	}
	return 0;
}

static const char *endpoint(json_t *discovery, const char *name)
{
	const char *url = json_string_value(json_object_get(discovery, name));
	return url && !strncmp(url, "https://", 8) ? url : NULL;
}

static int fetch_keys(struct api_oidc *o, char *why, size_t whylen)
{
	json_t *jwks;
	int rc = fetch_ok(o, endpoint(o->discovery, "jwks_uri"), &jwks, why, whylen);
	if (!rc && !json_is_array(json_object_get(jwks, "keys"))) {
		json_decref(jwks);
		rc = fail(why, whylen, -EIO, "the provider's keys (jwks_uri) hold no \"keys\"");
	}
	if (!rc) {
		json_decref(o->jwks);
		o->jwks = jwks;
	}
	return rc;
}

/* The discovery document and the keys, fetched once; a failure is told
 * again without asking for JWKS_REFETCH_MS. Under o->lock. */
static int discover(struct api_oidc *o, char *why, size_t whylen)
{
	char url[1024];
	json_t *doc = NULL;
	uint64_t now = mg_now_ms(o->ctx);
	if (o->discovery)
		return 0;
	if (o->fetched_ms && now - o->fetched_ms < JWKS_REFETCH_MS)
		return fail(why, whylen, -EIO, "%s", o->fetch_error);
	o->fetched_ms = now;
	size_t n = strlen(o->st.issuer);
	snprintf(url, sizeof(url), "%.*s/.well-known/openid-configuration",
	         (int)(n && o->st.issuer[n - 1] == '/' ? n - 1 : n), o->st.issuer);
	int rc = fetch_ok(o, url, &doc, why, whylen);
	const char *issuer = json_string_value(json_object_get(doc, "issuer"));
	if (!rc && (!issuer || strcmp(issuer, o->st.issuer)))
		rc = fail(why, whylen, -EIO,
		          "the provider's discovery document names the issuer %.100s, not %s "
		          "(api.oidc.issuer must be exactly the provider's)",
		          issuer ? issuer : "(none)", o->st.issuer);
	else if (!rc && !endpoint(doc, "jwks_uri"))
		rc = fail(why, whylen, -EIO,
		          "the provider's discovery document has no https jwks_uri");
	if (!rc) {
		o->discovery = doc;
		if ((rc = fetch_keys(o, why, whylen))) {
			o->discovery = NULL;
		}
	}
	if (rc) {
		json_decref(doc);
		snprintf(o->fetch_error, sizeof(o->fetch_error), "%s", why);
		mg_warn(o->ctx, "oidc: %s", why);
	}
	return rc;
}

/* A token of the provider verified: 0 with the claims; -EINVAL refused
 * (why); -EIO the provider could not be asked (why). */
static int verify(struct api_oidc *o, const char *token, size_t len, const char *audience,
                  const char *nonce, json_t **claims, char *why, size_t whylen)
{
	struct api_oidc_expect want = {o->st.issuer, audience, nonce, 0};
	pthread_mutex_lock(&o->lock);
	int rc = discover(o, why, whylen);
	json_t *jwks = json_incref(o->jwks);
	pthread_mutex_unlock(&o->lock);
	if (rc)
		return -EIO;
	want.now = (time_t)(mg_now_ms(o->ctx) / 1000);
	rc = api_oidc_verify(token, len, jwks, &want, claims, why, whylen);
	json_decref(jwks);
	if (rc != -ENOKEY)
		return rc;
	/* the provider may have rotated its keys since we fetched them */
	pthread_mutex_lock(&o->lock);
	uint64_t now = mg_now_ms(o->ctx);
	char fetch_why[256];
	if (now - o->fetched_ms >= JWKS_REFETCH_MS) {
		o->fetched_ms = now;
		if (fetch_keys(o, fetch_why, sizeof(fetch_why)))
			mg_warn(o->ctx, "oidc: %s", fetch_why);
	}
	jwks = json_incref(o->jwks);
	pthread_mutex_unlock(&o->lock);
	rc = api_oidc_verify(token, len, jwks, &want, claims, why, whylen);
	json_decref(jwks);
	return rc == -ENOKEY ? -EINVAL : rc;
}

/* ---- answers ---- */

static json_t *error_answer(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static json_t *error_answer(const char *code, const char *fmt, ...)
{
	char message[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	return json_pack("{s:s, s:s}", "error", code, "message", message);
}

unsigned api_oidc_public(struct api_oidc *o, json_t **answer)
{
	char why[512];
	pthread_mutex_lock(&o->lock);
	int rc = discover(o, why, sizeof(why));
	const char *device = rc ? NULL : endpoint(o->discovery, "device_authorization_endpoint");
	const char *token = rc ? NULL : endpoint(o->discovery, "token_endpoint");
	if (rc)
		*answer = error_answer("provider_unavailable",
		                       "the identity provider cannot be reached: %s", why);
	else if (!device || !token)
		*answer = error_answer("not_configured",
		                       "the identity provider offers no device authorization flow "
		                       "(device_authorization_endpoint)");
	else
		*answer =
		    json_pack("{s:s, s:s, s:s, s:s, s:s?}", "issuer", o->st.issuer, "client_id",
		              o->st.device_client_id, "device_authorization_endpoint", device,
		              "token_endpoint", token, "ca", o->ca_pem);
	pthread_mutex_unlock(&o->lock);
	return rc ? 502 : !device || !token ? 404 : 200;
}

/* ---- who is who ---- */

static void identity_key(const char *iss, const char *sub, char key[5 + 65])
{
	unsigned char hash[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_state h;
	crypto_hash_sha256_init(&h);
	crypto_hash_sha256_update(&h, (const unsigned char *)iss, strlen(iss) + 1);
	crypto_hash_sha256_update(&h, (const unsigned char *)sub, strlen(sub));
	crypto_hash_sha256_final(&h, hash);
	memcpy(key, "sub:", 4);
	sodium_bin2hex(key + 4, 65, hash, sizeof(hash));
}

/* The user bound to iss and sub: 0 with its name, -ENOENT, or -errno. */
static int identity_user(struct api_oidc *o, const char *iss, const char *sub,
                         char user[API_OIDC_USER_MAX + 1])
{
	char key[5 + 65];
	mg_txn *txn;
	json_t *record = NULL;
	identity_key(iss, sub, key);
	int rc = mg_txn_begin(o->ctx, MG_TXN_READ, &txn);
	if (rc)
		return rc;
	rc = mg_state_get(o->ctx, txn, API_OIDC_DB, key, &record);
	mg_txn_abort(o->ctx, txn);
	const char *name = json_string_value(json_object_get(record, "user"));
	if (!rc && (!name || strlen(name) > API_OIDC_USER_MAX))
		rc = -EINVAL;
	if (!rc)
		snprintf(user, API_OIDC_USER_MAX + 1, "%s", name);
	json_decref(record);
	return rc;
}

/* Binds `user` to iss and sub, both ways: -EEXIST when the user is
 * another identity's. */
static int identity_bind(struct api_oidc *o, const char *iss, const char *sub, const char *user)
{
	char key[5 + 65], user_key[8 + API_OIDC_USER_MAX];
	mg_txn *txn;
	json_t *taken = NULL;
	identity_key(iss, sub, key);
	snprintf(user_key, sizeof(user_key), "user:%s", user);
	int rc = mg_txn_begin(o->ctx, 0, &txn);
	if (rc)
		return rc;
	if (!mg_state_get(o->ctx, txn, API_OIDC_DB, user_key, &taken)) {
		json_decref(taken);
		mg_txn_abort(o->ctx, txn);
		return -EEXIST;
	}
	json_t *by_sub = json_pack("{s:s, s:s, s:s, s:I}", "iss", iss, "sub", sub, "user", user,
	                           "created_at", (json_int_t)(mg_now_ms(o->ctx) / 1000));
	json_t *by_user = json_pack("{s:s, s:s}", "iss", iss, "sub", sub);
	rc = mg_state_put(o->ctx, txn, API_OIDC_DB, key, by_sub);
	if (!rc)
		rc = mg_state_put(o->ctx, txn, API_OIDC_DB, user_key, by_user);
	json_decref(by_sub);
	json_decref(by_user);
	if (rc) {
		mg_txn_abort(o->ctx, txn);
		return rc;
	}
	return mg_txn_commit(o->ctx, txn);
}

static void identity_unbind(struct api_oidc *o, const char *iss, const char *sub, const char *user)
{
	char key[5 + 65], user_key[8 + API_OIDC_USER_MAX];
	mg_txn *txn;
	identity_key(iss, sub, key);
	snprintf(user_key, sizeof(user_key), "user:%s", user);
	if (mg_txn_begin(o->ctx, 0, &txn))
		return;
	mg_state_del(o->ctx, txn, API_OIDC_DB, key);
	mg_state_del(o->ctx, txn, API_OIDC_DB, user_key);
	if (mg_txn_commit(o->ctx, txn))
		mg_warn(o->ctx, "oidc: cannot forget the identity of user %s", user);
}

/* ---- the devices' enrolment ---- */

/* One bus request of a login, recorded in the audit when it changes
 * something (who: the person). The reply (new; an error when none came). */
static json_t *call(struct api_oidc *o, const char *user, const char *source, const char *service,
                    json_t *request)
{
	json_t *reply = NULL;
	char who[16 + API_OIDC_USER_MAX];
	mg_request(o->ctx, service, request, o->timeout_ms, &reply);
	if (!reply)
		reply = mg_error("timeout", "no reply from %s", service);
	if (api_service_changes(service)) {
		snprintf(who, sizeof(who), "oidc %s", user);
		api_audit_write(o->ctx, who, "api", source, service, request, reply);
	}
	json_decref(request);
	return reply;
}

/* A failed bus reply as the device's answer. */
static unsigned bus_error(json_t *reply, const char *service, json_t **answer)
{
	const char *code = mg_reply_error(reply);
	const char *message = json_string_value(json_object_get(reply, "message"));
	*answer = error_answer(code ? code : "internal", "%s: %s", service,
	                       message ? message : "no reply");
	unsigned status = code ? api_http_status(code) : 500;
	json_decref(reply);
	return status;
}

/* A single-use code of the person's user, made with the role of their
 * groups: the user of their identity, or a new one bound to it. 0 with
 * the code in *code_reply (preauth's answer); otherwise the status. */
static unsigned code_of(struct api_oidc *o, json_t *claims, const char *role, const char *source,
                        json_t **code_reply, json_t **answer)
{
	char user[API_OIDC_USER_MAX + 1], why[256];
	const char *iss = json_string_value(json_object_get(claims, "iss"));
	const char *sub = json_string_value(json_object_get(claims, "sub"));
	json_t *reply;
	int rc = identity_user(o, iss, sub, user);
	if (!rc) {
		/* a returning person: their user, with the role their groups give now */
		reply = call(o, user, source, "preauth.code.add",
		             json_pack("{s:s, s:s}", "user", user, "expires", CODE_TTL));
		const char *had = json_string_value(json_object_get(reply, "role"));
		if (!mg_reply_error(reply) && had && strcmp(had, role)) {
			json_t *set = call(o, user, source, "preauth.user.set_role",
			                   json_pack("{s:s, s:s}", "name", user, "role", role));
			if (mg_reply_error(set)) {
				json_decref(reply);
				return bus_error(set, "preauth.user.set_role", answer);
			}
			json_decref(set);
		}
		const char *code = mg_reply_error(reply);
		if (code && !strcmp(code, "not_found")) { /* an admin deleted the user */
			json_decref(reply);
			reply = call(o, user, source, "preauth.user.add",
			             json_pack("{s:s, s:s, s:s}", "name", user, "role", role,
			                       "expires", CODE_TTL));
		}
		if (mg_reply_error(reply))
			return bus_error(reply, "preauth.code.add", answer);
		*code_reply = reply;
		return 0;
	}
	if (rc != -ENOENT) {
		*answer =
		    error_answer("unavailable", "cannot read the identities: %s", strerror(-rc));
		return 503;
	}
	if (api_oidc_user_name(claims, o->st.user_claim, user, why, sizeof(why))) {
		*answer = error_answer("identity_refused", "%s", why);
		return 403;
	}
	if ((rc = identity_bind(o, iss, sub, user))) {
		*answer = rc == -EEXIST
		              ? error_answer(
		                    "identity_refused",
		                    "the user name '%s' is another person's at the provider", user)
		              : error_answer("unavailable", "cannot record the identity: %s",
		                             strerror(-rc));
		return rc == -EEXIST ? 403 : 503;
	}
	reply = call(o, user, source, "preauth.user.add",
	             json_pack("{s:s, s:s, s:s}", "name", user, "role", role, "expires", CODE_TTL));
	const char *code = mg_reply_error(reply);
	if (code) {
		identity_unbind(o, iss, sub, user);
		if (!strcmp(code, "exists")) {
			json_decref(reply);
			*answer =
			    error_answer("identity_refused",
			                 "a user '%s' exists on the gateway already, made by an "
			                 "admin, not by a login: an admin deletes it (meshgatectl "
			                 "user del %s) or gives you a code",
			                 user, user);
			return 403;
		}
		return bus_error(reply, "preauth.user.add", answer);
	}
	mg_info(o->ctx, "oidc: new user %s (%s), role %s, for %s at %s", user, sub, role,
	        json_string_value(json_object_get(claims, o->st.user_claim)), iss);
	*code_reply = reply;
	return 0;
}

unsigned api_oidc_enroll(struct api_oidc *o, const char *body, size_t len, const char *source,
                         json_t **redeem, json_t **answer)
{
	char why[512];
	json_t *request, *claims = NULL, *code_reply = NULL;
	const char *role;
	*redeem = *answer = NULL;
	if (!api_limit_may_try(o->limit, source)) {
		*answer = error_answer("rate_limited",
		                       "too many refused logins from %s: try again later", source);
		return 429;
	}
	if (api_decode_oidc_enroll(body, len, &request, why, sizeof(why))) {
		*answer = error_answer("bad_request", "%s", why);
		return 400;
	}
	const char *token = json_string_value(json_object_get(request, "id_token"));
	int rc = verify(o, token, strlen(token), o->st.device_client_id, NULL, &claims, why,
	                sizeof(why));
	if (rc == -EIO) {
		json_decref(request);
		*answer = error_answer("provider_unavailable",
		                       "the identity provider cannot be reached: %s", why);
		return 502;
	}
	if (!rc && api_oidc_role(claims, o->st.group_claim, o->st.roles, &role, why, sizeof(why)))
		rc = -EACCES;
	unsigned status = 0;
	if (rc) {
		api_limit_failed(o->limit, source);
		char key[160];
		snprintf(key, sizeof(key), "oidc refused %s", source);
		mg_log_limited(o->ctx, MG_LOG_INFO, key, "oidc: login from %s refused: %s", source,
		               why);
		*answer = error_answer("identity_refused", "%s", why);
		status = 403;
	} else if (!(status = code_of(o, claims, role, source, &code_reply, answer))) {
		*redeem = json_pack("{s:O, s:O?}", "code", json_object_get(code_reply, "code"),
		                    "name", json_object_get(request, "name"));
		if (!*redeem) {
			*answer = error_answer("internal", "out of memory");
			status = 500;
		}
	}
	json_decref(code_reply);
	json_decref(claims);
	json_decref(request);
	return status;
}

/* ---- the admins' sign-in ---- */

int api_oidc_admins(const struct api_oidc *o)
{
	return o && json_object_size(o->st.admin_roles) > 0;
}

static void random_secret(char out[SECRET_LEN + 1])
{
	unsigned char bytes[32];
	randombytes_buf(bytes, sizeof(bytes));
	sodium_bin2base64(out, SECRET_LEN + 1, bytes, sizeof(bytes),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* PKCE S256: base64url of SHA-256 of the verifier. */
static void code_challenge(const char *verifier, char out[SECRET_LEN + 1])
{
	unsigned char hash[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(hash, (const unsigned char *)verifier, strlen(verifier));
	sodium_bin2base64(out, SECRET_LEN + 1, hash, sizeof(hash),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* Appends "&name=value" (value percent-encoded) to a URL or form. */
static int append(char *out, size_t len, const char *name, const char *value)
{
	char *escaped = curl_easy_escape(NULL, value, 0);
	size_t used = strlen(out);
	int n = escaped
	            ? snprintf(out + used, len - used, "%s%s=%s", used ? "&" : "", name, escaped)
	            : -1;
	curl_free(escaped);
	return n < 0 || (size_t)n >= len - used ? -1 : 0;
}

unsigned api_oidc_signin_start(struct api_oidc *o, const char *redirect_uri, char *location,
                               size_t location_len, char *why, size_t whylen)
{
	char challenge[SECRET_LEN + 1], query[2048] = "";
	pthread_mutex_lock(&o->lock);
	int rc = discover(o, why, whylen);
	const char *authorize = rc ? NULL : endpoint(o->discovery, "authorization_endpoint");
	if (rc || !authorize) {
		if (!rc)
			fail(why, whylen, -EIO,
			     "the provider's discovery document has no https "
			     "authorization_endpoint");
		pthread_mutex_unlock(&o->lock);
		return 502;
	}
	/* a free slot, or one whose sign-in is over, or the oldest */
	uint64_t now = mg_now_ms(o->ctx);
	struct signin *s = &o->signins[0];
	for (size_t i = 0; i < API_OIDC_SIGNINS_MAX; i++) {
		struct signin *t = &o->signins[i];
		if (!t->state[0] || now - t->started_ms > API_OIDC_SIGNIN_MS) {
			s = t;
			break;
		}
		if (t->started_ms < s->started_ms)
			s = t;
	}
	random_secret(s->state);
	random_secret(s->nonce);
	random_secret(s->verifier);
	s->started_ms = now;
	code_challenge(s->verifier, challenge);
	rc = append(query, sizeof(query), "response_type", "code") ||
	     append(query, sizeof(query), "client_id", o->st.client_id) ||
	     append(query, sizeof(query), "redirect_uri", redirect_uri) ||
	     append(query, sizeof(query), "scope", "openid profile email") ||
	     append(query, sizeof(query), "state", s->state) ||
	     append(query, sizeof(query), "nonce", s->nonce) ||
	     append(query, sizeof(query), "code_challenge", challenge) ||
	     append(query, sizeof(query), "code_challenge_method", "S256");
	int n = snprintf(location, location_len, "%s%c%s", authorize,
	                 strchr(authorize, '?') ? '&' : '?', query);
	pthread_mutex_unlock(&o->lock);
	if (rc || n < 0 || (size_t)n >= location_len) {
		fail(why, whylen, -ENAMETOOLONG, "the authorization URL is too long");
		return 500;
	}
	return 0;
}

/* The sign-in of `state`, taken out of the table (single use): 0, or
 * -ENOENT (unknown, used, or older than API_OIDC_SIGNIN_MS). */
static int signin_take(struct api_oidc *o, const char *state, struct signin *out)
{
	int rc = -ENOENT;
	uint64_t now = mg_now_ms(o->ctx);
	if (strlen(state) != SECRET_LEN)
		return rc;
	pthread_mutex_lock(&o->lock);
	for (size_t i = 0; i < API_OIDC_SIGNINS_MAX; i++) {
		struct signin *s = &o->signins[i];
		if (!s->state[0] || sodium_memcmp(s->state, state, SECRET_LEN))
			continue;
		if (now - s->started_ms <= API_OIDC_SIGNIN_MS) {
			*out = *s;
			rc = 0;
		}
		sodium_memzero(s, sizeof(*s));
		break;
	}
	pthread_mutex_unlock(&o->lock);
	return rc;
}

/* The authorization code for the ID token at the token endpoint. */
static int exchange(struct api_oidc *o, const char *code, const char *redirect_uri,
                    const struct signin *s, char **id_token, char *why, size_t whylen)
{
	char form[4096] = "", url[1024];
	long status = 0;
	json_t *answer;
	pthread_mutex_lock(&o->lock);
	const char *token_endpoint = endpoint(o->discovery, "token_endpoint");
	snprintf(url, sizeof(url), "%s", token_endpoint ? token_endpoint : "");
	pthread_mutex_unlock(&o->lock);
	if (!*url)
		return fail(why, whylen, -EIO,
		            "the provider's discovery document has no https "
		            "token_endpoint");
	if (append(form, sizeof(form), "grant_type", "authorization_code") ||
	    append(form, sizeof(form), "code", code) ||
	    append(form, sizeof(form), "redirect_uri", redirect_uri) ||
	    append(form, sizeof(form), "code_verifier", s->verifier) ||
	    (!o->secret && append(form, sizeof(form), "client_id", o->st.client_id)))
		return fail(why, whylen, -EINVAL, "the authorization code is too long");
	int rc = fetch(o, url, form, &status, &answer, why, whylen);
	sodium_memzero(form, sizeof(form));
	if (rc)
		return -EIO;
	const char *token = json_string_value(json_object_get(answer, "id_token"));
	const char *error = json_string_value(json_object_get(answer, "error"));
	const char *description = json_string_value(json_object_get(answer, "error_description"));
	if (status == 200 && token)
		*id_token = strdup(token);
	else
		fail(why, whylen, -EACCES,
		     "the provider refused the sign-in's code (HTTP %ld%s%s%s%s)", status,
		     error ? ": " : "", error ? error : "", description ? ", " : "",
		     description ? description : "");
	json_decref(answer);
	return status == 200 && token ? (*id_token ? 0 : -ENOMEM) : -EACCES;
}

unsigned api_oidc_signin_finish(struct api_oidc *o, const char *code, const char *state,
                                const char *redirect_uri, const char *source, char *who,
                                size_t wholen, enum api_role *role, char *why, size_t whylen)
{
	struct signin s;
	json_t *claims = NULL;
	char *id_token = NULL;
	const char *role_name;
	*role = API_ROLE_NONE;
	if (!api_limit_may_try(o->limit, source)) {
		fail(why, whylen, -EAGAIN, "too many refused sign-ins from %s: try again later",
		     source);
		return 429;
	}
	if (!code || !*code || !state || signin_take(o, state, &s)) {
		api_limit_failed(o->limit, source);
		fail(why, whylen, -EINVAL,
		     "this sign-in is unknown, used or too old (over %u minutes): sign in again",
		     API_OIDC_SIGNIN_MS / 60000);
		return 400;
	}
	int rc = exchange(o, code, redirect_uri, &s, &id_token, why, whylen);
	if (!rc)
		rc = verify(o, id_token, strlen(id_token), o->st.client_id, s.nonce, &claims, why,
		            whylen);
	if (!rc &&
	    api_oidc_role(claims, o->st.group_claim, o->st.admin_roles, &role_name, why, whylen))
		rc = -EACCES;
	unsigned status = 0;
	if (rc == -EIO) {
		status = 502;
	} else if (rc) {
		api_limit_failed(o->limit, source);
		status = 403;
	} else {
		const char *name = json_string_value(json_object_get(claims, o->st.user_claim));
		snprintf(who, wholen, "oidc %.100s",
		         name ? name : json_string_value(json_object_get(claims, "sub")));
		*role = api_role_parse(role_name);
		mg_info(o->ctx, "oidc: %s signed in from %s as %s", who, source, role_name);
	}
	if (status)
		mg_log(o->ctx, MG_LOG_INFO, "oidc: a sign-in from %s refused: %s", source, why);
	if (id_token) {
		sodium_memzero(id_token, strlen(id_token));
		free(id_token);
	}
	sodium_memzero(&s, sizeof(s));
	json_decref(claims);
	return status;
}
