/* The admin API's routes (admin.c): method + path + query + body to the
 * bus service and its request, the role each needs, the errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"

struct built {
	unsigned status;
	const struct api_admin_route *route;
	json_t *request, *error;
	char allow[64];
};

/* Builds METHOD PATH with a query (JSON text or NULL) and a body. */
static struct built build(const char *method, const char *path, const char *query, const char *body)
{
	struct built b;
	json_t *q = query ? json_loads(query, 0, NULL) : NULL;
	b.status = api_admin_build(method, path, q, body, body ? strlen(body) : 0, &b.route,
	                           &b.request, &b.error, b.allow, sizeof(b.allow));
	json_decref(q);
	return b;
}

static void done(struct built *b)
{
	json_decref(b->request);
	json_decref(b->error);
}

/* The request as compact JSON with sorted keys, to compare. */
static void request_is(struct built *b, const char *service, const char *expected)
{
	assert_int_equal(b->status, 0);
	assert_non_null(b->route);
	assert_string_equal(b->route->service, service);
	json_t *want = json_loads(expected, 0, NULL);
	assert_non_null(want);
	assert_true(json_equal(want, b->request));
	json_decref(want);
	done(b);
}

static void error_is(struct built *b, unsigned status, const char *code, const char *field)
{
	assert_int_equal(b->status, status);
	assert_null(b->route);
	assert_null(b->request);
	json_t *e = json_object_get(b->error, "error");
	assert_string_equal(json_string_value(json_object_get(e, "code")), code);
	assert_non_null(json_string_value(json_object_get(e, "message")));
	if (field)
		assert_string_equal(json_string_value(json_object_get(e, "field")), field);
	else
		assert_null(json_object_get(e, "field"));
	done(b);
}

static void test_routes(void **state)
{
	(void)state;
	struct built b = build("GET", "/api/v1/admin/users", NULL, NULL);
	request_is(&b, "preauth.user.list", "{}");
	b = build("POST", "/api/v1/admin/users", NULL, "{\"name\":\"alice\",\"role\":\"dev\"}");
	request_is(&b, "preauth.user.add", "{\"name\":\"alice\",\"role\":\"dev\"}");
	b = build("DELETE", "/api/v1/admin/users/alice", NULL, NULL);
	request_is(&b, "preauth.user.del", "{\"name\":\"alice\"}");
	b = build("POST", "/api/v1/admin/users/alice/codes", NULL, "{\"expires\":\"2h\"}");
	request_is(&b, "preauth.code.add", "{\"user\":\"alice\",\"expires\":\"2h\"}");
	b = build("POST", "/api/v1/admin/devices/0123456789abcdef/disable", NULL, NULL);
	request_is(&b, "preauth.device.disable", "{\"id\":\"0123456789abcdef\"}");
	/* a subnet carries a slash: the rest of the path */
	b = build("DELETE", "/api/v1/admin/routes/10.1.0.0/16", NULL, NULL);
	request_is(&b, "firewall.route.del", "{\"subnet\":\"10.1.0.0/16\"}");
	b = build("DELETE", "/api/v1/admin/ports/443/tcp", NULL, NULL);
	request_is(&b, "firewall.port.del", "{\"port\":\"443/tcp\"}");
	b = build("GET", "/api/v1/admin/keys", NULL, NULL);
	request_is(&b, "secret.status", "{}");
}

static void test_query(void **state)
{
	(void)state;
	/* limit defaults to a page, is a number when given */
	struct built b = build("GET", "/api/v1/admin/devices", NULL, NULL);
	request_is(&b, "preauth.device.list", "{\"limit\":100}");
	b = build("GET", "/api/v1/admin/devices", "{\"q\":\"al\",\"limit\":\"5\",\"after\":\"ab\"}",
	          NULL);
	request_is(&b, "preauth.device.list", "{\"q\":\"al\",\"limit\":5,\"after\":\"ab\"}");
	b = build("GET", "/api/v1/admin/devices", "{\"limit\":\"5x\"}", NULL);
	error_is(&b, 400, "bad_request", "limit");
	b = build("GET", "/api/v1/admin/devices", "{\"limit\":\"-1\"}", NULL);
	error_is(&b, 400, "bad_request", "limit");
	b = build("GET", "/api/v1/admin/devices", "{\"sort\":\"name\"}", NULL);
	error_is(&b, 400, "bad_request", "sort");
	b = build("GET", "/api/v1/admin/users", "{\"q\":\"x\"}", NULL);
	error_is(&b, 400, "bad_request", "q");
}

