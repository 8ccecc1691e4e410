#include "actor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "broker.h"
#include "bus_proto.h"
#include "core.h"
#include "host.h"

/* Services and subscriptions live in the host's registration tables
 * (core/host.c, shared with the mock core). Timers and fd watches are
 * walked while their callbacks run, and a callback may remove any of them
 * (its own or another's). So a removal only marks the entry `removed`: the
 * walk skips it, and sweep_removed() drops it once no walk is under way.
 * An entry added during a walk lands past the count the walk started
 * with: it takes part from the next walk on. */

struct watch {
	int fd;
	int events;
	mg_fd_fn fn;
	void *arg;
	int removed;
};

/* A function to run on the plugin's thread (mg_post). */
struct post {
	mg_post_fn fn;
	void *arg;
	struct post *next;
};

/* Who asked, so that a deferred reply finds its way back. */
struct mg_reply_token {
	char origin[MG_BUS_MAX_ID];
	size_t origin_len;
	char id[MG_BUS_MAX_ID];
	size_t id_len;
};

struct actor {
	struct plugin *p;
	const struct mg_bus_msg *current; /* the request being handled */
	int deferred;                     /* its handler called mg_defer */
	pthread_t thread;
	void *pipe_core; /* the core's end of the pipe */
	void *pipe;      /* the thread's end */
	void *dealer;    /* requests and events routed to this plugin */
	char pipe_ep[160];
	struct host_registrations reg;
	struct host_timer *timers;
	size_t ntimers;
	int next_timer_id;
	struct watch *watches;
	size_t nwatches;
	zmq_pollitem_t *items; /* what the loop polls: pipe, dealer, posts, watches */
	size_t items_cap;
	/* Posts, guarded by posts_lock: a FIFO, one eventfd that wakes the
	 * loop, and whether the plugin still takes them. */
	struct post *posts;
	struct post **posts_tail;
	int post_fd;
	int posts_open;
	/* Its start returned, without mg_ready, while work it had posted was
	 * still queued (the heavy part of a reconcile, run on the loop right
	 * after start): it is ready once the queue has run dry. */
	int ready_after_posts;
};

/* Guards every actor's posts, and the plugin's actor pointer as posters
 * see it: a worker thread may post while the core spawns or ends the
 * actor. Its sections are a few instructions long, so one lock for all
 * the plugins costs nothing. */
static pthread_mutex_t posts_lock = PTHREAD_MUTEX_INITIALIZER;

/* Drops the entries marked removed, keeping the others in order. */
#define SWEEP(list, n)                                        \
	do {                                                  \
		size_t kept_ = 0;                             \
		for (size_t i_ = 0; i_ < (n); i_++)           \
			if (!(list)[i_].removed)              \
				(list)[kept_++] = (list)[i_]; \
		(n) = kept_;                                  \
	} while (0)

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int actor_on_own_thread(struct actor *a)
{
	return a && pthread_equal(a->thread, pthread_self());
}

/* ---- registrations ---- */

int actor_service_add(struct actor *a, const char *service, mg_service_fn fn, void *arg)
{
	int rc = broker_service_add(a->p->core->broker, service, a->p->routing_id);
	if (rc)
		return rc;
	rc = host_table_add(&a->reg.services, service, (union host_fn){.service = fn}, arg);
	if (rc)
		broker_service_del(a->p->core->broker, service, a->p->routing_id);
	return rc;
}

int actor_service_del(struct actor *a, const char *service)
{
	int rc = host_table_del(&a->reg.services, service);
	if (!rc)
		broker_service_del(a->p->core->broker, service, a->p->routing_id);
	return rc;
}

int actor_subscribe(struct actor *a, const char *prefix, mg_event_fn fn, void *arg)
{
	int rc = broker_subscribe(a->p->core->broker, prefix, a->p->routing_id);
	if (rc)
		return rc;
	rc = host_table_add(&a->reg.subscriptions, prefix, (union host_fn){.event = fn}, arg);
	if (rc)
		broker_unsubscribe(a->p->core->broker, prefix, a->p->routing_id);
	return rc;
}

