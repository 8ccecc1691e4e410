/* The api plugin's request checks: routes, content types, decoders and the
 * mapping of bus errors to HTTP statuses. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"

#define KEY "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="

static int decode(int (*fn)(const char *, size_t, json_t **, char *, size_t), const char *body,
                  json_t **out, char *why)
{
	return fn(body, strlen(body), out, why, 256);
}

static void redeem_ok(const char *body, const char *code, const char *name)
{
	json_t *out = (json_t *)1;
	char why[256] = "";
	assert_int_equal(decode(api_decode_redeem, body, &out, why), 0);
	assert_non_null(out);
	assert_string_equal(json_string_value(json_object_get(out, "code")), code);
	if (name)
		assert_string_equal(json_string_value(json_object_get(out, "name")), name);
	else
		assert_null(json_object_get(out, "name"));
	json_decref(out);
}

static void redeem_bad(const char *body, size_t len, const char *why_part)
{
	json_t *out = (json_t *)1;
	char why[256] = "";
	assert_int_equal(api_decode_redeem(body, len, &out, why, sizeof(why)), -EINVAL);
	assert_null(out);
	if (!strstr(why, why_part))
		fail_msg("why \"%s\" lacks \"%s\" (body %.*s)", why, why_part, (int)len, body);
}

#define REDEEM_BAD(body, part) redeem_bad(body, sizeof(body) - 1, part)

static void test_redeem_valid(void **state)
{
	(void)state;
	redeem_ok("{\"code\":\"ABCD-EFGH\"}", "ABCD-EFGH", NULL);
	redeem_ok("{\"code\":\"a b\",\"name\":\"laptop\"}", "a b", "laptop");
	redeem_ok("{\"code\":\"x\",\"name\":null}", "x", NULL);
	redeem_ok("{\"code\":\"x\",\"name\":\"\"}", "x", NULL);
	redeem_ok("{\"name\":\"Zoë's laptop\",\"code\":\"x\"}", "x", "Zoë's laptop");
	redeem_ok(" \n{\"code\" : \"x\"}\n", "x", NULL);
}

static void test_redeem_drops_unknown_and_source(void **state)
{
	json_t *out;
	char why[256];
	(void)state;
	assert_int_equal(decode(api_decode_redeem,
	                        "{\"code\":\"x\",\"source\":\"6.6.6.6\",\"extra\":{\"a\":1}}", &out,
	                        why),
	                 0);
	assert_int_equal(json_object_size(out), 1);
	assert_null(json_object_get(out, "source"));
	json_decref(out);
}

static void test_redeem_invalid(void **state)
{
	char longcode[API_CODE_MAX + 40], longname[API_HOSTNAME_MAX + 40];
	(void)state;
	redeem_bad(NULL, 0, "empty body");
	REDEEM_BAD("", "empty body");
	REDEEM_BAD("{", "invalid JSON");
	REDEEM_BAD("{\"code\":\"x\"} trailing", "invalid JSON");
	REDEEM_BAD("[\"x\"]", "JSON object");
	REDEEM_BAD("\"x\"", "JSON object");
	REDEEM_BAD("null", "JSON object");
	REDEEM_BAD("{}", "missing field 'code'");
	REDEEM_BAD("{\"code\":null}", "'code' must be a string");
	REDEEM_BAD("{\"code\":1}", "'code' must be a string");
	REDEEM_BAD("{\"code\":[\"x\"]}", "'code' must be a string");
	REDEEM_BAD("{\"code\":\"\"}", "must not be empty");
	REDEEM_BAD("{\"code\":\"a\\nb\"}", "not allowed");
	REDEEM_BAD("{\"code\":\"a\\u0000b\"}", "invalid JSON");
	REDEEM_BAD("{\"code\":\"\xc3\xa9\"}", "not allowed");
	REDEEM_BAD("{\"code\":\"\xff\"}", "invalid JSON");
	REDEEM_BAD("{\"code\":\"x\",\"code\":\"y\"}", "invalid JSON");
	REDEEM_BAD("{\"code\":\"x\",\"name\":5}", "'name' must be a string");
	REDEEM_BAD("{\"code\":\"x\",\"name\":\"a\\tb\"}", "not allowed");
	/* a NUL inside the buffer is not the end of it */
	redeem_bad("{\"code\":\"x\"}\0garbage", 20, "invalid JSON");

	snprintf(longcode, sizeof(longcode), "{\"code\":\"%0*d\"}", API_CODE_MAX + 1, 0);
	redeem_bad(longcode, strlen(longcode), "longer than");
	snprintf(longcode, sizeof(longcode), "{\"code\":\"%0*d\"}", API_CODE_MAX, 0);
	json_t *out;
	char why[256];
	assert_int_equal(api_decode_redeem(longcode, strlen(longcode), &out, why, sizeof(why)), 0);
	json_decref(out);
	snprintf(longname, sizeof(longname), "{\"code\":\"x\",\"name\":\"%0*d\"}",
	         API_HOSTNAME_MAX + 1, 0);
	redeem_bad(longname, strlen(longname), "'name' is longer");
}

