/* etcd's v3 JSON gateway over libcurl (etcd.h); the answers are parsed in
 * etcd_parse.c. */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "etcd.h"
#include "etcd_parse.h"

#define DEFAULT_TIMEOUT_MS  2000
#define DEFAULT_MAX_TXN_OPS 128
/* A member that does not take a connection in this long is down: on to
 * the next one, within the same request's deadline. */
#define CONNECT_TIMEOUT_MS 500
/* etcd_health is asked in the background and must answer soon. */
#define HEALTH_TIMEOUT_MS 1000
/* How often a watch looks at *stop. */
#define WATCH_POLL_MS 100
/* An answer larger than this is not one of etcd's (a range is cut by
 * etcd's own message limit well before). */
#define ANSWER_MAX (64u << 20)

struct answer {
	char *data;
	size_t len, cap;
	int too_large;
};

struct etcd {
	char **endpoints;
	size_t n_endpoints;
	size_t current; /* the endpoint that answered last */
	char *ca_file, *cert_file, *key_file;
	int timeout_ms;
	size_t max_txn_ops;
	CURL *curl; /* kept: its connection is reused */
	struct curl_slist *headers;
	struct answer answer;
	char error[256];
	int error_rc; /* the errno `error` goes with */
};

/* What became of one request to one endpoint. */
enum attempt {
	ANSWERED,     /* an HTTP answer is in etcd->answer */
	NOT_REACHED,  /* no connection: nothing was sent */
	BROKEN,       /* the connection failed after the request went out */
	TIMED_OUT,    /* connected, no answer before the deadline */
	LOCAL_FAILURE /* this side (memory, TLS files): etcd->error says */
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(struct etcd *etcd, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct etcd *etcd, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(etcd->error, sizeof(etcd->error), fmt, ap);
	va_end(ap);
	etcd->error_rc = rc;
	return rc;
}

const char *etcd_last_error(const struct etcd *etcd)
{
	return etcd->error;
}

/* ---- the handle ---- */

static int endpoint_valid(const char *url, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *user = NULL, *host = NULL;
	int rc = -EINVAL;
	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		snprintf(err, errlen, "not a URL");
		goto out;
	}
	curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	curl_url_get(u, CURLUPART_USER, &user, 0);
	curl_url_get(u, CURLUPART_HOST, &host, 0);
	if (!scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
		snprintf(err, errlen, "not http:// or https://");
	else if (user)
		/* it would end up in error messages, and etcd does not take it */
		snprintf(err, errlen, "credentials in the URL are not supported");
	else if (!host || !*host)
		snprintf(err, errlen, "no host");
	else
		rc = 0;
out:
	curl_free(scheme);
	curl_free(user);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

static char *dup_or_null(const char *s, int *failed)
{
	char *copy = s ? strdup(s) : NULL;
	if (s && !copy)
		*failed = 1;
	return copy;
}

int etcd_open(const struct etcd_config *config, struct etcd **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!config || config->n_endpoints == 0 || !config->endpoints) {
		snprintf(err, errlen, "etcd: no endpoint");
		return -EINVAL;
	}
	if (config->timeout_ms < 0) {
		snprintf(err, errlen, "etcd: timeout_ms %d is negative", config->timeout_ms);
		return -EINVAL;
	}
	for (size_t i = 0; i < config->n_endpoints; i++) {
		char why[128];
		const char *url = config->endpoints[i];
		int rc = url ? endpoint_valid(url, why, sizeof(why)) : -EINVAL;
		if (rc == -ENOMEM) {
			snprintf(err, errlen, "etcd: out of memory");
			return rc;
		}
		if (rc) {
			/* no URL in the message: it might carry a password */
			snprintf(err, errlen, "etcd: endpoint %zu: %s", i + 1,
			         url ? why : "missing");
			return rc;
		}
	}
	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "etcd: libsodium or libcurl did not start");
		return -ENOMEM;
	}
	struct etcd *etcd = calloc(1, sizeof(*etcd));
	int failed = !etcd;
	if (!etcd)
		curl_global_cleanup(); /* etcd_close does it otherwise */
	if (etcd) {
		etcd->endpoints = calloc(config->n_endpoints, sizeof(char *));
		failed = !etcd->endpoints;
	}
	for (size_t i = 0; !failed && i < config->n_endpoints; i++) {
		/* the path is ours to add */
		size_t len = strlen(config->endpoints[i]);
		while (len > 0 && config->endpoints[i][len - 1] == '/')
			len--;
		etcd->endpoints[i] = strndup(config->endpoints[i], len);
		failed = !etcd->endpoints[i];
		etcd->n_endpoints = i + 1;
	}
	if (!failed) {
		etcd->ca_file = dup_or_null(config->ca_file, &failed);
		etcd->cert_file = dup_or_null(config->cert_file, &failed);
		etcd->key_file = dup_or_null(config->key_file, &failed);
		etcd->timeout_ms = config->timeout_ms ? config->timeout_ms : DEFAULT_TIMEOUT_MS;
		etcd->max_txn_ops = config->max_txn_ops ? config->max_txn_ops : DEFAULT_MAX_TXN_OPS;
		etcd->curl = curl_easy_init();
		/* etcd refuses, at once, a request to a member that knows no
		 * leader, rather than waiting for one: on to the next member */
		etcd->headers = curl_slist_append(NULL, "Content-Type: application/json");
		if (etcd->headers)
			etcd->headers =
			    curl_slist_append(etcd->headers, "Grpc-Metadata-hasleader: true");
		failed = !etcd->curl || !etcd->headers;
	}
	if (failed) {
		etcd_close(etcd);
		snprintf(err, errlen, "etcd: out of memory");
		return -ENOMEM;
	}
	*out = etcd;
	return 0;
}

