/* A device's key rotation through the mock core (pa_rotate.c): the
 * operator's request, the device's next key and switch, each checked like
 * register, idempotent, and bad input changing nothing. */
#include "pa_test.h"

#define KEY_C "UWdfjXlo85lqerY1bH8wdQkKgJbde71KdbSyH91mIUA="
#define KEY_D "V6nEv+MwBZrXkb2xYuYoQfOdcV2LmzPkHUWv9QUxECI="

static json_t *step(struct mg_mock *m, const char *service, json_t *redeemed, const char *token,
                    const char *key)
{
	return t_call(m, service, NULL, "{s:s, s:s, s:s, s:s}", "device_id",
	              t_get(redeemed, "device_id"), "register_token", token, "public_key", key,
	              "source", "198.51.100.7");
}

static void expect(json_t *reply, const char *error)
{
	if (strcmp(t_err(reply), error))
		fail_msg("expected '%s', got '%s': %s", error, t_err(reply),
		         t_get(reply, "message"));
	json_decref(reply);
}

static json_t *device_record(struct mg_mock *m, json_t *redeemed)
{
	json_t *device = NULL;
	assert_int_equal(mg_mock_state_get(m, "devices", t_get(redeemed, "device_id"), &device), 0);
	return device;
}

static int rotate_flag(struct mg_mock *m, const char *address)
{
	json_t *c = t_call(m, "preauth.device.config", NULL, "{s:s}", "address", address);
	assert_string_equal(t_err(c), "");
	int flag = json_is_true(json_object_get(c, "rotate"));
	json_decref(c);
	return flag;
}

/* A registered device of alice (10.0.0.2) and one of bob (10.0.0.3). */
static struct mg_mock *two_devices(json_t **a, json_t **b)
{
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	char *code_a = t_add_user(m, "alice", "admin"), *code_b = t_add_user(m, "bob", "admin");
	*a = t_redeem(m, code_a, NULL);
	*b = t_redeem(m, code_b, NULL);
	expect(t_register(m, *a, CLIENT_KEY_A), "");
	expect(t_register(m, *b, CLIENT_KEY_B), "");
	free(code_a);
	free(code_b);
	return m;
}

static void test_rotation(void **unused)
{
	(void)unused;
	json_t *a, *b;
	struct mg_mock *m = two_devices(&a, &b);
	const char *token = t_get(a, "register_token");
	const char *id = t_get(a, "device_id");
	assert_false(rotate_flag(m, "10.0.0.2"));

	/* the operator asks: the counter, the event, the flag */
	json_t *r = t_call(m, "preauth.device.rotate", NULL, "{s:s}", "id", id);
	assert_string_equal(t_err(r), "");
	assert_int_equal(json_integer_value(json_object_get(r, "rotate_requested")), 1);
	json_decref(r);
	json_t *ev = last_event(m, "device.changed");
	assert_int_equal(json_integer_value(json_object_get(ev, "rotate_requested")), 1);
	assert_true(rotate_flag(m, "10.0.0.2"));
	assert_false(rotate_flag(m, "10.0.0.3"));

	/* the next key: registered once, the same answer again */
	expect(step(m, "preauth.device.next_key", a, token, KEY_C), "");
	expect(step(m, "preauth.device.next_key", a, token, KEY_C), "");
	json_t *device = device_record(m, a);
	assert_string_equal(t_get(device, "next_public_key"), KEY_C);
	assert_string_equal(t_get(device, "public_key"), CLIENT_KEY_A);
	json_decref(device);
	/* nobody else may take it meanwhile */
	char *code = t_add_user(m, "carol", "admin");
	json_t *c = t_redeem(m, code, NULL);
	expect(t_register(m, c, KEY_C), "conflict");

	/* a switch to a key that is not the next one: refused */
	expect(step(m, "preauth.device.switch_key", a, token, KEY_D), "conflict");
	size_t changes = mg_mock_event_count(m, "device.changed");
	expect(step(m, "preauth.device.switch_key", a, token, KEY_C), "");
	assert_int_equal(mg_mock_event_count(m, "device.changed"), changes + 1);
	ev = last_event(m, "device.changed");
	assert_string_equal(t_get(ev, "public_key"), KEY_C);
	assert_string_equal(t_get(ev, "previous_public_key"), CLIENT_KEY_A);
	assert_string_equal(t_get(ev, "state"), "active");
	assert_null(json_object_get(ev, "next_public_key"));
	assert_false(rotate_flag(m, "10.0.0.2"));
	/* a retry after a lost answer: the same answer, nothing written */
	expect(step(m, "preauth.device.switch_key", a, token, KEY_C), "");
	assert_int_equal(mg_mock_event_count(m, "device.changed"), changes + 1);

	/* the previous key stays the device's: not for another device, not
	 * for this one's next */
	expect(t_register(m, c, CLIENT_KEY_A), "conflict");
	expect(step(m, "preauth.device.next_key", a, token, CLIENT_KEY_A), "conflict");
	/* register again with the new key (the agent's access check): active */
	expect(t_register(m, a, KEY_C), "");

	/* the device goes: every key it held is free again */
	expect(t_call(m, "preauth.device.del", NULL, "{s:s}", "id", id), "");
	expect(t_register(m, c, CLIENT_KEY_A), "");
	json_decref(a);
	json_decref(b);
	json_decref(c);
	free(code);
	mg_mock_free(m);
}

