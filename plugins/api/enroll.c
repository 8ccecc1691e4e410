/* A device enrolled from the panel: the browser made its key pair and
 * sends only the public key; the gateway enrolls it exactly as a code
 * would (the same three services meshgatectl and `meshgate up` use, so
 * preauth has one enrolment path) and answers the config the browser
 * writes out with its private key, for the phone's WireGuard app. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"

#define ENROLL_SERVICE "api.device.enroll" /* its name in the audit */

/* The members of a redeem answer a wg-quick config is made of. */
static const char *const config_members[] = {
    "device_id", "address", "dns", "server_public_key", "endpoint", "allowed_ips", "keepalive",
};

static json_t *ask(mg_ctx *ctx, int timeout_ms, const char *service, json_t *request)
{
	json_t *reply = NULL;
	mg_request(ctx, service, request, timeout_ms, &reply);
	json_decref(request);
	return reply ? reply : mg_error("internal", "no reply from %s", service);
}

/* Undoes a step on the way to a failure; its own failure is only logged. */
static void undo(mg_ctx *ctx, int timeout_ms, const char *service, json_t *request)
{
	json_t *reply = ask(ctx, timeout_ms, service, request);
	if (mg_reply_error(reply))
		mg_warn(ctx, "enroll: cannot undo with %s: %s", service,
		        json_string_value(json_object_get(reply, "message")));
	json_decref(reply);
}

/* The request's body: {"public_key", "name"?}, nothing else. */
static json_t *decode(const char *body, size_t len, json_t **error)
{
	json_error_t err;
	const char *name;
	json_t *value;
	json_t *in = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &err) : NULL;
	*error = NULL;
	if (!json_is_object(in)) {
		*error = api_admin_error("bad_request", NULL,
		                         "the body must be {\"public_key\": KEY, \"name\": NAME}");
	} else {
		json_object_foreach(in, name, value)
		{
			if (strcmp(name, "public_key") && strcmp(name, "name")) {
				*error = api_admin_error("bad_request", name,
				                         "unknown member '%.40s'", name);
				break;
			}
		}
	}
	const char *key = json_string_value(json_object_get(in, "public_key"));
	json_t *hint = json_object_get(in, "name");
	if (!*error && !api_wg_key_valid(key))
		*error = api_admin_error("bad_request", "public_key",
		                         "public_key must be a WireGuard public key: base64 of 32 "
		                         "bytes");
	if (!*error && hint &&
	    (!json_is_string(hint) || !json_string_length(hint) ||
	     json_string_length(hint) > API_HOSTNAME_MAX))
		*error = api_admin_error("bad_request", "name",
		                         "name must be text of 1 to %d bytes", API_HOSTNAME_MAX);
	if (*error) {
		json_decref(in);
		return NULL;
	}
	return in;
}

static unsigned failed(json_t *reply, json_t **answer)
{
	unsigned status = api_http_status(mg_reply_error(reply));
	*answer = api_admin_error_of_reply(reply);
	return status;
}

unsigned api_enroll(mg_ctx *ctx, int timeout_ms, const char *user, const char *body, size_t len,
                    const char *who, const char *source, json_t **answer)
{
	json_t *error, *code = NULL, *config = NULL, *reg = NULL;
	unsigned status = 200;
	json_t *in = decode(body, len, &error);
	if (!in) {
		*answer = error;
		return 400;
	}
	const char *key = json_string_value(json_object_get(in, "public_key"));
	const char *hint = json_string_value(json_object_get(in, "name"));

	code = ask(ctx, timeout_ms, "preauth.code.add", json_pack("{s:s}", "user", user));
	if (mg_reply_error(code)) {
		status = failed(code, answer);
		goto out;
	}
	const char *text = json_string_value(json_object_get(code, "code"));
	config = ask(ctx, timeout_ms, "preauth.redeem",
	             json_pack("{s:s, s:s, s:s?}", "code", text, "source", source, "name", hint));
	if (mg_reply_error(config)) {
		status = failed(config, answer);
		undo(ctx, timeout_ms, "preauth.code.revoke", json_pack("{s:s}", "code", text));
		goto out;
	}
	json_t *id = json_object_get(config, "device_id");
	reg = ask(ctx, timeout_ms, "preauth.register",
	          json_pack("{s:O, s:O, s:s, s:O, s:s}", "device_id", id, "register_token",
	                    json_object_get(config, "register_token"), "public_key", key, "address",
	                    json_object_get(config, "address"), "source", source));
	if (mg_reply_error(reg)) {
		status = failed(reg, answer);
		undo(ctx, timeout_ms, "preauth.device.del", json_pack("{s:O}", "id", id));
		goto out;
	}
	*answer = json_pack("{s:s}", "user", user);
	for (size_t i = 0; i < sizeof(config_members) / sizeof(config_members[0]); i++) {
		json_t *v = json_object_get(config, config_members[i]);
		if (v)
			json_object_set(*answer, config_members[i], v);
	}
	mg_info(ctx, "admin: %s enrolled device %s of user %s from the panel", who,
	        json_string_value(id), user);
out:;
	json_t *record =
	    json_pack("{s:s, s:s, s:s?}", "user", user, "public_key", key, "name", hint);
	json_t *result = status == 200
	                     ? json_pack("{s:O}", "device_id", json_object_get(config, "device_id"))
	                     : json_incref(mg_reply_error(reg)      ? reg
	                                   : mg_reply_error(config) ? config
	                                                            : code);
	api_audit_write(ctx, who, "api", source, ENROLL_SERVICE, record, result);
	json_decref(result);
	json_decref(record);
	json_decref(code);
	json_decref(config);
	json_decref(reg);
	json_decref(in);
	return status;
}
