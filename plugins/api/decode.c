/* What arrives from the network, checked before anything reaches the bus:
 * routes, content types and the JSON bodies of requests. Pure functions
 * (jansson and libc only) so the fuzz target exercises exactly this. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "oidc.h"

/* ---- routes ---- */

static const struct {
	const char *path;
	enum api_route route;
	const char *allow;
	const char *service;
} routes[] = {
    {"/api/v1/redeem", API_ROUTE_REDEEM, "POST", "preauth.redeem"},
    {"/api/v1/register", API_ROUTE_REGISTER, "POST", "preauth.register"},
    {"/api/v1/health", API_ROUTE_HEALTH, "GET, HEAD", NULL},
    {"/api/v1/health/live", API_ROUTE_LIVE, "GET, HEAD", NULL},
    {"/api/v1/device/config", API_ROUTE_DEVICE_CONFIG, "GET", "preauth.device.config"},
    {"/api/v1/devices/{id}/next-key", API_ROUTE_NEXT_KEY, "POST", "preauth.device.next_key"},
    {"/api/v1/devices/{id}/switch-key", API_ROUTE_SWITCH_KEY, "POST", "preauth.device.switch_key"},
    {"/api/v1/oidc", API_ROUTE_OIDC, "GET", NULL},
    /* the login's code is redeemed as any other (oidc.h) */
    {"/api/v1/oidc/enroll", API_ROUTE_OIDC_ENROLL, "POST", "preauth.redeem"},
};

#define NROUTES  (sizeof(routes) / sizeof(routes[0]))
#define ID_FIELD "{id}"

/* Does `path` match `pattern`, whose "{id}" stands for one path segment
 * of 1..API_DEVICE_ID_MAX visible ASCII characters? The segment goes to
 * id (when not NULL). */
static int path_matches(const char *pattern, const char *path, char id[API_DEVICE_ID_MAX + 1])
{
	const char *field = strstr(pattern, ID_FIELD);
	if (!field)
		return !strcmp(pattern, path);
	size_t head = (size_t)(field - pattern);
	if (strncmp(pattern, path, head))
		return 0;
	const char *start = path + head, *end = start;
	while (*end > ' ' && *end < 0x7f && *end != '/')
		end++;
	size_t n = (size_t)(end - start);
	if (n == 0 || n > API_DEVICE_ID_MAX || strcmp(end, field + strlen(ID_FIELD)))
		return 0;
	if (id) {
		memcpy(id, start, n);
		id[n] = '\0';
	}
	return 1;
}

enum api_route api_route_find(const char *path)
{
	for (size_t i = 0; path && i < NROUTES; i++)
		if (path_matches(routes[i].path, path, NULL))
			return routes[i].route;
	return API_ROUTE_NONE;
}

int api_method_allowed(enum api_route route, const char *method, const char **allow)
{
	for (size_t i = 0; i < NROUTES; i++) {
		if (routes[i].route != route)
			continue;
		if (allow)
			*allow = routes[i].allow;
		if (!method)
			return 0;
		if (route == API_ROUTE_HEALTH || route == API_ROUTE_LIVE)
			return !strcmp(method, "GET") || !strcmp(method, "HEAD");
		if (route == API_ROUTE_DEVICE_CONFIG || route == API_ROUTE_OIDC)
			return !strcmp(method, "GET");
		return !strcmp(method, "POST");
	}
	return 0;
}

static const char *api_route_path(enum api_route route)
{
	for (size_t i = 0; i < NROUTES; i++)
		if (routes[i].route == route)
			return routes[i].path;
	return "";
}

const char *api_route_service(enum api_route route)
{
	for (size_t i = 0; i < NROUTES; i++)
		if (routes[i].route == route)
			return routes[i].service;
	return NULL;
}

/* "application/json", optionally followed by parameters; case and
 * surrounding blanks do not matter (RFC 9110, 8.3.1). */
int api_content_type_is_json(const char *value)
{
	static const char json[] = "application/json";
	if (!value)
		return 0;
	while (*value == ' ' || *value == '\t')
		value++;
	if (strncasecmp(value, json, sizeof(json) - 1))
		return 0;
	value += sizeof(json) - 1;
	while (*value == ' ' || *value == '\t')
		value++;
	return *value == '\0' || *value == ';';
}

/* ---- errors ---- */

