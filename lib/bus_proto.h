/* The bus wire protocol: the frames of every message on the ZeroMQ bus,
 * in-process and on the ipc socket alike. docs/bus.md describes it. */
#ifndef MG_BUS_PROTO_H
#define MG_BUS_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define MG_BUS_VERSION     "MG1"
#define MG_BUS_MAX_NAME    128       /* service names and topics */
#define MG_BUS_MAX_ID      64        /* request ids and routing ids */
#define MG_BUS_MAX_PAYLOAD (1 << 22) /* 4 MiB of JSON */
#define MG_BUS_MAX_FRAMES  8

enum mg_bus_verb {
	MG_BUS_REQ = 1, /* client -> broker -> owner: a request */
	MG_BUS_REP,     /* owner -> broker -> client: its reply */
	MG_BUS_PUB,     /* client -> broker: publish an event */
	MG_BUS_EVT,     /* broker -> subscriber: an event */
	MG_BUS_SUB,     /* subscribe to a topic prefix */
	MG_BUS_UNSUB,
	MG_BUS_REG, /* register a service (out-of-process plugins) */
	MG_BUS_UNREG,
	MG_BUS_ACK, /* broker -> client: result of SUB/UNSUB/REG/UNREG */
};

/* Which side sent the frames: the same verb has other frames on its way
 * into the broker than on its way out. */
enum mg_bus_dir { MG_BUS_TO_BROKER, MG_BUS_FROM_BROKER };

struct mg_bus_slice {
	const char *data;
	size_t len;
};

struct mg_bus_msg {
	enum mg_bus_verb verb;
	struct mg_bus_slice origin;  /* routing id of the requester (REQ/REP via broker) */
	struct mg_bus_slice id;      /* request id */
	struct mg_bus_slice name;    /* service (REQ, REG, ACK) or topic (PUB, EVT, SUB) */
	struct mg_bus_slice payload; /* JSON text (REQ, REP, PUB, EVT) or status (ACK) */
	uint64_t deadline_ms;        /* REQ: absolute, CLOCK_REALTIME milliseconds */
};

/* Decodes the frames of one message (without the ROUTER's routing id).
 * Returns 0, or -EPROTO with *why set to a static reason. The slices
 * point into the frames. */
int mg_bus_decode(enum mg_bus_dir dir, const struct mg_bus_slice *frames, size_t nframes,
                  struct mg_bus_msg *msg, const char **why);

/* Fills frames[] for `msg` as `dir` expects them; returns the count. */
size_t mg_bus_encode(enum mg_bus_dir dir, const struct mg_bus_msg *msg,
                     struct mg_bus_slice frames[MG_BUS_MAX_FRAMES], char deadline_buf[24]);

/* What mg_request() returns for a reply whose "error" member is `code`
 * (NULL: no error): 0, -ENOENT, -ETIMEDOUT or -EREMOTEIO. */
int mg_bus_reply_rc(const char *code);

/* A service or topic name: 1..MG_BUS_MAX_NAME of [A-Za-z0-9._-]. */
int mg_bus_name_valid(const char *name, size_t len);

uint64_t mg_bus_now_ms(void);

#endif
