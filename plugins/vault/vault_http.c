/* Vault's HTTP API, the few endpoints the plugin uses, with the shapes of
 * Vault's documentation: AppRole login, token renew-self, KV v2 data read
 * and check-and-set write, sys/health. TLS always verified against the
 * configured CA. Tokens and keys never go to a message. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "curl_body.h"
#include "vault.h"

#define VAULT_ANSWER_MAX (1 << 20)

int vault_client_init(struct vault_client *c, const struct vault_conf *conf, char *err,
                      size_t errlen)
{
	memset(c, 0, sizeof(*c));
	c->conf = *conf;
	if (strncmp(conf->address, "https://", 8)) {
		snprintf(err, errlen, "vault.address must be https://HOST:PORT, not '%s'",
		         conf->address);
		return -EINVAL;
	}
	if (!conf->ca[0] || access(conf->ca, R_OK)) {
		snprintf(err, errlen,
		         "vault.ca '%s' cannot be read: Vault's certificate is always "
		         "verified",
		         conf->ca);
		return -EINVAL;
	}
	if (!(c->curl = curl_easy_init())) {
		snprintf(err, errlen, "libcurl cannot start");
		return -ENOMEM;
	}
	return 0;
}

void vault_client_free(struct vault_client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	sodium_memzero(c->token, sizeof(c->token));
	c->curl = NULL;
}

/* Vault's own words for a refusal: its "errors" array (never secret). */
static void vault_errors(json_t *answer, long status, char *err, size_t errlen)
{
	const char *first = json_string_value(json_array_get(json_object_get(answer, "errors"), 0));
	snprintf(err, errlen, "Vault answered %ld%s%s", status, first ? ": " : "",
	         first ? first : "");
}

/* One request; *answer is the parsed JSON (NULL when the body is empty or
 * not JSON). Returns the HTTP status, or -EHOSTUNREACH with a message. */
static long http(struct vault_client *c, const char *method, const char *path, json_t *body,
                 int with_token, json_t **answer, char *err, size_t errlen)
{
	CURL *curl = c->curl;
	struct curl_body b = {.max = VAULT_ANSWER_MAX}; /* no answer of ours is that large */
	struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
	char url[1024], header[600];
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	long status = 0;

	*answer = NULL;
	snprintf(url, sizeof(url), "%s%s", c->conf.address, path);
	if (with_token) {
		snprintf(header, sizeof(header), "X-Vault-Token: %s", c->token);
		headers = curl_slist_append(headers, header);
		sodium_memzero(header, sizeof(header));
	}
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CAINFO, c->conf.ca);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	if (text)
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, curl_body_collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
	CURLcode rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	else
		snprintf(err, errlen, "%s: %s", c->conf.address, curl_easy_strerror(rc));
	c->reachable = rc == CURLE_OK;
	curl_slist_free_all(headers);
	if (text) {
		sodium_memzero(text, strlen(text));
		free(text);
	}
	if (b.data) {
		*answer = json_loadb(b.data, b.len, 0, NULL);
		sodium_memzero(b.data, b.len);
		free(b.data);
	}
	return rc == CURLE_OK ? status : -EHOSTUNREACH;
}

/* A file of root's alone (0600/0400) holding one line: a secret_id or a
 * token. */
static int read_secret_line(const char *path, char *out, size_t len, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) || (st.st_mode & 077)) {
		snprintf(err, errlen,
		         fd < 0 ? "%s: cannot read it"
		                : "%s is readable by others: "
		                  "refusing it (chmod 600)",
		         path);
		if (fd >= 0)
			close(fd);
		return -EPERM;
	}
	ssize_t n = read(fd, out, len - 1);
	close(fd);
	if (n <= 0) {
		snprintf(err, errlen, "%s is empty", path);
		return -EINVAL;
	}
	out[n] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	return 0;
}

/* The token and its lease, from a login's or a renewal's "auth". */
static int take_auth(struct vault_client *c, json_t *answer, uint64_t now_ms, char *err,
                     size_t errlen)
{
	json_t *auth = json_object_get(answer, "auth");
	const char *token = json_string_value(json_object_get(auth, "client_token"));
	json_int_t lease = json_integer_value(json_object_get(auth, "lease_duration"));
	if (!token || strlen(token) >= sizeof(c->token)) {
		snprintf(err, errlen, "Vault's answer has no auth.client_token");
		return -EPROTO;
	}
	snprintf(c->token, sizeof(c->token), "%s", token);
	c->token_expires_ms = lease > 0 ? now_ms + (uint64_t)lease * 1000 : 0;
	c->token_renew_ms = lease > 0 && json_is_true(json_object_get(auth, "renewable"))
	                        ? now_ms + (uint64_t)lease * 1000 * 2 / 3
	                        : 0;
	return 0;
}

