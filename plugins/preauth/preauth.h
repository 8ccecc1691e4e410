/* preauth: users, single-use pre-auth codes, devices and the addresses of
 * the VPN subnet. The plugin's internal header (names start with pa_).
 *
 * Everything lives in struct pa, reached through ctx->self: the plugin
 * keeps no global mutable state, so that two instances can run in one
 * process (tests load it twice). All handlers, timers and lifecycle calls
 * run on the plugin's own thread, so nothing here needs a lock. */
#ifndef PA_PREAUTH_H
#define PA_PREAUTH_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include <meshgate/meshgate.h>

/* State databases (all owned by preauth) and the one it reads. */
#define PA_DB_USERS      "users"
#define PA_DB_CODES      "codes"
#define PA_DB_DEVICES    "devices"
#define PA_DB_DNS        "dns_node" /* the dns plugin's, this node's: server -> {addresses, zone} */
#define PA_DB_POLICY     "policy"   /* owned by the firewall: role -> {"subnets"} */
#define PA_DB_IPAM       "ipam"
#define PA_DB_WG         "wg"
#define PA_WG_SERVER_KEY "server"

#define PA_NAME_MAX        32    /* users and roles: DNS-label-like */
#define PA_CODE_SYMBOLS    28    /* 140 bits: 28 Crockford base32 symbols */
#define PA_CODE_TEXT_MAX   64    /* longest code input accepted (dashes, spaces) */
#define PA_HASH_HEX        64    /* hex of a 32-byte generichash */
#define PA_DEVICE_ID_LEN   16    /* hex of 8 random bytes */
#define PA_TOKEN_MAX       128   /* longest register_token accepted */
#define PA_SOURCE_MAX      64    /* an IPv6 address in text fits */
#define PA_HOSTNAME_MAX    253   /* the name hint of redeem */
#define PA_DEVICE_NAME_MAX 63    /* one DNS label */
#define PA_WG_KEY_B64_LEN  44    /* base64 of 32 bytes */
#define PA_RATE_WINDOW_MS  60000 /* failed attempts are counted per minute */
#define PA_SUBNET_TEXT_MAX 32    /* "255.255.255.255/32" and room */
#define PA_ADDRESS_MAX     18    /* "255.255.255.255/32": a device's address */

struct pa_ipam;
struct pa_limiter;
struct pa_guard;
struct pa_batch;
struct pa_pending;
struct pa_access;
struct pa;

/* How often one request runs when its commit loses races to other nodes
 * of a cluster (-ESTALE) before it is answered "conflict". */
#define PA_COMMIT_TRIES 5

/* The transaction part of a service: a checked request -> its reply. A
 * batched one is kept with its request so that a batch whose commit lost
 * a race can run it again (pa_batch.c). */
typedef json_t *(*pa_txn_fn)(struct pa *pa, json_t *request);

/* Failed redeems and registers allowed a minute (pa_limit.c). */
struct pa_limits {
	int address; /* per source address */
	int prefix;  /* per network: the /24 of IPv4, the /64 of IPv6 */
	int global;  /* all sources together */
};

struct pa_settings {
	uint64_t code_ttl_ms;
	uint64_t pending_ttl_ms;
	uint64_t code_retention_ms;
	json_t *roles;    /* array of strings */
	json_t *networks; /* array of "a.b.c.d/len" */
	int keepalive;
	struct pa_limits failures; /* redeem_failures, prefix_failures, global_failures */
};

struct pa {
	mg_ctx *ctx;
	struct pa_settings cfg;
	/* Caches of state, rebuilt at init; the databases stay the truth. */
	struct pa_ipam *ipam;     /* NULL until wg/server is known */
	json_t *keys;             /* public key -> device id: the conflict check */
	json_t *pending;          /* device id -> expires_at (ms): what the reaper watches */
	json_t *devices;          /* device id -> its last device.changed payload */
	struct pa_list *list;     /* the same, ordered and searchable (pa_list.c) */
	json_t *users;            /* user name -> role: what a deletion announces */
	struct pa_access *access; /* the deadlines of time-limited users (pa_access.c) */
	struct pa_guard *guard;   /* failed redeems and registers */
	struct pa_batch *batch;   /* open group commit, or NULL */
	pa_txn_fn running;        /* the batched service running now, and its request */
	json_t *running_request;
	struct pa_pending *replaying; /* the request of a lost batch run again, or NULL */
	bool told_split;              /* the operator was told that batches exceed max_txn_ops */
	int commit_rc;                /* of the last top-level commit (pa_op_commit) */
	uint64_t last_purge_ms;
	json_t *outcomes; /* step -> outcome ("ok" or the error code) -> count (pa_metrics.c) */
	bool register_repeated; /* the register just run was a retry of a done one */
};

