/* preauth through the mock core: users, codes, redeem, register, the
 * reaper, the address pool, the events, and bad input changing nothing. */
#include <math.h>

#include "pa_test.h"

#include "metrics.h"
#include "preauth.h"

static void test_users(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	int rc;
	uint64_t now_s = mg_mock_now(m) / 1000;

	mg_mock_events_clear(m);
	json_t *r =
	    t_call(m, "preauth.user.add", &rc, "{s:s, s:s}", "name", "alice", "role", "admin");
	assert_int_equal(rc, 0);
	assert_string_equal(t_get(r, "user"), "alice");
	assert_string_equal(t_get(r, "role"), "admin");
	assert_int_equal(strlen(t_get(r, "code")), PA_CODE_SYMBOLS + PA_CODE_SYMBOLS / 4 - 1);
	json_int_t expires_at = json_integer_value(json_object_get(r, "expires_at"));
	assert_true(expires_at >= (json_int_t)now_s + 86400 - 1 &&
	            expires_at <= (json_int_t)now_s + 86400 + 1);
	json_decref(r);
	json_t *ev = last_event(m, "user.changed");
	assert_non_null(ev);
	assert_string_equal(t_get(ev, "name"), "alice");
	assert_string_equal(t_get(ev, "state"), "active");

	r = t_call(m, "preauth.user.add", &rc, "{s:s, s:s}", "name", "alice", "role", "admin");
	assert_int_equal(rc, -EREMOTEIO);
	assert_string_equal(t_err(r), "exists");
	json_decref(r);

	static const char *const bad_names[] = {
	    "Alice", "-bob", "bob-", "a b", "", "abcdefghijklmnopqrstuvwxyz0123456"};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		r = t_call(m, "preauth.user.add", NULL, "{s:s, s:s}", "name", bad_names[i], "role",
		           "admin");
		assert_string_equal(t_err(r), "bad_request");
		json_decref(r);
	}
	r = t_call(m, "preauth.user.add", NULL, "{s:s, s:s}", "name", "bob", "role", "root");
	assert_string_equal(t_err(r), "bad_request");
	assert_non_null(strstr(t_get(r, "message"), "admin, developer"));
	json_decref(r);
	r = t_call(m, "preauth.user.add", NULL, "{s:s, s:i}", "name", "bob", "role", 3);
	assert_string_equal(t_err(r), "bad_request");
	json_decref(r);
	r = t_call(m, "preauth.user.add", NULL, "{s:s, s:s, s:s}", "name", "bob", "role", "admin",
	           "expire", "1h");
	assert_string_equal(t_err(r), "bad_request");
	assert_non_null(strstr(t_get(r, "message"), "expire"));
	json_decref(r);
	r = t_call(m, "preauth.user.add", NULL, "{s:s, s:s, s:s}", "name", "bob", "role", "admin",
	           "expires", "1 h");
	assert_string_equal(t_err(r), "bad_request");
	json_decref(r);
	r = t_call(m, "preauth.user.add", &rc, "{s:s, s:s, s:s}", "name", "bob", "role",
	           "developer", "expires", "2h");
	assert_int_equal(rc, 0);
	assert_true(json_integer_value(json_object_get(r, "expires_at")) <=
	            (json_int_t)now_s + 7201);
	json_decref(r);

	r = t_call(m, "preauth.code.add", &rc, "{s:s}", "user", "alice");
	assert_int_equal(rc, 0);
	assert_string_equal(t_get(r, "role"), "admin");
	assert_int_equal(strlen(t_get(r, "code")), 34);
	json_decref(r);
	r = t_call(m, "preauth.code.add", NULL, "{s:s}", "user", "zed");
	assert_string_equal(t_err(r), "not_found");
	json_decref(r);

	r = t_call(m, "preauth.user.list", &rc, "{}");
	assert_int_equal(rc, 0);
	json_t *users = json_object_get(r, "users");
	assert_int_equal(json_array_size(users), 2);
	assert_string_equal(t_get(json_array_get(users, 0), "name"), "alice");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(users, 0), "devices")),
	                 0);
	assert_true(json_is_integer(json_object_get(json_array_get(users, 1), "created_at")));
	json_decref(r);

	mg_mock_events_clear(m);
	r = t_call(m, "preauth.user.set_role", &rc, "{s:s, s:s}", "name", "bob", "role", "admin");
	assert_int_equal(rc, 0);
	json_decref(r);
	assert_string_equal(t_get(last_event(m, "user.changed"), "role"), "admin");
	r = t_call(m, "preauth.user.set_role", NULL, "{s:s, s:s}", "name", "bob", "role", "boss");
	assert_string_equal(t_err(r), "bad_request");
	json_decref(r);
	r = t_call(m, "preauth.user.set_role", NULL, "{s:s, s:s}", "name", "carol", "role",
	           "admin");
	assert_string_equal(t_err(r), "not_found");
	json_decref(r);

	r = t_call(m, "preauth.user.del", &rc, "{s:s}", "name", "bob");
	assert_int_equal(rc, 0);
	json_decref(r);
	assert_string_equal(t_get(last_event(m, "user.changed"), "state"), "deleted");
	r = t_call(m, "preauth.user.del", NULL, "{s:s}", "name", "bob");
	assert_string_equal(t_err(r), "not_found");
	json_decref(r);
	assert_int_equal(mg_mock_state_count(m, "users", NULL), 1);
	mg_mock_free(m);
}

