/* preauth in a cluster, through the mock core: changes another node made
 * (mg_mock_state_remote) reach the caches and the followers' events, and
 * commits that lose a race (-ESTALE) or find no quorum (-EHOSTUNREACH,
 * mg_mock_fail_commits) are run again or answered "unavailable", with
 * nothing written and no failed attempt counted. */
#include "pa_test.h"

#include "preauth.h"

#define OTHER_DEVICE "00112233445566ff"

/* A device as another node's preauth writes it. */
static json_t *other_device(const char *key, const char *state)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:s, s:i}", "id", OTHER_DEVICE, "user",
	                 "alice", "name", "alice-phone", "role", "admin", "address", "10.0.0.9/32",
	                 "public_key", key, "state", state, "created_at", 1);
}

static void code_hash(const char *code, char hash[PA_HASH_HEX + 1])
{
	char canonical[PA_CODE_SYMBOLS + 1];
	assert_int_equal(pa_code_normalize(code, canonical), 0);
	pa_code_hash(canonical, hash);
}

static void test_remote_device(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	free(t_add_user(m, "alice", "admin"));
	mg_mock_events_clear(m);

	/* a device another node registered is announced as ours are */
	json_t *d = other_device(CLIENT_KEY_A, "active");
	assert_int_equal(mg_mock_state_remote(m, "devices", OTHER_DEVICE, d), 0);
	json_decref(d);
	json_t *ev = last_event(m, "device.changed");
	assert_non_null(ev);
	assert_string_equal(t_get(ev, "id"), OTHER_DEVICE);
	assert_string_equal(t_get(ev, "user"), "alice");
	assert_string_equal(t_get(ev, "name"), "alice-phone");
	assert_string_equal(t_get(ev, "role"), "admin");
	assert_string_equal(t_get(ev, "address"), "10.0.0.9/32");
	assert_string_equal(t_get(ev, "public_key"), CLIENT_KEY_A);
	assert_string_equal(t_get(ev, "state"), "active");
	assert_int_equal(json_object_size(ev), 7);

	/* its key is taken here too */
	char *code = t_new_code(m, "alice", NULL);
	json_t *r = t_redeem(m, code, NULL);
	assert_string_equal(t_err(r), "");
	json_t *reg = t_register(m, r, CLIENT_KEY_A);
	assert_string_equal(t_err(reg), "conflict");
	json_decref(reg);

	/* deleted there: announced with what it was, and its key is free */
	mg_mock_events_clear(m);
	assert_int_equal(mg_mock_state_remote(m, "devices", OTHER_DEVICE, NULL), 0);
	ev = last_event(m, "device.changed");
	assert_non_null(ev);
	assert_string_equal(t_get(ev, "id"), OTHER_DEVICE);
	assert_string_equal(t_get(ev, "state"), "deleted");
	assert_string_equal(t_get(ev, "public_key"), CLIENT_KEY_A);
	assert_string_equal(t_get(ev, "address"), "10.0.0.9/32");
	reg = t_register(m, r, CLIENT_KEY_A);
	assert_string_equal(t_err(reg), "");
	json_decref(reg);

	/* our own change of a device is announced once, not again as remote */
	mg_mock_events_clear(m);
	json_t *del = t_call(m, "preauth.device.del", NULL, "{s:s}", "id", t_get(r, "device_id"));
	assert_string_equal(t_err(del), "");
	json_decref(del);
	assert_int_equal(mg_mock_event_count(m, "device.changed"), 1);

	/* a pending device of another node is reaped here too once expired */
	d = other_device(NULL, "pending");
	json_object_set_new(d, "expires_at",
	                    json_integer((json_int_t)(mg_mock_now(m) / 1000) + 60));
	assert_int_equal(mg_mock_state_remote(m, "devices", OTHER_DEVICE, d), 0);
	json_decref(d);
	assert_int_equal(devices(m), 1);
	mg_mock_advance(m, 70 * 1000);
	assert_int_equal(devices(m), 0);

	json_decref(r);
	free(code);
	mg_mock_free(m);
}

