/* mg_mock: an in-process, synchronous meshgate core for plugin unit tests.
 *
 * It implements the whole ops table of <meshgate/api.h> on the test's own
 * thread, so a plugin's tests run without meshgated, ZeroMQ or threads
 * (model: collectd's plugin_mock.c, but with working services, events,
 * state and a clock a test can move):
 *
 *  - plugins come from a descriptor linked into the test or from a .so;
 *  - their config is a JSON object merged over the declared defaults;
 *  - state is a real LMDB environment through core/state.h, with each
 *    plugin's `owns` databases claimed and every commit announced as the
 *    event "state.<db>" {"db", "key", "op"}, as the core does;
 *  - requests are routed synchronously to the registered handler, with the
 *    return codes of mg_request();
 *  - events are recorded for the test and delivered to subscribers once the
 *    call that published them has returned (never re-entrantly);
 *  - time is virtual: mg_mock_advance() moves it and fires due timers;
 *  - fd watches are recorded and fired by the test;
 *  - mg_post may be called from any thread (the queue is locked): the
 *    posts wait until the test calls mg_mock_run_posts(), which runs them
 *    on the test's thread, oldest first; a plugin's stop runs its pending
 *    posts before its stop callback and refuses later ones (-ESHUTDOWN),
 *    as in the core.
 *
 * Not thread-safe, but for mg_post: one mock per thread. Several mocks may live in one
 * process, each with its own plugins (the same plugin may be in two). */
#ifndef MG_MOCK_H
#define MG_MOCK_H

#include <stddef.h>
#include <stdint.h>

#include <meshgate/meshgate.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mg_mock;

/* A mock with its state in `state_dir` (created if missing, kept at free),
 * or in a fresh temporary directory removed by mg_mock_free when NULL.
 * NULL with a message in err on failure. */
struct mg_mock *mg_mock_new(const char *state_dir, char *err, size_t errlen);
/* Stops whatever runs (reverse dependency order), unloads, closes state. */
void mg_mock_free(struct mg_mock *mock);

/* Adds a plugin from its descriptor (sources linked into the test) or from
 * a meshgate-NAME.so (dlopen RTLD_NOW|RTLD_LOCAL). `config` (borrowed, may
 * be NULL) is the plugin's section, validated as meshgated validates the
 * file (core/config.c: every level, defaults filled in). The descriptor
 * is checked as the core checks it (core/host.c: ABI major and minor,
 * size, build signature, name, duplicates), with the core's messages:
 * "FILE: reason" (the plugin's name for a linked-in descriptor). 0 or a
 * negative errno with a message in err. */
int mg_mock_add(struct mg_mock *mock, const struct mg_plugin *desc, json_t *config, char *err,
                size_t errlen);
int mg_mock_load(struct mg_mock *mock, const char *path, json_t *config, char *err, size_t errlen);
/* A plugin with no code: it provides `name`, owns `owns` (NULL-terminated,
 * may be NULL) and exists to satisfy dependencies and write the state a
 * test fakes (mg_mock_state_put or mg_mock_ctx). */
int mg_mock_add_stub(struct mg_mock *mock, const char *name, const char *const *owns);

/* Sorts the plugins by dependency (core/host.c), claims the databases of
 * those not yet running, calls every init, then every start. A plugin
 * whose dependency is missing (or in a cycle) is refused as in the core:
 * it and its dependents stay unstarted, the others start, and the call
 * returns -ENOENT (-ELOOP) with the first refusal in err. On a failed
 * init or start, what this call started is stopped again and err says
 * which plugin failed and why. */
int mg_mock_start(struct mg_mock *mock, char *err, size_t errlen);
/* New config for one plugin (merged over its defaults) and its reload
 * callback; a plugin that refuses it keeps the old one, as in the core. */
int mg_mock_reload(struct mg_mock *mock, const char *name, json_t *config, char *err,
                   size_t errlen);
/* Stops every running plugin in reverse order: stop callback, then every
 * registration, timer, watch and database claim of the plugin vanishes. */
void mg_mock_stop(struct mg_mock *mock);

/* The context a plugin's callbacks get (NULL for an unknown name): lets a
 * test call the SDK as that plugin, e.g. a stub writing its database. */
mg_ctx *mg_mock_ctx(struct mg_mock *mock, const char *name);
const char *mg_mock_state_dir(struct mg_mock *mock);

/* A request as a client on the bus sends it: `request` is borrowed (NULL
 * = {}). *reply is always set (the caller frees it); returns what
 * mg_request() returns: 0, -ENOENT (unknown service), -ETIMEDOUT (the
 * owner is busy: a request to itself or a cycle would block its thread),
 * -EPROTO (malformed reply), -EINVAL (invalid service name) or -EREMOTEIO
 * (an error reply). */