/* "unavailable": a cluster without etcd quorum takes no write now. */
static const struct {
	const char *code;
	unsigned status;
} statuses[] = {
    {"bad_request", 400},
    {"unknown_code", 404},
    {"not_found", 404},
    {"code_used", 409},
    {"exists", 409},
    {"conflict", 409},
    {"code_expired", 410},
    {"code_revoked", 410},
    {"rate_limited", 429},
    {"unknown_service", 503},
    {"timeout", 504},
    {"forbidden", 403},
    {"unavailable", 503},
    {"access_expired", 403},
    {"identity_refused", 403},
    {"not_configured", 404},
    {"provider_unavailable", 502},
};

unsigned api_http_status(const char *error_code)
{
	for (size_t i = 0; error_code && i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if (!strcmp(error_code, statuses[i].code))
			return statuses[i].status;
	return 500;
}

/* ---- field checks ---- */

enum charset {
	ASCII_PRINTABLE, /* 0x20..0x7e */
	ASCII_VISIBLE,   /* 0x21..0x7e: tokens, ids */
	TEXT,            /* any UTF-8 (jansson checked it) but control characters */
};

static int chars_ok(const char *s, enum charset set)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return 0;
		if (set != TEXT && *p > 0x7e)
			return 0;
		if (set == ASCII_VISIBLE && *p == ' ')
			return 0;
	}
	return 1;
}

static int fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* A string field: NULL if absent (or null when optional); -EINVAL if it is
 * of another type, too long, too short or has characters it should not. */
static int string_field(json_t *obj, const char *name, int required, size_t min, size_t max,
                        enum charset set, const char **out, char *why, size_t whylen)
{
	json_t *v = json_object_get(obj, name);
	*out = NULL;
	if (!v || (!required && json_is_null(v))) {
		if (required)
			return fail(why, whylen, "missing field '%s'", name);
		return 0;
	}
	if (!json_is_string(v))
		return fail(why, whylen, "'%s' must be a string", name);
	size_t len = json_string_length(v);
	if (len < min)
		return fail(why, whylen, "'%s' must not be empty", name);
	if (len > max)
		return fail(why, whylen, "'%s' is longer than %zu bytes", name, max);
	if (!chars_ok(json_string_value(v), set))
		return fail(why, whylen, "'%s' contains characters that are not allowed", name);
	*out = json_string_value(v);
	return 0;
}

int api_wg_key_valid(const char *key)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	/* 32 bytes are 43 base64 digits and one '='; the last digit carries
	 * only 4 bits, so its low 2 bits must be zero. */
	if (!key || strlen(key) != API_WG_KEY_LEN || key[43] != '=')
		return 0;
	for (int i = 0; i < 43; i++) {
		const char *at = key[i] ? strchr(b64, key[i]) : NULL;
		if (!at)
			return 0;
		if (i == 42 && ((at - b64) & 3))
			return 0;
	}
	return 1;
}

/* "10.0.0.2", "10.0.0.2/32", "fd00::2", "fd00::2/128". */
static int address_valid(const char *s)
{
	char ip[API_ADDRESS_MAX + 1];
	unsigned char buf[16];
	const char *slash = strchr(s, '/');
	size_t iplen = slash ? (size_t)(slash - s) : strlen(s);
	if (iplen == 0 || iplen > API_ADDRESS_MAX)
		return 0;
	memcpy(ip, s, iplen);
	ip[iplen] = '\0';
	int v4 = inet_pton(AF_INET, ip, buf) == 1;
	if (!v4 && inet_pton(AF_INET6, ip, buf) != 1)
		return 0;
	if (!slash)
		return 1;
	const char *p = slash + 1;
	unsigned prefix = 0;
	if (!*p || strlen(p) > 3)
		return 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		prefix = prefix * 10 + (unsigned)(*p - '0');
	}
	if (slash[1] == '0' && slash[2])
		return 0; /* no leading zeros */
	return prefix <= (v4 ? 32u : 128u);
}

/* The body as a JSON object; duplicate keys are refused, since two
 * readers could pick different ones. */
static json_t *parse_object(const char *body, size_t len, char *why, size_t whylen)
{
	json_error_t jerr;
	if (!body || len == 0) {
		fail(why, whylen, "empty body, expected a JSON object");
		return NULL;
	}
	json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!v) {
		fail(why, whylen, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
		     jerr.text);
		return NULL;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		fail(why, whylen, "the body must be a JSON object");
		return NULL;
	}
	return v;
}

static int done(json_t *in, json_t *out, json_t **result)
{
	json_decref(in);
	if (!out)
		return -ENOMEM;
	*result = out;
	return 0;
}