void etcd_close(struct etcd *etcd)
{
	if (!etcd)
		return;
	for (size_t i = 0; i < etcd->n_endpoints; i++)
		free(etcd->endpoints[i]);
	free(etcd->endpoints);
	free(etcd->ca_file);
	free(etcd->cert_file);
	free(etcd->key_file);
	if (etcd->curl)
		curl_easy_cleanup(etcd->curl);
	curl_slist_free_all(etcd->headers);
	free(etcd->answer.data);
	free(etcd);
	curl_global_cleanup();
}

/* ---- one request ---- */

static size_t on_answer_bytes(char *data, size_t size, size_t nmemb, void *arg)
{
	struct answer *answer = arg;
	size_t len = size * nmemb;
	if (answer->len + len > ANSWER_MAX) {
		answer->too_large = 1;
		return 0;
	}
	if (answer->len + len > answer->cap) {
		size_t cap = answer->cap ? answer->cap : 4096;
		while (cap < answer->len + len)
			cap *= 2;
		char *grown = realloc(answer->data, cap);
		if (!grown)
			return 0;
		answer->data = grown;
		answer->cap = cap;
	}
	memcpy(answer->data + answer->len, data, len);
	answer->len += len;
	return len;
}

/* The options every request to `endpoint` shares; the caller adds how the
 * answer is read and the timeout. */
static void set_request(struct etcd *etcd, size_t endpoint, const char *path, const char *json,
                        char *url, size_t url_size)
{
	CURL *c = etcd->curl;
	snprintf(url, url_size, "%s%s", etcd->endpoints[endpoint], path);
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*"); /* etcd is reached directly */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, etcd->headers);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
	if (etcd->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, etcd->ca_file);
	if (etcd->cert_file)
		curl_easy_setopt(c, CURLOPT_SSLCERT, etcd->cert_file);
	if (etcd->key_file)
		curl_easy_setopt(c, CURLOPT_SSLKEY, etcd->key_file);
}

