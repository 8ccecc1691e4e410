/* `meshgate up --login`'s reading of the identity provider (login.h): the
 * device authorization answer, and each answer of the token endpoint while
 * polling (RFC 8628, 3.2 and 3.5). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "login.h"

static enum cl_poll poll_of(long status, const char *body, char **token, struct cl_err *err)
{
	memset(err, 0, sizeof(*err));
	return cl_token_answer_decode(status, body, strlen(body), token, err);
}

static void test_grant(void **state)
{
	struct cl_device_grant g;
	struct cl_err err = {0};
	(void)state;
	const char *good =
	    "{\"device_code\": \"dc-1\", \"user_code\": \"WDJB-MJHT\", "
	    "\"verification_uri\": \"https://sso.example/device\", "
	    "\"verification_uri_complete\": \"https://sso.example/device?user_code=WDJB-MJHT\", "
	    "\"expires_in\": 900, \"interval\": 7}";
	assert_int_equal(cl_device_grant_decode(good, strlen(good), &g, &err), 0);
	assert_string_equal(g.device_code, "dc-1");
	assert_string_equal(g.user_code, "WDJB-MJHT");
	assert_int_equal(g.interval_s, 7);
	assert_int_equal(g.expires_in_s, 900);
	/* no interval: RFC 8628's 5 s; a silly one: the same */
	const char *plain =
	    "{\"device_code\": \"d\", \"user_code\": \"U\", "
	    "\"verification_uri\": \"https://sso.example/device\", \"interval\": 0}";
	assert_int_equal(cl_device_grant_decode(plain, strlen(plain), &g, &err), 0);
	assert_int_equal(g.interval_s, 5);
	assert_int_equal(g.expires_in_s, 600);
	assert_string_equal(g.verification_uri_complete, "");
	/* a plain http verification address, or no code: refused */
	const char *http = "{\"device_code\": \"d\", \"user_code\": \"U\", "
	                   "\"verification_uri\": \"http://sso.example/device\"}";
	assert_int_equal(cl_device_grant_decode(http, strlen(http), &g, &err), -1);
	assert_int_equal(err.exit_code, CL_EXIT_SERVER);
	assert_int_equal(cl_device_grant_decode("{}", 2, &g, &err), -1);
	assert_int_equal(cl_device_grant_decode("nope", 4, &g, &err), -1);
}

static void test_poll(void **state)
{
	struct cl_err err;
	char *token = NULL;
	(void)state;
	assert_int_equal(
	    poll_of(200, "{\"id_token\": \"a.b.c\", \"access_token\": \"x\"}", &token, &err),
	    CL_POLL_DONE);
	assert_string_equal(token, "a.b.c");
	free(token);
	assert_int_equal(poll_of(400, "{\"error\": \"authorization_pending\"}", &token, &err),
	                 CL_POLL_PENDING);
	assert_null(token);
	assert_int_equal(poll_of(400, "{\"error\": \"slow_down\"}", &token, &err),
	                 CL_POLL_SLOW_DOWN);
	assert_int_equal(poll_of(400, "{\"error\": \"access_denied\"}", &token, &err),
	                 CL_POLL_FAILED);
	assert_int_equal(err.exit_code, CL_EXIT_LOGIN);
	assert_non_null(strstr(err.msg, "denied"));
	assert_int_equal(poll_of(400, "{\"error\": \"expired_token\"}", &token, &err),
	                 CL_POLL_FAILED);
	assert_non_null(strstr(err.msg, "expired"));
	/* the provider's own words, without its escape sequences */
	assert_int_equal(poll_of(401,
	                         "{\"error\": \"invalid_client\", \"error_description\": "
	                         "\"no such client\\u001b[31m\"}",
	                         &token, &err),
	                 CL_POLL_FAILED);
	assert_string_equal(err.msg, "the identity provider refused the login (HTTP 401, "
	                             "invalid_client): no such client?[31m");
	/* 200 without an ID token: openid was not granted */
	assert_int_equal(poll_of(200, "{\"access_token\": \"x\"}", &token, &err), CL_POLL_FAILED);
	assert_int_equal(err.exit_code, CL_EXIT_SERVER);
	assert_int_equal(poll_of(502, "<html>", &token, &err), CL_POLL_FAILED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_grant),
	                                   cmocka_unit_test(test_poll)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