static void test_redeem_and_register(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	char *code = t_add_user(m, "alice", "admin");
	int rc;

	/* typed by a person: lowercase, no dashes, O for 0 and l for 1 */
	char typed[64], canonical[PA_CODE_SYMBOLS + 1], hash[PA_HASH_HEX + 1];
	size_t n = 0;
	for (const char *c = code; *c; c++)
		if (*c != '-')
			typed[n++] = *c == '0' ? 'O' : *c == '1' ? 'l' : (char)(*c | 0x20);
	typed[n] = '\0';
	mg_mock_events_clear(m);
	json_t *r = t_call(m, "preauth.redeem", &rc, "{s:s, s:s, s:s}", "code", typed, "source",
	                   "192.0.2.7", "name", "Alice-Laptop.corp.example");
	assert_int_equal(rc, 0);
	assert_true(pa_device_id_valid(t_get(r, "device_id")));
	assert_string_equal(t_get(r, "address"), "10.0.0.2/32");
	assert_string_equal(t_get(r, "server_public_key"), SERVER_KEY);
	assert_string_equal(t_get(r, "endpoint"), "vpn.example.com:51820");
	assert_string_equal(json_string_value(json_array_get(json_object_get(r, "allowed_ips"), 0)),
	                    "10.0.0.0/24");
	assert_int_equal(json_integer_value(json_object_get(r, "keepalive")), 25);
	const char *token = t_get(r, "register_token");
	assert_true(strlen(token) >= 43);

	json_t *ev = last_event(m, "device.changed");
	assert_string_equal(t_get(ev, "id"), t_get(r, "device_id"));
	assert_string_equal(t_get(ev, "state"), "pending");
	assert_string_equal(t_get(ev, "role"), "admin");
	assert_string_equal(t_get(ev, "user"), "alice");
	assert_string_equal(t_get(ev, "address"), "10.0.0.2/32");
	assert_true(json_is_null(json_object_get(ev, "public_key")));
	assert_int_equal(mg_mock_event_count(m, "state.devices"), 1);
	assert_int_equal(mg_mock_event_count(m, "state.ipam"), 1);
	assert_int_equal(mg_mock_event_count(m, "state.codes"), 1);

	/* only hashes are stored: of the code as key, of the token in the device */
	assert_int_equal(pa_code_normalize(code, canonical), 0);
	pa_code_hash(canonical, hash);
	json_t *stored;
	assert_int_equal(mg_mock_state_get(m, "codes", hash, &stored), 0);
	assert_string_equal(t_get(stored, "state"), "used");
	char *text = json_dumps(stored, 0);
	assert_null(strstr(text, canonical));
	free(text);
	json_decref(stored);
	assert_int_equal(mg_mock_state_get(m, "codes", canonical, &stored), -ENOENT);
	assert_int_equal(mg_mock_state_get(m, "devices", t_get(r, "device_id"), &stored), 0);
	text = json_dumps(stored, 0);
	assert_null(strstr(text, token));
	free(text);
	assert_string_equal(t_get(stored, "name"), "alice-laptop");
	json_decref(stored);

	mg_mock_events_clear(m);
	json_t *reg = t_register(m, r, CLIENT_KEY_A);
	assert_string_equal(t_err(reg), "");
	assert_string_equal(t_get(reg, "state"), "active");
	assert_string_equal(t_get(reg, "device_id"), t_get(r, "device_id"));
	json_decref(reg);
	ev = last_event(m, "device.changed");
	assert_string_equal(t_get(ev, "state"), "active");
	assert_string_equal(t_get(ev, "public_key"), CLIENT_KEY_A);

	/* a retry after a lost reply gets the same answer and announces nothing */
	mg_mock_events_clear(m);
	reg = t_register(m, r, CLIENT_KEY_A);
	assert_string_equal(t_err(reg), "");
	json_decref(reg);
	assert_int_equal(mg_mock_event_count(m, NULL), 0);

	json_t *list = t_call(m, "preauth.device.list", &rc, "{s:s}", "user", "alice");
	assert_int_equal(rc, 0);
	json_t *d = json_array_get(json_object_get(list, "devices"), 0);
	assert_string_equal(t_get(d, "state"), "active");
	assert_string_equal(t_get(d, "public_key"), CLIENT_KEY_A);
	assert_string_equal(t_get(d, "source"), "192.0.2.7");
	assert_null(json_object_get(d, "token_hash"));
	json_decref(list);
	list = t_call(m, "preauth.user.list", NULL, "{}");
	assert_int_equal(json_integer_value(json_object_get(
	                     json_array_get(json_object_get(list, "users"), 0), "devices")),
	                 1);
	json_decref(list);

	json_decref(r);
	free(code);
	mg_mock_free(m);
}

/* A failed redeem changes nothing: devices, leases, and the next address
 * handed out is still the lowest. */
static void assert_refused(struct mg_mock *m, const char *code, const char *error)
{
	long d = devices(m), l = leases(m);
	size_t changes = mg_mock_event_count(m, "device.changed");
	json_t *r = t_redeem(m, code, "198.51.100.1");
	assert_string_equal(t_err(r), error);
	assert_true(strlen(t_get(r, "message")) > 10);
	json_decref(r);
	assert_int_equal(devices(m), d);
	assert_int_equal(leases(m), l);
	assert_int_equal(mg_mock_event_count(m, "device.changed"), changes);
}

/* preauth.metrics: devices by state and role; onboardings counted once
 * each, a register repeated after a lost reply not again; refusals by
 * reason. */
