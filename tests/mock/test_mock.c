/* The mock core itself: routing, events after the handler, state events,
 * ownership, timers on the virtual clock, fds, dependency order, config
 * defaults and registrations vanishing at stop. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mg_mock.h"

#define DESCRIPTOR(...)                                                            \
	{                                                                          \
		.abi_major = MG_ABI_MAJOR, .abi_minor = MG_ABI_MINOR,              \
		.size = sizeof(struct mg_plugin), .ptr_size = sizeof(void *),      \
		.time_size = sizeof(time_t), .long_size = sizeof(long),            \
		.build_signature = MG_BUILD_SIGNATURE, .version = "1", __VA_ARGS__ \
	}

/* ---- plugin "echo": a service, an event, a state database ---- */

struct echo {
	int in_handler;
	int events_seen_in_handler; /* must stay 0: delivery is never re-entrant */
	int events;
	char last_topic[64];
	int timer_fired;
	int fd_fired;
	int order_mark;
};

static int start_order[8];
static int nstarted;

static void on_event(mg_ctx *ctx, const char *topic, json_t *payload, void *arg)
{
	(void)payload;
	(void)arg;
	struct echo *e = ctx->self;
	if (e->in_handler)
		e->events_seen_in_handler++;
	e->events++;
	snprintf(e->last_topic, sizeof(e->last_topic), "%s", topic);
}

static json_t *say(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	(void)service;
	(void)arg;
	struct echo *e = ctx->self;
	const char *text = json_string_value(json_object_get(request, "text"));
	if (!text)
		return mg_error("bad_request", "text missing");
	if (!strcmp(text, "null"))
		return NULL;
	e->in_handler = 1;
	json_t *payload = json_pack("{s:s}", "text", text);
	mg_publish(ctx, "echo.said", payload);
	json_decref(payload);
	mg_txn *txn;
	int rc = mg_txn_begin(ctx, 0, &txn);
	if (!rc) {
		json_t *v = json_pack("{s:s}", "text", text);
		rc = mg_state_put(ctx, txn, "echoes", text, v);
		json_decref(v);
		rc = rc ? rc : mg_txn_commit(ctx, txn);
	}
	e->in_handler = 0;
	return json_pack("{s:s, s:i}", "said", text, "rc", rc);
}

static json_t *self_call(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	(void)service;
	(void)request;
	(void)arg;
	json_t *reply;
	int rc = mg_request(ctx, "echo.say", NULL, 0, &reply);
	json_t *out = json_pack("{s:i, s:O}", "rc", rc, "reply", reply);
	json_decref(reply);
	return out;
}

static void tick(mg_ctx *ctx, void *arg)
{
	(void)arg;
	struct echo *e = ctx->self;
	e->timer_fired++;
}

static void on_fd(mg_ctx *ctx, int fd, int events, void *arg)
{
	(void)arg;
	struct echo *e = ctx->self;
	e->fd_fired = fd * 10 + events;
}

static int echo_init(mg_ctx *ctx)
{
	struct echo *e = calloc(1, sizeof(*e));
	ctx->self = e;
	int rc = mg_service_add(ctx, "echo.say", say, NULL);
	rc = rc ? rc : mg_service_add(ctx, "echo.self", self_call, NULL);
	rc = rc ? rc : mg_subscribe(ctx, "echo.", on_event, NULL);
	rc = rc ? rc : mg_subscribe(ctx, "state.echoes", on_event, NULL);
	json_t *cfg = mg_config(ctx);
	int interval = (int)json_integer_value(json_object_get(cfg, "interval"));
	if (!rc && mg_timer_add(ctx, (unsigned)interval, 1, tick, NULL) < 0)
		rc = -EINVAL;
	rc = rc ? rc : mg_fd_watch(ctx, 7, MG_FD_READ, on_fd, NULL);
	return rc;
}

static int echo_start(mg_ctx *ctx)
{
	(void)ctx;
	start_order[nstarted++] = 'e';
	return 0;
}

static void echo_stop(mg_ctx *ctx)
{
	free(ctx->self);
	ctx->self = NULL;
}

static const struct mg_setting echo_settings[] = {
    {"interval", MG_SETTING_INT, "1000", "ms between ticks", NULL, 0},
    {"greeting", MG_SETTING_STRING, "\"hello\"", "a string", NULL, 0},
    {0},
};