/* What a finished transfer means for the request. */
static enum attempt classify(struct etcd *etcd, size_t endpoint, CURLcode res)
{
	const char *url = etcd->endpoints[endpoint];
	curl_off_t connected_us = 0;
	switch (res) {
	case CURLE_OK:
		return ANSWERED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
		fail(etcd, -EHOSTUNREACH, "etcd %s: %s", url, curl_easy_strerror(res));
		return NOT_REACHED;
	case CURLE_OPERATION_TIMEDOUT:
		curl_easy_getinfo(etcd->curl, CURLINFO_CONNECT_TIME_T, &connected_us);
		/* not reached in time is not reached: on to the next member */
		fail(etcd, connected_us ? -ETIMEDOUT : -EHOSTUNREACH, "etcd %s: %s", url,
		     connected_us ? "no answer in time" : "no connection in time");
		return connected_us ? TIMED_OUT : NOT_REACHED;
	case CURLE_WRITE_ERROR:
		if (etcd->answer.too_large)
			fail(etcd, -EBADMSG, "etcd %s: an answer larger than %u bytes", url,
			     ANSWER_MAX);
		else
			fail(etcd, -ENOMEM, "etcd %s: out of memory for the answer", url);
		return LOCAL_FAILURE;
	case CURLE_OUT_OF_MEMORY:
		fail(etcd, -ENOMEM, "etcd: out of memory");
		return LOCAL_FAILURE;
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		fail(etcd, -EINVAL, "etcd: our TLS files: %s", curl_easy_strerror(res));
		return LOCAL_FAILURE;
	default:
		fail(etcd, -EHOSTUNREACH, "etcd %s: %s", url, curl_easy_strerror(res));
		return BROKEN;
	}
}

static enum attempt post_once(struct etcd *etcd, size_t endpoint, const char *path,
                              const char *json, int64_t timeout_ms, long *status)
{
	char url[1024];
	CURL *c = etcd->curl;
	set_request(etcd, endpoint, path, json, url, sizeof(url));
	etcd->answer.len = 0;
	etcd->answer.too_large = 0;
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_answer_bytes);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &etcd->answer);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS));
	enum attempt result = classify(etcd, endpoint, curl_easy_perform(c));
	*status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	return result;
}

/* POSTs `request` to the endpoint that answered last, moving on to the
 * next while one is not reached, breaks, or has no leader (503), each
 * once, all within the request's deadline. 0 with etcd's answer in
 * etcd->answer (the parser makes an error answer an error). */
static int post(struct etcd *etcd, const char *path, json_t *request, int64_t budget_ms)
{
	char *json = json_dumps(request, JSON_COMPACT);
	if (!json)
		return fail(etcd, -ENOMEM, "etcd: out of memory");
	int64_t deadline = now_ms() + budget_ms;
	char unavailable[sizeof(etcd->error)] = "";
	int rc = -EHOSTUNREACH;
	for (size_t tried = 0; tried < etcd->n_endpoints; tried++) {
		size_t endpoint = (etcd->current + tried) % etcd->n_endpoints;
		int64_t left = deadline - now_ms();
		long status;
		if (left <= 0) {
			rc = fail(etcd, -ETIMEDOUT, "etcd: no answer within %" PRId64 " ms",
			          budget_ms);
			break;
		}
		enum attempt result = post_once(etcd, endpoint, path, json, left, &status);
		if (result == ANSWERED && status != 503) {
			etcd->current = endpoint;
			rc = 0;
			break;
		}
		if (result == ANSWERED) {
			/* etcd's reason (no leader) says more than a later refused
			 * connection would */
			rc = etcd_parse_ack(etcd->answer.data, etcd->answer.len, etcd->error,
			                    sizeof(etcd->error));
			if (rc == 0)
				rc = fail(etcd, -EHOSTUNREACH, "etcd: HTTP 503");
			snprintf(unavailable, sizeof(unavailable), "%s", etcd->error);
			continue;
		}
		rc = etcd->error_rc;
		if (result == TIMED_OUT || result == LOCAL_FAILURE)
			break;
	}
	if (rc == -EHOSTUNREACH && unavailable[0])
		fail(etcd, rc, "%s", unavailable);
	free(json);
	return rc;
}

/* ---- requests ---- */