/* ---- names, request members (pa_util.c) ---- */

/* 1..32 of [a-z0-9-], neither starting nor ending with '-'. */
int pa_name_valid(const char *name);
int pa_role_known(struct pa *pa, const char *role);
/* The roles as "admin, developer", for messages. */
void pa_roles_text(struct pa *pa, char *buf, size_t len);

/* A string member of a request that mg_request_check has checked. */
const char *pa_str(json_t *request, const char *name);
uint64_t pa_now_s(struct pa *pa);

/* ---- codes, tokens, keys (pa_code.c) ---- */

/* A new code: PA_CODE_SYMBOLS random symbols in dash-separated groups. */
void pa_code_new(char *code, size_t len);
/* The canonical symbols of a code typed by a person (case-insensitive,
 * dashes and spaces ignored, I/L read as 1 and O as 0), or -EINVAL. */
int pa_code_normalize(const char *input, char out[PA_CODE_SYMBOLS + 1]);
/* The key of a code in `codes`: only its hash is ever stored. */
void pa_code_hash(const char canonical[PA_CODE_SYMBOLS + 1], char hex[PA_HASH_HEX + 1]);
/* A register token (base64url of 32 random bytes) and its stored hash. */
void pa_token_new(char *token, size_t len);
void pa_token_hash(const char *token, char hex[PA_HASH_HEX + 1]);
/* Constant time: the hash of `token` equals `hex`. */
int pa_token_matches(const char *token, const char *hex);
void pa_device_id_new(char id[PA_DEVICE_ID_LEN + 1]);
int pa_device_id_valid(const char *id);
/* A WireGuard public key: base64 of exactly 32 bytes, not all zero.
 * Writes the canonical text to out. */
int pa_wg_key_valid(const char *text, char out[PA_WG_KEY_B64_LEN + 1]);
/* A device name from a hostname hint: one lowercase DNS label. */
void pa_device_name(const char *hint, char out[PA_DEVICE_NAME_MAX + 1]);

/* ---- addresses (pa_ipam.c) ---- */

/* The pool of "10.0.0.1/24": the gateway is 10.0.0.1; network, broadcast
 * and gateway are never handed out. NULL with a message on error. */
struct pa_ipam *pa_ipam_new(const char *server_address, char *err, size_t errlen);
void pa_ipam_free(struct pa_ipam *ipam);
/* The server address it was made from (to notice a change of subnet). */
const char *pa_ipam_server_address(const struct pa_ipam *ipam);
/* "10.0.0.0/24" */
const char *pa_ipam_subnet(const struct pa_ipam *ipam);
/* The subnet of a server address: "10.0.0.1/24" -> "10.0.0.0/24"; the
 * same text as pa_ipam_subnet of a pool made from it. -EINVAL when it is
 * not one pa_ipam_new accepts. */
int pa_vpn_subnet(const char *server_address, char out[PA_SUBNET_TEXT_MAX]);
/* 0; -ERANGE outside the pool or reserved; -EEXIST already taken. */
int pa_ipam_take(struct pa_ipam *ipam, uint32_t addr);
void pa_ipam_release(struct pa_ipam *ipam, uint32_t addr);
/* The lowest free address, not taken: -ENOSPC when none is left. */
int pa_ipam_lowest_free(struct pa_ipam *ipam, uint32_t *addr);
/* In a cluster every node hands out addresses of the same pool: were all
 * to take the lowest free one, concurrent redeems on two nodes would want
 * the same address nearly every time, and one batch would lose the race
 * and run again. So each node starts at a place of its own in the pool,
 * derived from its name, and goes round from there. */
void pa_ipam_spread(struct pa_ipam *ipam, const char *node);
/* The address to hand out next: the lowest free one, or after
 * pa_ipam_spread the first free one from this node's place on. */