static void test_remote_user(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	json_t *user =
	    json_pack("{s:s, s:s, s:i}", "name", "bob", "role", "developer", "created_at", 1);
	assert_int_equal(mg_mock_state_remote(m, "users", "bob", user), 0);
	json_decref(user);
	json_t *ev = last_event(m, "user.changed");
	assert_non_null(ev);
	assert_string_equal(t_get(ev, "name"), "bob");
	assert_string_equal(t_get(ev, "role"), "developer");
	assert_string_equal(t_get(ev, "state"), "active");

	mg_mock_events_clear(m);
	assert_int_equal(mg_mock_state_remote(m, "users", "bob", NULL), 0);
	ev = last_event(m, "user.changed");
	assert_non_null(ev);
	assert_string_equal(t_get(ev, "role"), "developer");
	assert_string_equal(t_get(ev, "state"), "deleted");

	/* a change of a code is nobody's business but preauth's */
	mg_mock_events_clear(m);
	json_t *c = json_pack("{s:s, s:s, s:i}", "user", "bob", "state", "valid", "expires_at", 1);
	assert_int_equal(mg_mock_state_remote(m, "codes", "abc", c), 0);
	json_decref(c);
	assert_int_equal(mg_mock_event_count(m, "user.changed"), 0);
	assert_int_equal(mg_mock_event_count(m, "device.changed"), 0);
	mg_mock_free(m);
}

static void test_remote_ipam(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	char *code = t_add_user(m, "alice", "admin");
	char *code2 = t_new_code(m, "alice", NULL);
	char *code3 = t_new_code(m, "alice", NULL);
	json_t *r = t_redeem(m, code, NULL); /* the pool is built */
	assert_string_equal(t_get(r, "address"), "10.0.0.2/32");
	json_decref(r);

	json_t *lease = json_pack("{s:s, s:s}", "device", OTHER_DEVICE, "user", "alice");
	assert_int_equal(mg_mock_state_remote(m, "ipam", "10.0.0.3", lease), 0);
	json_decref(lease);
	unsigned warnings = mg_mock_log_count(m, MG_LOG_WARN);
	/* the pool has it: not handed out, and not found the hard way
	 * (allocate's check of the record warns when the map was wrong) */
	r = t_redeem(m, code2, NULL);
	assert_string_equal(t_err(r), "");
	assert_string_equal(t_get(r, "address"), "10.0.0.4/32");
	assert_int_equal(mg_mock_log_count(m, MG_LOG_WARN), warnings);
	json_decref(r);

	/* freed there: the next redeem takes it */
	assert_int_equal(mg_mock_state_remote(m, "ipam", "10.0.0.3", NULL), 0);
	r = t_redeem(m, code3, NULL);
	assert_string_equal(t_get(r, "address"), "10.0.0.3/32");
	json_decref(r);
	free(code);
	free(code2);
	free(code3);
	mg_mock_free(m);
}

static void test_stale_retried(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	char *code = t_add_user(m, "alice", "admin");

	/* lost twice, then won: one device, one address */
	mg_mock_fail_commits(m, -ESTALE, 2);
	json_t *r = t_redeem(m, code, NULL);
	assert_string_equal(t_err(r), "");
	assert_string_equal(t_get(r, "address"), "10.0.0.2/32");
	assert_int_equal(devices(m), 1);
	assert_int_equal(leases(m), 1);
	json_t *reg = t_register(m, r, CLIENT_KEY_A);
	assert_string_equal(t_err(reg), "");
	json_decref(reg);
	json_decref(r);

	/* lost every time: "conflict", nothing written, the code still good */
	char *code2 = t_new_code(m, "alice", NULL);
	mg_mock_events_clear(m);
	mg_mock_fail_commits(m, -ESTALE, 1000);
	r = t_redeem(m, code2, NULL);
	assert_string_equal(t_err(r), "conflict");
	json_decref(r);
	assert_int_equal(devices(m), 1);
	assert_int_equal(leases(m), 1);
	assert_int_equal(mg_mock_event_count(m, "device.changed"), 0);
	assert_int_equal(mg_mock_event_count(m, "state."), 0);

	/* standalone ops too */
	json_t *del = t_call(m, "preauth.user.del", NULL, "{s:s}", "name", "alice");
	assert_string_equal(t_err(del), "conflict");
	json_decref(del);
	mg_mock_fail_commits(m, -ESTALE, PA_COMMIT_TRIES - 1);
	json_t *add = t_call(m, "preauth.code.add", NULL, "{s:s}", "user", "alice");
	assert_string_equal(t_err(add), "");
	json_decref(add);

	mg_mock_fail_commits(m, 0, 0);
	r = t_redeem(m, code2, NULL);
	assert_string_equal(t_err(r), "");
	assert_string_equal(t_get(r, "address"), "10.0.0.3/32");
	json_decref(r);
	free(code);
	free(code2);
	mg_mock_free(m);
}

/* The other node's redeem of the same code, made while ours waited for
 * its commit: the code used, its device and address written. */