/* bytes → base64 JSON string; NULL on no memory */
static json_t *b64(const char *bytes, size_t len)
{
	size_t size = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *text = malloc(size);
	if (!text)
		return NULL;
	sodium_bin2base64(text, size, (const unsigned char *)bytes, len,
	                  sodium_base64_VARIANT_ORIGINAL);
	json_t *s = json_string(text);
	free(text);
	return s;
}

/* A range_end of "" stands for the single byte 0: every key from `key`. */
static json_t *b64_range_end(const char *range_end)
{
	return *range_end ? b64(range_end, strlen(range_end)) : b64("", 1);
}

static json_t *int64_json(int64_t n)
{
	char text[24];
	snprintf(text, sizeof(text), "%" PRId64, n);
	return json_string(text);
}

/* json_object_set_new that tells when it failed (no memory) */
static int set(json_t *obj, const char *name, json_t *value, int *failed)
{
	if (!value || json_object_set_new(obj, name, value) != 0)
		*failed = 1;
	return *failed;
}

static int key_valid(struct etcd *etcd, const char *key)
{
	if (!key || !*key)
		return fail(etcd, -EINVAL, "etcd: an empty key");
	return 0;
}

void etcd_prefix_end(const char *prefix, char *end)
{
	size_t len = strlen(prefix);
	memcpy(end, prefix, len + 1);
	/* the prefix with its last byte that can grow grown, cut after it */
	while (len > 0) {
		unsigned char last = (unsigned char)end[len - 1];
		if (last < 0xff) {
			end[len - 1] = (char)(last + 1);
			end[len] = '\0';
			return;
		}
		len--;
	}
	end[0] = '\0';
}

int etcd_range(struct etcd *etcd, const char *key, const char *range_end, int64_t revision,
               size_t limit, struct etcd_range *out)
{
	int failed = 0, rc;
	memset(out, 0, sizeof(*out));
	if ((rc = key_valid(etcd, key)))
		return rc;
	if (revision < 0)
		return fail(etcd, -EINVAL, "etcd: a negative revision");
	json_t *request = json_object();
	if (!request)
		return fail(etcd, -ENOMEM, "etcd: out of memory");
	set(request, "key", b64(key, strlen(key)), &failed);
	if (range_end)
		set(request, "range_end", b64_range_end(range_end), &failed);
	if (revision)
		set(request, "revision", int64_json(revision), &failed);
	if (limit)
		set(request, "limit", int64_json((int64_t)limit), &failed);
	rc = failed ? fail(etcd, -ENOMEM, "etcd: out of memory")
	            : post(etcd, "/v3/kv/range", request, etcd->timeout_ms);
	json_decref(request);
	if (rc == 0)
		rc = etcd_parse_range(etcd->answer.data, etcd->answer.len, out, etcd->error,
		                      sizeof(etcd->error));
	if (rc == 0)
		etcd->error[0] = '\0';
	return rc;
}

static json_t *compare_json(const struct etcd_compare *compare, int *failed)
{
	json_t *c = json_object();
	if (!c) {
		*failed = 1;
		return NULL;
	}
	set(c, "key", b64(compare->key, strlen(compare->key)), failed);
	if (compare->range_end) {
		/* etcd compares an empty range as one key of revision 0: "created
		 * before revision 1" holds exactly when no key is in the range */
		set(c, "range_end", b64_range_end(compare->range_end), failed);
		set(c, "target", json_string("CREATE"), failed);
		set(c, "result", json_string("LESS"), failed);
		set(c, "create_revision", int64_json(1), failed);
	} else {
		set(c, "target", json_string("MOD"), failed);
		set(c, "result", json_string("EQUAL"), failed);
		set(c, "mod_revision", int64_json(compare->mod_revision), failed);
	}
	return c;
}