int pa_ipam_next_free(struct pa_ipam *ipam, uint32_t *addr);
uint32_t pa_ipam_free_count(const struct pa_ipam *ipam);
uint32_t pa_ipam_capacity(const struct pa_ipam *ipam);
/* Dotted quad, strictly; an optional "/32" when allow_host_prefix. */
int pa_ip_parse(const char *text, int allow_host_prefix, uint32_t *addr);
void pa_ip_format(uint32_t addr, char buf[16]);

/* ---- failed attempts: per address, per network, for all (pa_limit.c) ---- */

/* One table of windows: failures of a key within PA_RATE_WINDOW_MS. A
 * NULL or empty source is the one shared key "-". `max` is the limit of
 * the table's keys (a window that reached it is never evicted). */
struct pa_limiter *pa_limiter_new(void);
void pa_limiter_free(struct pa_limiter *l);
int pa_limiter_blocked(struct pa_limiter *l, const char *source, uint64_t now_ms, int max);
/* 1 when `source` has a window or one can be made for it. */
int pa_limiter_room(struct pa_limiter *l, const char *source, uint64_t now_ms, int max);
/* One more failure; pa_limiter_block: blocked at once for the rest of
 * the window. -ENOSPC when the table has no room for the source. */
int pa_limiter_failed(struct pa_limiter *l, const char *source, uint64_t now_ms, int max);
int pa_limiter_block(struct pa_limiter *l, const char *source, uint64_t now_ms, int max);
void pa_limiter_expire(struct pa_limiter *l, uint64_t now_ms);

/* The network of a source address: "203.0.113.0/24", "2001:db8:1:2::/64";
 * anything else is its own network. */
void pa_source_network(const char *source, char out[PA_SOURCE_MAX + 1]);

enum pa_blocked {
	PA_BLOCKED_NONE = 0,
	PA_BLOCKED_ADDRESS = 1,
	PA_BLOCKED_NETWORK = 2,
	PA_BLOCKED_GLOBAL = 4, /* the global budget is spent, and the source's
	                        * network has no window to be blocked in */
};

/* The three budgets. pa_guard_check: may `source` be heard now (before
 * its request is looked at)? pa_guard_failed: counts a failed attempt;
 * returns the PA_BLOCKED_* bits that this failure set off (the global bit:
 * the budget has just run dry), for one warning each. */
struct pa_guard *pa_guard_new(const struct pa_limits *max, uint64_t now_ms);
void pa_guard_free(struct pa_guard *g);
void pa_guard_set_limits(struct pa_guard *g, const struct pa_limits *max);
enum pa_blocked pa_guard_check(struct pa_guard *g, const char *source, uint64_t now_ms);
unsigned pa_guard_failed(struct pa_guard *g, const char *source, uint64_t now_ms);
void pa_guard_expire(struct pa_guard *g, uint64_t now_ms);

/* ---- one change: a write transaction and what follows its commit (pa_op.c) ---- */

struct pa_op {
	struct pa *pa;
	struct pa_op *parent; /* the batch, for an op nested in one */
	mg_txn *txn;
	json_t *events;      /* [[topic, payload], ...], published after the commit */
	json_t *ips_freed;   /* [addr, ...] back to the pool after the commit */
	json_t *ips_taken;   /* [addr, ...] */
	json_t *keys_add;    /* public key -> device id */
	json_t *keys_del;    /* [public key, ...] */
	json_t *pending_add; /* device id -> expires_at (ms) */
	json_t *pending_del; /* [device id, ...] */
	json_t *devices_put; /* device id -> device.changed payload */
	json_t *devices_del; /* [device id, ...] */
	json_t *users_put;   /* user name -> role */
	json_t *users_del;   /* [user name, ...] */
};

/* Begins an op: a write transaction of its own (parent NULL), or one nested
 * in `parent`, whose commit joins the parent's transaction, changes the
 * caches at once and hands its events to the parent. Knows nothing of
 * batches: a thread has one write transaction at a time, so handlers begin
 * their ops through pa_batch.c (pa_op_begin_alone, pa_op_begin_batched). */
int pa_op_begin(struct pa *pa, struct pa_op *parent, struct pa_op *op);
/* Commits; only then are the caches changed and the events published.
 * A top-level commit's result is kept in pa->commit_rc. */
int pa_op_commit(struct pa_op *op);
/* The reply to a request whose commit failed with `rc` in a cluster:
 * "conflict" (-ESTALE: lost every race), "unavailable" (-EHOSTUNREACH: no
 * etcd quorum); NULL for any other error (the handler's reply stands). */
