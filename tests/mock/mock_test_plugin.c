/* A plugin built as its own .so, for mg_mock_load: one service that
 * counts its calls in its own context (no global state, so two mocks
 * loading this file keep two counters). */
#include <errno.h>
#include <stdlib.h>

#include <meshgate/meshgate.h>

struct counter {
	int calls;
};

static json_t *count(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	(void)service;
	(void)request;
	struct counter *c = arg;
	(void)ctx;
	return json_pack("{s:i}", "calls", ++c->calls);
}

static int init(mg_ctx *ctx)
{
	struct counter *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	ctx->self = c;
	return mg_service_add(ctx, "counter.next", count, c);
}

static void stop(mg_ctx *ctx)
{
	free(ctx->self);
	ctx->self = NULL;
}

MG_PLUGIN(.name = "counter", .version = "1", .description = "test plugin of the mock", .init = init,
          .stop = stop);
