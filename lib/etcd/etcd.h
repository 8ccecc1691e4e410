/* A client of etcd's v3 API through its JSON gateway (/v3/kv/range,
 * /v3/kv/txn, /v3/watch, /v3/lease/..., /v3/maintenance/status), over libcurl with
 * jansson. Keys and values are bytes (base64 on the wire); here they are
 * NUL-terminated strings, which is what meshgate stores (text keys, JSON
 * values).
 *
 * A handle is used by one thread at a time; a watch runs on its own
 * handle (it blocks). Several endpoints: a request goes to the one that
 * answered last, and moves on to the next when it does not answer.
 *
 * Errors are negative errno codes:
 *   -EHOSTUNREACH  no endpoint answered, or the cluster has no leader /
 *                  no quorum (the request may not have been applied; a
 *                  txn that timed out may have been)
 *   -ETIMEDOUT     the request's deadline passed (same caveat)
 *   -ERANGE        a watch or read at a revision etcd has compacted away
 *   -EBADMSG       an answer that is not what the API documents
 *   -E2BIG         more operations in one txn than etcd takes
 *   -EACCES        etcd refused us (authentication, permission)
 *   -EIO           another refusal of etcd (its message says which)
 *   -EINVAL, -ENOMEM
 * and a message for the operator in etcd_last_error(). */
#ifndef MG_ETCD_H
#define MG_ETCD_H

#include <stddef.h>
#include <stdint.h>

struct etcd;

struct etcd_config {
	const char *const *endpoints; /* "http://127.0.0.1:2379", "https://10.0.0.2:2379" */
	size_t n_endpoints;
	const char *ca_file;   /* https: the CA that signed etcd's certificates */
	const char *cert_file; /* https: our client certificate and key, when etcd asks */
	const char *key_file;
	int timeout_ms;     /* per request (not per watch); 0: 2000 */
	size_t max_txn_ops; /* etcd's --max-txn-ops: compares, and ops, per txn; 0: 128 */
};

int etcd_open(const struct etcd_config *config, struct etcd **out, char *err, size_t errlen);
void etcd_close(struct etcd *etcd);
/* Why the last call failed, for the operator ("" after a success). */
const char *etcd_last_error(const struct etcd *etcd);

/* One key as etcd holds it. */
struct etcd_kv {
	char *key;
	char *value; /* NUL-terminated; value_len without the NUL */
	size_t value_len;
	int64_t create_revision;
	int64_t mod_revision;
	int64_t version;
	int64_t lease;
};

struct etcd_range {
	struct etcd_kv *kvs;
	size_t n;
	int more;         /* limit cut the answer short: ask again from after the last key */
	int64_t count;    /* keys in the range, all of them */
	int64_t revision; /* the store's revision the answer was read at */
};
void etcd_range_free(struct etcd_range *range);

/* Keys from `key` up to `range_end` (exclusive; NULL: `key` alone), at
 * `revision` (0: the newest), at most `limit` keys (0: all). */
int etcd_range(struct etcd *etcd, const char *key, const char *range_end, int64_t revision,
               size_t limit, struct etcd_range *out);
/* The end of the range of every key that starts with `prefix`: write it
 * to `end` (its size at least strlen(prefix) + 1). A prefix of nothing
 * but 0xff bytes (or none) has no end: `end` is "", which as a range_end
 * means "every key from `key` on". */
void etcd_prefix_end(const char *prefix, char *end);

/* Compares of a txn: the key's mod_revision must equal `mod_revision`
 * (0: the key must not exist). With `range_end`: no key from `key` up to
 * `range_end` exists (mod_revision unused): a prefix that must be empty. */
struct etcd_compare {
	const char *key;
	int64_t mod_revision;
	const char *range_end;
};

enum etcd_op_type { ETCD_OP_PUT = 1, ETCD_OP_DELETE };

struct etcd_op {
	enum etcd_op_type type;
	const char *key;
	const char *value; /* put */
	size_t value_len;
	int64_t lease;         /* put: 0 or a lease the key lives with */
	const char *range_end; /* delete: NULL for `key` alone */
};

struct etcd_txn_result {
	int succeeded;    /* every compare held and the ops were applied */
	int64_t revision; /* the store's revision after the txn (or when it failed) */
};

/* If every compare holds, applies `ops` atomically. A txn whose compares
 * failed is not an error: rc 0 with succeeded = 0. */
int etcd_txn(struct etcd *etcd, const struct etcd_compare *compares, size_t n_compares,
             const struct etcd_op *ops, size_t n_ops, struct etcd_txn_result *result);

/* ---- watch ---- */

struct etcd_event {
	enum etcd_op_type type; /* ETCD_OP_PUT or ETCD_OP_DELETE */
	struct etcd_kv kv;      /* a delete has the key and its mod_revision (the delete's) */
};

/* Called with the events of one revision or more, in order, and the
 * revision the watch has seen everything up to (also with n = 0, on
 * etcd's progress notices). Return 0 to go on, anything else stops the
 * watch and is returned by etcd_watch. */
typedef int (*etcd_watch_fn)(const struct etcd_event *events, size_t n, int64_t revision,
                             void *arg);

/* Watches every key under `prefix` from `start_revision` on, calling `fn`
 * until it returns non-zero, `*stop` becomes non-zero (looked at at
 * least every 100 ms), or the stream breaks (-EHOSTUNREACH: watch again
 * from the last revision seen). -ERANGE when etcd compacted past
 * `start_revision`: read everything again, then watch from there. 0 when
 * `*stop` ended it. */
int etcd_watch(struct etcd *etcd, const char *prefix, int64_t start_revision, etcd_watch_fn fn,
               void *arg, const volatile int *stop);

/* ---- leases ---- */

int etcd_lease_grant(struct etcd *etcd, int ttl_s, int64_t *id);
/* Renews once; *ttl_left is 0 when the lease is gone. */
int etcd_lease_keepalive(struct etcd *etcd, int64_t id, int *ttl_left);
/* The lease and its keys go; a lease already gone is not an error. */
int etcd_lease_revoke(struct etcd *etcd, int64_t id);

/* ---- health ---- */

/* 0 when the cluster can take a write now (an endpoint answers and its
 * member knows a leader), -EHOSTUNREACH otherwise. Quick (one short
 * request): the core asks it in the background, so that a cluster
 * without quorum fails a write at once rather than after the request's
 * deadline. */
int etcd_health(struct etcd *etcd);

#endif
