#include "login.h"

#include <curl/curl.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "curl_body.h"
#include "enroll.h"

#define ANSWER_MAX         (64 * 1024)
#define SLOW_DOWN_S        5 /* RFC 8628, 3.5: each slow_down adds this to the interval */
#define PROVIDER_TIMEOUT_S 30
#define DEVICE_CODE_GRANT  "urn:ietf:params:oauth:grant-type:device_code"

/* GET /api/v1/oidc: where to log in. */
struct provider {
	char issuer[512], client_id[256];
	char device_endpoint[512], token_endpoint[512];
	char ca_file[64]; /* the provider's CA as the gateway gave it (a temp file), or "" */
};

static int copy_url(json_t *root, const char *name, char *out, size_t size, struct cl_err *err)
{
	const char *v = json_string_value(json_object_get(root, name));
	if (!v || strncmp(v, "https://", 8) || strlen(v) >= size)
		return cl_fail(err, CL_EXIT_SERVER,
		               "the server's identity login answer has no https %s", name);
	snprintf(out, size, "%s", v);
	return 0;
}

/* The gateway's CA for the provider, kept in a temp file for curl. */
static int save_ca(const char *pem, struct provider *p, struct cl_err *err)
{
	snprintf(p->ca_file, sizeof(p->ca_file), "/tmp/meshgate-login-ca.XXXXXX");
	int fd = mkstemp(p->ca_file);
	size_t n = strlen(pem);
	if (fd < 0 || write(fd, pem, n) != (ssize_t)n) {
		if (fd >= 0) {
			close(fd);
			unlink(p->ca_file);
		}
		p->ca_file[0] = '\0';
		return cl_fail(err, CL_EXIT_FAILURE, "cannot write the provider's CA: %s",
		               strerror(errno));
	}
	close(fd);
	return 0;
}

static int provider_get(struct cl_api *api, struct provider *p, struct cl_err *err)
{
	char *body = NULL;
	size_t len = 0;
	memset(p, 0, sizeof(*p));
	if (cl_api_get(api, "identity login", "/api/v1/oidc", &body, &len, err))
		return -1;
	json_t *root = json_loadb(body, len, 0, NULL);
	free(body);
	const char *client = json_string_value(json_object_get(root, "client_id"));
	const char *ca = json_string_value(json_object_get(root, "ca"));
	int rc = -1;
	if (!client || !*client || strlen(client) >= sizeof(p->client_id))
		cl_fail(err, CL_EXIT_SERVER, "the server's identity login answer has no client_id");
	else if (!copy_url(root, "issuer", p->issuer, sizeof(p->issuer), err) &&
	         !copy_url(root, "device_authorization_endpoint", p->device_endpoint,
	                   sizeof(p->device_endpoint), err) &&
	         !copy_url(root, "token_endpoint", p->token_endpoint, sizeof(p->token_endpoint),
	                   err) &&
	         (!ca || !save_ca(ca, p, err))) {
		snprintf(p->client_id, sizeof(p->client_id), "%s", client);
		rc = 0;
	}
	json_decref(root);
	return rc;
}

/* ---- the provider ---- */

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	volatile sig_atomic_t *stop = arg;
	(void)a, (void)b, (void)c, (void)d;
	return stop && *stop;
}

/* POSTs a form to one of the provider's endpoints over verified TLS: 0
 * with the status and the answer (malloc'd, the caller frees), -1 with
 * err. */
static int provider_post(const struct provider *p, const char *url, const char *form,
                         volatile sig_atomic_t *stop, long *status, struct curl_body *a,
                         struct cl_err *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	*a = (struct curl_body){.max = ANSWER_MAX};
	CURL *c = curl_easy_init();
	if (!c)
		return cl_fail(err, CL_EXIT_FAILURE, "out of memory");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (*p->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, p->ca_file);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)PROVIDER_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "meshgate/" MESHGATE_VERSION);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_body_collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, stop);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	CURLcode rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	if (rc == CURLE_ABORTED_BY_CALLBACK)
		return cl_fail(err, CL_EXIT_LOGIN, "interrupted");
	if (rc != CURLE_OK || a->too_big || !a->data) {
		free(a->data);
		a->data = NULL;
		return cl_fail(err, CL_EXIT_SERVER, "cannot reach the identity provider (%s): %s",
		               url,
		               a->too_big ? "answer too large"
		               : *errbuf  ? errbuf
		                          : curl_easy_strerror(rc));
	}
	return 0;
}

