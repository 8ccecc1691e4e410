/* (Functions are state_*: the SDK's mg_state_* are the plugin-side wrappers.)
 * State: one LMDB environment per node, named databases of JSON objects.
 * Each database has one owner, the only one that may write it; every
 * commit is durable (no MDB_NOSYNC) and its changes are handed to a
 * callback that announces them on the bus. */
#ifndef MG_CORE_STATE_H
#define MG_CORE_STATE_H

#include <stddef.h>

#include <jansson.h>

struct mg_state;
struct mg_txn;

/* Called after each durable commit, once per changed key; `remote` when
 * the change came from another node of the cluster (a mirror
 * transaction), not from this node's plugins. */
typedef void (*state_commit_fn)(const char *db, const char *key, const char *op, int remote,
                                void *arg);

struct mg_state *state_open(const char *dir, size_t map_size, char *err, size_t errlen);
void state_close(struct mg_state *state);
/* Drops the database file's pages from the process's RSS (they stay in
 * the page cache): after a start-up that read everything. */
void state_release_pages(struct mg_state *state);
void state_on_commit(struct mg_state *state, state_commit_fn fn, void *arg);

/* Makes `owner` the writer of `db` and creates it. -EEXIST if another owns it. */
int state_claim(struct mg_state *state, const char *db, const char *owner);
/* Gives up every database `owner` holds (the plugin stopped). */
void state_release(struct mg_state *state, const char *owner);

/* owner: who writes (NULL for a read-only transaction). */
int state_begin(struct mg_state *state, const char *owner, int read_only, struct mg_txn **txn);
/* A write transaction inside `parent` (LMDB nested transaction): on commit
 * its changes join the parent's, announced when the parent commits. */
int state_begin_nested(struct mg_txn *parent, struct mg_txn **child);
int state_commit(struct mg_txn *txn);
/* A write transaction of the cluster's mirror: it may write every
 * database (the changes another node made, whoever owns them here), and
 * its commit announces them as remote. */
int state_begin_mirror(struct mg_state *state, struct mg_txn **txn);
/* state_put of a value that is already JSON text (what the mirror gets
 * from etcd): -EILSEQ unless it is a JSON object. */
int state_put_text(struct mg_txn *txn, const char *db, const char *key, const char *text,
                   size_t len);
void state_abort(struct mg_txn *txn);
int state_get(struct mg_txn *txn, const char *db, const char *key, json_t **value);
int state_put(struct mg_txn *txn, const char *db, const char *key, json_t *value);
int state_del(struct mg_txn *txn, const char *db, const char *key);
int state_foreach(struct mg_txn *txn, const char *db, const char *prefix,
                  int (*fn)(const char *key, json_t *value, void *arg), void *arg);

/* ---- the cluster's side (cluster.c; nothing of it without a cluster) ---- */

/* How a commit of cluster data reaches the cluster's store. */
struct state_cluster_hooks {
	/* Called by state_commit of a write transaction (not a mirror's)
	 * that read or wrote cluster databases, before LMDB's commit, with
	 * the LMDB transaction still open: 0 lets it commit; an error aborts
	 * it and is what state_commit returns. */
	int (*commit)(struct mg_txn *txn, void *arg);
	/* After commit returned -ESTALE and the transaction was aborted:
	 * bring the mirror up to what the store holds, so a retry reads it. */
	void (*after_conflict)(void *arg);
};
void state_set_cluster(struct mg_state *state, const struct state_cluster_hooks *hooks, void *arg);
/* Creates `db` if it does not exist (before a mirror transaction writes
 * it: LMDB cannot open a database inside a write transaction). */
int state_create_db(struct mg_state *state, const char *db);
/* Makes `db` cluster-wide (a plugin declared it so). */
int state_mark_cluster(struct mg_state *state, const char *db);
int state_is_cluster(struct mg_state *state, const char *db);
/* The names of the cluster databases, at most `max`; returns how many. */
size_t state_cluster_dbs(struct mg_state *state, char names[][64], size_t max);
/* Each cluster key the transaction read (state_get) or wrote, once, in
 * order of database and key; `written` when it put or deleted it. Stops
 * at and returns fn's first non-zero. */
int state_txn_touched(struct mg_txn *txn,
                      int (*fn)(const char *db, const char *key, int written, void *arg),
                      void *arg);
/* The stored JSON text of a key, valid until the transaction ends. */
int state_get_text(struct mg_txn *txn, const char *db, const char *key, const char **text,
                   size_t *len);
/* Numbers of the core's own (the cluster's revisions), in the database
 * "_cluster", which must exist (state_create_db): never announced. */
int state_meta_get(struct mg_txn *txn, const char *key, int64_t *value);
int state_meta_put(struct mg_txn *txn, const char *key, int64_t value);
int state_meta_del(struct mg_txn *txn, const char *key);

/* ---- the database file as a whole: checks, backup, restore ---- */

/* What a check of a database file found. */
struct state_file_report {
	size_t dbs;     /* named databases */
	size_t records; /* records in them */
};

/* Reads every page a database file (an LMDB data.mdb, or a backup of
 * one) uses, without writing to it: meta pages, the free list, every
 * named database, record by record. The walk runs in a child process, so
 * a damaged page that makes LMDB read outside the file is a refusal, not
 * a crash. Returns 0, or -EBADMSG with why in `why` ("it is empty (0
 * bytes)", "it is truncated: ..."). */
int state_file_check(const char *file, struct state_file_report *report, char *why, size_t whylen);

/* Writes a consistent copy of the live database (LMDB's compacting copy,
 * from one read transaction: writers go on meanwhile) to `path`, an
 * absolute path that must not exist yet; mode 0600. */
int state_backup(struct mg_state *state, const char *path, size_t *bytes, char *err, size_t errlen);

/* Installs `backup` as DIR/data.mdb: copied into the state dir, synced,
 * checked, then renamed over the old file (kept as `kept`, when there was
 * one). The caller holds the state dir's lock: no meshgated runs on it. */
int state_restore(const char *dir, const char *backup, char *kept, size_t keptlen, char *err,
                  size_t errlen);

#endif
