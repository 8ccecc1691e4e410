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
	assert_int_equal(pa_duration_parse("30s", &ms, err, sizeof(err)), 0);
	assert_true(ms == 30000);
	assert_int_equal(pa_duration_parse("10m", &ms, err, sizeof(err)), 0);
	assert_true(ms == 600000);
	assert_int_equal(pa_duration_parse("24h", &ms, err, sizeof(err)), 0);
	assert_true(ms == 86400000);
	assert_int_equal(pa_duration_parse("7d", &ms, err, sizeof(err)), 0);
	assert_true(ms == 7ULL * 86400000);
	static const char *const bad[] = {
	    "",    "24",  "h",   "0s", "010m", "1.5h",  "1h30m",
	    "-1h", " 1h", "1h ", "1H", "1w",   "3651d", "99999999999999d"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (pa_duration_parse(bad[i], &ms, err, sizeof(err)) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_true(strlen(err) > 10);
	}
	assert_int_equal(pa_duration_parse(NULL, &ms, err, sizeof(err)), -EINVAL);
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
		pa_limiter_failed(l, "a", t);
	}
	assert_true(pa_limiter_blocked(l, "a", t + 1000, 3));
	assert_false(pa_limiter_blocked(l, "b", t, 3));
	assert_false(pa_limiter_blocked(l, "a", t + PA_RATE_WINDOW_MS, 3));
	/* many sources: memory stays bounded and recent ones are kept */
	for (int i = 0; i < 20000; i++) {
		char s[32];
		snprintf(s, sizeof(s), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		pa_limiter_failed(l, s, t + 2000);
	}
	for (int i = 0; i < 3; i++)
		pa_limiter_failed(l, NULL, t + 3000);
	assert_true(pa_limiter_blocked(l, "", t + 3000, 3));
	pa_limiter_expire(l, t + 3000 + PA_RATE_WINDOW_MS);
	assert_false(pa_limiter_blocked(l, NULL, t + 3000 + PA_RATE_WINDOW_MS, 3));
	pa_limiter_free(l);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_durations),      cmocka_unit_test(test_codes),
	    cmocka_unit_test(test_keys_and_names), cmocka_unit_test(test_pool),
	    cmocka_unit_test(test_limiter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