static void test_metrics(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	char *code = t_add_user(m, "alice", "admin");
	int rc;
	json_t *r = t_redeem(m, code, "192.0.2.7");
	assert_string_equal(t_err(r), "");
	json_t *reply = t_call(m, "preauth.metrics", &rc, "{}");
	json_t *families = json_object_get(reply, "families");
	assert_int_equal(rc, 0);
	assert_true(metrics_lookup(families, "meshgate_devices", "state", "pending") == 1);
	assert_true(isnan(metrics_lookup(families, "meshgate_devices", "state", "active")));
	assert_true(metrics_lookup(families, "meshgate_onboardings_total", "step", "redeem") == 1);
	assert_true(metrics_lookup(families, "meshgate_onboardings_total", "step", "register") ==
	            0);
	json_decref(reply);

	json_t *reg = t_register(m, r, CLIENT_KEY_A);
	assert_string_equal(t_err(reg), "");
	json_decref(reg);
	reg = t_register(m, r, CLIENT_KEY_A); /* the reply was lost: asked again */
	assert_string_equal(t_err(reg), "");
	json_decref(reg);
	json_decref(t_redeem(m, code, "192.0.2.7"));                          /* code_used */
	json_decref(t_redeem(m, "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG", NULL)); /* unknown_code */
	reply = t_call(m, "preauth.metrics", &rc, "{}");
	families = json_object_get(reply, "families");
	assert_true(metrics_lookup(families, "meshgate_devices", "state", "active") == 1);
	assert_true(metrics_lookup(families, "meshgate_devices", "role", "admin") == 1);
	assert_true(isnan(metrics_lookup(families, "meshgate_devices", "state", "pending")));
	assert_true(metrics_lookup(families, "meshgate_onboardings_total", "step", "register") ==
	            1);
	assert_true(metrics_lookup(families, "meshgate_onboarding_refusals_total", "reason",
	                           "code_used") == 1);
	assert_true(metrics_lookup(families, "meshgate_onboarding_refusals_total", "reason",
	                           "unknown_code") == 1);
	json_decref(reply);
	/* it takes no arguments */
	reply = t_call(m, "preauth.metrics", &rc, "{s:i}", "x", 1);
	assert_string_equal(t_err(reply), "bad_request");
	json_decref(reply);
	json_decref(r);
	free(code);
	mg_mock_free(m);
}

static void test_redeem_errors(void **unused)
{
	(void)unused;
	json_t *config = json_pack("{s:i}", "redeem_failures", 100);
	struct mg_mock *m = t_mock(NULL, config, "10.0.0.1/24");
	json_decref(config);
	char *used = t_add_user(m, "alice", "admin");
	char *revoked = t_new_code(m, "alice", NULL);
	char *expiring = t_new_code(m, "alice", "1m");
	char unknown[40];
	pa_code_new(unknown, sizeof(unknown));

	json_t *r = t_redeem(m, used, NULL);
	assert_string_equal(t_err(r), "");
	json_decref(r);

	assert_refused(m, unknown, "unknown_code");
	assert_refused(m, used, "code_used");
	assert_refused(m, "ABCD-EFGH", "bad_request");
	assert_refused(m, "UUUU-UUUU-UUUU-UUUU-UUUU-UUUU-UUUU", "bad_request");

	r = t_call(m, "preauth.code.revoke", NULL, "{s:s}", "code", revoked);
	assert_string_equal(t_err(r), "");
	assert_string_equal(t_get(r, "state"), "revoked");
	json_decref(r);
	assert_refused(m, revoked, "code_revoked");
	r = t_call(m, "preauth.code.revoke", NULL, "{s:s}", "code", used);
	assert_string_equal(t_err(r), "conflict");
	json_decref(r);
	r = t_call(m, "preauth.code.revoke", NULL, "{s:s}", "code", unknown);
	assert_string_equal(t_err(r), "not_found");
	json_decref(r);

	mg_mock_advance(m, 61 * 1000);
	assert_refused(m, expiring, "code_expired");

	/* and the pool is untouched: the next device gets the next address */
	char *fresh = t_new_code(m, "alice", NULL);
	r = t_redeem(m, fresh, NULL);
	assert_string_equal(t_get(r, "address"), "10.0.0.3/32");
	json_decref(r);

	free(used);
	free(revoked);
	free(expiring);
	free(fresh);
	mg_mock_free(m);
}

static void test_rate_limit(void **unused)
{
	(void)unused;
	json_t *config = json_pack("{s:i}", "redeem_failures", 3);
	struct mg_mock *m = t_mock(NULL, config, "10.0.0.1/24");
	json_decref(config);
	char *code = t_add_user(m, "alice", "admin");
	char unknown[40];
	pa_code_new(unknown, sizeof(unknown));

	for (int i = 0; i < 3; i++) {
		json_t *r = t_redeem(m, unknown, "203.0.113.9");
		assert_string_equal(t_err(r), "unknown_code");
		json_decref(r);
	}
	/* even a good code is refused from there, and is not spent */
	json_t *r = t_redeem(m, code, "203.0.113.9");
	assert_string_equal(t_err(r), "rate_limited");
	json_decref(r);
	assert_int_equal(devices(m), 0);
	/* another source is not affected */
	r = t_redeem(m, unknown, "203.0.113.10");
	assert_string_equal(t_err(r), "unknown_code");
	json_decref(r);
	/* a minute later the source may try again */
	mg_mock_advance(m, 61 * 1000);
	r = t_redeem(m, code, "203.0.113.9");
	assert_string_equal(t_err(r), "");
	json_decref(r);
	free(code);
	mg_mock_free(m);
}