int actor_unsubscribe(struct actor *a, const char *prefix)
{
	int rc = host_table_del(&a->reg.subscriptions, prefix);
	if (!rc)
		broker_unsubscribe(a->p->core->broker, prefix, a->p->routing_id);
	return rc;
}

int actor_timer_add(struct actor *a, unsigned interval_ms, int repeat, mg_timer_fn fn, void *arg)
{
	struct host_timer *t = realloc(a->timers, (a->ntimers + 1) * sizeof(*t));
	if (!t)
		return -ENOMEM;
	a->timers = t;
	int id = ++a->next_timer_id;
	t[a->ntimers++] =
	    (struct host_timer){id, monotonic_ms() + interval_ms, interval_ms, repeat, fn, arg, 0};
	return id;
}

int actor_timer_del(struct actor *a, int id)
{
	for (size_t i = 0; i < a->ntimers; i++)
		if (!a->timers[i].removed && a->timers[i].id == id) {
			a->timers[i].removed = 1;
			return 0;
		}
	return -ENOENT;
}

int actor_fd_watch(struct actor *a, int fd, int events, mg_fd_fn fn, void *arg)
{
	struct watch *w = realloc(a->watches, (a->nwatches + 1) * sizeof(*w));
	if (!w)
		return -ENOMEM;
	a->watches = w;
	actor_fd_unwatch(a, fd);
	w[a->nwatches++] = (struct watch){fd, events, fn, arg, 0};
	return 0;
}

int actor_fd_unwatch(struct actor *a, int fd)
{
	for (size_t i = 0; i < a->nwatches; i++)
		if (!a->watches[i].removed && a->watches[i].fd == fd) {
			a->watches[i].removed = 1;
			return 0;
		}
	return -ENOENT;
}

static void sweep_removed(struct actor *a)
{
	SWEEP(a->timers, a->ntimers);
	SWEEP(a->watches, a->nwatches);
}

/* Everything the plugin registered vanishes: on stop and on a failed init. */
static void drop_registrations(struct actor *a)
{
	broker_forget(a->p->core->broker, a->p->routing_id);
	host_registrations_clear(&a->reg);
	free(a->timers);
	free(a->watches);
	a->timers = NULL;
	a->watches = NULL;
	a->ntimers = a->nwatches = 0;
}

/* ---- posts: work handed to the plugin's thread from any thread ---- */

int actor_post(struct plugin *p, mg_post_fn fn, void *arg)
{
	struct post *post = fn ? malloc(sizeof(*post)) : NULL;
	if (!post)
		return fn ? -ENOMEM : -EINVAL;
	*post = (struct post){fn, arg, NULL};
	int rc = 0;
	uint64_t one = 1;
	pthread_mutex_lock(&posts_lock);
	struct actor *a = p->actor;
	if (!a || !a->posts_open)
		rc = -ESHUTDOWN;
	else if (write(a->post_fd, &one, sizeof(one)) < 0)
		rc = -errno;
	else {
		*a->posts_tail = post;
		a->posts_tail = &post->next;
	}
	pthread_mutex_unlock(&posts_lock);
	if (rc)
		free(post);
	return rc;
}

/* Takes every post queued so far; `open` 0 refuses the ones to come. */
static struct post *take_posts(struct actor *a, int open)
{
	pthread_mutex_lock(&posts_lock);
	struct post *list = a->posts;
	a->posts = NULL;
	a->posts_tail = &a->posts;
	a->posts_open = open;
	pthread_mutex_unlock(&posts_lock);
	return list;
}

/* Runs (or only frees) a list of posts, oldest first. */
static void run_posts(struct actor *a, struct post *list, int run)
{
	while (list) {
		struct post *next = list->next;
		if (run)
			list->fn(&a->p->ctx, list->arg);
		free(list);
		list = next;
	}
}

static int posts_pending(struct actor *a)
{
	pthread_mutex_lock(&posts_lock);
	int pending = a->posts != NULL;
	pthread_mutex_unlock(&posts_lock);
	return pending;
}

