/* The multiwan plugin: a gateway with several uplinks health-checks each
 * (ICMP echo out of that link), keeps a routing table and a rule per link
 * (answers on a link's address leave by it), moves the default route to
 * the best healthy link, and tells devices every endpoint of the node, the
 * active link's first (docs/multiwan.md). Its pieces:
 *
 *   multiwan.c     the plugin: settings, the probe timer and sockets, the
 *                  routes, the record, wan.up / wan.down, multiwan.list
 *   mw_health.c    pure: a link's state from its probes (rise / fall),
 *                  which link is active (priority, failback hold), the
 *                  endpoints in the order devices try them
 *   mw_system.c    the real system: raw ICMP sockets bound to the link,
 *                  routes and rules through lib/netlink, the link's address
 *
 * The plugin reaches the system only through struct mw_system, so that
 * its unit tests run it against a fake. */
#ifndef MULTIWAN_H
#define MULTIWAN_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <meshgate/meshgate.h>

/* The plugin's database (this node's only): key MW_KEY holds what devices
 * are told (the endpoints, best first) and the active link; the api plugin
 * reads it into this node's record. */
#define MW_DB        "multiwan"
#define MW_KEY       "state"
#define MW_LINKS_MAX 8

/* ---- mw_health.c ---- */

enum mw_state { MW_UNKNOWN, MW_UP, MW_DOWN };

/* "unknown", "up", "down" */
const char *mw_state_name(enum mw_state state);

struct mw_health {
	enum mw_state state;
	int ok_run, fail_run; /* answers / losses in a row */
	uint64_t since_ms;    /* when the state began; 0: up since the start */
};

/* One probe's outcome. A link of unknown state is up at its first answer
 * and down after `fall` losses; an up link is down after `fall` losses in
 * a row, a down link up after `rise` answers in a row. True when the
 * state changed. */
bool mw_health_result(struct mw_health *h, bool answered, int rise, int fall, uint64_t now_ms);

/* What the choice of the active link looks at. */
struct mw_candidate {
	bool up;
	int priority;      /* lower is better; equal: the earlier link */
	uint64_t up_since; /* see mw_health.since_ms */
};

/* The active link: the current one while it is up and no better one
 * has been up for hold_ms (with failback; without, while it is up);
 * else the best up link; the current one (maybe -1) when none is up. */
int mw_choose(const struct mw_candidate *c, size_t n, int current, bool failback, uint64_t hold_ms,
              uint64_t now_ms);

/* The order devices try a node's endpoints in: the active link, the other
 * up links, the rest; each group by priority. Writes n indexes to order. */
void mw_endpoint_order(const struct mw_candidate *c, size_t n, int active, size_t *order);

/* ---- the system ---- */

struct mw_system {
	/* The first IPv4 address of the interface; -ENOENT / -ENODEV. */
	int (*address)(void *arg, const char *ifname, char out[INET_ADDRSTRLEN]);
	/* A non-blocking socket whose probes leave by ifname from address. */
	int (*probe_open)(void *arg, const char *ifname, const char *address, char *err,
	                  size_t errlen);
	int (*probe_send)(void *arg, int fd, const char *check, uint16_t id, uint16_t seq);
	/* 1 with the seq of an answer to id, 0 when nothing more is queued. */
	int (*probe_read)(void *arg, int fd, uint16_t id, uint16_t *seq);
	void (*probe_close)(void *arg, int fd);
	/* The link's table (default route via gateway) and its rule (from
	 * address); on = false removes both. */
	int (*link_routes)(void *arg, bool on, unsigned table, unsigned rule_priority,
	                   const char *ifname, const char *gateway, const char *address);
	/* The main table's default route via gateway on ifname (replaced). */
	int (*default_route)(void *arg, const char *ifname, const char *gateway);
};

/* ---- mw_system.c ---- */

extern const struct mw_system mw_system_real;

/* ---- multiwan.c ---- */

/* The plugin's init over a given system (the descriptor's uses the real
 * one; tests a fake). */
int mw_init_with(mg_ctx *ctx, const struct mw_system *sys, void *sys_arg);

#endif
