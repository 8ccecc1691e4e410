/* The one check of a bus request (core/request_check.c): each rule, the
 * one error shape, and that the daemon's ops table and the mock core's
 * both answer with it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core.h"
#include "mg_mock.h"
#include "request_check.h"

static const struct mg_field fields[] = {
    {"name", MG_FIELD_STRING, 1, 1, 8},
    {"note", MG_FIELD_STRING, 0, 0, 0},
    {"port", MG_FIELD_INT, 0, 1, 65535},
    {"offset", MG_FIELD_INT, 0, 0, 0},
    {"on", MG_FIELD_BOOL, 0, 0, 0},
    {"roles", MG_FIELD_STRINGS, 0, 1, 2},
    {"pair", MG_FIELD_ARRAY, 0, 2, 2},
    {"extra", MG_FIELD_OBJECT, 0, 0, 0},
    {0},
};

/* The check of `text` against `table`: NULL (accepted) or the error reply. */
static json_t *check(const char *text, const struct mg_field *table)
{
	json_error_t jerr;
	json_t *request = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!request)
		fail_msg("test input does not parse: %s: %s", text, jerr.text);
	json_t *error = request_check(request, table);
	json_decref(request);
	return error;
}

static void accepted(const char *text)
{
	json_t *error = check(text, fields);
	if (error)
		fail_msg("%s refused: %s", text,
		         json_string_value(json_object_get(error, "message")));
}

/* Refused in the one shape: bad_request, the exact message, and the field
 * at fault (NULL: no "field" member). */
static void refused(const char *text, const char *field, const char *message)
{
	json_t *error = check(text, fields);
	if (!error)
		fail_msg("%s accepted", text);
	assert_string_equal(mg_reply_error(error), "bad_request");
	assert_string_equal(json_string_value(json_object_get(error, "message")), message);
	if (field)
		assert_string_equal(json_string_value(json_object_get(error, "field")), field);
	else
		assert_null(json_object_get(error, "field"));
	assert_int_equal(json_object_size(error), field ? 3 : 2);
	json_decref(error);
}

static void test_fits(void **unused)
{
	(void)unused;
	accepted("{\"name\": \"a\"}");
	accepted("{\"name\": \"abcdefgh\", \"note\": \"\", \"port\": 1, \"offset\": -5, "
	         "\"on\": false, \"roles\": [\"x\"], \"pair\": [1, \"b\"], \"extra\": {}}");
	accepted("{\"name\": \"a\", \"port\": 65535, \"roles\": [\"x\", \"y\"]}");
	/* the payload's version */
	accepted("{\"name\": \"a\", \"v\": 2}");
	/* a table without required members takes {} and no payload at all */
	static const struct mg_field none[] = {{0}};
	assert_null(check("{}", none));
	assert_null(request_check(NULL, none));
	assert_null(request_check(NULL, NULL));
}

static void test_not_an_object(void **unused)
{
	(void)unused;
	refused("[]", NULL, "the request must be a JSON object");
	refused("\"name\"", NULL, "the request must be a JSON object");
	refused("null", NULL, "the request must be a JSON object");
	/* no payload is {}: the required member is missing */
	json_t *error = request_check(NULL, fields);
	assert_string_equal(json_string_value(json_object_get(error, "field")), "name");
	json_decref(error);
}

static void test_unknown_refused(void **unused)
{
	(void)unused;
	refused("{\"name\": \"a\", \"nmae\": \"b\"}", "nmae", "unknown field 'nmae'");
	/* reported before the declared one missing: the typo is the news */
	refused("{\"nmae\": \"a\"}", "nmae", "unknown field 'nmae'");
	refused("{\"name\": \"a\", \"v\": \"1\"}", "v", "'v' must be an integer");
	refused("{\"name\": \"a\", \"v\": 1.5}", "v", "'v' must be an integer");
	/* a long name is cut in the field, never mid-character */
	char text[256], name[128];
	memset(name, 'x', 63);
	strcpy(name + 63, "\xc3\xa9zzz"); /* 'é' across byte 64 */
	snprintf(text, sizeof(text), "{\"name\": \"a\", \"%s\": 1}", name);
	json_t *error = check(text, fields);
	const char *field = json_string_value(json_object_get(error, "field"));
	assert_non_null(field);
	assert_int_equal(strlen(field), 63);
	snprintf(text, sizeof(text), "unknown field '%.63s'", name);
	assert_string_equal(json_string_value(json_object_get(error, "message")), text);
	json_decref(error);
}

