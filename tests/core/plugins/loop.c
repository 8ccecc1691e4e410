/* A plugin for the tests of the core's loop: work posted from threads of
 * its own (mg_post), and callbacks that remove subscriptions, timers and
 * fd watches, their own and others', while the loop walks them. Each
 * service answers with what the plugin saw; the test says what is right. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <meshgate/meshgate.h>

#define MAX_POSTERS 16
#define MAX_FDS     512
#define NSUBS       9 /* the last is subscribed by a callback */
#define NTIMERS     9 /* the last is added by a callback */
#define NREPEATS    3

struct loop;

/* What a callback's arg points to: which one of a kind it is. */
struct slot {
	struct loop *l;
	int k;
};

struct post_msg {
	struct loop *l;
	int poster;
	long seq;
};

struct loop {
	mg_ctx *ctx;
	pthread_t thread; /* the plugin's own, seen in init */

	/* loop.posts: posters[] each post per_poster messages, in order */
	struct slot posters_arg[MAX_POSTERS];
	pthread_t posters[MAX_POSTERS];
	int nposters, posting;
	long per_poster, received, out_of_order, wrong_thread;
	long next_seq[MAX_POSTERS];
	mg_reply_token *posts_token;

	/* loop.linger: a poster that goes on until it is refused */
	pthread_t linger;
	int lingering;
	atomic_long linger_accepted;
	long linger_ran;
	int linger_refusal;

	/* loop.subscribe, loop.subs */
	struct slot sub_arg[NSUBS];
	int sub_fired[NSUBS];

	/* loop.timers */
	struct slot timer_arg[NTIMERS + NREPEATS];
	int timer_id[NTIMERS + NREPEATS];
	int timer_fired[NTIMERS + NREPEATS];
	int del_rc[5];
	mg_reply_token *timers_token;

	/* loop.fds */
	struct slot fd_arg[MAX_FDS];
	int fd[MAX_FDS];
	int fd_fired[MAX_FDS];
	int nfds;
	mg_reply_token *fds_token;
};

static const char *const sub_prefix[NSUBS] = {
    "loop.evt.x", "loop.evt.", "loop.evt", "loop.ev", "loop.e", "loop.", "loop", "loo", "lo"};

