/* The vault plugin: the secret service (secret.get / put / rotate /
 * status) with its keys in HashiCorp Vault's KV v2, for `secrets =
 * "vault"`. A key is made on this node, by this plugin, on first use, and
 * written to Vault with check-and-set (never over a newer version: a
 * refused write reads again and takes what is there).
 *
 * Vault is spoken to by one worker thread (vault_http.c, blocking libcurl);
 * its results come back to the plugin's thread with mg_post, where the
 * deferred requests are answered. The keys read or written since start
 * are kept in memory: they are served while Vault is unreachable, and a
 * write (a new key, a rotation) waits and is retried with backoff. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <meshgate/meshgate.h>
#include <sodium.h>

#include "secret.h"
#include "vault.h"

#define VAULT_BACKOFF_MIN_MS 500
#define VAULT_BACKOFF_MAX_MS 30000
/* How often an idle worker asks sys/health, so that `key status` tells
 * whether Vault is reachable now, not at the last key it read. */
#define VAULT_HEALTH_EVERY_MS 10000
/* The schedule's timer is re-armed at least this often, so that a long
 * schedule ("90d") never overflows a timer's interval. */
#define VAULT_SCHEDULE_RECHECK_MS (3600 * 1000)

enum job_kind { JOB_READ, JOB_WRITE };
/* What the job is for: how its result goes on. */
enum job_for { FOR_GET, FOR_CREATE, FOR_ROTATE, FOR_PUT, FOR_PROMOTE, FOR_PRUNE };

struct job {
	enum job_kind kind;
	enum job_for why;
	char name[160]; /* OWNER/NAME */
	json_t *record; /* to write; a put request's {"key", "type"} */
	long long cas;
	long long promote; /* FOR_PROMOTE: the version to put in use */
	mg_reply_token *token;
	/* the result */
	int rc;
	char err[512];
	json_t *read; /* what a read found */
	long long version;
	bool passed_on; /* its work goes on in another job (a write, a read again) */
	struct job *next;
};

struct vault {
	mg_ctx *ctx;
	struct vault_conf conf;
	uint64_t schedule_ms, grace_ms;
	char node[256];
	json_t *cache; /* plugin thread: name -> {"record", "kv_version"} */
	/* plugin thread: name -> when the schedule may start its rotation
	 * again (ms): a rotation under way (0: until it ends) or one that
	 * failed (its retry) */
	json_t *rotating;
	/* plugin thread: the same for dropping a previous version whose grace
	 * is over */
	json_t *pruning;
	int schedule_timer; /* > 0 while armed */

	/* shared with the worker, under lock */
	pthread_t worker;
	bool worker_started;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job *queue, **tail;
	bool stopping;
	bool reachable;
	uint64_t checked_ms; /* when Vault last answered or failed to */
	uint64_t token_expires_ms;
	int writes_waiting;
	char last_error[512];
};

static const char *setting(mg_ctx *ctx, const char *name)
{
	return json_string_value(json_object_get(mg_config(ctx), name));
}

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void job_free(struct job *j)
{
	json_decref(j->record);
	json_decref(j->read);
	free(j);
}

/* ---- the worker thread: Vault's side ---- */

struct worker {
	struct vault *v;
	struct vault_client client;
};

/* Sleeps up to ms unless the plugin stops; true when it stops. */
static bool nap(struct vault *v, unsigned ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&v->lock);
	while (!v->stopping && pthread_cond_timedwait(&v->wake, &v->lock, &until) == 0)
		;
	bool stopping = v->stopping;
	pthread_mutex_unlock(&v->lock);
	return stopping;
}

static void note(struct worker *w, int rc, const char *err)
{
	struct vault *v = w->v;
	pthread_mutex_lock(&v->lock);
	v->reachable = w->client.reachable;
	v->checked_ms = wall_ms();
	v->token_expires_ms = w->client.token_expires_ms;
	if (rc)
		snprintf(v->last_error, sizeof(v->last_error), "%s", err);
	else
		v->last_error[0] = '\0';
	pthread_mutex_unlock(&v->lock);
}

/* One KV call with a token; a token refused (expired, revoked) logs in
 * again and the call is made once more. */
