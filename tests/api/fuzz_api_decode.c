/* libFuzzer target of what the api plugin reads from the network before
 * anything reaches the bus: the request decoders, the Content-Type check
 * and the route lookup. Built with -DMESHGATE_FUZZ=ON (clang); without it
 * the same file becomes a replay driver that runs the seed corpus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A decoder's contract: success gives an object of known fields and no
 * message; failure gives NULL and a message. Anything else is a bug. */
static void check(int rc, json_t *out, const char *why, const char *must_have)
{
	if (rc == 0 && (!json_is_object(out) || !json_object_get(out, must_have)))
		abort();
	if (rc != 0 && (out != NULL || why[0] == '\0'))
		abort();
	json_decref(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size copy, not NUL-terminated: reading past it is caught */
	char *body = malloc(size ? size : 1);
	char why[256];
	json_t *out;
	if (!body)
		return 0;
	memcpy(body, data, size);

	why[0] = '\0';
	int rc = api_decode_redeem(body, size, &out, why, sizeof(why));
	check(rc, out, why, "code");
	why[0] = '\0';
	rc = api_decode_register(body, size, &out, why, sizeof(why));
	check(rc, out, why, "public_key");
	why[0] = '\0';
	rc = api_decode_key_step("/api/v1/devices/0123456789abcdef/next-key", body, size, &out, why,
	                         sizeof(why));
	check(rc, out, why, "register_token");
	free(body);

	/* the same bytes as a header value and as a path */
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	api_content_type_is_json(text);
	api_method_allowed(api_route_find(text), "POST", NULL);
	/* as the path of a device's key step, with a body that would pass */
	static const char good[] = "{\"register_token\":\"t\",\"public_key\":"
	                           "\"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\"}";
	why[0] = '\0';
	rc = api_decode_key_step(text, good, sizeof(good) - 1, &out, why, sizeof(why));
	check(rc, out, why, "device_id");
	api_wg_key_valid(text);
	free(text);
	return 0;
}
