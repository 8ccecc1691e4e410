/* preauth's parts on their own: durations, codes, keys, names, the pool,
 * the limiter. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "preauth.h"

static void test_durations(void **unused)
{
	(void)unused;
	char err[256];
	uint64_t ms;
	assert_int_equal(mg_duration_parse("30s", &ms, err, sizeof(err)), 0);
	assert_true(ms == 30000);
	assert_int_equal(mg_duration_parse("10m", &ms, err, sizeof(err)), 0);
	assert_true(ms == 600000);
	assert_int_equal(mg_duration_parse("24h", &ms, err, sizeof(err)), 0);
	assert_true(ms == 86400000);
	assert_int_equal(mg_duration_parse("7d", &ms, err, sizeof(err)), 0);
	assert_true(ms == 7ULL * 86400000);
	static const char *const bad[] = {
	    "",    "24",  "h",   "0s", "010m", "1.5h",  "1h30m",
	    "-1h", " 1h", "1h ", "1H", "1w",   "3651d", "99999999999999d"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (mg_duration_parse(bad[i], &ms, err, sizeof(err)) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_true(strlen(err) > 10);
	}
	assert_int_equal(mg_duration_parse(NULL, &ms, err, sizeof(err)), -EINVAL);
}

static void test_codes(void **unused)
{
	(void)unused;
	char code[40], canonical[PA_CODE_SYMBOLS + 1], again[PA_CODE_SYMBOLS + 1];
	char h1[PA_HASH_HEX + 1], h2[PA_HASH_HEX + 1];
	pa_code_new(code, sizeof(code));
	/* XXXX-XXXX-...: 7 groups of 4 */
	assert_int_equal(strlen(code), 34);
	for (int i = 4; i < 34; i += 5)
		assert_int_equal(code[i], '-');
	assert_int_equal(pa_code_normalize(code, canonical), 0);
	assert_int_equal(strlen(canonical), PA_CODE_SYMBOLS);

	char typed[80];
	size_t n = 0;
	for (const char *c = code; *c; c++) {
		if (*c == '-') {
			typed[n++] = ' ';
			continue;
		}
		typed[n++] = *c == '1' ? 'i' : *c == '0' ? 'o' : (char)(*c | 0x20);
	}
	typed[n] = '\0';
	assert_int_equal(pa_code_normalize(typed, again), 0);
	assert_string_equal(canonical, again);
	pa_code_hash(canonical, h1);
	pa_code_hash(again, h2);
	assert_string_equal(h1, h2);
	assert_int_equal(strlen(h1), PA_HASH_HEX);

	char other[40];
	pa_code_new(other, sizeof(other));
	assert_string_not_equal(code, other);
	assert_int_equal(pa_code_normalize("ABC", again), -EINVAL);
	assert_int_equal(pa_code_normalize("UUUUUUUUUUUUUUUUUUUUUUUUUUUU", again), -EINVAL);
	assert_int_equal(pa_code_normalize("0000000000000000000000000000X", again), -EINVAL);
	assert_int_equal(pa_code_normalize("00000000000000000000000000000", again), -EINVAL);

	char token[64], th[PA_HASH_HEX + 1];
	pa_token_new(token, sizeof(token));
	assert_int_equal(strlen(token), 43);
	pa_token_hash(token, th);
	assert_true(pa_token_matches(token, th));
	token[0] ^= 1;
	assert_false(pa_token_matches(token, th));
	/* a code's hash never serves as a token's */
	assert_false(pa_token_matches(canonical, h1));
}

