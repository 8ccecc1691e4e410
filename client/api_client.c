#include "api_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "curl_body.h"
#include "reply.h"
#include "tls_pin.h"

#define REPLY_MAX (64 * 1024) /* no answer of this API is larger */

struct cl_api {
	char base[CL_HOST_MAX + 32]; /* https://HOST:PORT */
	char host[CL_HOST_MAX];
	unsigned port;
	char anchor[512]; /* the CA file curl trusts ("" = system store) */
	bool anchor_is_temp;
	int timeout_s;
	volatile sig_atomic_t *stop;
};

int cl_api_parse_url(const char *url, char *host, size_t host_size, unsigned *port)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *h = NULL, *p = NULL, *path = NULL, *query = NULL, *user = NULL;
	int rc = -EINVAL;

	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0))
		goto out;
	curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	curl_url_get(u, CURLUPART_HOST, &h, 0);
	curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT);
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	curl_url_get(u, CURLUPART_QUERY, &query, 0);
	curl_url_get(u, CURLUPART_USER, &user, 0);
	if (!scheme || strcmp(scheme, "https") || !h || !p || query || user ||
	    (path && strcmp(path, "/") && *path))
		goto out;
	/* curl keeps the brackets of an IPv6 literal. */
	size_t n = strlen(h);
	const char *start = h;
	if (h[0] == '[' && n > 2 && h[n - 1] == ']')
		start++, n -= 2;
	if (n == 0 || n >= host_size)
		goto out;
	memcpy(host, start, n);
	host[n] = '\0';
	char *end;
	unsigned long v = strtoul(p, &end, 10);
	if (*end || v == 0 || v > 65535)
		goto out;
	*port = (unsigned)v;
	rc = 0;
out:
	curl_free(scheme);
	curl_free(h);
	curl_free(p);
	curl_free(path);
	curl_free(query);
	curl_free(user);
	curl_url_cleanup(u);
	return rc;
}

int cl_api_open(struct cl_api **out, const struct cl_api_options *opt, struct cl_err *err)
{
	struct cl_api *api = calloc(1, sizeof(*api));
	*out = NULL;
	if (!api)
		return cl_fail(err, CL_EXIT_FAILURE, "out of memory");
	api->timeout_s = opt->timeout_s > 0 ? opt->timeout_s : 30;
	api->stop = opt->stop;
	if (cl_api_parse_url(opt->server_url, api->host, sizeof(api->host), &api->port)) {
		free(api);
		return cl_fail(err, CL_EXIT_USAGE, "--server must be https://HOST[:PORT], not %s",
		               opt->server_url);
	}
	bool v6 = strchr(api->host, ':') != NULL;
	snprintf(api->base, sizeof(api->base), v6 ? "https://[%s]:%u" : "https://%s:%u", api->host,
	         api->port);

	if (opt->pin) {
		struct cl_pin pin;
		if (cl_pin_parse(opt->pin, &pin)) {
			free(api);
			return cl_fail(err, CL_EXIT_USAGE,
			               "--pin must be a SHA-256 fingerprint (64 hex digits, "
			               "colons allowed) or sha256//BASE64");
		}
		if (cl_pin_fetch_anchor(api->host, api->port, &pin, api->timeout_s, api->anchor,
		                        sizeof(api->anchor), err)) {
			free(api);
			return -1;
		}
		api->anchor_is_temp = true;
	} else if (opt->ca_file) {
		if (access(opt->ca_file, R_OK)) {
			int saved = errno;
			free(api);
			return cl_fail(err, CL_EXIT_FAILURE, "cannot read --ca %s: %s",
			               opt->ca_file, strerror(saved));
		}
		snprintf(api->anchor, sizeof(api->anchor), "%s", opt->ca_file);
	}
	*out = api;
	return 0;
}

void cl_api_close(struct cl_api *api)
{
	if (!api)
		return;
	if (api->anchor_is_temp && *api->anchor)
		unlink(api->anchor);
	free(api);
}

const char *cl_api_anchor(const struct cl_api *api)
{
	return api->anchor;
}

static void set_tls(CURL *c, const struct cl_api *api)
{
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (*api->anchor) {
		/* Only these anchors (a bundle: trust.h): no system CA may vouch for
		 * the gateway. */
		curl_easy_setopt(c, CURLOPT_CAINFO, api->anchor);
		curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	}
}

static int transfer_error(const struct cl_api *api, CURLcode rc, const char *detail,
                          struct cl_err *err)
{
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
		return cl_fail(err, CL_EXIT_TLS,
		               "cannot verify the server %s (untrusted certificate, wrong --ca or "
		               "--pin, or wrong host name): %s",
		               api->host, detail);
	case CURLE_SSL_CONNECT_ERROR:
		return cl_fail(err, CL_EXIT_TLS, "TLS connection to %s failed: %s", api->host,
		               detail);
	default:
		return cl_fail(err, CL_EXIT_SERVER, "cannot reach the server %s: %s", api->host,
		               detail);
	}
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	const struct cl_api *api = arg;
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	return api->stop && *api->stop; /* non-zero: abort the transfer */
}

/* One request: a POST of body, or a GET when body is NULL. */
static int request(struct cl_api *api, const char *what, const char *path, json_t *body,
                   char **reply, size_t *reply_len, struct cl_err *err)
{
	char url[sizeof(api->base) + 64], errbuf[CURL_ERROR_SIZE] = "";
	struct curl_body b = {.max = REPLY_MAX};
	struct curl_slist *headers = NULL;
	long status = 0;
	int rc = -1;

	*reply = NULL;
	*reply_len = 0;
	char *json = body ? json_dumps(body, JSON_COMPACT) : NULL;
	CURL *c = curl_easy_init();
	if ((body && !json) || !c) {
		cl_fail(err, CL_EXIT_FAILURE, "out of memory");
		goto out;
	}
	snprintf(url, sizeof(url), "%s%s", api->base, path);
	if (json)
		headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "Accept: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*"); /* the gateway is reached directly */
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)api->timeout_s);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)api->timeout_s);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "meshgate/" MESHGATE_VERSION);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	if (json)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	if (api->stop) {
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(c, CURLOPT_XFERINFODATA, api);
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_body_collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	set_tls(c, api);

	CURLcode cc = curl_easy_perform(c);
	if (cc == CURLE_ABORTED_BY_CALLBACK) {
		cl_fail(err, CL_EXIT_FAILURE, "interrupted");
		goto out;
	}
	if (cc != CURLE_OK) {
		transfer_error(api, cc,
		               b.too_big ? "reply too large"
		               : *errbuf ? errbuf
		                         : curl_easy_strerror(cc),
		               err);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		cl_error_reply_decode(what, status, b.data ? b.data : "", b.len, err);
		goto out;
	}
	*reply = b.data ? b.data : strdup("");
	*reply_len = b.len;
	b.data = NULL;
	rc = *reply ? 0 : cl_fail(err, CL_EXIT_FAILURE, "out of memory");
out:
	if (json) {
		sodium_memzero(json, strlen(json));
		free(json);
	}
	if (b.data) {
		sodium_memzero(b.data, b.len);
		free(b.data);
	}
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	return rc;
}

int cl_api_post(struct cl_api *api, const char *what, const char *path, json_t *body, char **reply,
                size_t *reply_len, struct cl_err *err)
{
	return request(api, what, path, body, reply, reply_len, err);
}

int cl_api_get(struct cl_api *api, const char *what, const char *path, char **reply,
               size_t *reply_len, struct cl_err *err)
{
	return request(api, what, path, NULL, reply, reply_len, err);
}
