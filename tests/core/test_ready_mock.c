/* mg_ready in the mock core, as in meshgated: a plugin is ready from its
 * mg_ready call or when its start returns 0 (once the posts it queued for
 * itself have run, if there are any), not before start, not after a
 * failed start, and not once stopped. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "mg_mock.h"

static int says_ready_start(mg_ctx *ctx)
{
	mg_ready(ctx);
	return 0;
}

static int silent_start(mg_ctx *ctx)
{
	(void)ctx;
	return 0;
}

static int failing_start(mg_ctx *ctx)
{
	mg_ready(ctx); /* then fails all the same */
	return -EIO;
}

#define DESCRIPTOR(...)                                                            \
	{                                                                          \
		.abi_major = MG_ABI_MAJOR, .abi_minor = MG_ABI_MINOR,              \
		.size = sizeof(struct mg_plugin), .ptr_size = sizeof(void *),      \
		.time_size = sizeof(time_t), .long_size = sizeof(long),            \
		.build_signature = MG_BUILD_SIGNATURE, .version = "1", __VA_ARGS__ \
	}

/* The pattern of docs/plugin-guide.md: start returns at once, the heavy
 * part of the reconcile runs right after, posted to the plugin's own loop,
 * in two steps (the first posts the second); whether the last says
 * mg_ready is the test's choice. */
static int says_in_post;

static void reconcile_second_half(mg_ctx *ctx, void *arg)
{
	(void)arg;
	if (says_in_post)
		mg_ready(ctx);
}

static void reconcile_first_half(mg_ctx *ctx, void *arg)
{
	(void)arg;
	mg_post(ctx, reconcile_second_half, NULL);
}

static int posting_start(mg_ctx *ctx)
{
	return mg_post(ctx, reconcile_first_half, NULL);
}

static const struct mg_plugin says_ready = DESCRIPTOR(.name = "says", .start = says_ready_start);
static const struct mg_plugin silent = DESCRIPTOR(.name = "silent", .start = silent_start);
static const struct mg_plugin failing = DESCRIPTOR(.name = "failing", .start = failing_start);
static const struct mg_plugin posting = DESCRIPTOR(.name = "posting", .start = posting_start);

static void test_ready_after_start_until_stop(void **unused)
{
	char err[256];
	(void)unused;
	struct mg_mock *m = mg_mock_new(NULL, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(mg_mock_add(m, &says_ready, NULL, err, sizeof(err)), 0);
	assert_int_equal(mg_mock_add(m, &silent, NULL, err, sizeof(err)), 0);
	assert_int_equal(mg_mock_ready(m, "says"), 0);
	assert_int_equal(mg_mock_ready(m, "nobody"), -ENOENT);
	assert_int_equal(mg_mock_start(m, err, sizeof(err)), 0);
	assert_int_equal(mg_mock_ready(m, "says"), 1);
	assert_int_equal(mg_mock_ready(m, "silent"), 1); /* its start returned */
	mg_mock_stop(m);
	assert_int_equal(mg_mock_ready(m, "says"), 0);
	assert_int_equal(mg_mock_ready(m, "silent"), 0);
	mg_mock_free(m);
}

static void test_failed_start_is_not_ready(void **unused)
{
	char err[256];
	(void)unused;
	struct mg_mock *m = mg_mock_new(NULL, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(mg_mock_add(m, &failing, NULL, err, sizeof(err)), 0);
	assert_int_equal(mg_mock_start(m, err, sizeof(err)), -EIO);
	assert_int_equal(mg_mock_ready(m, "failing"), 0);
	mg_mock_free(m);
}

/* Ready once the reconcile it posted to itself has run: at its mg_ready,
 * or, if it never says so, once none of its posts waits any more. */
static void test_ready_after_the_posted_reconcile(void **unused)
{
	char err[256];
	(void)unused;
	for (says_in_post = 0; says_in_post < 2; says_in_post++) {
		struct mg_mock *m = mg_mock_new(NULL, err, sizeof(err));
		assert_non_null(m);
		assert_int_equal(mg_mock_add(m, &posting, NULL, err, sizeof(err)), 0);
		assert_int_equal(mg_mock_add(m, &silent, NULL, err, sizeof(err)), 0);
		assert_int_equal(mg_mock_start(m, err, sizeof(err)), 0);
		assert_int_equal(mg_mock_ready(m, "posting"), 0); /* started, not ready */
		assert_int_equal(mg_mock_ready(m, "silent"), 1);
		assert_int_equal(mg_mock_run_posts(m), 1); /* the first half */
		assert_int_equal(mg_mock_ready(m, "posting"), 0);
		assert_int_equal(mg_mock_run_posts(m), 1); /* the second */
		assert_int_equal(mg_mock_ready(m, "posting"), 1);
		mg_mock_stop(m);
		assert_int_equal(mg_mock_ready(m, "posting"), 0);
		mg_mock_free(m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ready_after_start_until_stop),
	    cmocka_unit_test(test_failed_start_is_not_ready),
	    cmocka_unit_test(test_ready_after_the_posted_reconcile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