static void test_patch(void **state)
{
	(void)state;
	struct built b = build("PATCH", "/api/v1/admin/users/bob", NULL, "{\"role\":\"ops\"}");
	request_is(&b, "preauth.user.set_role", "{\"name\":\"bob\",\"role\":\"ops\"}");
	b = build("PATCH", "/api/v1/admin/users/bob", NULL, "{\"access_until\":\"never\"}");
	request_is(&b, "preauth.user.set_access", "{\"name\":\"bob\",\"until\":\"never\"}");
	b = build("PATCH", "/api/v1/admin/users/bob", NULL,
	          "{\"access_until\":\"never\",\"role\":\"ops\"}");
	error_is(&b, 400, "bad_request", NULL);
	b = build("PATCH", "/api/v1/admin/users/bob", NULL, "{}");
	error_is(&b, 400, "bad_request", NULL);
}

static void test_errors(void **state)
{
	(void)state;
	struct built b = build("GET", "/api/v1/admin/nothing", NULL, NULL);
	error_is(&b, 404, "not_found", NULL);
	b = build("GET", "/api/v1/redeem", NULL, NULL);
	error_is(&b, 404, "not_found", NULL);
	b = build("GET", "/api/v1/admin/users/", NULL, NULL);
	error_is(&b, 404, "not_found", NULL);
	b = build("PUT", "/api/v1/admin/users", NULL, "{}");
	assert_string_equal(b.allow, "GET, POST");
	error_is(&b, 405, "method_not_allowed", NULL);
	b = build("POST", "/api/v1/admin/users", NULL, "[1]");
	error_is(&b, 400, "bad_request", NULL);
	b = build("POST", "/api/v1/admin/users", NULL, "{\"name\":");
	error_is(&b, 400, "bad_request", NULL);
	b = build("POST", "/api/v1/admin/users", NULL, "{\"name\":\"a\",\"name\":\"b\"}");
	error_is(&b, 400, "bad_request", NULL);
	/* a path's member cannot come again in the body */
	b = build("POST", "/api/v1/admin/users/bob/codes", NULL, "{\"user\":\"eve\"}");
	error_is(&b, 400, "bad_request", "user");
	b = build("DELETE", "/api/v1/admin/users/bob", NULL, "{\"x\":1}");
	error_is(&b, 400, "bad_request", NULL);
	b = build("GET", "/api/v1/admin/users/\x01", NULL, NULL);
	error_is(&b, 404, "not_found", NULL);
}

static void test_roles(void **state)
{
	(void)state;
	size_t n;
	const struct api_admin_route *r = api_admin_routes(&n);
	assert_true(n > 20);
	for (size_t i = 0; i < n; i++) {
		/* viewers read, and only read (but the list of tokens: admins');
		 * changes need operator or admin */
		if (strcmp(r[i].service, "api.token.list"))
			assert_int_equal(r[i].role == API_ROLE_VIEWER, !strcmp(r[i].method, "GET"));
		else
			assert_int_equal(r[i].role, API_ROLE_ADMIN);
		assert_int_equal(api_service_changes(r[i].service), !!strcmp(r[i].method, "GET"));
		assert_true(api_role_allows(API_ROLE_ADMIN, &r[i]));
		if (!strncmp(r[i].service, "preauth.device.", 15) ||
		    !strncmp(r[i].service, "preauth.code.", 13))
			assert_true(api_role_allows(API_ROLE_OPERATOR, &r[i]));
		if (!strncmp(r[i].service, "preauth.user.", 13) && strcmp(r[i].method, "GET"))
			assert_false(api_role_allows(API_ROLE_OPERATOR, &r[i]));
		if (!strncmp(r[i].service, "api.token.", 10))
			assert_false(api_role_allows(API_ROLE_OPERATOR, &r[i]));
	}
	assert_int_equal(api_role_parse("viewer"), API_ROLE_VIEWER);
	assert_int_equal(api_role_parse("admin"), API_ROLE_ADMIN);
	assert_int_equal(api_role_parse("root"), API_ROLE_NONE);
	assert_int_equal(api_role_parse(NULL), API_ROLE_NONE);
}

static void test_audit_members(void **state)
{
	(void)state;
	json_t *request =
	    json_pack("{s:s, s:s, s:s}", "code", "ABCD-EFGH", "name", "bob", "token", "mgt_x");
	json_t *out = api_audit_members(request);
	assert_string_equal(json_string_value(json_object_get(out, "code")), "(secret)");
	assert_string_equal(json_string_value(json_object_get(out, "token")), "(secret)");
	assert_string_equal(json_string_value(json_object_get(out, "name")), "bob");
	json_decref(out);
	json_decref(request);
	assert_false(api_service_changes("preauth.redeem"));
	assert_false(api_service_changes("dns.stats"));
	assert_true(api_service_changes("firewall.flush"));
	assert_true(api_service_changes("core.state.backup"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_routes), cmocka_unit_test(test_query),
	    cmocka_unit_test(test_patch),  cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_roles),  cmocka_unit_test(test_audit_members),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
