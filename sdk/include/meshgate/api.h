/* The core's services to a plugin: bus, state, config, log, timers.
 *
 * A plugin never links against the core. It reaches the core through the
 * ops table in its context (ctx->api); the inline mg_* wrappers below are
 * the way to call it. struct mg_api only grows by appending, and `size`
 * tells a plugin which members exist: see MG_API_HAS. */
#ifndef MESHGATE_API_H
#define MESHGATE_API_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include <meshgate/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 3: the members after txn_begin_nested (ABI minor 1); 4: vlog_limited
 * (ABI minor 2); 5: ready (ABI minor 3); 6: node_name, in_cluster (ABI minor 4). */
#define MG_API_VERSION 6

enum mg_log_level { MG_LOG_ERROR = 0, MG_LOG_WARN, MG_LOG_INFO, MG_LOG_DEBUG };

/* Default deadline of a bus request, in milliseconds. */
#define MG_REQUEST_TIMEOUT_MS 5000

/* Flags of mg_txn_begin. */
#define MG_TXN_READ 0x1

/* Events of mg_fd_watch. */
#define MG_FD_READ  0x1
#define MG_FD_WRITE 0x2

typedef struct mg_txn mg_txn;
typedef struct mg_reply_token mg_reply_token;

/* A service handler: gets the request, returns a new reference to the
 * reply object. A reply with an "error" member is an error reply; build
 * one with mg_error(). Returning NULL sends an "internal" error. */
typedef json_t *(*mg_service_fn)(mg_ctx *ctx, const char *service, json_t *request, void *arg);
typedef void (*mg_event_fn)(mg_ctx *ctx, const char *topic, json_t *payload, void *arg);
typedef void (*mg_timer_fn)(mg_ctx *ctx, void *arg);
typedef void (*mg_fd_fn)(mg_ctx *ctx, int fd, int events, void *arg);
/* Returns 0 to go on, anything else stops the walk and is returned. */
typedef int (*mg_state_fn)(const char *key, json_t *value, void *arg);
/* Work posted to the plugin's thread with mg_post(). */
typedef void (*mg_post_fn)(mg_ctx *ctx, void *arg);

/* JSON types of a request's fields (mg_request_check). */
enum mg_field_type {
	MG_FIELD_STRING = 1, /* never with a NUL character inside */
	MG_FIELD_INT,
	MG_FIELD_BOOL,
	MG_FIELD_STRINGS, /* array of strings: ["a", "b"] */
	MG_FIELD_ARRAY,   /* array of anything */
	MG_FIELD_OBJECT,
};

/* One declared member of a request, the way struct mg_setting declares a
 * setting. The bounds are inclusive: a string's length in bytes, an
 * integer's value, an array's number of items; min and max both 0 mean
 * no bound. A table ends with {0}. */
struct mg_field {
	const char *name;
	enum mg_field_type type;
	int required;
	long long min, max;
};

struct mg_api {
	/* The end of the members the core fills in:
	 * offsetof(struct mg_api, reserved) of the SDK it was built with. */
	uint32_t size;
	uint32_t version;

	/* log: any thread */
	void (*vlog)(mg_ctx *ctx, enum mg_log_level level, const char *fmt, va_list ap);

	/* config: the plugin's section, validated, defaults filled in */
	json_t *(*config)(mg_ctx *ctx);
	const char *(*state_dir)(mg_ctx *ctx);

	/* bus. service_*, subscribe and the loop calls: the plugin's own thread
	 * only. request and publish: any thread. */
	int (*service_add)(mg_ctx *ctx, const char *service, mg_service_fn fn, void *arg);
	int (*service_del)(mg_ctx *ctx, const char *service);
	int (*request)(mg_ctx *ctx, const char *service, json_t *request, int timeout_ms,
	               json_t **reply);
	int (*subscribe)(mg_ctx *ctx, const char *prefix, mg_event_fn fn, void *arg);
	int (*unsubscribe)(mg_ctx *ctx, const char *prefix);
	int (*publish)(mg_ctx *ctx, const char *topic, json_t *payload);

	/* the plugin's event loop */
	int (*timer_add)(mg_ctx *ctx, unsigned interval_ms, int repeat, mg_timer_fn fn, void *arg);
	int (*timer_del)(mg_ctx *ctx, int timer_id);
	int (*fd_watch)(mg_ctx *ctx, int fd, int events, mg_fd_fn fn, void *arg);
	int (*fd_unwatch)(mg_ctx *ctx, int fd);

