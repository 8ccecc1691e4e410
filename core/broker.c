#include "broker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "bus_proto.h"
#include "core.h"

#define BROKER_HWM 100000

struct route {
	char *name;  /* service name or topic prefix */
	char *owner; /* routing id */
	size_t owner_len;
};

struct table {
	struct route *items;
	size_t n, cap;
};

struct broker {
	void *zctx;
	void *router;
	void *control; /* PAIR, main side; the thread has the other end */
	char control_ep[64];
	char *ipc_path;
	pthread_t thread;
	int running;
	/* services, subs: written on (un)registration, read for every message
	 * and by publishers on any thread (broker_has_subscriber) */
	pthread_rwlock_t lock;
	struct table services;
	struct table subs;
	broker_core_fn core_fn;
	void *core_arg;
};

/* ---- tables ---- */

static ssize_t table_find(struct table *t, const char *name, const char *owner, size_t owner_len)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->items[i].name, name) &&
		    (!owner || (t->items[i].owner_len == owner_len &&
		                !memcmp(t->items[i].owner, owner, owner_len))))
			return (ssize_t)i;
	return -1;
}

static int table_add(struct table *t, const char *name, const char *owner, size_t owner_len)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct route *r = realloc(t->items, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		t->items = r;
		t->cap = cap;
	}
	struct route *r = &t->items[t->n];
	r->name = strdup(name);
	r->owner = malloc(owner_len);
	if (!r->name || !r->owner) {
		free(r->name);
		free(r->owner);
		return -ENOMEM;
	}
	memcpy(r->owner, owner, owner_len);
	r->owner_len = owner_len;
	t->n++;
	return 0;
}

static void table_remove_at(struct table *t, size_t i)
{
	free(t->items[i].name);
	free(t->items[i].owner);
	t->items[i] = t->items[--t->n];
}

static void table_free(struct table *t)
{
	while (t->n)
		table_remove_at(t, t->n - 1);
	free(t->items);
}

static int service_add(struct broker *b, const char *service, const char *owner, size_t len)
{
	int rc;
	if (!mg_bus_name_valid(service, strlen(service)))
		return -EINVAL;
	pthread_rwlock_wrlock(&b->lock);
	rc = table_find(&b->services, service, NULL, 0) >= 0
	         ? -EEXIST
	         : table_add(&b->services, service, owner, len);
	pthread_rwlock_unlock(&b->lock);
	return rc;
}

static int remove_route(struct broker *b, struct table *t, const char *name, const char *owner,
                        size_t len)
{
	pthread_rwlock_wrlock(&b->lock);
	ssize_t i = table_find(t, name, owner, len);
	if (i >= 0)
		table_remove_at(t, (size_t)i);
	pthread_rwlock_unlock(&b->lock);
	return i >= 0 ? 0 : -ENOENT;
}

static int subscribe(struct broker *b, const char *prefix, const char *owner, size_t len)
{
	int rc = 0;
	if (!mg_bus_name_valid(prefix, strlen(prefix)))
		return -EINVAL;
	pthread_rwlock_wrlock(&b->lock);
	if (table_find(&b->subs, prefix, owner, len) < 0)
		rc = table_add(&b->subs, prefix, owner, len);
	pthread_rwlock_unlock(&b->lock);
	return rc;
}

int broker_service_add(struct broker *b, const char *service, const char *owner)
{
	return service_add(b, service, owner, strlen(owner));
}

int broker_service_del(struct broker *b, const char *service, const char *owner)
{
	return remove_route(b, &b->services, service, owner, strlen(owner));
}

int broker_subscribe(struct broker *b, const char *prefix, const char *owner)
{
	return subscribe(b, prefix, owner, strlen(owner));
}

int broker_unsubscribe(struct broker *b, const char *prefix, const char *owner)
{
	return remove_route(b, &b->subs, prefix, owner, strlen(owner));
}

static void forget(struct broker *b, const char *owner, size_t len)
{
	struct table *tables[] = {&b->services, &b->subs};
	pthread_rwlock_wrlock(&b->lock);
	for (size_t t = 0; t < 2; t++)
		for (size_t i = tables[t]->n; i-- > 0;)
			if (tables[t]->items[i].owner_len == len &&
			    !memcmp(tables[t]->items[i].owner, owner, len))
				table_remove_at(tables[t], i);
	pthread_rwlock_unlock(&b->lock);
}