static int with_token(struct worker *w, struct job *j)
{
	int rc = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (attempt)
			rc = vault_login(&w->client, wall_ms(), j->err, sizeof(j->err));
		else
			rc = vault_ensure_token(&w->client, wall_ms(), j->err, sizeof(j->err));
		if (rc)
			break;
		if (j->kind == JOB_READ)
			rc = vault_kv_read(&w->client, j->name, &j->read, &j->version, j->err,
			                   sizeof(j->err));
		else
			rc = vault_kv_write(&w->client, j->name, j->record, j->cas, &j->version,
			                    j->err, sizeof(j->err));
		if (rc != -EACCES)
			break;
	}
	return rc;
}

static void job_done(mg_ctx *ctx, void *arg);

static void run_job(struct worker *w, struct job *j)
{
	struct vault *v = w->v;
	unsigned backoff = VAULT_BACKOFF_MIN_MS;
	bool waiting = false;
	char key[200];
	/* the node's keys under PATH/NODE/ */
	snprintf(key, sizeof(key), "%s/%s", v->node, j->name);
	char name[160];
	snprintf(name, sizeof(name), "%s", j->name);
	snprintf(j->name, sizeof(j->name), "%s", key);
	for (;;) {
		j->rc = with_token(w, j);
		note(w, j->rc && j->rc != -ENOENT && j->rc != -ESTALE, j->err);
		bool retry = j->kind == JOB_WRITE && (j->rc == -EHOSTUNREACH || j->rc == -EIO ||
		                                      j->rc == -EACCES || j->rc == -EPERM);
		if (!retry)
			break;
		/* a write waits for Vault: the key it holds is not lost */
		if (!waiting) {
			waiting = true;
			pthread_mutex_lock(&v->lock);
			v->writes_waiting++;
			pthread_mutex_unlock(&v->lock);
		}
		if (nap(v, backoff))
			break;
		backoff = backoff * 2 > VAULT_BACKOFF_MAX_MS ? VAULT_BACKOFF_MAX_MS : backoff * 2;
	}
	if (waiting) {
		pthread_mutex_lock(&v->lock);
		v->writes_waiting--;
		pthread_mutex_unlock(&v->lock);
	}
	snprintf(j->name, sizeof(j->name), "%s", name);
	if (mg_post(v->ctx, job_done, j))
		job_free(j); /* the plugin is stopping: nobody waits for it */
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct vault *v = w->v;
	pthread_mutex_lock(&v->lock);
	while (!v->stopping) {
		struct job *j = v->queue;
		if (j) {
			v->queue = j->next;
			if (!v->queue)
				v->tail = &v->queue;
			pthread_mutex_unlock(&v->lock);
			run_job(w, j);
			pthread_mutex_lock(&v->lock);
			continue;
		}
		/* idle: renew the token before it expires; ask sys/health now and then */
		uint64_t now = wall_ms(), renew = w->client.token_renew_ms;
		uint64_t health = v->checked_ms + VAULT_HEALTH_EVERY_MS;
		if ((renew && now >= renew) || now >= health) {
			char err[512];
			pthread_mutex_unlock(&v->lock);
			int rc = renew && now >= renew
			             ? vault_ensure_token(&w->client, now, err, sizeof(err))
			             : vault_health(&w->client, err, sizeof(err));
			note(w, rc, err);
			pthread_mutex_lock(&v->lock);
			continue;
		}
		uint64_t wake = renew && renew < health ? renew : health;
		struct timespec until = {(time_t)(wake / 1000), (long)(wake % 1000) * 1000000};
		pthread_cond_timedwait(&v->wake, &v->lock, &until);
	}
	pthread_mutex_unlock(&v->lock);
	vault_client_free(&w->client);
	free(w);
	return NULL;
}

static void submit(struct vault *v, struct job *j)
{
	pthread_mutex_lock(&v->lock);
	j->next = NULL;
	*v->tail = j;
	v->tail = &j->next;
	pthread_cond_signal(&v->wake);
	pthread_mutex_unlock(&v->lock);
}

static struct job *job_new(enum job_kind kind, enum job_for why, const char *name,
                           mg_reply_token *token)
{
	struct job *j = calloc(1, sizeof(*j));
	if (j) {
		j->kind = kind;
		j->why = why;
		j->token = token;
		snprintf(j->name, sizeof(j->name), "%s", name ? name : "");
	}
	return j;
}

