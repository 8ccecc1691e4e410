#include "bus_proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const verb_names[] = {
    [MG_BUS_REQ] = "REQ", [MG_BUS_REP] = "REP",     [MG_BUS_PUB] = "PUB",
    [MG_BUS_EVT] = "EVT", [MG_BUS_SUB] = "SUB",     [MG_BUS_UNSUB] = "UNSUB",
    [MG_BUS_REG] = "REG", [MG_BUS_UNREG] = "UNREG", [MG_BUS_ACK] = "ACK",
};
#define VERB_COUNT (sizeof(verb_names) / sizeof(verb_names[0]))

static int slice_is(struct mg_bus_slice s, const char *text)
{
	size_t n = strlen(text);
	return s.len == n && memcmp(s.data, text, n) == 0;
}

int mg_bus_reply_rc(const char *code)
{
	if (!code)
		return 0;
	if (!strcmp(code, "unknown_service"))
		return -ENOENT;
	if (!strcmp(code, "timeout"))
		return -ETIMEDOUT;
	return -EREMOTEIO;
}

int mg_bus_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > MG_BUS_MAX_NAME)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static int parse_deadline(struct mg_bus_slice s, uint64_t *out)
{
	uint64_t v = 0;
	if (s.len == 0 || s.len > 19)
		return -1;
	for (size_t i = 0; i < s.len; i++) {
		if (s.data[i] < '0' || s.data[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s.data[i] - '0');
	}
	*out = v;
	return 0;
}

/* The frames after version and verb, per verb and direction. */
static size_t expected_frames(enum mg_bus_dir dir, enum mg_bus_verb verb)
{
	switch (verb) {
	case MG_BUS_REQ:
		return dir == MG_BUS_TO_BROKER ? 4 : 5; /* [origin] id service deadline payload */
	case MG_BUS_REP:
		return dir == MG_BUS_TO_BROKER ? 3 : 2; /* [origin] id payload */
	case MG_BUS_PUB:
	case MG_BUS_EVT:
		return 2; /* topic payload */
	case MG_BUS_SUB:
	case MG_BUS_UNSUB:
	case MG_BUS_REG:
	case MG_BUS_UNREG:
		return 1; /* name */
	case MG_BUS_ACK:
		return 2; /* name status */
	}
	return 0;
}

#define FAIL(reason)            \
	do {                    \
		*why = reason;  \
		return -EPROTO; \
	} while (0)

int mg_bus_decode(enum mg_bus_dir dir, const struct mg_bus_slice *frames, size_t nframes,
                  struct mg_bus_msg *msg, const char **why)
{
	memset(msg, 0, sizeof(*msg));
	if (nframes < 2)
		FAIL("too few frames");
	if (!slice_is(frames[0], MG_BUS_VERSION))
		FAIL("unknown protocol version");
	for (size_t v = 1; v < VERB_COUNT; v++)
		if (slice_is(frames[1], verb_names[v]))
			msg->verb = (enum mg_bus_verb)v;
	if (!msg->verb)
		FAIL("unknown verb");
	if (nframes - 2 != expected_frames(dir, msg->verb))
		FAIL("wrong number of frames for verb");

	const struct mg_bus_slice *f = frames + 2;
	int has_origin = (msg->verb == MG_BUS_REQ && dir == MG_BUS_FROM_BROKER) ||
	                 (msg->verb == MG_BUS_REP && dir == MG_BUS_TO_BROKER);
	if (has_origin) {
		msg->origin = *f++;
		if (msg->origin.len == 0 || msg->origin.len > MG_BUS_MAX_ID)
			FAIL("bad origin");
	}
	switch (msg->verb) {
	case MG_BUS_REQ:
		msg->id = f[0];
		msg->name = f[1];
		if (parse_deadline(f[2], &msg->deadline_ms))
			FAIL("bad deadline");
		msg->payload = f[3];
		break;
	case MG_BUS_REP:
		msg->id = f[0];
		msg->payload = f[1];
		break;
	case MG_BUS_PUB:
	case MG_BUS_EVT:
		msg->name = f[0];
		msg->payload = f[1];
		break;
	case MG_BUS_ACK:
		msg->name = f[0];
		msg->payload = f[1];
		break;
	default:
		msg->name = f[0];
		break;
	}
	if ((msg->verb == MG_BUS_REQ || msg->verb == MG_BUS_REP) &&
	    (msg->id.len == 0 || msg->id.len > MG_BUS_MAX_ID))
		FAIL("bad request id");
	if (msg->verb != MG_BUS_REP && msg->verb != MG_BUS_ACK &&
	    !mg_bus_name_valid(msg->name.data, msg->name.len))
		FAIL("bad service or topic name");
	if (msg->payload.len > MG_BUS_MAX_PAYLOAD)
		FAIL("payload too large");
	return 0;
}

size_t mg_bus_encode(enum mg_bus_dir dir, const struct mg_bus_msg *msg,
                     struct mg_bus_slice frames[MG_BUS_MAX_FRAMES], char deadline_buf[24])
{
	size_t n = 0;
	frames[n++] = (struct mg_bus_slice){MG_BUS_VERSION, strlen(MG_BUS_VERSION)};
	frames[n++] = (struct mg_bus_slice){verb_names[msg->verb], strlen(verb_names[msg->verb])};
	int has_origin = (msg->verb == MG_BUS_REQ && dir == MG_BUS_FROM_BROKER) ||
	                 (msg->verb == MG_BUS_REP && dir == MG_BUS_TO_BROKER);
	if (has_origin)
		frames[n++] = msg->origin;
	switch (msg->verb) {
	case MG_BUS_REQ: {
		int len = snprintf(deadline_buf, 24, "%llu", (unsigned long long)msg->deadline_ms);
		frames[n++] = msg->id;
		frames[n++] = msg->name;
		frames[n++] = (struct mg_bus_slice){deadline_buf, (size_t)len};
		frames[n++] = msg->payload;
		break;
	}
	case MG_BUS_REP:
		frames[n++] = msg->id;
		frames[n++] = msg->payload;
		break;
	case MG_BUS_PUB:
	case MG_BUS_EVT:
	case MG_BUS_ACK:
		frames[n++] = msg->name;
		frames[n++] = msg->payload;
		break;
	default:
		frames[n++] = msg->name;
		break;
	}
	return n;
}

uint64_t mg_bus_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
