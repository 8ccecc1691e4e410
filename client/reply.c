#include "reply.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int cl_key_from_base64(const char *text, uint8_t key[CL_KEY_LEN])
{
	size_t n = 0;
	/* 32 bytes are exactly 44 characters ending in one '='. */
	if (strlen(text) != 44 || text[43] != '=' || text[42] == '=')
		return -EINVAL;
	if (sodium_base642bin(key, CL_KEY_LEN, text, 44, NULL, &n, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) ||
	    n != CL_KEY_LEN)
		return -EINVAL;
	return 0;
}

static int bad_field(struct cl_err *err, const char *field, const char *why)
{
	return cl_fail(err, CL_EXIT_SERVER, "the server sent a malformed reply (%s: %s)", field,
	               why);
}

static bool token_char(char c)
{
	return c > 0x20 && c < 0x7f;
}

/* A string field copied into buf when every character passes ok(). */
static int get_text(json_t *root, const char *field, bool (*ok)(char), char *buf, size_t size,
                    struct cl_err *err)
{
	json_t *v = json_object_get(root, field);
	if (!json_is_string(v))
		return bad_field(err, field, v ? "not a string" : "missing");
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (n == 0 || n >= size || strlen(s) != n)
		return bad_field(err, field, "bad length");
	for (size_t i = 0; i < n; i++)
		if (!ok(s[i]))
			return bad_field(err, field, "bad character");
	memcpy(buf, s, n + 1);
	return 0;
}

static int get_device_id(json_t *root, char id[CL_DEVICE_ID_MAX], bool *is_int, struct cl_err *err)
{
	json_t *v = json_object_get(root, "device_id");
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return bad_field(err, "device_id", "negative");
		snprintf(id, CL_DEVICE_ID_MAX, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		*is_int = true;
		return 0;
	}
	*is_int = false;
	return get_text(root, "device_id", token_char, id, CL_DEVICE_ID_MAX, err);
}

static bool is_unspecified(const struct cl_prefix *p)
{
	static const uint8_t zero[16];
	return memcmp(p->addr, zero, p->family == AF_INET ? 4 : 16) == 0;
}

static int get_address(json_t *root, struct cl_redeem_reply *out, struct cl_err *err)
{
	const char *s = json_string_value(json_object_get(root, "address"));
	if (!s)
		return bad_field(err, "address", "missing or not a string");
	if (cl_prefix_parse(s, true, &out->address) || is_unspecified(&out->address) ||
	    out->address.len == 0)
		return bad_field(err, "address", "not an ADDRESS/PREFIXLEN");
	return 0;
}

static int get_key(json_t *root, struct cl_redeem_reply *out, struct cl_err *err)
{
	const char *s = json_string_value(json_object_get(root, "server_public_key"));
	if (!s)
		return bad_field(err, "server_public_key", "missing or not a string");
	if (cl_key_from_base64(s, out->server_public_key))
		return bad_field(err, "server_public_key", "not a base64 32-byte key");
	return 0;
}

static int get_endpoint(json_t *root, struct cl_redeem_reply *out, struct cl_err *err)
{
	const char *s = json_string_value(json_object_get(root, "endpoint"));
	if (!s)
		return bad_field(err, "endpoint", "missing or not a string");
	if (cl_endpoint_parse(s, &out->endpoint))
		return bad_field(err, "endpoint", "not HOST:PORT");
	return 0;
}

static int get_allowed_ips(json_t *root, struct cl_prefix list_out[CL_MAX_ALLOWED_IPS], size_t *n,
                           struct cl_err *err)
{
	json_t *list = json_object_get(root, "allowed_ips"), *v;
	size_t i;
	if (!json_is_array(list) || json_array_size(list) == 0)
		return bad_field(err, "allowed_ips", "missing or not a non-empty array");
	if (json_array_size(list) > CL_MAX_ALLOWED_IPS)
		return bad_field(err, "allowed_ips", "too many entries");
	json_array_foreach(list, i, v)
	{
		const char *s = json_string_value(v);
		struct cl_prefix *p = &list_out[i];
		if (!s || cl_prefix_parse(s, false, p))
			return bad_field(err, "allowed_ips", "an entry is not an IP prefix");
		cl_prefix_mask(p);
	}
	*n = json_array_size(list);
	return 0;
}

static int get_keepalive(json_t *root, struct cl_redeem_reply *out, struct cl_err *err)
{
	json_t *v = json_object_get(root, "keepalive");
	if (!v || json_is_null(v)) {
		out->keepalive = 0;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 65535)
		return bad_field(err, "keepalive", "not an integer 0..65535");
	out->keepalive = (unsigned)json_integer_value(v);
	return 0;
}