/* ---- the plugin's thread: the services ---- */

static json_t *cached(struct vault *v, const char *name)
{
	return json_object_get(json_object_get(v->cache, name), "record");
}

static void schedule_arm(struct vault *v);

static void cache_put(struct vault *v, const char *name, json_t *record, long long version)
{
	json_object_set_new(
	    v->cache, name,
	    json_pack("{s:O, s:I}", "record", record, "kv_version", (json_int_t)version));
	schedule_arm(v); /* a key made, rotated or switched moves its next rotation */
}

static json_t *with_backend(json_t *reply)
{
	json_object_set_new(reply, "backend", json_string("vault"));
	return reply;
}

static void answer(mg_ctx *ctx, struct job *j, json_t *reply)
{
	if (j->token)
		mg_reply(ctx, j->token, reply);
	else
		json_decref(reply);
	j->token = NULL;
}

static void write_record(struct vault *v, struct job *from, enum job_for why, json_t *record,
                         long long cas)
{
	struct job *w = job_new(JOB_WRITE, why, from->name, from->token);
	if (!w) {
		answer(v->ctx, from, mg_error("internal", "out of memory"));
		json_decref(record);
		return;
	}
	from->token = NULL;
	from->passed_on = true;
	w->record = record;
	w->cas = cas;
	w->promote = from->promote;
	submit(v, w);
}

static void read_again(struct vault *v, struct job *from)
{
	struct job *r = job_new(JOB_READ, from->why == FOR_CREATE ? FOR_GET : from->why, from->name,
	                        from->token);
	if (!r) {
		answer(v->ctx, from, mg_error("internal", "out of memory"));
		return;
	}
	from->token = NULL;
	from->passed_on = true;
	r->promote = from->promote;
	submit(v, r);
}

/* secret.promote on the record read: written over the version read
 * (check-and-set), or answered at once when nothing changes. */
static void promote_read(struct vault *v, struct job *j, json_t *record, long long kv_version)
{
	mg_ctx *ctx = v->ctx;
	int promoted = record
	                   ? secret_record_promote(record, j->promote, mg_now_ms(ctx), v->grace_ms)
	                   : -ENOENT;
	if (promoted == 1) {
		write_record(v, j, FOR_PROMOTE, record, kv_version);
		return;
	}
	if (promoted == 0) {
		json_t *reply = secret_record_public(record);
		json_object_set_new(reply, "promoted", json_false());
		answer(ctx, j, with_backend(reply));
	} else if (promoted == -ESTALE) {
		answer(ctx, j,
		       mg_error("conflict", "%s is at version %lld with %s: not %lld", j->name,
		                json_integer_value(json_object_get(record, "version")),
		                json_object_get(record, "next") ? "a next one" : "no next one",
		                j->promote));
	} else {
		answer(ctx, j,
		       promoted == -ENOENT ? mg_error("not_found", "no secret named %s", j->name)
		                           : mg_error("internal", "out of memory"));
	}
	json_decref(record);
}