static void receive_posts(struct actor *a)
{
	uint64_t count;
	/* reset the eventfd before taking the queue: a post made after the
	 * take wakes the loop again */
	if (read(a->post_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		core_log(MG_LOG_ERROR, a->p->name, "posts: %s", strerror(errno));
	run_posts(a, take_posts(a, 1), 1);
	if (a->ready_after_posts && !posts_pending(a)) {
		a->ready_after_posts = 0;
		loader_mark_ready(a->p); /* if the posts have not said so (mg_ready) */
	}
}

/* ---- the loop ---- */

static void send_reply(struct actor *a, const struct mg_bus_msg *req, json_t *reply)
{
	char *text = json_dumps(reply, JSON_COMPACT);
	if (!text)
		return;
	struct mg_bus_msg rep = {.verb = MG_BUS_REP,
	                         .origin = req->origin,
	                         .id = req->id,
	                         .payload = {text, strlen(text)}};
	struct mg_bus_slice frames[MG_BUS_MAX_FRAMES];
	char deadline[24];
	size_t n = mg_bus_encode(MG_BUS_TO_BROKER, &rep, frames, deadline);
	for (size_t i = 0; i < n; i++)
		zmq_send(a->dealer, frames[i].data, frames[i].len, i + 1 < n ? ZMQ_SNDMORE : 0);
	free(text);
}

mg_reply_token *actor_defer(struct actor *a)
{
	const struct mg_bus_msg *msg = a->current;
	mg_reply_token *t = msg ? calloc(1, sizeof(*t)) : NULL;
	if (!t)
		return NULL;
	memcpy(t->origin, msg->origin.data, msg->origin.len);
	t->origin_len = msg->origin.len;
	memcpy(t->id, msg->id.data, msg->id.len);
	t->id_len = msg->id.len;
	a->deferred = 1;
	return t;
}

void actor_reply(struct actor *a, mg_reply_token *t, json_t *reply)
{
	if (!t) {
		json_decref(reply);
		return;
	}
	struct mg_bus_msg req = {
	    .verb = MG_BUS_REQ, .origin = {t->origin, t->origin_len}, .id = {t->id, t->id_len}};
	if (!reply)
		reply = mg_error("internal", "%s failed to answer", a->p->name);
	send_reply(a, &req, reply);
	json_decref(reply);
	free(t);
}

static void handle_request(struct actor *a, const struct mg_bus_msg *msg)
{
	char service[MG_BUS_MAX_NAME + 1];
	json_t *reply = NULL;

	/* Its requester has given up: answering would only waste work. */
	if (msg->deadline_ms && mg_bus_now_ms() > msg->deadline_ms)
		return;
	memcpy(service, msg->name.data, msg->name.len);
	service[msg->name.len] = '\0';
	struct host_entry *s = host_table_find(&a->reg.services, service);
	json_error_t jerr;
	json_t *request = json_loadb(msg->payload.data, msg->payload.len, 0, &jerr);
	if (!s)
		reply = mg_error("unknown_service", "%s does not serve '%s'", a->p->name, service);
	else if (!json_is_object(request))
		reply = mg_error("bad_request", "request is not a JSON object: %s",
		                 request ? "wrong type" : jerr.text);
	else {
		a->current = msg;
		a->deferred = 0;
		reply = s->fn.service(&a->p->ctx, service, request, s->arg);
		a->current = NULL;
		if (a->deferred) { /* answered later through mg_reply */
			json_decref(reply);
			json_decref(request);
			return;
		}
		if (!reply)
			reply =
			    mg_error("internal", "%s failed to answer '%s'", a->p->name, service);
	}
	json_decref(request);
	send_reply(a, msg, reply);
	json_decref(reply);
}

struct event_delivery {
	struct actor *a;
	const char *topic;
	json_t *payload;
};

static void deliver_event(struct host_entry *e, void *arg)
{
	struct event_delivery *d = arg;
	e->fn.event(&d->a->p->ctx, d->topic, d->payload, e->arg);
}

static void handle_event(struct actor *a, const struct mg_bus_msg *msg)
{
	char topic[MG_BUS_MAX_NAME + 1];
	memcpy(topic, msg->name.data, msg->name.len);
	topic[msg->name.len] = '\0';
	json_t *payload = json_loadb(msg->payload.data, msg->payload.len, 0, NULL);
	if (!payload)
		return;
	/* the subscriptions a callback adds get the next event, not this one */
	struct event_delivery d = {a, topic, payload};
	host_table_walk_prefix(&a->reg.subscriptions, topic, deliver_event, &d);
	json_decref(payload);
}

/* Reads and handles one message; 0 when none was waiting. */
static int receive_bus(struct actor *a)
{
	zmq_msg_t parts[MG_BUS_MAX_FRAMES];
	size_t n = 0;
	int more = 1;
	while (more) {
		zmq_msg_t part;
		zmq_msg_init(&part);
		if (zmq_msg_recv(&part, a->dealer, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&part);
			break;
		}
		more = zmq_msg_more(&part);
		if (n < MG_BUS_MAX_FRAMES)
			parts[n++] = part;
		else
			zmq_msg_close(&part);
	}
	if (!n)
		return 0;
	struct mg_bus_slice frames[MG_BUS_MAX_FRAMES];
	for (size_t i = 0; i < n; i++)
		frames[i] = (struct mg_bus_slice){zmq_msg_data(&parts[i]), zmq_msg_size(&parts[i])};
	struct mg_bus_msg msg;
	const char *why;
	if (!mg_bus_decode(MG_BUS_FROM_BROKER, frames, n, &msg, &why)) {
		if (msg.verb == MG_BUS_REQ)
			handle_request(a, &msg);
		else if (msg.verb == MG_BUS_EVT)
			handle_event(a, &msg);
	}
	for (size_t i = 0; i < n; i++)
		zmq_msg_close(&parts[i]);
	return 1;
}

static void run_due_timers(struct actor *a)
{
	uint64_t now = monotonic_ms();
	size_t n = a->ntimers;
	/* a->timers may move while a callback adds one: index it afresh */
	for (size_t i = 0; i < n && i < a->ntimers; i++) {
		if (a->timers[i].removed || a->timers[i].due > now)
			continue;
		struct host_timer t = a->timers[i];
		if (t.repeat)
			a->timers[i].due = now + (t.interval ? t.interval : 1);
		else
			a->timers[i].removed = 1;
		t.fn(&a->p->ctx, t.arg);
	}
}

static long next_timeout(struct actor *a)
{
	uint64_t now = monotonic_ms(), next = UINT64_MAX;
	for (size_t i = 0; i < a->ntimers; i++)
		if (!a->timers[i].removed && a->timers[i].due < next)
			next = a->timers[i].due;
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (long)(next - now);
}

/* STOP closes the plugin's posts first (later ones are refused), then
 * runs what they hold, since each poster was told its post would run, and
 * then the plugin's stop, which may join the posting threads. After a
 * failed init nothing of the plugin runs any more: its posts are dropped. */
static void stop_plugin(struct actor *a)
{
	struct plugin *p = a->p;
	int initialised =
	    p->status == PLUGIN_RUNNING || p->status == PLUGIN_STARTING || p->status == PLUGIN_INIT;
	run_posts(a, take_posts(a, 0), initialised);
	if (p->desc->stop && initialised)
		p->desc->stop(&p->ctx);
	drop_registrations(a);
}

/* Runs one lifecycle command; returns 1 when the actor must end. */
static int run_command(struct actor *a, const char *cmd)
{
	struct plugin *p = a->p;
	const struct mg_plugin *d = p->desc;
	int rc = 0, done = 0;

	if (!strcmp(cmd, "INIT")) {
		rc = d->init ? d->init(&p->ctx) : 0;
		if (rc)
			drop_registrations(a);
	} else if (!strcmp(cmd, "START")) {
		rc = d->start ? d->start(&p->ctx) : 0;
		/* if it has not said so itself (mg_ready): now, or once what it
		 * posted to itself has run (docs/plugin-guide.md, "Readiness") */
		if (!rc && posts_pending(a))
			a->ready_after_posts = 1;
		else if (!rc)
			loader_mark_ready(p);
	} else if (!strcmp(cmd, "RELOAD")) {
		json_t *old = p->config;
		p->config = p->next_config;
		p->next_config = NULL;
		rc = d->reload ? d->reload(&p->ctx) : 0;
		if (rc) { /* the plugin refused the new config: keep the old */
			json_decref(p->config);
			p->config = old;
		} else {
			json_decref(old);
		}
	} else if (!strcmp(cmd, "STOP")) {
		stop_plugin(a);
		done = 1;
	}
	char reply[16];
	snprintf(reply, sizeof(reply), "%d", rc);
	zmq_send(a->pipe, reply, strlen(reply), 0);
	return done;
}

static short poll_events(int events)
{
	return (short)((events & MG_FD_READ ? ZMQ_POLLIN : 0) |
	               (events & MG_FD_WRITE ? ZMQ_POLLOUT : 0));
}

/* The items of the next poll: the pipe, the bus, the posts' eventfd, then
 * one per watch, in the order of a->watches. Returns how many; short of
 * memory, the watches that do not fit wait for a later turn. */
#define FIRST_WATCH 3
static size_t poll_items(struct actor *a)
{
	size_t n = FIRST_WATCH + a->nwatches;
	if (n > a->items_cap) {
		zmq_pollitem_t *items = realloc(a->items, n * 2 * sizeof(*items));
		if (items) {
			a->items = items;
			a->items_cap = n * 2;
		} else {
			core_log(MG_LOG_ERROR, a->p->name, "out of memory: %zu fds not polled",
			         n - a->items_cap);
			n = a->items_cap;
		}
	}
	a->items[0] = (zmq_pollitem_t){a->pipe, 0, ZMQ_POLLIN, 0};
	a->items[1] = (zmq_pollitem_t){a->dealer, 0, ZMQ_POLLIN, 0};
	a->items[2] = (zmq_pollitem_t){NULL, a->post_fd, ZMQ_POLLIN, 0};
	for (size_t i = 0; FIRST_WATCH + i < n; i++)
		a->items[FIRST_WATCH + i] =
		    (zmq_pollitem_t){NULL, a->watches[i].fd, poll_events(a->watches[i].events), 0};
	return n;
}

static void receive_bus_burst(struct actor *a)
{
	/* a bounded burst, so that timers and fds get their turn; a receive
	 * that finds nothing ends it (asking ZMQ_EVENTS first would cost a
	 * second look at the socket per message) */
	for (int i = 0; i < 64 && receive_bus(a); i++)
		;
}

/* Calls the watches that were ready; items[FIRST_WATCH + i] was polled for
 * a->watches[i] (nothing is swept between the poll and here). */
static void run_ready_watches(struct actor *a, const zmq_pollitem_t *items, size_t nwatches)
{
	for (size_t i = 0; i < nwatches && i < a->nwatches; i++) {
		short revents = items[FIRST_WATCH + i].revents;
		if (!revents || a->watches[i].removed)
			continue;
		struct watch w = a->watches[i];
		int ev = (revents & ZMQ_POLLIN ? MG_FD_READ : 0) |
		         (revents & ZMQ_POLLOUT ? MG_FD_WRITE : 0);
		w.fn(&a->p->ctx, w.fd, ev, w.arg);
	}
}

static void *actor_main(void *arg)
{
	struct actor *a = arg;
	int zero = 0, hwm = 100000;

	a->dealer = zmq_socket(a->p->core->zctx, ZMQ_DEALER);
	zmq_setsockopt(a->dealer, ZMQ_ROUTING_ID, a->p->routing_id, strlen(a->p->routing_id));
	zmq_setsockopt(a->dealer, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(a->dealer, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(a->dealer, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_connect(a->dealer, a->p->core->inproc_endpoint);
	a->pipe = zmq_socket(a->p->core->zctx, ZMQ_PAIR);
	zmq_setsockopt(a->pipe, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_connect(a->pipe, a->pipe_ep);
	zmq_send(a->pipe, "READY", 5, 0);

	for (;;) {
		sweep_removed(a); /* no walk is under way here */
		size_t nitems = poll_items(a);
		zmq_pollitem_t *items = a->items;
		int n = zmq_poll(items, (int)nitems, next_timeout(a));
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && (items[0].revents & ZMQ_POLLIN)) {
			char cmd[16] = "";
			int len = zmq_recv(a->pipe, cmd, sizeof(cmd) - 1, 0);
			if (len > 0 && run_command(a, cmd))
				break;
		}
		if (n > 0 && (items[1].revents & ZMQ_POLLIN))
			receive_bus_burst(a);
		if (n > 0 && (items[2].revents & ZMQ_POLLIN))
			receive_posts(a);
		if (n > 0)
			run_ready_watches(a, items, nitems - FIRST_WATCH);
		run_due_timers(a);
	}
	core_thread_client_close();
	zmq_close(a->dealer);
	zmq_close(a->pipe);
	return NULL;
}

static void actor_free(struct actor *a)
{
	if (a->pipe_core)
		zmq_close(a->pipe_core);
	if (a->post_fd >= 0)
		close(a->post_fd);
	free(a->items);
	free(a);
}

/* Publishes (or withdraws) the actor to posters on other threads. */
static void set_actor(struct plugin *p, struct actor *a)
{
	pthread_mutex_lock(&posts_lock);
	p->actor = a;
	pthread_mutex_unlock(&posts_lock);
}

int actor_spawn(struct plugin *p)
{
	struct actor *a = calloc(1, sizeof(*a));
	int zero = 0, rc;
	char buf[8];

	if (!a)
		return -ENOMEM;
	a->p = p;
	a->posts_tail = &a->posts;
	a->posts_open = 1;
	a->items_cap = FIRST_WATCH + 16;
	a->items = malloc(a->items_cap * sizeof(*a->items));
	a->post_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!a->items || a->post_fd < 0) {
		rc = a->items ? -errno : -ENOMEM;
		actor_free(a);
		return rc;
	}
	snprintf(a->pipe_ep, sizeof(a->pipe_ep), "inproc://actor-%s", p->routing_id);
	a->pipe_core = zmq_socket(p->core->zctx, ZMQ_PAIR);
	zmq_setsockopt(a->pipe_core, ZMQ_LINGER, &zero, sizeof(zero));
	if (zmq_bind(a->pipe_core, a->pipe_ep)) {
		rc = -errno;
		actor_free(a);
		return rc;
	}
	set_actor(p, a);
	rc = pthread_create(&a->thread, NULL, actor_main, a);
	if (rc) {
		set_actor(p, NULL);
		actor_free(a);
		return -rc;
	}
	core_name_thread(a->thread, p->name);
	zmq_recv(a->pipe_core, buf, sizeof(buf), 0); /* READY */
	return 0;
}

int actor_send(struct plugin *p, const char *command)
{
	if (!p->actor)
		return -ESRCH;
	return zmq_send(p->actor->pipe_core, command, strlen(command), 0) < 0 ? -errno : 0;
}

size_t actor_wait_any(struct plugin *const *ps, size_t n, int *result)
{
	zmq_pollitem_t items[n ? n : 1];
	for (size_t i = 0; i < n; i++)
		items[i] = (zmq_pollitem_t){ps[i]->actor->pipe_core, 0, ZMQ_POLLIN, 0};
	while (zmq_poll(items, (int)n, -1) < 0 && errno == EINTR)
		;
	size_t i = 0;
	while (i + 1 < n && !(items[i].revents & ZMQ_POLLIN))
		i++;
	char reply[16] = "";
	int len = zmq_recv(ps[i]->actor->pipe_core, reply, sizeof(reply) - 1, 0);
	*result = len > 0 ? atoi(reply) : -EIO;
	return i;
}

int actor_call(struct plugin *p, const char *command)
{
	int rc = actor_send(p, command);
	if (!rc)
		actor_wait_any(&p, 1, &rc);
	return rc;
}

void actor_terminate(struct plugin *p)
{
	struct actor *a = p->actor;
	if (!a)
		return;
	actor_call(p, "STOP");
	pthread_join(a->thread, NULL);
	set_actor(p, NULL);
	run_posts(a, take_posts(a, 0), 0); /* left only if the loop broke off */
	actor_free(a);
}
