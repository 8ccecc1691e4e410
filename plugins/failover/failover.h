/* The failover plugin: keepalived (VRRPv3, unicast over the mesh) picks
 * the active node of a cluster; its state changes come back through a
 * notify fifo as records and bus events (docs/failover.md). Its pieces:
 *
 *   failover.c         the plugin: settings, keepalived's life, the fifo,
 *                      the records, the events, failover.status
 *   failover_conf.c    pure: VIP syntax, keepalived's config as text, the
 *                      notify fifo's lines, which node is active
 *   failover_system.c  keepalived as the system runs it (lib/spawn), and
 *                      the interface that holds an address (getifaddrs)
 *   failover_check.c   meshgate-failover-check, the program keepalived's
 *                      track script runs: is meshgated alive, is the
 *                      devices' WireGuard interface up
 *
 * The plugin reaches the system only through struct fo_system, so that its
 * unit tests run it against a recording fake. */
#ifndef FAILOVER_H
#define FAILOVER_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>
#include <meshgate/meshgate.h>

/* The plugin's databases: "failover" (cluster-wide) holds each node's
 * record under its name; "failover_self" (this node's) holds the same
 * record under "state", the local truth a refused cluster write is
 * retried from. */
#define FO_DB       "failover"
#define FO_DB_SELF  "failover_self"
#define FO_SELF_KEY "state"
/* The mesh plugin's database of nodes (mesh.h), read here. */
#define FO_DB_NODES "nodes"
/* keepalived's vrrp_instance: the name its notify lines carry. */
#define FO_INSTANCE "meshgate"
/* The program of the track script, next to the plugin's .so. */
#define FO_CHECK_NAME "meshgate-failover-check"

/* The track script: keepalived runs scripts every whole second at best
 * (2.2.7 refuses a fractional interval); the heartbeat it checks is
 * renewed every FO_HEARTBEAT_MS and stale after FO_HEARTBEAT_STALE_MS. */
#define FO_CHECK_INTERVAL_S   1
#define FO_HEARTBEAT_MS       250
#define FO_HEARTBEAT_STALE_MS 1500

enum fo_state { FO_MASTER, FO_BACKUP, FO_FAULT, FO_STOPPED };

/* ---- failover_conf.c ---- */

/* "master", "backup", "fault", "stopped" */
const char *fo_state_name(enum fo_state state);

/* An IPv4 address with its prefix length. */
struct fo_vip {
	char address[INET_ADDRSTRLEN];
	unsigned len;
};

/* "198.18.0.100/24", or a bare address (then `bare_len`): -EINVAL with a
 * sentence in err otherwise. */
int fo_vip_parse(const char *text, unsigned bare_len, struct fo_vip *out, char *err, size_t errlen);
/* The last host address of the IPv4 subnet of `address`/len (its
 * broadcast address minus one): the mesh VIP's default. -EINVAL when the
 * subnet has no room for it (len > 30). */
int fo_last_host(const char *address, unsigned len, char out[INET_ADDRSTRLEN]);
/* A name an interface may have: 1 to IF_NAMESIZE - 1 characters, no '/',
 * no blank. */
bool fo_ifname_valid(const char *name);

/* What keepalived's config is made of. */
struct fo_keepalived {
	const char *node;    /* router_id */
	const char *mesh_if; /* the mesh interface: VRRP's and the mesh VIP's */
	const char *src_ip;  /* this node's mesh address */
	json_t *peers;       /* the other nodes' mesh addresses, strings */
	int router_id;       /* virtual_router_id */
	int priority;        /* 1..254 */
	int advert_ms;       /* a multiple of 10 */
	bool preempt;        /* false: nopreempt */
	struct fo_vip mesh_vip;
	const char *public_if; /* NULL or "": no public VIP */
	struct fo_vip public_vip;
	const char *wg_if;       /* the devices' interface, tracked; NULL or "": none */
	const char *notify_fifo; /* path */
	const char *check;       /* the track script's command line */
};

/* keepalived.conf as text: a new string (free it), NULL when out of
 * memory. */
char *fo_render_keepalived(const struct fo_keepalived *k);

/* One line of keepalived's notify fifo, without its line break:
 * `INSTANCE "meshgate" MASTER 100`. 0 with the state and the priority
 * when it is about our instance (MASTER, BACKUP, FAULT, STOP); -ENOENT for
 * another well-formed line (a group, another instance, a state of no
 * interest); -EINVAL for anything else. Never reads past len. */
int fo_notify_parse(const char *line, size_t len, enum fo_state *state, int *priority);

/* The active node among the records of the failover database (name ->
 * record): the one that says master, the newest since_ms if several do.
 * A borrowed name, or NULL. */
const char *fo_active(json_t *records);

/* ---- the system ---- */

struct fo_system {
	/* keepalived started with `conf`, its pid files in `dir`. */
	int (*start)(void *arg, const char *program, const char *conf, const char *dir, pid_t *pid,
	             char *err, size_t errlen);
	/* Told to read its config again (SIGHUP). */
	int (*reload)(void *arg, pid_t pid);
	/* 1 once it exited (reaped), 0 while it runs. */
	int (*exited)(void *arg, pid_t pid);
	/* Stopped: SIGTERM (its priority-0 advert, the VIPs released), reaped. */
	void (*stop)(void *arg, pid_t pid);
	/* The interface that has the IPv4 address, and the prefix length it
	 * has it with; -ENOENT when no interface has it. */
	int (*find_address)(void *arg, const char *address, char ifname[IF_NAMESIZE],
	                    unsigned *len);
};

/* ---- failover_system.c ---- */

extern const struct fo_system fo_system_real;

/* ---- failover.c ---- */

/* The plugin's init over a given system (the descriptor's init uses the
 * real one; tests a fake). */
int fo_init_with(mg_ctx *ctx, const struct fo_system *sys, void *sys_arg);

#endif