static void read_done(struct vault *v, struct job *j)
{
	mg_ctx *ctx = v->ctx;
	json_t *loaded = json_object_get(v->cache, j->name);
	if (j->rc && j->rc != -ENOENT && (j->why == FOR_ROTATE || j->why == FOR_PROMOTE) &&
	    loaded) {
		/* Vault does not answer: change the version loaded, the write
		 * waits for Vault (and is refused if a newer one got there) */
		j->rc = 0;
		json_decref(j->read);
		j->read = json_incref(json_object_get(loaded, "record"));
		j->version = json_integer_value(json_object_get(loaded, "kv_version"));
	} else if (j->rc && j->rc != -ENOENT) {
		answer(ctx, j, mg_error("unavailable", "%s: %s", j->name, j->err));
		return;
	}
	if (!j->rc)
		cache_put(v, j->name, j->read, j->version);
	json_t *record = j->rc ? NULL : json_deep_copy(j->read);
	long long kv_version = j->rc ? 0 : j->version;
	int made;
	switch (j->why) {
	case FOR_GET:
	case FOR_CREATE:
		if (record) {
			answer(ctx, j, with_backend(record));
		} else if (j->cas) { /* create: false */
			answer(ctx, j, mg_error("not_found", "no secret named %s", j->name));
		} else {
			record = secret_record_new(j->name, mg_now_ms(ctx));
			write_record(v, j, FOR_CREATE, record, 0);
		}
		return;
	case FOR_ROTATE:
		if (!record) {
			answer(ctx, j, mg_error("not_found", "no secret named %s", j->name));
		} else if ((made = secret_record_rotate(record, mg_now_ms(ctx))) == 1) {
			write_record(v, j, FOR_ROTATE, record, kv_version);
		} else if (made == -EMEDIUMTYPE) {
			answer(
			    ctx, j,
			    mg_error("invalid",
			             "%s is not a WireGuard key: the service does not rotate it, "
			             "its owner replaces it (secret.put)",
			             j->name));
			json_decref(record);
		} else {
			json_t *reply = secret_record_public(record);
			json_object_set_new(reply, "made", json_false());
			answer(ctx, j, with_backend(reply));
			json_decref(record);
		}
		return;
	case FOR_PUT: {
		long long current = json_integer_value(json_object_get(record, "version"));
		if (current != j->cas) {
			answer(ctx, j,
			       mg_error("conflict",
			                "%s is at version %lld, not %lld: read it again", j->name,
			                current, j->cas));
			json_decref(record);
			return;
		}
		json_t *next = secret_record_put(
		    j->name, record, json_string_value(json_object_get(j->record, "key")),
		    json_string_value(json_object_get(j->record, "type")), mg_now_ms(ctx),
		    v->grace_ms);
		json_decref(record);
		write_record(v, j, FOR_PUT, next, kv_version);
		return;
	}
	case FOR_PROMOTE:
		promote_read(v, j, record, kv_version);
		return;
	case FOR_PRUNE: {
		json_t *previous = json_object_get(record, "previous");
		uint64_t until =
		    (uint64_t)json_integer_value(json_object_get(previous, "until_ms"));
		if (previous && until <= mg_now_ms(ctx)) {
			json_object_del(record, "previous");
			write_record(v, j, FOR_PRUNE, record, kv_version);
		} else {
			json_decref(record);
		}
		return;
	}
	}
}

static void write_done(struct vault *v, struct job *j)
{
	mg_ctx *ctx = v->ctx;
	if (j->rc == -ESTALE && j->why == FOR_PUT) {
		answer(
		    ctx, j,
		    mg_error("conflict", "%s changed in Vault meanwhile: read it again", j->name));
		return;
	}
	if (j->rc == -ESTALE) {
		/* another writer was first: its version stands, ours is dropped */
		mg_warn(ctx, "%s: Vault has a newer version (%s): read again, not overwritten",
		        j->name, j->err);
		read_again(v, j);
		return;
	}
	if (j->rc) {
		answer(ctx, j, mg_error("unavailable", "%s: %s", j->name, j->err));
		return;
	}
	cache_put(v, j->name, j->record, j->version);
	json_t *reply;
	if (j->why == FOR_PROMOTE) {
		mg_info(ctx,
		        "%s: version %lld in use (stored in Vault), the previous one kept for "
		        "the grace period",
		        j->name, j->promote);
		reply = secret_record_public(j->record);
		json_object_set_new(reply, "promoted", json_true());
		secret_publish(ctx, SECRET_EVENT_PROMOTED, j->name, j->promote);
	} else if (j->why == FOR_PRUNE) {
		mg_info(ctx, "%s: the previous version is gone from Vault (its grace is over)",
		        j->name);
		reply = secret_record_public(j->record);
	} else if (j->why == FOR_CREATE) {
		mg_info(ctx, "%s: made a new key (version 1, stored in Vault)", j->name);
		reply = json_deep_copy(j->record);
		json_object_set_new(reply, "created", json_true());
	} else {
		reply = secret_record_public(j->record);
		json_int_t made = json_integer_value(json_object_get(
		    j->why == FOR_ROTATE ? json_object_get(j->record, "next") : j->record,
		    "version"));
		mg_info(ctx, "%s: stored version %lld in Vault%s", j->name, (long long)made,
		        j->why == FOR_ROTATE ? " (next, not in use yet)" : "");
		if (j->why == FOR_ROTATE) {
			json_object_set_new(reply, "made", json_true());
			secret_publish(ctx, SECRET_EVENT_NEXT, j->name, (long long)made);
		}
	}
	answer(ctx, j, with_backend(reply));
}

