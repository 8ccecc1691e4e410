/* The redeem reply decoder: everything the gateway sends is checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "reply.h"

#define KEY "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="

static const char good[] = "{\"device_id\": \"dev-7\", \"address\": \"10.0.0.2/32\","
                           " \"server_public_key\": \"" KEY "\","
                           " \"endpoint\": \"gw.example.com:51820\","
                           " \"allowed_ips\": [\"10.0.0.0/24\", \"192.168.1.7/16\"],"
                           " \"keepalive\": 25, \"register_token\": \"tok-abc\","
                           " \"dns\": \"10.0.0.1, corp.example\"}";

static int decode(const char *text, struct cl_redeem_reply *r, struct cl_err *err)
{
	memset(err, 0, sizeof(*err));
	return cl_redeem_reply_decode(text, strlen(text), r, err);
}

static void decodes_a_good_reply(void **state)
{
	(void)state;
	struct cl_redeem_reply r;
	struct cl_err err;
	char text[CL_PREFIX_STRLEN];

	assert_int_equal(decode(good, &r, &err), 0);
	assert_string_equal(r.device_id, "dev-7");
	assert_false(r.device_id_is_int);
	cl_prefix_format(&r.address, text, sizeof(text));
	assert_string_equal(text, "10.0.0.2/32");
	assert_int_equal(r.server_public_key[0], 0x1c);
	assert_string_equal(r.endpoint.host, "gw.example.com");
	assert_int_equal(r.endpoint.port, 51820);
	assert_int_equal(r.n_allowed_ips, 2);
	cl_prefix_format(&r.allowed_ips[1], text, sizeof(text));
	assert_string_equal(text, "192.168.0.0/16"); /* host bits cleared for routes */
	assert_int_equal(r.keepalive, 25);
	assert_string_equal(r.register_token, "tok-abc");
	assert_int_equal(r.n_dns, 2);
	assert_string_equal(r.dns[0], "10.0.0.1");
	assert_string_equal(r.dns[1], "corp.example");
}

static void accepts_numeric_id_ipv6_and_no_optional_fields(void **state)
{
	(void)state;
	struct cl_redeem_reply r;
	struct cl_err err;
	const char *text = "{\"device_id\": 42, \"address\": \"fd00::2/128\","
	                   " \"server_public_key\": \"" KEY "\","
	                   " \"endpoint\": \"[fd00::1]:443\", \"allowed_ips\": [\"fd00::/64\"],"
	                   " \"register_token\": \"t\", \"future_field\": {}}";
	assert_int_equal(decode(text, &r, &err), 0);
	assert_string_equal(r.device_id, "42");
	assert_true(r.device_id_is_int);
	assert_int_equal(r.address.family, AF_INET6);
	assert_string_equal(r.endpoint.host, "fd00::1");
	assert_int_equal(r.endpoint.port, 443);
	assert_int_equal(r.keepalive, 0);
	assert_int_equal(r.n_dns, 0);
}

/* Replaces the first occurrence of from in good with to. */
static void mutate(char *out, size_t size, const char *from, const char *to)
{
	const char *at = strstr(good, from);
	assert_non_null(at);
	snprintf(out, size, "%.*s%s%s", (int)(at - good), good, to, at + strlen(from));
}

static void rejects(const char *from, const char *to, const char *field)
{
	char text[2048];
	struct cl_redeem_reply r;
	struct cl_err err;
	mutate(text, sizeof(text), from, to);
	if (decode(text, &r, &err) == 0)
		fail_msg("accepted: %s", text);
	assert_int_equal(err.exit_code, CL_EXIT_SERVER);
	if (!strstr(err.msg, field))
		fail_msg("message '%s' does not name %s", err.msg, field);
}

static void rejects_bad_fields(void **state)
{
	(void)state;
	rejects("\"" KEY "\"", "\"AAAA\"", "server_public_key");
	rejects("\"" KEY "\"", "\"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8yk==\"",
	        "server_public_key");
	rejects("\"" KEY "\"", "\"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8y!w=\"",
	        "server_public_key");
	rejects("\"" KEY "\"", "32", "server_public_key");
	rejects("10.0.0.2/32", "10.0.0.2", "address");
	rejects("10.0.0.2/32", "10.0.0.2/33", "address");
	rejects("10.0.0.2/32", "10.0.0.256/32", "address");
	rejects("10.0.0.2/32", "0.0.0.0/0", "address");
	rejects("10.0.0.2/32", "10.0.0.2/032", "address");
	rejects("10.0.0.2/32", "10.0.0.2/32 ", "address");
	rejects("gw.example.com:51820", "gw.example.com", "endpoint");
	rejects("gw.example.com:51820", "gw.example.com:0", "endpoint");
	rejects("gw.example.com:51820", "gw.example.com:65536", "endpoint");
	rejects("gw.example.com:51820", "fd00::1:51820", "endpoint");
	rejects("gw.example.com:51820", "gw example:51820", "endpoint");
	rejects("gw.example.com:51820", "gw.example.com:51820\\n", "endpoint");
	rejects("[\"10.0.0.0/24\", \"192.168.1.7/16\"]", "[]", "allowed_ips");
	rejects("[\"10.0.0.0/24\", \"192.168.1.7/16\"]", "\"10.0.0.0/24\"", "allowed_ips");
	rejects("\"192.168.1.7/16\"", "\"192.168.1.7/40\"", "allowed_ips");
	rejects("\"192.168.1.7/16\"", "7", "allowed_ips");
	rejects("25", "-1", "keepalive");
	rejects("25", "70000", "keepalive");
	rejects("25", "\"25\"", "keepalive");
	rejects("\"tok-abc\"", "\"tok abc\"", "register_token");
	rejects("\"tok-abc\"", "\"\"", "register_token");
	rejects("\"dev-7\"", "\"dev\\n7\"", "device_id");
	rejects("\"dev-7\"", "-3", "device_id");
	rejects("\"dev-7\"", "\"dev 7\"", "device_id");
	rejects("\"dev-7\"", "1.5", "device_id");
	/* A NUL inside a string must not truncate it into something valid. */
	rejects("\"dev-7\"", "\"dev\\u00007\"", "malformed");
	rejects("\"tok-abc\"", "\"tok\\u0000abc\"", "malformed");
	rejects("\"10.0.0.1, corp.example\"", "\"10.0.0.1; rm -rf\"", "dns");
	rejects("\"10.0.0.1, corp.example\"", "\"10.0.0.0/8\"", "dns");
	rejects("\"10.0.0.1, corp.example\"", "[1]", "dns");
	rejects("\"device_id\"", "\"device\"", "device_id");
	rejects("\"register_token\"", "\"token\"", "register_token");
}