static json_t *op_json(const struct etcd_op *op, int *failed)
{
	json_t *request = json_object(), *wrapper = json_object();
	if (!request || !wrapper) {
		json_decref(request);
		json_decref(wrapper);
		*failed = 1;
		return NULL;
	}
	set(request, "key", b64(op->key, strlen(op->key)), failed);
	if (op->type == ETCD_OP_PUT) {
		set(request, "value", b64(op->value ? op->value : "", op->value_len), failed);
		if (op->lease)
			set(request, "lease", int64_json(op->lease), failed);
		set(wrapper, "request_put", request, failed);
	} else {
		if (op->range_end)
			set(request, "range_end", b64_range_end(op->range_end), failed);
		set(wrapper, "request_delete_range", request, failed);
	}
	return wrapper;
}

static int txn_valid(struct etcd *etcd, const struct etcd_compare *compares, size_t n_compares,
                     const struct etcd_op *ops, size_t n_ops)
{
	if (n_compares > etcd->max_txn_ops || n_ops > etcd->max_txn_ops)
		return fail(
		    etcd, -E2BIG,
		    "etcd: a txn of %zu compares and %zu operations: etcd takes %zu of each",
		    n_compares, n_ops, etcd->max_txn_ops);
	if ((n_compares && !compares) || (n_ops && !ops))
		return fail(etcd, -EINVAL, "etcd: a txn without its compares or operations");
	for (size_t i = 0; i < n_compares; i++) {
		if (key_valid(etcd, compares[i].key))
			return -EINVAL;
		if (compares[i].mod_revision < 0)
			return fail(etcd, -EINVAL, "etcd: a compare with a negative revision");
	}
	for (size_t i = 0; i < n_ops; i++) {
		if (key_valid(etcd, ops[i].key))
			return -EINVAL;
		if (ops[i].type != ETCD_OP_PUT && ops[i].type != ETCD_OP_DELETE)
			return fail(etcd, -EINVAL, "etcd: an operation of unknown type %d",
			            (int)ops[i].type);
		if (ops[i].type == ETCD_OP_PUT && !ops[i].value && ops[i].value_len)
			return fail(etcd, -EINVAL, "etcd: a put without its value");
	}
	return 0;
}

int etcd_txn(struct etcd *etcd, const struct etcd_compare *compares, size_t n_compares,
             const struct etcd_op *ops, size_t n_ops, struct etcd_txn_result *result)
{
	int failed = 0;
	memset(result, 0, sizeof(*result));
	int rc = txn_valid(etcd, compares, n_compares, ops, n_ops);
	if (rc)
		return rc;
	json_t *request = json_object(), *compare = json_array(), *success = json_array();
	set(request, "compare", compare, &failed);
	set(request, "success", success, &failed);
	for (size_t i = 0; !failed && i < n_compares; i++)
		if (json_array_append_new(compare, compare_json(&compares[i], &failed)))
			failed = 1;
	for (size_t i = 0; !failed && i < n_ops; i++)
		if (json_array_append_new(success, op_json(&ops[i], &failed)))
			failed = 1;
	rc = failed ? fail(etcd, -ENOMEM, "etcd: out of memory")
	            : post(etcd, "/v3/kv/txn", request, etcd->timeout_ms);
	json_decref(request);
	if (rc == 0)
		rc = etcd_parse_txn(etcd->answer.data, etcd->answer.len, result, etcd->error,
		                    sizeof(etcd->error));
	if (rc == 0)
		etcd->error[0] = '\0';
	return rc;
}

/* ---- leases ---- */

static int lease_request(struct etcd *etcd, const char *path, const char *field, int64_t value)
{
	json_t *request = json_object();
	int failed = !request, rc;
	if (request)
		set(request, field, int64_json(value), &failed);
	rc = failed ? fail(etcd, -ENOMEM, "etcd: out of memory")
	            : post(etcd, path, request, etcd->timeout_ms);
	json_decref(request);
	return rc;
}

int etcd_lease_grant(struct etcd *etcd, int ttl_s, int64_t *id)
{
	*id = 0;
	if (ttl_s <= 0)
		return fail(etcd, -EINVAL, "etcd: a lease of %d s", ttl_s);
	int rc = lease_request(etcd, "/v3/lease/grant", "TTL", ttl_s);
	if (rc == 0)
		rc = etcd_parse_lease_grant(etcd->answer.data, etcd->answer.len, id, etcd->error,
		                            sizeof(etcd->error));
	if (rc == 0)
		etcd->error[0] = '\0';
	return rc;
}