static void scheduled_job_ended(struct vault *v, struct job *j);

static void job_done(mg_ctx *ctx, void *arg)
{
	struct vault *v = ctx->self;
	struct job *j = arg;
	if (j->kind == JOB_READ)
		read_done(v, j);
	else
		write_done(v, j);
	if (j->token) /* every path answers; this is the guard */
		answer(ctx, j, mg_error("internal", "%s: no answer", j->name));
	if ((j->why == FOR_ROTATE || j->why == FOR_PRUNE) && !j->passed_on)
		scheduled_job_ended(v, j);
	job_free(j);
}

/* ---- the schedule: every key the node uses rotated `schedule` after it
 * was made ---- */

/* When a key falls due: made + schedule, or a failed rotation's retry. A
 * key whose next version waits for its owner's switch, or whose rotation
 * is under way, is not due (the switch promotes the next version, with its
 * own creation time). 0: not due. */
static uint64_t rotation_due(struct vault *v, const char *name)
{
	json_t *record = cached(v, name), *rotating = json_object_get(v->rotating, name);
	if (!v->schedule_ms || !record || json_object_get(record, "next") ||
	    !secret_record_rotates(record))
		return 0;
	if (rotating)
		return (uint64_t)json_integer_value(rotating); /* 0 while under way */
	return (uint64_t)json_integer_value(json_object_get(record, "created_ms")) + v->schedule_ms;
}

/* When the previous version of a key goes: once its grace is over (or a
 * failed prune's retry). 0: none, or its prune is under way. */
static uint64_t prune_due(struct vault *v, const char *name)
{
	json_t *previous = json_object_get(cached(v, name), "previous");
	json_t *pruning = json_object_get(v->pruning, name);
	if (!previous)
		return 0;
	if (pruning)
		return (uint64_t)json_integer_value(pruning);
	json_int_t until = json_integer_value(json_object_get(previous, "until_ms"));
	return until > 0 ? (uint64_t)until : 1;
}

static void schedule_fire(mg_ctx *ctx, void *arg);

/* One timer, for the earliest key due (a rotation, or a previous version
 * to drop): re-armed whenever a key changes. */
static void schedule_arm(struct vault *v)
{
	uint64_t earliest = UINT64_MAX, now = mg_now_ms(v->ctx);
	const char *name;
	json_t *entry;
	if (v->schedule_timer > 0)
		mg_timer_del(v->ctx, v->schedule_timer);
	v->schedule_timer = 0;
	json_object_foreach(v->cache, name, entry)
	{
		uint64_t due = rotation_due(v, name), prune = prune_due(v, name);
		if (due && due < earliest)
			earliest = due;
		if (prune && prune < earliest)
			earliest = prune;
	}
	if (earliest == UINT64_MAX)
		return;
	uint64_t wait = earliest > now ? earliest - now : 0;
	v->schedule_timer = mg_timer_add(
	    v->ctx, (unsigned)(wait < VAULT_SCHEDULE_RECHECK_MS ? wait : VAULT_SCHEDULE_RECHECK_MS),
	    0, schedule_fire, NULL);
}

/* The same job secret.rotate starts, with nobody waiting for its answer:
 * Vault unreachable, its write waits and is retried with backoff. */
static void schedule_fire(mg_ctx *ctx, void *arg)
{
	struct vault *v = ctx->self;
	uint64_t now = mg_now_ms(ctx);
	const char *name;
	json_t *entry;
	(void)arg;
	v->schedule_timer = 0; /* it fired: a one-shot timer is gone */
	json_object_foreach(v->cache, name, entry)
	{
		uint64_t due = rotation_due(v, name), prune = prune_due(v, name);
		struct job *j =
		    due && due <= now ? job_new(JOB_READ, FOR_ROTATE, name, NULL) : NULL;
		if (j) {
			json_object_set_new(v->rotating, name, json_integer(0));
			mg_info(ctx, "%s: rotation due (schedule %s)", name,
			        setting(ctx, "schedule"));
			submit(v, j);
		}
		j = prune && prune <= now ? job_new(JOB_READ, FOR_PRUNE, name, NULL) : NULL;
		if (j) {
			json_object_set_new(v->pruning, name, json_integer(0));
			submit(v, j);
		}
	}
	schedule_arm(v);
}

