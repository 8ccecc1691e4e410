/* Group commit: redeems and registers that arrive together share one
 * durable commit. Each request runs in a transaction nested in the
 * batch's, so a failing one is undone alone; its reply waits (mg_defer)
 * until the batch is durable, then every reply of the batch goes out.
 * The batch is committed by a timer of 0 ms, which the plugin's loop runs
 * once it has taken every request already queued. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "preauth.h"

struct pending_reply {
	mg_reply_token *token;
	json_t *reply;
};

struct pa_batch {
	struct pa_op op; /* the outer transaction */
	int timer;
	struct pending_reply *replies;
	size_t n, cap;
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
	return pa_op_begin(pa, NULL, op);
}

json_t *pa_batch_reply(struct pa *pa, json_t *reply)
{
	struct pa_batch *b = pa->batch;
	mg_reply_token *token = b ? mg_defer(pa->ctx) : NULL;
	if (b && token && b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct pending_reply *r = realloc(b->replies, cap * sizeof(*r));
		if (r) {
			b->replies = r;
			b->cap = cap;
		}
	}
	if (!token || !b || b->n == b->cap) {
		/* cannot wait: make it durable now, then answer */
		if (token)
			mg_reply(pa->ctx, token, NULL); /* never happens in practice */
		if (pa_batch_flush(pa))
			return mg_error("internal", "cannot commit the batch");
		return reply;
	}
	b->replies[b->n++] = (struct pending_reply){token, reply};
	return NULL;
}

void pa_batch_settle(struct pa *pa)
{
	struct pa_batch *b = pa->batch;
	if (!b || b->n)
		return;
	/* nothing to make durable: release the write transaction at once */
	pa->batch = NULL;
	if (b->timer > 0)
		mg_timer_del(pa->ctx, b->timer);
	pa_op_abort(&b->op);
	free(b->replies);
	free(b);
}

int pa_batch_flush(struct pa *pa)
{
	struct pa_batch *b = pa->batch;
	if (!b)
		return 0;
	pa->batch = NULL;
	if (b->timer > 0)
		mg_timer_del(pa->ctx, b->timer);
	int rc = pa_op_commit(&b->op);
	if (rc) {
		/* the children already changed the caches: rebuild them from the
		 * databases, which the failed commit left as they were */
		pa_cache_rebuild(pa);
	}
	for (size_t i = 0; i < b->n; i++) {
		json_t *reply = b->replies[i].reply;
		if (rc) {
			json_decref(reply);
			reply = mg_error("internal", "cannot commit: %s", strerror(-rc));
		}
		mg_reply(pa->ctx, b->replies[i].token, reply);
	}
	if (b->n > 1)
		mg_debug(pa->ctx, "group commit of %zu requests", b->n);
	free(b->replies);
	free(b);
	return rc;
}