struct dns_list {
	char (*dns)[CL_HOST_MAX];
	size_t *n_dns;
};

static int add_dns(const char *s, size_t n, struct dns_list *out, struct cl_err *err)
{
	char entry[CL_HOST_MAX];
	struct cl_prefix ip;
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n == 0 || n >= sizeof(entry))
		return bad_field(err, "dns", "empty or too long entry");
	if (*out->n_dns == CL_MAX_DNS)
		return bad_field(err, "dns", "too many entries");
	memcpy(entry, s, n);
	entry[n] = '\0';
	if (cl_prefix_parse(entry, false, &ip) == 0 && strchr(entry, '/'))
		return bad_field(err, "dns", "a prefix is not a server address");
	if (cl_prefix_parse(entry, false, &ip) && !cl_hostname_valid(entry))
		return bad_field(err, "dns", "an entry is neither an IP address nor a domain");
	memcpy(out->dns[(*out->n_dns)++], entry, n + 1);
	return 0;
}

/* "dns" is optional: a string (commas separate entries, as in wg-quick) or
 * an array of strings. */
static int get_dns(json_t *root, char dns[CL_MAX_DNS][CL_HOST_MAX], size_t *n_dns,
                   struct cl_err *err)
{
	json_t *v = json_object_get(root, "dns"), *item;
	struct dns_list list = {dns, n_dns}, *out = &list;
	size_t i;
	*n_dns = 0;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		if (strlen(s) != json_string_length(v))
			return bad_field(err, "dns", "bad character");
		if (!*s)
			return 0;
		for (const char *comma; (comma = strchr(s, ',')); s = comma + 1)
			if (add_dns(s, (size_t)(comma - s), out, err))
				return -1;
		return add_dns(s, strlen(s), out, err);
	}
	if (!json_is_array(v))
		return bad_field(err, "dns", "neither a string nor an array");
	json_array_foreach(v, i, item)
	{
		const char *s = json_string_value(item);
		if (!s || strlen(s) != json_string_length(item) || add_dns(s, strlen(s), out, err))
			return s ? -1 : bad_field(err, "dns", "an entry is not a string");
	}
	return 0;
}

/* "vpn_api" is optional: where the API is inside the tunnel. */
static int get_vpn_api(json_t *root, char url[CL_URL_MAX], struct cl_err *err)
{
	json_t *v = json_object_get(root, "vpn_api");
	struct cl_endpoint e;
	url[0] = '\0';
	if (!v || json_is_null(v))
		return 0;
	const char *s = json_string_value(v);
	if (!s || json_string_length(v) >= CL_URL_MAX || strlen(s) != json_string_length(v) ||
	    cl_vpn_api_parse(s, &e))
		return bad_field(err, "vpn_api", "not https://IP:PORT");
	memcpy(url, s, json_string_length(v) + 1);
	return 0;
}

/* "api_cas" is optional: every node's CA, each a PEM CA certificate,
 * kept as one PEM text. */
static int get_api_cas(json_t *root, char cas[CL_API_CAS_MAX], struct cl_err *err)
{
	json_t *v = json_object_get(root, "api_cas"), *item;
	size_t i;
	cas[0] = '\0';
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v) || json_array_size(v) > CL_TRUST_MAX)
		return bad_field(err, "api_cas", "not an array of at most 64 certificates");
	json_array_foreach(v, i, item)
	{
		const char *pem = json_string_value(item);
		if (!pem || strlen(pem) != json_string_length(item) ||
		    cl_trust_append_ca(pem, cas, CL_API_CAS_MAX))
			return bad_field(err, "api_cas", "not PEM CA certificates");
	}
	return 0;
}

static bool name_char(char c)
{
	return c > 0x20 && c < 0x7f;
}

void cl_gateway_add_endpoint(struct cl_gateway *g, const struct cl_endpoint *e)
{
	for (size_t i = 0; i < g->n_endpoints; i++)
		if (cl_endpoint_equal(&g->endpoints[i], e))
			return;
	if (g->n_endpoints < CL_MAX_ENDPOINTS)
		g->endpoints[g->n_endpoints++] = *e;
}

bool cl_node_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n >= CL_NODE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!name_char(name[i]))
			return false;
	return true;
}

/* A node's uplinks ("endpoints", optional): after its "endpoint", each
 * one not listed yet. */