static void test_redeem_reads_only_len(void **state)
{
	/* the decoder must stop at len: here the object is cut short */
	const char body[] = "{\"code\":\"x\"}";
	(void)state;
	redeem_bad(body, sizeof(body) - 3, "invalid JSON");
}

static json_t *register_ok(const char *body)
{
	json_t *out;
	char why[256] = "";
	int rc = decode(api_decode_register, body, &out, why);
	if (rc)
		fail_msg("register refused: %s (%s)", why, body);
	assert_int_equal(json_object_size(out), 4);
	return out;
}

static void register_bad(const char *body, const char *why_part)
{
	json_t *out = (json_t *)1;
	char why[256] = "";
	assert_int_equal(decode(api_decode_register, body, &out, why), -EINVAL);
	assert_null(out);
	if (!strstr(why, why_part))
		fail_msg("why \"%s\" lacks \"%s\" (body %s)", why, why_part, body);
}

static void test_register_valid(void **state)
{
	(void)state;
	json_t *out = register_ok("{\"device_id\":\"dev-1\",\"register_token\":\"t0k\","
	                          "\"public_key\":\"" KEY "\",\"address\":\"10.100.0.2/32\","
	                          "\"more\":true}");
	assert_string_equal(json_string_value(json_object_get(out, "device_id")), "dev-1");
	assert_string_equal(json_string_value(json_object_get(out, "public_key")), KEY);
	assert_string_equal(json_string_value(json_object_get(out, "address")), "10.100.0.2/32");
	json_decref(out);
	out = register_ok("{\"device_id\":17,\"register_token\":\"t\",\"public_key\":\"" KEY
	                  "\",\"address\":\"fd00::2\"}");
	assert_int_equal(json_integer_value(json_object_get(out, "device_id")), 17);
	json_decref(out);
	json_decref(register_ok("{\"device_id\":0,\"register_token\":\"t\",\"public_key\":\"" KEY
	                        "\",\"address\":\"fd00::2/128\"}"));
	json_decref(
	    register_ok("{\"device_id\":\"d\",\"register_token\":\"t\",\"public_key\":\"" KEY
	                "\",\"address\":\"10.0.0.1\"}"));
}

#define REG(id, token, key, addr)                                                \
	"{\"device_id\":" id ",\"register_token\":" token ",\"public_key\":" key \
	",\"address\":" addr "}"

