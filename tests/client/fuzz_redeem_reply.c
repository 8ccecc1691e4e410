/* libFuzzer target: the redeem reply, the device config reply (meshgate
 * sync) and the error reply are what a server (or whoever answers in its
 * place) sends the device. Run:
 *   fuzz_redeem_reply -dict=... corpus/redeem_reply */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cl_redeem_reply r;
	struct cl_err err = {0};
	char text[CL_PREFIX_STRLEN], endpoint[CL_ENDPOINT_STRLEN];

	if (cl_redeem_reply_decode((const char *)data, size, &r, &err) == 0) {
		/* What was accepted must format back, as the config writer does. */
		if (cl_prefix_format(&r.address, text, sizeof(text)) ||
		    cl_endpoint_format(&r.endpoint, endpoint, sizeof(endpoint)))
			__builtin_trap();
		for (size_t i = 0; i < r.n_allowed_ips; i++)
			if (cl_prefix_format(&r.allowed_ips[i], text, sizeof(text)))
				__builtin_trap();
		if (r.n_allowed_ips == 0 || r.n_allowed_ips > CL_MAX_ALLOWED_IPS ||
		    strlen(r.register_token) == 0 || strlen(r.device_id) == 0)
			__builtin_trap();
		/* a node's endpoints: its endpoint first, at most CL_MAX_ENDPOINTS */
		for (size_t i = 0; i < r.nodes.n_gateways; i++) {
			const struct cl_gateway *g = &r.nodes.gateways[i];
			if (g->n_endpoints < 1 || g->n_endpoints > CL_MAX_ENDPOINTS ||
			    !cl_endpoint_equal(&g->endpoints[0], &g->endpoint))
				__builtin_trap();
		}
	}
	struct cl_config_reply c;
	memset(&err, 0, sizeof(err));
	if (cl_config_reply_decode((const char *)data, size, &c, &err) == 0) {
		for (size_t i = 0; i < c.n_allowed_ips; i++)
			if (cl_prefix_format(&c.allowed_ips[i], text, sizeof(text)))
				__builtin_trap();
		if (c.n_allowed_ips == 0 || c.n_allowed_ips > CL_MAX_ALLOWED_IPS ||
		    strlen(c.device_id) == 0 || strlen(c.state) == 0)
			__builtin_trap();
	} else if (err.exit_code != CL_EXIT_SERVER) {
		__builtin_trap();
	}
	memset(&err, 0, sizeof(err));
	cl_error_reply_decode("redeem", size ? 400 + data[0] % 200 : 500, (const char *)data, size,
	                      &err);
	if (err.exit_code == CL_EXIT_OK)
		__builtin_trap();
	return 0;
}
