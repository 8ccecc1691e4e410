/* GET /metrics: gathered from the plugins over the bus, rendered in
 * Prometheus' text format by lib/metrics (metrics_server.h). */
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "http.h"
#include "metrics.h"
#include "metrics_server.h"

/* The bus names a plugin may have; longer ones are not asked. */
#define SOURCE_NAME_MAX 64
/* Plugins asked at most per scrape: more than meshgate has. */
#define SOURCES_MAX 64
/* The core answers core.status on its broker thread, at once. */
#define STATUS_TIMEOUT_MS 1000

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct api_metrics {
	mg_ctx *ctx;
	int timeout_ms;
	struct MHD_Daemon *mhd;
	/* plugin -> scrapes it did not answer well; only the MHD thread
	 * (there is one, and it serves one scrape at a time) touches it */
	json_t *errors;
};

/* One plugin asked, on a thread of its own, so that a slow one holds up
 * nobody but itself: the scrape takes the longest answer, at most the
 * deadline, not their sum. */
struct source {
	mg_ctx *ctx;
	char name[SOURCE_NAME_MAX];
	char service[SOURCE_NAME_MAX + 16];
	int timeout_ms;
	pthread_t thread;
	int started;
	int rc;
	json_t *reply;
};

static void *ask(void *arg)
{
	struct source *s = arg;
	s->rc = mg_request(s->ctx, s->service, NULL, s->timeout_ms, &s->reply);
	return NULL;
}

/* The core, then every plugin that runs: who may have figures. */
static size_t list_sources(struct api_metrics *m, struct source *sources)
{
	json_t *status = NULL, *plugin;
	size_t i, n = 0;
	snprintf(sources[n++].name, SOURCE_NAME_MAX, "core");
	if (mg_request(m->ctx, "core.status", NULL, STATUS_TIMEOUT_MS, &status) == 0)
		json_array_foreach(json_object_get(status, "plugins"), i, plugin)
		{
			const char *name = json_string_value(json_object_get(plugin, "name"));
			const char *state = json_string_value(json_object_get(plugin, "state"));
			if (n < SOURCES_MAX && name && strlen(name) < SOURCE_NAME_MAX && state &&
			    !strcmp(state, "running"))
				snprintf(sources[n++].name, SOURCE_NAME_MAX, "%s", name);
		}
	json_decref(status);
	return n;
}

static void gather(struct api_metrics *m, struct source *sources, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct source *s = &sources[i];
		s->ctx = m->ctx;
		s->timeout_ms = m->timeout_ms;
		snprintf(s->service, sizeof(s->service), "%s.metrics", s->name);
		s->started = pthread_create(&s->thread, NULL, ask, s) == 0;
		if (!s->started)
			ask(s); /* no thread to spare: asked here, in turn */
	}
	for (size_t i = 0; i < n; i++)
		if (sources[i].started)
			pthread_join(sources[i].thread, NULL);
}

static void count_error(struct api_metrics *m, const char *plugin, int failed)
{
	json_int_t n = json_integer_value(json_object_get(m->errors, plugin));
	json_object_set_new(m->errors, plugin, json_integer(n + (failed ? 1 : 0)));
}

/* The scrape's own families: what went wrong per plugin, and its time. */
static json_t *scrape_families(struct api_metrics *m, double seconds)
{
	json_t *families = json_array(), *count;
	const char *plugin;
	json_t *errors = metrics_family(
	    families, "meshgate_scrape_errors_total", "counter",
	    "Scrapes in which a plugin with figures did not answer in time, answered an error, or "
	    "answered families that are not well formed");
	json_object_foreach(m->errors, plugin, count)
	{
		metrics_sample(errors, json_pack("{s:s}", "plugin", plugin),
		               (double)json_integer_value(count));
	}
	metrics_sample(metrics_family(families, "meshgate_scrape_duration_seconds", "gauge",
	                              "Seconds this scrape spent asking the plugins for their "
	                              "figures"),
	               NULL, seconds);
	return families;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The page; NULL without memory. */
static char *scrape(struct api_metrics *m, size_t *len)
{
	struct source *sources = calloc(SOURCES_MAX, sizeof(*sources));
	char *page = NULL;
	json_t *seen = json_object();
	FILE *out = open_memstream(&page, len);
	if (!sources || !seen || !out) {
		free(sources);
		json_decref(seen);
		if (out)
			fclose(out);
		free(page);
		return NULL;
	}
	double t0 = now_s();
	size_t n = list_sources(m, sources);
	gather(m, sources, n);
	for (size_t i = 0; i < n; i++) {
		struct source *s = &sources[i];
		if (s->rc == -ENOENT) { /* no figures: not an error */
			json_decref(s->reply);
			continue;
		}
		int failed = s->rc != 0;
		if (!failed && metrics_render(out, json_object_get(s->reply, "families"), seen))
			failed = 1;
		if (failed)
			mg_log_limited(
			    m->ctx, MG_LOG_WARN, s->service, "metrics: %s: %s", s->service,
			    s->rc ? json_string_value(json_object_get(s->reply, "message"))
			          : "families left out (not well formed, or named twice)");
		count_error(m, s->name, failed);
		json_decref(s->reply);
	}
	json_t *own = scrape_families(m, now_s() - t0);
	metrics_render(out, own, seen);
	json_decref(own);
	json_decref(seen);
	free(sources);
	if (fclose(out)) {
		free(page);
		return NULL;
	}
	return page;
}

static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct api_metrics *m = cls;
	(void)version;
	(void)upload_data;
	if (!*con_cls) { /* the head: the body, if any, comes in the next calls */
		*con_cls = m;
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0; /* a body is not looked at */
		return MHD_YES;
	}
	if (strcmp(url, "/metrics"))
		return answer_text(conn, MHD_HTTP_NOT_FOUND,
		                   "not found: the figures are at /metrics\n");
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
	size_t len = 0;
	char *page = scrape(m, &len);
	if (!page)
		return answer_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	struct MHD_Response *r = MHD_create_response_from_buffer(len, page, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(page);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
	enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return rc;
}

struct api_metrics *api_metrics_start(mg_ctx *ctx, const char *listen, int timeout_ms, char *why,
                                      size_t whylen)
{
	struct sockaddr_storage addr;
	socklen_t addrlen;
	if (api_parse_listen(listen, &addr, &addrlen, why, whylen))
		return NULL;
	struct api_metrics *m = calloc(1, sizeof(*m));
	if (!m || !(m->errors = json_object())) {
		free(m);
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	m->ctx = ctx;
	m->timeout_ms = timeout_ms;
	int fd = api_listen_on(&addr, addrlen, 16, listen, 0, why, whylen);
	if (fd < 0) {
		api_metrics_stop(m);
		return NULL;
	}
	/* one thread: scrapes come every few seconds, one at a time */
	m->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
	                          on_request, m, MHD_OPTION_LISTEN_SOCKET, fd,
	                          MHD_OPTION_CONNECTION_LIMIT, 32u, MHD_OPTION_CONNECTION_TIMEOUT,
	                          30u, MHD_OPTION_END);
	if (!m->mhd) {
		snprintf(why, whylen, "cannot start the metrics server on %s", listen);
		api_metrics_stop(m); /* MHD closed fd */
		return NULL;
	}
	return m;
}

void api_metrics_stop(struct api_metrics *m)
{
	if (!m)
		return;
	if (m->mhd)
		MHD_stop_daemon(m->mhd);
	json_decref(m->errors);
	free(m);
}