static int get_endpoints(json_t *item, struct cl_gateway *g, struct cl_err *err)
{
	json_t *list = json_object_get(item, "endpoints"), *e;
	size_t i;
	g->endpoints[0] = g->endpoint;
	g->n_endpoints = 1;
	if (!list || json_is_null(list))
		return 0;
	if (!json_is_array(list) || json_array_size(list) > CL_MAX_ENDPOINTS)
		return bad_field(err, "gateways",
		                 "an entry's endpoints is not an array of at most 8");
	json_array_foreach(list, i, e)
	{
		const char *text = json_string_value(e);
		struct cl_endpoint ep;
		if (!text || cl_endpoint_parse(text, &ep))
			return bad_field(err, "gateways", "an entry's endpoints are not HOST:PORT");
		cl_gateway_add_endpoint(g, &ep);
	}
	return 0;
}

/* The longest wait for a node's key switch a device takes: a day. */
#define CL_SWITCH_IN_MAX_MS (24LL * 3600 * 1000)

/* The node's next key and when it switches to it (a key switch under
 * way), optional but never half: a key without its time is nothing to
 * act on. */
static int get_next(json_t *item, struct cl_gateway *g, struct cl_err *err)
{
	json_t *key = json_object_get(item, "next_public_key");
	json_t *in = json_object_get(item, "switch_in_ms");
	g->has_next = false;
	if (!key && !in)
		return 0;
	if (!json_is_string(key) || cl_key_from_base64(json_string_value(key), g->next_public_key))
		return bad_field(err, "gateways", "an entry's next_public_key is not a key");
	if (!json_is_integer(in) || json_integer_value(in) < 0 ||
	    json_integer_value(in) > CL_SWITCH_IN_MAX_MS)
		return bad_field(err, "gateways",
		                 "an entry's switch_in_ms is not a number of ms up to a day");
	g->switch_in_ms = json_integer_value(in);
	g->has_next = true;
	return 0;
}

static int get_gateway(json_t *item, struct cl_gateway *g, struct cl_err *err)
{
	const char *key = json_string_value(json_object_get(item, "public_key"));
	const char *endpoint = json_string_value(json_object_get(item, "endpoint"));
	json_t *active = json_object_get(item, "active");
	if (!json_is_object(item) ||
	    get_text(item, "name", name_char, g->name, sizeof(g->name), err))
		return bad_field(err, "gateways", "an entry has no valid name");
	if (!key || cl_key_from_base64(key, g->public_key))
		return bad_field(err, "gateways", "an entry's public_key is not a key");
	if (!endpoint || cl_endpoint_parse(endpoint, &g->endpoint))
		return bad_field(err, "gateways", "an entry's endpoint is not HOST:PORT");
	if (active && !json_is_boolean(active))
		return bad_field(err, "gateways", "an entry's active is not a boolean");
	g->active = json_is_true(active);
	if (get_next(item, g, err))
		return -1;
	return get_endpoints(item, g, err);
}

/* "gateways" and "probe" are optional: the gateway nodes and where the
 * probe answers (an IP literal: it is inside the tunnel). */
static int get_nodes(json_t *root, struct cl_nodes *out, struct cl_err *err)
{
	json_t *list = json_object_get(root, "gateways"), *item;
	json_t *probe = json_object_get(root, "probe");
	json_t *pmtu_port = json_object_get(root, "pmtu_port");
	struct cl_prefix ip;
	size_t i;
	if (list && !json_is_null(list)) {
		if (!json_is_array(list) || json_array_size(list) > CL_MAX_GATEWAYS)
			return bad_field(err, "gateways", "not an array of at most 16 nodes");
		json_array_foreach(list, i, item)
		{
			if (get_gateway(item, &out->gateways[i], err))
				return -1;
			for (size_t j = 0; j < i; j++)
				if (!strcmp(out->gateways[j].name, out->gateways[i].name))
					return bad_field(err, "gateways", "a node is listed twice");
		}
		out->n_gateways = json_array_size(list);
	}
	if (probe && !json_is_null(probe)) {
		const char *s = json_string_value(probe);
		if (!s || cl_endpoint_parse(s, &out->probe) ||
		    cl_prefix_parse(out->probe.host, false, &ip))
			return bad_field(err, "probe", "not IP:PORT");
		out->has_probe = true;
	}
	if (pmtu_port && !json_is_null(pmtu_port)) {
		json_int_t port = json_integer_value(pmtu_port);
		if (!json_is_integer(pmtu_port) || port < 1 || port > 65535)
			return bad_field(err, "pmtu_port", "not a port (1..65535)");
		out->pmtu_port = (unsigned)port;
	}
	return 0;
}

static bool role_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.';
}

/* "rotate": optional, a boolean. */
static int get_rotate(json_t *root, bool *rotate, struct cl_err *err)
{
	json_t *v = json_object_get(root, "rotate");
	if (v && !json_is_boolean(v))
		return bad_field(err, "rotate", "not a boolean");
	*rotate = json_is_true(v);
	return 0;
}