static void test_register_errors(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	char *c1 = t_add_user(m, "alice", "admin");
	char *c2 = t_new_code(m, "alice", NULL);
	json_t *a = t_redeem(m, c1, NULL), *b = t_redeem(m, c2, NULL), *r;

	r = t_call(m, "preauth.register", NULL, "{s:s, s:s, s:s, s:s}", "device_id",
	           t_get(a, "device_id"), "register_token", t_get(b, "register_token"),
	           "public_key", CLIENT_KEY_A, "address", t_get(a, "address"));
	assert_string_equal(t_err(r), "not_found");
	json_decref(r);
	r = t_call(m, "preauth.register", NULL, "{s:s, s:s, s:s, s:s}", "device_id",
	           "0123456789abcdef", "register_token", t_get(a, "register_token"), "public_key",
	           CLIENT_KEY_A, "address", t_get(a, "address"));
	assert_string_equal(t_err(r), "not_found");
	json_decref(r);

	static const char *const bad_keys[] = {
	    "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8yk=",      /* 43 characters */
	    "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw",      /* no padding */
	    "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw==",    /* 45 characters */
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",     /* all zero */
	    "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8yk!=",     /* not base64 */
	    "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykwAAAAA", /* 36 bytes */
	};
	for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
		r = t_register(m, a, bad_keys[i]);
		assert_string_equal(t_err(r), "bad_request");
		json_decref(r);
	}
	r = t_call(m, "preauth.register", NULL, "{s:s, s:s, s:s, s:s}", "device_id",
	           t_get(a, "device_id"), "register_token", t_get(a, "register_token"),
	           "public_key", CLIENT_KEY_A, "address", t_get(b, "address"));
	assert_string_equal(t_err(r), "bad_request");
	json_decref(r);

	r = t_register(m, a, CLIENT_KEY_A);
	assert_string_equal(t_err(r), "");
	json_decref(r);
	mg_mock_events_clear(m);
	r = t_register(m, b, CLIENT_KEY_A); /* a's key */
	assert_string_equal(t_err(r), "conflict");
	json_decref(r);
	r = t_register(m, a, CLIENT_KEY_B); /* a is registered with another key */
	assert_string_equal(t_err(r), "conflict");
	json_decref(r);
	assert_int_equal(mg_mock_event_count(m, NULL), 0);

	json_t *dev;
	assert_int_equal(mg_mock_state_get(m, "devices", t_get(b, "device_id"), &dev), 0);
	assert_string_equal(t_get(dev, "state"), "pending");
	json_decref(dev);
	r = t_register(m, b, CLIENT_KEY_B);
	assert_string_equal(t_err(r), "");
	json_decref(r);

	json_decref(a);
	json_decref(b);
	free(c1);
	free(c2);
	mg_mock_free(m);
}

static void test_pending_reaped(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	char *c1 = t_add_user(m, "alice", "admin");
	char *c2 = t_new_code(m, "alice", NULL);
	json_t *a = t_redeem(m, c1, NULL);
	assert_string_equal(t_get(a, "address"), "10.0.0.2/32");
	assert_int_equal(leases(m), 1);

	mg_mock_advance(m, 9 * 60 * 1000);
	assert_int_equal(devices(m), 1);
	mg_mock_events_clear(m);
	mg_mock_advance(m, 60 * 1000 + 5000); /* past pending_ttl (10m) and a reaper tick */
	assert_int_equal(devices(m), 0);
	assert_int_equal(leases(m), 0);
	json_t *ev = last_event(m, "device.changed");
	assert_non_null(ev);
	assert_string_equal(t_get(ev, "state"), "deleted");
	assert_string_equal(t_get(ev, "id"), t_get(a, "device_id"));

	json_t *r = t_register(m, a, CLIENT_KEY_A);
	assert_string_equal(t_err(r), "not_found");
	json_decref(r);
	/* the freed address is handed out again */
	r = t_redeem(m, c2, NULL);
	assert_string_equal(t_get(r, "address"), "10.0.0.2/32");
	json_decref(r);

	json_decref(a);
	free(c1);
	free(c2);
	mg_mock_free(m);
}

static void test_single_use(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	char *code = t_add_user(m, "alice", "admin");
	int ok = 0, used = 0;
	for (int i = 0; i < 100; i++) {
		char source[32];
		snprintf(source, sizeof(source), "192.0.2.%d", i);
		json_t *r = t_redeem(m, code, source);
		ok += !mg_reply_error(r);
		used += !strcmp(t_err(r), "code_used");
		json_decref(r);
	}
	assert_int_equal(ok, 1);
	assert_int_equal(used, 99);
	assert_int_equal(devices(m), 1);
	assert_int_equal(leases(m), 1);
	free(code);
	mg_mock_free(m);
}

static void test_exhaustion(void **unused)
{
	(void)unused;
	/* a /29: .0 network, .1 server, .7 broadcast, .2 to .6 for devices */
	struct mg_mock *m = t_mock(NULL, NULL, "10.9.0.1/29");
	char *codes[6];
	json_t *r[5];
	codes[0] = t_add_user(m, "alice", "admin");
	for (int i = 1; i < 6; i++)
		codes[i] = t_new_code(m, "alice", NULL);
	for (int i = 0; i < 5; i++) {
		r[i] = t_redeem(m, codes[i], NULL);
		char want[32];
		snprintf(want, sizeof(want), "10.9.0.%d/32", i + 2);
		assert_string_equal(t_get(r[i], "address"), want);
	}
	json_t *full = t_redeem(m, codes[5], NULL);
	assert_string_equal(t_err(full), "exhausted");
	assert_non_null(strstr(t_get(full, "message"), "10.9.0.0/29"));
	json_decref(full);
	assert_int_equal(devices(m), 5);

	/* the code was not spent: once an address is free it works */
	json_t *del =
	    t_call(m, "preauth.device.del", NULL, "{s:s}", "id", t_get(r[2], "device_id"));
	assert_string_equal(t_err(del), "");
	json_decref(del);
	full = t_redeem(m, codes[5], NULL);
	assert_string_equal(t_get(full, "address"), "10.9.0.4/32");
	json_decref(full);

	for (int i = 0; i < 5; i++)
		json_decref(r[i]);
	for (int i = 0; i < 6; i++)
		free(codes[i]);
	mg_mock_free(m);
}

