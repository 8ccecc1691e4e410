/* The cluster: the databases plugins declare cluster-wide live in etcd,
 * under the core's cluster.prefix, and each node keeps a mirror of them
 * in its LMDB.
 *
 * - Reads are served from the mirror, as without a cluster.
 * - A write transaction that read or wrote cluster data commits as one
 *   etcd transaction comparing the mod revision of every such key with
 *   the mirror's: another node's change in between makes the commit fail
 *   with -ESTALE (the mirror refreshed, so a retry sees it); a cluster
 *   that cannot take a write fails it at once with -EHOSTUNREACH. Only
 *   when etcd took it does the LMDB commit follow.
 * - A watch from the mirror's revision applies other nodes' changes in
 *   mirror transactions, announced as state.<db> with "remote": true; a
 *   compacted revision makes it read everything again.
 *
 * Keys in etcd: PREFIX DB "/" KEY, the value the record's JSON text.
 * Databases whose names begin with '_' are the core's own. */
#ifndef MG_CORE_CLUSTER_H
#define MG_CORE_CLUSTER_H

#include <jansson.h>

#include "state.h"

struct cluster;

/* `settings`: the core's cluster group (node, etcd, prefix, ca, cert,
 * key, timeout_ms). Reads the cluster into the mirror when etcd answers
 * (else goes on from the mirror and catches up later), then follows it.
 * The cluster databases must be marked (state_mark_cluster) before. */
/* key_pem: the client key (cluster.key) as the secret service keeps it
 * (cluster_key.h), `key_len` bytes, copied into memory only; NULL when
 * etcd takes no client certificate. */
int cluster_open(struct mg_state *state, json_t *settings, const char *state_dir,
                 const char *key_pem, size_t key_len, struct cluster **out, char *err,
                 size_t errlen);
void cluster_close(struct cluster *cluster);
/* The group's own rules (node and etcd given, the prefix's form): for
 * --check-config as well as the start. -EINVAL with why in err. */
int cluster_settings_check(json_t *settings, char *err, size_t errlen);

/* {"node", "etcd": [...], "prefix", "writable", "revision", "import_pending"} */
json_t *cluster_status(struct cluster *cluster);
/* The figures of etcd (docs/metrics.md): a new array of metric families. */
json_t *cluster_metrics(struct cluster *cluster);

/* Copies this node's cluster databases into an empty cluster prefix
 * (a node that ran alone joins). -EEXIST when the prefix holds data. */
int cluster_import(struct cluster *cluster, size_t *keys, char *err, size_t errlen);

#endif
