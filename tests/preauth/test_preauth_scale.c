/* 10,000 devices: redeems stay fast as the pool fills (printed, never a
 * pass/fail on time), every address is handed out once, and a restart on
 * the same state rebuilds the pool without giving any address twice. */
#include <time.h>

#include "pa_test.h"

#include "preauth.h"

#define DEVICES 10000
#define BATCH   1000

static double seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Host part of 10.100.x.y/32 inside the /16. */
static unsigned host_of(const char *address)
{
	unsigned a, b, c, d;
	if (sscanf(address, "%u.%u.%u.%u/32", &a, &b, &c, &d) != 4 || a != 10 || b != 100)
		fail_msg("unexpected address %s", address);
	return c * 256 + d;
}

static void test_ten_thousand(void **unused)
{
	(void)unused;
	char *codes[DEVICES], dir[] = "/tmp/pa_scale.XXXXXX";
	static unsigned char seen[65536];
	static char ids[DEVICES][32];
	assert_non_null(mkdtemp(dir));

	struct mg_mock *m = t_mock(dir, NULL, "10.100.0.1/16");
	codes[0] = t_add_user(m, "bulk", "developer");
	for (int i = 1; i < DEVICES; i++)
		codes[i] = t_new_code(m, "bulk", "7d");
	mg_mock_events_clear(m);

	double t0 = seconds(), batch_start = t0, first_batch = 0, last_batch = 0;
	for (int i = 0; i < DEVICES; i++) {
		json_t *r = t_redeem(m, codes[i], NULL);
		if (mg_reply_error(r))
			fail_msg("redeem %d: %s", i, t_get(r, "message"));
		unsigned h = host_of(t_get(r, "address"));
		assert_int_equal(seen[h], 0);
		seen[h] = 1;
		snprintf(ids[i], sizeof(ids[i]), "%s", t_get(r, "device_id"));
		json_decref(r);
		if ((i + 1) % BATCH == 0) {
			double now = seconds();
			if (i + 1 == BATCH)
				first_batch = now - batch_start;
			last_batch = now - batch_start;
			batch_start = now;
			mg_mock_events_clear(m); /* the record would only grow */
		}
	}
	double total = seconds() - t0;
	printf("preauth: %d redeems in %.2f s (%.0f/s); first %d: %.3f s, last %d: %.3f s\n",
	       DEVICES, total, DEVICES / total, BATCH, first_batch, BATCH, last_batch);
	/* the lowest addresses, in order: .2 up to host DEVICES + 1 */
	for (unsigned h = 2; h < DEVICES + 2; h++)
		assert_int_equal(seen[h], 1);
	assert_int_equal(mg_mock_state_count(m, "ipam", NULL), DEVICES);
	mg_mock_free(m);

	/* a new core on the same state: the pool comes back from ipam */
	double r0 = seconds();
	m = t_mock(dir, NULL, NULL);
	printf("preauth: restart with %d devices (init: pool, keys, pending) in %.3f s\n", DEVICES,
	       seconds() - r0);
	char *more = t_new_code(m, "bulk", NULL);
	json_t *r = t_redeem(m, more, NULL);
	assert_string_equal(t_err(r), "");
	unsigned h = host_of(t_get(r, "address"));
	assert_int_equal(seen[h], 0);
	assert_int_equal(h, DEVICES + 2);
	seen[h] = 1;
	json_decref(r);

	/* a freed address in the middle is the next one handed out */
	r = t_call(m, "preauth.device.del", NULL, "{s:s}", "id", ids[4321]);
	assert_string_equal(t_err(r), "");
	json_decref(r);
	char *again = t_new_code(m, "bulk", NULL);
	r = t_redeem(m, again, NULL);
	assert_int_equal(host_of(t_get(r, "address")), 4321 + 2);
	json_decref(r);

	/* pending devices survive the restart too, and are reaped on time */
	mg_mock_advance(m, 10 * 60 * 1000 + 5000);
	assert_int_equal(mg_mock_state_count(m, "devices", NULL), 0);
	assert_int_equal(mg_mock_state_count(m, "ipam", NULL), 0);
	mg_mock_free(m);

	for (int i = 0; i < DEVICES; i++)
		free(codes[i]);
	free(more);
	free(again);
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* The pool alone: what a redeem spends on finding its address. */
static void test_pool_speed(void **unused)
{
	(void)unused;
	char err[256];
	uint32_t addr;
	struct pa_ipam *p = pa_ipam_new("10.100.0.1/16", err, sizeof(err));
	uint32_t n = pa_ipam_capacity(p);
	double t0 = seconds();
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(pa_ipam_lowest_free(p, &addr), 0);
		assert_int_equal(pa_ipam_take(p, addr), 0);
	}
	double fill = seconds() - t0;
	assert_int_equal(pa_ipam_lowest_free(p, &addr), -ENOSPC);
	/* release and retake one address in the middle, many times */
	uint32_t mid = addr = 0;
	assert_int_equal(pa_ip_parse("10.100.128.77", 0, &mid), 0);
	t0 = seconds();
	for (int i = 0; i < 100000; i++) {
		pa_ipam_release(p, mid);
		assert_int_equal(pa_ipam_lowest_free(p, &addr), 0);
		assert_true(addr == mid);
		pa_ipam_take(p, addr);
	}
	double churn = seconds() - t0;
	printf("preauth: pool of a /16: %u allocations in %.2f ms (%.0f ns each); "
	       "release+allocate in a full pool: %.0f ns\n",
	       n, fill * 1e3, fill * 1e9 / n, churn * 1e9 / 100000);
	pa_ipam_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_pool_speed),
	                                   cmocka_unit_test(test_ten_thousand)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
