/* A plugin for the core's tests, built several times under other names
 * (see CMakeLists.txt): it records its lifecycle in a trace file, can be
 * told to fail init, and serves a few services to poke the bus and state. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <meshgate/meshgate.h>

#ifndef PROBE_NAME
#define PROBE_NAME "probe"
#endif

static void trace(mg_ctx *ctx, const char *what)
{
	const char *path = json_string_value(json_object_get(mg_config(ctx), "trace_file"));
	FILE *f = path && path[0] ? fopen(path, "a") : NULL;
	if (f) {
		fprintf(f, "%s %s\n", what, PROBE_NAME);
		fclose(f);
	}
}

static json_t *echo(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	(void)ctx;
	(void)service;
	(void)arg;
	return json_incref(request);
}

/* Sleeps "ms" milliseconds: a plugin that does not answer in time. */
static json_t *sleepy(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	(void)ctx;
	(void)service;
	(void)arg;
	usleep((useconds_t)json_integer_value(json_object_get(request, "ms")) * 1000);
	return json_object();
}

/* Writes {key, value} durably, then answers: the answer is the ack. */
static json_t *put(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	const char *key = json_string_value(json_object_get(request, "key"));
	json_t *value = json_object_get(request, "value");
	mg_txn *txn;
	(void)service;
	(void)arg;
	if (!key || !json_is_object(value))
		return mg_error("bad_request", "need key and object value");
	int rc = mg_txn_begin(ctx, 0, &txn);
	if (!rc && (rc = mg_state_put(ctx, txn, "probe", key, value)))
		mg_txn_abort(ctx, txn);
	if (!rc)
		rc = mg_txn_commit(ctx, txn);
	return rc ? mg_error("internal", "%s", strerror(-rc)) : json_pack("{s:b}", "ok", 1);
}

static json_t *get(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	const char *key = json_string_value(json_object_get(request, "key"));
	mg_txn *txn;
	json_t *value = NULL;
	(void)service;
	(void)arg;
	if (!key)
		return mg_error("bad_request", "need key");
	int rc = mg_txn_begin(ctx, MG_TXN_READ, &txn);
	if (!rc) {
		rc = mg_state_get(ctx, txn, "probe", key, &value);
		mg_txn_abort(ctx, txn);
	}
	return rc ? mg_error("not_found", "%s", strerror(-rc)) : value;
}

static void on_tick(mg_ctx *ctx, void *arg)
{
	(void)ctx;
	(void)arg;
}

static void on_event(mg_ctx *ctx, const char *topic, json_t *payload, void *arg)
{
	(void)ctx;
	(void)topic;
	(void)payload;
	(void)arg;
}

static int probe_init(mg_ctx *ctx)
{
	char service[128];
	int rc;
	trace(ctx, "init");
	snprintf(service, sizeof(service), "%s.echo", PROBE_NAME);
	if ((rc = mg_service_add(ctx, service, echo, NULL)))
		return rc;
	snprintf(service, sizeof(service), "%s.sleep", PROBE_NAME);
	if ((rc = mg_service_add(ctx, service, sleepy, NULL)))
		return rc;
	snprintf(service, sizeof(service), "%s.put", PROBE_NAME);
	if ((rc = mg_service_add(ctx, service, put, NULL)))
		return rc;
	snprintf(service, sizeof(service), "%s.get", PROBE_NAME);
	if ((rc = mg_service_add(ctx, service, get, NULL)))
		return rc;
	if ((rc = mg_subscribe(ctx, "probe.", on_event, NULL)) < 0)
		return rc;
	if ((rc = mg_timer_add(ctx, 1000, 1, on_tick, NULL)) < 0)
		return rc;
	if (json_is_true(json_object_get(mg_config(ctx), "fail_init")))
		return -EIO; /* after registering: the core must drop all of it */
	return 0;
}

/* The heavy part of a reconcile, run on the loop right after start
 * (docs/plugin-guide.md): takes reconcile_after_start_ms, then says the
 * plugin is ready. */
static void probe_reconcile(mg_ctx *ctx, void *arg)
{
	(void)arg;
	usleep((useconds_t)json_integer_value(
	           json_object_get(mg_config(ctx), "reconcile_after_start_ms")) *
	       1000);
	trace(ctx, "reconciled");
	mg_ready(ctx);
}

/* A start that takes start_sleep_ms, as a reconcile of many devices
 * does; with ready_first it says it is ready before that. */
static int probe_start(mg_ctx *ctx)
{
	json_t *config = mg_config(ctx);
	trace(ctx, "start");
	if (json_is_true(json_object_get(config, "ready_first")))
		mg_ready(ctx);
	if (json_integer_value(json_object_get(config, "reconcile_after_start_ms")) > 0) {
		int rc = mg_post(ctx, probe_reconcile, NULL);
		if (rc)
			return rc;
	}
	usleep((useconds_t)json_integer_value(json_object_get(config, "start_sleep_ms")) * 1000);
	return json_is_true(json_object_get(config, "fail_start")) ? -EIO : 0;
}

static void probe_stop(mg_ctx *ctx)
{
	trace(ctx, "stop");
}

static const struct mg_setting probe_settings[] = {
    {"trace_file", MG_SETTING_STRING, "\"\"", "Appends lifecycle calls to this file.", NULL, 0},
    {"fail_init", MG_SETTING_BOOL, "false", "Makes init fail after registering.", NULL, 0},
    {"count", MG_SETTING_INT, "1", "An integer, for type checks.", NULL, 0},
    {"start_sleep_ms", MG_SETTING_INT, "0", "How long start takes.", NULL, 0},
    {"ready_first", MG_SETTING_BOOL, "false", "Calls mg_ready as start begins.", NULL, 0},
    {"fail_start", MG_SETTING_BOOL, "false", "Makes start fail (after its sleep).", NULL, 0},
    {"reconcile_after_start_ms", MG_SETTING_INT, "0",
     "How long the reconcile it posts to itself from start takes (0: none).", NULL, 0},
    {0},
};

#ifdef PROBE_DEPENDS
static const char *const probe_depends[] = {PROBE_DEPENDS, NULL};
#else
static const char *const probe_depends[] = {NULL};
#endif
#ifdef PROBE_OWNS_STATE
static const char *const probe_owns[] = {"probe", NULL};
#else
static const char *const probe_owns[] = {NULL};
#endif

MG_PLUGIN(.name = PROBE_NAME, .version = "0.0.1", .description = "test probe",
          .depends = probe_depends, .owns = probe_owns, .settings = probe_settings,
          .init = probe_init, .start = probe_start, .stop = probe_stop);