int mg_mock_request(struct mg_mock *mock, const char *service, json_t *request, json_t **reply);
/* The same with the request as raw JSON text, as it arrives on the bus:
 * what is not a JSON object gets the core's "bad_request" reply (fuzzers). */
int mg_mock_request_text(struct mg_mock *mock, const char *service, const char *text, size_t len,
                         json_t **reply);

/* Publishes as the bus would (topic checked, payload NULL = {}), delivers
 * to subscribers before returning. */
int mg_mock_publish(struct mg_mock *mock, const char *topic, json_t *payload);
/* Every event published since the last clear, plugins' and state's alike:
 * a borrowed array of {"topic", "payload"}, oldest first. */
json_t *mg_mock_events(struct mg_mock *mock);
/* How many recorded events have a topic starting with `prefix`. */
size_t mg_mock_event_count(struct mg_mock *mock, const char *prefix);
void mg_mock_events_clear(struct mg_mock *mock);

/* The virtual clock (milliseconds since the epoch, starts at real time).
 * advance moves it by `ms`, firing every timer that falls due on the way,
 * in order, with the clock set to each timer's due time. */
uint64_t mg_mock_now(struct mg_mock *mock);
void mg_mock_advance(struct mg_mock *mock, uint64_t ms);

/* The events a plugin watches on `fd`, or -ENOENT. fire calls its
 * callback with `events` (-ENOENT when nobody watches fd). */
int mg_mock_fd_events(struct mg_mock *mock, int fd);
int mg_mock_fire_fd(struct mg_mock *mock, int fd, int events);

/* Runs, on the calling thread, every post (mg_post) queued so far, oldest
 * first; what those post in turn waits for the next call. A post of a
 * plugin whose init failed is dropped. Returns how many ran. */
int mg_mock_run_posts(struct mg_mock *mock);

/* State shortcuts for tests. put writes as `owner` (who must hold `db`) in
 * a transaction of its own, announced like any commit. get: -ENOENT for a
 * missing key. count: keys of `db` starting with `prefix` (NULL: all), or
 * a negative errno. */
int mg_mock_state_put(struct mg_mock *mock, const char *owner, const char *db, const char *key,
                      json_t *value);
int mg_mock_state_get(struct mg_mock *mock, const char *db, const char *key, json_t **value);
/* A change another node of a cluster made, as the core's mirror applies
 * it: written whoever owns `db` (value NULL: deleted), announced as
 * state.<db> with "remote": true. */
int mg_mock_state_remote(struct mg_mock *mock, const char *db, const char *key, json_t *value);
/* Test hook: the next `n` top-level write commits of any plugin return
 * `rc` and write nothing, as a cluster's commit does that lost a race
 * (-ESTALE) or found no etcd quorum (-EHOSTUNREACH). Nested commits join
 * their parent and are not counted; n = 0 turns it off. After each commit
 * it failed, with the write transaction already released, `fn` (if set
 * by mg_mock_on_failed_commit) runs: there a test applies the other
 * node's change that won the race (mg_mock_state_remote). */
void mg_mock_fail_commits(struct mg_mock *mock, int rc, int n);
void mg_mock_on_failed_commit(struct mg_mock *mock, void (*fn)(struct mg_mock *mock, void *arg),
                              void *arg);
/* The name mg_node_name answers (default "mock"); from then on the mock
 * is a node of a cluster (mg_in_cluster answers 1). */
void mg_mock_set_node_name(struct mg_mock *mock, const char *name);
long mg_mock_state_count(struct mg_mock *mock, const char *db, const char *prefix);

/* What a plugin holds right now, as a new object: {"status", "services":
 * [...], "subscriptions": [...], "timers": N, "fds": [...], "owns": [...]};
 * NULL for an unknown name. */
json_t *mg_mock_registrations(struct mg_mock *mock, const char *name);

/* Whether the plugin is ready as meshgated counts it: 1 once it called
 * mg_ready (from init on) or its start returned 0, until it stops; 0
 * before; -ENOENT for an unknown name. A start that returns with posts of
 * its own queued (and without mg_ready) makes it ready only once
 * mg_mock_run_posts has run them all. */
int mg_mock_ready(struct mg_mock *mock, const char *name);

/* Logging goes to stderr as "[mock] NAME: LEVEL: message". Messages above
 * `level` are dropped (default: info, or $MG_MOCK_LOG = error|warn|info|
 * debug); every message is counted, printed or not. */
void mg_mock_log_level(struct mg_mock *mock, enum mg_log_level level);
unsigned mg_mock_log_count(struct mg_mock *mock, enum mg_log_level level);

#ifdef __cplusplus
}
#endif
#endif