/* The form's value of `text`, percent-encoded (curl_free it). */
static char *escape(const char *text)
{
	return curl_easy_escape(NULL, text, 0);
}

/* ---- the device authorization flow ---- */

static void copy_text(json_t *root, const char *name, char *out, size_t size)
{
	const char *v = json_string_value(json_object_get(root, name));
	snprintf(out, size, "%s", v && strlen(v) < size ? v : "");
}

int cl_device_grant_decode(const char *body, size_t len, struct cl_device_grant *g,
                           struct cl_err *err)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	memset(g, 0, sizeof(*g));
	copy_text(root, "device_code", g->device_code, sizeof(g->device_code));
	copy_text(root, "user_code", g->user_code, sizeof(g->user_code));
	copy_text(root, "verification_uri", g->verification_uri, sizeof(g->verification_uri));
	copy_text(root, "verification_uri_complete", g->verification_uri_complete,
	          sizeof(g->verification_uri_complete));
	json_t *interval = json_object_get(root, "interval");
	json_t *expires = json_object_get(root, "expires_in");
	g->interval_s = json_is_integer(interval) ? (int)json_integer_value(interval) : 5;
	g->expires_in_s = json_is_integer(expires) ? (int)json_integer_value(expires) : 0;
	json_decref(root);
	if (!*g->device_code || !*g->user_code || strncmp(g->verification_uri, "https://", 8))
		return cl_fail(err, CL_EXIT_SERVER,
		               "the identity provider's device authorization answer lacks "
		               "device_code, user_code or an https verification_uri");
	if (g->interval_s < 1 || g->interval_s > 60)
		g->interval_s = 5;
	if (g->expires_in_s < 1 || g->expires_in_s > 3600)
		g->expires_in_s = 600;
	return 0;
}

enum cl_poll cl_token_answer_decode(long status, const char *body, size_t len, char **id_token,
                                    struct cl_err *err)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	const char *error = json_string_value(json_object_get(root, "error"));
	const char *description = json_string_value(json_object_get(root, "error_description"));
	const char *token = json_string_value(json_object_get(root, "id_token"));
	char detail[200] = "";
	enum cl_poll result = CL_POLL_FAILED;
	*id_token = NULL;
	if (description)
		cl_sanitize(description, detail, sizeof(detail));
	if (status == 200 && token && *token) {
		*id_token = strdup(token);
		result = *id_token ? CL_POLL_DONE : CL_POLL_FAILED;
		if (!*id_token)
			cl_fail(err, CL_EXIT_FAILURE, "out of memory");
	} else if (status == 200) {
		cl_fail(err, CL_EXIT_SERVER,
		        "the identity provider gave no ID token (is \"openid\" a scope of the "
		        "devices' client?)");
	} else if (error && !strcmp(error, "authorization_pending")) {
		result = CL_POLL_PENDING;
	} else if (error && !strcmp(error, "slow_down")) {
		result = CL_POLL_SLOW_DOWN;
	} else if (error && !strcmp(error, "access_denied")) {
		cl_fail(err, CL_EXIT_LOGIN, "the login was denied at the identity provider");
	} else if (error && !strcmp(error, "expired_token")) {
		cl_fail(err, CL_EXIT_LOGIN,
		        "the login code expired before the login: run it again");
	} else {
		char code[64] = "";
		if (error)
			cl_sanitize(error, code, sizeof(code));
		cl_fail(err, CL_EXIT_LOGIN,
		        "the identity provider refused the login (HTTP %ld%s%s)%s%s", status,
		        *code ? ", " : "", code, *detail ? ": " : "", detail);
	}
	json_decref(root);
	return result;
}