/* A message longer than 511 bytes is cut where a character ends: still
 * valid UTF-8, so the reply exists. */
static void test_long_message(void **unused)
{
	(void)unused;
	char text[701];
	for (int i = 0; i < 700; i += 2)
		memcpy(text + i, "\xc3\xa9", 2);
	text[700] = '\0';
	json_t *error = mg_field_error("f", "%s", text); /* byte 511 ends no character */
	assert_non_null(error);
	const char *message = json_string_value(json_object_get(error, "message"));
	assert_int_equal(strlen(message), 510);
	json_decref(error);
}

static void test_types(void **unused)
{
	(void)unused;
	refused("{\"name\": 5}", "name", "'name' must be a string");
	refused("{\"name\": null}", "name", "'name' must be a string");
	refused("{\"name\": \"a\\u0000b\"}", "name", "'name' contains a NUL character");
	refused("{\"name\": \"a\", \"port\": \"80\"}", "port", "'port' must be an integer");
	refused("{\"name\": \"a\", \"port\": 80.0}", "port", "'port' must be an integer");
	refused("{\"name\": \"a\", \"on\": 1}", "on", "'on' must be a boolean");
	refused("{\"name\": \"a\", \"roles\": \"x\"}", "roles",
	        "'roles' must be an array of strings");
	refused("{\"name\": \"a\", \"roles\": [\"x\", 1]}", "roles",
	        "'roles' must be an array of strings");
	refused("{\"name\": \"a\", \"roles\": [\"x\\u0000\"]}", "roles",
	        "'roles' must be an array of strings");
	refused("{\"name\": \"a\", \"pair\": {}}", "pair", "'pair' must be an array");
	refused("{\"name\": \"a\", \"extra\": []}", "extra", "'extra' must be an object");
}

static void test_bounds(void **unused)
{
	(void)unused;
	refused("{\"name\": \"\"}", "name", "'name' must be 1 to 8 bytes long");
	refused("{\"name\": \"abcdefghi\"}", "name", "'name' must be 1 to 8 bytes long");
	/* bytes, not characters: four of two bytes each fit, five do not */
	accepted("{\"name\": \"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}");
	refused("{\"name\": \"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}", "name",
	        "'name' must be 1 to 8 bytes long");
	refused("{\"name\": \"a\", \"port\": 0}", "port", "'port' must be from 1 to 65535");
	refused("{\"name\": \"a\", \"port\": 65536}", "port", "'port' must be from 1 to 65535");
	refused("{\"name\": \"a\", \"roles\": []}", "roles", "'roles' must be 1 to 2 items");
	refused("{\"name\": \"a\", \"roles\": [\"x\", \"y\", \"z\"]}", "roles",
	        "'roles' must be 1 to 2 items");
	refused("{\"name\": \"a\", \"pair\": [1]}", "pair", "'pair' must be 2 items");
	/* min and max 0: no bound */
	accepted("{\"name\": \"a\", \"offset\": -9223372036854775807}");
}

static void test_missing(void **unused)
{
	(void)unused;
	refused("{}", "name", "missing field 'name'");
	refused("{\"note\": \"n\"}", "name", "missing field 'name'");
}

/* The daemon's table and the mock core's point at this very check, so a
 * plugin's unit test refuses what the daemon refuses, in the same words. */
static void test_both_tables(void **unused)
{
	(void)unused;
	char err[256];
	assert_ptr_equal(core_api.request_check, request_check);
	struct mg_mock *m = mg_mock_new(NULL, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(mg_mock_add_stub(m, "stub", NULL), 0);
	mg_ctx *ctx = mg_mock_ctx(m, "stub");
	assert_non_null(ctx);
	assert_ptr_equal(ctx->api->request_check, request_check);
	json_t *request = json_pack("{s:i}", "name", 5);
	json_t *error = mg_request_check(ctx, request, fields);
	assert_string_equal(json_string_value(json_object_get(error, "message")),
	                    "'name' must be a string");
	json_decref(error);
	json_decref(request);
	mg_mock_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fits),
	    cmocka_unit_test(test_not_an_object),
	    cmocka_unit_test(test_unknown_refused),
	    cmocka_unit_test(test_types),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_missing),
	    cmocka_unit_test(test_long_message),
	    cmocka_unit_test(test_both_tables),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
