/* The core, tested through the real meshgated: plugin refusals, lifecycle
 * order, failed init, the bus's errors and load, durability across kill -9,
 * malformed messages on the ipc socket, config errors. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include <cmocka.h>

#include "bus_proto.h"
#include "harness.h"

static const char *mg_reply_error_code(json_t *reply)
{
	return json_string_value(json_object_get(reply, "error"));
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void assert_contains(const char *haystack, const char *needle)
{
	if (!strstr(haystack, needle))
		fail_msg("expected to find \"%s\" in:\n%s", needle, haystack);
}

/* The status entry of one plugin. */
static json_t *plugin_status(struct daemon *d, const char *name)
{
	json_t *reply, *p, *found = NULL;
	size_t i;
	assert_int_equal(daemon_call(d, "core.status", NULL, 2000, &reply), 0);
	json_array_foreach(json_object_get(reply, "plugins"), i, p)
	{
		if (!found && !strcmp(json_string_value(json_object_get(p, "name")), name))
			found = json_incref(p);
	}
	json_decref(reply);
	assert_non_null(found);
	return found;
}

static void assert_state(struct daemon *d, const char *name, const char *state)
{
	json_t *p = plugin_status(d, name);
	assert_string_equal(json_string_value(json_object_get(p, "state")), state);
	json_decref(p);
}

/* ---- refusals ---- */

static void test_refusals_are_named(void **state)
{
	struct daemon *d = *state;
	char out[16384];
	daemon_setup(d, "plugins = [\"probe\", \"badabi\", \"badsig\", \"nosymbol\", \"orphan\","
	                " \"cycle_x\", \"cycle_y\", \"dup1\", \"dup2\", \"absent\"];\n"
	                "plugin_errors = \"continue\";\n");
	assert_int_equal(daemon_check(d, out, sizeof(out)), 1);
	assert_contains(out,
	                "meshgate-badabi.so: built for plugin ABI 2.0, this meshgated speaks 1.0");
	assert_contains(out,
	                "meshgate-badsig.so: built with signature \"mg1;zmq3;lmdb0.8;jansson1\"");
	assert_contains(out, "meshgate-nosymbol.so: missing symbol mg_plugin_descriptor");
	assert_contains(out,
	                "meshgate-orphan.so: depends on 'nonexistent', which no loaded plugin");
	assert_contains(out, "dependency cycle: cycle_x -> cycle_y -> cycle_x");
	assert_contains(out, "meshgate-dup2.so: duplicate plugin name 'dup' (also in");
	assert_contains(out, "meshgate-absent.so: cannot load:");

	/* "continue": the others start without the refused ones */
	assert_int_equal(daemon_start(d), 0);
	assert_state(d, "probe", "running");
	assert_state(d, "dup", "running");
	assert_state(d, "badabi", "refused");
	assert_state(d, "cycle_x", "refused");
	json_t *reply;
	assert_int_equal(daemon_call(d, "probe.echo", "{\"a\":1}", 2000, &reply), 0);
	assert_int_equal(json_integer_value(json_object_get(reply, "a")), 1);
	json_decref(reply);
}

static void test_refusal_stops_when_configured(void **state)
{
	struct daemon *d = *state;
	daemon_setup(d, "plugins = [\"probe\", \"badabi\"];\nplugin_errors = \"stop\";\n");
	d->pid = 0;
	assert_int_not_equal(daemon_start(d), 0); /* it exits instead of serving */
	char *log = slurp(d->log);
	assert_contains(log, "refused plugins and plugin_errors = \"stop\"");
	free(log);
}

/* ---- lifecycle ---- */