static void test_keys_and_names(void **unused)
{
	(void)unused;
	char key[PA_WG_KEY_B64_LEN + 1], name[PA_DEVICE_NAME_MAX + 1];
	assert_true(pa_wg_key_valid("HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=", key));
	assert_string_equal(key, "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=");
	assert_false(pa_wg_key_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", key));
	assert_false(pa_wg_key_valid("HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8yk-=", key));
	assert_false(pa_wg_key_valid(NULL, key));

	pa_device_name("Alice's MacBook Pro.local", name);
	assert_string_equal(name, "alice-s-macbook-pro");
	pa_device_name("---", name);
	assert_string_equal(name, "device");
	pa_device_name(".x", name);
	assert_string_equal(name, "device");
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	pa_device_name(longname, name);
	assert_int_equal(strlen(name), PA_DEVICE_NAME_MAX);

	assert_true(pa_name_valid("a"));
	assert_true(pa_name_valid("dev-ops-2"));
	assert_false(pa_name_valid("Dev"));
	assert_false(pa_name_valid("-a"));
	assert_false(pa_name_valid("a_b"));
	assert_false(pa_name_valid(NULL));

	char id[PA_DEVICE_ID_LEN + 1];
	pa_device_id_new(id);
	assert_true(pa_device_id_valid(id));
	assert_false(pa_device_id_valid("0123456789ABCDEF"));
}

/* Nodes of a cluster start at places of their own, go round the pool,
 * and still hand out every address once. */
static void test_pool_spread(void **unused)
{
	(void)unused;
	char err[256];
	uint32_t first[3], addr;
	static const char *const nodes[] = {"gw1", "gw2", "gw3"};
	for (int n = 0; n < 3; n++) {
		struct pa_ipam *p = pa_ipam_new("10.0.0.1/16", err, sizeof(err));
		assert_non_null(p);
		pa_ipam_spread(p, nodes[n]);
		assert_int_equal(pa_ipam_next_free(p, &first[n]), 0);
		pa_ipam_free(p);
	}
	assert_true(first[0] != first[1] && first[1] != first[2] && first[0] != first[2]);

	/* round the whole pool from wherever it starts: each address once */
	struct pa_ipam *p = pa_ipam_new("10.9.0.1/24", err, sizeof(err));
	pa_ipam_spread(p, "gw2");
	uint32_t seen = 0;
	while (pa_ipam_next_free(p, &addr) == 0) {
		assert_int_equal(pa_ipam_take(p, addr), 0);
		seen++;
	}
	assert_int_equal(seen, 253);
	assert_int_equal(pa_ipam_free_count(p), 0);
	pa_ipam_free(p);
}

static void test_pool(void **unused)
{
	(void)unused;
	char err[256], ip[16];
	uint32_t a, addr;
	struct pa_ipam *p = pa_ipam_new("10.9.0.1/29", err, sizeof(err));
	assert_non_null(p);
	assert_string_equal(pa_ipam_subnet(p), "10.9.0.0/29");
	assert_int_equal(pa_ipam_capacity(p), 5);
	for (int i = 2; i <= 6; i++) {
		assert_int_equal(pa_ipam_lowest_free(p, &addr), 0);
		pa_ip_format(addr, ip);
		char want[16];
		snprintf(want, sizeof(want), "10.9.0.%d", i);
		assert_string_equal(ip, want);
		assert_int_equal(pa_ipam_take(p, addr), 0);
	}
	assert_int_equal(pa_ipam_lowest_free(p, &addr), -ENOSPC);
	assert_int_equal(pa_ipam_free_count(p), 0);
	assert_int_equal(pa_ip_parse("10.9.0.4/32", 1, &a), 0);
	assert_int_equal(pa_ipam_take(p, a), -EEXIST);
	pa_ipam_release(p, a);
	assert_int_equal(pa_ipam_lowest_free(p, &addr), 0);
	assert_true(addr == a);
	/* never the network, the broadcast, the gateway, or outside */
	static const char *const refused[] = {"10.9.0.0", "10.9.0.1", "10.9.0.7", "10.9.0.8",
	                                      "10.8.255.255"};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		assert_int_equal(pa_ip_parse(refused[i], 0, &a), 0);
		assert_int_equal(pa_ipam_take(p, a), -ERANGE);
	}
	pa_ipam_free(p);

	/* a gateway that is not the first address is reserved wherever it is */
	p = pa_ipam_new("192.168.7.200/24", err, sizeof(err));
	assert_int_equal(pa_ipam_capacity(p), 253);
	assert_int_equal(pa_ip_parse("192.168.7.200", 0, &a), 0);
	assert_int_equal(pa_ipam_take(p, a), -ERANGE);
	assert_int_equal(pa_ipam_lowest_free(p, &addr), 0);
	pa_ip_format(addr, ip);
	assert_string_equal(ip, "192.168.7.1");
	pa_ipam_free(p);

	static const char *const bad[] = {"10.0.0.1",   "10.0.0.1/31",  "10.0.0.1/7",
	                                  "10.0.0.1/x", "10.0.0.1/24x", "300.0.0.1/24",
	                                  "/24",        "10.0.0.1/"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (pa_ipam_new(bad[i], err, sizeof(err)))
			fail_msg("accepted %s", bad[i]);
		assert_true(strlen(err) > 10);
	}
	assert_int_equal(pa_ip_parse("10.0.0.2/24", 1, &a), -EINVAL);
	assert_int_equal(pa_ip_parse("10.0.0.2/32", 0, &a), -EINVAL);
	assert_int_equal(pa_ip_parse("10.0.0", 0, &a), -EINVAL);
}

