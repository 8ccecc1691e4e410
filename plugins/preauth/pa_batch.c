/* Group commit: redeems and registers that arrive together share one
 * durable commit. Each request runs in a transaction nested in the
 * batch's, so a failing one is undone alone; its reply waits (mg_defer)
 * until the batch is durable, then every reply of the batch goes out.
 * The batch is committed by a timer of 0 ms, which the plugin's loop runs
 * once it has taken every request already queued.
 *
 * In a cluster the batch's commit is one etcd transaction. When it loses
 * a race (-ESTALE: another node changed what it read, and our mirror has
 * caught up), nothing of it was written: every request runs again on the
 * fresh state, into a new batch, a few times, so that e.g. a redeem whose
 * code another node consumed meanwhile gets the usual "code_used". A
 * batch with more keys than one etcd transaction takes (-E2BIG, refused
 * before it is sent) runs again the same way, in halves. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "preauth.h"

/* A request of the batch: answered once the batch is durable. */
struct pa_pending {
	mg_reply_token *token; /* NULL once answered */
	json_t *reply;
	pa_txn_fn fn; /* what to run again after a lost race, with request */
	json_t *request;
};

struct pa_batch {
	struct pa_op op; /* the outer transaction */
	int timer;
	struct pa_pending *requests;
	size_t n, cap;
	size_t written; /* requests whose changes are in op (replayed ones too) */
};

static void flush_timer(mg_ctx *ctx, void *arg)
{
	(void)ctx;
	struct pa *pa = arg;
	pa->batch->timer = 0; /* fired: one-shot */
	pa_batch_flush(pa);
}

int pa_op_begin_batched(struct pa *pa, struct pa_op *op)
{
	if (!pa->batch) {
		struct pa_batch *b = calloc(1, sizeof(*b));
		if (!b)
			return -ENOMEM;
		int rc = pa_op_begin(pa, NULL, &b->op);
		if (rc) {
			free(b);
			return rc;
		}
		b->timer = mg_timer_add(pa->ctx, 0, 0, flush_timer, pa);
		if (b->timer < 0) {
			rc = b->timer;
			pa_op_abort(&b->op);
			free(b);
			return rc;
		}
		pa->batch = b;
	}
	return pa_op_begin(pa, &pa->batch->op, op);
}

int pa_op_begin_alone(struct pa *pa, struct pa_op *op)
{
	/* A failed flush has already answered its requests and closed the
	 * batch: the new op may begin either way. */
	pa_batch_flush(pa);
	pa->commit_rc = 0; /* the caller's, not the batch's */
	return pa_op_begin(pa, NULL, op);
}

json_t *pa_batch_run(struct pa *pa, pa_txn_fn fn, json_t *request)
{
	pa->running = fn;
	pa->running_request = request;
	json_t *reply = fn(pa, request);
	pa->running = NULL;
	pa->running_request = NULL;
	return reply;
}

static void batch_free(struct pa_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		json_decref(b->requests[i].reply);
		json_decref(b->requests[i].request);
	}
	free(b->requests);
	free(b);
}

json_t *pa_batch_reply(struct pa *pa, json_t *reply)
{
	struct pa_batch *b = pa->batch;
	if (b && pa->replaying) {
		/* a request of a lost batch, run again: it keeps its place there */
		pa->replaying->reply = reply;
		b->written++;
		return NULL;
	}
	mg_reply_token *token = b ? mg_defer(pa->ctx) : NULL;
	if (b && token && b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct pa_pending *r = realloc(b->requests, cap * sizeof(*r));
		if (r) {
			b->requests = r;
			b->cap = cap;
		}
	}
	if (!token || !b || b->n == b->cap) {
		/* cannot wait: make it durable now, then answer */
		if (token)
			mg_reply(pa->ctx, token, NULL); /* never happens in practice */
		int rc = pa_batch_flush(pa);
		if (rc) {
			json_decref(reply);
			json_t *error = pa_commit_error(rc);
			return error ? error : mg_error("internal", "cannot commit the batch");
		}
		return reply;
	}
	b->requests[b->n++] =
	    (struct pa_pending){token, reply, pa->running, json_incref(pa->running_request)};
	b->written++;
	return NULL;
}