static const char *const echo_owns[] = {"echoes", NULL};
static const char *const echo_depends[] = {"base", NULL};

static const struct mg_plugin echo_plugin =
    DESCRIPTOR(.name = "echo", .owns = echo_owns, .depends = echo_depends,
               .settings = echo_settings, .init = echo_init, .start = echo_start,
               .stop = echo_stop);

/* ---- plugin "base": what echo depends on ---- */

static int base_start(mg_ctx *ctx)
{
	(void)ctx;
	start_order[nstarted++] = 'b';
	return 0;
}

static const char *const base_provides[] = {"base", NULL};
static const struct mg_plugin base_plugin =
    DESCRIPTOR(.name = "basic", .provides = base_provides, .start = base_start);

static struct mg_mock *new_started(void)
{
	char err[512];
	struct mg_mock *m = mg_mock_new(NULL, err, sizeof(err));
	assert_non_null(m);
	/* added in the wrong order on purpose: the mock sorts */
	assert_int_equal(mg_mock_add(m, &echo_plugin, NULL, err, sizeof(err)), 0);
	assert_int_equal(mg_mock_add(m, &base_plugin, NULL, err, sizeof(err)), 0);
	nstarted = 0;
	assert_int_equal(mg_mock_start(m, err, sizeof(err)), 0);
	return m;
}

static struct echo *echo_of(struct mg_mock *m)
{
	return mg_mock_ctx(m, "echo")->self;
}

static void test_request_routing(void **unused)
{
	(void)unused;
	struct mg_mock *m = new_started();
	json_t *req = json_pack("{s:s}", "text", "hi"), *reply;

	assert_int_equal(mg_mock_request(m, "echo.say", req, &reply), 0);
	assert_string_equal(json_string_value(json_object_get(reply, "said")), "hi");
	assert_int_equal(json_integer_value(json_object_get(reply, "rc")), 0);
	json_decref(reply);

	assert_int_equal(mg_mock_request(m, "nobody.home", req, &reply), -ENOENT);
	assert_string_equal(mg_reply_error(reply), "unknown_service");
	json_decref(reply);

	assert_int_equal(mg_mock_request(m, "bad name!", req, &reply), -EINVAL);
	json_decref(reply);

	assert_int_equal(mg_mock_request(m, "echo.say", NULL, &reply), -EREMOTEIO);
	assert_string_equal(mg_reply_error(reply), "bad_request");
	json_decref(reply);

	json_t *null_req = json_pack("{s:s}", "text", "null");
	assert_int_equal(mg_mock_request(m, "echo.say", null_req, &reply), -EREMOTEIO);
	assert_string_equal(mg_reply_error(reply), "internal");
	json_decref(reply);
	json_decref(null_req);

	assert_int_equal(mg_mock_request_text(m, "echo.say", "[1,2", 4, &reply), -EREMOTEIO);
	assert_string_equal(mg_reply_error(reply), "bad_request");
	json_decref(reply);
	assert_int_equal(mg_mock_request_text(m, "echo.say", "[1]", 3, &reply), -EREMOTEIO);
	assert_string_equal(mg_reply_error(reply), "bad_request");
	json_decref(reply);

	/* a plugin asking itself would block its own thread in the core */
	assert_int_equal(mg_mock_request(m, "echo.self", NULL, &reply), 0);
	assert_int_equal(json_integer_value(json_object_get(reply, "rc")), -ETIMEDOUT);
	json_decref(reply);

	json_decref(req);
	mg_mock_free(m);
}