static void test_start_in_dependency_order_stop_in_reverse(void **state)
{
	struct daemon *d = *state;
	char extra[2048], trace[300];
	snprintf(trace, sizeof(trace), "/tmp/mgtrace.%d", getpid());
	unlink(trace);
	snprintf(extra, sizeof(extra),
	         "plugins = [\"order_c\", \"order_a\", \"order_b\"];\n"
	         "order_a = { trace_file = \"%s\"; };\norder_b = { trace_file = \"%s\"; };\n"
	         "order_c = { trace_file = \"%s\"; };\n",
	         trace, trace, trace);
	daemon_setup(d, extra);
	assert_int_equal(daemon_start(d), 0);
	daemon_kill(d, SIGTERM);
	char *got = slurp(trace);
	assert_string_equal(got, "init order_a\ninit order_b\ninit order_c\n"
	                         "start order_a\nstart order_b\nstart order_c\n"
	                         "stop order_c\nstop order_b\nstop order_a\n");
	free(got);
	unlink(trace);
}

static void test_failed_init_leaves_no_trace(void **state)
{
	struct daemon *d = *state;
	json_t *reply;
	daemon_setup(d, "plugins = [\"probe\", \"order_a\", \"order_b\"];\n"
	                "plugin_errors = \"continue\";\n"
	                "probe = { fail_init = true; };\norder_a = { fail_init = true; };\n");
	assert_int_equal(daemon_start(d), 0);
	json_t *p = plugin_status(d, "probe");
	assert_string_equal(json_string_value(json_object_get(p, "state")), "failed");
	assert_contains(json_string_value(json_object_get(p, "error")), "init failed");
	json_decref(p);
	/* what it registered before failing is gone */
	assert_int_equal(daemon_call(d, "probe.echo", "{}", 2000, &reply), -ENOENT);
	assert_string_equal(mg_reply_error_code(reply), "unknown_service");
	json_decref(reply);
	/* its dependent does not start either, and says why */
	p = plugin_status(d, "order_b");
	assert_string_equal(json_string_value(json_object_get(p, "state")), "failed");
	assert_contains(json_string_value(json_object_get(p, "error")),
	                "dependency 'order_a' is not running");
	json_decref(p);
}

/* ---- start-up and readiness ---- */

/* core.status once it says ready (or fails the test after 10 s). */
static json_t *wait_ready(struct daemon *d)
{
	for (int i = 0; i < 200; i++) {
		json_t *reply;
		assert_int_equal(daemon_call(d, "core.status", NULL, 2000, &reply), 0);
		if (json_is_true(json_object_get(reply, "ready")))
			return reply;
		json_decref(reply);
		usleep(50000);
	}
	fail_msg("meshgated not ready after 10 s");
	return NULL;
}

/* A time of one plugin in core.status (ms since meshgated began). */
static long long plugin_ms(json_t *status, const char *name, const char *which)
{
	json_t *p;
	size_t i;
	json_array_foreach(json_object_get(status, "plugins"), i, p)
	{
		if (!strcmp(json_string_value(json_object_get(p, "name")), name)) {
			json_t *v = json_object_get(p, which);
			if (!json_is_integer(v))
				fail_msg("%s has no %s", name, which);
			return json_integer_value(v);
		}
	}
	fail_msg("no plugin %s in core.status", name);
	return 0;
}

/* probe and order_a depend on nothing: they start together; order_b
 * waits for order_a's start to return. Until every start has returned the
 * daemon is not ready, and core.status says which plugin is starting. */
static void test_independent_plugins_start_together(void **state)
{
	struct daemon *d = *state;
	daemon_setup(d, "plugins = [\"probe\", \"order_a\", \"order_b\"];\n"
	                "probe = { start_sleep_ms = 1000; };\n"
	                "order_a = { start_sleep_ms = 1000; };\n");
	assert_int_equal(daemon_start_serving(d), 0);
	/* inits are quick: the starts soon run, for 1000 ms */
	json_t *p = NULL;
	for (int i = 0; i < 40; i++) {
		json_decref(p);
		p = plugin_status(d, "probe");
		if (!strcmp(json_string_value(json_object_get(p, "state")), "starting"))
			break;
		usleep(20000);
	}
	assert_string_equal(json_string_value(json_object_get(p, "state")), "starting");
	assert_true(json_is_false(json_object_get(p, "ready")));
	json_decref(p);
	json_t *reply;
	assert_int_equal(daemon_call(d, "core.status", NULL, 2000, &reply), 0);
	assert_true(json_is_false(json_object_get(reply, "ready")));
	assert_null(json_object_get(reply, "ready_ms"));
	json_decref(reply);

	json_t *status = wait_ready(d);
	long long a = plugin_ms(status, "order_a", "start_ms");
	long long probe = plugin_ms(status, "probe", "start_ms");
	/* one after the other they would start 1000 ms apart */
	assert_true(llabs(a - probe) < 500);
	assert_true(plugin_ms(status, "order_b", "start_ms") >=
	            plugin_ms(status, "order_a", "ready_ms"));
	assert_true(plugin_ms(status, "order_a", "ready_ms") - a >= 1000);
	assert_true(json_integer_value(json_object_get(status, "ready_ms")) >=
	            plugin_ms(status, "order_b", "ready_ms"));
	json_decref(status);
	assert_state(d, "order_b", "running");
}

