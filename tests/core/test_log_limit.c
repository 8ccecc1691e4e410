/* The limiter of repeated log lines (core/log_limit.c) on a fake clock:
 * the first of each key, the burst, the count told once an interval, the
 * budget over all keys, eviction that buys no lines, and that the daemon's
 * and the mock's ops tables both go through it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core.h"
#include "log_limit.h"
#include "mg_mock.h"

/* What the limiter wrote of its own (the counts), the last one kept. */
struct told {
	unsigned lines;
	char last[256];
};

static void record(void *arg, enum mg_log_level level, const char *who, const char *fmt, ...)
{
	struct told *t = arg;
	va_list ap;
	(void)level;
	(void)who;
	va_start(ap, fmt);
	vsnprintf(t->last, sizeof(t->last), fmt, ap);
	va_end(ap);
	t->lines++;
}

static struct log_limit *fresh(void)
{
	static struct log_limit l;
	memset(&l, 0, sizeof(l));
	pthread_mutex_init(&l.lock, NULL);
	return &l;
}

static unsigned pass_n(struct log_limit *l, const char *key, unsigned n, uint64_t now,
                       struct told *t)
{
	unsigned written = 0;
	for (unsigned i = 0; i < n; i++)
		written += (unsigned)log_limit_pass(l, MG_LOG_INFO, "api", key, now, record, t);
	return written;
}

static void first_then_burst_then_count(void **state)
{
	struct log_limit *l = fresh();
	struct told t = {0};
	uint64_t now = 1000000;
	(void)state;
	assert_int_equal(pass_n(l, "redeem 10.0.0.9 invalid_code", 10000, now, &t),
	                 LOG_LIMIT_BURST);
	assert_int_equal(t.lines, 0); /* nothing told before the interval ends */
	/* another reason of the same source is another key: its first is written */
	assert_int_equal(pass_n(l, "redeem 10.0.0.9 bad_request", 1, now, &t), 1);
	/* the interval ends: the count is told once, and lines pass again */
	now += LOG_LIMIT_INTERVAL_MS;
	assert_int_equal(pass_n(l, "redeem 10.0.0.9 invalid_code", 1, now, &t), 1);
	assert_int_equal(t.lines, 1);
	assert_string_equal(t.last,
	                    "suppressed 9995 similar messages (redeem 10.0.0.9 invalid_code)");
	/* nothing more to tell: the next interval says nothing */
	now += 2 * LOG_LIMIT_INTERVAL_MS;
	pass_n(l, "other", 1, now, &t);
	assert_int_equal(t.lines, 1);
}

static void flush_tells_what_is_left(void **state)
{
	struct log_limit *l = fresh();
	struct told t = {0};
	(void)state;
	pass_n(l, "k", LOG_LIMIT_BURST + 7, 5000, &t);
	log_limit_flush(l, record, &t);
	assert_int_equal(t.lines, 1);
	assert_string_equal(t.last, "suppressed 7 similar messages (k)");
	log_limit_flush(l, record, &t);
	assert_int_equal(t.lines, 1); /* told once */
}

/* Many sources, each new: the first of each passes until the budget of
 * the interval is spent; evicting keys buys nothing; the excess is told
 * in one line. */
static void budget_over_all_keys(void **state)
{
	struct log_limit *l = fresh();
	struct told t = {0};
	unsigned written = 0;
	char key[64];
	(void)state;
	for (unsigned i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "redeem 2001:db8::%x invalid_code", i);
		written += pass_n(l, key, 2, 7000, &t);
	}
	assert_int_equal(written, LOG_LIMIT_BUDGET);
	log_limit_flush(l, record, &t);
	char want[128];
	/* the budget's count holds every line it stopped, of whatever key */
	snprintf(want, sizeof(want),
	         "suppressed %u messages of many sources: more than %u a minute",
	         200000 - LOG_LIMIT_BUDGET, LOG_LIMIT_BUDGET);
	assert_int_equal(t.lines, 1);
	assert_string_equal(t.last, want);
}

static unsigned info_lines(struct mg_mock *m)
{
	return mg_mock_log_count(m, MG_LOG_INFO);
}

static int test_init(mg_ctx *ctx)
{
	for (int i = 0; i < 50; i++)
		mg_log_limited(ctx, MG_LOG_INFO, "same", "refused %d", i);
	return 0;
}

MG_PLUGIN(.name = "limited", .init = test_init);

/* The mock core limits too, on its own clock. */
static void mock_limits(void **state)
{
	char err[256];
	(void)state;
	struct mg_mock *m = mg_mock_new(NULL, err, sizeof(err));
	assert_non_null(m);
	mg_mock_log_level(m, MG_LOG_ERROR); /* quiet: counted all the same */
	assert_int_equal(mg_mock_add(m, &mg_plugin_descriptor, NULL, err, sizeof(err)), 0);
	unsigned before = info_lines(m);
	assert_int_equal(mg_mock_start(m, err, sizeof(err)), 0);
	/* 50 alike: the burst, and perhaps the mock's own line of the start */
	unsigned written = info_lines(m) - before;
	assert_true(written >= LOG_LIMIT_BURST && written <= LOG_LIMIT_BURST + 2);
	mg_mock_free(m);
}

/* And the daemon's table has the member, where MG_API_HAS looks. */
static void core_has_it(void **state)
{
	extern const struct mg_api core_api;
	struct mg_ctx ctx = {sizeof(ctx), &core_api, NULL};
	(void)state;
	assert_true(MG_API_HAS(&ctx, vlog_limited));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(first_then_burst_then_count),
	    cmocka_unit_test(flush_tells_what_is_left),
	    cmocka_unit_test(budget_over_all_keys),
	    cmocka_unit_test(mock_limits),
	    cmocka_unit_test(core_has_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
