/* The admin API's routes: one table mapping method + path to the bus
 * service meshgatectl uses for the same operation, the role it needs, and
 * how path segments, query parameters and the JSON body become the
 * request's members. The services check the members themselves (the same
 * checks, the same errors as for meshgatectl); this file only builds the
 * request. Pure functions (jansson and libc only): the fuzz target
 * exercises exactly this. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

#define PREFIX "/api/v1/admin/"

/* Query parameters: "NAME" (a string member) or "NAME:int". Defaults: a
 * JSON object of members set when the request has none of that name. */
static const struct api_admin_route routes[] = {
    {"GET", "users", "preauth.user.list", API_ROLE_VIEWER, NULL, NULL, NULL, 0, NULL},
    {"POST", "users", "preauth.user.add", API_ROLE_ADMIN, NULL, NULL, NULL, 1, NULL},
    {"PATCH", "users/{name}", "preauth.user.set_role", API_ROLE_ADMIN, "role", NULL, NULL, 1, NULL},
    {"PATCH", "users/{name}", "preauth.user.set_access", API_ROLE_ADMIN, "access_until", "until",
     NULL, 1, NULL},
    {"DELETE", "users/{name}", "preauth.user.del", API_ROLE_ADMIN, NULL, NULL, NULL, 0, NULL},
    {"POST", "users/{user}/codes", "preauth.code.add", API_ROLE_OPERATOR, NULL, NULL, NULL, 1,
     NULL},
    {"DELETE", "codes/{code}", "preauth.code.revoke", API_ROLE_OPERATOR, NULL, NULL, NULL, 0, NULL},
    {"GET", "devices", "preauth.device.list", API_ROLE_VIEWER, NULL, NULL, "q,limit:int,after,user",
     0, "{\"limit\": 100}"},
    {"POST", "devices/{id}/disable", "preauth.device.disable", API_ROLE_OPERATOR, NULL, NULL, NULL,
     0, NULL},
    {"POST", "devices/{id}/enable", "preauth.device.enable", API_ROLE_OPERATOR, NULL, NULL, NULL, 0,
     NULL},
    {"DELETE", "devices/{id}", "preauth.device.del", API_ROLE_OPERATOR, NULL, NULL, NULL, 0, NULL},
    {"GET", "routes", "firewall.route.list", API_ROLE_VIEWER, NULL, NULL, NULL, 0, NULL},
    {"POST", "routes", "firewall.route.add", API_ROLE_ADMIN, NULL, NULL, NULL, 1, NULL},
    /* a subnet and a port carry a slash: "routes/10.1.0.0/16", "ports/443/tcp" */
    {"DELETE", "routes/{subnet*}", "firewall.route.del", API_ROLE_ADMIN, NULL, NULL, NULL, 0, NULL},
    {"GET", "ports", "firewall.port.list", API_ROLE_VIEWER, NULL, NULL, NULL, 0, NULL},
    {"POST", "ports", "firewall.port.add", API_ROLE_ADMIN, NULL, NULL, NULL, 1, NULL},
    {"DELETE", "ports/{port*}", "firewall.port.del", API_ROLE_ADMIN, NULL, NULL, NULL, 0, NULL},
    {"GET", "dns", "dns.list", API_ROLE_VIEWER, NULL, NULL, "name", 0, NULL},
    {"POST", "dns", "dns.add", API_ROLE_ADMIN, NULL, NULL, NULL, 1, NULL},
    {"DELETE", "dns/{name}", "dns.del", API_ROLE_ADMIN, NULL, NULL, "address", 0, NULL},
    {"GET", "nodes", "mesh.node.list", API_ROLE_VIEWER, NULL, NULL, NULL, 0, NULL},
    {"GET", "failover", "failover.status", API_ROLE_VIEWER, NULL, NULL, NULL, 0, NULL},
    {"GET", "keys", "secret.status", API_ROLE_VIEWER, NULL, NULL, NULL, 0, NULL},
    {"GET", "tokens", "api.token.list", API_ROLE_ADMIN, NULL, NULL, NULL, 0, NULL},
    {"POST", "tokens", "api.token.add", API_ROLE_ADMIN, NULL, NULL, NULL, 1, NULL},
    {"DELETE", "tokens/{name}", "api.token.revoke", API_ROLE_ADMIN, NULL, NULL, NULL, 0, NULL},
    {"GET", "audit", "api.audit.list", API_ROLE_VIEWER, NULL, NULL, "limit:int", 0, NULL},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

const struct api_admin_route *api_admin_routes(size_t *n)
{
	*n = NROUTES;
	return routes;
}

static const char *const role_names[] = {
    [API_ROLE_VIEWER] = "viewer", [API_ROLE_OPERATOR] = "operator", [API_ROLE_ADMIN] = "admin"};

enum api_role api_role_parse(const char *name)
{
	for (int r = API_ROLE_VIEWER; name && r <= API_ROLE_ADMIN; r++)
		if (!strcmp(name, role_names[r]))
			return (enum api_role)r;
	return API_ROLE_NONE;
}

const char *api_role_name(enum api_role role)
{
	return role >= API_ROLE_VIEWER && role <= API_ROLE_ADMIN ? role_names[role] : "none";
}

json_t *api_admin_error(const char *code, const char *field, const char *fmt, ...)
{
	char message[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	json_t *error = json_pack("{s:s, s:s}", "code", code, "message", message);
	if (field)
		json_object_set_new(error, "field", json_string(field));
	return json_pack("{s:o}", "error", error);
}

json_t *api_admin_error_of_reply(json_t *reply)
{
	const char *code = json_string_value(json_object_get(reply, "error"));
	json_t *error = json_pack("{s:s, s:s}", "code", code ? code : "internal", "message",
	                          json_string_value(json_object_get(reply, "message"))
	                              ? json_string_value(json_object_get(reply, "message"))
	                              : "");
	json_t *field = json_object_get(reply, "field");
	if (json_is_string(field))
		json_object_set(error, "field", field);
	return json_pack("{s:o}", "error", error);
}

/* ---- matching a path ---- */

/* Matches the path after PREFIX against a pattern of segments; the
 * captures ({name}: one segment, {name*}: the rest) go into `members`.
 * 1 on a match. */
static int path_match(const char *pattern, const char *path, json_t *members)
{
	while (*pattern) {
		if (*pattern == '{') {
			const char *end = strchr(pattern, '}');
			int rest = end[-1] == '*';
			size_t name_len = (size_t)(end - pattern - 1) - (rest ? 1 : 0);
			size_t value_len = rest ? strlen(path) : strcspn(path, "/");
			if (!value_len)
				return 0;
			char name[32];
			snprintf(name, sizeof(name), "%.*s", (int)name_len, pattern + 1);
			json_object_set_new(members, name, json_stringn(path, value_len));
			pattern = end + 1;
			path += value_len;
			continue;
		}
		if (*pattern != *path)
			return 0;
		pattern++;
		path++;
	}
	return *path == '\0';
}

/* A path segment's text must be printable ASCII or UTF-8 with no control
 * characters: what the services get as a string member. */
static int text_ok(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

/* ---- the query ---- */

/* Adds the allowed query parameters of `spec` to `request`. */
static json_t *add_query(const char *spec, json_t *query, json_t *request)
{
	const char *name;
	json_t *value;
	json_object_foreach(query, name, value)
	{
		const char *text = json_string_value(value);
		size_t n = strlen(name);
		int found = 0, integer = 0;
		for (const char *p = spec; p && *p;) {
			size_t len = strcspn(p, ",");
			const char *colon = memchr(p, ':', len);
			size_t name_len = colon ? (size_t)(colon - p) : len;
			if (name_len == n && !strncmp(p, name, n)) {
				found = 1;
				integer = colon != NULL;
				break;
			}
			p += len + (p[len] == ',');
		}
		if (!found)
			return api_admin_error("bad_request", name,
			                       "unknown query parameter '%.40s'", name);
		if (!text || !text_ok(text) || strlen(text) > API_ADMIN_TEXT_MAX)
			return api_admin_error(
			    "bad_request", name,
			    "query parameter '%s' must be text of at most %d bytes", name,
			    API_ADMIN_TEXT_MAX);
		if (integer) {
			char *end;
			errno = 0;
			long long v = strtoll(text, &end, 10);
			if (!*text || *end || errno || v < 0)
				return api_admin_error("bad_request", name,
				                       "query parameter '%s' must be a number",
				                       name);
			json_object_set_new(request, name, json_integer(v));
		} else {
			json_object_set_new(request, name, json_string(text));
		}
	}
	return NULL;
}

/* ---- the body ---- */

static json_t *parse_body(const char *body, size_t len, json_t **out)
{
	json_error_t err;
	*out = NULL;
	if (!len)
		return NULL;
	json_t *value = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
	if (!value)
		return api_admin_error("bad_request", NULL, "the body is not JSON: %s (at %d)",
		                       err.text, err.position);
	if (!json_is_object(value)) {
		json_decref(value);
		return api_admin_error("bad_request", NULL, "the body must be a JSON object");
	}
	*out = value;
	return NULL;
}

/* Copies the body's members into the request, refusing one that a path
 * segment or a query parameter gives already. */
static json_t *add_body(const struct api_admin_route *route, json_t *body, json_t *request)
{
	const char *name;
	json_t *value;
	json_object_foreach(body, name, value)
	{
		const char *member = name;
		if (route->when_as && !strcmp(name, route->when))
			member = route->when_as;
		if (json_object_get(request, member))
			return api_admin_error("bad_request", name,
			                       "'%.40s' is given by the path or the query already",
			                       name);
		json_object_set(request, member, value);
	}
	return NULL;
}

/* The route of a PATCH with several services: the one whose selector is
 * in the body; exactly one may be. */
static json_t *select_route(const struct api_admin_route **found, size_t n, json_t *body,
                            const struct api_admin_route **route)
{
	char names[128] = "";
	size_t used = 0, hits = 0;
	for (size_t i = 0; i < n; i++) {
		if (json_object_get(body, found[i]->when)) {
			*route = found[i];
			hits++;
		}
		used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
		                         used ? ", " : "", found[i]->when);
		if (used >= sizeof(names))
			used = sizeof(names) - 1;
	}
	if (hits == 1)
		return NULL;
	return api_admin_error("bad_request", NULL, "give exactly one of %s in a request", names);
}

#define MAX_ALTERNATIVES 4

unsigned api_admin_build(const char *method, const char *path, json_t *query, const char *body,
                         size_t len, const struct api_admin_route **route, json_t **request,
                         json_t **error, char *allow, size_t allowlen)
{
	const struct api_admin_route *found[MAX_ALTERNATIVES];
	size_t nfound = 0, used = 0;
	json_t *members = NULL, *object = NULL;

	*route = NULL;
	*request = NULL;
	*error = NULL;
	if (allowlen)
		allow[0] = '\0';
	if (!path || strncmp(path, PREFIX, sizeof(PREFIX) - 1) || !text_ok(path) || !method) {
		*error = api_admin_error("not_found", NULL, "no such path");
		return 404;
	}
	path += sizeof(PREFIX) - 1;
	for (size_t i = 0; i < NROUTES; i++) {
		json_t *captured = json_object();
		if (!path_match(routes[i].path, path, captured)) {
			json_decref(captured);
			continue;
		}
		if (allowlen && !strstr(allow, routes[i].method))
			used += (size_t)snprintf(allow + used, allowlen - used, "%s%s",
			                         used ? ", " : "", routes[i].method);
		if (used >= allowlen)
			used = allowlen ? allowlen - 1 : 0;
		if (strcmp(routes[i].method, method) || nfound == MAX_ALTERNATIVES) {
			json_decref(captured);
			continue;
		}
		if (!members)
			members = captured;
		else
			json_decref(captured); /* the same pattern: the same captures */
		found[nfound++] = &routes[i];
	}
	if (!nfound) {
		json_decref(members);
		int known = allowlen ? allow[0] != '\0' : 0;
		*error = known ? api_admin_error("method_not_allowed", NULL,
		                                 "method not allowed on this path")
		               : api_admin_error("not_found", NULL, "no such path");
		return known ? 405 : 404;
	}
	if ((*error = parse_body(body, len, &object)))
		goto bad;
	if (object && !found[0]->body) {
		*error = api_admin_error("bad_request", NULL, "%s %s takes no body", method,
		                         found[0]->path);
		goto bad;
	}
	*route = found[0];
	if (nfound > 1 && (*error = select_route(found, nfound, object, route)))
		goto bad;
	const char *name;
	json_t *value;
	json_object_foreach(members, name, value)
	{
		if (strlen(json_string_value(value)) > API_ADMIN_TEXT_MAX) {
			*error = api_admin_error("bad_request", name,
			                         "'%s' in the path is too long", name);
			goto bad;
		}
	}
	if ((*error = add_query((*route)->query, query, members)))
		goto bad;
	if (object && (*error = add_body(*route, object, members)))
		goto bad;
	if ((*route)->defaults) {
		json_t *defaults = json_loads((*route)->defaults, 0, NULL);
		json_object_update_missing(members, defaults);
		json_decref(defaults);
	}
	json_decref(object);
	*request = members;
	return 0;
bad:
	*route = NULL;
	json_decref(object);
	json_decref(members);
	return 400;
}

int api_role_allows(enum api_role role, const struct api_admin_route *route)
{
	return route && role >= route->role;
}

/* ---- audit: what changes, and what a record may show ---- */

int api_service_changes(const char *service)
{
	static const char *const reads[] = {"list", "status", "info",   "stats",
	                                    "get",  "config", "metrics"};
	const char *last = service ? strrchr(service, '.') : NULL;
	if (!last)
		return 0;
	for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
		if (!strcmp(last + 1, reads[i]))
			return 0;
	/* redeem and register are devices onboarding, not an admin's change */
	return strcmp(service, "preauth.redeem") && strcmp(service, "preauth.register");
}

json_t *api_audit_members(json_t *request)
{
	static const char *const secrets[] = {"code",  "token",       "secret", "password",
	                                      "value", "private_key", "key"};
	json_t *out = json_object();
	const char *name;
	json_t *value;
	json_object_foreach(request, name, value)
	{
		int secret = 0;
		for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
			secret |= !strcmp(name, secrets[i]);
		json_object_set_new(out, name,
		                    secret ? json_string("(secret)") : json_incref(value));
	}
	return out;
}
