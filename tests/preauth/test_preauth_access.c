/* Time-limited access through the mock core: the deadlines fire in their
 * order, each at its moment, and expire the user's active devices; set-access
 * moves, removes or brings a deadline forward; a restart builds the timer
 * again from the users db; another node's change of a user is followed; a
 * lost race at the moment is run again; bad times are refused and change
 * nothing; an expired device and a code of its user are told why. */
#include "pa_test.h"

#include <unistd.h>

#include "preauth.h"

static json_int_t now_s(struct mg_mock *m)
{
	return (json_int_t)(mg_mock_now(m) / 1000);
}

static void rfc3339(json_int_t seconds, char out[32])
{
	pa_access_time_text(seconds, out, 32);
}

/* A user whose access ends `in_s` seconds from now (whole seconds of the
 * clock); returns their code (owned). */
static char *t_add_limited(struct mg_mock *m, const char *name, json_int_t in_s)
{
	char until[32];
	rfc3339(now_s(m) + in_s, until);
	json_t *reply = t_call(m, "preauth.user.add", NULL, "{s:s, s:s, s:s}", "name", name, "role",
	                       "admin", "access_until", until);
	if (mg_reply_error(reply))
		fail_msg("user.add %s: %s", name, t_get(reply, "message"));
	assert_int_equal(json_integer_value(json_object_get(reply, "access_until")),
	                 now_s(m) + in_s);
	char *code = strdup(t_get(reply, "code"));
	json_decref(reply);
	return code;
}

/* Redeems and registers a device of the code: returns the redeem reply. */
static json_t *t_onboard(struct mg_mock *m, const char *code, const char *key)
{
	json_t *r = t_redeem(m, code, NULL);
	assert_string_equal(t_err(r), "");
	json_t *reg = t_register(m, r, key);
	assert_string_equal(t_err(reg), "");
	json_decref(reg);
	return r;
}

static const char *device_state(struct mg_mock *m, json_t *redeemed, char buf[16])
{
	json_t *d;
	if (mg_mock_state_get(m, "devices", t_get(redeemed, "device_id"), &d))
		return "missing";
	snprintf(buf, 16, "%s", t_get(d, "state"));
	json_decref(d);
	return buf;
}

/* Moves the clock to the start of the next second, so that "in N
 * seconds" of a whole-second deadline is exactly N * 1000 ms. */
static void whole_second(struct mg_mock *m)
{
	mg_mock_advance(m, 1000 - mg_mock_now(m) % 1000);
}

static void test_time_parse(void **unused)
{
	(void)unused;
	char err[256];
	json_int_t t;
	assert_int_equal(pa_time_parse("2026-12-31T18:00Z", &t, err, sizeof(err)), 0);
	assert_int_equal(t, 1798740000);
	assert_int_equal(pa_time_parse("2026-12-31T18:00:30Z", &t, err, sizeof(err)), 0);
	assert_int_equal(t, 1798740030);
	assert_int_equal(pa_time_parse("2026-12-31T19:00:00+01:00", &t, err, sizeof(err)), 0);
	assert_int_equal(t, 1798740000);
	assert_int_equal(pa_time_parse("2026-12-31t12:30-05:30", &t, err, sizeof(err)), 0);
	assert_int_equal(t, 1798740000);
	assert_int_equal(pa_time_parse("2028-02-29T00:00Z", &t, err, sizeof(err)), 0);
	static const char *const bad[] = {
	    "",
	    "2026-12-31",
	    "2026-12-31T18:00",       /* no zone */
	    "2026-12-31 18:00Z",      /* a space */
	    "2026-13-01T00:00Z",      /* month 13 */
	    "2027-02-29T00:00Z",      /* not a leap year */
	    "2026-12-31T24:00Z",      /* hour 24 */
	    "2026-12-31T18:60Z",      /* minute 60 */
	    "2026-12-31T18:00:60Z",   /* second 60 */
	    "2026-12-31T18:00:00.5Z", /* fractions */
	    "2026-12-31T18:00+1:00",  /* offset digits */
	    "2026-12-31T18:00Zjunk",  /* trailing */
	    "1969-12-31T23:59Z",      /* before the epoch */
	    "tomorrow",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (pa_time_parse(bad[i], &t, err, sizeof(err)) != -EINVAL)
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_non_null(strstr(err, "RFC 3339"));
	}
}

