/* preauth's limits on failed redeems and registers, through the mock core
 * and its virtual clock: per network, the global budget, a flood of
 * 10,000 addresses against the table, failed registers, and a real user
 * getting in during a brute force (which prints the guesses per second
 * allowed globally). */
#include "pa_test.h"

#include "preauth.h"

/* A started mock with these limits (0: the default). */
static struct mg_mock *limits_mock(int address, int prefix, int global)
{
	json_t *config = json_object();
	if (address)
		json_object_set_new(config, "redeem_failures", json_integer(address));
	if (prefix)
		json_object_set_new(config, "prefix_failures", json_integer(prefix));
	if (global)
		json_object_set_new(config, "global_failures", json_integer(global));
	struct mg_mock *m = t_mock(NULL, config, "10.0.0.1/16");
	json_decref(config);
	if (!getenv("MG_MOCK_LOG"))
		mg_mock_log_level(m, MG_LOG_ERROR); /* floods warn by the thousand */
	return m;
}

static void expect(struct mg_mock *m, const char *code, const char *source, const char *error)
{
	json_t *r = t_redeem(m, code, source);
	if (strcmp(t_err(r), error))
		fail_msg("redeem from %s: '%s', expected '%s' (%s)", source, t_err(r), error,
		         t_get(r, "message"));
	json_decref(r);
}

static json_t *register_from(struct mg_mock *m, json_t *redeemed, const char *token,
                             const char *source)
{
	return t_call(m, "preauth.register", NULL, "{s:s, s:s, s:s, s:s, s:s}", "device_id",
	              t_get(redeemed, "device_id"), "register_token", token, "public_key",
	              CLIENT_KEY_A, "address", t_get(redeemed, "address"), "source", source);
}

/* Failures from many addresses of one /24 add up: a fresh address of it
 * is refused, even with a good code (not spent); other networks are not. */
static void test_network_limit(void **unused)
{
	(void)unused;
	struct mg_mock *m = limits_mock(10, 3, 0);
	char *code = t_add_user(m, "alice", "admin");
	char unknown[40], source[32];
	pa_code_new(unknown, sizeof(unknown));

	for (int i = 1; i <= 3; i++) {
		snprintf(source, sizeof(source), "203.0.113.%d", i);
		expect(m, unknown, source, "unknown_code");
	}
	json_t *r = t_redeem(m, code, "203.0.113.200");
	assert_string_equal(t_err(r), "rate_limited");
	assert_non_null(strstr(t_get(r, "message"), "203.0.113.0/24"));
	json_decref(r);
	assert_int_equal(devices(m), 0);
	expect(m, unknown, "203.0.114.1", "unknown_code");
	/* IPv6: the /64 is the network */
	for (int i = 1; i <= 3; i++) {
		snprintf(source, sizeof(source), "2001:db8:7:8::%d", i);
		expect(m, unknown, source, "unknown_code");
	}
	expect(m, unknown, "2001:db8:7:8:ffff::1", "rate_limited");
	expect(m, unknown, "2001:db8:7:9::1", "unknown_code");
	/* a minute later the network may try again */
	mg_mock_advance(m, PA_RATE_WINDOW_MS + 1000);
	expect(m, code, "203.0.113.200", "");
	free(code);
	mg_mock_free(m);
}

/* Once the global budget is spent, a network is blocked at its first
 * failure, and one that has not failed is still heard: a valid code gets
 * in and registers. One warning says so. */
static void test_global_limit(void **unused)
{
	(void)unused;
	struct mg_mock *m = limits_mock(10, 30, 20);
	char *code = t_add_user(m, "alice", "admin");
	char unknown[40], source[32];
	pa_code_new(unknown, sizeof(unknown));
	unsigned warnings = mg_mock_log_count(m, MG_LOG_WARN);

	for (int i = 0; i < 20; i++) {
		snprintf(source, sizeof(source), "198.18.%d.1", i);
		expect(m, unknown, source, "unknown_code");
	}
	assert_int_equal(mg_mock_log_count(m, MG_LOG_WARN), warnings + 1);
	/* 198.18.0.0/24 failed once: heard once more, then blocked */
	expect(m, unknown, "198.18.0.2", "unknown_code");
	expect(m, unknown, "198.18.0.3", "rate_limited");
	expect(m, code, "198.18.0.4", "rate_limited");
	/* a fresh network's failure blocks it at once */
	expect(m, unknown, "192.0.2.1", "unknown_code");
	expect(m, unknown, "192.0.2.2", "rate_limited");
	assert_int_equal(mg_mock_log_count(m, MG_LOG_WARN), warnings + 1);
	/* a real user elsewhere gets in */
	json_t *r = t_redeem(m, code, "198.51.100.23");
	assert_string_equal(t_err(r), "");
	json_t *reg = register_from(m, r, t_get(r, "register_token"), "198.51.100.23");
	assert_string_equal(t_err(reg), "");
	json_decref(reg);
	json_decref(r);
	/* the budget refills: 20 a minute, one every 3 s */
	mg_mock_advance(m, 3000);
	expect(m, unknown, "198.18.1.2", "unknown_code");
	expect(m, unknown, "198.18.1.3", "unknown_code");
	free(code);
	mg_mock_free(m);
}

/* A blocked address stays blocked through a flood of 10,000 fresh
 * addresses (the table holds 4096), with every budget but the address's
 * out of the way and with the defaults. */