static void test_device_admin(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	char *c1 = t_add_user(m, "alice", "admin");
	char *c2 = t_add_user(m, "bob", "developer");
	json_t *a = t_redeem(m, c1, NULL), *b = t_redeem(m, c2, NULL), *r;
	const char *id = t_get(a, "device_id");

	r = t_call(m, "preauth.device.disable", NULL, "{s:s}", "id", id);
	assert_string_equal(t_err(r), "conflict"); /* pending: nothing to disable yet */
	json_decref(r);
	json_decref(t_register(m, a, CLIENT_KEY_A));

	mg_mock_events_clear(m);
	r = t_call(m, "preauth.device.disable", NULL, "{s:s}", "id", id);
	assert_string_equal(t_get(r, "state"), "disabled");
	json_decref(r);
	assert_string_equal(t_get(last_event(m, "device.changed"), "state"), "disabled");
	r = t_register(m, a, CLIENT_KEY_A);
	assert_string_equal(t_err(r), "conflict");
	json_decref(r);
	r = t_call(m, "preauth.device.enable", NULL, "{s:s}", "id", id);
	assert_string_equal(t_get(r, "state"), "active");
	json_decref(r);
	assert_string_equal(t_get(last_event(m, "device.changed"), "state"), "active");
	assert_string_equal(t_get(last_event(m, "device.changed"), "public_key"), CLIENT_KEY_A);

	r = t_call(m, "preauth.device.list", NULL, "{}");
	assert_int_equal(json_array_size(json_object_get(r, "devices")), 2);
	json_decref(r);
	r = t_call(m, "preauth.device.list", NULL, "{s:s}", "user", "bob");
	assert_int_equal(json_array_size(json_object_get(r, "devices")), 1);
	assert_string_equal(t_get(json_array_get(json_object_get(r, "devices"), 0), "role"),
	                    "developer");
	json_decref(r);
	r = t_call(m, "preauth.device.list", NULL, "{s:s}", "user", "carol");
	assert_string_equal(t_err(r), "not_found");
	json_decref(r);

	/* a role change reaches the devices and is announced for each */
	mg_mock_events_clear(m);
	r = t_call(m, "preauth.user.set_role", NULL, "{s:s, s:s}", "name", "bob", "role", "admin");
	assert_int_equal(json_integer_value(json_object_get(r, "devices")), 1);
	json_decref(r);
	json_t *ev = last_event(m, "device.changed");
	assert_string_equal(t_get(ev, "id"), t_get(b, "device_id"));
	assert_string_equal(t_get(ev, "role"), "admin");

	r = t_call(m, "preauth.device.del", NULL, "{s:s}", "id", id);
	assert_string_equal(t_get(r, "state"), "deleted");
	json_decref(r);
	assert_string_equal(t_get(last_event(m, "device.changed"), "state"), "deleted");
	r = t_call(m, "preauth.device.del", NULL, "{s:s}", "id", id);
	assert_string_equal(t_err(r), "not_found");
	json_decref(r);
	r = t_call(m, "preauth.device.enable", NULL, "{s:s}", "id", "not-an-id");
	assert_string_equal(t_err(r), "bad_request");
	json_decref(r);
	/* a's key is free again once a is gone */
	r = t_register(m, b, CLIENT_KEY_A);
	assert_string_equal(t_err(r), "");
	json_decref(r);

	json_decref(a);
	json_decref(b);
	free(c1);
	free(c2);
	mg_mock_free(m);
}

/* The device list's pages (limit, after) and search (q): every device
 * once, in id order, and only the matching ones. */
static void test_device_pages(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	char name[16];
	for (int i = 0; i < 7; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		char *code = t_add_user(m, name, "developer");
		json_decref(t_redeem(m, code, NULL));
		free(code);
	}
	json_t *all = t_call(m, "preauth.device.list", NULL, "{}");
	assert_int_equal(json_array_size(json_object_get(all, "devices")), 7);
	assert_null(json_object_get(all, "next"));

	/* pages of 3: 3, 3, 1, each after the last, together the whole list */
	char after[32] = "";
	size_t seen = 0;
	for (int page = 0; page < 3; page++) {
		json_t *r = *after ? t_call(m, "preauth.device.list", NULL, "{s:i, s:s}", "limit",
		                            3, "after", after)
		                   : t_call(m, "preauth.device.list", NULL, "{s:i}", "limit", 3);
		json_t *devices = json_object_get(r, "devices"), *d;
		size_t i;
		assert_int_equal(json_array_size(devices), page < 2 ? 3 : 1);
		json_array_foreach(devices, i, d)
		{
			const char *id = t_get(d, "id");
			assert_true(strcmp(id, after) > 0);
			/* the same device as the whole list has at that place */
			assert_string_equal(
			    id, t_get(json_array_get(json_object_get(all, "devices"), seen), "id"));
			snprintf(after, sizeof(after), "%s", id);
			seen++;
		}
		if (page < 2)
			assert_string_equal(t_get(r, "next"), after);
		else
			assert_null(json_object_get(r, "next"));
		json_decref(r);
	}
	assert_int_equal(seen, 7);

	json_t *r = t_call(m, "preauth.device.list", NULL, "{s:s}", "q", "USER4");
	assert_int_equal(json_array_size(json_object_get(r, "devices")), 1);
	assert_string_equal(t_get(json_array_get(json_object_get(r, "devices"), 0), "user"),
	                    "user4");
	json_decref(r);
	r = t_call(m, "preauth.device.list", NULL, "{s:s, s:i}", "q", "user", "limit", 2);
	assert_int_equal(json_array_size(json_object_get(r, "devices")), 2);
	assert_non_null(json_object_get(r, "next"));
	json_decref(r);
	r = t_call(m, "preauth.device.list", NULL, "{s:s}", "q", "nobody");
	assert_int_equal(json_array_size(json_object_get(r, "devices")), 0);
	json_decref(r);
	r = t_call(m, "preauth.device.list", NULL, "{s:i}", "limit", 0);
	assert_string_equal(t_err(r), "bad_request");
	json_decref(r);
	r = t_call(m, "preauth.device.list", NULL, "{s:s}", "after", "../x");
	assert_string_equal(t_err(r), "bad_request");
	json_decref(r);
	r = t_call(m, "preauth.device.list", NULL, "{s:s}", "q", "a\nb");
	assert_string_equal(t_err(r), "bad_request");
	json_decref(r);

	/* the index follows deletions, and a user's deletion of its devices */
	json_decref(t_call(m, "preauth.user.del", NULL, "{s:s}", "name", "user4"));
	json_t *left = t_call(m, "preauth.device.list", NULL, "{}");
	char first[32];
	snprintf(first, sizeof(first), "%s",
	         t_get(json_array_get(json_object_get(left, "devices"), 0), "id"));
	json_decref(left);
	json_decref(t_call(m, "preauth.device.del", NULL, "{s:s}", "id", first));
	r = t_call(m, "preauth.device.list", NULL, "{s:i}", "limit", 10);
	assert_int_equal(json_array_size(json_object_get(r, "devices")), 5);
	assert_string_not_equal(t_get(json_array_get(json_object_get(r, "devices"), 0), "id"),
	                        first);
	json_decref(r);
	r = t_call(m, "preauth.device.list", NULL, "{s:s}", "q", "user4");
	assert_int_equal(json_array_size(json_object_get(r, "devices")), 0);
	json_decref(r);
	json_decref(all);
	mg_mock_free(m);
}

