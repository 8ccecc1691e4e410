/* The ops table every plugin gets: the only way a plugin reaches the core. */
#include <errno.h>

#include "actor.h"
#include "bus_client.h"
#include "bus_proto.h"
#include "core.h"
#include "request_check.h"

static void op_vlog(mg_ctx *ctx, enum mg_log_level level, const char *fmt, va_list ap)
{
	core_vlog(level, plugin_of(ctx)->name, fmt, ap);
}

static void op_vlog_limited(mg_ctx *ctx, enum mg_log_level level, const char *key, const char *fmt,
                            va_list ap)
{
	core_vlog_limited(level, plugin_of(ctx)->name, key, mg_bus_now_ms(), fmt, ap);
}

static json_t *op_config(mg_ctx *ctx)
{
	return plugin_of(ctx)->config;
}

static const char *op_state_dir(mg_ctx *ctx)
{
	return json_string_value(json_object_get(plugin_of(ctx)->core->settings, "state_dir"));
}

/* Registrations belong to the plugin's own thread: that is where its
 * callbacks run. */
#define OWN_THREAD_OR_FAIL(ctx)                                  \
	do {                                                     \
		if (!actor_on_own_thread(plugin_of(ctx)->actor)) \
			return -EPERM;                           \
	} while (0)

static int op_service_add(mg_ctx *ctx, const char *service, mg_service_fn fn, void *arg)
{
	OWN_THREAD_OR_FAIL(ctx);
	return actor_service_add(plugin_of(ctx)->actor, service, fn, arg);
}

static int op_service_del(mg_ctx *ctx, const char *service)
{
	OWN_THREAD_OR_FAIL(ctx);
	return actor_service_del(plugin_of(ctx)->actor, service);
}

static int op_request(mg_ctx *ctx, const char *service, json_t *request, int timeout_ms,
                      json_t **reply)
{
	struct mg_bus_client *c = core_thread_client(plugin_of(ctx)->core);
	if (!c)
		return mg_bus_error(reply, -ENOTCONN, "internal", "the bus is not up");
	return mg_bus_client_request(c, service, request, timeout_ms, reply);
}

static int op_subscribe(mg_ctx *ctx, const char *prefix, mg_event_fn fn, void *arg)
{
	OWN_THREAD_OR_FAIL(ctx);
	return actor_subscribe(plugin_of(ctx)->actor, prefix, fn, arg);
}

static int op_unsubscribe(mg_ctx *ctx, const char *prefix)
{
	OWN_THREAD_OR_FAIL(ctx);
	return actor_unsubscribe(plugin_of(ctx)->actor, prefix);
}

static int op_publish(mg_ctx *ctx, const char *topic, json_t *payload)
{
	return core_publish(plugin_of(ctx)->core, topic, payload);
}

static int op_timer_add(mg_ctx *ctx, unsigned interval_ms, int repeat, mg_timer_fn fn, void *arg)
{
	OWN_THREAD_OR_FAIL(ctx);
	return actor_timer_add(plugin_of(ctx)->actor, interval_ms, repeat, fn, arg);
}

static int op_timer_del(mg_ctx *ctx, int id)
{
	OWN_THREAD_OR_FAIL(ctx);
	return actor_timer_del(plugin_of(ctx)->actor, id);
}

static int op_fd_watch(mg_ctx *ctx, int fd, int events, mg_fd_fn fn, void *arg)
{
	OWN_THREAD_OR_FAIL(ctx);
	return actor_fd_watch(plugin_of(ctx)->actor, fd, events, fn, arg);
}

static int op_fd_unwatch(mg_ctx *ctx, int fd)
{
	OWN_THREAD_OR_FAIL(ctx);
	return actor_fd_unwatch(plugin_of(ctx)->actor, fd);
}

static int op_txn_begin(mg_ctx *ctx, int flags, mg_txn **txn)
{
	struct plugin *p = plugin_of(ctx);
	return state_begin(p->core->state, p->name, flags & MG_TXN_READ, txn);
}

static uint64_t op_now_ms(mg_ctx *ctx)
{
	(void)ctx;
	return mg_bus_now_ms();
}

static mg_reply_token *op_defer(mg_ctx *ctx)
{
	struct actor *a = plugin_of(ctx)->actor;
	return actor_on_own_thread(a) ? actor_defer(a) : NULL;
}

static void op_reply(mg_ctx *ctx, mg_reply_token *token, json_t *reply)
{
	struct actor *a = plugin_of(ctx)->actor;
	if (actor_on_own_thread(a)) {
		actor_reply(a, token, reply);
		return;
	}
	core_log(MG_LOG_ERROR, plugin_of(ctx)->name, "mg_reply off its own thread: dropped");
	json_decref(reply);
}

/* Any thread: the way back to the plugin's own. */
static int op_post(mg_ctx *ctx, mg_post_fn fn, void *arg)
{
	return actor_post(plugin_of(ctx), fn, arg);
}

static void op_ready(mg_ctx *ctx)
{
	loader_mark_ready(plugin_of(ctx));
}

static const char *op_node_name(mg_ctx *ctx)
{
	return plugin_of(ctx)->core->node_name;
}

static int op_in_cluster(mg_ctx *ctx)
{
	return plugin_of(ctx)->core->cluster != NULL;
}

const struct mg_api core_api = {
    .size = offsetof(struct mg_api, reserved),
    .version = MG_API_VERSION,
    .vlog = op_vlog,
    .config = op_config,
    .state_dir = op_state_dir,
    .service_add = op_service_add,
    .service_del = op_service_del,
    .request = op_request,
    .subscribe = op_subscribe,
    .unsubscribe = op_unsubscribe,
    .publish = op_publish,
    .timer_add = op_timer_add,
    .timer_del = op_timer_del,
    .fd_watch = op_fd_watch,
    .fd_unwatch = op_fd_unwatch,
    .txn_begin = op_txn_begin,
    .txn_commit = state_commit,
    .txn_abort = state_abort,
    .state_get = state_get,
    .state_put = state_put,
    .state_del = state_del,
    .state_foreach = state_foreach,
    .now_ms = op_now_ms,
    .defer = op_defer,
    .reply = op_reply,
    .txn_begin_nested = state_begin_nested,
    .request_check = request_check,
    .post = op_post,
    .vlog_limited = op_vlog_limited,
    .ready = op_ready,
    .node_name = op_node_name,
    .in_cluster = op_in_cluster,
};