static void test_events_after_handler(void **unused)
{
	(void)unused;
	struct mg_mock *m = new_started();
	json_t *req = json_pack("{s:s}", "text", "k1"), *reply;

	mg_mock_events_clear(m);
	assert_int_equal(mg_mock_request(m, "echo.say", req, &reply), 0);
	json_decref(reply);
	struct echo *e = echo_of(m);
	assert_int_equal(e->events_seen_in_handler, 0);
	assert_int_equal(e->events, 2); /* echo.said and state.echoes */
	assert_int_equal(mg_mock_event_count(m, "echo.said"), 1);
	assert_int_equal(mg_mock_event_count(m, "state.echoes"), 1);

	json_t *events = mg_mock_events(m);
	json_t *state_event = NULL;
	size_t i;
	json_t *ev;
	json_array_foreach(events, i,
	                   ev) if (!strcmp(json_string_value(json_object_get(ev, "topic")),
	                                   "state.echoes")) state_event = ev;
	assert_non_null(state_event);
	json_t *payload = json_object_get(state_event, "payload");
	assert_string_equal(json_string_value(json_object_get(payload, "db")), "echoes");
	assert_string_equal(json_string_value(json_object_get(payload, "key")), "k1");
	assert_string_equal(json_string_value(json_object_get(payload, "op")), "put");

	json_t *value;
	assert_int_equal(mg_mock_state_get(m, "echoes", "k1", &value), 0);
	assert_string_equal(json_string_value(json_object_get(value, "text")), "k1");
	json_decref(value);
	assert_int_equal(mg_mock_state_count(m, "echoes", NULL), 1);

	/* the test publishes too; a bad topic is refused */
	assert_int_equal(mg_mock_publish(m, "echo.other", NULL), 0);
	assert_string_equal(e->last_topic, "echo.other");
	assert_int_equal(mg_mock_publish(m, "bad topic", NULL), -EINVAL);

	mg_mock_events_clear(m);
	assert_int_equal(mg_mock_event_count(m, NULL), 0);
	json_decref(req);
	mg_mock_free(m);
}

static void test_ownership(void **unused)
{
	(void)unused;
	struct mg_mock *m = new_started();
	json_t *v = json_pack("{s:i}", "x", 1);
	/* basic does not own echoes: the state layer refuses */
	assert_int_equal(mg_mock_state_put(m, "basic", "echoes", "k", v), -EPERM);
	assert_int_equal(mg_mock_state_put(m, "echo", "echoes", "k", v), 0);
	assert_int_equal(mg_mock_state_count(m, "echoes", NULL), 1);

	/* a second write transaction on one thread is refused, not a deadlock */
	mg_ctx *ctx = mg_mock_ctx(m, "echo");
	mg_txn *t1, *t2;
	assert_int_equal(mg_txn_begin(ctx, 0, &t1), 0);
	assert_int_equal(mg_txn_begin(ctx, 0, &t2), -EDEADLK);
	assert_int_equal(mg_txn_begin(ctx, MG_TXN_READ, &t2), 0);
	mg_txn_abort(ctx, t2);
	mg_txn_abort(ctx, t1);
	assert_int_equal(mg_txn_begin(ctx, 0, &t1), 0);
	mg_txn_abort(ctx, t1);
	json_decref(v);
	mg_mock_free(m);
}

static void test_clock_and_fds(void **unused)
{
	(void)unused;
	struct mg_mock *m = new_started();
	uint64_t t0 = mg_mock_now(m);
	struct echo *e = echo_of(m);

	mg_mock_advance(m, 999);
	assert_int_equal(e->timer_fired, 0);
	mg_mock_advance(m, 2501);
	assert_int_equal(e->timer_fired, 3);
	assert_true(mg_mock_now(m) == t0 + 3500);

	assert_int_equal(mg_mock_fd_events(m, 7), MG_FD_READ);
	assert_int_equal(mg_mock_fd_events(m, 8), -ENOENT);
	assert_int_equal(mg_mock_fire_fd(m, 7, MG_FD_READ), 0);
	assert_int_equal(e->fd_fired, 7 * 10 + MG_FD_READ);
	assert_int_equal(mg_mock_fire_fd(m, 8, MG_FD_READ), -ENOENT);

	/* a transaction left open is reported and aborted at stop */
	mg_txn *left_open;
	assert_int_equal(mg_txn_begin(mg_mock_ctx(m, "echo"), MG_TXN_READ, &left_open), 0);
	unsigned errors = mg_mock_log_count(m, MG_LOG_ERROR);
	mg_mock_stop(m);
	assert_int_equal(mg_mock_log_count(m, MG_LOG_ERROR), errors + 1);
	mg_mock_free(m);
}