/* Sleeps `seconds`, a tenth at a time, unless the user interrupts. */
static int wait_or_stop(int seconds, volatile sig_atomic_t *stop)
{
	for (int i = 0; i < seconds * 10; i++) {
		if (stop && *stop)
			return -1;
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return stop && *stop ? -1 : 0;
}

static time_t monotonic_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Asks for a device code, shows where to log in, polls until the person
 * has: 0 with the ID token (malloc'd) in *id_token. */
static int device_flow(const struct provider *p, volatile sig_atomic_t *stop, char **id_token,
                       struct cl_err *err)
{
	struct cl_device_grant g;
	struct curl_body a;
	long status = 0;
	char form[2048];
	char *client = escape(p->client_id);
	if (!client)
		return cl_fail(err, CL_EXIT_FAILURE, "out of memory");
	snprintf(form, sizeof(form), "client_id=%s&scope=openid%%20profile%%20email", client);
	int rc = provider_post(p, p->device_endpoint, form, stop, &status, &a, err);
	if (!rc && status != 200)
		rc = cl_token_answer_decode(status, a.data, a.len, id_token, err) == CL_POLL_DONE
		         ? cl_fail(err, CL_EXIT_SERVER, "unexpected token at device authorization")
		         : -1;
	else if (!rc)
		rc = cl_device_grant_decode(a.data, a.len, &g, err);
	free(a.data);
	if (rc) {
		curl_free(client);
		return -1;
	}
	printf("meshgate: to log in, open %s and enter the code %s\n", g.verification_uri,
	       g.user_code);
	if (*g.verification_uri_complete)
		printf("meshgate: (or open %s)\n", g.verification_uri_complete);
	printf("meshgate: waiting for the login (%d s at most; Ctrl-C stops)\n", g.expires_in_s);
	fflush(stdout);

	char *device_code = escape(g.device_code);
	snprintf(form, sizeof(form), "grant_type=%s&device_code=%s&client_id=%s", DEVICE_CODE_GRANT,
	         device_code ? device_code : "", client);
	curl_free(device_code);
	curl_free(client);
	sodium_memzero(&g.device_code, sizeof(g.device_code));
	time_t deadline = monotonic_s() + g.expires_in_s;
	int interval = g.interval_s;
	enum cl_poll poll = CL_POLL_PENDING;
	while (poll == CL_POLL_PENDING || poll == CL_POLL_SLOW_DOWN) {
		if (wait_or_stop(interval, stop)) {
			rc = cl_fail(err, CL_EXIT_LOGIN, "interrupted");
			break;
		}
		if (monotonic_s() >= deadline) {
			rc = cl_fail(err, CL_EXIT_LOGIN,
			             "nobody logged in within %d s: the code expired, run it again",
			             g.expires_in_s);
			break;
		}
		if ((rc = provider_post(p, p->token_endpoint, form, stop, &status, &a, err)))
			break;
		poll = cl_token_answer_decode(status, a.data, a.len, id_token, err);
		free(a.data);
		if (poll == CL_POLL_SLOW_DOWN)
			interval += SLOW_DOWN_S;
		rc = poll == CL_POLL_FAILED ? -1 : 0;
	}
	sodium_memzero(form, sizeof(form));
	return rc;
}

int cl_login_enroll(struct cl_api *api, const char *name, volatile sig_atomic_t *stop,
                    struct cl_redeem_reply *reply, struct cl_err *err)
{
	struct provider p;
	char *id_token = NULL;
	int rc = provider_get(api, &p, err);
	if (!rc) {
		printf("meshgate: logging in at %s\n", p.issuer);
		rc = device_flow(&p, stop, &id_token, err);
	}
	if (*p.ca_file)
		unlink(p.ca_file);
	if (rc)
		return -1;
	rc = cl_enroll_redeem_with(api, "login", "/api/v1/oidc/enroll", "id_token", id_token, name,
	                           reply, err);
	sodium_memzero(id_token, strlen(id_token));
	free(id_token);
	return rc;
}
