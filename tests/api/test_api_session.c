/* The panel's session store (plugins/api/session.c): a cookie finds its
 * session until logout, the idle timeout or the absolute one; the table
 * is bounded, the least recently used giving way; a token's sessions end
 * with it; the cookie's flags. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "session.h"

#define T0 1000000u

static void open_find_close(void **unused)
{
	(void)unused;
	struct api_sessions *s = api_sessions_new();
	char cookie[API_SESSION_SECRET_LEN + 1], other[API_SESSION_SECRET_LEN + 1];
	struct api_session opened, found;
	assert_int_equal(
	    api_sessions_open(s, "token ops", API_ROLE_ADMIN, "ops", T0, cookie, &opened), 0);
	assert_int_equal(strlen(cookie), API_SESSION_SECRET_LEN);
	assert_int_equal(strlen(opened.csrf), API_SESSION_SECRET_LEN);
	assert_string_not_equal(cookie, opened.csrf);
	assert_int_equal(api_sessions_find(s, cookie, T0 + 1, &found), 0);
	assert_string_equal(found.who, "token ops");
	assert_string_equal(found.csrf, opened.csrf);
	assert_int_equal(found.role, API_ROLE_ADMIN);
	/* another cookie of the same length, a short one, none */
	assert_int_equal(
	    api_sessions_open(s, "oidc bob", API_ROLE_VIEWER, NULL, T0, other, &opened), 0);
	assert_string_not_equal(cookie, other);
	other[0] = other[0] == 'A' ? 'B' : 'A';
	assert_int_equal(api_sessions_find(s, other, T0 + 1, &found), -ENOENT);
	assert_int_equal(api_sessions_find(s, "short", T0 + 1, &found), -ENOENT);
	assert_int_equal(api_sessions_find(s, NULL, T0 + 1, &found), -ENOENT);
	/* logout ends it at once */
	assert_int_equal(api_sessions_close(s, cookie), 0);
	assert_int_equal(api_sessions_find(s, cookie, T0 + 2, &found), -ENOENT);
	assert_int_equal(api_sessions_close(s, cookie), -ENOENT);
	api_sessions_free(s);
}

static void bad_input_changes_nothing(void **unused)
{
	(void)unused;
	struct api_sessions *s = api_sessions_new();
	char cookie[API_SESSION_SECRET_LEN + 1], who[API_SESSION_WHO_MAX + 2];
	struct api_session out;
	memset(who, 'a', sizeof(who) - 1);
	who[sizeof(who) - 1] = '\0';
	assert_int_equal(api_sessions_open(s, "", API_ROLE_ADMIN, NULL, T0, cookie, &out), -EINVAL);
	assert_int_equal(api_sessions_open(s, who, API_ROLE_ADMIN, NULL, T0, cookie, &out),
	                 -EINVAL);
	assert_int_equal(api_sessions_open(s, "x", API_ROLE_NONE, NULL, T0, cookie, &out), -EINVAL);
	api_sessions_free(s);
}

static void timeouts(void **unused)
{
	(void)unused;
	struct api_sessions *s = api_sessions_new();
	char cookie[API_SESSION_SECRET_LEN + 1];
	struct api_session out;
	assert_int_equal(api_sessions_open(s, "a", API_ROLE_VIEWER, NULL, T0, cookie, &out), 0);
	/* used just before the idle timeout: it goes on */
	assert_int_equal(api_sessions_find(s, cookie, T0 + API_SESSION_IDLE_MS - 1, &out), 0);
	assert_int_equal(api_sessions_find(s, cookie, T0 + 2 * API_SESSION_IDLE_MS - 2, &out), 0);
	/* idle for the whole timeout: gone */
	assert_int_equal(api_sessions_find(s, cookie, T0 + 3 * API_SESSION_IDLE_MS - 2, &out),
	                 -ENOENT);

	/* in use all the time, it still ends at the absolute timeout */
	assert_int_equal(api_sessions_open(s, "b", API_ROLE_VIEWER, NULL, T0, cookie, &out), 0);
	uint64_t t = T0;
	while (t + API_SESSION_IDLE_MS / 2 < T0 + API_SESSION_MAX_MS) {
		t += API_SESSION_IDLE_MS / 2;
		assert_int_equal(api_sessions_find(s, cookie, t, &out), 0);
	}
	assert_int_equal(api_sessions_find(s, cookie, T0 + API_SESSION_MAX_MS, &out), -ENOENT);
	api_sessions_free(s);
}

static void bounded(void **unused)
{
	(void)unused;
	struct api_sessions *s = api_sessions_new();
	static char cookies[API_SESSIONS_MAX + 1][API_SESSION_SECRET_LEN + 1];
	struct api_session out;
	for (unsigned i = 0; i < API_SESSIONS_MAX; i++)
		assert_int_equal(
		    api_sessions_open(s, "a", API_ROLE_VIEWER, NULL, T0 + i, cookies[i], &out), 0);
	/* the first is used again: the second is now the least recently used */
	assert_int_equal(api_sessions_find(s, cookies[0], T0 + API_SESSIONS_MAX, &out), 0);
	assert_int_equal(api_sessions_open(s, "new", API_ROLE_VIEWER, NULL,
	                                   T0 + API_SESSIONS_MAX + 1, cookies[API_SESSIONS_MAX],
	                                   &out),
	                 0);
	uint64_t now = T0 + API_SESSIONS_MAX + 2;
	assert_int_equal(api_sessions_find(s, cookies[1], now, &out), -ENOENT);
	assert_int_equal(api_sessions_find(s, cookies[0], now, &out), 0);
	assert_int_equal(api_sessions_find(s, cookies[2], now, &out), 0);
	assert_int_equal(api_sessions_find(s, cookies[API_SESSIONS_MAX], now, &out), 0);
	assert_string_equal(out.who, "new");
	api_sessions_free(s);
}

static void token_revoked(void **unused)
{
	(void)unused;
	struct api_sessions *s = api_sessions_new();
	char a[API_SESSION_SECRET_LEN + 1], b[API_SESSION_SECRET_LEN + 1],
	    c[API_SESSION_SECRET_LEN + 1];
	struct api_session out;
	assert_int_equal(api_sessions_open(s, "token x", API_ROLE_ADMIN, "x", T0, a, &out), 0);
	assert_int_equal(api_sessions_open(s, "token x", API_ROLE_ADMIN, "x", T0, b, &out), 0);
	assert_int_equal(api_sessions_open(s, "token y", API_ROLE_ADMIN, "y", T0, c, &out), 0);
	api_sessions_close_token(s, "x");
	assert_int_equal(api_sessions_find(s, a, T0, &out), -ENOENT);
	assert_int_equal(api_sessions_find(s, b, T0, &out), -ENOENT);
	assert_int_equal(api_sessions_find(s, c, T0, &out), 0);
	api_sessions_free(s);
}

static void cookie_header(void **unused)
{
	(void)unused;
	char header[160];
	api_session_cookie_header("abc", header, sizeof(header));
	assert_string_equal(header,
	                    "meshgate_session=abc; HttpOnly; Secure; SameSite=Strict; Path=/");
	api_session_cookie_header("", header, sizeof(header));
	assert_non_null(strstr(header, "Max-Age=0"));
	assert_non_null(strstr(header, "HttpOnly; Secure; SameSite=Strict"));
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(open_find_close), cmocka_unit_test(bad_input_changes_nothing),
	    cmocka_unit_test(timeouts),        cmocka_unit_test(bounded),
	    cmocka_unit_test(token_revoked),   cmocka_unit_test(cookie_header),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
