/* Stands in for preauth (and for wireguard's public state) in the api
 * plugin's integration test, with canned answers:
 *
 *   preauth.redeem   code "GOOD": a device's config; "ERR-<code>": the error
 *                    <code>; "SLOW": answers after 1.5 s. Every reply
 *                    echoes the request it got ("echo").
 *   preauth.register register_token "tok-1": {device_id, state: "active"};
 *                    "ERR-<code>": the error <code>.
 *   preauth.device.config  a device's config for the address it gets,
 *                    echoing the request.
 *   apitest.calls    how many preauth requests arrived.
 *   apitest.wg       writes wg/server {"endpoint": ..., "address"?: ...} like
 *                    the wireguard plugin does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <meshgate/meshgate.h>

struct fake {
	int calls;
};

static json_t *canned_error(const char *value)
{
	if (value && !strncmp(value, "ERR-", 4))
		return mg_error(value + 4, "canned %s", value + 4);
	return NULL;
}

static json_t *redeem(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	struct fake *self = ctx->self;
	const char *code = json_string_value(json_object_get(request, "code"));
	(void)service;
	(void)arg;
	self->calls++;
	json_t *err = canned_error(code);
	if (err)
		return err;
	if (code && !strcmp(code, "SLOW"))
		usleep(1500 * 1000);
	else if (!code || strcmp(code, "GOOD"))
		return mg_error("unknown_code", "no such code");
	return json_pack("{s:s, s:s, s:s, s:s, s:[s], s:i, s:s, s:[s], s:O}", "device_id", "dev-1",
	                 "address", "10.100.0.2/32", "server_public_key",
	                 "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=", "endpoint",
	                 "gw.meshgate.test:51820", "allowed_ips", "10.0.0.0/8", "keepalive", 25,
	                 "register_token", "tok-1", "dns", "10.100.0.1", "echo", request);
}

static json_t *do_register(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	struct fake *self = ctx->self;
	const char *token = json_string_value(json_object_get(request, "register_token"));
	(void)service;
	(void)arg;
	self->calls++;
	json_t *err = canned_error(token);
	if (err)
		return err;
	if (!token || strcmp(token, "tok-1"))
		return mg_error("conflict", "wrong token");
	return json_pack("{s:O, s:s, s:O}", "device_id", json_object_get(request, "device_id"),
	                 "state", "active", "echo", request);
}

static json_t *device_config(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	struct fake *self = ctx->self;
	(void)service;
	(void)arg;
	self->calls++;
	return json_pack("{s:s, s:s, s:s, s:O, s:[s, s], s:O}", "device_id", "dev-1", "state",
	                 "active", "role", "admin", "address", json_object_get(request, "address"),
	                 "allowed_ips", "10.100.0.0/16", "10.20.0.0/24", "echo", request);
}

static json_t *calls(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	struct fake *self = ctx->self;
	(void)service;
	(void)request;
	(void)arg;
	return json_pack("{s:i}", "calls", self->calls);
}

static int write_wg_server(mg_ctx *ctx, const char *endpoint, const char *address)
{
	mg_txn *txn;
	json_t *value = json_pack("{s:s, s:s, s:i, s:s?}", "endpoint", endpoint, "public_key",
	                          "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=", "listen_port",
	                          51820, "address", address);
	int rc = mg_txn_begin(ctx, 0, &txn);
	if (!rc && (rc = mg_state_put(ctx, txn, "wg", "server", value)))
		mg_txn_abort(ctx, txn);
	if (!rc)
		rc = mg_txn_commit(ctx, txn);
	json_decref(value);
	return rc;
}

static json_t *set_wg(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	const char *endpoint = json_string_value(json_object_get(request, "endpoint"));
	(void)service;
	(void)arg;
	if (!endpoint)
		return mg_error("bad_request", "need endpoint");
	int rc =
	    write_wg_server(ctx, endpoint, json_string_value(json_object_get(request, "address")));
	return rc ? mg_error("internal", "%s", strerror(-rc)) : json_pack("{s:b}", "ok", 1);
}

static int fake_init(mg_ctx *ctx)
{
	struct fake *self = calloc(1, sizeof(*self));
	const char *endpoint = json_string_value(json_object_get(mg_config(ctx), "wg_endpoint"));
	if (!self)
		return -ENOMEM;
	ctx->self = self;
	int rc = 0;
	/* written in init: every init runs before any start, so the api
	 * plugin finds it whatever the order */
	if (endpoint && endpoint[0])
		rc = write_wg_server(ctx, endpoint, NULL);
	if (!rc)
		rc = mg_service_add(ctx, "preauth.redeem", redeem, NULL);
	if (!rc)
		rc = mg_service_add(ctx, "preauth.register", do_register, NULL);
	if (!rc)
		rc = mg_service_add(ctx, "preauth.device.config", device_config, NULL);
	if (!rc)
		rc = mg_service_add(ctx, "apitest.calls", calls, NULL);
	if (!rc)
		rc = mg_service_add(ctx, "apitest.wg", set_wg, NULL);
	if (rc) {
		free(self);
		ctx->self = NULL;
	}
	return rc;
}

static void fake_stop(mg_ctx *ctx)
{
	free(ctx->self);
	ctx->self = NULL;
}

static const struct mg_setting fake_settings[] = {
    {"wg_endpoint", MG_SETTING_STRING, NULL, "Written to wg/server at init when set.", NULL, 0},
    {0},
};

static const char *const fake_owns[] = {"wg", NULL};

MG_PLUGIN(.name = "apitest_preauth", .version = "0.0.1",
          .description = "test stand-in for preauth (api tests)", .owns = fake_owns,
          .settings = fake_settings, .init = fake_init, .stop = fake_stop);