static void test_bad_times_change_nothing(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	char past[32];
	rfc3339(now_s(m) - 60, past);

	json_t *r = t_call(m, "preauth.user.add", NULL, "{s:s, s:s, s:s}", "name", "bob", "role",
	                   "admin", "access_until", "2026-13-01T00:00Z");
	assert_string_equal(t_err(r), "bad_request");
	assert_string_equal(t_get(r, "field"), "access_until");
	json_decref(r);
	r = t_call(m, "preauth.user.add", NULL, "{s:s, s:s, s:s}", "name", "bob", "role", "admin",
	           "access_until", past);
	assert_string_equal(t_err(r), "bad_request");
	assert_non_null(strstr(t_get(r, "message"), "in the past"));
	json_decref(r);
	assert_int_equal(mg_mock_state_count(m, "users", NULL), 0);
	assert_int_equal(mg_mock_state_count(m, "codes", NULL), 0);

	/* set-access: a bad time, an unknown user */
	char *code = t_add_limited(m, "carol", 3600);
	json_t *before, *after;
	assert_int_equal(mg_mock_state_get(m, "users", "carol", &before), 0);
	r = t_call(m, "preauth.user.set_access", NULL, "{s:s, s:s}", "name", "carol", "until",
	           "soon");
	assert_string_equal(t_err(r), "bad_request");
	assert_string_equal(t_get(r, "field"), "until");
	json_decref(r);
	r = t_call(m, "preauth.user.set_access", NULL, "{s:s, s:s}", "name", "nobody", "until",
	           "never");
	assert_string_equal(t_err(r), "not_found");
	json_decref(r);
	assert_int_equal(mg_mock_state_get(m, "users", "carol", &after), 0);
	assert_true(json_equal(before, after));
	json_decref(before);
	json_decref(after);
	free(code);
	mg_mock_free(m);
}

