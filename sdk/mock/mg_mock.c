/* The mock core (see mg_mock.h). It keeps the core's rules where a plugin
 * could come to depend on them (descriptor checks, dependency order,
 * database ownership, names of services and topics, reply codes, events
 * after the handler) and replaces its threads and sockets by plain calls
 * on the test's thread. */
#include "mg_mock.h"

#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bus_proto.h"
#include "config.h"
#include "host.h"
#include "log_limit.h"
#include "request_check.h"
#include "state.h"

/* Address space only: LMDB maps it lazily. */
#define MOCK_MAP_SIZE ((size_t)1 << 30)

enum mock_status { MOCK_LOADED, MOCK_INIT, MOCK_RUNNING, MOCK_STOPPED };

struct mwatch {
	int fd;
	int events;
	mg_fd_fn fn;
	void *arg;
};

struct mtxn;

struct mplugin {
	struct mg_ctx ctx; /* first: the ops get &ctx and cast it back */
	struct mg_mock *mock;
	const struct mg_plugin *desc;
	char name[HOST_NAME_MAX];
	char *who; /* its file, or its name when linked in: what messages name */
	void *dl;
	struct mg_plugin stub; /* the descriptor of a stub */
	char **stub_owns;
	json_t *config;
	enum mock_status status;
	int active;   /* between init and the end of stop: it may register */
	int starting; /* part of the current mg_mock_start */
	int ready;    /* mg_ready called, or its start returned 0 */
	/* its start returned with posts of its own queued and without mg_ready:
	 * ready once mg_mock_run_posts leaves none of them (as in the core) */
	int ready_after_posts;
	/* Callbacks of this plugin on the stack: in the core its thread would
	 * be blocked, so a request to it could only time out. */
	int busy;
	struct host_registrations regs; /* services and subscriptions */
	struct host_timer *timers;
	size_t ntimers;
	struct mwatch *watches;
	size_t nwatches;
	struct mtxn *txns; /* open transactions, aborted (and reported) at stop */
	int posts_open;    /* mg_post accepted: from init to stop; posts_lock */
};

/* A post (mg_post) waiting for mg_mock_run_posts. */
struct mpost {
	struct mplugin *p;
	mg_post_fn fn;
	void *arg;
	struct mpost *next;
};

/* What a plugin holds as an mg_txn: the state's transaction plus who
 * opened it, so that commit and abort (which get no ctx) find the mock. */
struct mtxn {
	struct mg_txn *inner;
	struct mplugin *p;
	int write;
	int nested; /* its commit joins the parent's: never failed by fail_commits */
	struct mtxn *next;
};

/* In the mock a deferred request is answered before mg_mock_request
 * returns: the plugin's due timers run until it calls mg_reply. */
struct mg_reply_token {
	json_t *reply;
	int done;
};

struct queued {
	char *topic;
	json_t *payload;
};

struct mg_mock {
	char node_name[64];
	int in_cluster; /* mg_mock_set_node_name */
	char *state_dir;
	int temp_dir;
	struct mg_state *state;
	struct mplugin **plugins; /* in start order once started */
	size_t nplugins;
	uint64_t now;
	int next_timer_id;
	/* Nesting of calls into plugins: events wait until the outermost
	 * returns, as they would wait for the bus in the core. */
	int depth;
	struct queued *queue;
	size_t qhead, qlen, qcap;
	json_t *events;
	/* LMDB allows one write transaction at a time; a second one begun on
	 * the same thread would deadlock, so the mock refuses it. */
	struct mtxn *writer;
	/* mg_mock_fail_commits: the next fail_n top-level write commits
	 * return fail_rc; then on_failed_commit runs (the test's race). */
	int fail_rc, fail_n;
	void (*on_failed_commit)(struct mg_mock *mock, void *arg);
	void *on_failed_commit_arg;
	/* A deferred reply of the request being dispatched (mg_defer). */
	int can_defer;
	struct mg_reply_token *deferred;
	enum mg_log_level level;
	unsigned log_counts[MG_LOG_DEBUG + 1];
	struct log_limit limiter; /* mg_log_limited, on the mock's clock */
	/* Posts come from any thread: the one lock of the mock. */
	pthread_mutex_t posts_lock;
	struct mpost *posts, **posts_tail;
};

static const struct mg_api mock_api;

static struct mplugin *plugin_of(mg_ctx *ctx)
{
	return (struct mplugin *)ctx;
}

/* ---- logging ---- */

static const char *level_name(enum mg_log_level level)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	return level <= MG_LOG_DEBUG ? names[level] : "debug";
}

static void mock_vlog(struct mg_mock *m, enum mg_log_level level, const char *who, const char *fmt,
                      va_list ap)
{
	char line[2048];
	if (level > MG_LOG_DEBUG)
		level = MG_LOG_DEBUG;
	m->log_counts[level]++;
	if (level > m->level)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	/* one write per line, so that lines of two mocks never interleave */
	fprintf(stderr, "[mock] %s: %s: %s\n", who, level_name(level), line);
}

static void mock_log(struct mg_mock *m, enum mg_log_level level, const char *who, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));
static void mock_log(struct mg_mock *m, enum mg_log_level level, const char *who, const char *fmt,
                     ...)
{
	va_list ap;
	va_start(ap, fmt);
	mock_vlog(m, level, who, fmt, ap);
	va_end(ap);
}