static void test_rotation_refusals(void **unused)
{
	(void)unused;
	json_t *a, *b;
	struct mg_mock *m = two_devices(&a, &b);
	const char *token = t_get(a, "register_token");
	json_t *before = device_record(m, a);
	mg_mock_events_clear(m);

	/* a wrong token, another device's token, an unknown device */
	expect(step(m, "preauth.device.next_key", a, "wrong", KEY_C), "not_found");
	expect(step(m, "preauth.device.next_key", a, t_get(b, "register_token"), KEY_C),
	       "not_found");
	expect(t_call(m, "preauth.device.next_key", NULL, "{s:s, s:s, s:s}", "device_id",
	              "0123456789abcdef", "register_token", token, "public_key", KEY_C),
	       "not_found");
	/* its own key, another device's key, no key */
	expect(step(m, "preauth.device.next_key", a, token, CLIENT_KEY_A), "conflict");
	expect(step(m, "preauth.device.next_key", a, token, CLIENT_KEY_B), "conflict");
	static const char *const bad_keys[] = {
	    "", "abc", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", KEY_C "x"};
	for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++)
		expect(step(m, "preauth.device.next_key", a, token, bad_keys[i]), "bad_request");
	/* no next key registered: no switch */
	expect(step(m, "preauth.device.switch_key", a, token, KEY_C), "conflict");
	expect(t_call(m, "preauth.device.rotate", NULL, "{s:s}", "id", "0123456789abcdef"),
	       "not_found");
	expect(t_call(m, "preauth.device.rotate", NULL, "{s:s}", "id", "xyz"), "bad_request");

	json_t *after = device_record(m, a);
	assert_true(json_equal(before, after));
	assert_int_equal(mg_mock_event_count(m, NULL), 0);
	json_decref(before);
	json_decref(after);

	/* a disabled device: nothing to rotate, no key change */
	expect(t_call(m, "preauth.device.disable", NULL, "{s:s}", "id", t_get(a, "device_id")), "");
	expect(t_call(m, "preauth.device.rotate", NULL, "{s:s}", "id", t_get(a, "device_id")),
	       "conflict");
	expect(step(m, "preauth.device.next_key", a, token, KEY_C), "conflict");
	json_decref(a);
	json_decref(b);
	mg_mock_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rotation),
	    cmocka_unit_test(test_rotation_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
