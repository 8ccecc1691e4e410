/* libFuzzer target of the admin API's request building (admin.c): what
 * arrives from the network as method, path, query and body, before
 * anything reaches the bus. The input is "METHOD PATH[?QUERY]\nBODY";
 * the query's "a=b&c=d" becomes the object MHD would give. Built with
 * -DMESHGATE_FUZZ=ON (clang); without it the same file becomes a replay
 * driver that runs the seed corpus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *query_of(char *text)
{
	json_t *query = json_object();
	for (char *pair = strtok(text, "&"); pair; pair = strtok(NULL, "&")) {
		char *eq = strchr(pair, '=');
		if (eq)
			*eq = '\0';
		json_object_set_new(query, pair, json_string(eq ? eq + 1 : ""));
	}
	return query;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *newline = memchr(data, '\n', size);
	size_t head_len = newline ? (size_t)(newline - data) : size;
	char *head = malloc(head_len + 1);
	/* the body: an exact-size copy, not NUL-terminated */
	size_t len = newline ? size - head_len - 1 : 0;
	char *body = malloc(len ? len : 1);
	if (!head || !body) {
		free(head);
		free(body);
		return 0;
	}
	memcpy(head, data, head_len);
	head[head_len] = '\0';
	if (len)
		memcpy(body, newline + 1, len);

	char *path = strchr(head, ' ');
	if (path)
		*path++ = '\0';
	char *q = path ? strchr(path, '?') : NULL;
	if (q)
		*q++ = '\0';
	json_t *query = q ? query_of(q) : NULL;
	const struct api_admin_route *route;
	json_t *request, *error;
	char allow[64];
	unsigned status = api_admin_build(head, path, query, body, len, &route, &request, &error,
	                                  allow, sizeof(allow));
	/* the contract: a route and an object request, or a status and an
	 * error answer {"error": {"code", "message"}}; never both, never none */
	if (status == 0 && (!route || !json_is_object(request) || error))
		abort();
	if (status != 0 &&
	    (route || request ||
	     !json_is_string(json_object_get(json_object_get(error, "error"), "message"))))
		abort();
	if (status == 405 && !allow[0])
		abort();
	if (request && (!route->service || !api_role_allows(API_ROLE_ADMIN, route)))
		abort();
	json_t *audited = request ? api_audit_members(request) : NULL;
	if (audited && json_object_size(audited) != json_object_size(request))
		abort();
	if (route)
		api_service_changes(route->service);
	json_decref(audited);
	json_decref(request);
	json_decref(error);
	json_decref(query);
	free(head);
	free(body);
	return 0;
}