static void test_user_del_cascade(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	char *c1 = t_add_user(m, "alice", "admin");
	char *c2 = t_new_code(m, "alice", NULL);
	char *c3 = t_new_code(m, "alice", NULL);
	char *other = t_add_user(m, "bob", "admin");
	json_t *a = t_redeem(m, c1, NULL), *b = t_redeem(m, c2, NULL);
	json_decref(t_register(m, a, CLIENT_KEY_A));
	assert_int_equal(leases(m), 2);

	mg_mock_events_clear(m);
	json_t *r = t_call(m, "preauth.user.del", NULL, "{s:s}", "name", "alice");
	assert_int_equal(json_integer_value(json_object_get(r, "devices_deleted")), 2);
	assert_int_equal(json_integer_value(json_object_get(r, "codes_revoked")), 1);
	json_decref(r);
	assert_int_equal(devices(m), 0);
	assert_int_equal(leases(m), 0);
	assert_int_equal(mg_mock_event_count(m, "device.changed"), 2);
	assert_int_equal(mg_mock_event_count(m, "user.changed"), 1);
	assert_string_equal(t_get(last_event(m, "user.changed"), "state"), "deleted");

	r = t_redeem(m, c3, NULL);
	assert_string_equal(t_err(r), "code_revoked");
	json_decref(r);
	/* a's key and address are free for others */
	r = t_redeem(m, other, NULL);
	assert_string_equal(t_get(r, "address"), "10.0.0.2/32");
	json_t *reg = t_register(m, r, CLIENT_KEY_A);
	assert_string_equal(t_err(reg), "");
	json_decref(reg);
	json_decref(r);

	json_decref(a);
	json_decref(b);
	free(c1);
	free(c2);
	free(c3);
	free(other);
	mg_mock_free(m);
}

static void test_bad_input_changes_nothing(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	char *code = t_add_user(m, "alice", "admin");
	json_t *a = t_redeem(m, code, NULL);
	static const char *const services[] = {
	    "preauth.user.add",       "preauth.code.add",      "preauth.user.list",
	    "preauth.user.del",       "preauth.user.set_role", "preauth.code.revoke",
	    "preauth.redeem",         "preauth.register",      "preauth.device.list",
	    "preauth.device.disable", "preauth.device.enable", "preauth.device.del",
	};
	static const char *const bodies[] = {
	    "[]",
	    "\"x\"",
	    "{",
	    "{\"name\": 1}",
	    "{\"name\": null, \"role\": []}",
	    "{\"user\": \"alice\", \"expires\": \"-1h\"}",
	    "{\"code\": \"\"}",
	    "{\"id\": \"0123456789abcdef0\"}",
	    "{\"user\": \"a\\u0000b\"}",
	    "{\"name\": \"alice\", \"role\": \"admin\", \"v\": \"1\"}",
	    "{\"device_id\": {}, \"register_token\": 1}",
	    "{\"zzz\": 1}",
	};
	const char *dbs[] = {"users", "codes", "devices", "ipam"};
	long before[4];
	for (int i = 0; i < 4; i++)
		before[i] = mg_mock_state_count(m, dbs[i], NULL);
	mg_mock_events_clear(m);
	for (size_t s = 0; s < sizeof(services) / sizeof(services[0]); s++)
		for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
			json_t *r;
			int rc =
			    mg_mock_request_text(m, services[s], bodies[b], strlen(bodies[b]), &r);
			/* list services take {} and ignore nothing else: all of these
			 * are refused, and nothing is written */
			if (rc == 0)
				fail_msg("%s accepted %s", services[s], bodies[b]);
			const char *e = t_err(r);
			if (strcmp(e, "bad_request") && strcmp(e, "not_found"))
				fail_msg("%s %s -> %s", services[s], bodies[b], e);
			json_decref(r);
		}
	for (int i = 0; i < 4; i++)
		assert_int_equal(mg_mock_state_count(m, dbs[i], NULL), before[i]);
	assert_int_equal(mg_mock_event_count(m, NULL), 0);
	json_decref(a);
	free(code);
	mg_mock_free(m);
}