/* MESHGATED_SERIAL_START=1 (bench/startup.sh's baseline) starts one
 * plugin at a time. */
static void test_serial_start_for_the_benchmark(void **state)
{
	struct daemon *d = *state;
	daemon_setup(d, "plugins = [\"probe\", \"order_a\"];\n"
	                "probe = { start_sleep_ms = 500; };\n"
	                "order_a = { start_sleep_ms = 500; };\n");
	setenv("MESHGATED_SERIAL_START", "1", 1);
	int rc = daemon_start(d);
	unsetenv("MESHGATED_SERIAL_START");
	assert_int_equal(rc, 0);
	json_t *status = wait_ready(d);
	assert_true(llabs(plugin_ms(status, "order_a", "start_ms") -
	                  plugin_ms(status, "probe", "start_ms")) >= 500);
	json_decref(status);
}

/* A plugin that calls mg_ready as its start begins is ready from then
 * (its time says so); the daemon still waits for its start to return. */
static void test_mg_ready_sets_the_time(void **state)
{
	struct daemon *d = *state;
	daemon_setup(d, "plugins = [\"probe\", \"order_a\"];\n"
	                "probe = { start_sleep_ms = 800; ready_first = true; };\n");
	assert_int_equal(daemon_start(d), 0);
	json_t *status = wait_ready(d);
	long long took =
	    plugin_ms(status, "probe", "ready_ms") - plugin_ms(status, "probe", "start_ms");
	assert_true(took < 400);
	assert_true(json_integer_value(json_object_get(status, "ready_ms")) -
	                plugin_ms(status, "probe", "start_ms") >=
	            800);
	json_decref(status);
}

/* The pattern of docs/plugin-guide.md: order_a's start returns at once and
 * its reconcile (1000 ms) runs on its loop right after. order_b, which
 * depends on it, starts as soon as that start returns, not after the
 * reconcile; the daemon is not ready until the reconcile says mg_ready. */
static void test_dependent_starts_before_a_posted_reconcile(void **state)
{
	struct daemon *d = *state;
	daemon_setup(d, "plugins = [\"order_a\", \"order_b\"];\n"
	                "order_a = { reconcile_after_start_ms = 1000; };\n");
	assert_int_equal(daemon_start_serving(d), 0);
	json_t *p = NULL;
	for (int i = 0; i < 40; i++) {
		json_decref(p);
		p = plugin_status(d, "order_b");
		if (!strcmp(json_string_value(json_object_get(p, "state")), "running"))
			break;
		usleep(20000);
	}
	assert_string_equal(json_string_value(json_object_get(p, "state")), "running");
	json_decref(p);
	p = plugin_status(d, "order_a");
	assert_string_equal(json_string_value(json_object_get(p, "state")), "running");
	assert_true(json_is_false(json_object_get(p, "ready")));
	json_decref(p);
	json_t *reply;
	assert_int_equal(daemon_call(d, "core.status", NULL, 2000, &reply), 0);
	assert_true(json_is_false(json_object_get(reply, "ready")));
	json_decref(reply);

	json_t *status = wait_ready(d);
	long long a_start = plugin_ms(status, "order_a", "start_ms");
	long long a_ready = plugin_ms(status, "order_a", "ready_ms");
	assert_true(a_ready - a_start >= 1000);
	assert_true(plugin_ms(status, "order_b", "start_ms") - a_start < 500);
	assert_true(json_integer_value(json_object_get(status, "ready_ms")) >= a_ready);
	json_decref(status);
}