static void other_node_redeems(struct mg_mock *m, void *arg)
{
	const char *hash = arg;
	json_t *code;
	assert_int_equal(mg_mock_state_get(m, "codes", hash, &code), 0);
	json_object_set_new(code, "state", json_string("used"));
	json_object_set_new(code, "device", json_string(OTHER_DEVICE));
	json_t *d = other_device(NULL, "pending");
	json_object_set_new(d, "address", json_string("10.0.0.2/32"));
	json_object_set_new(d, "expires_at",
	                    json_integer((json_int_t)(mg_mock_now(m) / 1000) + 600));
	json_t *lease = json_pack("{s:s, s:s}", "device", OTHER_DEVICE, "user", "alice");
	assert_int_equal(mg_mock_state_remote(m, "devices", OTHER_DEVICE, d), 0);
	assert_int_equal(mg_mock_state_remote(m, "ipam", "10.0.0.2", lease), 0);
	assert_int_equal(mg_mock_state_remote(m, "codes", hash, code), 0);
	json_decref(code);
	json_decref(d);
	json_decref(lease);
}

static void test_lost_race_for_code(void **unused)
{
	(void)unused;
	/* one failed attempt blocks the address for the minute */
	json_t *config = json_pack("{s:i}", "redeem_failures", 1);
	struct mg_mock *m = t_mock(NULL, config, "10.0.0.1/24");
	char *code = t_add_user(m, "alice", "admin");
	char *code2 = t_new_code(m, "alice", NULL);
	char hash[PA_HASH_HEX + 1];
	code_hash(code, hash);

	mg_mock_on_failed_commit(m, other_node_redeems, hash);
	mg_mock_fail_commits(m, -ESTALE, 1);
	json_t *r = t_redeem(m, code, "192.0.2.7");
	mg_mock_on_failed_commit(m, NULL, NULL);
	/* exactly once: the other node has it, we say so */
	assert_string_equal(t_err(r), "code_used");
	json_decref(r);
	assert_int_equal(devices(m), 1);
	assert_int_equal(leases(m), 1);

	/* the lost race was not a failed attempt: the source is not blocked,
	 * and the address the other node took is not handed out again */
	r = t_redeem(m, code2, "192.0.2.7");
	assert_string_equal(t_err(r), "");
	assert_string_equal(t_get(r, "address"), "10.0.0.3/32");
	json_decref(r);
	/* whereas a real failed attempt is counted (the limit is 1) */
	r = t_redeem(m, code, "192.0.2.7");
	assert_string_equal(t_err(r), "code_used");
	json_decref(r);
	char *code3 = t_new_code(m, "alice", NULL);
	r = t_redeem(m, code3, "192.0.2.7");
	assert_string_equal(t_err(r), "rate_limited");
	json_decref(r);

	json_decref(config);
	free(code);
	free(code2);
	free(code3);
	mg_mock_free(m);
}

static void test_unavailable(void **unused)
{
	(void)unused;
	json_t *config = json_pack("{s:i}", "redeem_failures", 1);
	struct mg_mock *m = t_mock(NULL, config, "10.0.0.1/24");
	char *code = t_add_user(m, "alice", "admin");
	mg_mock_events_clear(m);

	mg_mock_fail_commits(m, -EHOSTUNREACH, 1);
	json_t *r = t_redeem(m, code, "192.0.2.7");
	assert_string_equal(t_err(r), "unavailable");
	json_decref(r);
	assert_int_equal(devices(m), 0);
	assert_int_equal(leases(m), 0);
	assert_int_equal(mg_mock_event_count(m, NULL), 0);

	/* answered at once, not retried: the next commit goes through */
	mg_mock_fail_commits(m, -EHOSTUNREACH, 2);
	json_t *add =
	    t_call(m, "preauth.user.add", NULL, "{s:s, s:s}", "name", "bob", "role", "admin");
	assert_string_equal(t_err(add), "unavailable");
	json_decref(add);
	json_t *del = t_call(m, "preauth.user.del", NULL, "{s:s}", "name", "alice");
	assert_string_equal(t_err(del), "unavailable");
	json_decref(del);
	assert_int_equal(mg_mock_state_count(m, "users", NULL), 1);

	/* nothing consumed, nothing counted against the source */
	r = t_redeem(m, code, "192.0.2.7");
	assert_string_equal(t_err(r), "");
	assert_string_equal(t_get(r, "address"), "10.0.0.2/32");
	json_decref(r);
	json_decref(config);
	free(code);
	mg_mock_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_remote_device),      cmocka_unit_test(test_remote_user),
	    cmocka_unit_test(test_remote_ipam),        cmocka_unit_test(test_stale_retried),
	    cmocka_unit_test(test_lost_race_for_code), cmocka_unit_test(test_unavailable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