static void test_limiter(void **unused)
{
	(void)unused;
	struct pa_limiter *l = pa_limiter_new();
	uint64_t t = 1000000;
	for (int i = 0; i < 3; i++) {
		assert_false(pa_limiter_blocked(l, "a", t, 3));
		pa_limiter_failed(l, "a", t, 3);
	}
	assert_true(pa_limiter_blocked(l, "a", t + 1000, 3));
	assert_false(pa_limiter_blocked(l, "b", t, 3));
	assert_false(pa_limiter_blocked(l, "a", t + PA_RATE_WINDOW_MS, 3));
	/* many sources: memory stays bounded and recent ones are kept */
	for (int i = 0; i < 20000; i++) {
		char s[32];
		snprintf(s, sizeof(s), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		pa_limiter_failed(l, s, t + 2000, 3);
	}
	for (int i = 0; i < 3; i++)
		pa_limiter_failed(l, NULL, t + 3000, 3);
	assert_true(pa_limiter_blocked(l, "", t + 3000, 3));
	pa_limiter_expire(l, t + 3000 + PA_RATE_WINDOW_MS);
	assert_false(pa_limiter_blocked(l, NULL, t + 3000 + PA_RATE_WINDOW_MS, 3));
	pa_limiter_free(l);
}

/* A full table never makes room by evicting a blocked window: neither a
 * flood of fresh sources nor one of blocked ones frees a blocked source. */
static void test_limiter_eviction(void **unused)
{
	(void)unused;
	struct pa_limiter *l = pa_limiter_new();
	uint64_t t = 1000000;
	char s[32];
	for (int i = 0; i < 3; i++)
		assert_int_equal(pa_limiter_failed(l, "198.51.100.7", t, 3), 0);
	/* a source near its limit is the last unblocked one to go */
	pa_limiter_failed(l, "198.51.100.8", t, 3);
	pa_limiter_failed(l, "198.51.100.8", t, 3);
	for (int i = 0; i < 10000; i++) {
		snprintf(s, sizeof(s), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		pa_limiter_failed(l, s, t + 1000, 3);
	}
	assert_true(pa_limiter_blocked(l, "198.51.100.7", t + 2000, 3));
	/* now a flood of sources that each get blocked */
	int unrecorded = 0;
	for (int i = 0; i < 10000; i++) {
		snprintf(s, sizeof(s), "10.1%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		if (pa_limiter_block(l, s, t + 2000, 3) == -ENOSPC) {
			unrecorded++;
			assert_false(pa_limiter_room(l, s, t + 2000, 3));
		}
	}
	assert_true(pa_limiter_blocked(l, "198.51.100.7", t + 3000, 3));
	/* the table holds 4096: the rest found every slot blocked */
	assert_true(unrecorded >= 10000 - 4096);
	printf("10,000 blocked sources into 4096 slots: %d not recorded, none evicted\n",
	       unrecorded);
	/* a minute later the windows are over */
	assert_false(pa_limiter_blocked(l, "198.51.100.7", t + PA_RATE_WINDOW_MS, 3));
	assert_true(pa_limiter_room(l, "203.0.113.1", t + 2000 + PA_RATE_WINDOW_MS, 3));
	pa_limiter_free(l);
}

static void test_source_network(void **unused)
{
	(void)unused;
	char n[PA_SOURCE_MAX + 1];
	pa_source_network("203.0.113.77", n);
	assert_string_equal(n, "203.0.113.0/24");
	pa_source_network("2001:db8:1:2:aaaa:bbbb:cccc:dddd", n);
	assert_string_equal(n, "2001:db8:1:2::/64");
	pa_source_network("not-an-address", n);
	assert_string_equal(n, "not-an-address");
	pa_source_network(NULL, n);
	assert_string_equal(n, "-");
}

/* The three budgets together: a network's, then the global one, after
 * which each network is heard until its first failure. */
static void test_guard(void **unused)
{
	(void)unused;
	struct pa_limits max = {.address = 10, .prefix = 5, .global = 60};
	uint64_t t = 5000000;
	char s[48];
	struct pa_guard *g = pa_guard_new(&max, t);
	assert_non_null(g);

	/* five addresses of one /24, one failure each: the sixth is refused */
	for (int i = 1; i <= 5; i++) {
		snprintf(s, sizeof(s), "198.51.100.%d", i);
		assert_int_equal(pa_guard_check(g, s, t), PA_BLOCKED_NONE);
		unsigned b = pa_guard_failed(g, s, t);
		assert_int_equal(b, i == 5 ? PA_BLOCKED_NETWORK : 0);
	}
	assert_int_equal(pa_guard_check(g, "198.51.100.99", t), PA_BLOCKED_NETWORK);
	assert_int_equal(pa_guard_check(g, "198.51.101.1", t), PA_BLOCKED_NONE);

	/* the rest of the global budget (60 a minute): 55 more networks */
	for (int i = 0; i < 55; i++) {
		snprintf(s, sizeof(s), "10.%d.%d.1", i / 200, i % 200);
		assert_int_equal(pa_guard_check(g, s, t), PA_BLOCKED_NONE);
		unsigned b = pa_guard_failed(g, s, t);
		assert_int_equal(b, i == 54 ? PA_BLOCKED_GLOBAL : 0);
	}
	/* spent: a network that failed once is heard once more, then blocked */
	assert_int_equal(pa_guard_check(g, "10.0.0.2", t), PA_BLOCKED_NONE);
	assert_int_equal(pa_guard_failed(g, "10.0.0.2", t), 0);
	assert_int_equal(pa_guard_check(g, "10.0.0.3", t), PA_BLOCKED_NETWORK);
	/* a network that has not failed is heard (a valid code gets in) */
	assert_int_equal(pa_guard_check(g, "192.0.2.10", t), PA_BLOCKED_NONE);

	/* how many guesses a minute pass once the budget is spent: one per
	 * fresh network, until the table has no window left to block them in */
	int heard = 0, refused = 0;
	for (int i = 0; i < 20000; i++) {
		snprintf(s, sizeof(s), "2001:db8:%x:%x::1", i >> 8, i & 255);
		if (pa_guard_check(g, s, t + 1) == PA_BLOCKED_NONE) {
			heard++;
			pa_guard_failed(g, s, t + 1);
		} else {
			refused++;
		}
	}
	printf("20,000 fresh /64s with the budget spent: %d heard, %d refused\n", heard, refused);
	assert_true(heard <= 4096);
	assert_true(refused >= 20000 - 4096);

	/* a second later the budget holds one failure again */
	assert_int_equal(pa_guard_check(g, "2001:db8:ffff::1", t + 1001), PA_BLOCKED_NONE);
	/* a minute later everything is forgiven */
	pa_guard_expire(g, t + 1 + PA_RATE_WINDOW_MS);
	assert_int_equal(pa_guard_check(g, "198.51.100.99", t + 1 + PA_RATE_WINDOW_MS),
	                 PA_BLOCKED_NONE);
	assert_int_equal(pa_guard_check(g, "2001:db8:0:1::1", t + 1 + PA_RATE_WINDOW_MS),
	                 PA_BLOCKED_NONE);
	pa_guard_free(g);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_codes),
	    cmocka_unit_test(test_keys_and_names),
	    cmocka_unit_test(test_pool),
	    cmocka_unit_test(test_pool_spread),
	    cmocka_unit_test(test_limiter),
	    cmocka_unit_test(test_limiter_eviction),
	    cmocka_unit_test(test_source_network),
	    cmocka_unit_test(test_guard),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