	/* state (LMDB): any thread; a transaction stays on the thread that began it */
	int (*txn_begin)(mg_ctx *ctx, int flags, mg_txn **txn);
	int (*txn_commit)(mg_txn *txn);
	void (*txn_abort)(mg_txn *txn);
	int (*state_get)(mg_txn *txn, const char *db, const char *key, json_t **value);
	int (*state_put)(mg_txn *txn, const char *db, const char *key, json_t *value);
	int (*state_del)(mg_txn *txn, const char *db, const char *key);
	int (*state_foreach)(mg_txn *txn, const char *db, const char *prefix, mg_state_fn fn,
	                     void *arg);

	/* wall clock in milliseconds since the epoch (a mock core may fake it) */
	uint64_t (*now_ms)(mg_ctx *ctx);

	/* deferred replies and nested transactions (API version 2) */
	mg_reply_token *(*defer)(mg_ctx *ctx);
	void (*reply)(mg_ctx *ctx, mg_reply_token *token, json_t *reply);
	int (*txn_begin_nested)(mg_txn *parent, mg_txn **child);

	/* the one check of a request's fields (API version 3) */
	json_t *(*request_check)(json_t *request, const struct mg_field *fields);

	/* work from other threads (API version 3): any thread */
	int (*post)(mg_ctx *ctx, mg_post_fn fn, void *arg);

	/* log, repeated lines counted instead of written (API version 4): any thread */
	void (*vlog_limited)(mg_ctx *ctx, enum mg_log_level level, const char *key, const char *fmt,
	                     va_list ap);

	/* the plugin's first reconcile is done (API version 5): any thread */
	void (*ready)(mg_ctx *ctx);

	/* this node's name: cluster.node, or the host name (API version 6) */
	const char *(*node_name)(mg_ctx *ctx);
	/* whether the node shares its cluster databases (API version 6) */
	int (*in_cluster)(mg_ctx *ctx);

	/* New members go here, each taking one slot of `reserved` so that the
	 * size of the struct stays the same. */
	void *reserved[10];
};

/* What the core hands to every callback. The core owns it; `self` is the
 * plugin's own pointer, set in init. */
struct mg_ctx {
	uint32_t size;
	const struct mg_api *api;
	void *self;
};

/* Whether the core a plugin runs in has the member `member` of struct
 * mg_api: it lies within the core's api->size and is filled in (a core
 * built before the member existed zero-filled the slot, and a mock core
 * may leave a member out). meshgated refuses a plugin of a newer ABI
 * minor than its own; within that, a plugin that can do without a member
 * asks before it calls it:
 *
 *     if (MG_API_HAS(ctx, txn_begin_nested)) ... else fall back */
#define MG_API_HAS(ctx, member)                                                              \
	(offsetof(struct mg_api, member) + sizeof((ctx)->api->member) <= (ctx)->api->size && \
	 (ctx)->api->member != NULL)

/* ---- wrappers: the names plugin code uses ---- */

