/* A bus client: one ZeroMQ DEALER connected to the broker, for requests
 * with a deadline, events published, and (for out-of-process clients)
 * subscriptions. Not thread-safe: one per thread. */
#ifndef MG_BUS_CLIENT_H
#define MG_BUS_CLIENT_H

#include <jansson.h>
#include <zmq.h>

struct mg_bus_client;

/* zctx: a ZeroMQ context; endpoint: "ipc:///run/meshgate/meshgate.sock" or
 * "inproc://...". */
struct mg_bus_client *mg_bus_client_new(void *zctx, const char *endpoint, char *err, size_t errlen);
void mg_bus_client_free(struct mg_bus_client *client);

/* Same contract as mg_request() in the SDK: *reply is always set. */
int mg_bus_client_request(struct mg_bus_client *client, const char *service, json_t *request,
                          int timeout_ms, json_t **reply);
int mg_bus_client_publish(struct mg_bus_client *client, const char *topic, json_t *payload);

/* Sends raw frames: for tests of malformed messages. */
int mg_bus_client_send_raw(struct mg_bus_client *client, const void *const *frames,
                           const size_t *lens, size_t n);

/* Receives one whole message from a bus socket into msgs[]: the frame
 * count (frames past `max` are dropped), or -errno. The caller closes
 * the msgs it got. */
int mg_bus_recv_frames(void *sock, zmq_msg_t *msgs, size_t max);

/* The error code, message and return value of a failed request, as one. */
int mg_bus_error(json_t **reply, int rc, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