int etcd_lease_keepalive(struct etcd *etcd, int64_t id, int *ttl_left)
{
	*ttl_left = 0;
	int rc = lease_request(etcd, "/v3/lease/keepalive", "ID", id);
	if (rc == 0)
		rc = etcd_parse_lease_keepalive(etcd->answer.data, etcd->answer.len, ttl_left,
		                                etcd->error, sizeof(etcd->error));
	if (rc == 0)
		etcd->error[0] = '\0';
	return rc;
}

int etcd_lease_revoke(struct etcd *etcd, int64_t id)
{
	int rc = lease_request(etcd, "/v3/lease/revoke", "ID", id);
	if (rc == 0)
		rc = etcd_parse_ack(etcd->answer.data, etcd->answer.len, etcd->error,
		                    sizeof(etcd->error));
	if (rc == -ENOENT) /* gone already: what revoking wants */
		rc = 0;
	if (rc == 0)
		etcd->error[0] = '\0';
	return rc;
}

/* ---- health ---- */

/* /v3/maintenance/status answers from the member's own view, at once;
 * 3.4's /health reads through raft first and answers late without quorum.
 * The first member that knows a leader becomes the one asked first. */
int etcd_health(struct etcd *etcd)
{
	int64_t budget =
	    etcd->timeout_ms < HEALTH_TIMEOUT_MS ? etcd->timeout_ms : HEALTH_TIMEOUT_MS;
	int64_t deadline = now_ms() + budget;
	char member_said[sizeof(etcd->error)] = "";
	int rc =
	    fail(etcd, -EHOSTUNREACH, "etcd: no member answered within %" PRId64 " ms", budget);
	for (size_t tried = 0; tried < etcd->n_endpoints; tried++) {
		size_t endpoint = (etcd->current + tried) % etcd->n_endpoints;
		int64_t left = deadline - now_ms();
		long status;
		if (left <= 0)
			break;
		if (post_once(etcd, endpoint, "/v3/maintenance/status", "{}", left, &status) !=
		    ANSWERED)
			continue;
		rc = etcd_parse_status(etcd->answer.data, etcd->answer.len, etcd->error,
		                       sizeof(etcd->error));
		if (rc == 0) {
			etcd->current = endpoint;
			etcd->error[0] = '\0';
			return 0;
		}
		snprintf(member_said, sizeof(member_said), "%s", etcd->error);
	}
	/* a member's "no leader" says more than another's refused connection */
	if (member_said[0])
		fail(etcd, -EHOSTUNREACH, "%s", member_said);
	return rc == -ENOMEM ? rc : -EHOSTUNREACH;
}

/* ---- watch ---- */

struct watch_run {
	struct etcd_watch_stream stream;
	int rc;       /* why the stream's parser ended the watch */
	int answered; /* bytes came: the endpoint was reached */
};

static size_t on_watch_bytes(char *data, size_t size, size_t nmemb, void *arg)
{
	struct watch_run *run = arg;
	size_t len = size * nmemb;
	run->answered = 1;
	run->rc = etcd_watch_stream_feed(&run->stream, data, len);
	return run->rc ? 0 : len;
}

static json_t *watch_request(const char *prefix, int64_t start_revision)
{
	char *end = malloc(strlen(prefix) + 1);
	json_t *create = json_object(), *request = json_object();
	int failed = !end || !create || !request;
	if (!failed) {
		etcd_prefix_end(prefix, end);
		set(create, "key", b64(prefix, strlen(prefix)), &failed);
		set(create, "range_end", b64_range_end(end), &failed);
		if (start_revision)
			set(create, "start_revision", int64_json(start_revision), &failed);
		/* etcd tells the revision reached even when nothing changes */
		set(create, "progress_notify", json_true(), &failed);
		set(request, "create_request", json_incref(create), &failed);
	}
	free(end);
	json_decref(create);
	if (failed) {
		json_decref(request);
		return NULL;
	}
	return request;
}