static void rejects_non_json_and_duplicates(void **state)
{
	(void)state;
	struct cl_redeem_reply r;
	struct cl_err err;
	assert_int_equal(decode("", &r, &err), -1);
	assert_int_equal(decode("[1,2]", &r, &err), -1);
	assert_int_equal(decode("{\"device_id\": 1, \"device_id\": 2}", &r, &err), -1);
	/* A trailing NUL byte is not JSON. */
	assert_int_equal(cl_redeem_reply_decode(good, sizeof(good), &r, &err), -1);
}

static void error_reply(long status, const char *body, int exit_code, const char *text)
{
	struct cl_err err = {0};
	assert_int_equal(cl_error_reply_decode("redeem", status, body, strlen(body), &err), -1);
	assert_int_equal(err.exit_code, exit_code);
	if (!strstr(err.msg, text))
		fail_msg("'%s' lacks '%s'", err.msg, text);
}

static void classifies_error_replies(void **state)
{
	(void)state;
	error_reply(409, "{\"error\":\"code_used\",\"message\":\"x\"}", CL_EXIT_CODE_USED,
	            "code already used");
	error_reply(404, "{\"error\":\"unknown_code\",\"message\":\"x\"}", CL_EXIT_CODE_INVALID,
	            "unknown code");
	error_reply(410, "{\"error\":\"code_expired\"}", CL_EXIT_CODE_EXPIRED, "code expired");
	error_reply(410, "{\"error\":\"code_revoked\"}", CL_EXIT_CODE_EXPIRED, "code revoked");
	error_reply(429, "{\"error\":\"rate_limited\"}", CL_EXIT_RATE_LIMITED, "try again later");
	error_reply(400, "{\"error\":\"bad_request\",\"message\":\"name too long\"}",
	            CL_EXIT_CODE_INVALID, "name too long");
	error_reply(503, "{\"error\":\"unavailable\",\"message\":\"bus\\u001b[2J down\"}",
	            CL_EXIT_SERVER, "HTTP 503: bus?[2J down");
	error_reply(502, "<html>bad gateway</html>", CL_EXIT_SERVER, "HTTP 502");
	error_reply(409, "not json", CL_EXIT_CODE_USED, "code already used");
	error_reply(403, "{\"error\":\"forbidden\",\"message\":\"bad token\"}",
	            CL_EXIT_CODE_INVALID, "HTTP 403): bad token");
}

static void parses_prefixes_and_endpoints(void **state)
{
	(void)state;
	struct cl_prefix a, b;
	struct cl_endpoint e;
	assert_int_equal(cl_prefix_parse("10.0.0.0/24", true, &a), 0);
	assert_int_equal(cl_prefix_parse("10.0.0.2/32", true, &b), 0);
	assert_true(cl_prefix_covers(&a, &b));
	assert_false(cl_prefix_covers(&b, &a));
	assert_int_equal(cl_prefix_parse("10.0.1.0/24", true, &b), 0);
	assert_false(cl_prefix_covers(&a, &b));
	assert_int_equal(cl_prefix_parse("fd00::/8", true, &b), 0);
	assert_false(cl_prefix_covers(&a, &b));
	assert_int_equal(cl_prefix_parse("10.0.0.1", false, &a), 0);
	assert_int_equal(a.len, 32);
	assert_int_equal(cl_prefix_parse("10.0.0.1", true, &a), -22);
	assert_int_equal(cl_prefix_parse("/24", true, &a), -22);
	assert_int_equal(cl_prefix_parse("10.0.0.1/", true, &a), -22);
	assert_int_equal(cl_endpoint_parse("1.2.3.4:5", &e), 0);
	assert_int_equal(cl_endpoint_parse("[1.2.3.4]:5", &e), -22);
	assert_int_equal(cl_endpoint_parse("a-.b:5", &e), -22);
	assert_int_equal(cl_endpoint_parse(":5", &e), -22);
	assert_int_equal(cl_endpoint_parse("[::1]5", &e), -22);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(decodes_a_good_reply),
	    cmocka_unit_test(accepts_numeric_id_ipv6_and_no_optional_fields),
	    cmocka_unit_test(rejects_bad_fields),
	    cmocka_unit_test(rejects_non_json_and_duplicates),
	    cmocka_unit_test(classifies_error_replies),
	    cmocka_unit_test(parses_prefixes_and_endpoints),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