void broker_forget(struct broker *b, const char *owner)
{
	forget(b, owner, strlen(owner));
}

/* ---- the loop ---- */

/* Sends [to][frames...] without blocking; a peer that is gone or full loses
 * the message (its requester times out), the broker never stalls. */
static int send_to(struct broker *b, struct mg_bus_slice to, const struct mg_bus_msg *msg)
{
	struct mg_bus_slice frames[MG_BUS_MAX_FRAMES];
	char deadline[24];
	size_t n = mg_bus_encode(MG_BUS_FROM_BROKER, msg, frames, deadline);
	if (zmq_send(b->router, to.data, to.len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return -errno;
	for (size_t i = 0; i < n; i++)
		if (zmq_send(b->router, frames[i].data, frames[i].len,
		             (i + 1 < n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
			return -errno;
	return 0;
}

static void reply_json(struct broker *b, struct mg_bus_slice to, struct mg_bus_slice id,
                       json_t *reply)
{
	char *text = json_dumps(reply, JSON_COMPACT);
	if (!text)
		return;
	struct mg_bus_msg rep = {.verb = MG_BUS_REP, .id = id, .payload = {text, strlen(text)}};
	send_to(b, to, &rep);
	free(text);
}

static void reply_error(struct broker *b, struct mg_bus_slice to, struct mg_bus_slice id,
                        const char *code, const char *message)
{
	json_t *err = json_pack("{s:s, s:s}", "error", code, "message", message);
	reply_json(b, to, id, err);
	json_decref(err);
}

static void ack(struct broker *b, struct mg_bus_slice to, struct mg_bus_slice name, int rc)
{
	const char *status = rc ? strerror(-rc) : "ok";
	struct mg_bus_msg msg = {
	    .verb = MG_BUS_ACK, .name = name, .payload = {status, strlen(status)}};
	send_to(b, to, &msg);
}

static void handle_core_request(struct broker *b, struct mg_bus_slice from,
                                const struct mg_bus_msg *msg, const char *service)
{
	json_t *request = json_loadb(msg->payload.data, msg->payload.len, 0, NULL);
	if (!json_is_object(request)) {
		json_decref(request);
		reply_error(b, from, msg->id, "bad_request", "payload is not a JSON object");
		return;
	}
	json_t *reply = b->core_fn ? b->core_fn(service, request, b->core_arg) : NULL;
	json_decref(request);
	if (!reply)
		reply = json_pack("{s:s, s:s}", "error", "unknown_service", "message",
		                  "no such core service");
	reply_json(b, from, msg->id, reply);
	json_decref(reply);
}

static void route_request(struct broker *b, struct mg_bus_slice from, const struct mg_bus_msg *msg)
{
	char service[MG_BUS_MAX_NAME + 1];
	memcpy(service, msg->name.data, msg->name.len);
	service[msg->name.len] = '\0';

	if (!strncmp(service, "core.", 5)) {
		handle_core_request(b, from, msg, service);
		return;
	}
	char owner[MG_BUS_MAX_ID];
	size_t owner_len = 0;
	pthread_rwlock_rdlock(&b->lock);
	ssize_t i = table_find(&b->services, service, NULL, 0);
	if (i >= 0) {
		owner_len = b->services.items[i].owner_len;
		memcpy(owner, b->services.items[i].owner, owner_len);
	}
	pthread_rwlock_unlock(&b->lock);
	if (i < 0) {
		char message[256];
		snprintf(message, sizeof(message), "no plugin serves '%s'", service);
		reply_error(b, from, msg->id, "unknown_service", message);
		return;
	}
	struct mg_bus_msg fwd = *msg;
	fwd.origin = from;
	if (send_to(b, (struct mg_bus_slice){owner, owner_len}, &fwd) == -EHOSTUNREACH) {
		/* an out-of-process owner went away without UNREG */
		forget(b, owner, owner_len);
		char message[256];
		snprintf(message, sizeof(message), "the owner of '%s' is gone", service);
		reply_error(b, from, msg->id, "unknown_service", message);
	}
}

static int topic_matches(const char *topic, const struct route *r)
{
	return !strncmp(topic, r->name, strlen(r->name));
}

int broker_has_subscriber(struct broker *b, const char *topic)
{
	int found = 0;
	pthread_rwlock_rdlock(&b->lock);
	for (size_t i = 0; i < b->subs.n && !found; i++)
		found = topic_matches(topic, &b->subs.items[i]);
	pthread_rwlock_unlock(&b->lock);
	return found;
}

static void route_event(struct broker *b, const struct mg_bus_msg *msg)
{
	char topic[MG_BUS_MAX_NAME + 1];
	memcpy(topic, msg->name.data, msg->name.len);
	topic[msg->name.len] = '\0';
	struct mg_bus_msg evt = {.verb = MG_BUS_EVT, .name = msg->name, .payload = msg->payload};

	/* Each subscriber gets an event once, however many of its prefixes
	 * match. Sends never block, so holding the lock is cheap. */
	pthread_rwlock_rdlock(&b->lock);
	for (size_t i = 0; i < b->subs.n; i++) {
		struct route *r = &b->subs.items[i];
		if (!topic_matches(topic, r))
			continue;
		int seen = 0;
		for (size_t j = 0; j < i && !seen; j++)
			seen = topic_matches(topic, &b->subs.items[j]) &&
			       b->subs.items[j].owner_len == r->owner_len &&
			       !memcmp(b->subs.items[j].owner, r->owner, r->owner_len);
		if (!seen)
			send_to(b, (struct mg_bus_slice){r->owner, r->owner_len}, &evt);
	}
	pthread_rwlock_unlock(&b->lock);
}

static void handle(struct broker *b, struct mg_bus_slice from, const struct mg_bus_msg *msg)
{
	char name[MG_BUS_MAX_NAME + 1] = "";
	if (msg->name.len && msg->name.len <= MG_BUS_MAX_NAME) {
		memcpy(name, msg->name.data, msg->name.len);
		name[msg->name.len] = '\0';
	}
	switch (msg->verb) {
	case MG_BUS_REQ:
		route_request(b, from, msg);
		break;
	case MG_BUS_REP: {
		struct mg_bus_msg rep = {
		    .verb = MG_BUS_REP, .id = msg->id, .payload = msg->payload};
		send_to(b, msg->origin, &rep);
		break;
	}
	case MG_BUS_PUB:
		route_event(b, msg);
		break;
	case MG_BUS_SUB:
		ack(b, from, msg->name, subscribe(b, name, from.data, from.len));
		break;
	case MG_BUS_UNSUB:
		ack(b, from, msg->name, remove_route(b, &b->subs, name, from.data, from.len));
		break;
	case MG_BUS_REG:
		ack(b, from, msg->name, service_add(b, name, from.data, from.len));
		break;
	case MG_BUS_UNREG:
		ack(b, from, msg->name, remove_route(b, &b->services, name, from.data, from.len));
		break;
	default: /* EVT and ACK only flow out of the broker */
		break;
	}
}

/* Reads one message from the router; malformed ones are answered with an
 * error when they carry a request id, dropped otherwise. 0 when none was
 * waiting. */
static int receive_one(struct broker *b)
{
	zmq_msg_t parts[MG_BUS_MAX_FRAMES + 1];
	size_t n = 0;
	int more = 1, truncated = 0;

	while (more) {
		zmq_msg_t part;
		zmq_msg_init(&part);
		if (zmq_msg_recv(&part, b->router, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&part);
			break;
		}
		more = zmq_msg_more(&part);
		if (n < MG_BUS_MAX_FRAMES + 1)
			parts[n++] = part;
		else {
			truncated = 1;
			zmq_msg_close(&part);
		}
	}
	if (n < 1)
		return 0;
	struct mg_bus_slice frames[MG_BUS_MAX_FRAMES + 1];
	for (size_t i = 0; i < n; i++)
		frames[i] = (struct mg_bus_slice){zmq_msg_data(&parts[i]), zmq_msg_size(&parts[i])};
	struct mg_bus_slice from = frames[0];
	struct mg_bus_msg msg;
	const char *why = "too many frames";
	if (!truncated && !mg_bus_decode(MG_BUS_TO_BROKER, frames + 1, n - 1, &msg, &why)) {
		handle(b, from, &msg);
	} else {
		core_log(MG_LOG_DEBUG, "bus", "malformed message dropped: %s", why);
		/* [MG1][REQ][id]...: the sender waits for this id, tell it why */
		if (n >= 4 && frames[2].len == 3 && !memcmp(frames[2].data, "REQ", 3) &&
		    frames[3].len > 0 && frames[3].len <= MG_BUS_MAX_ID)
			reply_error(b, from, frames[3], "bad_message", why);
	}
	for (size_t i = 0; i < n; i++)
		zmq_msg_close(&parts[i]);
	return 1;
}

static void *broker_thread(void *arg)
{
	struct broker *b = arg;
	void *pipe = zmq_socket(b->zctx, ZMQ_PAIR);
	zmq_connect(pipe, b->control_ep);
	zmq_send(pipe, "READY", 5, 0);
	for (;;) {
		zmq_pollitem_t items[] = {{b->router, 0, ZMQ_POLLIN, 0}, {pipe, 0, ZMQ_POLLIN, 0}};
		if (zmq_poll(items, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (items[1].revents & ZMQ_POLLIN)
			break; /* $TERM */
		/* until a receive finds nothing: asking ZMQ_EVENTS before each
		 * would look at the socket twice per message */
		if (items[0].revents & ZMQ_POLLIN)
			for (int i = 0; i < 256 && receive_one(b); i++)
				;
	}
	zmq_close(pipe);
	return NULL;
}

struct broker *broker_new(void *zctx, const char *inproc, const char *ipc_path,
                          broker_core_fn core_fn, void *core_arg, char *err, size_t errlen)
{
	struct broker *b = calloc(1, sizeof(*b));
	int one = 1, zero = 0, hwm = BROKER_HWM;
	int64_t max_size = MG_BUS_MAX_PAYLOAD + 4096;
	char endpoint[512];

	if (!b) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_rwlock_init(&b->lock, NULL);
	b->zctx = zctx;
	b->core_fn = core_fn;
	b->core_arg = core_arg;
	snprintf(b->control_ep, sizeof(b->control_ep), "inproc://broker-control-%p", (void *)b);
	b->router = zmq_socket(zctx, ZMQ_ROUTER);
	b->control = zmq_socket(zctx, ZMQ_PAIR);
	if (!b->router || !b->control)
		goto zmq_fail;
	/* MANDATORY: a reply to a peer that is gone fails instead of vanishing;
	 * MAXMSGSIZE: a huge frame disconnects its sender, nobody else. */
	zmq_setsockopt(b->router, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
	zmq_setsockopt(b->router, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(b->router, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(b->router, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(b->router, ZMQ_MAXMSGSIZE, &max_size, sizeof(max_size));
	zmq_setsockopt(b->control, ZMQ_LINGER, &zero, sizeof(zero));
	if (zmq_bind(b->control, b->control_ep) || zmq_bind(b->router, inproc))
		goto zmq_fail;
	if (ipc_path) {
		snprintf(endpoint, sizeof(endpoint), "ipc://%s", ipc_path);
		mode_t old = umask(0117); /* the socket is born 0660 */
		int rc = zmq_bind(b->router, endpoint);
		umask(old);
		if (rc) {
			snprintf(err, errlen, "cannot listen on %s: %s", ipc_path,
			         zmq_strerror(errno));
			broker_free(b);
			return NULL;
		}
		chmod(ipc_path, 0660);
		b->ipc_path = strdup(ipc_path);
	}
	return b;
zmq_fail:
	snprintf(err, errlen, "bus: %s", zmq_strerror(errno));
	broker_free(b);
	return NULL;
}

int broker_start(struct broker *b)
{
	char buf[8];
	int rc = pthread_create(&b->thread, NULL, broker_thread, b);
	if (!rc)
		core_name_thread(b->thread, "broker");
	if (rc)
		return -rc;
	b->running = 1;
	zmq_recv(b->control, buf, sizeof(buf), 0); /* READY */
	return 0;
}

void broker_free(struct broker *b)
{
	if (!b)
		return;
	if (b->running) {
		zmq_send(b->control, "$TERM", 5, 0);
		pthread_join(b->thread, NULL);
	}
	if (b->router)
		zmq_close(b->router);
	if (b->control)
		zmq_close(b->control);
	if (b->ipc_path) {
		unlink(b->ipc_path);
		free(b->ipc_path);
	}
	table_free(&b->services);
	table_free(&b->subs);
	pthread_rwlock_destroy(&b->lock);
	free(b);
}