/* One watch on one endpoint, until the stream ends, the parser or fn ends
 * it, or *stop. */
static enum attempt watch_once(struct etcd *etcd, size_t endpoint, const char *json,
                               struct watch_run *run, const volatile int *stop, int *stopped)
{
	char url[1024];
	CURL *c = etcd->curl;
	CURLM *multi = curl_multi_init();
	if (!multi) {
		fail(etcd, -ENOMEM, "etcd: out of memory");
		return LOCAL_FAILURE;
	}
	set_request(etcd, endpoint, "/v3/watch", json, url, sizeof(url));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_watch_bytes);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, run);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
	curl_multi_add_handle(multi, c);
	CURLcode res = CURLE_OK;
	for (;;) {
		int running = 0;
		if (curl_multi_perform(multi, &running) != CURLM_OK)
			res = CURLE_OUT_OF_MEMORY;
		if (!running || res != CURLE_OK)
			break;
		if (*stop) {
			*stopped = 1;
			break;
		}
		curl_multi_poll(multi, NULL, 0, WATCH_POLL_MS, NULL);
	}
	int queued;
	CURLMsg *msg = curl_multi_info_read(multi, &queued);
	if (msg && msg->msg == CURLMSG_DONE)
		res = msg->data.result;
	curl_multi_remove_handle(multi, c);
	curl_multi_cleanup(multi);
	if (*stopped || run->rc)
		return ANSWERED;
	if (res == CURLE_OK) {
		/* an error answer without its newline is still etcd's word */
		if (run->stream.len)
			run->rc = etcd_watch_stream_feed(&run->stream, "\n", 1);
		if (!run->rc) {
			snprintf(run->stream.err, sizeof(run->stream.err),
			         "the watch stream ended");
			run->rc = -EHOSTUNREACH;
		}
		return ANSWERED;
	}
	enum attempt result = classify(etcd, endpoint, res);
	return result == TIMED_OUT || (result == BROKEN && !run->answered) ? NOT_REACHED : result;
}

int etcd_watch(struct etcd *etcd, const char *prefix, int64_t start_revision, etcd_watch_fn fn,
               void *arg, const volatile int *stop)
{
	if (!prefix || !*prefix || !fn || !stop || start_revision < 0)
		return fail(etcd, -EINVAL,
		            "etcd: a watch needs a prefix, a callback and a stop flag");
	json_t *request = watch_request(prefix, start_revision);
	char *json = request ? json_dumps(request, JSON_COMPACT) : NULL;
	json_decref(request);
	if (!json)
		return fail(etcd, -ENOMEM, "etcd: out of memory");
	int rc = fail(etcd, -EHOSTUNREACH, "etcd: no member to watch");
	for (size_t tried = 0; tried < etcd->n_endpoints && !*stop; tried++) {
		size_t endpoint = (etcd->current + tried) % etcd->n_endpoints;
		struct watch_run run = {.rc = 0};
		int stopped = 0;
		etcd_watch_stream_init(&run.stream, fn, arg);
		enum attempt result = watch_once(etcd, endpoint, json, &run, stop, &stopped);
		if (run.rc && run.stream.err[0])
			fail(etcd, run.rc, "etcd %s: %s", etcd->endpoints[endpoint],
			     run.stream.err);
		else if (run.rc && !stopped)
			fail(etcd, run.rc, "etcd: the watch's callback ended it (%d)", run.rc);
		etcd_watch_stream_free(&run.stream);
		if (result == NOT_REACHED)
			continue;
		if (result == ANSWERED)
			etcd->current = endpoint;
		rc = result == ANSWERED ? run.rc : etcd->error_rc;
		break;
	}
	if (*stop)
		rc = 0;
	if (rc == 0)
		etcd->error[0] = '\0';
	free(json);
	return rc;
}