json_t *pa_commit_error(int rc);
void pa_op_abort(struct pa_op *op);
void pa_op_event(struct pa_op *op, const char *topic, json_t *payload);
/* Queues device.changed for `device` (state overridden when not NULL). */
void pa_op_device_changed(struct pa_op *op, json_t *device, const char *state);
void pa_op_user_changed(struct pa_op *op, const char *name, const char *role, const char *state);
/* Deletes a device, its address record, and queues what follows. */
int pa_op_device_delete(struct pa_op *op, json_t *device);

/* Makes sure pa->ipam is the pool of wg/server, rebuilding it from `ipam`
 * when the server's address changed. Fills *server (new reference) when
 * asked. -ENOENT when the wireguard plugin has not written it yet. */
int pa_ipam_sync(struct pa *pa, mg_txn *txn, json_t **server, char *err, size_t errlen);
/* The caches from state: keys, pending devices, the pool. */
int pa_cache_load(struct pa *pa);
/* After a failed commit: the caches again from the databases. */
void pa_cache_rebuild(struct pa *pa);

/* ---- another node's changes (pa_remote.c) ---- */

/* state.devices, state.users, state.ipam: a change with "remote" (made by
 * another node of the cluster, already in our mirror) updates the cache of
 * that one key, and a device's or user's is announced as our own are. */
void pa_remote_device(mg_ctx *ctx, const char *topic, json_t *event, void *arg);
void pa_remote_user(mg_ctx *ctx, const char *topic, json_t *event, void *arg);
void pa_remote_ipam(mg_ctx *ctx, const char *topic, json_t *event, void *arg);
/* The device.changed payload of a device record (state overridden when
 * not NULL). */
json_t *pa_device_payload(json_t *device, const char *state);
/* The caches' entries of one device: its key, pending expiry, payload. */
void pa_cache_device_del(struct pa *pa, const char *id);
void pa_cache_device_put(struct pa *pa, const char *id, json_t *device);

/* ---- the device list's index (pa_list.c) ---- */

/* Every device of pa->devices, in id order, with its searched texts. */
struct pa_list *pa_list_new(void);
void pa_list_free(struct pa_list *l);
void pa_list_clear(struct pa_list *l);
/* Adds or replaces device `id` from its pa->devices entry. */
int pa_list_put(struct pa_list *l, const char *id, json_t *cached);
void pa_list_del(struct pa_list *l, const char *id);
/* ASCII letters to lower case, in place: what q is searched as. */
void pa_list_lower(char *text);
/* The ids (a new array) of the devices after `after` (may be NULL) of
 * `user` (NULL: any) whose searched texts contain `q` (lower-cased; NULL:
 * any), at most `limit` (0: no limit); *next is the page's last id when
 * more follow, else NULL. NULL when out of memory. */
json_t *pa_list_page(const struct pa_list *l, const char *user, const char *q, const char *after,
                     size_t limit, const char **next);

/* ---- group commit (pa_batch.c, over pa_op.c) ---- */

/* A standalone op (its own durable commit). The open batch, if any, is
 * committed and answered first. */
int pa_op_begin_alone(struct pa *pa, struct pa_op *op);
/* An op in the open batch (one is opened when none is). */
int pa_op_begin_batched(struct pa *pa, struct pa_op *op);
/* Runs `fn`, which begins its op with pa_op_begin_batched and hands its
 * reply to pa_batch_reply: the request is kept with the reply, so that a
 * batch that lost a race runs it again. */
json_t *pa_batch_run(struct pa *pa, pa_txn_fn fn, json_t *request);
/* In a handler, after the op's commit: defers `reply` until the batch is
 * durable (returns NULL for the handler to return), or flushes at once. */
json_t *pa_batch_reply(struct pa *pa, json_t *reply);
/* After a request of the batch failed: drops a batch with nothing in it. */
void pa_batch_settle(struct pa *pa);
/* Commits the open batch and sends its replies. */
int pa_batch_flush(struct pa *pa);

/* ---- a device's networks (pa_config.c) ---- */

/* What a role with a full tunnel (the firewall's policy record says
 * "full_tunnel": true) routes besides its subnets: everything. */
#define PA_FULL_TUNNEL "0.0.0.0/0"

/* The networks a device of `role` routes through the tunnel: the VPN
 * subnet of `server` (wg/server), then what the firewall's policy grants
 * the role, or the `networks` setting while the policy has no record of
 * it. The one computation behind the redeem reply and
 * preauth.device.config. A new array, or NULL when the server has no
 * usable address. */