static void trace(mg_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(mg_ctx *ctx, const char *fmt, ...)
{
	const char *path = json_string_value(json_object_get(mg_config(ctx), "trace_file"));
	FILE *f = path && path[0] ? fopen(path, "a") : NULL;
	if (!f)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fclose(f);
}

static json_t *int_array(const int *v, int n)
{
	json_t *a = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(a, json_integer(v[i]));
	return a;
}

/* ---- posts from many threads ---- */

static void join_posters(struct loop *l)
{
	for (int i = 0; i < l->nposters; i++)
		pthread_join(l->posters[i], NULL);
	l->posting = 0;
}

static void on_post(mg_ctx *ctx, void *arg)
{
	struct post_msg *m = arg;
	struct loop *l = m->l;
	if (!pthread_equal(pthread_self(), l->thread))
		l->wrong_thread++;
	if (m->seq != l->next_seq[m->poster])
		l->out_of_order++;
	l->next_seq[m->poster] = m->seq + 1;
	l->received++;
	free(m);
	if (l->received < l->nposters * l->per_poster)
		return;
	join_posters(l);
	mg_reply(ctx, l->posts_token,
	         json_pack("{s:I, s:I, s:I}", "received", (json_int_t)l->received, "out_of_order",
	                   (json_int_t)l->out_of_order, "wrong_thread",
	                   (json_int_t)l->wrong_thread));
	l->posts_token = NULL;
}

static void *poster(void *arg)
{
	struct slot *s = arg;
	for (long seq = 0; seq < s->l->per_poster; seq++) {
		struct post_msg *m = malloc(sizeof(*m));
		*m = (struct post_msg){s->l, s->k, seq};
		if (mg_post(s->l->ctx, on_post, m)) {
			free(m); /* refused: still ours, and the count never completes */
			break;
		}
	}
	return NULL;
}

/* {threads, posts}: answered once every post has run. */
static json_t *posts(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	struct loop *l = arg;
	json_int_t threads = json_integer_value(json_object_get(request, "threads"));
	json_int_t per = json_integer_value(json_object_get(request, "posts"));
	(void)service;
	if (threads < 1 || threads > MAX_POSTERS || per < 1)
		return mg_error("bad_request", "threads 1..%d, posts >= 1", MAX_POSTERS);
	if (l->posting)
		return mg_error("busy", "posts already under way");
	l->nposters = (int)threads;
	l->per_poster = per;
	l->received = l->out_of_order = l->wrong_thread = 0;
	memset(l->next_seq, 0, sizeof(l->next_seq));
	l->posts_token = mg_defer(ctx);
	l->posting = 1;
	for (int i = 0; i < l->nposters; i++) {
		l->posters_arg[i] = (struct slot){l, i};
		pthread_create(&l->posters[i], NULL, poster, &l->posters_arg[i]);
	}
	return NULL;
}

/* ---- a poster that outlives the plugin's loop ---- */

static void on_linger(mg_ctx *ctx, void *arg)
{
	struct loop *l = ctx->self;
	free(arg);
	l->linger_ran++;
}

static void *linger(void *arg)
{
	struct loop *l = arg;
	for (;;) {
		char *token = malloc(16);
		int rc = mg_post(l->ctx, on_linger, token);
		if (rc) {
			free(token);
			l->linger_refusal = rc;
			return NULL;
		}
		atomic_fetch_add(&l->linger_accepted, 1);
		usleep(200);
	}
}

static json_t *start_linger(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	struct loop *l = arg;
	(void)ctx;
	(void)service;
	(void)request;
	if (l->lingering)
		return mg_error("busy", "already lingering");
	l->lingering = !pthread_create(&l->linger, NULL, linger, l);
	return json_pack("{s:b}", "lingering", l->lingering);
}

/* ---- subscriptions removed and added while an event is delivered ---- */

static void on_event(mg_ctx *ctx, const char *topic, json_t *payload, void *arg)
{
	struct slot *s = arg;
	struct loop *l = s->l;
	(void)topic;
	(void)payload;
	l->sub_fired[s->k]++;
	if (s->k == 0) /* itself */
		mg_unsubscribe(ctx, sub_prefix[0]);
	if (s->k == 2) { /* one already called, one still to come */
		mg_unsubscribe(ctx, sub_prefix[1]);
		mg_unsubscribe(ctx, sub_prefix[5]);
	}
	if (s->k == 3 && l->sub_fired[3] == 1) /* gets the next event, not this one */
		mg_subscribe(ctx, sub_prefix[NSUBS - 1], on_event, &l->sub_arg[NSUBS - 1]);
}

static json_t *subscribe(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	struct loop *l = arg;
	(void)service;
	(void)request;
	for (int k = 0; k < NSUBS; k++)
		l->sub_arg[k] = (struct slot){l, k};
	for (int k = 0; k < NSUBS - 1; k++) {
		int rc = mg_subscribe(ctx, sub_prefix[k], on_event, &l->sub_arg[k]);
		if (rc)
			return mg_error("internal", "subscribe %s: %s", sub_prefix[k],
			                strerror(-rc));
	}
	return json_object();
}

static json_t *subs(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	struct loop *l = arg;
	(void)ctx;
	(void)service;
	(void)request;
	return json_pack("{s:o}", "fired", int_array(l->sub_fired, NSUBS));
}

/* ---- timers deleted and added while due timers run ---- */

static void on_timer(mg_ctx *ctx, void *arg)
{
	struct slot *s = arg;
	struct loop *l = s->l;
	int *id = l->timer_id;
	l->timer_fired[s->k]++;
	switch (s->k) {
	case 0: /* two due in the same turn, not yet run */
		l->del_rc[0] = mg_timer_del(ctx, id[3]);
		l->del_rc[1] = mg_timer_del(ctx, id[6]);
		break;
	case 4: /* one that ran already, and itself: both one-shots, gone */
		l->del_rc[2] = mg_timer_del(ctx, id[1]);
		l->del_rc[3] = mg_timer_del(ctx, id[4]);
		break;
	case 5: /* a new one: runs in a later turn */
		id[NTIMERS - 1] = mg_timer_add(ctx, 0, 0, on_timer, &l->timer_arg[NTIMERS - 1]);
		break;
	}
}

static void on_repeat(mg_ctx *ctx, void *arg)
{
	struct slot *s = arg;
	struct loop *l = s->l;
	int *id = l->timer_id + NTIMERS;
	int fired = ++l->timer_fired[NTIMERS + s->k];
	if (s->k == 0 && fired == 3) { /* the next one, and itself */
		mg_timer_del(ctx, id[1]);
		l->del_rc[4] = mg_timer_del(ctx, id[0]);
	}
	if (s->k == 2 && fired == 6) {
		mg_timer_del(ctx, id[2]);
		mg_reply(ctx, l->timers_token,
		         json_pack("{s:o, s:o}", "fired",
		                   int_array(l->timer_fired, NTIMERS + NREPEATS), "deleted",
		                   int_array(l->del_rc, 5)));
		l->timers_token = NULL;
	}
}

static json_t *timers(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	struct loop *l = arg;
	(void)service;
	(void)request;
	memset(l->timer_fired, 0, sizeof(l->timer_fired));
	for (int k = 0; k < NTIMERS + NREPEATS; k++)
		l->timer_arg[k] = (struct slot){l, k < NTIMERS ? k : k - NTIMERS};
	/* due at once: all run in the loop's next pass over its timers */
	for (int k = 0; k < NTIMERS - 1; k++)
		l->timer_id[k] = mg_timer_add(ctx, 0, 0, on_timer, &l->timer_arg[k]);
	for (int k = NTIMERS; k < NTIMERS + NREPEATS; k++)
		l->timer_id[k] = mg_timer_add(ctx, 5, 1, on_repeat, &l->timer_arg[k]);
	l->timers_token = mg_defer(ctx);
	return NULL;
}

/* ---- fd watches removed and re-added while ready fds are dispatched ---- */

static void on_fd(mg_ctx *ctx, int fd, int events, void *arg)
{
	struct slot *s = arg;
	struct loop *l = s->l;
	uint64_t count;
	(void)events;
	if (read(fd, &count, sizeof(count)) < 0)
		return; /* not ready: a wrong call, fd_fired stays as it was */
	l->fd_fired[s->k]++;
	if (s->k == 0) { /* ready too, not yet dispatched: must not run */
		mg_fd_unwatch(ctx, l->fd[l->nfds / 2]);
		mg_fd_unwatch(ctx, l->fd[l->nfds - 1]);
	}
	if (s->k == 10) { /* itself, and one already dispatched */
		mg_fd_unwatch(ctx, l->fd[10]);
		mg_fd_unwatch(ctx, l->fd[5]);
	}
	if (s->k == 20) { /* watched anew: runs once, in a later turn */
		mg_fd_unwatch(ctx, l->fd[30]);
		mg_fd_watch(ctx, l->fd[30], MG_FD_READ, on_fd, &l->fd_arg[30]);
	}
}

static void close_fds(struct loop *l)
{
	for (int k = 0; k < l->nfds; k++) {
		mg_fd_unwatch(l->ctx, l->fd[k]);
		close(l->fd[k]);
	}
	l->nfds = 0;
}

static void fds_done(mg_ctx *ctx, void *arg)
{
	struct loop *l = arg;
	json_t *reply = json_pack("{s:o}", "fired", int_array(l->fd_fired, l->nfds));
	close_fds(l);
	mg_reply(ctx, l->fds_token, reply);
	l->fds_token = NULL;
}

/* {count}: that many eventfds watched and made ready at once; answered
 * with how often each callback ran, once the loop has had time. */
static json_t *fds(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	struct loop *l = arg;
	json_int_t count = json_integer_value(json_object_get(request, "count"));
	uint64_t one = 1;
	(void)service;
	if (count < 32 || count > MAX_FDS)
		return mg_error("bad_request", "count 32..%d", MAX_FDS);
	if (l->nfds)
		return mg_error("busy", "fds already under way");
	memset(l->fd_fired, 0, sizeof(l->fd_fired));
	for (l->nfds = 0; l->nfds < count; l->nfds++) {
		int k = l->nfds, rc;
		l->fd_arg[k] = (struct slot){l, k};
		l->fd[k] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (l->fd[k] < 0)
			rc = -errno;
		else if ((rc = mg_fd_watch(ctx, l->fd[k], MG_FD_READ, on_fd, &l->fd_arg[k])))
			close(l->fd[k]);
		if (rc) {
			close_fds(l);
			return mg_error("internal", "watch %d: %s", k, strerror(-rc));
		}
	}
	for (int k = 0; k < l->nfds; k++)
		if (write(l->fd[k], &one, sizeof(one)) < 0)
			return mg_error("internal", "eventfd: %s", strerror(errno));
	l->fds_token = mg_defer(ctx);
	mg_timer_add(ctx, 300, 0, fds_done, l);
	return NULL;
}

/* ---- lifecycle ---- */

static int loop_init(mg_ctx *ctx)
{
	struct loop *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->ctx = ctx;
	l->thread = pthread_self();
	ctx->self = l;
	static const struct {
		const char *name;
		mg_service_fn fn;
	} services[] = {{"loop.posts", posts},         {"loop.linger", start_linger},
	                {"loop.subscribe", subscribe}, {"loop.subs", subs},
	                {"loop.timers", timers},       {"loop.fds", fds}};
	for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
		int rc = mg_service_add(ctx, services[i].name, services[i].fn, l);
		if (rc) {
			free(l);
			return rc;
		}
	}
	return 0;
}

/* The core has closed the posts and run those it took: the posters are
 * refused from now on, so they end. */
static void loop_stop(mg_ctx *ctx)
{
	struct loop *l = ctx->self;
	if (l->posting)
		join_posters(l);
	if (l->lingering) {
		pthread_join(l->linger, NULL);
		trace(ctx, "linger accepted=%ld ran=%ld refused=%d",
		      atomic_load(&l->linger_accepted), l->linger_ran, l->linger_refusal);
	}
	close_fds(l);
	free(l);
}

static const struct mg_setting loop_settings[] = {
    {"trace_file", MG_SETTING_STRING, "\"\"", "Where stop writes what the poster saw.", NULL, 0},
    {0},
};

MG_PLUGIN(.name = "loop", .version = "0.0.1", .description = "test of the core's loop",
          .settings = loop_settings, .init = loop_init, .stop = loop_stop);