/* With plugin_errors = "continue", a failed start fails its dependents
 * (they never run) and leaves the others: the daemon is ready without
 * them, and core.status says why. */
static void test_failed_start_fails_its_dependents(void **state)
{
	struct daemon *d = *state;
	daemon_setup(d, "plugins = [\"probe\", \"order_a\", \"order_b\"];\n"
	                "plugin_errors = \"continue\";\n"
	                "order_a = { fail_start = true; };\n");
	assert_int_equal(daemon_start(d), 0);
	json_decref(wait_ready(d));
	json_t *p = plugin_status(d, "order_a");
	assert_string_equal(json_string_value(json_object_get(p, "state")), "failed");
	assert_contains(json_string_value(json_object_get(p, "error")), "start failed");
	json_decref(p);
	p = plugin_status(d, "order_b");
	assert_string_equal(json_string_value(json_object_get(p, "state")), "failed");
	assert_contains(json_string_value(json_object_get(p, "error")),
	                "dependency 'order_a' is not running");
	json_decref(p);
	assert_state(d, "probe", "running");
}

/* ---- the bus ---- */

static void test_unknown_service_and_timeout(void **state)
{
	struct daemon *d = *state;
	json_t *reply;
	daemon_setup(d, "plugins = [\"probe\"];\n");
	assert_int_equal(daemon_start(d), 0);
	assert_int_equal(daemon_call(d, "nobody.home", "{}", 2000, &reply), -ENOENT);
	assert_contains(json_string_value(json_object_get(reply, "message")), "nobody.home");
	json_decref(reply);
	/* the core's own services check their requests as plugins do */
	assert_int_equal(daemon_call(d, "core.status", "{\"verbose\": true}", 2000, &reply),
	                 -EREMOTEIO);
	assert_string_equal(mg_reply_error_code(reply), "bad_request");
	assert_string_equal(json_string_value(json_object_get(reply, "field")), "verbose");
	json_decref(reply);
	assert_int_equal(daemon_call(d, "core.state.backup", "{\"path\": 7}", 2000, &reply),
	                 -EREMOTEIO);
	assert_string_equal(json_string_value(json_object_get(reply, "field")), "path");
	json_decref(reply);

	uint64_t t0 = now_ms();
	assert_int_equal(daemon_call(d, "probe.sleep", "{\"ms\": 1500}", 300, &reply), -ETIMEDOUT);
	uint64_t took = now_ms() - t0;
	assert_string_equal(mg_reply_error_code(reply), "timeout");
	json_decref(reply);
	assert_true(took >= 300 &&
	            took < 1500); /* the deadline, plus scheduling on a busy machine */
	/* the late reply is dropped; the next request gets its own answer */
	assert_int_equal(daemon_call(d, "probe.echo", "{\"n\": 7}", 3000, &reply), 0);
	assert_int_equal(json_integer_value(json_object_get(reply, "n")), 7);
	json_decref(reply);
}

#define THREADS    8
#define PER_THREAD 125

struct load {
	struct daemon *d;
	int answered;
};

/* Sends all its requests at once on a raw DEALER, then collects replies:
 * 1,000 requests in flight across the threads. */