static void test_no_server_yet(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, NULL);
	char *code = t_add_user(m, "alice", "admin");
	json_t *r = t_redeem(m, code, NULL);
	assert_string_equal(t_err(r), "internal");
	assert_non_null(strstr(t_get(r, "message"), "wg/server"));
	json_decref(r);
	/* the code was not spent; once the server is known it works */
	t_server(m, "172.16.0.1/24");
	r = t_redeem(m, code, NULL);
	assert_string_equal(t_get(r, "address"), "172.16.0.2/32");
	json_decref(r);
	free(code);
	mg_mock_free(m);
}

static void test_config(void **unused)
{
	(void)unused;
	char err[512];
	static const char *const wg_owns[] = {"wg", NULL};
	const char *bad[] = {"{\"code_ttl\": \"24\"}", "{\"pending_ttl\": \"10 m\"}",
	                     "{\"roles\": []}",        "{\"roles\": [\"Admin\"]}",
	                     "{\"keepalive\": -1}",    "{\"redeem_failures\": 0}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mg_mock *m = mg_mock_new(NULL, err, sizeof(err));
		mg_mock_log_level(m, MG_LOG_ERROR);
		json_t *config = json_loads(bad[i], 0, NULL);
		assert_int_equal(mg_mock_add_stub(m, "wireguard", wg_owns), 0);
		assert_int_equal(mg_mock_add(m, &mg_plugin_descriptor, config, err, sizeof(err)),
		                 0);
		assert_int_not_equal(mg_mock_start(m, err, sizeof(err)), 0);
		assert_true(mg_mock_log_count(m, MG_LOG_ERROR) >= 1);
		json_decref(config);
		mg_mock_free(m);
	}

	json_t *config =
	    json_pack("{s:[s,s,s], s:s}", "roles", "admin", "developer", "ops", "code_ttl", "7d");
	struct mg_mock *m = t_mock(NULL, config, "10.0.0.1/24");
	json_decref(config);
	json_t *r = t_call(m, "preauth.user.add", NULL, "{s:s, s:s}", "name", "o", "role", "ops");
	assert_true(json_integer_value(json_object_get(r, "expires_at")) >=
	            (json_int_t)(mg_mock_now(m) / 1000) + 7 * 86400 - 1);
	json_decref(r);
	/* a reload with a bad value is refused and the old config stays */
	config = json_pack("{s:s}", "pending_ttl", "soon");
	assert_int_not_equal(mg_mock_reload(m, "preauth", config, err, sizeof(err)), 0);
	json_decref(config);
	r = t_call(m, "preauth.user.add", NULL, "{s:s, s:s}", "name", "p", "role", "ops");
	assert_string_equal(t_err(r), "");
	json_decref(r);
	config = json_pack("{s:[s]}", "roles", "admin");
	assert_int_equal(mg_mock_reload(m, "preauth", config, err, sizeof(err)), 0);
	json_decref(config);
	r = t_call(m, "preauth.user.add", NULL, "{s:s, s:s}", "name", "q", "role", "ops");
	assert_string_equal(t_err(r), "bad_request");
	json_decref(r);
	mg_mock_free(m);
}

/* The built .so, loaded into two mocks at once: each has its own users
 * and addresses (no global state in the plugin). */
static void test_so_twice(void **unused)
{
	(void)unused;
	char err[512];
	static const char *const wg_owns[] = {"wg", NULL};
	struct mg_mock *m[2];
	for (int i = 0; i < 2; i++) {
		m[i] = mg_mock_new(NULL, err, sizeof(err));
		mg_mock_log_level(m[i], MG_LOG_WARN);
		assert_int_equal(mg_mock_add_stub(m[i], "wireguard", wg_owns), 0);
		if (mg_mock_load(m[i], PREAUTH_SO, NULL, err, sizeof(err)))
			fail_msg("%s", err);
		assert_int_equal(mg_mock_start(m[i], err, sizeof(err)), 0);
	}
	t_server(m[0], "10.1.0.1/24");
	t_server(m[1], "10.2.0.1/24");
	char *c0 = t_add_user(m[0], "alice", "admin");
	char *c1 = t_add_user(m[1], "alice", "admin");
	json_t *r = t_redeem(m[1], c0, NULL);
	assert_string_equal(t_err(r), "unknown_code");
	json_decref(r);
	r = t_redeem(m[0], c0, NULL);
	assert_string_equal(t_get(r, "address"), "10.1.0.2/32");
	json_decref(r);
	r = t_redeem(m[1], c1, NULL);
	assert_string_equal(t_get(r, "address"), "10.2.0.2/32");
	json_decref(r);
	free(c0);
	free(c1);
	mg_mock_free(m[0]);
	mg_mock_free(m[1]);
}

static json_t *allowed_of(json_t *reply)
{
	return json_object_get(reply, "allowed_ips");
}

static void assert_networks(json_t *reply, const char *expected_json)
{
	json_t *want = json_loads(expected_json, 0, NULL);
	assert_non_null(want);
	if (!json_equal(allowed_of(reply), want)) {
		char *got = json_dumps(allowed_of(reply), JSON_COMPACT);
		fail_msg("allowed_ips %s, expected %s", got ? got : "(none)", expected_json);
	}
	json_decref(want);
}

static void put_policy(struct mg_mock *m, const char *role, const char *subnets_json)
{
	json_t *value =
	    json_pack("{s:s, s:o}", "role", role, "subnets", json_loads(subnets_json, 0, NULL));
	assert_int_equal(mg_mock_state_put(m, "firewall", "policy", role, value), 0);
	json_decref(value);
}

static json_t *device_config(struct mg_mock *m, const char *address)
{
	return t_call(m, "preauth.device.config", NULL, "{s:s}", "address", address);
}

/* The networks a device routes: the firewall's policy of its role, else the
 * `networks` setting; redeem and device.config compute them alike, and
 * device.config follows role changes and policy changes. */