void pa_batch_settle(struct pa *pa)
{
	struct pa_batch *b = pa->batch;
	if (!b || b->written)
		return;
	/* nothing to make durable: release the write transaction at once */
	pa->batch = NULL;
	if (b->timer > 0)
		mg_timer_del(pa->ctx, b->timer);
	pa_op_abort(&b->op);
	batch_free(b);
}

/* Takes the open batch off pa: no more requests join it. */
static struct pa_batch *batch_take(struct pa *pa)
{
	struct pa_batch *b = pa->batch;
	pa->batch = NULL;
	if (b && b->timer > 0)
		mg_timer_del(pa->ctx, b->timer);
	return b;
}

/* The requests [from, to) of `lost`, whose commit wrote nothing, run
 * again in a new batch; one that now fails (the code is used...) is
 * answered at once. Commits the new batch: 0 when nothing of them is
 * left to write. */
static int replay(struct pa *pa, struct pa_batch *lost, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		struct pa_pending *p = &lost->requests[i];
		if (!p->token)
			continue;
		json_decref(p->reply);
		p->reply = NULL;
		/* no budget is charged again: the guard saw the request once */
		pa->replaying = p;
		json_t *reply = p->fn ? p->fn(pa, p->request)
		                      : mg_error("conflict", "the request cannot be run again");
		pa->replaying = NULL;
		if (reply) {
			mg_reply(pa->ctx, p->token, reply);
			p->token = NULL;
		}
	}
	struct pa_batch *again = batch_take(pa);
	if (!again)
		return 0;
	int rc = again->written ? pa_op_commit(&again->op) : 0;
	if (!again->written)
		pa_op_abort(&again->op);
	batch_free(again);
	return rc;
}

/* The requests [from, to) of b still waiting get their replies, or
 * the error of a commit that failed. */
static void answer(struct pa *pa, struct pa_batch *b, size_t from, size_t to, int rc)
{
	json_t *error = rc ? pa_commit_error(rc) : NULL;
	for (size_t i = from; i < to; i++) {
		struct pa_pending *p = &b->requests[i];
		if (!p->token)
			continue;
		json_t *reply = p->reply;
		p->reply = NULL;
		if (rc) {
			json_decref(reply);
			reply = error ? json_incref(error)
			              : mg_error("internal", "cannot commit: %s", strerror(-rc));
		}
		mg_reply(pa->ctx, p->token, reply);
		p->token = NULL;
	}
	json_decref(error);
}

/* The requests [from, to) of b after their commit returned rc: a lost
 * race runs them again on the fresh state (a few times); a batch larger
 * than one etcd transaction takes is committed in halves; then they are
 * answered. After a failed commit the caches are rebuilt from the
 * databases, which it left as they were (the requests had changed
 * them). */
static int settle(struct pa *pa, struct pa_batch *b, size_t from, size_t to, int rc)
{
	for (int tries = 1; rc == -ESTALE && tries < PA_COMMIT_TRIES; tries++) {
		pa_cache_rebuild(pa);
		rc = replay(pa, b, from, to);
	}
	if (rc)
		pa_cache_rebuild(pa);
	if (rc == -E2BIG && to - from > 1) {
		size_t half = from + (to - from) / 2;
		if (!pa->told_split) {
			pa->told_split = true;
			mg_info(pa->ctx,
			        "a group commit of %zu requests is more than one etcd transaction "
			        "takes: committed in parts (raise etcd's --max-txn-ops and "
			        "cluster.max_txn_ops)",
			        to - from);
		}
		int first = settle(pa, b, from, half, replay(pa, b, from, half));
		int second = settle(pa, b, half, to, replay(pa, b, half, to));
		return first ? first : second;
	}
	if (rc == -E2BIG)
		mg_error_log(pa->ctx, "one request alone needs more keys than one etcd transaction "
		                      "takes: raise etcd's --max-txn-ops and cluster.max_txn_ops");
	answer(pa, b, from, to, rc);
	return rc;
}

int pa_batch_flush(struct pa *pa)
{
	struct pa_batch *b = batch_take(pa);
	if (!b)
		return 0;
	int rc = settle(pa, b, 0, b->n, pa_op_commit(&b->op));
	if (b->n > 1)
		mg_debug(pa->ctx, "group commit of %zu requests", b->n);
	batch_free(b);
	return rc;
}
