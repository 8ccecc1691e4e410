/* meshgated's internals: the plugin table and the pieces that share it. */
#ifndef MG_CORE_H
#define MG_CORE_H

#include <pthread.h>
#include <stdint.h>

#include <jansson.h>
#include <libconfig.h>

#include <meshgate/meshgate.h>

#include "host.h"
#include "state.h"

struct broker;
struct actor;

enum plugin_status {
	PLUGIN_LOADED,   /* descriptor accepted */
	PLUGIN_REFUSED,  /* not started: see error */
	PLUGIN_INIT,     /* init returned 0 */
	PLUGIN_STARTING, /* its start is running */
	PLUGIN_RUNNING,  /* start returned 0 */
	PLUGIN_FAILED,   /* init or start failed: see error */
	PLUGIN_STOPPED,
};

struct plugin {
	struct mg_ctx ctx; /* first: callbacks get &ctx, the core casts back */
	struct core *core;
	char *path;
	void *dl;
	const struct mg_plugin *desc;
	char name[HOST_NAME_MAX];
	char routing_id[96]; /* its actor's identity on the bus */
	json_t *config;      /* its section, defaults filled in */
	json_t *next_config; /* handed over on reload, on its own thread */
	enum plugin_status status;
	char error[512];
	struct actor *actor;
	/* Milliseconds since meshgated began (core_uptime_ms), 0 until then:
	 * when its start began, and when it was ready (mg_ready, or its start
	 * returned). Under plugins_lock. */
	uint64_t start_ms, ready_ms;
};

struct core {
	const char *config_path;           /* NULL: zero config */
	json_t *settings;                  /* the core's own settings */
	char node_name[HOST_NAME_MAX + 1]; /* cluster.node, or the host name */
	enum mg_log_level log_level;
	void *zctx;
	struct mg_state *state;
	struct cluster *cluster; /* NULL: the node runs alone */
	struct broker *broker;
	const char *inproc_endpoint;
	pthread_mutex_t plugins_lock; /* status, error, times, started: read by core.status */
	struct plugin **plugins;      /* in start order once sorted */
	size_t nplugins;
	int started;                 /* every start has returned, and no stop has begun */
	uint64_t ready_ms;           /* when every plugin was ready (core_uptime_ms) */
	int startup_memory_released; /* once all were ready (plugin_loader.c) */
};

static inline struct plugin *plugin_of(mg_ctx *ctx)
{
	return (struct plugin *)ctx;
}

const char *plugin_status_name(enum plugin_status status);

/* Milliseconds since meshgated began (its first call, from main). */
uint64_t core_uptime_ms(void);

/* log.c */
void core_log(enum mg_log_level level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void core_vlog(enum mg_log_level level, const char *who, const char *fmt, va_list ap);
void core_log_set_level(enum mg_log_level level);
/* "mg:WHAT" (cut to the kernel's 15 characters), as `top -H` and perf
 * show a thread: each plugin's, the broker, the cluster's. */
void core_name_thread(pthread_t thread, const char *what);
/* core_vlog through the limiter of repeated lines (log_limit.h): `key`
 * names the source and the reason. */
void core_vlog_limited(enum mg_log_level level, const char *who, const char *key, uint64_t now_ms,
                       const char *fmt, va_list ap);
/* Writes the counts of suppressed lines still untold (at exit). */
void core_log_flush(void);
int core_log_level_parse(const char *name, enum mg_log_level *level);

/* ops.c: the table handed to every plugin */
extern const struct mg_api core_api;

/* thread_client.c: the calling thread's own bus client (made on first use,
 * closed when the thread exits); NULL if the bus is not up. */
struct mg_bus_client *core_thread_client(struct core *core);
void core_thread_client_close(void);

/* systemd's notifications (core/systemd.c); no-ops outside systemd. */
void core_sd_ready(size_t plugins);
void core_sd_reloading(int done);
void core_sd_stopping(void);
/* WatchdogSec in ms, 0 when systemd does not watch. */
unsigned core_sd_watchdog_ms(void);
/* Feeds the watchdog when the bus answers core.ping within deadline_ms. */
void core_sd_watchdog_feed(struct core *core, unsigned deadline_ms);
/* Publishes on the calling thread's client, unless no subscription matches
 * `topic` (then 0: dropped before any work). -EINVAL for a bad topic. */
int core_publish(struct core *core, const char *topic, json_t *payload);
void core_publish_state_change(const char *db, const char *key, const char *op, int remote,
                               void *arg);

/* plugin_loader.c */
int loader_load_all(struct core *core, const char *plugin_dir, json_t *names, char *err,
                    size_t errlen);
/* The plugin of the `secrets` back end ("local": keystore, "vault":
 * vault) is loaded when a loaded plugin depends on "secrets"; the other
 * back end's plugin is dropped from the plugin dir's list, and refused
 * (-EINVAL) when `listed` in plugins. */
/* `core_needs`: the core itself asks the service (cluster.key), so the
 * back end is loaded even when no plugin depends on it. */
int loader_pick_secrets(struct core *core, const char *plugin_dir, const char *backend, int listed,
                        int core_needs, char *err, size_t errlen);
int loader_sort(struct core *core, char *err, size_t errlen);
int loader_configure(struct core *core, const config_setting_t *root, char *err, size_t errlen);
/* Marks the databases the plugins declare cluster-wide (in `owns` only). */
int loader_mark_cluster_dbs(struct core *core, char *err, size_t errlen);
/* Inits every plugin, then starts them, each phase in dependency order:
 * a plugin goes as soon as what it depends on has passed the phase, those
 * whose dependencies are met together, each on its own thread (one after
 * another when `serial`). */
int loader_start_all(struct core *core, int stop_on_error, int serial);
/* Before loader_start_all: inits the plugin that provides `feature` and
 * what it depends on, so that the core can ask its services (the secret
 * service, for the cluster's key) before the others are loaded into a
 * cluster. Its start still comes after every plugin's init. 0, -ENOENT
 * when no plugin provides it, -1 when one failed (logged). */
int loader_init_first(struct core *core, const char *feature, int serial);
/* The plugin's first reconcile is done (mg_ready, or its start returned):
 * the first call counts. Any thread. */
void loader_mark_ready(struct plugin *p);
void loader_reload_all(struct core *core, const config_setting_t *root);
void loader_stop_all(struct core *core);
void loader_unload_all(struct core *core);
/* {"ready": every plugin to run has started and is ready, "ready_ms":
 * when meshgated became so (once ready), "plugins": [{name, version, state,
 * path, error?, ready, start_ms?, ready_ms?}]} (times: core_uptime_ms) */
json_t *loader_status(struct core *core);

#endif