static void test_deadlines_in_order(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	char s[16];
	whole_second(m);
	/* added out of order: b ends first, then c, then a */
	char *ca = t_add_limited(m, "a", 30), *cb = t_add_limited(m, "b", 10),
	     *cc = t_add_limited(m, "c", 20);
	json_t *da = t_onboard(m, ca, CLIENT_KEY_A), *db = t_onboard(m, cb, CLIENT_KEY_B);
	json_t *dc = t_onboard(m, cc, "mB5xs0LjHsS9sSmVNRQeybOXVZEXGF5FN1Jb3I9e9mE=");
	/* a timer for the earliest deadline, not one per user (and the reaper's) */
	json_t *regs = mg_mock_registrations(m, "preauth");
	assert_int_equal(json_integer_value(json_object_get(regs, "timers")), 2);
	json_decref(regs);

	mg_mock_events_clear(m);
	mg_mock_advance(m, 9999);
	assert_string_equal(device_state(m, db, s), "active");
	mg_mock_advance(m, 1);
	assert_string_equal(device_state(m, db, s), "expired");
	assert_string_equal(device_state(m, dc, s), "active");
	assert_string_equal(device_state(m, da, s), "active");
	/* announced as any device change: wireguard, firewall, dns drop it */
	json_t *ev = last_event(m, "device.changed");
	assert_non_null(ev);
	assert_string_equal(t_get(ev, "state"), "expired");
	assert_string_equal(t_get(ev, "user"), "b");
	assert_int_equal(mg_mock_event_count(m, "device.changed"), 1);

	mg_mock_advance(m, 10000);
	assert_string_equal(device_state(m, dc, s), "expired");
	assert_string_equal(device_state(m, da, s), "active");
	mg_mock_advance(m, 10000);
	assert_string_equal(device_state(m, da, s), "expired");
	assert_int_equal(mg_mock_event_count(m, "device.changed"), 3);

	/* nothing more fires: the timer is gone */
	regs = mg_mock_registrations(m, "preauth");
	assert_int_equal(json_integer_value(json_object_get(regs, "timers")), 1);
	json_decref(regs);
	mg_mock_events_clear(m);
	mg_mock_advance(m, 3600 * 1000);
	assert_int_equal(mg_mock_event_count(m, "device.changed"), 0);

	/* never: back to active; a disabled device stays disabled */
	json_t *r =
	    t_call(m, "preauth.device.disable", NULL, "{s:s}", "id", t_get(dc, "device_id"));
	assert_string_equal(t_err(r), "");
	json_decref(r);
	r = t_call(m, "preauth.user.set_access", NULL, "{s:s, s:s}", "name", "b", "until", "never");
	assert_string_equal(t_err(r), "");
	assert_int_equal(json_integer_value(json_object_get(r, "devices")), 1);
	assert_true(json_is_null(json_object_get(r, "access_until")));
	json_decref(r);
	assert_string_equal(device_state(m, db, s), "active");
	r = t_call(m, "preauth.user.set_access", NULL, "{s:s, s:s}", "name", "c", "until", "never");
	assert_int_equal(json_integer_value(json_object_get(r, "devices")), 0);
	json_decref(r);
	assert_string_equal(device_state(m, dc, s), "disabled");

	/* enable of an expired device is refused with the reason */
	r = t_call(m, "preauth.device.enable", NULL, "{s:s}", "id", t_get(da, "device_id"));
	assert_string_equal(t_err(r), "access_expired");
	json_decref(r);
	assert_string_equal(device_state(m, da, s), "expired");

	/* a moved deadline fires at its new moment, not the old one */
	char later[32];
	rfc3339(now_s(m) + 5, later);
	r = t_call(m, "preauth.user.set_access", NULL, "{s:s, s:s}", "name", "b", "until", later);
	json_decref(r);
	rfc3339(now_s(m) + 8, later);
	r = t_call(m, "preauth.user.set_access", NULL, "{s:s, s:s}", "name", "b", "until", later);
	json_decref(r);
	mg_mock_advance(m, 6000);
	assert_string_equal(device_state(m, db, s), "active");
	mg_mock_advance(m, 2000);
	assert_string_equal(device_state(m, db, s), "expired");

	/* a time in the past ends it at once */
	r = t_call(m, "preauth.user.set_access", NULL, "{s:s, s:s}", "name", "b", "until", "never");
	json_decref(r);
	assert_string_equal(device_state(m, db, s), "active");
	rfc3339(now_s(m) - 1, later);
	r = t_call(m, "preauth.user.set_access", NULL, "{s:s, s:s}", "name", "b", "until", later);
	assert_string_equal(t_get(r, "access"), "expired");
	json_decref(r);
	assert_string_equal(device_state(m, db, s), "expired");

	/* the list shows it */
	r = t_call(m, "preauth.user.list", NULL, "{}");
	json_t *u;
	size_t i;
	int seen = 0;
	json_array_foreach(json_object_get(r, "users"), i, u)
	{
		if (!strcmp(t_get(u, "name"), "a")) {
			assert_string_equal(t_get(u, "access"), "expired");
			assert_true(json_is_integer(json_object_get(u, "access_until")));
			seen++;
		}
	}
	assert_int_equal(seen, 1);
	json_decref(r);

	json_decref(da);
	json_decref(db);
	json_decref(dc);
	free(ca);
	free(cb);
	free(cc);
	mg_mock_free(m);
}