static void test_register_invalid(void **state)
{
	(void)state;
	register_bad("{}", "device_id");
	register_bad("{\"register_token\":\"t\",\"public_key\":\"" KEY
	             "\",\"address\":\"10.0.0.1\"}",
	             "missing field 'device_id'");
	register_bad(REG("-1", "\"t\"", "\"" KEY "\"", "\"10.0.0.1\""), "negative");
	register_bad(REG("1.5", "\"t\"", "\"" KEY "\"", "\"10.0.0.1\""), "string or an integer");
	register_bad(REG("true", "\"t\"", "\"" KEY "\"", "\"10.0.0.1\""), "string or an integer");
	register_bad(REG("\"\"", "\"t\"", "\"" KEY "\"", "\"10.0.0.1\""), "empty");
	register_bad(REG("\"a b\"", "\"t\"", "\"" KEY "\"", "\"10.0.0.1\""), "not allowed");
	register_bad(REG("\"d\"", "5", "\"" KEY "\"", "\"10.0.0.1\""), "'register_token' must be");
	register_bad(REG("\"d\"", "\"t t\"", "\"" KEY "\"", "\"10.0.0.1\""), "not allowed");
	register_bad(REG("\"d\"", "\"t\"", "\"abc\"", "\"10.0.0.1\""), "WireGuard key");
	register_bad(REG("\"d\"", "\"t\"", "\"" KEY "A\"", "\"10.0.0.1\""), "longer than");
	register_bad(REG("\"d\"", "\"t\"", "7", "\"10.0.0.1\""), "'public_key' must be");
	register_bad(REG("\"d\"", "\"t\"", "\"" KEY "\"", "\"10.0.0.300\""), "not an IP");
	register_bad(REG("\"d\"", "\"t\"", "\"" KEY "\"", "\"10.0.0.1/33\""), "not an IP");
	register_bad(REG("\"d\"", "\"t\"", "\"" KEY "\"", "\"10.0.0.1/\""), "not an IP");
	register_bad(REG("\"d\"", "\"t\"", "\"" KEY "\"", "\"10.0.0.1/024\""), "not an IP");
	register_bad(REG("\"d\"", "\"t\"", "\"" KEY "\"", "\"fd00::1/129\""), "not an IP");
	register_bad(REG("\"d\"", "\"t\"", "\"" KEY "\"", "\"host.example\""), "not an IP");
	register_bad(REG("\"d\"", "\"t\"", "\"" KEY "\"", "[\"10.0.0.1\"]"), "'address' must be");
	register_bad(REG("\"d\"", "\"t\"", "\"" KEY "\"", "\"/24\""), "not an IP");
}

