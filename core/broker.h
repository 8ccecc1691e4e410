/* The bus broker: one ROUTER socket, on an inproc endpoint for plugins
 * and on the ipc socket for meshgatectl and out-of-process plugins. It
 * routes requests to the owner of the service and replies back, and fans
 * events out to subscribers. It keeps no per-request state: requesters
 * enforce their own deadline, owners drop requests already past it. */
#ifndef MG_BROKER_H
#define MG_BROKER_H

#include <jansson.h>

struct broker;

/* Requests for "core.*" are answered by this, on the broker's thread. */
typedef json_t *(*broker_core_fn)(const char *service, json_t *request, void *arg);

struct broker *broker_new(void *zctx, const char *inproc, const char *ipc_path,
                          broker_core_fn core_fn, void *core_arg, char *err, size_t errlen);
int broker_start(struct broker *b);
void broker_free(struct broker *b); /* stops the thread, closes, removes the socket file */

/* Registrations of in-process plugins, done under the broker's lock so that
 * a service is routable as soon as the call returns. */
int broker_service_add(struct broker *b, const char *service, const char *owner);
int broker_service_del(struct broker *b, const char *service, const char *owner);
int broker_subscribe(struct broker *b, const char *prefix, const char *owner);
int broker_unsubscribe(struct broker *b, const char *prefix, const char *owner);
/* Whether any subscription (of a plugin, or of an outside client that
 * subscribed through the socket) matches `topic`: publishers skip an event
 * nobody would receive before paying for it. A subscription added while
 * the event is on its way may miss it, as it may when the SUB and the PUB
 * cross in the broker's queue. */
int broker_has_subscriber(struct broker *b, const char *topic);
/* Drops everything `owner` registered. */
void broker_forget(struct broker *b, const char *owner);

#endif