int cl_config_reply_decode(const char *body, size_t len, struct cl_config_reply *out,
                           struct cl_err *err)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	bool is_int;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(root)) {
		bad_field(err, "body", root ? "not a JSON object" : "not JSON");
		goto out;
	}
	if (get_device_id(root, out->device_id, &is_int, err) ||
	    get_text(root, "state", role_char, out->state, sizeof(out->state), err) ||
	    (json_object_get(root, "role") &&
	     get_text(root, "role", role_char, out->role, sizeof(out->role), err)) ||
	    get_allowed_ips(root, out->allowed_ips, &out->n_allowed_ips, err) ||
	    get_dns(root, out->dns, &out->n_dns, err) || get_vpn_api(root, out->vpn_api, err) ||
	    get_api_cas(root, out->api_cas, err) || get_nodes(root, &out->nodes, err) ||
	    get_rotate(root, &out->rotate, err))
		goto out;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

int cl_redeem_reply_decode(const char *body, size_t len, struct cl_redeem_reply *out,
                           struct cl_err *err)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(root)) {
		bad_field(err, "body", root ? "not a JSON object" : "not JSON");
		goto out;
	}
	if (get_device_id(root, out->device_id, &out->device_id_is_int, err) ||
	    get_address(root, out, err) || get_key(root, out, err) ||
	    get_endpoint(root, out, err) ||
	    get_allowed_ips(root, out->allowed_ips, &out->n_allowed_ips, err) ||
	    get_keepalive(root, out, err) ||
	    get_text(root, "register_token", token_char, out->register_token,
	             sizeof(out->register_token), err) ||
	    get_dns(root, out->dns, &out->n_dns, err) || get_vpn_api(root, out->vpn_api, err) ||
	    get_api_cas(root, out->api_cas, err) || get_nodes(root, &out->nodes, err))
		goto out;
	rc = 0;
out:
	json_decref(root);
	if (rc)
		sodium_memzero(out, sizeof(*out));
	return rc;
}

struct error_class {
	const char *code;
	long status;
	int exit_code;
	const char *text;
	bool with_detail; /* the server's message says what was wrong */
};

/* The API's error codes (docs/api.md); the status is the fallback when a
 * server sends a code this client does not know. */
static const struct error_class error_classes[] = {
    {"unknown_code", 404, CL_EXIT_CODE_INVALID, "unknown code", false},
    {"code_used", 409, CL_EXIT_CODE_USED, "code already used", false},
    {"code_expired", 410, CL_EXIT_CODE_EXPIRED, "code expired", false},
    {"code_revoked", 0, CL_EXIT_CODE_EXPIRED, "code revoked", false},
    {"rate_limited", 429, CL_EXIT_RATE_LIMITED, "too many attempts, try again later", false},
    {"bad_request", 400, CL_EXIT_CODE_INVALID, "request rejected", true},
    {"access_expired", 0, CL_EXIT_ACCESS_EXPIRED, "access ended", true},
    {"identity_refused", 0, CL_EXIT_LOGIN, "identity refused", true},
    {"not_configured", 0, CL_EXIT_LOGIN, "no identity login here", true},
};

static const struct error_class *find_class(const char *code, long status)
{
	size_t n = sizeof(error_classes) / sizeof(error_classes[0]);
	for (size_t i = 0; code && i < n; i++)
		if (!strcmp(error_classes[i].code, code))
			return &error_classes[i];
	if (code) /* a code of a newer server: its message says more than a guess */
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (error_classes[i].status == status)
			return &error_classes[i];
	return NULL;
}

int cl_error_reply_decode(const char *what, long http_status, const char *body, size_t len,
                          struct cl_err *err)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	const char *code = json_string_value(json_object_get(root, "error"));
	const char *message = json_string_value(json_object_get(root, "message"));
	char detail[200] = "";
	const struct error_class *c = http_status >= 500 ? NULL : find_class(code, http_status);

	if (message)
		cl_sanitize(message, detail, sizeof(detail));
	else if (code)
		cl_sanitize(code, detail, sizeof(detail));
	if (c && !c->with_detail)
		cl_fail(err, c->exit_code, "%s", c->text);
	else if (c)
		cl_fail(err, c->exit_code, "%s: %s%s%s", what, c->text, *detail ? ": " : "",
		        detail);
	else if (http_status >= 400 && http_status < 500)
		cl_fail(err, CL_EXIT_CODE_INVALID, "%s refused by the server (HTTP %ld)%s%s", what,
		        http_status, *detail ? ": " : "", detail);
	else
		cl_fail(err, CL_EXIT_SERVER, "%s failed: server answered HTTP %ld%s%s", what,
		        http_status, *detail ? ": " : "", detail);
	json_decref(root);
	return -1;
}
