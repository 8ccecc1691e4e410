/* Helpers of preauth's tests: a mock core with a fake wireguard owner of
 * wg/server, and short ways to call the services. */
#ifndef PA_TEST_H
#define PA_TEST_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mg_mock.h"

extern const struct mg_plugin mg_plugin_descriptor; /* preauth's, linked in */

#define SERVER_KEY   "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
#define CLIENT_KEY_A "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
#define CLIENT_KEY_B "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="

/* Writes wg/server as the wireguard plugin would. */
static inline void t_server(struct mg_mock *m, const char *address)
{
	json_t *server = json_pack("{s:s, s:s, s:i, s:s, s:s}", "public_key", SERVER_KEY,
	                           "endpoint", "vpn.example.com:51820", "listen_port", 51820,
	                           "address", address, "interface", "wg0");
	assert_int_equal(mg_mock_state_put(m, "wireguard", "wg", "server", server), 0);
	json_decref(server);
}

/* A started mock: stub wireguard + preauth (config merged over the
 * defaults, may be NULL), wg/server written when address is not NULL. */
static inline struct mg_mock *t_mock(const char *dir, json_t *config, const char *address)
{
	char err[512];
	static const char *const wg_owns[] = {"wg", NULL};
	struct mg_mock *m = mg_mock_new(dir, err, sizeof(err));
	if (!m)
		fail_msg("%s", err);
	if (!getenv("MG_MOCK_LOG"))
		mg_mock_log_level(m, MG_LOG_WARN);
	assert_int_equal(mg_mock_add_stub(m, "wireguard", wg_owns), 0);
	if (mg_mock_add(m, &mg_plugin_descriptor, config, err, sizeof(err)))
		fail_msg("%s", err);
	if (mg_mock_start(m, err, sizeof(err)))
		fail_msg("%s", err);
	if (address)
		t_server(m, address);
	return m;
}

/* A request built with json_pack's format; returns the reply (owned). */
static inline json_t *t_call(struct mg_mock *m, const char *service, int *rc, const char *fmt, ...)
{
	va_list ap;
	json_t *request, *reply;
	json_error_t jerr;
	va_start(ap, fmt);
	request = json_vpack_ex(&jerr, 0, fmt, ap);
	va_end(ap);
	if (!request)
		fail_msg("bad pack format: %s", jerr.text);
	int r = mg_mock_request(m, service, request, &reply);
	json_decref(request);
	if (rc)
		*rc = r;
	return reply;
}

/* The error code of a reply ("" for success), so asserts read well. */
static inline const char *t_err(json_t *reply)
{
	const char *code = mg_reply_error(reply);
	return code ? code : "";
}

static inline const char *t_get(json_t *reply, const char *name)
{
	const char *v = json_string_value(json_object_get(reply, name));
	return v ? v : "";
}

/* Adds a user; returns their code (owned). */
static inline char *t_add_user(struct mg_mock *m, const char *name, const char *role)
{
	json_t *reply =
	    t_call(m, "preauth.user.add", NULL, "{s:s, s:s}", "name", name, "role", role);
	if (mg_reply_error(reply))
		fail_msg("user.add %s: %s", name, t_get(reply, "message"));
	char *code = strdup(t_get(reply, "code"));
	json_decref(reply);
	return code;
}

static inline char *t_new_code(struct mg_mock *m, const char *user, const char *expires)
{
	json_t *reply = expires ? t_call(m, "preauth.code.add", NULL, "{s:s, s:s}", "user", user,
	                                 "expires", expires)
	                        : t_call(m, "preauth.code.add", NULL, "{s:s}", "user", user);
	if (mg_reply_error(reply))
		fail_msg("code.add %s: %s", user, t_get(reply, "message"));
	char *code = strdup(t_get(reply, "code"));
	json_decref(reply);
	return code;
}

static inline json_t *t_redeem(struct mg_mock *m, const char *code, const char *source)
{
	return source
	           ? t_call(m, "preauth.redeem", NULL, "{s:s, s:s}", "code", code, "source", source)
	           : t_call(m, "preauth.redeem", NULL, "{s:s}", "code", code);
}

static inline json_t *t_register(struct mg_mock *m, json_t *redeemed, const char *key)
{
	return t_call(m, "preauth.register", NULL, "{s:s, s:s, s:s, s:s}", "device_id",
	              t_get(redeemed, "device_id"), "register_token",
	              t_get(redeemed, "register_token"), "public_key", key, "address",
	              t_get(redeemed, "address"));
}

/* Devices and leased addresses in state. */
static inline long devices(struct mg_mock *m)
{
	return mg_mock_state_count(m, "devices", NULL);
}
static inline long leases(struct mg_mock *m)
{
	return mg_mock_state_count(m, "ipam", NULL);
}

/* The payload of the last recorded event of `topic`, borrowed. */
static inline json_t *last_event(struct mg_mock *m, const char *topic)
{
	json_t *events = mg_mock_events(m), *found = NULL, *e;
	size_t i;
	json_array_foreach(events, i, e)
	{
		if (!strcmp(t_get(e, "topic"), topic))
			found = json_object_get(e, "payload");
	}
	return found;
}

#endif