int api_decode_redeem(const char *body, size_t len, json_t **out, char *why, size_t whylen)
{
	const char *code, *name;
	*out = NULL;
	json_t *in = parse_object(body, len, why, whylen);
	if (!in)
		return -EINVAL;
	if (string_field(in, "code", 1, 1, API_CODE_MAX, ASCII_PRINTABLE, &code, why, whylen) ||
	    string_field(in, "name", 0, 0, API_HOSTNAME_MAX, TEXT, &name, why, whylen)) {
		json_decref(in);
		return -EINVAL;
	}
	json_t *req = json_pack("{s:s}", "code", code);
	if (req && name && name[0])
		json_object_set_new(req, "name", json_string(name));
	return done(in, req, out);
}

int api_decode_oidc_enroll(const char *body, size_t len, json_t **out, char *why, size_t whylen)
{
	const char *token, *name;
	*out = NULL;
	json_t *in = parse_object(body, len, why, whylen);
	if (!in)
		return -EINVAL;
	if (string_field(in, "id_token", 1, 1, API_OIDC_TOKEN_MAX, ASCII_VISIBLE, &token, why,
	                 whylen) ||
	    string_field(in, "name", 0, 0, API_HOSTNAME_MAX, TEXT, &name, why, whylen)) {
		json_decref(in);
		return -EINVAL;
	}
	json_t *req = json_pack("{s:s}", "id_token", token);
	if (req && name && name[0])
		json_object_set_new(req, "name", json_string(name));
	return done(in, req, out);
}

/* device_id: what redeem answered, a string or a non-negative integer. */
static int device_id_field(json_t *in, json_t **id, char *why, size_t whylen)
{
	json_t *v = json_object_get(in, "device_id");
	const char *s;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return fail(why, whylen, "'device_id' must not be negative");
		*id = v;
		return 0;
	}
	if (v && !json_is_string(v))
		return fail(why, whylen, "'device_id' must be a string or an integer");
	if (string_field(in, "device_id", 1, 1, API_DEVICE_ID_MAX, ASCII_VISIBLE, &s, why, whylen))
		return -EINVAL;
	*id = v;
	return 0;
}

int api_decode_register(const char *body, size_t len, json_t **out, char *why, size_t whylen)
{
	const char *token, *key, *address;
	json_t *id = NULL;
	*out = NULL;
	json_t *in = parse_object(body, len, why, whylen);
	if (!in)
		return -EINVAL;
	int rc = device_id_field(in, &id, why, whylen);
	if (!rc)
		rc = string_field(in, "register_token", 1, 1, API_TOKEN_MAX, ASCII_VISIBLE, &token,
		                  why, whylen);
	if (!rc)
		rc = string_field(in, "public_key", 1, 1, API_WG_KEY_LEN, ASCII_VISIBLE, &key, why,
		                  whylen);
	if (!rc && !api_wg_key_valid(key))
		rc = fail(why, whylen, "'public_key' is not a WireGuard key (base64 of 32 bytes)");
	if (!rc)
		rc = string_field(in, "address", 1, 1, API_ADDRESS_MAX, ASCII_VISIBLE, &address,
		                  why, whylen);
	if (!rc && !address_valid(address))
		rc = fail(why, whylen, "'address' is not an IP address (with an optional /prefix)");
	if (rc) {
		json_decref(in);
		return -EINVAL;
	}
	json_t *req = json_pack("{s:O, s:s, s:s, s:s}", "device_id", id, "register_token", token,
	                        "public_key", key, "address", address);
	return done(in, req, out);
}

int api_decode_key_step(const char *path, const char *body, size_t len, json_t **out, char *why,
                        size_t whylen)
{
	const char *token, *key;
	char id[API_DEVICE_ID_MAX + 1];
	enum api_route route = api_route_find(path);
	*out = NULL;
	if ((route != API_ROUTE_NEXT_KEY && route != API_ROUTE_SWITCH_KEY) ||
	    !path_matches(api_route_path(route), path, id))
		return fail(why, whylen, "not a path of a device's key");
	json_t *in = parse_object(body, len, why, whylen);
	if (!in)
		return -EINVAL;
	int rc = string_field(in, "register_token", 1, 1, API_TOKEN_MAX, ASCII_VISIBLE, &token, why,
	                      whylen);
	if (!rc)
		rc = string_field(in, "public_key", 1, 1, API_WG_KEY_LEN, ASCII_VISIBLE, &key, why,
		                  whylen);
	if (!rc && !api_wg_key_valid(key))
		rc = fail(why, whylen, "'public_key' is not a WireGuard key (base64 of 32 bytes)");
	if (rc) {
		json_decref(in);
		return -EINVAL;
	}
	json_t *req = json_pack("{s:s, s:s, s:s}", "device_id", id, "register_token", token,
	                        "public_key", key);
	return done(in, req, out);
}