/* ["10.0.0.1", "corp.internal"] from the dns plugin's dns_node/server, or NULL. */
json_t *pa_device_dns(struct pa *pa, mg_txn *txn);
json_t *pa_device_networks(struct pa *pa, mg_txn *txn, json_t *server, const char *role);

/* ---- time-limited access (pa_access.c) ---- */

struct pa_access *pa_access_new(void);
void pa_access_free(struct pa_access *a);
/* The deadline of a user record ("access_until", unix seconds) into the
 * index, or out of it when it has none; the timer follows. O(log n). */
void pa_access_track(struct pa *pa, const char *name, json_t *user);
void pa_access_forget(struct pa *pa, const char *name);
/* Empties the index (before it is read again from the users db). */
void pa_access_clear(struct pa *pa);
/* 1 when the user record's access has ended. */
int pa_access_ended(struct pa *pa, json_t *user);
/* {"error": "access_expired", "message": ..., "access_until": seconds}:
 * what a device or code of a user whose access has ended is told. */
json_t *pa_access_expired_error(const char *name, json_t *user);
/* The devices of `name`: "active" ones become "expired" (ended), or
 * "expired" ones "active" again (not ended); others keep their state.
 * *changed counts them. */
int pa_access_devices(struct pa_op *op, const char *name, int ended, int *changed);
/* RFC 3339 in UTC or with an offset, to the minute or second
 * ("2026-12-31T18:00Z") -> unix seconds. -EINVAL with a message. */
int pa_time_parse(const char *text, json_int_t *seconds, char *err, size_t errlen);
/* "2026-12-31T18:00:00Z" */
void pa_access_time_text(json_int_t seconds, char *out, size_t len);

/* ---- services ---- */

json_t *pa_user_add(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *pa_code_add(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *pa_user_list(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *pa_user_del(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *pa_user_set_role(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *pa_user_set_access(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *pa_code_revoke(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *pa_redeem(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *pa_register(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *pa_device_list(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *pa_device_disable(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *pa_device_enable(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *pa_device_del(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *pa_device_config(mg_ctx *ctx, const char *service, json_t *request, void *arg);

/* ---- a device's key rotation (pa_rotate.c; docs/rotation.md) ---- */

json_t *pa_device_rotate(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *pa_device_next_key(mg_ctx *ctx, const char *service, json_t *request, void *arg);
json_t *pa_device_switch_key(mg_ctx *ctx, const char *service, json_t *request, void *arg);
/* 1 while the operator asked for more rotations ("rotate_requested") than
 * the device made ("rotated"). */
int pa_rotation_pending(json_t *device);
/* Appends to `keys` the device's other keys a rotation holds for it (its
 * next key, its previous one): the keys index keeps them the device's. */
void pa_rotation_keys(json_t *device, json_t *keys);

/* ---- shared by the services of devices (pa_devices.c) ---- */

/* An internal error reply, logged (a cluster's lost race is not). */
/* The device `id` (checked) read in a transaction of its own
 * (pa_op_begin_alone): NULL, or the error reply with nothing left open. */
json_t *pa_device_begin(struct pa *pa, const char *id, struct pa_op *op, json_t **device);
json_t *pa_internal_rc(struct pa *pa, const char *what, int rc);
/* The one answer to a wrong device id or register token: no probing. */
json_t *pa_not_registrable(void);
/* The access_expired reply when the access of the device's user has
 * ended, else NULL. */
json_t *pa_access_ended_reply(struct pa_op *op, json_t *device);
/* A request a device authenticates with its register token (register,
 * next key, switch key): a source that failed too often is refused before
 * the request is looked at, and a wrong id or token counts against it. */
json_t *pa_token_guarded(struct pa *pa, const char *what, json_t *request, pa_txn_fn fn);

/* The timer: pending devices past their expiry, and old codes. */
void pa_reap(mg_ctx *ctx, void *arg);

/* ---- figures (pa_metrics.c) ---- */

/* Counts the outcome of a redeem or register (`step`) by its reply and
 * returns the reply. */
json_t *pa_count_outcome(struct pa *pa, const char *step, json_t *reply);
json_t *pa_metrics(mg_ctx *ctx, const char *service, json_t *request, void *arg);

#endif