static void *load_thread(void *arg)
{
	struct load *l = arg;
	char endpoint[400];
	void *sock = zmq_socket(l->d->zctx, ZMQ_DEALER);
	int zero = 0;
	zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
	snprintf(endpoint, sizeof(endpoint), "ipc://%s", l->d->socket);
	zmq_connect(sock, endpoint);
	for (int i = 0; i < PER_THREAD; i++) {
		char id[16], payload[32], deadline[24];
		snprintf(id, sizeof(id), "%d", i);
		snprintf(payload, sizeof(payload), "{\"i\":%d}", i);
		struct mg_bus_msg msg = {.verb = MG_BUS_REQ,
		                         .id = {id, strlen(id)},
		                         .name = {"probe.echo", 10},
		                         .payload = {payload, strlen(payload)},
		                         .deadline_ms = mg_bus_now_ms() + 20000};
		struct mg_bus_slice frames[MG_BUS_MAX_FRAMES];
		size_t n = mg_bus_encode(MG_BUS_TO_BROKER, &msg, frames, deadline);
		for (size_t f = 0; f < n; f++)
			zmq_send(sock, frames[f].data, frames[f].len, f + 1 < n ? ZMQ_SNDMORE : 0);
	}
	int seen[PER_THREAD] = {0};
	zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
	while (l->answered < PER_THREAD && zmq_poll(&item, 1, 20000) > 0) {
		char frames[4][256];
		int more = 1, nf = 0;
		while (more) {
			int len = zmq_recv(sock, frames[nf < 4 ? nf : 3], 255, 0);
			frames[nf < 4 ? nf : 3][len > 0 ? (len < 255 ? len : 255) : 0] = '\0';
			nf++;
			size_t sz = sizeof(more);
			zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
		}
		/* [MG1][REP][id][payload]: the payload echoes the same i */
		int i = atoi(frames[2]);
		json_t *v = json_loads(frames[3], 0, NULL);
		if (nf == 4 && i >= 0 && i < PER_THREAD && !seen[i] &&
		    json_integer_value(json_object_get(v, "i")) == i) {
			seen[i] = 1;
			l->answered++;
		}
		json_decref(v);
	}
	zmq_close(sock);
	return NULL;
}

static void test_thousand_concurrent_requests(void **state)
{
	struct daemon *d = *state;
	pthread_t threads[THREADS];
	struct load loads[THREADS];
	daemon_setup(d, "plugins = [\"probe\"];\n");
	assert_int_equal(daemon_start(d), 0);
	for (int t = 0; t < THREADS; t++) {
		loads[t] = (struct load){d, 0};
		pthread_create(&threads[t], NULL, load_thread, &loads[t]);
	}
	int total = 0;
	for (int t = 0; t < THREADS; t++) {
		pthread_join(threads[t], NULL);
		total += loads[t].answered;
	}
	assert_int_equal(total, THREADS * PER_THREAD);
}

static void send_frames(void *sock, const char *const *frames, const size_t *lens, int n)
{
	for (int i = 0; i < n; i++)
		zmq_send(sock, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0);
}

/* Returns the error code of the reply the socket gets within 2 s, or "". */
static const char *await_error(void *sock, char *buf, size_t len)
{
	zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
	buf[0] = '\0';
	if (zmq_poll(&item, 1, 2000) <= 0)
		return buf;
	char frame[4096];
	int more = 1, n = 0;
	while (more) {
		int got = zmq_recv(sock, frame, sizeof(frame) - 1, 0);
		frame[got > 0 ? (got < (int)sizeof(frame) ? got : (int)sizeof(frame) - 1) : 0] =
		    '\0';
		if (n++ == 3) {
			json_t *v = json_loads(frame, 0, NULL);
			snprintf(buf, len, "%s",
			         mg_reply_error_code(v) ? mg_reply_error_code(v) : "");
			json_decref(v);
		}
		size_t sz = sizeof(more);
		zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
	}
	return buf;
}

