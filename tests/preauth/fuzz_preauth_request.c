/* libFuzzer: arbitrary bytes into preauth's services through the mock
 * core. The first byte picks the service, the rest is the request as it
 * would arrive on the bus (JSON text, maybe not even that). Every input
 * must get an object reply and nothing may crash, leak or be undefined. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mg_mock.h"

extern const struct mg_plugin mg_plugin_descriptor;

static const char *const services[] = {
    "preauth.user.add",        "preauth.code.add",
    "preauth.user.list",       "preauth.user.del",
    "preauth.user.set_role",   "preauth.code.revoke",
    "preauth.redeem",          "preauth.register",
    "preauth.device.list",     "preauth.device.disable",
    "preauth.device.enable",   "preauth.device.del",
    "preauth.device.config",   "preauth.device.rotate",
    "preauth.device.next_key", "preauth.device.switch_key",
};
#define NSERVICES (sizeof(services) / sizeof(services[0]))

/* One mock for the whole run (its state grows as the fuzzer adds users:
 * later inputs meet existing users, codes and devices). */
static struct mg_mock *mock;

static void teardown(void)
{
	mg_mock_free(mock); /* removes its temporary state */
}

static void setup(void)
{
	char err[512];
	static const char *const wg_owns[] = {"wg", NULL};
	mock = mg_mock_new(NULL, err, sizeof(err));
	if (!mock) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	mg_mock_log_level(mock, MG_LOG_ERROR);
	json_t *config = json_pack("{s:i}", "redeem_failures", 1000000);
	if (mg_mock_add_stub(mock, "wireguard", wg_owns) ||
	    mg_mock_add(mock, &mg_plugin_descriptor, config, err, sizeof(err)) ||
	    mg_mock_start(mock, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	json_decref(config);
	json_t *server = json_pack("{s:s, s:s, s:s}", "public_key",
	                           "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "endpoint",
	                           "vpn.example.com:51820", "address", "10.0.0.1/28");
	mg_mock_state_put(mock, "wireguard", "wg", "server", server);
	json_decref(server);
	json_t *reply, *user = json_pack("{s:s, s:s}", "name", "alice", "role", "admin");
	mg_mock_request(mock, "preauth.user.add", user, &reply);
	json_decref(user);
	json_decref(reply);
	atexit(teardown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *reply;
	if (!mock)
		setup();
	if (size < 1)
		return 0;
	const char *service = services[data[0] % NSERVICES];
	mg_mock_request_text(mock, service, (const char *)data + 1, size - 1, &reply);
	if (!json_is_object(reply))
		abort();
	json_decref(reply);
	/* time moves too, so that expiries and the reaper are reached */
	if (data[0] >= 0xf0)
		mg_mock_advance(mock, (uint64_t)(data[0] - 0xf0) * 60 * 1000);
	return 0;
}
