/* mg_post in the mock core: posts from any thread wait in a locked queue
 * until the test runs them with mg_mock_run_posts() on its own thread,
 * oldest first; a plugin's stop runs what it has pending before its stop
 * callback, and refuses what comes after, as the core does. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mg_mock.h"

#define THREADS 4
#define POSTS   2000

struct msg {
	int poster;
	int seq;
};

struct poster_plugin;

struct poster_arg {
	struct poster_plugin *pp;
	int id;
};

/* The plugin's self; the test keeps it past stop to read it. */
struct poster_plugin {
	mg_ctx *ctx;
	pthread_t thread; /* where its callbacks must run: the test's */
	pthread_t posters[THREADS];
	struct poster_arg args[THREADS];
	int refused;
	long received, out_of_order, wrong_thread;
	int next_seq[THREADS];
	int marker_ran, marker_ran_before_stop, stopped;
};

static void on_post(mg_ctx *ctx, void *arg)
{
	struct poster_plugin *pp = ctx->self;
	struct msg *m = arg;
	if (!pthread_equal(pthread_self(), pp->thread))
		pp->wrong_thread++;
	if (m->seq != pp->next_seq[m->poster])
		pp->out_of_order++;
	pp->next_seq[m->poster] = m->seq + 1;
	pp->received++;
	free(m);
}

static void *post_many(void *arg)
{
	struct poster_arg *a = arg;
	struct poster_plugin *pp = a->pp;
	for (int seq = 0; seq < POSTS; seq++) {
		struct msg *m = malloc(sizeof(*m));
		*m = (struct msg){a->id, seq};
		if (mg_post(pp->ctx, on_post, m)) {
			free(m);
			__atomic_add_fetch(&pp->refused, 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

static json_t *start_posters(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	struct poster_plugin *pp = ctx->self;
	(void)service;
	(void)request;
	(void)arg;
	for (int i = 0; i < THREADS; i++) {
		pp->args[i] = (struct poster_arg){pp, i};
		pthread_create(&pp->posters[i], NULL, post_many, &pp->args[i]);
	}
	return json_object();
}

static json_t *join_posters(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	struct poster_plugin *pp = ctx->self;
	(void)service;
	(void)request;
	(void)arg;
	for (int i = 0; i < THREADS; i++)
		pthread_join(pp->posters[i], NULL);
	return json_object();
}

static void on_marker(mg_ctx *ctx, void *arg)
{
	struct poster_plugin *pp = ctx->self;
	(void)arg;
	pp->marker_ran = 1;
}

static int poster_init(mg_ctx *ctx)
{
	struct poster_plugin *pp = calloc(1, sizeof(*pp));
	if (!pp)
		return -ENOMEM;
	pp->ctx = ctx;
	pp->thread = pthread_self();
	ctx->self = pp;
	int rc = mg_service_add(ctx, "poster.start", start_posters, NULL);
	return rc ? rc : mg_service_add(ctx, "poster.join", join_posters, NULL);
}

static void poster_stop(mg_ctx *ctx)
{
	struct poster_plugin *pp = ctx->self;
	pp->marker_ran_before_stop = pp->marker_ran;
	pp->stopped = 1;
}

MG_PLUGIN(.name = "poster", .version = "1", .init = poster_init, .stop = poster_stop);

struct foreign_post {
	mg_ctx *ctx;
	int rc;
};

static void *post_once(void *arg)
{
	struct foreign_post *f = arg;
	f->rc = mg_post(f->ctx, on_marker, NULL);
	return NULL;
}

static void test_posts_wait_for_the_test_and_keep_order(void **unused)
{
	char err[256];
	json_t *reply;
	(void)unused;
	struct mg_mock *m = mg_mock_new(NULL, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(mg_mock_add(m, &mg_plugin_descriptor, NULL, err, sizeof(err)), 0);
	assert_int_equal(mg_mock_start(m, err, sizeof(err)), 0);
	mg_ctx *ctx = mg_mock_ctx(m, "poster");
	struct poster_plugin *pp = ctx->self;

	assert_int_equal(mg_mock_request(m, "poster.start", NULL, &reply), 0);
	json_decref(reply);
	assert_int_equal(mg_mock_request(m, "poster.join", NULL, &reply), 0);
	json_decref(reply);
	/* every thread has posted: nothing ran until the test says so */
	assert_int_equal(pp->refused, 0);
	assert_int_equal(pp->received, 0);
	assert_int_equal(mg_mock_run_posts(m), THREADS * POSTS);
	assert_int_equal(pp->received, THREADS * POSTS);
	assert_int_equal(pp->out_of_order, 0);
	assert_int_equal(pp->wrong_thread, 0);
	assert_int_equal(mg_mock_run_posts(m), 0);
	assert_int_equal(mg_post(ctx, NULL, NULL), -EINVAL);

	/* pending at stop: runs before the stop callback; then refused */
	assert_int_equal(mg_post(ctx, on_marker, NULL), 0);
	mg_mock_stop(m);
	assert_true(pp->stopped);
	assert_true(pp->marker_ran_before_stop);
	pp->marker_ran = 0;
	assert_int_equal(mg_post(ctx, on_marker, NULL), -ESHUTDOWN);
	pthread_t t;
	struct foreign_post f = {ctx, 0};
	pthread_create(&t, NULL, post_once, &f);
	pthread_join(t, NULL);
	assert_int_equal(f.rc, -ESHUTDOWN);
	assert_int_equal(mg_mock_run_posts(m), 0);
	assert_false(pp->marker_ran);

	mg_mock_free(m);
	free(pp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_posts_wait_for_the_test_and_keep_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