static void test_expired_is_told(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	char s[16];
	whole_second(m);
	char *code = t_add_limited(m, "dave", 5);
	char *spare = t_new_code(m, "dave", NULL);
	json_t *d = t_onboard(m, code, CLIENT_KEY_A);
	char *third = t_new_code(m, "dave", NULL);
	json_t *pending = t_redeem(m, third, NULL); /* never registered */
	mg_mock_advance(m, 5000);
	assert_string_equal(device_state(m, d, s), "expired");

	/* device-config: the reason, not "no device" */
	json_t *r =
	    t_call(m, "preauth.device.config", NULL, "{s:s}", "address", t_get(d, "address"));
	assert_string_equal(t_err(r), "access_expired");
	assert_non_null(strstr(t_get(r, "message"), "ended at"));
	assert_int_equal(json_integer_value(json_object_get(r, "access_until")), now_s(m));
	json_decref(r);
	/* register again with its token: what the client's agent asks */
	r = t_register(m, d, CLIENT_KEY_A);
	assert_string_equal(t_err(r), "access_expired");
	json_decref(r);
	/* a pending device cannot register any more */
	r = t_register(m, pending, CLIENT_KEY_B);
	assert_string_equal(t_err(r), "access_expired");
	json_decref(r);
	/* a code of the user is refused and not spent */
	long before = mg_mock_state_count(m, "devices", NULL);
	r = t_redeem(m, spare, NULL);
	assert_string_equal(t_err(r), "access_expired");
	json_decref(r);
	assert_int_equal(mg_mock_state_count(m, "devices", NULL), before);

	/* extended: everything works again, the spare code too */
	r = t_call(m, "preauth.user.set_access", NULL, "{s:s, s:s}", "name", "dave", "until",
	           "never");
	json_decref(r);
	r = t_register(m, d, CLIENT_KEY_A);
	assert_string_equal(t_err(r), "");
	json_decref(r);
	r = t_call(m, "preauth.device.config", NULL, "{s:s}", "address", t_get(d, "address"));
	assert_string_equal(t_err(r), "");
	json_decref(r);
	r = t_redeem(m, spare, NULL);
	assert_string_equal(t_err(r), "");
	json_decref(r);

	json_decref(pending);
	json_decref(d);
	free(code);
	free(spare);
	free(third);
	mg_mock_free(m);
}