static void test_wg_key(void **state)
{
	(void)state;
	assert_true(api_wg_key_valid(KEY));
	assert_true(api_wg_key_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
	assert_true(api_wg_key_valid("//////////////////////////////////////////w="));
	/* the 43rd digit carries 4 bits: 'B' (1) sets a bit past the key */
	assert_false(api_wg_key_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB="));
	assert_false(api_wg_key_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
	assert_false(api_wg_key_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
	assert_false(api_wg_key_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-A="));
	assert_false(api_wg_key_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="));
	assert_false(api_wg_key_valid(""));
	assert_false(api_wg_key_valid(NULL));
}

static void test_http_status(void **state)
{
	static const struct {
		const char *code;
		unsigned status;
	} cases[] = {
	    {"bad_request", 400},     {"unknown_code", 404}, {"not_found", 404},
	    {"code_used", 409},       {"exists", 409},       {"conflict", 409},
	    {"code_expired", 410},    {"code_revoked", 410}, {"rate_limited", 429},
	    {"unknown_service", 503}, {"timeout", 504},      {"internal", 500},
	    {"forbidden", 403},       {"bad_reply", 500},    {"", 500},
	    {"BAD_REQUEST", 500},     {"unavailable", 503},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(api_http_status(cases[i].code), cases[i].status);
	assert_int_equal(api_http_status(NULL), 500);
}

static void test_content_type(void **state)
{
	(void)state;
	assert_true(api_content_type_is_json("application/json"));
	assert_true(api_content_type_is_json("Application/JSON"));
	assert_true(api_content_type_is_json("application/json; charset=utf-8"));
	assert_true(api_content_type_is_json("application/json;charset=UTF-8"));
	assert_true(api_content_type_is_json(" application/json "));
	assert_false(api_content_type_is_json(NULL));
	assert_false(api_content_type_is_json(""));
	assert_false(api_content_type_is_json("text/plain"));
	assert_false(api_content_type_is_json("application/jsonx"));
	assert_false(api_content_type_is_json("application/json-patch+json"));
	assert_false(api_content_type_is_json("application/x-www-form-urlencoded"));
	assert_false(api_content_type_is_json("multipart/form-data; boundary=x"));
}

static void test_routes(void **state)
{
	const char *allow = NULL;
	(void)state;
	assert_int_equal(api_route_find("/api/v1/redeem"), API_ROUTE_REDEEM);
	assert_int_equal(api_route_find("/api/v1/register"), API_ROUTE_REGISTER);
	assert_int_equal(api_route_find("/api/v1/health"), API_ROUTE_HEALTH);
	assert_int_equal(api_route_find("/api/v1/redeem/"), API_ROUTE_NONE);
	assert_int_equal(api_route_find("/API/v1/redeem"), API_ROUTE_NONE);
	assert_int_equal(api_route_find("/"), API_ROUTE_NONE);
	assert_int_equal(api_route_find(NULL), API_ROUTE_NONE);

	assert_true(api_method_allowed(API_ROUTE_REDEEM, "POST", &allow));
	assert_string_equal(allow, "POST");
	assert_false(api_method_allowed(API_ROUTE_REDEEM, "GET", &allow));
	assert_false(api_method_allowed(API_ROUTE_REGISTER, "post", NULL));
	assert_true(api_method_allowed(API_ROUTE_HEALTH, "GET", &allow));
	assert_true(api_method_allowed(API_ROUTE_HEALTH, "HEAD", &allow));
	assert_false(api_method_allowed(API_ROUTE_HEALTH, "POST", &allow));
	assert_string_equal(allow, "GET, HEAD");

	assert_int_equal(api_route_find("/api/v1/device/config"), API_ROUTE_DEVICE_CONFIG);
	assert_int_equal(api_route_find("/api/v1/device/config/"), API_ROUTE_NONE);
	assert_int_equal(api_route_find("/api/v1/device"), API_ROUTE_NONE);
	assert_true(api_method_allowed(API_ROUTE_DEVICE_CONFIG, "GET", &allow));
	assert_string_equal(allow, "GET");
	assert_false(api_method_allowed(API_ROUTE_DEVICE_CONFIG, "POST", &allow));
	assert_false(api_method_allowed(API_ROUTE_DEVICE_CONFIG, "HEAD", &allow));
	assert_string_equal(api_route_service(API_ROUTE_DEVICE_CONFIG), "preauth.device.config");

	assert_string_equal(api_route_service(API_ROUTE_REDEEM), "preauth.redeem");
	assert_string_equal(api_route_service(API_ROUTE_REGISTER), "preauth.register");
	assert_null(api_route_service(API_ROUTE_HEALTH));
}

/* The two steps of a device's key rotation: the id from the path. */
static void test_key_steps(void **state)
{
	(void)state;
	assert_int_equal(api_route_find("/api/v1/devices/0123456789abcdef/next-key"),
	                 API_ROUTE_NEXT_KEY);
	assert_int_equal(api_route_find("/api/v1/devices/0123456789abcdef/switch-key"),
	                 API_ROUTE_SWITCH_KEY);
	static const char *const not_routes[] = {
	    "/api/v1/devices//next-key",       "/api/v1/devices/a/b/next-key",
	    "/api/v1/devices/a/next-key/",     "/api/v1/devices/a/next-keys",
	    "/api/v1/devices/a b/next-key",    "/api/v1/devices/next-key",
	    "/api/v1/devices/{id}/next-key/x", "/api/v1/devices/a",
	};
	for (size_t i = 0; i < sizeof(not_routes) / sizeof(not_routes[0]); i++)
		if (api_route_find(not_routes[i]) != API_ROUTE_NONE)
			fail_msg("%s is a route", not_routes[i]);
	char longest[300];
	snprintf(longest, sizeof(longest), "/api/v1/devices/%0*d/next-key", API_DEVICE_ID_MAX, 0);
	assert_int_equal(api_route_find(longest), API_ROUTE_NEXT_KEY);
	snprintf(longest, sizeof(longest), "/api/v1/devices/%0*d/next-key", API_DEVICE_ID_MAX + 1,
	         0);
	assert_int_equal(api_route_find(longest), API_ROUTE_NONE);
	assert_string_equal(api_route_service(API_ROUTE_NEXT_KEY), "preauth.device.next_key");
	assert_string_equal(api_route_service(API_ROUTE_SWITCH_KEY), "preauth.device.switch_key");
	assert_true(api_method_allowed(API_ROUTE_SWITCH_KEY, "POST", NULL));
	assert_false(api_method_allowed(API_ROUTE_SWITCH_KEY, "GET", NULL));

	const char *path = "/api/v1/devices/0123456789abcdef/switch-key";
	const char *body =
	    "{\"register_token\":\"t0k\",\"public_key\":\"" KEY "\",\"device_id\":\"other\"}";
	json_t *out = NULL;
	char why[256] = "";
	assert_int_equal(api_decode_key_step(path, body, strlen(body), &out, why, sizeof(why)), 0);
	/* the path's id, never the body's */
	assert_string_equal(json_string_value(json_object_get(out, "device_id")),
	                    "0123456789abcdef");
	assert_string_equal(json_string_value(json_object_get(out, "register_token")), "t0k");
	assert_string_equal(json_string_value(json_object_get(out, "public_key")), KEY);
	json_decref(out);

	static const struct {
		const char *path, *body, *why;
	} bad[] = {
	    {"/api/v1/register", "{\"register_token\":\"t\",\"public_key\":\"" KEY "\"}",
	     "not a path"},
	    {"/api/v1/devices/d/next-key", "{\"public_key\":\"" KEY "\"}", "register_token"},
	    {"/api/v1/devices/d/next-key", "{\"register_token\":\"t\"}", "public_key"},
	    {"/api/v1/devices/d/next-key", "{\"register_token\":\"t\",\"public_key\":\"abc\"}",
	     "WireGuard key"},
	    {"/api/v1/devices/d/next-key",
	     "{\"register_token\":\"t t\",\"public_key\":\"" KEY "\"}", "not allowed"},
	    {"/api/v1/devices/d/next-key", "[]", "JSON object"},
	    {"/api/v1/devices/d/next-key", "", "empty body"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = (json_t *)1;
		why[0] = '\0';
		assert_int_equal(api_decode_key_step(bad[i].path, bad[i].body, strlen(bad[i].body),
		                                     &out, why, sizeof(why)),
		                 -EINVAL);
		assert_null(out);
		if (!strstr(why, bad[i].why))
			fail_msg("%s %s: \"%s\" lacks \"%s\"", bad[i].path, bad[i].body, why,
			         bad[i].why);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_redeem_valid),
	    cmocka_unit_test(test_redeem_drops_unknown_and_source),
	    cmocka_unit_test(test_redeem_invalid),
	    cmocka_unit_test(test_redeem_reads_only_len),
	    cmocka_unit_test(test_register_valid),
	    cmocka_unit_test(test_register_invalid),
	    cmocka_unit_test(test_wg_key),
	    cmocka_unit_test(test_http_status),
	    cmocka_unit_test(test_content_type),
	    cmocka_unit_test(test_routes),
	    cmocka_unit_test(test_key_steps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
