/* The smallest useful meshgate plugin: one service, one event, one setting.
 * Built in tree and out of tree, with its unit test test_hello.c (see
 * README.md beside it). */
#include <errno.h>
#include <stdlib.h>

#include <meshgate/meshgate.h>

struct hello {
	int greetings;
};

static json_t *say_hello(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	/* the request: {"name": "1 to 64 bytes"}; anything else is refused */
	static const struct mg_field fields[] = {{"name", MG_FIELD_STRING, 1, 1, 64}, {0}};
	struct hello *self = ctx->self;
	const char *name = json_string_value(json_object_get(request, "name"));
	const char *greeting = json_string_value(json_object_get(mg_config(ctx), "greeting"));
	char text[256];
	json_t *bad;
	(void)service;
	(void)arg;

	if ((bad = mg_request_check(ctx, request, fields)))
		return bad;
	snprintf(text, sizeof(text), "%s, %s!", greeting, name);
	self->greetings++;
	json_t *event = json_pack("{s:s}", "name", name);
	mg_publish(ctx, "hello.greeted", event);
	json_decref(event);
	return json_pack("{s:s, s:i}", "message", text, "count", self->greetings);
}

static int hello_init(mg_ctx *ctx)
{
	struct hello *self = calloc(1, sizeof(*self));
	if (!self)
		return -ENOMEM;
	ctx->self = self;
	return mg_service_add(ctx, "hello.say", say_hello, NULL);
}

static void hello_stop(mg_ctx *ctx)
{
	free(ctx->self);
	ctx->self = NULL;
}

static const struct mg_setting hello_settings[] = {
    {"greeting", MG_SETTING_STRING, "\"Hello\"", "The word a greeting starts with.", NULL, 0},
    {0},
};

MG_PLUGIN(.name = "hello", .version = "1.0.0", .description = "example plugin: answers hello.say",
          .settings = hello_settings, .init = hello_init, .stop = hello_stop);
