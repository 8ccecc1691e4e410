#include "bus_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bus_proto.h"

struct mg_bus_client {
	void *sock;
	uint64_t next_id;
};

struct mg_bus_client *mg_bus_client_new(void *zctx, const char *endpoint, char *err, size_t errlen)
{
	struct mg_bus_client *c = calloc(1, sizeof(*c));
	int linger = 0;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->sock = zmq_socket(zctx, ZMQ_DEALER);
	if (!c->sock || zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof(linger)) ||
	    zmq_connect(c->sock, endpoint)) {
		snprintf(err, errlen, "cannot connect to %s: %s", endpoint, zmq_strerror(errno));
		if (c->sock)
			zmq_close(c->sock);
		free(c);
		return NULL;
	}
	return c;
}

void mg_bus_client_free(struct mg_bus_client *c)
{
	if (!c)
		return;
	zmq_close(c->sock);
	free(c);
}

int mg_bus_error(json_t **reply, int rc, const char *code, const char *fmt, ...)
{
	char message[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	*reply = json_pack("{s:s, s:s}", "error", code, "message", message);
	return rc;
}

int mg_bus_client_send_raw(struct mg_bus_client *c, const void *const *frames, const size_t *lens,
                           size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (zmq_send(c->sock, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
			return -errno;
	return 0;
}

static int send_msg(struct mg_bus_client *c, const struct mg_bus_msg *msg)
{
	struct mg_bus_slice frames[MG_BUS_MAX_FRAMES];
	const void *ptrs[MG_BUS_MAX_FRAMES];
	size_t lens[MG_BUS_MAX_FRAMES];
	char deadline[24];
	size_t n = mg_bus_encode(MG_BUS_TO_BROKER, msg, frames, deadline);
	for (size_t i = 0; i < n; i++) {
		ptrs[i] = frames[i].data;
		lens[i] = frames[i].len;
	}
	return mg_bus_client_send_raw(c, ptrs, lens, n);
}

int mg_bus_recv_frames(void *sock, zmq_msg_t *msgs, size_t max)
{
	size_t n = 0;
	int more = 1;
	while (more) {
		zmq_msg_t part;
		zmq_msg_init(&part);
		if (zmq_msg_recv(&part, sock, 0) < 0) {
			zmq_msg_close(&part);
			for (size_t i = 0; i < n; i++)
				zmq_msg_close(&msgs[i]);
			return -errno;
		}
		more = zmq_msg_more(&part);
		if (n < max)
			msgs[n++] = part;
		else
			zmq_msg_close(&part);
	}
	return (int)n;
}

static int reply_from(const struct mg_bus_msg *msg, json_t **reply)
{
	json_error_t jerr;
	json_t *v = json_loadb(msg->payload.data, msg->payload.len, 0, &jerr);
	if (!json_is_object(v)) {
		json_decref(v);
		return mg_bus_error(reply, -EPROTO, "bad_reply", "malformed reply: %s", jerr.text);
	}
	*reply = v;
	return mg_bus_reply_rc(json_string_value(json_object_get(v, "error")));
}

int mg_bus_client_request(struct mg_bus_client *c, const char *service, json_t *request,
                          int timeout_ms, json_t **reply)
{
	char id[24];
	uint64_t deadline;

	*reply = NULL;
	if (!mg_bus_name_valid(service, strlen(service)))
		return mg_bus_error(reply, -EINVAL, "bad_request", "invalid service name");
	if (timeout_ms <= 0)
		timeout_ms = 5000;
	deadline = mg_bus_now_ms() + (uint64_t)timeout_ms;
	char *payload = request ? json_dumps(request, JSON_COMPACT) : strdup("{}");
	if (!payload)
		return mg_bus_error(reply, -ENOMEM, "internal", "out of memory");

	snprintf(id, sizeof(id), "%llu", (unsigned long long)++c->next_id);
	struct mg_bus_msg msg = {
	    .verb = MG_BUS_REQ,
	    .id = {id, strlen(id)},
	    .name = {service, strlen(service)},
	    .payload = {payload, strlen(payload)},
	    .deadline_ms = deadline,
	};
	int rc = send_msg(c, &msg);
	free(payload);
	if (rc)
		return mg_bus_error(reply, rc, "internal", "cannot send: %s", zmq_strerror(-rc));

	for (;;) {
		uint64_t now = mg_bus_now_ms();
		if (now >= deadline)
			break;
		zmq_pollitem_t item = {c->sock, 0, ZMQ_POLLIN, 0};
		int n = zmq_poll(&item, 1, (long)(deadline - now));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return mg_bus_error(reply, -errno, "internal", "poll: %s",
			                    zmq_strerror(errno));
		if (n == 0)
			break;
		zmq_msg_t parts[MG_BUS_MAX_FRAMES];
		int nparts = mg_bus_recv_frames(c->sock, parts, MG_BUS_MAX_FRAMES);
		if (nparts < 0)
			return mg_bus_error(reply, nparts, "internal", "receive: %s",
			                    zmq_strerror(-nparts));
		struct mg_bus_slice frames[MG_BUS_MAX_FRAMES];
		for (int i = 0; i < nparts; i++)
			frames[i] =
			    (struct mg_bus_slice){zmq_msg_data(&parts[i]), zmq_msg_size(&parts[i])};
		struct mg_bus_msg in;
		const char *why;
		int done = 0;
		if (!mg_bus_decode(MG_BUS_FROM_BROKER, frames, (size_t)nparts, &in, &why) &&
		    in.verb == MG_BUS_REP && in.id.len == strlen(id) &&
		    !memcmp(in.id.data, id, in.id.len)) {
			rc = reply_from(&in, reply);
			done = 1;
		}
		/* anything else is a late reply to an earlier request: dropped */
		for (int i = 0; i < nparts; i++)
			zmq_msg_close(&parts[i]);
		if (done)
			return rc;
	}
	return mg_bus_error(reply, -ETIMEDOUT, "timeout", "no reply from '%s' within %d ms",
	                    service, timeout_ms);
}

int mg_bus_client_publish(struct mg_bus_client *c, const char *topic, json_t *payload)
{
	if (!mg_bus_name_valid(topic, strlen(topic)))
		return -EINVAL;
	char *text = payload ? json_dumps(payload, JSON_COMPACT) : strdup("{}");
	if (!text)
		return -ENOMEM;
	struct mg_bus_msg msg = {
	    .verb = MG_BUS_PUB,
	    .name = {topic, strlen(topic)},
	    .payload = {text, strlen(text)},
	};
	int rc = send_msg(c, &msg);
	free(text);
	return rc;
}