static void test_flood_keeps_blocked(void **unused)
{
	(void)unused;
	for (int defaults = 0; defaults <= 1; defaults++) {
		struct mg_mock *m =
		    defaults ? limits_mock(3, 0, 0) : limits_mock(3, 1000000, 1000000);
		char *code = t_add_user(m, "alice", "admin");
		char unknown[40], source[32];
		pa_code_new(unknown, sizeof(unknown));
		for (int i = 0; i < 3; i++)
			expect(m, unknown, "203.0.113.9", "unknown_code");
		expect(m, code, "203.0.113.9", "rate_limited");
		for (int i = 0; i < 10000; i++) {
			snprintf(source, sizeof(source), "10.%d.%d.%d", 1 + i / 65536,
			         (i / 256) % 256, i % 256);
			json_t *r = t_redeem(m, unknown, source);
			assert_true(!strcmp(t_err(r), "unknown_code") ||
			            !strcmp(t_err(r), "rate_limited"));
			json_decref(r);
		}
		expect(m, code, "203.0.113.9", "rate_limited");
		assert_int_equal(devices(m), 0);
		/* and a real user from elsewhere still gets in */
		expect(m, code, "198.51.100.23", "");
		free(code);
		mg_mock_free(m);
	}
}

/* Failed registers (unknown device, wrong token) count like failed
 * redeems: the source is refused, even with the right token. */
static void test_register_limit(void **unused)
{
	(void)unused;
	struct mg_mock *m = limits_mock(3, 0, 0);
	char *code = t_add_user(m, "alice", "admin");
	json_t *redeemed = t_redeem(m, code, "198.51.100.23");
	assert_string_equal(t_err(redeemed), "");
	char wrong[64];
	pa_token_new(wrong, sizeof(wrong));
	for (int i = 0; i < 3; i++) {
		json_t *r = register_from(m, redeemed, wrong, "203.0.113.66");
		assert_string_equal(t_err(r), "not_found");
		json_decref(r);
	}
	json_t *r = register_from(m, redeemed, t_get(redeemed, "register_token"), "203.0.113.66");
	assert_string_equal(t_err(r), "rate_limited");
	json_decref(r);
	/* and a redeem from there too: one budget for both */
	char unknown[40];
	pa_code_new(unknown, sizeof(unknown));
	expect(m, unknown, "203.0.113.66", "rate_limited");
	/* the device's own address is not affected */
	r = register_from(m, redeemed, t_get(redeemed, "register_token"), "198.51.100.23");
	assert_string_equal(t_err(r), "");
	json_decref(r);
	json_decref(redeemed);
	free(code);
	mg_mock_free(m);
}

/* A brute force at 1000 guesses/s for a minute of the virtual clock, a
 * fresh address every 10 guesses (the attack of issue 10), while a real
 * user redeems and registers in the middle of it. `v6`: each address in a
 * fresh /64 instead, the widest an attacker can spread. Returns the
 * guesses heard (answered other than rate_limited). */
static int brute_force(int v6)
{
	struct mg_mock *m = limits_mock(0, 0, 0); /* the defaults */
	char *code = t_add_user(m, "alice", "admin");
	char unknown[40], source[48];
	pa_code_new(unknown, sizeof(unknown));
	int heard = 0, guesses = 60000;
	for (int i = 0; i < guesses; i++) {
		int a = i / 10;
		if (v6)
			snprintf(source, sizeof(source), "2001:db8:%x:%x::1", a >> 16, a & 0xffff);
		else
			snprintf(source, sizeof(source), "10.%d.%d.%d", 1 + a / 65536,
			         (a / 256) % 256, a % 256);
		json_t *r = t_redeem(m, unknown, source);
		if (strcmp(t_err(r), "rate_limited"))
			heard++;
		json_decref(r);
		mg_mock_advance(m, 1);
		if (i == guesses / 2) {
			json_t *real = t_redeem(m, code, "198.51.100.23");
			if (v6 && !strcmp(t_err(real), "rate_limited")) {
				/* the price of the bound (docs/preauth.md): with
				 * thousands of blocked networks, the real user's
				 * network may find no slot of the table free */
				printf("brute force from /64s: the real user's network found "
				       "the table full\n");
				json_decref(real);
				continue;
			}
			assert_string_equal(t_err(real), "");
			json_t *reg =
			    register_from(m, real, t_get(real, "register_token"), "198.51.100.23");
			assert_string_equal(t_err(reg), "");
			json_decref(reg);
			json_decref(real);
		}
	}
	printf("brute force, %s: %d of %d guesses heard in 60 s: %.1f guesses/s allowed "
	       "globally\n",
	       v6 ? "a fresh /64 every 10 guesses" : "a fresh IPv4 address every 10 guesses", heard,
	       guesses, heard / 60.0);
	free(code);
	mg_mock_free(m);
	return heard;
}

static void test_brute_force(void **unused)
{
	(void)unused;
	/* defaults: 10 an address, 100 a /24, 120 a minute in all. Within a
	 * minute: the budget (a full bucket and a minute's refill, 240) plus
	 * one guess a network, as many as the table holds (4096) */
	int v4 = brute_force(0);
	assert_true(v4 <= 240 + 24); /* 6000 addresses are 24 /24s */
	int v6 = brute_force(1);
	assert_true(v6 <= 240 + 4096);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_network_limit),       cmocka_unit_test(test_global_limit),
	    cmocka_unit_test(test_flood_keeps_blocked), cmocka_unit_test(test_register_limit),
	    cmocka_unit_test(test_brute_force),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
