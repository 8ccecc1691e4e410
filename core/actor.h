/* A plugin's actor: its own thread and event loop (bus socket, timers,
 * file descriptors, posts from other threads), driven by the core through
 * a pipe: a ready handshake at spawn, then INIT / START / RELOAD, and STOP
 * (czmq's $TERM), after which the core joins the thread (model: czmq's
 * zactor). */
#ifndef MG_ACTOR_H
#define MG_ACTOR_H

#include <stddef.h>

#include <meshgate/meshgate.h>

struct plugin;
struct actor;

int actor_spawn(struct plugin *p);
/* Runs a lifecycle command on the plugin's thread: "INIT", "START",
 * "RELOAD". Returns the callback's result. */
int actor_call(struct plugin *p, const char *command);
/* actor_call in two halves, so that several plugins run a command at the
 * same time: send it, then wait for the first answer among ps[0..n)
 * (n > 0, each sent one command): returns its index and puts the
 * callback's result in *result. */
int actor_send(struct plugin *p, const char *command);
size_t actor_wait_any(struct plugin *const *ps, size_t n, int *result);
/* Sends STOP (the posts already accepted run, then the plugin's stop if
 * its init succeeded), joins the thread and drops every registration of
 * the plugin. */
void actor_terminate(struct plugin *p);
/* mg_post: any thread, at any time while the plugin is loaded. Queues fn
 * to run on the plugin's thread; -ESHUTDOWN once STOP has begun (or before
 * spawn), -EINVAL without fn, -ENOMEM. */
int actor_post(struct plugin *p, mg_post_fn fn, void *arg);

/* The plugin's loop, for the ops table: callers must be on its thread. */
int actor_on_own_thread(struct actor *a);
int actor_service_add(struct actor *a, const char *service, mg_service_fn fn, void *arg);
int actor_service_del(struct actor *a, const char *service);
int actor_subscribe(struct actor *a, const char *prefix, mg_event_fn fn, void *arg);
int actor_unsubscribe(struct actor *a, const char *prefix);
int actor_timer_add(struct actor *a, unsigned interval_ms, int repeat, mg_timer_fn fn, void *arg);
int actor_timer_del(struct actor *a, int id);
int actor_fd_watch(struct actor *a, int fd, int events, mg_fd_fn fn, void *arg);
int actor_fd_unwatch(struct actor *a, int fd);
/* Deferred replies: defer during a handler, reply later (own thread). */
mg_reply_token *actor_defer(struct actor *a);
void actor_reply(struct actor *a, mg_reply_token *token, json_t *reply);

#endif