static void test_restart_rebuilds(void **unused)
{
	(void)unused;
	char dir[] = "/tmp/pa_access_XXXXXX", s[16];
	assert_non_null(mkdtemp(dir));
	struct mg_mock *m = t_mock(dir, NULL, "10.0.0.1/24");
	whole_second(m);
	json_int_t end = now_s(m) + 3600;
	char *code = t_add_limited(m, "erin", 3600);
	json_t *d = t_onboard(m, code, CLIENT_KEY_A);
	mg_mock_free(m);

	/* a new process: the deadline is read from the users db */
	m = t_mock(dir, NULL, NULL);
	json_t *regs = mg_mock_registrations(m, "preauth");
	assert_int_equal(json_integer_value(json_object_get(regs, "timers")), 2);
	json_decref(regs);
	mg_mock_advance(m, (uint64_t)(end * 1000) - mg_mock_now(m) - 1);
	assert_string_equal(device_state(m, d, s), "active");
	mg_mock_advance(m, 1);
	assert_string_equal(device_state(m, d, s), "expired");
	mg_mock_free(m);

	/* a deadline that passed while the node was down fires at start:
	 * the device of a user whose record says so, still active */
	m = t_mock(dir, NULL, NULL);
	json_t *r = t_call(m, "preauth.user.set_access", NULL, "{s:s, s:s}", "name", "erin",
	                   "until", "never");
	json_decref(r);
	assert_string_equal(device_state(m, d, s), "active");
	json_t *user;
	assert_int_equal(mg_mock_state_get(m, "users", "erin", &user), 0);
	json_object_set_new(user, "access_until", json_integer(now_s(m) - 10));
	/* written behind preauth's back (as a node that stopped before it fired) */
	mg_mock_stop(m);
	assert_int_equal(mg_mock_state_remote(m, "users", "erin", user), 0);
	json_decref(user);
	mg_mock_free(m);
	m = t_mock(dir, NULL, NULL);
	mg_mock_advance(m, 0);
	assert_string_equal(device_state(m, d, s), "expired");
	mg_mock_free(m);

	json_decref(d);
	free(code);
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_remote_change(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	char s[16];
	mg_mock_set_node_name(m, "gw1");
	whole_second(m);
	char *code = t_add_user(m, "fay", "admin");
	json_t *d = t_onboard(m, code, CLIENT_KEY_A);

	/* another node sets an end: followed here */
	json_t *user;
	assert_int_equal(mg_mock_state_get(m, "users", "fay", &user), 0);
	json_object_set_new(user, "access_until", json_integer(now_s(m) + 5));
	assert_int_equal(mg_mock_state_remote(m, "users", "fay", user), 0);
	mg_mock_advance(m, 4999);
	assert_string_equal(device_state(m, d, s), "active");
	/* and then moves it later before it fires */
	json_object_set_new(user, "access_until", json_integer(now_s(m) + 10));
	assert_int_equal(mg_mock_state_remote(m, "users", "fay", user), 0);
	mg_mock_advance(m, 1000);
	assert_string_equal(device_state(m, d, s), "active");
	/* the moment: the commit loses a race once (another node expiring
	 * the same devices); run again, it is done */
	mg_mock_fail_commits(m, -ESTALE, 1);
	mg_mock_advance(m, 9000);
	mg_mock_fail_commits(m, 0, 0);
	assert_string_equal(device_state(m, d, s), "expired");

	/* another node removes the end: the device's state comes with its own
	 * remote change, and no deadline is left here */
	json_object_del(user, "access_until");
	assert_int_equal(mg_mock_state_remote(m, "users", "fay", user), 0);
	json_t *regs = mg_mock_registrations(m, "preauth");
	assert_int_equal(json_integer_value(json_object_get(regs, "timers")), 1);
	json_decref(regs);
	/* a user deleted there takes their deadline along */
	json_object_set_new(user, "access_until", json_integer(now_s(m) + 5));
	assert_int_equal(mg_mock_state_remote(m, "users", "fay", user), 0);
	assert_int_equal(mg_mock_state_remote(m, "users", "fay", NULL), 0);
	regs = mg_mock_registrations(m, "preauth");
	assert_int_equal(json_integer_value(json_object_get(regs, "timers")), 1);
	json_decref(regs);

	json_decref(user);
	json_decref(d);
	free(code);
	mg_mock_free(m);
}

/* Many users: the index stays a heap, the timer one, and each deadline
 * fires once, in order. */
static void test_many_deadlines(void **unused)
{
	(void)unused;
	struct mg_mock *m = t_mock(NULL, NULL, "10.0.0.1/24");
	whole_second(m);
	char name[16], until[32];
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		/* 1..100 s, with repeats, moved once each: stale entries too */
		rfc3339(now_s(m) + 1000 + i, until);
		json_t *r = t_call(m, "preauth.user.add", NULL, "{s:s, s:s, s:s}", "name", name,
		                   "role", "admin", "access_until", until);
		assert_string_equal(t_err(r), "");
		json_decref(r);
		rfc3339(now_s(m) + 1 + (i * 37) % 100, until);
		r = t_call(m, "preauth.user.set_access", NULL, "{s:s, s:s}", "name", name, "until",
		           until);
		assert_string_equal(t_err(r), "");
		json_decref(r);
	}
	json_t *regs = mg_mock_registrations(m, "preauth");
	assert_int_equal(json_integer_value(json_object_get(regs, "timers")), 2);
	json_decref(regs);
	mg_mock_advance(m, 101 * 1000);
	regs = mg_mock_registrations(m, "preauth");
	assert_int_equal(json_integer_value(json_object_get(regs, "timers")), 1);
	json_decref(regs);
	mg_mock_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_time_parse),
	    cmocka_unit_test(test_bad_times_change_nothing),
	    cmocka_unit_test(test_deadlines_in_order),
	    cmocka_unit_test(test_expired_is_told),
	    cmocka_unit_test(test_restart_rebuilds),
	    cmocka_unit_test(test_remote_change),
	    cmocka_unit_test(test_many_deadlines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