static void test_malformed_messages_keep_daemon_serving(void **state)
{
	struct daemon *d = *state;
	char endpoint[400], code[64], deadline[24];
	json_t *reply;
	daemon_setup(d, "plugins = [\"probe\"];\n");
	assert_int_equal(daemon_start(d), 0);
	snprintf(endpoint, sizeof(endpoint), "ipc://%s", d->socket);
	snprintf(deadline, sizeof(deadline), "%llu", (unsigned long long)(mg_bus_now_ms() + 5000));
	void *sock = zmq_socket(d->zctx, ZMQ_DEALER);
	int zero = 0;
	zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_connect(sock, endpoint);

	/* too few frames, unknown verb: dropped silently */
	const char *f1[] = {"MG1"};
	size_t l1[] = {3};
	send_frames(sock, f1, l1, 1);
	const char *f3[] = {"MG1", "SHOUT", "x"};
	size_t l3[] = {3, 5, 1};
	send_frames(sock, f3, l3, 3);
	/* an unknown version on something shaped like a request: told why */
	const char *f2[] = {"MG9", "REQ", "1", "probe.echo", deadline, "{}"};
	size_t l2[] = {3, 3, 1, 10, strlen(deadline), 2};
	send_frames(sock, f2, l2, 6);
	assert_string_equal(await_error(sock, code, sizeof(code)), "bad_message");
	/* a request with a bad deadline: answered with the reason */
	const char *f4[] = {"MG1", "REQ", "4", "probe.echo", "soon", "{}"};
	size_t l4[] = {3, 3, 1, 10, 4, 2};
	send_frames(sock, f4, l4, 6);
	assert_string_equal(await_error(sock, code, sizeof(code)), "bad_message");
	/* bad JSON and a JSON array: the plugin answers bad_request */
	const char *f5[] = {"MG1", "REQ", "5", "probe.echo", deadline, "{\"a\":"};
	size_t l5[] = {3, 3, 1, 10, strlen(deadline), 5};
	send_frames(sock, f5, l5, 6);
	assert_string_equal(await_error(sock, code, sizeof(code)), "bad_request");
	const char *f6[] = {"MG1", "REQ", "6", "probe.echo", deadline, "[1,2]"};
	size_t l6[] = {3, 3, 1, 10, strlen(deadline), 5};
	send_frames(sock, f6, l6, 6);
	assert_string_equal(await_error(sock, code, sizeof(code)), "bad_request");
	/* a bad service name, too many frames */
	const char *f7[] = {"MG1", "REQ", "7", "probe echo!", deadline, "{}"};
	size_t l7[] = {3, 3, 1, 11, strlen(deadline), 2};
	send_frames(sock, f7, l7, 6);
	assert_string_equal(await_error(sock, code, sizeof(code)), "bad_message");
	const char *f8[] = {"MG1", "REQ", "8", "probe.echo", deadline, "{}", "x", "y", "z"};
	size_t l8[] = {3, 3, 1, 10, strlen(deadline), 2, 1, 1, 1};
	send_frames(sock, f8, l8, 9);
	assert_string_equal(await_error(sock, code, sizeof(code)), "bad_message");
	/* a huge payload (8 MiB): its sender is cut off, nobody else */
	size_t huge = 8u << 20;
	char *big = malloc(huge);
	memset(big, ' ', huge);
	const char *f9[] = {"MG1", "REQ", "9", "probe.echo", deadline, big};
	size_t l9[] = {3, 3, 1, 10, strlen(deadline), huge};
	send_frames(sock, f9, l9, 6);
	free(big);
	zmq_close(sock);

	assert_int_equal(daemon_call(d, "probe.echo", "{\"still\": true}", 3000, &reply), 0);
	assert_true(json_is_true(json_object_get(reply, "still")));
	json_decref(reply);
}

/* ---- state survives kill -9 ---- */

static void test_acknowledged_write_survives_kill9(void **state)
{
	struct daemon *d = *state;
	json_t *reply;
	char req[128];
	daemon_setup(d, "plugins = [\"probe\"];\n");
	for (int round = 0; round < 5; round++) {
		assert_int_equal(daemon_start(d), 0);
		snprintf(req, sizeof(req), "{\"key\": \"k%d\", \"value\": {\"round\": %d}}", round,
		         round);
		assert_int_equal(daemon_call(d, "probe.put", req, 3000, &reply), 0);
		json_decref(reply);
		daemon_kill(d, SIGKILL); /* right after the ack */
	}
	assert_int_equal(daemon_start(d), 0);
	for (int round = 0; round < 5; round++) {
		snprintf(req, sizeof(req), "{\"key\": \"k%d\"}", round);
		assert_int_equal(daemon_call(d, "probe.get", req, 3000, &reply), 0);
		assert_int_equal(json_integer_value(json_object_get(reply, "round")), round);
		assert_int_equal(json_integer_value(json_object_get(reply, "v")), 1);
		json_decref(reply);
	}
}