static void limiter_write(void *arg, enum mg_log_level level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void limiter_write(void *arg, enum mg_log_level level, const char *who, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mock_vlog(arg, level, who, fmt, ap);
	va_end(ap);
}

void mg_mock_log_level(struct mg_mock *m, enum mg_log_level level)
{
	m->level = level;
}

unsigned mg_mock_log_count(struct mg_mock *m, enum mg_log_level level)
{
	return level <= MG_LOG_DEBUG ? m->log_counts[level] : 0;
}

static enum mg_log_level env_level(void)
{
	const char *v = getenv("MG_MOCK_LOG");
	static const char *const names[] = {"error", "warn", "info", "debug"};
	for (int i = 0; v && i <= MG_LOG_DEBUG; i++)
		if (!strcmp(v, names[i]))
			return (enum mg_log_level)i;
	return MG_LOG_INFO;
}

/* ---- events: recorded at once, delivered when the outermost call returns ---- */

static int queue_push(struct mg_mock *m, const char *topic, json_t *payload)
{
	if (m->qlen == m->qcap) {
		size_t cap = m->qcap ? m->qcap * 2 : 16;
		struct queued *q = realloc(m->queue, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		m->queue = q;
		m->qcap = cap;
	}
	char *t = strdup(topic);
	if (!t)
		return -ENOMEM;
	m->queue[m->qlen++] = (struct queued){t, json_incref(payload)};
	return 0;
}

static int mock_publish(struct mg_mock *m, const char *topic, json_t *payload)
{
	if (!topic || !mg_bus_name_valid(topic, strlen(topic)))
		return -EINVAL;
	/* through text, as on the bus: the subscribers get what the wire
	 * carries, never the publisher's object */
	char *text = payload ? json_dumps(payload, JSON_COMPACT) : strdup("{}");
	if (!text)
		return -EINVAL;
	json_t *copy = json_loads(text, 0, NULL);
	free(text);
	if (!copy)
		return -EINVAL;
	json_array_append_new(m->events, json_pack("{s:s, s:O}", "topic", topic, "payload", copy));
	int rc = queue_push(m, topic, copy);
	json_decref(copy);
	return rc;
}

static int active(const struct mplugin *p)
{
	return p->active;
}

/* One event on its way to one plugin's subscriptions. */
struct delivery {
	struct mplugin *p;
	const char *topic;
	json_t *payload;
	json_t *copy; /* one per plugin, as each actor parses its own */
};

static void deliver_one(struct host_entry *sub, void *arg)
{
	struct delivery *d = arg;
	if (!active(d->p))
		return;
	if (!d->copy)
		d->copy = json_deep_copy(d->payload);
	d->p->busy++;
	sub->fn.event(&d->p->ctx, d->topic, d->copy, sub->arg);
	d->p->busy--;
}

static void deliver(struct mg_mock *m, const char *topic, json_t *payload)
{
	for (size_t i = 0; i < m->nplugins; i++) {
		struct delivery d = {m->plugins[i], topic, payload, NULL};
		host_table_walk_prefix(&d.p->regs.subscriptions, topic, deliver_one, &d);
		json_decref(d.copy);
	}
}

static void drain(struct mg_mock *m)
{
	while (m->qhead < m->qlen) {
		struct queued q = m->queue[m->qhead++];
		deliver(m, q.topic, q.payload);
		free(q.topic);
		json_decref(q.payload);
	}
	m->qhead = m->qlen = 0;
}

static void enter(struct mg_mock *m)
{
	m->depth++;
}

static void leave(struct mg_mock *m)
{
	if (m->depth == 1)
		drain(m);
	m->depth--;
}

static void on_commit(const char *db, const char *key, const char *op, int remote, void *arg)
{
	struct mg_mock *m = arg;
	char topic[MG_BUS_MAX_NAME + 1];
	snprintf(topic, sizeof(topic), "state.%s", db);
	json_t *payload = json_pack("{s:s, s:s, s:s}", "db", db, "key", key, "op", op);
	if (remote)
		json_object_set_new(payload, "remote", json_true());
	mock_publish(m, topic, payload);
	json_decref(payload);
}

json_t *mg_mock_events(struct mg_mock *m)
{
	return m->events;
}

size_t mg_mock_event_count(struct mg_mock *m, const char *prefix)
{
	size_t i, n = 0;
	json_t *e;
	json_array_foreach(m->events, i, e)
	{
		const char *topic = json_string_value(json_object_get(e, "topic"));
		if (!prefix || !strncmp(topic, prefix, strlen(prefix)))
			n++;
	}
	return n;
}

void mg_mock_events_clear(struct mg_mock *m)
{
	json_array_clear(m->events);
}

int mg_mock_publish(struct mg_mock *m, const char *topic, json_t *payload)
{
	enter(m);
	int rc = mock_publish(m, topic, payload);
	leave(m);
	return rc;
}

/* ---- requests ---- */

/* An error reply and the return code mg_request() gives with it. */
static int fail_reply(json_t **reply, int rc, json_t *error)
{
	*reply = error;
	return rc;
}

static struct mplugin *service_owner(struct mg_mock *m, const char *service, struct host_entry *out)
{
	for (size_t i = 0; i < m->nplugins; i++) {
		struct mplugin *p = m->plugins[i];
		struct host_entry *e = host_table_find(&p->regs.services, service);
		if (active(p) && e) {
			*out = *e;
			return p;
		}
	}
	return NULL;
}

/* What the handler returned, as the requester gets it: through text. */
static int finish_reply(struct mplugin *p, const char *service, json_t *r, json_t **reply)
{
	if (!r)
		return fail_reply(
		    reply, -EREMOTEIO,
		    mg_error("internal", "%s failed to answer '%s'", p->name, service));
	if (!json_is_object(r)) {
		json_decref(r);
		return fail_reply(reply, -EPROTO,
		                  mg_error("bad_reply", "malformed reply: not an object"));
	}
	char *text = json_dumps(r, JSON_COMPACT);
	json_decref(r);
	if (!text) /* the core could not send it: the requester would wait in vain */
		return fail_reply(
		    reply, -ETIMEDOUT,
		    mg_error("timeout", "the reply of '%s' cannot be encoded", service));
	*reply = json_loads(text, 0, NULL);
	free(text);
	return mg_bus_reply_rc(mg_reply_error(*reply));
}

/* `request` is consumed; NULL when the text did not parse (`why`). */
static int dispatch(struct mg_mock *m, const char *service, json_t *request, const char *why,
                    json_t **reply)
{
	struct host_entry s;
	struct mplugin *p;

	*reply = NULL;
	if (!service || !mg_bus_name_valid(service, strlen(service))) {
		json_decref(request);
		return fail_reply(reply, -EINVAL, mg_error("bad_request", "invalid service name"));
	}
	if (!(p = service_owner(m, service, &s))) {
		json_decref(request);
		return fail_reply(reply, -ENOENT,
		                  mg_error("unknown_service", "no plugin serves '%s'", service));
	}
	if (p->busy) {
		json_decref(request);
		mock_log(m, MG_LOG_WARN, "mock",
		         "request '%s' to %s while it is in a callback: it would time out in the "
		         "core (a request to itself, or a cycle)",
		         service, p->name);
		return fail_reply(
		    reply, -ETIMEDOUT,
		    mg_error("timeout", "%s is busy: '%s' timed out", p->name, service));
	}
	if (!json_is_object(request)) {
		json_decref(request);
		return fail_reply(reply, -EREMOTEIO,
		                  mg_error("bad_request", "request is not a JSON object: %s", why));
	}
	enter(m);
	p->busy++;
	m->can_defer = 1;
	m->deferred = NULL;
	json_t *r = s.fn.service(&p->ctx, service, request, s.arg);
	m->can_defer = 0;
	p->busy--;
	json_decref(request);
	struct mg_reply_token *token = m->deferred;
	if (token) {
		/* answered later: run what is due now (a batch's flush timer) */
		json_decref(r);
		r = NULL;
		mg_mock_advance(m, 0);
		if (token->done)
			r = token->reply;
		else
			mock_log(m, MG_LOG_ERROR, p->name, "deferred '%s' never answered", service);
		free(token);
		m->deferred = NULL;
	}
	int rc = finish_reply(p, service, r, reply);
	leave(m);
	return rc;
}

int mg_mock_request_text(struct mg_mock *m, const char *service, const char *text, size_t len,
                         json_t **reply)
{
	json_error_t jerr;
	json_t *request = json_loadb(text, len, 0, &jerr);
	return dispatch(m, service, request, request ? "wrong type" : jerr.text, reply);
}

int mg_mock_request(struct mg_mock *m, const char *service, json_t *request, json_t **reply)
{
	char *text = request ? json_dumps(request, JSON_COMPACT) : strdup("{}");
	if (!text)
		return fail_reply(reply, -EINVAL,
		                  mg_error("bad_request", "request is not a JSON object"));
	int rc = mg_mock_request_text(m, service, text, strlen(text), reply);
	free(text);
	return rc;
}

/* ---- the ops table ---- */

static void op_vlog(mg_ctx *ctx, enum mg_log_level level, const char *fmt, va_list ap)
{
	struct mplugin *p = plugin_of(ctx);
	mock_vlog(p->mock, level, p->name, fmt, ap);
}

/* Suppressed lines are not counted by mg_mock_log_count: a test sees what
 * the log would hold. */
static void op_vlog_limited(mg_ctx *ctx, enum mg_log_level level, const char *key, const char *fmt,
                            va_list ap)
{
	struct mplugin *p = plugin_of(ctx);
	if (log_limit_pass(&p->mock->limiter, level, p->name, key, p->mock->now, limiter_write,
	                   p->mock))
		mock_vlog(p->mock, level, p->name, fmt, ap);
}

static json_t *op_config(mg_ctx *ctx)
{
	return plugin_of(ctx)->config;
}
static const char *op_state_dir(mg_ctx *ctx)
{
	return plugin_of(ctx)->mock->state_dir;
}

static int op_service_add(mg_ctx *ctx, const char *service, mg_service_fn fn, void *arg)
{
	struct mplugin *p = plugin_of(ctx);
	struct host_entry s;
	if (!p->active)
		return -EPERM;
	if (!service || !fn || !mg_bus_name_valid(service, strlen(service)))
		return -EINVAL;
	if (service_owner(p->mock, service, &s))
		return -EEXIST;
	return host_table_add(&p->regs.services, service, (union host_fn){.service = fn}, arg);
}

static int op_service_del(mg_ctx *ctx, const char *service)
{
	return service ? host_table_del(&plugin_of(ctx)->regs.services, service) : -ENOENT;
}

static int op_request(mg_ctx *ctx, const char *service, json_t *request, int timeout_ms,
                      json_t **reply)
{
	(void)timeout_ms; /* everything answers at once here */
	return mg_mock_request(plugin_of(ctx)->mock, service, request, reply);
}

static int op_subscribe(mg_ctx *ctx, const char *prefix, mg_event_fn fn, void *arg)
{
	struct mplugin *p = plugin_of(ctx);
	if (!p->active)
		return -EPERM;
	if (!prefix || !fn || !mg_bus_name_valid(prefix, strlen(prefix)))
		return -EINVAL;
	return host_table_add(&p->regs.subscriptions, prefix, (union host_fn){.event = fn}, arg);
}

static int op_unsubscribe(mg_ctx *ctx, const char *prefix)
{
	return prefix ? host_table_del(&plugin_of(ctx)->regs.subscriptions, prefix) : -ENOENT;
}

static int op_publish(mg_ctx *ctx, const char *topic, json_t *payload)
{
	return mg_mock_publish(plugin_of(ctx)->mock, topic, payload);
}

static int op_timer_add(mg_ctx *ctx, unsigned interval_ms, int repeat, mg_timer_fn fn, void *arg)
{
	struct mplugin *p = plugin_of(ctx);
	if (!p->active)
		return -EPERM;
	if (!fn)
		return -EINVAL;
	struct host_timer *list = realloc(p->timers, (p->ntimers + 1) * sizeof(*list));
	if (!list)
		return -ENOMEM;
	p->timers = list;
	int id = ++p->mock->next_timer_id;
	list[p->ntimers++] =
	    (struct host_timer){id, p->mock->now + interval_ms, interval_ms, repeat, fn, arg, 0};
	return id;
}

static int op_timer_del(mg_ctx *ctx, int id)
{
	struct mplugin *p = plugin_of(ctx);
	for (size_t i = 0; i < p->ntimers; i++)
		if (p->timers[i].id == id) {
			p->timers[i] = p->timers[--p->ntimers];
			return 0;
		}
	return -ENOENT;
}

static int op_fd_unwatch(mg_ctx *ctx, int fd)
{
	struct mplugin *p = plugin_of(ctx);
	for (size_t i = 0; i < p->nwatches; i++)
		if (p->watches[i].fd == fd) {
			p->watches[i] = p->watches[--p->nwatches];
			return 0;
		}
	return -ENOENT;
}

static int op_fd_watch(mg_ctx *ctx, int fd, int events, mg_fd_fn fn, void *arg)
{
	struct mplugin *p = plugin_of(ctx);
	if (!p->active)
		return -EPERM;
	if (fd < 0 || !fn || !(events & (MG_FD_READ | MG_FD_WRITE)))
		return -EINVAL;
	op_fd_unwatch(ctx, fd); /* a second watch replaces the first, as in the core */
	struct mwatch *list = realloc(p->watches, (p->nwatches + 1) * sizeof(*list));
	if (!list)
		return -ENOMEM;
	p->watches = list;
	list[p->nwatches++] = (struct mwatch){fd, events, fn, arg};
	return 0;
}

static int op_txn_begin(mg_ctx *ctx, int flags, mg_txn **txn)
{
	struct mplugin *p = plugin_of(ctx);
	struct mg_mock *m = p->mock;
	int write = !(flags & MG_TXN_READ);

	*txn = NULL;
	if (write && m->writer) {
		mock_log(m, MG_LOG_ERROR, p->name,
		         "a write transaction while %s holds one: LMDB would deadlock this thread",
		         m->writer->p->name);
		return -EDEADLK;
	}
	struct mtxn *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	int rc = state_begin(m->state, p->name, !write, &t->inner);
	if (rc) {
		free(t);
		return rc;
	}
	t->p = p;
	t->write = write;
	t->next = p->txns;
	p->txns = t;
	if (write)
		m->writer = t;
	*txn = (mg_txn *)t;
	return 0;
}

/* Forgets `t`; the caller ends its inner transaction. */
static void unlink_txn(struct mtxn *t)
{
	struct mg_mock *m = t->p->mock;
	for (struct mtxn **pp = &t->p->txns; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	if (m->writer == t)
		m->writer = NULL;
}

static int op_txn_commit(mg_txn *txn)
{
	struct mtxn *t = (struct mtxn *)txn;
	struct mg_mock *m = t->p->mock;
	unlink_txn(t);
	enter(m); /* the commit's events wait for the caller to return */
	int rc;
	if (t->write && !t->nested && m->fail_n > 0) {
		m->fail_n--;
		state_abort(t->inner);
		rc = m->fail_rc;
		if (m->on_failed_commit)
			m->on_failed_commit(m, m->on_failed_commit_arg);
	} else {
		rc = state_commit(t->inner);
	}
	free(t);
	leave(m);
	return rc;
}

static void op_txn_abort(mg_txn *txn)
{
	struct mtxn *t = (struct mtxn *)txn;
	if (!t)
		return;
	unlink_txn(t);
	state_abort(t->inner);
	free(t);
}

static int op_state_get(mg_txn *txn, const char *db, const char *key, json_t **value)
{
	return state_get(((struct mtxn *)txn)->inner, db, key, value);
}

static int op_state_put(mg_txn *txn, const char *db, const char *key, json_t *value)
{
	return state_put(((struct mtxn *)txn)->inner, db, key, value);
}

static int op_state_del(mg_txn *txn, const char *db, const char *key)
{
	return state_del(((struct mtxn *)txn)->inner, db, key);
}

static int op_state_foreach(mg_txn *txn, const char *db, const char *prefix, mg_state_fn fn,
                            void *arg)
{
	return state_foreach(((struct mtxn *)txn)->inner, db, prefix, fn, arg);
}

static uint64_t op_now_ms(mg_ctx *ctx)
{
	return plugin_of(ctx)->mock->now;
}

static const char *op_node_name(mg_ctx *ctx)
{
	return plugin_of(ctx)->mock->node_name;
}

static int op_in_cluster(mg_ctx *ctx)
{
	return plugin_of(ctx)->mock->in_cluster;
}

static void op_ready(mg_ctx *ctx)
{
	struct mplugin *p = plugin_of(ctx);
	if (active(p))
		p->ready = 1;
}

static mg_reply_token *op_defer(mg_ctx *ctx)
{
	struct mg_mock *m = plugin_of(ctx)->mock;
	if (!m->can_defer || m->deferred)
		return NULL;
	m->deferred = calloc(1, sizeof(*m->deferred));
	return m->deferred;
}

static void op_reply(mg_ctx *ctx, mg_reply_token *token, json_t *reply)
{
	(void)ctx;
	if (!token || token->done) {
		json_decref(reply);
		return;
	}
	token->reply = reply;
	token->done = 1;
}

static int op_txn_begin_nested(mg_txn *parent, mg_txn **child)
{
	struct mtxn *up = (struct mtxn *)parent;
	struct mtxn *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	int rc = state_begin_nested(up->inner, &t->inner);
	if (rc) {
		free(t);
		return rc;
	}
	t->p = up->p;
	t->write = 1;
	t->nested = 1;
	t->next = t->p->txns;
	t->p->txns = t;
	*child = (mg_txn *)t;
	return 0;
}

/* ---- posts: queued from any thread, run on the test's ---- */

static int op_post(mg_ctx *ctx, mg_post_fn fn, void *arg)
{
	struct mplugin *p = plugin_of(ctx);
	struct mpost *post = fn ? malloc(sizeof(*post)) : NULL;
	if (!post)
		return fn ? -ENOMEM : -EINVAL;
	*post = (struct mpost){p, fn, arg, NULL};
	pthread_mutex_lock(&p->mock->posts_lock);
	int open = p->posts_open;
	if (open) {
		*p->mock->posts_tail = post;
		p->mock->posts_tail = &post->next;
	}
	pthread_mutex_unlock(&p->mock->posts_lock);
	if (!open)
		free(post);
	return open ? 0 : -ESHUTDOWN;
}

static void set_posts_open(struct mplugin *p, int open)
{
	pthread_mutex_lock(&p->mock->posts_lock);
	p->posts_open = open;
	pthread_mutex_unlock(&p->mock->posts_lock);
}

/* Whether a post of p waits for mg_mock_run_posts. */
static int has_posts(struct mplugin *p)
{
	pthread_mutex_lock(&p->mock->posts_lock);
	struct mpost *post = p->mock->posts;
	while (post && post->p != p)
		post = post->next;
	pthread_mutex_unlock(&p->mock->posts_lock);
	return post != NULL;
}

int mg_mock_run_posts(struct mg_mock *m)
{
	pthread_mutex_lock(&m->posts_lock);
	struct mpost *list = m->posts;
	m->posts = NULL;
	m->posts_tail = &m->posts;
	pthread_mutex_unlock(&m->posts_lock);
	int ran = 0;
	while (list) {
		struct mpost *next = list->next;
		struct mplugin *p = list->p;
		if (active(p)) { /* else its init failed: dropped, as in the core */
			enter(m);
			p->busy++;
			list->fn(&p->ctx, list->arg);
			p->busy--;
			leave(m);
			ran++;
		}
		free(list);
		list = next;
	}
	for (size_t i = 0; i < m->nplugins; i++) {
		struct mplugin *p = m->plugins[i];
		if (p->ready_after_posts && !has_posts(p)) {
			p->ready_after_posts = 0;
			p->ready = 1; /* if its posts have not said so (mg_ready) */
		}
	}
	return ran;
}

static const struct mg_api mock_api = {
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
    .txn_commit = op_txn_commit,
    .txn_abort = op_txn_abort,
    .state_get = op_state_get,
    .state_put = op_state_put,
    .state_del = op_state_del,
    .state_foreach = op_state_foreach,
    .now_ms = op_now_ms,
    .defer = op_defer,
    .reply = op_reply,
    .txn_begin_nested = op_txn_begin_nested,
    .request_check = request_check, /* the daemon's own */
    .ready = op_ready,
    .post = op_post,
    .vlog_limited = op_vlog_limited,
    .node_name = op_node_name,
    .in_cluster = op_in_cluster,
};

/* ---- config: the test's object, validated as the core validates a file ---- */

/* Messages name settings within the plugin's section, the part the test
 * gave: "WHO: unknown setting 'nope'" where meshgated, reading the whole
 * file, says "FILE:LINE: unknown setting 'echo.nope'". */
static json_t *make_config(const struct mplugin *p, json_t *given, char *err, size_t errlen)
{
	char why[512] = "";
	if (given && !json_is_object(given)) {
		snprintf(err, errlen, "%s: the config must be a JSON object", p->who);
		return NULL;
	}
	json_t *config = mg_config_section_json(given, p->desc->settings, "", why, sizeof(why));
	if (!config)
		snprintf(err, errlen, "%s: %s", p->who, why);
	return config;
}

/* ---- plugins ---- */

static struct mplugin *find_plugin(struct mg_mock *m, const char *name)
{
	for (size_t i = 0; name && i < m->nplugins; i++)
		if (!strcmp(m->plugins[i]->name, name))
			return m->plugins[i];
	return NULL;
}

mg_ctx *mg_mock_ctx(struct mg_mock *m, const char *name)
{
	struct mplugin *p = find_plugin(m, name);
	return p ? &p->ctx : NULL;
}

const char *mg_mock_state_dir(struct mg_mock *m)
{
	return m->state_dir;
}

static void free_plugin(struct mplugin *p)
{
	json_decref(p->config);
	for (char **o = p->stub_owns; o && *o; o++)
		free(*o);
	free(p->stub_owns);
	free(p->who);
	if (p->dl)
		dlclose(p->dl);
	free(p);
}

/* Checks `d` as the core does (host.c), with the core's messages naming
 * `who`, and adds it; the new plugin takes `dl` over. */
static int new_plugin(struct mg_mock *m, const char *who, void *dl, const struct mg_plugin *d,
                      json_t *config, char *err, size_t errlen)
{
	char why[512];
	int rc = host_check_descriptor(d, why, sizeof(why));
	if (rc) {
		snprintf(err, errlen, "%s: %s", who, why);
		if (dl)
			dlclose(dl);
		return rc;
	}
	struct mplugin *twin = find_plugin(m, d->name);
	if (twin) {
		snprintf(err, errlen, "%s: duplicate plugin name '%s' (also in %s)", who, d->name,
		         twin->who);
		if (dl)
			dlclose(dl);
		return -EEXIST;
	}
	struct mplugin **list = realloc(m->plugins, (m->nplugins + 1) * sizeof(*list));
	struct mplugin *p = calloc(1, sizeof(*p));
	if (list)
		m->plugins = list;
	if (!list || !p || !(p->who = strdup(who))) {
		free(p);
		if (dl)
			dlclose(dl);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	p->ctx.size = sizeof(p->ctx);
	p->ctx.api = &mock_api;
	p->mock = m;
	p->desc = d;
	p->dl = dl;
	snprintf(p->name, sizeof(p->name), "%s", d->name);
	if (!(p->config = make_config(p, config, err, errlen))) {
		free_plugin(p);
		return -EINVAL;
	}
	m->plugins[m->nplugins++] = p;
	return 0;
}

int mg_mock_add(struct mg_mock *m, const struct mg_plugin *desc, json_t *config, char *err,
                size_t errlen)
{
	if (!desc) {
		snprintf(err, errlen, "no descriptor");
		return -EINVAL;
	}
	return new_plugin(m, desc->name ? desc->name : "descriptor", NULL, desc, config, err,
	                  errlen);
}

int mg_mock_load(struct mg_mock *m, const char *path, json_t *config, char *err, size_t errlen)
{
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		snprintf(err, errlen, "%s: cannot load: %s", path, dlerror());
		return -ENOENT;
	}
	const struct mg_plugin *d = dlsym(dl, MG_PLUGIN_SYMBOL);
	if (!d) {
		snprintf(err, errlen, "%s: missing symbol %s (not a meshgate plugin?)", path,
		         MG_PLUGIN_SYMBOL);
		dlclose(dl);
		return -ENOENT;
	}
	return new_plugin(m, path, dl, d, config, err, errlen);
}

int mg_mock_add_stub(struct mg_mock *m, const char *name, const char *const *owns)
{
	char err[256];
	size_t n = 0;

	if (!name || !name[0] || strlen(name) >= HOST_NAME_MAX)
		return -EINVAL;
	while (owns && owns[n])
		n++;
	char **copy = calloc(n + 1, sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		copy[i] = strdup(owns[i]);
	struct mg_plugin d = {
	    .abi_major = MG_ABI_MAJOR,
	    .abi_minor = MG_ABI_MINOR,
	    .size = sizeof(struct mg_plugin),
	    .ptr_size = sizeof(void *),
	    .time_size = sizeof(time_t),
	    .long_size = sizeof(long),
	    .build_signature = MG_BUILD_SIGNATURE,
	    .name = name,
	    .version = "stub",
	    .description = "a stub of the mock core",
	};
	int rc = new_plugin(m, name, NULL, &d, NULL, err, sizeof(err));
	if (rc) {
		for (size_t i = 0; i < n; i++)
			free(copy[i]);
		free(copy);
		return rc;
	}
	struct mplugin *p = m->plugins[m->nplugins - 1];
	p->stub = d;
	p->stub.name = p->name;
	p->stub_owns = copy;
	p->stub.owns = (const char *const *)copy;
	p->desc = &p->stub;
	return 0;
}

/* ---- dependency order (host.c, as in the core) ---- */

/* Orders every plugin (running ones included, as providers) and marks the
 * ones the graph refuses: they are not started by this mg_mock_start,
 * the others are, as in the core. 0, or the first refusal in err. */
static int sort_plugins(struct mg_mock *m, int *refused, char *err, size_t errlen)
{
	size_t n = m->nplugins;
	struct host_node *nodes = calloc(n + 1, sizeof(*nodes));
	if (!nodes) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		nodes[i] = (struct host_node){m->plugins[i]->name, m->plugins[i]->desc, 0, ""};
	char cycle[512];
	int rc = host_sort(nodes, n, (void **)m->plugins, cycle, sizeof(cycle));
	for (size_t i = 0; rc != -ENOMEM && i < n; i++) {
		refused[i] = nodes[i].refused;
		if (refused[i]) {
			mock_log(m, MG_LOG_ERROR, "mock", "refused %s: %s", m->plugins[i]->who,
			         nodes[i].why);
			if (!rc) {
				snprintf(err, errlen, "%s: %s", m->plugins[i]->who, nodes[i].why);
				rc = -ENOENT;
			}
		}
	}
	if (rc == -ELOOP || rc == -ENOMEM)
		snprintf(err, errlen, "%s", cycle);
	free(nodes);
	return rc;
}

/* ---- lifecycle ---- */

static int call(struct mplugin *p, int (*fn)(mg_ctx *))
{
	if (!fn)
		return 0;
	enter(p->mock);
	p->busy++;
	int rc = fn(&p->ctx);
	p->busy--;
	leave(p->mock);
	return rc;
}

static void drop_registrations(struct mplugin *p)
{
	host_registrations_clear(&p->regs);
	free(p->timers);
	free(p->watches);
	p->timers = NULL;
	p->watches = NULL;
	p->ntimers = p->nwatches = 0;
	while (p->txns) {
		struct mtxn *t = p->txns;
		mock_log(p->mock, MG_LOG_ERROR, p->name, "left a %s transaction open: aborted",
		         t->write ? "write" : "read");
		op_txn_abort((mg_txn *)t);
	}
	p->active = 0;
}

static void stop_plugin(struct mplugin *p)
{
	if (p->status != MOCK_INIT && p->status != MOCK_RUNNING)
		return;
	set_posts_open(p, 0); /* what was posted before runs before stop */
	mg_mock_run_posts(p->mock);
	if (p->desc->stop) {
		enter(p->mock);
		p->busy++;
		p->desc->stop(&p->ctx);
		p->busy--;
		leave(p->mock);
	}
	drop_registrations(p);
	state_release(p->mock->state, p->name);
	p->status = MOCK_STOPPED;
	p->ready = 0;
	p->ready_after_posts = 0;
}

static int claim(struct mg_mock *m, struct mplugin *p, char *err, size_t errlen)
{
	for (const char *const *db = p->desc->owns; db && *db; db++) {
		int rc = state_claim(m->state, *db, p->name);
		if (rc) {
			snprintf(err, errlen, "%s cannot own state database '%s': %s", p->name, *db,
			         rc == -EEXIST ? "another plugin owns it" : strerror(-rc));
			state_release(m->state, p->name);
			return rc;
		}
	}
	return 0;
}

static int init_one(struct mg_mock *m, struct mplugin *p, char *err, size_t errlen)
{
	int rc = claim(m, p, err, errlen);
	if (rc)
		return rc;
	p->active = 1;
	set_posts_open(p, 1);
	if ((rc = call(p, p->desc->init))) {
		set_posts_open(p, 0);
		snprintf(err, errlen, "init of %s failed: %s", p->name,
		         strerror(rc < 0 ? -rc : rc));
		drop_registrations(p);
		state_release(m->state, p->name);
		p->status = MOCK_STOPPED;
		return rc;
	}
	p->status = MOCK_INIT;
	return 0;
}

int mg_mock_start(struct mg_mock *m, char *err, size_t errlen)
{
	int *refused = calloc(m->nplugins + 1, sizeof(*refused));
	if (!refused) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int refusal = sort_plugins(m, refused, err, errlen), rc = 0;
	if (refusal == -ENOMEM) {
		free(refused);
		return refusal;
	}
	for (size_t i = 0; i < m->nplugins; i++)
		m->plugins[i]->starting = !refused[i] && (m->plugins[i]->status == MOCK_LOADED ||
		                                          m->plugins[i]->status == MOCK_STOPPED);
	free(refused);
	for (size_t i = 0; !rc && i < m->nplugins; i++)
		if (m->plugins[i]->starting)
			rc = init_one(m, m->plugins[i], err, errlen);
	for (size_t i = 0; !rc && i < m->nplugins; i++) {
		struct mplugin *p = m->plugins[i];
		if (!p->starting)
			continue;
		if ((rc = call(p, p->desc->start)))
			snprintf(err, errlen, "start of %s failed: %s", p->name,
			         strerror(rc < 0 ? -rc : rc));
		else {
			p->status = MOCK_RUNNING;
			/* if it has not said so itself (mg_ready): now, or once
			 * what it posted to itself has run */
			if (!p->ready && has_posts(p))
				p->ready_after_posts = 1;
			else
				p->ready = 1;
		}
	}
	for (size_t i = m->nplugins; i-- > 0;) {
		if (rc && m->plugins[i]->starting)
			stop_plugin(m->plugins[i]);
		m->plugins[i]->starting = 0;
	}
	if (rc)
		mock_log(m, MG_LOG_ERROR, "mock", "%s", err);
	return rc ? rc : refusal;
}

int mg_mock_reload(struct mg_mock *m, const char *name, json_t *config, char *err, size_t errlen)
{
	struct mplugin *p = find_plugin(m, name);
	if (!p || p->status != MOCK_RUNNING) {
		snprintf(err, errlen, "no running plugin '%s'", name ? name : "(null)");
		return -ENOENT;
	}
	json_t *next = make_config(p, config, err, errlen);
	if (!next)
		return -EINVAL;
	json_t *old = p->config;
	p->config = next;
	int rc = call(p, p->desc->reload);
	if (rc) { /* refused: it keeps the old config, as in the core */
		json_decref(p->config);
		p->config = old;
		snprintf(err, errlen, "%s refused the new config: %s", p->name,
		         strerror(rc < 0 ? -rc : rc));
	} else {
		json_decref(old);
	}
	return rc;
}

void mg_mock_stop(struct mg_mock *m)
{
	for (size_t i = m->nplugins; i-- > 0;)
		stop_plugin(m->plugins[i]);
}

/* ---- time and fds ---- */

uint64_t mg_mock_now(struct mg_mock *m)
{
	return m->now;
}

/* The timer due first (then the oldest) no later than `until`. */
static struct mplugin *next_due(struct mg_mock *m, uint64_t until, size_t *idx)
{
	struct mplugin *best = NULL;
	for (size_t i = 0; i < m->nplugins; i++) {
		struct mplugin *p = m->plugins[i];
		for (size_t j = 0; active(p) && j < p->ntimers; j++) {
			struct host_timer *t = &p->timers[j];
			if (t->due > until)
				continue;
			if (best &&
			    (t->due > best->timers[*idx].due ||
			     (t->due == best->timers[*idx].due && t->id > best->timers[*idx].id)))
				continue;
			best = p;
			*idx = j;
		}
	}
	return best;
}

void mg_mock_advance(struct mg_mock *m, uint64_t ms)
{
	uint64_t until = m->now + ms;
	struct mplugin *p;
	size_t idx;

	enter(m);
	while ((p = next_due(m, until, &idx))) {
		struct host_timer t = p->timers[idx];
		if (t.due > m->now)
			m->now = t.due;
		if (t.repeat) /* a zero interval would fire forever at one instant */
			p->timers[idx].due += t.interval ? t.interval : 1;
		else
			p->timers[idx] = p->timers[--p->ntimers];
		p->busy++;
		t.fn(&p->ctx, t.arg);
		p->busy--;
		if (m->depth == 1)
			drain(m); /* each timer's events before the next timer */
	}
	m->now = until;
	leave(m);
}

static struct mplugin *watcher(struct mg_mock *m, int fd, struct mwatch *out)
{
	for (size_t i = 0; i < m->nplugins; i++) {
		struct mplugin *p = m->plugins[i];
		for (size_t j = 0; active(p) && j < p->nwatches; j++)
			if (p->watches[j].fd == fd) {
				*out = p->watches[j];
				return p;
			}
	}
	return NULL;
}

int mg_mock_fd_events(struct mg_mock *m, int fd)
{
	struct mwatch w;
	return watcher(m, fd, &w) ? w.events : -ENOENT;
}

int mg_mock_fire_fd(struct mg_mock *m, int fd, int events)
{
	struct mwatch w;
	struct mplugin *p = watcher(m, fd, &w);
	if (!p)
		return -ENOENT;
	enter(m);
	p->busy++;
	w.fn(&p->ctx, fd, events, w.arg);
	p->busy--;
	leave(m);
	return 0;
}

/* ---- state shortcuts ---- */

/* One put (value) or delete (NULL) in a transaction of its own, begun
 * and announced as the core would. */
static int write_one(struct mg_mock *m, struct mg_txn *txn, const char *db, const char *key,
                     json_t *value)
{
	enter(m);
	json_t *copy = value ? json_deep_copy(value) : NULL; /* put stamps "v" into it */
	int rc = !value ? state_del(txn, db, key) : copy ? state_put(txn, db, key, copy) : -ENOMEM;
	json_decref(copy);
	if (rc)
		state_abort(txn);
	else
		rc = state_commit(txn);
	leave(m);
	return rc;
}

int mg_mock_state_put(struct mg_mock *m, const char *owner, const char *db, const char *key,
                      json_t *value)
{
	struct mg_txn *txn;
	if (m->writer)
		return -EDEADLK;
	if (!value)
		return -EINVAL;
	int rc = state_begin(m->state, owner, 0, &txn);
	return rc ? rc : write_one(m, txn, db, key, value);
}

int mg_mock_state_remote(struct mg_mock *m, const char *db, const char *key, json_t *value)
{
	struct mg_txn *txn;
	if (m->writer)
		return -EDEADLK;
	int rc = state_create_db(m->state, db);
	if (!rc)
		rc = state_begin_mirror(m->state, &txn);
	return rc ? rc : write_one(m, txn, db, key, value);
}

void mg_mock_fail_commits(struct mg_mock *m, int rc, int n)
{
	m->fail_rc = rc;
	m->fail_n = n;
}

void mg_mock_on_failed_commit(struct mg_mock *m, void (*fn)(struct mg_mock *mock, void *arg),
                              void *arg)
{
	m->on_failed_commit = fn;
	m->on_failed_commit_arg = arg;
}

void mg_mock_set_node_name(struct mg_mock *m, const char *name)
{
	snprintf(m->node_name, sizeof(m->node_name), "%s", name);
	m->in_cluster = 1;
}

int mg_mock_state_get(struct mg_mock *m, const char *db, const char *key, json_t **value)
{
	struct mg_txn *txn;
	*value = NULL;
	int rc = state_begin(m->state, NULL, 1, &txn);
	if (rc)
		return rc;
	rc = state_get(txn, db, key, value);
	state_abort(txn);
	return rc;
}

static int count_one(const char *key, json_t *value, void *arg)
{
	(void)key;
	(void)value;
	++*(long *)arg;
	return 0;
}

long mg_mock_state_count(struct mg_mock *m, const char *db, const char *prefix)
{
	struct mg_txn *txn;
	long n = 0;
	int rc = state_begin(m->state, NULL, 1, &txn);
	if (rc)
		return rc;
	rc = state_foreach(txn, db, prefix, count_one, &n);
	state_abort(txn);
	return rc ? rc : n;
}

json_t *mg_mock_registrations(struct mg_mock *m, const char *name)
{
	static const char *const status[] = {"loaded", "initialised", "running", "stopped"};
	struct mplugin *p = find_plugin(m, name);
	if (!p)
		return NULL;
	json_t *services = json_array(), *subs = json_array(), *fds = json_array(),
	       *owns = json_array();
	for (size_t i = 0; i < p->regs.services.n; i++)
		json_array_append_new(services, json_string(p->regs.services.entries[i].name));
	for (size_t i = 0; i < p->regs.subscriptions.n; i++)
		json_array_append_new(subs, json_string(p->regs.subscriptions.entries[i].name));
	for (size_t i = 0; i < p->nwatches; i++)
		json_array_append_new(fds, json_integer(p->watches[i].fd));
	for (const char *const *db = p->desc->owns; active(p) && db && *db; db++)
		json_array_append_new(owns, json_string(*db));
	return json_pack("{s:s, s:o, s:o, s:I, s:o, s:o}", "status", status[p->status], "services",
	                 services, "subscriptions", subs, "timers", (json_int_t)p->ntimers, "fds",
	                 fds, "owns", owns);
}

int mg_mock_ready(struct mg_mock *m, const char *name)
{
	struct mplugin *p = find_plugin(m, name);
	return p ? p->ready : -ENOENT;
}

/* ---- the mock itself ---- */

static uint64_t real_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct mg_mock *mg_mock_new(const char *state_dir, char *err, size_t errlen)
{
	struct mg_mock *m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	m->level = env_level();
	m->now = real_now_ms();
	snprintf(m->node_name, sizeof(m->node_name), "mock");
	pthread_mutex_init(&m->posts_lock, NULL);
	pthread_mutex_init(&m->limiter.lock, NULL);
	m->posts_tail = &m->posts;
	m->events = json_array();
	if (state_dir) {
		m->state_dir = strdup(state_dir);
	} else {
		const char *tmp = getenv("TMPDIR");
		if (asprintf(&m->state_dir, "%s/mg_mock.XXXXXX", tmp && tmp[0] ? tmp : "/tmp") < 0)
			m->state_dir = NULL;
		else if (!mkdtemp(m->state_dir)) {
			snprintf(err, errlen, "cannot create a temporary state dir: %s",
			         strerror(errno));
			goto fail;
		}
		m->temp_dir = 1;
	}
	if (!m->state_dir) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (!(m->state = state_open(m->state_dir, MOCK_MAP_SIZE, err, errlen)))
		goto fail;
	state_on_commit(m->state, on_commit, m);
	return m;
fail:
	pthread_mutex_destroy(&m->posts_lock);
	pthread_mutex_destroy(&m->limiter.lock);
	if (m->temp_dir && m->state_dir)
		rmdir(m->state_dir);
	free(m->state_dir);
	json_decref(m->events);
	free(m);
	return NULL;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void mg_mock_free(struct mg_mock *m)
{
	if (!m)
		return;
	mg_mock_stop(m);
	log_limit_flush(&m->limiter, limiter_write, m);
	pthread_mutex_destroy(&m->limiter.lock);
	for (size_t i = 0; i < m->nplugins; i++) {
		free_plugin(m->plugins[i]);
	}
	free(m->plugins);
	state_close(m->state);
	if (m->temp_dir)
		nftw(m->state_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	for (size_t i = m->qhead; i < m->qlen; i++) {
		free(m->queue[i].topic);
		json_decref(m->queue[i].payload);
	}
	free(m->queue);
	for (struct mpost *next; m->posts; m->posts = next) { /* of failed inits */
		next = m->posts->next;
		free(m->posts);
	}
	pthread_mutex_destroy(&m->posts_lock);
	json_decref(m->events);
	free(m->state_dir);
	free(m);
}