/* A rotation (asked for or scheduled) or a prune is over: done, or failed
 * (the schedule tries again after VAULT_BACKOFF_MAX_MS). */
static void scheduled_job_ended(struct vault *v, struct job *j)
{
	json_t *busy = j->why == FOR_ROTATE ? v->rotating : v->pruning;
	bool failed = j->rc && j->rc != -ENOENT;
	if (failed && json_object_get(busy, j->name))
		json_object_set_new(
		    busy, j->name,
		    json_integer((json_int_t)(mg_now_ms(v->ctx) + VAULT_BACKOFF_MAX_MS)));
	else
		json_object_del(busy, j->name);
	schedule_arm(v);
}

/* The name of a request, checked; NULL with *bad set. */
static const char *request_name(mg_ctx *ctx, json_t *req, const struct mg_field *fields,
                                json_t **bad)
{
	char err[256];
	*bad = mg_request_check(ctx, req, fields);
	if (*bad)
		return NULL;
	const char *name = json_string_value(json_object_get(req, "name"));
	if (secret_name_check(name, err, sizeof(err))) {
		*bad = mg_field_error("name", "%s", err);
		return NULL;
	}
	return name;
}

static json_t *defer_job(mg_ctx *ctx, enum job_kind kind, enum job_for why, const char *name,
                         json_t *record, long long cas)
{
	struct job *j = job_new(kind, why, name, NULL);
	if (!j)
		return mg_error("internal", "out of memory");
	j->record = record;
	j->cas = cas;
	j->token = mg_defer(ctx);
	submit(ctx->self, j);
	return NULL;
}

static json_t *secret_get(mg_ctx *ctx, const char *service, json_t *req, void *arg)
{
	struct vault *v = ctx->self;
	json_t *bad;
	(void)service, (void)arg;
	const char *name = request_name(ctx, req, secret_get_fields, &bad);
	if (!name)
		return bad;
	json_t *record = cached(v, name);
	if (record) /* loaded: served whether Vault answers now or not */
		return with_backend(json_deep_copy(record));
	json_t *create = json_object_get(req, "create");
	/* cas carries "create: false" to the read's result */
	return defer_job(ctx, JOB_READ, FOR_GET, name, NULL, create && !json_is_true(create));
}

static json_t *secret_rotate(mg_ctx *ctx, const char *service, json_t *req, void *arg)
{
	json_t *bad;
	(void)service, (void)arg;
	const char *name = request_name(ctx, req, secret_rotate_fields, &bad);
	return name ? defer_job(ctx, JOB_READ, FOR_ROTATE, name, NULL, 0) : bad;
}

/* The owner of the key switched to its next version: Vault's record is
 * rewritten with check-and-set over the version read (a refused write
 * reads again: promoting what is in use already answers ok). */
static json_t *secret_promote(mg_ctx *ctx, const char *service, json_t *req, void *arg)
{
	json_t *bad;
	(void)service, (void)arg;
	const char *name = request_name(ctx, req, secret_promote_fields, &bad);
	if (!name)
		return bad;
	struct job *j = job_new(JOB_READ, FOR_PROMOTE, name, NULL);
	if (!j)
		return mg_error("internal", "out of memory");
	j->promote = json_integer_value(json_object_get(req, "version"));
	j->token = mg_defer(ctx);
	submit(ctx->self, j);
	return NULL;
}

static json_t *secret_put(mg_ctx *ctx, const char *service, json_t *req, void *arg)
{
	json_t *bad;
	char err[256];
	(void)service, (void)arg;
	const char *name = request_name(ctx, req, secret_put_fields, &bad);
	if (!name)
		return bad;
	if (secret_put_check(req, err, sizeof(err)))
		return mg_field_error(strncmp(err, "type", 4) ? "key" : "type", "%s", err);
	const char *type = json_string_value(json_object_get(req, "type"));
	/* the job's record: the new key and its type, until the read's result */
	return defer_job(ctx, JOB_READ, FOR_PUT, name,
	                 json_pack("{s:O, s:s}", "key", json_object_get(req, "key"), "type",
	                           type ? type : SECRET_TYPE_OPAQUE),
	                 json_integer_value(json_object_get(req, "cas")));
}

