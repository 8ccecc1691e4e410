/* The actor's loop, tested through the real meshgated and the "loop" test
 * plugin: mg_post from threads of the plugin's own, callbacks removing
 * subscriptions, timers and fd watches during dispatch, many fd watches. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* Asserts that the integer array `name` of reply is `want`. */
static void assert_ints(json_t *reply, const char *name, const json_int_t *want, size_t n)
{
	json_t *got = json_object_get(reply, name);
	char *text = json_dumps(reply, JSON_COMPACT);
	if (json_array_size(got) != n)
		fail_msg("%s: want %zu entries in %s", name, n, text);
	for (size_t i = 0; i < n; i++)
		if (json_integer_value(json_array_get(got, i)) != want[i])
			fail_msg("%s[%zu]: want %lld in %s", name, i, (long long)want[i], text);
	free(text);
}

static void start_loop_plugin(struct daemon *d, const char *extra)
{
	char config[1024];
	snprintf(config, sizeof(config), "plugins = [\"loop\"];\n%s", extra);
	daemon_setup(d, config);
	assert_int_equal(daemon_start(d), 0);
}

/* 8 threads post 5,000 each: all run, on the plugin's thread, each
 * thread's in the order it posted them. */
static void test_posts_from_threads_arrive_in_order(void **state)
{
	struct daemon *d = *state;
	json_t *reply;
	start_loop_plugin(d, "");
	assert_int_equal(
	    daemon_call(d, "loop.posts", "{\"threads\": 8, \"posts\": 5000}", 60000, &reply), 0);
	assert_int_equal(json_integer_value(json_object_get(reply, "received")), 8 * 5000);
	assert_int_equal(json_integer_value(json_object_get(reply, "out_of_order")), 0);
	assert_int_equal(json_integer_value(json_object_get(reply, "wrong_thread")), 0);
	json_decref(reply);
	/* and again: the loop's queue is empty and ready */
	assert_int_equal(
	    daemon_call(d, "loop.posts", "{\"threads\": 3, \"posts\": 100}", 10000, &reply), 0);
	assert_int_equal(json_integer_value(json_object_get(reply, "received")), 300);
	json_decref(reply);
}

/* A thread goes on posting while the daemon stops: what the core accepted
 * ran before the plugin's stop, then it was refused with -ESHUTDOWN (the
 * poster frees what it meant to post: ASan builds check nothing leaks). */
static void test_post_after_stop_is_refused(void **state)
{
	struct daemon *d = *state;
	char extra[512], trace[300];
	json_t *reply;
	snprintf(trace, sizeof(trace), "/tmp/mgloop.%d", getpid());
	unlink(trace);
	snprintf(extra, sizeof(extra), "loop = { trace_file = \"%s\"; };\n", trace);
	start_loop_plugin(d, extra);
	assert_int_equal(daemon_call(d, "loop.linger", "{}", 2000, &reply), 0);
	assert_true(json_is_true(json_object_get(reply, "lingering")));
	json_decref(reply);
	usleep(200000);
	kill(d->pid, SIGTERM);
	assert_int_equal(daemon_wait_exit(d, 10000), 0);
	char *got = slurp(trace);
	long accepted = -1, ran = -2;
	int refused = 0;
	assert_int_equal(
	    sscanf(got, "linger accepted=%ld ran=%ld refused=%d", &accepted, &ran, &refused), 3);
	free(got);
	unlink(trace);
	assert_true(accepted > 0);
	assert_int_equal(ran, accepted);
	assert_int_equal(refused, -ESHUTDOWN);
}

static int publish(struct daemon *d, const char *topic)
{
	json_t *payload = json_object();
	int rc = mg_bus_client_publish(d->bus, topic, payload);
	json_decref(payload);
	return rc;
}

/* Subscribers 0..7 match one topic: 0 unsubscribes itself, 2 unsubscribes
 * 1 (called already) and 5 (not yet), 3 subscribes 8. Every other one is
 * called once an event; 8 from the next event on. */
static void test_unsubscribe_during_delivery_skips_nobody(void **state)
{
	struct daemon *d = *state;
	json_t *reply;
	start_loop_plugin(d, "");
	assert_int_equal(daemon_call(d, "loop.subscribe", "{}", 2000, &reply), 0);
	json_decref(reply);

	assert_int_equal(publish(d, "loop.evt.x"), 0);
	assert_int_equal(daemon_call(d, "loop.subs", "{}", 2000, &reply), 0);
	const json_int_t once[] = {1, 1, 1, 1, 1, 0, 1, 1, 0};
	assert_ints(reply, "fired", once, 9);
	json_decref(reply);

	assert_int_equal(publish(d, "loop.evt.x"), 0);
	assert_int_equal(daemon_call(d, "loop.subs", "{}", 2000, &reply), 0);
	const json_int_t twice[] = {1, 1, 2, 2, 2, 0, 2, 2, 1};
	assert_ints(reply, "fired", twice, 9);
	json_decref(reply);
}

/* Eight one-shots due at once: 0 deletes 3 and 6 before they run, 4 deletes
 * 1 and itself (both gone: -ENOENT), 5 adds 8. Repeating 9..11 every 5 ms:
 * 9 deletes 10 and itself on its third run, 11 answers on its sixth. */
static void test_timers_deleted_while_due(void **state)
{
	struct daemon *d = *state;
	json_t *reply;
	start_loop_plugin(d, "");
	assert_int_equal(daemon_call(d, "loop.timers", "{}", 5000, &reply), 0);
	const json_int_t fired[] = {1, 1, 1, 0, 1, 1, 0, 1, 1, 3, 2, 6};
	assert_ints(reply, "fired", fired, 12);
	const json_int_t deleted[] = {0, 0, -ENOENT, -ENOENT, 0};
	assert_ints(reply, "deleted", deleted, 5);
	json_decref(reply);
}

/* 200 eventfds, all ready in one turn: 0 unwatches 100 and 199 before
 * they are dispatched, 10 unwatches itself and 5, 20 unwatches and
 * watches 30 again. Each callback runs once, the two removed never. */
static void test_many_fd_watches_removed_during_dispatch(void **state)
{
	struct daemon *d = *state;
	json_t *reply;
	json_int_t want[200];
	start_loop_plugin(d, "");
	assert_int_equal(daemon_call(d, "loop.fds", "{\"count\": 200}", 5000, &reply), 0);
	for (int k = 0; k < 200; k++)
		want[k] = k == 100 || k == 199 ? 0 : 1;
	assert_ints(reply, "fired", want, 200);
	json_decref(reply);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    DAEMON_TEST(test_posts_from_threads_arrive_in_order),
	    DAEMON_TEST(test_post_after_stop_is_refused),
	    DAEMON_TEST(test_unsubscribe_during_delivery_skips_nobody),
	    DAEMON_TEST(test_timers_deleted_while_due),
	    DAEMON_TEST(test_many_fd_watches_removed_during_dispatch),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