static void test_order_and_stop(void **unused)
{
	(void)unused;
	char err[512];
	struct mg_mock *m = new_started();
	assert_int_equal(nstarted, 2);
	assert_int_equal(start_order[0], 'b');
	assert_int_equal(start_order[1], 'e');

	json_t *regs = mg_mock_registrations(m, "echo");
	assert_string_equal(json_string_value(json_object_get(regs, "status")), "running");
	assert_int_equal(json_array_size(json_object_get(regs, "services")), 2);
	assert_int_equal(json_integer_value(json_object_get(regs, "timers")), 1);
	json_decref(regs);

	mg_mock_stop(m);
	regs = mg_mock_registrations(m, "echo");
	assert_string_equal(json_string_value(json_object_get(regs, "status")), "stopped");
	assert_int_equal(json_array_size(json_object_get(regs, "services")), 0);
	assert_int_equal(json_array_size(json_object_get(regs, "subscriptions")), 0);
	assert_int_equal(json_integer_value(json_object_get(regs, "timers")), 0);
	assert_int_equal(json_array_size(json_object_get(regs, "fds")), 0);
	json_decref(regs);
	json_t *reply;
	assert_int_equal(mg_mock_request(m, "echo.say", NULL, &reply), -ENOENT);
	json_decref(reply);

	/* started again, it registers again */
	assert_int_equal(mg_mock_start(m, err, sizeof(err)), 0);
	json_t *req = json_pack("{s:s}", "text", "again");
	assert_int_equal(mg_mock_request(m, "echo.say", req, &reply), 0);
	json_decref(reply);
	json_decref(req);
	mg_mock_free(m);
}

static void test_refusals(void **unused)
{
	(void)unused;
	char err[512];
	struct mg_mock *m = mg_mock_new(NULL, err, sizeof(err));
	assert_non_null(m);

	json_t *bad = json_pack("{s:i}", "nope", 1);
	assert_int_equal(mg_mock_add(m, &echo_plugin, bad, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown setting 'nope'"));
	json_decref(bad);
	bad = json_pack("{s:s}", "interval", "fast");
	assert_int_equal(mg_mock_add(m, &echo_plugin, bad, err, sizeof(err)), -EINVAL);
	json_decref(bad);

	struct mg_plugin wrong = echo_plugin;
	wrong.abi_major = MG_ABI_MAJOR + 1;
	assert_int_equal(mg_mock_add(m, &wrong, NULL, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "ABI"));

	json_t *cfg = json_pack("{s:i}", "interval", 50);
	assert_int_equal(mg_mock_add(m, &echo_plugin, cfg, err, sizeof(err)), 0);
	json_decref(cfg);
	assert_int_equal(mg_mock_add(m, &echo_plugin, NULL, err, sizeof(err)), -EEXIST);
	/* echo depends on "base", which nobody provides yet */
	assert_int_equal(mg_mock_start(m, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "depends on 'base'"));
	assert_int_equal(mg_mock_add_stub(m, "base", NULL), 0);
	assert_int_equal(mg_mock_start(m, err, sizeof(err)), 0);

	json_t *config = mg_config(mg_mock_ctx(m, "echo"));
	assert_int_equal(json_integer_value(json_object_get(config, "interval")), 50);
	assert_string_equal(json_string_value(json_object_get(config, "greeting")), "hello");
	mg_mock_advance(m, 120);
	assert_int_equal(echo_of(m)->timer_fired, 2);
	mg_mock_free(m);
}

static void test_load_so_twice(void **unused)
{
	(void)unused;
	char err[512];
	struct mg_mock *a = mg_mock_new(NULL, err, sizeof(err));
	struct mg_mock *b = mg_mock_new(NULL, err, sizeof(err));
	assert_int_equal(mg_mock_load(a, MOCK_TEST_PLUGIN, NULL, err, sizeof(err)), 0);
	assert_int_equal(mg_mock_load(b, MOCK_TEST_PLUGIN, NULL, err, sizeof(err)), 0);
	assert_int_equal(mg_mock_start(a, err, sizeof(err)), 0);
	assert_int_equal(mg_mock_start(b, err, sizeof(err)), 0);
	json_t *reply;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(mg_mock_request(a, "counter.next", NULL, &reply), 0);
		json_decref(reply);
	}
	assert_int_equal(mg_mock_request(b, "counter.next", NULL, &reply), 0);
	assert_int_equal(json_integer_value(json_object_get(reply, "calls")), 1);
	json_decref(reply);
	assert_int_equal(mg_mock_load(a, "/nonexistent/meshgate-x.so", NULL, err, sizeof(err)),
	                 -ENOENT);
	mg_mock_free(a);
	mg_mock_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_routing), cmocka_unit_test(test_events_after_handler),
	    cmocka_unit_test(test_ownership),       cmocka_unit_test(test_clock_and_fds),
	    cmocka_unit_test(test_order_and_stop),  cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_load_so_twice),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