static void test_device_config(void **unused)
{
	(void)unused;
	char err[512];
	static const char *const wg_owns[] = {"wg", NULL}, *const fw_owns[] = {"policy", NULL};
	struct mg_mock *m = mg_mock_new(NULL, err, sizeof(err));
	assert_non_null(m);
	mg_mock_log_level(m, MG_LOG_ERROR);
	json_t *config = json_pack("{s:[s]}", "networks", "10.99.0.0/24");
	assert_int_equal(mg_mock_add_stub(m, "wireguard", wg_owns), 0);
	assert_int_equal(mg_mock_add_stub(m, "firewall", fw_owns), 0);
	assert_int_equal(mg_mock_add(m, &mg_plugin_descriptor, config, err, sizeof(err)), 0);
	json_decref(config);
	assert_int_equal(mg_mock_start(m, err, sizeof(err)), 0);
	t_server(m, "10.0.0.1/24");
	/* admin has a policy record; developer has none yet: the setting */
	put_policy(m, "admin", "[\"10.0.0.0/24\", \"10.20.0.0/24\"]");

	char *code = t_add_user(m, "alice", "developer");
	json_t *r = t_redeem(m, code, NULL);
	assert_string_equal(t_err(r), "");
	assert_networks(r, "[\"10.0.0.0/24\", \"10.99.0.0/24\"]");
	/* pending: it has no tunnel yet, so nothing to configure */
	json_t *c = device_config(m, "10.0.0.2");
	assert_string_equal(t_err(c), "not_found");
	json_decref(c);
	json_t *reg = t_register(m, r, CLIENT_KEY_A);
	assert_string_equal(t_err(reg), "");
	json_decref(reg);

	c = device_config(m, "10.0.0.2/32");
	assert_string_equal(t_err(c), "");
	assert_string_equal(t_get(c, "device_id"), t_get(r, "device_id"));
	assert_string_equal(t_get(c, "state"), "active");
	assert_string_equal(t_get(c, "role"), "developer");
	assert_string_equal(t_get(c, "address"), "10.0.0.2/32");
	assert_true(json_equal(allowed_of(c), allowed_of(r)));
	assert_null(json_object_get(c, "token_hash"));
	assert_null(json_object_get(c, "public_key"));
	json_decref(c);

	/* the role changes: the device's networks follow, no new code */
	json_decref(t_call(m, "preauth.user.set_role", NULL, "{s:s, s:s}", "name", "alice", "role",
	                   "admin"));
	c = device_config(m, "10.0.0.2");
	assert_string_equal(t_get(c, "role"), "admin");
	assert_networks(c, "[\"10.0.0.0/24\", \"10.20.0.0/24\"]");
	json_decref(c);
	/* the policy changes (a route added at runtime) */
	put_policy(m, "admin", "[\"10.0.0.0/24\", \"10.20.0.0/24\", \"10.21.0.0/24\"]");
	c = device_config(m, "10.0.0.2");
	assert_networks(c, "[\"10.0.0.0/24\", \"10.20.0.0/24\", \"10.21.0.0/24\"]");
	json_decref(c);
	/* a new device of the same role gets at redeem what device.config says */
	char *code2 = t_new_code(m, "alice", NULL);
	json_t *r2 = t_redeem(m, code2, NULL);
	assert_networks(r2, "[\"10.0.0.0/24\", \"10.20.0.0/24\", \"10.21.0.0/24\"]");
	json_decref(r2);
	/* a policy that leaves out the VPN subnet: it comes first anyway, once */
	put_policy(m, "admin", "[\"10.21.0.0/24\", \"10.0.0.0/24\"]");
	c = device_config(m, "10.0.0.2");
	assert_networks(c, "[\"10.0.0.0/24\", \"10.21.0.0/24\"]");
	json_decref(c);

	/* nobody there, the gateway itself, another subnet, a disabled device */
	const char *nobody[] = {"10.0.0.77", "10.0.0.1", "192.0.2.1"};
	for (size_t i = 0; i < sizeof(nobody) / sizeof(nobody[0]); i++) {
		c = device_config(m, nobody[i]);
		assert_string_equal(t_err(c), "not_found");
		json_decref(c);
	}
	json_decref(
	    t_call(m, "preauth.device.disable", NULL, "{s:s}", "id", t_get(r, "device_id")));
	c = device_config(m, "10.0.0.2");
	assert_string_equal(t_err(c), "not_found");
	json_decref(c);

	/* bad requests */
	const char *bad[] = {"{}", "{\"address\": 7}", "{\"address\": \"10.0.0.2/24\"}",
	                     "{\"address\": \"vpn.example.com\"}",
	                     "{\"address\": \"10.0.0.2\", \"x\": \"y\"}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *req = json_loads(bad[i], 0, NULL);
		assert_int_not_equal(mg_mock_request(m, "preauth.device.config", req, &c), 0);
		assert_string_equal(t_err(c), "bad_request");
		json_decref(c);
		json_decref(req);
	}
	json_decref(r);
	free(code);
	free(code2);
	mg_mock_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_users),
	    cmocka_unit_test(test_redeem_and_register),
	    cmocka_unit_test(test_redeem_errors),
	    cmocka_unit_test(test_rate_limit),
	    cmocka_unit_test(test_register_errors),
	    cmocka_unit_test(test_pending_reaped),
	    cmocka_unit_test(test_single_use),
	    cmocka_unit_test(test_exhaustion),
	    cmocka_unit_test(test_device_admin),
	    cmocka_unit_test(test_device_pages),
	    cmocka_unit_test(test_user_del_cascade),
	    cmocka_unit_test(test_bad_input_changes_nothing),
	    cmocka_unit_test(test_no_server_yet),
	    cmocka_unit_test(test_config),
	    cmocka_unit_test(test_so_twice),
	    cmocka_unit_test(test_device_config),
	    cmocka_unit_test(test_metrics),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