/* Answered at once from what the worker last saw (it asks sys/health
 * every VAULT_HEALTH_EVERY_MS when idle): never waits behind a write. */
static json_t *secret_status(mg_ctx *ctx, const char *service, json_t *req, void *arg)
{
	struct vault *v = ctx->self;
	json_t *keys = json_array();
	const char *name;
	json_t *entry;
	(void)service, (void)req, (void)arg;
	json_object_foreach(v->cache, name, entry)
	{
		json_t *pub = secret_record_public(json_object_get(entry, "record"));
		json_object_set_new(pub, "name", json_string(name));
		uint64_t due = rotation_due(v, name);
		if (due)
			json_object_set_new(pub, "next_rotation_ms", json_integer((json_int_t)due));
		if (json_object_get(v->rotating, name))
			json_object_set_new(pub, "rotating", json_true());
		json_array_append_new(keys, pub);
	}
	pthread_mutex_lock(&v->lock);
	uint64_t expires = v->token_expires_ms, now = wall_ms();
	json_t *vault = json_pack(
	    "{s:s, s:b, s:I, s:i, s:s, s:s}", "address", v->conf.address, "reachable", v->reachable,
	    "checked_ms", (json_int_t)v->checked_ms, "writes_waiting", v->writes_waiting, "auth",
	    v->conf.role_id[0] ? "approle" : "token", "error", v->last_error);
	pthread_mutex_unlock(&v->lock);
	if (expires)
		json_object_set_new(
		    vault, "token_ttl_s",
		    json_integer(expires > now ? (json_int_t)(expires - now) / 1000 : 0));
	return json_pack("{s:s, s:I, s:o, s:I, s:I, s:o}", "backend", "vault", "now_ms",
	                 (json_int_t)mg_now_ms(ctx), "vault", vault, "schedule_ms",
	                 (json_int_t)v->schedule_ms, "grace_ms", (json_int_t)v->grace_ms, "keys",
	                 keys);
}

/* ---- lifecycle ---- */

static int read_conf(mg_ctx *ctx, struct vault *v, char *err, size_t errlen)
{
	struct vault_conf *c = &v->conf;
	snprintf(c->address, sizeof(c->address), "%s", setting(ctx, "address"));
	snprintf(c->ca, sizeof(c->ca), "%s", setting(ctx, "ca"));
	snprintf(c->role_id, sizeof(c->role_id), "%s", setting(ctx, "role_id"));
	snprintf(c->secret_id_file, sizeof(c->secret_id_file), "%s",
	         setting(ctx, "secret_id_file"));
	snprintf(c->token_file, sizeof(c->token_file), "%s", setting(ctx, "token_file"));
	snprintf(c->mount, sizeof(c->mount), "%s", setting(ctx, "mount"));
	snprintf(c->path, sizeof(c->path), "%s", setting(ctx, "path"));
	snprintf(v->node, sizeof(v->node), "%s", mg_node_name(ctx));
	if (!!c->role_id[0] == !!c->token_file[0] || !!c->role_id[0] != !!c->secret_id_file[0]) {
		snprintf(err, errlen, "give role_id and secret_id_file (AppRole), or token_file");
		return -EINVAL;
	}
	if (!c->mount[0] || !c->path[0] || strchr(c->mount, '?') || strchr(c->path, '?')) {
		snprintf(err, errlen, "mount and path must be set (no '?')");
		return -EINVAL;
	}
	int rc = mg_duration_parse(setting(ctx, "schedule"), &v->schedule_ms, err, errlen);
	return rc ? rc : mg_duration_parse(setting(ctx, "grace"), &v->grace_ms, err, errlen);
}

static void vault_free(struct vault *v)
{
	if (v->worker_started) {
		pthread_mutex_lock(&v->lock);
		v->stopping = true;
		pthread_cond_broadcast(&v->wake);
		pthread_mutex_unlock(&v->lock);
		pthread_join(v->worker, NULL);
	}
	while (v->queue) {
		struct job *j = v->queue;
		v->queue = j->next;
		job_free(j);
	}
	pthread_mutex_destroy(&v->lock);
	pthread_cond_destroy(&v->wake);
	json_decref(v->cache);
	json_decref(v->rotating);
	json_decref(v->pruning);
	free(v);
}