int vault_login(struct vault_client *c, uint64_t now_ms, char *err, size_t errlen)
{
	char secret_id[512];
	json_t *answer;
	int rc;
	sodium_memzero(c->token, sizeof(c->token));
	c->token_expires_ms = c->token_renew_ms = 0;
	if (!c->conf.role_id[0]) { /* a token given by the operator */
		/* its lifetime is the operator's business: a refusal reads it again */
		return read_secret_line(c->conf.token_file, c->token, sizeof(c->token), err,
		                        errlen);
	}
	if ((rc = read_secret_line(c->conf.secret_id_file, secret_id, sizeof(secret_id), err,
	                           errlen)))
		return rc;
	json_t *body = json_pack("{s:s, s:s}", "role_id", c->conf.role_id, "secret_id", secret_id);
	long status = http(c, "POST", "/v1/auth/approle/login", body, 0, &answer, err, errlen);
	sodium_memzero(secret_id, sizeof(secret_id));
	json_object_clear(body);
	json_decref(body);
	if (status == 200)
		rc = take_auth(c, answer, now_ms, err, errlen);
	else if (status > 0)
		vault_errors(answer, status, err, errlen), rc = -EPERM;
	else
		rc = (int)status;
	json_decref(answer);
	return rc;
}

int vault_renew(struct vault_client *c, uint64_t now_ms, char *err, size_t errlen)
{
	json_t *answer, *body = json_object();
	long status = http(c, "POST", "/v1/auth/token/renew-self", body, 1, &answer, err, errlen);
	json_decref(body);
	int rc = status == 200 ? take_auth(c, answer, now_ms, err, errlen)
	         : status > 0  ? (vault_errors(answer, status, err, errlen), -EACCES)
	                       : (int)status;
	json_decref(answer);
	return rc;
}

int vault_ensure_token(struct vault_client *c, uint64_t now_ms, char *err, size_t errlen)
{
	if (!c->token[0] || (c->token_expires_ms && now_ms >= c->token_expires_ms))
		return vault_login(c, now_ms, err, errlen);
	if (c->token_renew_ms && now_ms >= c->token_renew_ms) {
		int rc = vault_renew(c, now_ms, err, errlen);
		return rc == -EACCES ? vault_login(c, now_ms, err, errlen) : rc;
	}
	return 0;
}

static void kv_url(struct vault_client *c, const char *name, char *out, size_t len)
{
	snprintf(out, len, "/v1/%s/data/%s/%s", c->conf.mount, c->conf.path, name);
}

int vault_kv_read(struct vault_client *c, const char *name, json_t **data, long long *version,
                  char *err, size_t errlen)
{
	char path[1024];
	json_t *answer;
	kv_url(c, name, path, sizeof(path));
	long status = http(c, "GET", path, NULL, 1, &answer, err, errlen);
	int rc = 0;
	json_t *d = json_object_get(json_object_get(answer, "data"), "data");
	json_t *meta = json_object_get(json_object_get(answer, "data"), "metadata");
	if (status == 200 && json_is_object(d) &&
	    json_is_integer(json_object_get(meta, "version"))) {
		*data = json_incref(d);
		*version = json_integer_value(json_object_get(meta, "version"));
	} else if (status == 200) {
		snprintf(err, errlen, "Vault's answer for %s has no data.data and metadata.version",
		         name);
		rc = -EPROTO;
	} else if (status == 404) {
		snprintf(err, errlen, "no secret %s in Vault", name);
		rc = -ENOENT;
	} else if (status > 0) {
		vault_errors(answer, status, err, errlen);
		rc = status == 403 ? -EACCES : -EIO;
	} else {
		rc = (int)status;
	}
	json_decref(answer);
	return rc;
}

int vault_kv_write(struct vault_client *c, const char *name, json_t *data, long long cas,
                   long long *version, char *err, size_t errlen)
{
	char path[1024];
	json_t *answer;
	json_t *body = json_pack("{s:{s:I}, s:O}", "options", "cas", (json_int_t)cas, "data", data);
	kv_url(c, name, path, sizeof(path));
	long status = http(c, "POST", path, body, 1, &answer, err, errlen);
	json_decref(body);
	int rc = 0;
	json_t *v = json_object_get(json_object_get(answer, "data"), "version");
	const char *first_error =
	    json_string_value(json_array_get(json_object_get(answer, "errors"), 0));
	if ((status == 200 || status == 204) && json_is_integer(v)) {
		*version = json_integer_value(v);
	} else if (status == 200 || status == 204) {
		snprintf(err, errlen, "Vault's answer for %s has no data.version", name);
		rc = -EPROTO;
	} else if (status == 400 && first_error && strstr(first_error, "check-and-set")) {
		vault_errors(answer, status, err, errlen);
		rc = -ESTALE;
	} else if (status > 0) {
		vault_errors(answer, status, err, errlen);
		rc = status == 403 ? -EACCES : -EIO;
	} else {
		rc = (int)status;
	}
	json_decref(answer);
	return rc;
}

int vault_health(struct vault_client *c, char *err, size_t errlen)
{
	json_t *answer;
	long status = http(c, "GET", "/v1/sys/health", NULL, 0, &answer, err, errlen);
	json_decref(answer);
	if (status == 200)
		return 0;
	if (status > 0)
		snprintf(err, errlen, "Vault's health is %ld (%s)", status,
		         status == 503   ? "sealed"
		         : status == 501 ? "not initialised"
		                         : "standby");
	return status > 0 ? -EIO : (int)status;
}