static inline void mg_log(mg_ctx *ctx, enum mg_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void mg_log(mg_ctx *ctx, enum mg_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ctx->api->vlog(ctx, level, fmt, ap);
	va_end(ap);
}
#define mg_error_log(ctx, ...) mg_log(ctx, MG_LOG_ERROR, __VA_ARGS__)
#define mg_warn(ctx, ...)      mg_log(ctx, MG_LOG_WARN, __VA_ARGS__)
#define mg_info(ctx, ...)      mg_log(ctx, MG_LOG_INFO, __VA_ARGS__)
#define mg_debug(ctx, ...)     mg_log(ctx, MG_LOG_DEBUG, __VA_ARGS__)

/* mg_log for lines that a client can make the gateway write again and
 * again (a refused request): the first line of each `key` is written, then
 * at most a few a minute, and once a minute a line tells how many similar
 * ones were suppressed. `key` names the source and the reason, e.g.
 * "redeem 203.0.113.7 invalid_code"; the plugin's name is added. A core
 * older than API version 4 writes every line. */
static inline void mg_log_limited(mg_ctx *ctx, enum mg_log_level level, const char *key,
                                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static inline void mg_log_limited(mg_ctx *ctx, enum mg_log_level level, const char *key,
                                  const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (MG_API_HAS(ctx, vlog_limited))
		ctx->api->vlog_limited(ctx, level, key, fmt, ap);
	else
		ctx->api->vlog(ctx, level, fmt, ap);
	va_end(ap);
}

/* Borrowed reference, valid until the next reload. */
static inline json_t *mg_config(mg_ctx *ctx)
{
	return ctx->api->config(ctx);
}
static inline const char *mg_state_dir(mg_ctx *ctx)
{
	return ctx->api->state_dir(ctx);
}

static inline int mg_service_add(mg_ctx *ctx, const char *service, mg_service_fn fn, void *arg)
{
	return ctx->api->service_add(ctx, service, fn, arg);
}
static inline int mg_service_del(mg_ctx *ctx, const char *service)
{
	return ctx->api->service_del(ctx, service);
}

/* Sends `request` (borrowed; NULL = {}) to the plugin owning `service` and
 * waits at most timeout_ms (<= 0: MG_REQUEST_TIMEOUT_MS). *reply is always
 * set: the reply, or an error object {"error": CODE, "message": TEXT}.
 * Returns 0, -ENOENT (no such service), -ETIMEDOUT, -EPROTO (malformed
 * reply) or -EREMOTEIO (the service answered with an error). */
static inline int mg_request(mg_ctx *ctx, const char *service, json_t *request, int timeout_ms,
                             json_t **reply)
{
	return ctx->api->request(ctx, service, request, timeout_ms, reply);
}

/* Events: every subscriber whose prefix starts the topic receives it.
 * Topics are dotted: "device.changed", "state.devices". */
static inline int mg_subscribe(mg_ctx *ctx, const char *prefix, mg_event_fn fn, void *arg)
{
	return ctx->api->subscribe(ctx, prefix, fn, arg);
}
static inline int mg_unsubscribe(mg_ctx *ctx, const char *prefix)
{
	return ctx->api->unsubscribe(ctx, prefix);
}
static inline int mg_publish(mg_ctx *ctx, const char *topic, json_t *payload)
{
	return ctx->api->publish(ctx, topic, payload);
}

/* Returns a timer id > 0 or a negative errno. */
static inline int mg_timer_add(mg_ctx *ctx, unsigned interval_ms, int repeat, mg_timer_fn fn,
                               void *arg)
{
	return ctx->api->timer_add(ctx, interval_ms, repeat, fn, arg);
}
static inline int mg_timer_del(mg_ctx *ctx, int timer_id)
{
	return ctx->api->timer_del(ctx, timer_id);
}
static inline int mg_fd_watch(mg_ctx *ctx, int fd, int events, mg_fd_fn fn, void *arg)
{
	return ctx->api->fd_watch(ctx, fd, events, fn, arg);
}
static inline int mg_fd_unwatch(mg_ctx *ctx, int fd)
{
	return ctx->api->fd_unwatch(ctx, fd);
}

/* State: named databases of JSON objects, keyed by strings. A put stamps
 * the value with "v" (its schema version, 1 unless the writer set one).
 * Writes go to databases the plugin owns (-EPERM otherwise); a commit is
 * durable when it returns 0 and is announced on the bus as the event
 * "state.<db>" with {"db", "key", "op": "put"|"del"}.
 * get returns -ENOENT for a missing key. */
static inline int mg_txn_begin(mg_ctx *ctx, int flags, mg_txn **txn)
{
	return ctx->api->txn_begin(ctx, flags, txn);
}
static inline int mg_txn_commit(mg_ctx *ctx, mg_txn *txn)
{
	return ctx->api->txn_commit(txn);
}
static inline void mg_txn_abort(mg_ctx *ctx, mg_txn *txn)
{
	ctx->api->txn_abort(txn);
}
static inline int mg_state_get(mg_ctx *ctx, mg_txn *txn, const char *db, const char *key,
                               json_t **value)
{
	return ctx->api->state_get(txn, db, key, value);
}
static inline int mg_state_put(mg_ctx *ctx, mg_txn *txn, const char *db, const char *key,
                               json_t *value)
{
	return ctx->api->state_put(txn, db, key, value);
}
static inline int mg_state_del(mg_ctx *ctx, mg_txn *txn, const char *db, const char *key)
{
	return ctx->api->state_del(txn, db, key);
}
static inline int mg_state_foreach(mg_ctx *ctx, mg_txn *txn, const char *db, const char *prefix,
                                   mg_state_fn fn, void *arg)
{
	return ctx->api->state_foreach(txn, db, prefix, fn, arg);
}

/* mg_state_foreach's callback that adds each record to the object `arg`
 * under its key. */
static inline int mg_state_collect_into(const char *key, json_t *value, void *arg)
{
	return json_object_set((json_t *)arg, key, value) ? -ENOMEM : 0;
}

/* Every record of `db` whose key starts with `prefix` (NULL: all), as one
 * new object by key, read in a transaction of its own; NULL when it cannot
 * be read. For small databases (a cluster's nodes), not 10,000 devices. */
static inline json_t *mg_state_collect(mg_ctx *ctx, const char *db, const char *prefix)
{
	json_t *all = json_object();
	mg_txn *txn;
	if (!all || mg_txn_begin(ctx, MG_TXN_READ, &txn)) {
		json_decref(all);
		return NULL;
	}
	int rc = mg_state_foreach(ctx, txn, db, prefix, mg_state_collect_into, all);
	mg_txn_abort(ctx, txn);
	if (rc) {
		json_decref(all);
		return NULL;
	}
	return all;
}

/* Answering later: inside a service handler, mg_defer() takes the request
 * out of the normal path (whatever the handler returns is dropped; return
 * NULL) and gives a token; mg_reply() answers it later, on the plugin's
 * thread, consuming `reply`. A plugin uses it to answer a batch of
 * requests after one durable commit (group commit). */
static inline mg_reply_token *mg_defer(mg_ctx *ctx)
{
	return ctx->api->defer(ctx);
}
static inline void mg_reply(mg_ctx *ctx, mg_reply_token *token, json_t *reply)
{
	ctx->api->reply(ctx, token, reply);
}

/* A write transaction inside `parent`: its writes join the parent's when it
 * commits and vanish when it aborts; the parent is not to be used while
 * the child is open. One request's changes in a batch, undone alone. */
static inline int mg_txn_begin_nested(mg_ctx *ctx, mg_txn *parent, mg_txn **child)
{
	return parent ? ctx->api->txn_begin_nested(parent, child) : -EINVAL;
}

/* The way back from a thread of the plugin's own (blocking I/O: HTTPS to
 * Vault or etcd, a long probe): queues fn(ctx, arg) to run on the plugin's
 * thread, between its other callbacks, where everything of the SDK may be
 * called (mg_reply to a deferred request, timers, ...). Any thread may post,
 * the plugin's own included. Posts run in the order they were made (so
 * each posting thread's in its own order), each exactly once.
 * `arg` is not copied, freed or looked at: it stays the poster's business
 * until fn has it (fn usually frees it).
 * Returns 0, or a negative errno and fn will not be called (the poster
 * still holds arg): -ESHUTDOWN once the plugin's stop has begun (what was
 * posted before runs before its stop callback, so stop may join the
 * posting threads), -EINVAL without fn, -ENOMEM, -ENOSYS from a core
 * older than API version 3. When init fails, what it posted and did not
 * see run is dropped: a failing init joins its threads and frees it. */
static inline int mg_post(mg_ctx *ctx, mg_post_fn fn, void *arg)
{
	return MG_API_HAS(ctx, post) ? ctx->api->post(ctx, fn, arg) : -ENOSYS;
}

/* "My first reconcile is done": the system matches state (peers, rules,
 * names). meshgated's readiness (core.status, the API's health) waits
 * until every running plugin is ready. A plugin is ready from its first
 * call, or when its start returns if it has not called it by then (a
 * plugin that never calls it, such as one built before API version 5,
 * is ready when its start returns). Call it where the reconcile of start
 * ends, so that the time of readiness is the reconcile's. Any thread;
 * later calls change nothing. A core older than API version 5: no-op. */
static inline void mg_ready(mg_ctx *ctx)
{
	if (MG_API_HAS(ctx, ready))
		ctx->api->ready(ctx);
}

/* This node's name: the core's cluster.node, or the host name when the
 * node runs alone. Never NULL. */
static inline const char *mg_node_name(mg_ctx *ctx)
{
	return MG_API_HAS(ctx, node_name) ? ctx->api->node_name(ctx) : "";
}

/* 1 when this node is one of a cluster (the core's cluster setting): its
 * cluster databases are shared with other nodes, which write them too. */
static inline int mg_in_cluster(mg_ctx *ctx)
{
	return MG_API_HAS(ctx, in_cluster) ? ctx->api->in_cluster(ctx) : 0;
}

/* Wall-clock milliseconds; use it (not time()) so tests can move time. */
static inline uint64_t mg_now_ms(mg_ctx *ctx)
{
	return ctx->api->now_ms(ctx);
}

/* {"error": code, "message": printf(fmt, ...)} */
static inline json_t *mg_error(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline json_t *mg_error(const char *code, const char *fmt, ...)
{
	char message[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	return json_pack("{s:s, s:s}", "error", code, "message", message);
}

/* The length of the longest prefix of `s` of at most `max` bytes that does
 * not split a UTF-8 character: where to cut a text that goes into JSON. */
static inline size_t mg_utf8_prefix(const char *s, size_t max)
{
	size_t n = 0;
	while (s[n] && n < max)
		n++;
	while (n && (s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

/* A duration as settings and requests write it: a positive number without
 * a leading zero and exactly one unit, s, m, h or d ("30s", "10m", "24h",
 * "7d"), at most 3650d; a bare "24" meaning seconds or hours would be a
 * trap. 0 with *ms, or -EINVAL with a message in err. */
static inline int mg_duration_parse(const char *text, uint64_t *ms, char *err, size_t errlen)
{
	const uint64_t max_ms = 3650ULL * 86400 * 1000;
	uint64_t n = 0, unit = 0;
	size_t i = 0;
	if (!text)
		text = "";
	while (text[i] >= '0' && text[i] <= '9' && i < 12)
		n = n * 10 + (uint64_t)(text[i++] - '0');
	if (i && text[0] != '0' && text[i] && !text[i + 1])
		unit = text[i] == 's'   ? 1000
		       : text[i] == 'm' ? 60 * 1000
		       : text[i] == 'h' ? 3600 * 1000
		       : text[i] == 'd' ? 86400 * 1000
		                        : 0;
	if (!unit) {
		snprintf(err, errlen,
		         "invalid duration \"%.40s\": write a positive number and one unit s, m, h "
		         "or d (\"30s\", \"10m\", \"24h\", \"7d\")",
		         text);
		return -EINVAL;
	}
	if (n > max_ms / unit) {
		snprintf(err, errlen, "duration \"%.40s\" is longer than 3650d", text);
		return -EINVAL;
	}
	*ms = n * unit;
	return 0;
}

/* {"error": "bad_request", "message": printf(fmt, ...), "field": field}:
 * the one shape of a refused request. `field` names the member at fault
 * (cut at 64 bytes); NULL when the request as a whole is (not an object). */
static inline json_t *mg_field_error(const char *field, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline json_t *mg_field_error(const char *field, const char *fmt, ...)
{
	char text[1024]; /* cut at 511 bytes below, where a character ends */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_t *error = json_pack("{s:s, s:s#}", "error", "bad_request", "message", text,
	                          (int)mg_utf8_prefix(text, 511));
	if (field)
		json_object_set_new(error, "field", json_stringn(field, mg_utf8_prefix(field, 64)));
	return error;
}

/* Checks `request` against the table `fields` (ends with {0}): NULL when it
 * is a JSON object (NULL counts as {}) whose members are all declared, of
 * their type and within their bounds, and has every required one; else the
 * mg_field_error reply of the first fault. An unknown member is refused (a
 * misspelt optional field would otherwise be ignored in silence), except
 * an integer "v", the payload's version. Checks the shape only: what a
 * value means (a name, an address, a key) the service checks itself and
 * refuses with mg_field_error. */
static inline json_t *mg_request_check(mg_ctx *ctx, json_t *request, const struct mg_field *fields)
{
	if (!MG_API_HAS(ctx, request_check)) /* a core older than API version 3 */
		return mg_error("internal", "this core cannot check requests (API version %u)",
		                ctx->api->version);
	return ctx->api->request_check(request, fields);
}

/* The error code of a reply, or NULL when it is not an error. */
static inline const char *mg_reply_error(json_t *reply)
{
	return json_string_value(json_object_get(reply, "error"));
}

#ifdef __cplusplus
}
#endif
#endif