static int vault_init(mg_ctx *ctx)
{
	struct vault *v = calloc(1, sizeof(*v));
	struct worker *w = calloc(1, sizeof(*w));
	char err[512];
	int rc = v && w ? 0 : -ENOMEM;
	if (v) {
		v->ctx = ctx;
		v->tail = &v->queue;
		v->cache = json_object();
		v->rotating = json_object();
		v->pruning = json_object();
		pthread_mutex_init(&v->lock, NULL);
		pthread_cond_init(&v->wake, NULL);
		ctx->self = v;
	}
	if (!rc && (rc = read_conf(ctx, v, err, sizeof(err))) == 0)
		rc = vault_client_init(&w->client, &v->conf, err, sizeof(err));
	if (rc && rc != -ENOMEM)
		mg_error_log(ctx, "vault: %s", err);
	if (!rc) {
		w->v = v;
		rc = -pthread_create(&v->worker, NULL, worker_main, w);
		v->worker_started = !rc;
	}
	if (!rc && ((rc = mg_service_add(ctx, "secret.get", secret_get, NULL)) ||
	            (rc = mg_service_add(ctx, "secret.put", secret_put, NULL)) ||
	            (rc = mg_service_add(ctx, "secret.rotate", secret_rotate, NULL)) ||
	            (rc = mg_service_add(ctx, "secret.promote", secret_promote, NULL)) ||
	            (rc = mg_service_add(ctx, "secret.status", secret_status, NULL))))
		mg_error_log(ctx, "cannot register the secret services");
	if (rc) {
		if (w && !(v && v->worker_started)) { /* else the worker frees it */
			vault_client_free(&w->client);
			free(w);
		}
		if (v)
			vault_free(v);
		ctx->self = NULL;
		return rc;
	}
	mg_info(ctx, "keys in Vault at %s, %s/%s/%s/ (%s)", v->conf.address, v->conf.mount,
	        v->conf.path, v->node, v->conf.role_id[0] ? "AppRole" : "token");
	return 0;
}

static void vault_stop(mg_ctx *ctx)
{
	if (ctx->self)
		vault_free(ctx->self);
	ctx->self = NULL;
}

static const struct mg_setting vault_settings[] = {
    {"address", MG_SETTING_STRING, "\"https://127.0.0.1:8200\"",
     "Vault's address, https://HOST:PORT (TLS always, verified against `ca`).", NULL, 0},
    {"ca", MG_SETTING_STRING, "\"\"", "PEM file of the CA that signed Vault's certificate.", NULL,
     0},
    {"role_id", MG_SETTING_STRING, "\"\"", "AppRole role_id of the node (docs/vault.md).", NULL, 0},
    {"secret_id_file", MG_SETTING_STRING, "\"\"",
     "File (mode 0600) holding the AppRole secret_id; read at each login.", NULL, 0},
    {"token_file", MG_SETTING_STRING, "\"\"",
     "Instead of AppRole: a file (mode 0600) holding a Vault token, read again when Vault "
     "refuses it.",
     NULL, 0},
    {"mount", MG_SETTING_STRING, "\"secret\"", "The KV version 2 mount of the keys.", NULL, 0},
    {"path", MG_SETTING_STRING, "\"meshgate\"",
     "Where the keys live in the mount: PATH/NODE/OWNER/NAME (e.g. meshgate/gw1/wireguard/wg0).",
     NULL, 0},
    {"schedule", MG_SETTING_STRING, "\"24h\"",
     "How often each key the node uses is rotated (a duration: \"30s\", \"10m\", \"24h\"), "
     "counted from when its version in use was made; its owner switches to the new version "
     "without losing a packet (docs/rotation.md). A rotation that cannot reach Vault waits and "
     "is retried with backoff; `meshgatectl key status` shows the next rotation.",
     NULL, 0},
    {"grace", MG_SETTING_STRING, "\"10m\"",
     "How long a key's previous version stays valid once a new one replaced it.", NULL, 0},
    {0},
};

static const char *const vault_provides[] = {"secrets", NULL};

MG_PLUGIN(.name = "vault", .version = "0.1.0",
          .description = "the node's private keys in HashiCorp Vault (secrets = \"vault\")",
          .provides = vault_provides, .settings = vault_settings, .init = vault_init,
          .stop = vault_stop);
