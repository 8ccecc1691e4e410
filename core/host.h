/* The plugin host's rules that need no thread: the descriptor checks, the
 * dependency order and the per-owner registration tables. meshgated's
 * loader and the SDK's mock core both link this one copy, so that a
 * plugin's unit tests meet the rules (and the messages) of production. */
#ifndef MG_CORE_HOST_H
#define MG_CORE_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <meshgate/meshgate.h>

/* Longest plugin name, with its NUL. */
#define HOST_NAME_MAX 64

/* Whether meshgated may run the plugin `d` describes, before any of its
 * code runs: ABI major and minor, descriptor size, build signature, name.
 * 0, or a negative errno with the reason in why (the caller names the
 * file). */
int host_check_descriptor(const struct mg_plugin *d, char *why, size_t len);

/* One plugin as the dependency graph sees it. */
struct host_node {
	const char *name;
	const struct mg_plugin *desc; /* not read when refused on entry */
	int refused;                  /* in: refused already; out: refused by host_order */
	char why[512];                /* out: why host_order refused it */
};

/* Refuses the nodes whose dependencies no accepted node provides (which
 * can orphan others in turn), and the members of a dependency cycle; puts
 * the indexes of the accepted nodes into `order` so that each comes after
 * what it depends on, then the refused ones. 0, -ELOOP (the first cycle
 * is in err) or -ENOMEM. */
int host_order(struct host_node *nodes, size_t n, size_t *order, char *err, size_t errlen);

/* host_order, then puts `nodes` and the caller's `items` (one per node,
 * e.g. its plugins) in that order, in place. Same returns. */
int host_sort(struct host_node *nodes, size_t n, void **items, char *err, size_t errlen);

/* Does the plugin `d` named `name` provide `what` (its name or a feature)? */
int host_provides(const char *name, const struct mg_plugin *d, const char *what);

/* ---- registration tables ----
 *
 * What one plugin registered by name: its services or its subscriptions.
 * A callback run from a walk over the table may add or delete entries:
 * entries deleted during a walk are marked and compacted when the
 * outermost walk ends, so that no entry is skipped or run twice. */
union host_fn {
	mg_service_fn service;
	mg_event_fn event;
};

struct host_entry {
	char *name;
	union host_fn fn;
	void *arg;
	int deleted;
};

struct host_table {
	struct host_entry *entries;
	size_t n;
	int walking; /* nesting of walks in progress */
};

struct host_registrations {
	struct host_table services;
	struct host_table subscriptions;
};

/* A timer of a plugin's loop: due at `due` (milliseconds of the loop's
 * clock), then every `interval` while it repeats. `removed` marks one
 * deleted while the loop walks the timers (swept after the walk). */
struct host_timer {
	int id;
	uint64_t due;
	unsigned interval;
	int repeat;
	mg_timer_fn fn;
	void *arg;
	int removed;
};

/* 0 or -ENOMEM. Adding a name twice makes two entries. */
int host_table_add(struct host_table *t, const char *name, union host_fn fn, void *arg);
/* Deletes every entry named `name`: 0, or -ENOENT when there is none. */
int host_table_del(struct host_table *t, const char *name);
/* The live entry named `name`, or NULL. */
struct host_entry *host_table_find(struct host_table *t, const char *name);
/* Calls `fn` for every live entry whose name starts `topic` (a prefix
 * match, as subscriptions are). */
void host_table_walk_prefix(struct host_table *t, const char *topic,
                            void (*fn)(struct host_entry *e, void *arg), void *arg);
void host_table_clear(struct host_table *t);
void host_registrations_clear(struct host_registrations *r);

#endif