/* ---- config errors name file and line ---- */

static void check_config_error(const char *extra, const char *expected)
{
	struct daemon d;
	char out[8192], want[1024];
	daemon_setup(&d, extra);
	int status = daemon_check(&d, out, sizeof(out));
	snprintf(want, sizeof(want), "%s:%s", d.config, expected);
	daemon_teardown(&d); /* --check-config leaves no process behind */
	assert_int_equal(status, 1);
	assert_contains(out, want);
}

static void test_config_errors_name_file_and_line(void **unused)
{
	(void)unused;
	/* the harness writes 4 lines before `extra` */
	check_config_error("plugins = [\"probe\"];\nprobe = {\n  count = \"three\";\n};\n",
	                   "7: setting 'probe.count' must be an integer");
	check_config_error("plugins = [\"probe\"];\nprobe = { colour = 1; };\n",
	                   "6: unknown setting 'probe.colour'");
	check_config_error("plugins = [\"probe\"];\nnosuch = { a = 1; };\n",
	                   "6: unknown setting 'nosuch'");
	check_config_error("plugins = [\"probe\"];\nprobe = { count = ; };\n", "6: syntax error");
	check_config_error("plugins = \"probe\";\n", "5: setting 'plugins' must be a list");
	/* a moved setting (core/config.c moved_settings) may not contradict its new place */
	check_config_error("wireguard = { seal_key_file = \"/a\"; };\n"
	                   "keystore = { seal_key_file = \"/b\"; };\n",
	                   " wireguard.seal_key_file (\"/a\") moved to keystore.seal_key_file, "
	                   "which says \"/b\"");
}

static void test_zero_config_and_version(void **unused)
{
	(void)unused;
	assert_int_equal(
	    system(MESHGATED " --version | grep -q 'meshgated " MG_VERSION_FOR_TEST "'"), 0);
	/* without a config file every setting has its documented default */
	assert_int_equal(system(MESHGATED " --config-doc | grep -q '/var/lib/meshgate'"), 0);
}

static void test_reload_keeps_running_on_bad_config(void **state)
{
	struct daemon *d = *state;
	json_t *reply;
	daemon_setup(d, "plugins = [\"probe\"];\n");
	assert_int_equal(daemon_start(d), 0);
	FILE *f = fopen(d->config, "a");
	fprintf(f, "probe = { count = \"bad\"; };\n");
	fclose(f);
	kill(d->pid, SIGHUP);
	usleep(300000);
	assert_int_equal(daemon_call(d, "probe.echo", "{}", 2000, &reply), 0);
	json_decref(reply);
	char *log = slurp(d->log);
	assert_contains(log, "reload refused");
	free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    DAEMON_TEST(test_refusals_are_named),
	    DAEMON_TEST(test_refusal_stops_when_configured),
	    DAEMON_TEST(test_start_in_dependency_order_stop_in_reverse),
	    DAEMON_TEST(test_failed_init_leaves_no_trace),
	    DAEMON_TEST(test_independent_plugins_start_together),
	    DAEMON_TEST(test_serial_start_for_the_benchmark),
	    DAEMON_TEST(test_mg_ready_sets_the_time),
	    DAEMON_TEST(test_dependent_starts_before_a_posted_reconcile),
	    DAEMON_TEST(test_failed_start_fails_its_dependents),
	    DAEMON_TEST(test_unknown_service_and_timeout),
	    DAEMON_TEST(test_thousand_concurrent_requests),
	    DAEMON_TEST(test_malformed_messages_keep_daemon_serving),
	    DAEMON_TEST(test_acknowledged_write_survives_kill9),
	    cmocka_unit_test(test_config_errors_name_file_and_line),
	    cmocka_unit_test(test_zero_config_and_version),
	    DAEMON_TEST(test_reload_keeps_running_on_bad_config),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
