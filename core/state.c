#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_DBS 64
#define MAX_KEY 480 /* LMDB's key limit is 511 bytes */
/* A check that takes longer is stuck in a loop of damaged pages. */
#define CHECK_TIMEOUT_S 300

struct db_entry {
	char name[64];
	char owner[64]; /* "" when nobody owns it */
	MDB_dbi dbi;
	int open;
	int cluster; /* kept in the cluster's store: commits go through the hooks */
};

struct mg_state {
	MDB_env *env;
	pthread_mutex_t lock; /* dbs[] and the opening of handles */
	struct db_entry dbs[MAX_DBS];
	size_t ndbs;
	state_commit_fn on_commit;
	void *on_commit_arg;
	const struct state_cluster_hooks *cluster;
	void *cluster_arg;
};

struct change {
	char *db;
	char *key;
	const char *op;
};

/* What a transaction read or wrote, in order (a key may appear twice). */
struct changes {
	struct change *items;
	size_t n, cap;
};

struct mg_txn {
	struct mg_state *state;
	struct mg_txn *parent; /* of a nested transaction */
	MDB_txn *txn;
	const char *owner;
	int mirror; /* state_begin_mirror: writes any database, announced as remote */
	struct changes changes;
	struct changes reads; /* of cluster databases, in a write transaction */
};

static int lmdb_errno(int rc)
{
	switch (rc) {
	case 0:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return -ENOSPC;
	case MDB_BAD_VALSIZE:
		return -EINVAL;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

static int open_existing(struct mg_state *state);

struct mg_state *state_open(const char *dir, size_t map_size, char *err, size_t errlen)
{
	struct mg_state *state = calloc(1, sizeof(*state));
	int rc;

	if (!state) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&state->lock, NULL);
	if (mkdir(dir, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "cannot create state dir %s: %s", dir, strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&state->env)) || (rc = mdb_env_set_maxdbs(state->env, MAX_DBS)) ||
	    (rc = mdb_env_set_mapsize(state->env, map_size)) ||
	    (rc = mdb_env_set_maxreaders(state->env, 254)) ||
	    /* MDB_NOTLS: read transactions may be used by whichever thread;
	     * MDB_NORDAHEAD: reads are by key, scattered over the file, and the
	     * kernel's readahead would map (and count in our RSS) pages nobody
	     * reads; no MDB_NOSYNC: an acknowledged commit survives a crash. */
	    (rc = mdb_env_open(state->env, dir, MDB_NOTLS | MDB_NORDAHEAD, 0600))) {
		snprintf(err, errlen, "cannot open state in %s: %s", dir, mdb_strerror(rc));
		goto fail;
	}
	if ((rc = open_existing(state))) {
		snprintf(err, errlen, "cannot read state in %s: %s", dir, strerror(-rc));
		goto fail;
	}
	return state;
fail:
	if (state->env)
		mdb_env_close(state->env);
	pthread_mutex_destroy(&state->lock);
	free(state);
	return NULL;
}

void state_close(struct mg_state *state)
{
	if (!state)
		return;
	mdb_env_close(state->env);
	pthread_mutex_destroy(&state->lock);
	free(state);
}

void state_release_pages(struct mg_state *state)
{
	/* LMDB does not say where it mapped the file (me_mapaddr is only set
	 * with MDB_FIXEDMAP): find the mapping of its inode in our maps. */
	mdb_filehandle_t fd;
	struct stat st;
	if (mdb_env_get_fd(state->env, &fd) || fstat(fd, &st))
		return;
	FILE *maps = fopen("/proc/self/maps", "r");
	if (!maps)
		return;
	char line[512];
	unsigned long start, end, inode;
	while (fgets(line, sizeof(line), maps))
		if (sscanf(line, "%lx-%lx %*s %*s %*s %lu", &start, &end, &inode) == 3 &&
		    inode == st.st_ino && strstr(line, "/data.mdb"))
			/* The map is a read-only shared mapping of the file (no
			 * MDB_WRITEMAP): dropping its pages loses nothing, a read
			 * faults the page back in from the page cache. */
			madvise((void *)start, end - start, MADV_DONTNEED);
	fclose(maps);
}

void state_on_commit(struct mg_state *state, state_commit_fn fn, void *arg)
{
	state->on_commit = fn;
	state->on_commit_arg = arg;
}

static struct db_entry *find_db(struct mg_state *state, const char *name)
{
	for (size_t i = 0; i < state->ndbs; i++)
		if (!strcmp(state->dbs[i].name, name))
			return &state->dbs[i];
	return NULL;
}

static struct db_entry *add_db(struct mg_state *state, const char *name)
{
	if (state->ndbs == MAX_DBS || strlen(name) >= sizeof(state->dbs[0].name))
		return NULL;
	struct db_entry *e = &state->dbs[state->ndbs++];
	memset(e, 0, sizeof(*e));
	strcpy(e->name, name);
	return e;
}

/* Opens the handle of `db` in a transaction of its own, so that it stays
 * valid for every later transaction (LMDB's rule for mdb_dbi_open). Called
 * with state->lock held. */
static int open_handle(struct mg_state *state, struct db_entry *e, int create)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(state->env, NULL, create ? 0 : MDB_RDONLY, &txn);
	if (rc)
		return lmdb_errno(rc);
	rc = mdb_dbi_open(txn, e->name, create ? MDB_CREATE : 0, &e->dbi);
	if (rc) {
		mdb_txn_abort(txn);
		return lmdb_errno(rc);
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		return lmdb_errno(rc);
	e->open = 1;
	return 0;
}

/* Opens the handle of every database already on disk, before any
 * transaction runs: LMDB lets a transaction use only the handles that
 * were open when it began, so opening one later, lazily, would make
 * reads in older transactions fail. The names are the keys of the main
 * database. */
static int open_existing(struct mg_state *state)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_dbi main_db;
	MDB_val k, v;
	char names[MAX_DBS][64];
	size_t n = 0;
	int rc = mdb_txn_begin(state->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return lmdb_errno(rc);
	if (!(rc = mdb_dbi_open(txn, NULL, 0, &main_db)) &&
	    !(rc = mdb_cursor_open(txn, main_db, &cur))) {
		while (n < MAX_DBS && !mdb_cursor_get(cur, &k, &v, n ? MDB_NEXT : MDB_FIRST))
			if (k.mv_size < sizeof(names[0])) {
				memcpy(names[n], k.mv_data, k.mv_size);
				names[n++][k.mv_size] = '\0';
			}
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	pthread_mutex_lock(&state->lock);
	for (size_t i = 0; i < n && !rc; i++) {
		struct db_entry *e = add_db(state, names[i]);
		if (e && open_handle(state, e, 0))
			state->ndbs--; /* not a named database: a plain key */
	}
	pthread_mutex_unlock(&state->lock);
	return lmdb_errno(rc);
}

int state_claim(struct mg_state *state, const char *db, const char *owner)
{
	int rc = 0;
	pthread_mutex_lock(&state->lock);
	struct db_entry *e = find_db(state, db);
	if (!e)
		e = add_db(state, db);
	if (!e)
		rc = -ENOSPC;
	else if (e->owner[0] && strcmp(e->owner, owner))
		rc = -EEXIST;
	else if (!e->open)
		rc = open_handle(state, e, 1);
	if (!rc)
		snprintf(e->owner, sizeof(e->owner), "%s", owner);
	pthread_mutex_unlock(&state->lock);
	return rc;
}

void state_release(struct mg_state *state, const char *owner)
{
	pthread_mutex_lock(&state->lock);
	for (size_t i = 0; i < state->ndbs; i++)
		if (!strcmp(state->dbs[i].owner, owner))
			state->dbs[i].owner[0] = '\0';
	pthread_mutex_unlock(&state->lock);
}

/* The handle of `db` for this transaction; -ENOENT if it does not exist
 * yet (nobody has written it: reads see it empty), -EPERM if the
 * transaction writes a database its owner does not hold. */
static int db_handle(struct mg_txn *t, const char *db, int write, MDB_dbi *dbi)
{
	struct mg_state *state = t->state;
	int rc = 0;

	pthread_mutex_lock(&state->lock);
	struct db_entry *e = find_db(state, db);
	if (write && (!e || (!t->mirror && (!t->owner || strcmp(e->owner, t->owner)))))
		rc = -EPERM;
	else if (!e && !(e = add_db(state, db)))
		rc = -ENOSPC;
	else if (!e->open)
		rc = open_handle(state, e, 0);
	if (!rc)
		*dbi = e->dbi;
	pthread_mutex_unlock(&state->lock);
	return rc;
}

int state_begin(struct mg_state *state, const char *owner, int read_only, struct mg_txn **txn)
{
	struct mg_txn *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->state = state;
	t->owner = read_only ? NULL : owner;
	int rc = mdb_txn_begin(state->env, NULL, read_only ? MDB_RDONLY : 0, &t->txn);
	if (rc) {
		free(t);
		return lmdb_errno(rc);
	}
	*txn = t;
	return 0;
}

int state_begin_mirror(struct mg_state *state, struct mg_txn **txn)
{
	int rc = state_begin(state, "", 0, txn);
	if (!rc)
		(*txn)->mirror = 1;
	return rc;
}

int state_begin_nested(struct mg_txn *parent, struct mg_txn **child)
{
	if (!parent->owner)
		return -EINVAL; /* only writes nest */
	struct mg_txn *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->state = parent->state;
	t->parent = parent;
	t->owner = parent->owner;
	int rc = mdb_txn_begin(parent->state->env, parent->txn, 0, &t->txn);
	if (rc) {
		free(t);
		return lmdb_errno(rc);
	}
	*child = t;
	return 0;
}

static int record(struct changes *list, const char *db, const char *key, const char *op);

static void free_list(struct changes *list)
{
	for (size_t i = 0; i < list->n; i++) {
		free(list->items[i].db);
		free(list->items[i].key);
	}
	free(list->items);
}

static void free_txn(struct mg_txn *t)
{
	free_list(&t->changes);
	free_list(&t->reads);
	free(t);
}

static int touches_cluster(struct mg_txn *t)
{
	return t->state->cluster && !t->mirror && t->owner && (t->changes.n || t->reads.n);
}

static int node_local_written(struct mg_txn *t)
{
	for (size_t i = 0; i < t->changes.n; i++)
		if (!state_is_cluster(t->state, t->changes.items[i].db))
			return 1;
	return 0;
}

int state_commit(struct mg_txn *t)
{
	if (t->parent) {
		/* the parent announces them, once it is durable; what the child
		 * read guards the parent's commit as well */
		int rc = lmdb_errno(mdb_txn_commit(t->txn));
		for (size_t i = 0; !rc && i < t->changes.n; i++)
			rc = record(&t->parent->changes, t->changes.items[i].db,
			            t->changes.items[i].key, t->changes.items[i].op);
		for (size_t i = 0; !rc && i < t->reads.n; i++)
			rc = record(&t->parent->reads, t->reads.items[i].db, t->reads.items[i].key,
			            "get");
		free_txn(t);
		return rc;
	}
	struct mg_state *state = t->state;
	int rc = 0;
	if (touches_cluster(t) && (rc = state->cluster->commit(t, state->cluster_arg))) {
		mdb_txn_abort(t->txn);
		free_txn(t);
		if (rc == -ESTALE)
			state->cluster->after_conflict(state->cluster_arg);
		return rc;
	}
	int flush = state->cluster && !t->mirror && node_local_written(t);
	rc = lmdb_errno(mdb_txn_commit(t->txn));
	if (!rc && flush)
		rc = lmdb_errno(mdb_env_sync(state->env, 1));
	if (!rc && t->state->on_commit)
		for (size_t i = 0; i < t->changes.n; i++)
			t->state->on_commit(t->changes.items[i].db, t->changes.items[i].key,
			                    t->changes.items[i].op, t->mirror,
			                    t->state->on_commit_arg);
	free_txn(t);
	return rc;
}

void state_abort(struct mg_txn *t)
{
	if (!t)
		return;
	mdb_txn_abort(t->txn);
	free_txn(t);
}

static int check_key(const char *key)
{
	size_t n = key ? strlen(key) : 0;
	return n == 0 || n > MAX_KEY ? -EINVAL : 0;
}

int state_get(struct mg_txn *t, const char *db, const char *key, json_t **value)
{
	MDB_dbi dbi;
	MDB_val k = {strlen(key), (void *)key}, v;
	int rc = check_key(key);

	*value = NULL;
	if (rc)
		return rc;
	/* a read decides what the transaction writes: the cluster compares it */
	if (t->state->cluster && t->owner && !t->mirror && state_is_cluster(t->state, db) &&
	    (rc = record(&t->reads, db, key, "get")))
		return rc;
	if ((rc = db_handle(t, db, 0, &dbi)))
		return rc;
	if ((rc = lmdb_errno(mdb_get(t->txn, dbi, &k, &v))))
		return rc;
	*value = json_loadb(v.mv_data, v.mv_size, 0, NULL);
	return *value ? 0 : -EILSEQ;
}

static int record(struct changes *list, const char *db, const char *key, const char *op)
{
	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 8;
		struct change *c = realloc(list->items, cap * sizeof(*c));
		if (!c)
			return -ENOMEM;
		list->items = c;
		list->cap = cap;
	}
	struct change *c = &list->items[list->n];
	c->db = strdup(db);
	c->key = strdup(key);
	c->op = op;
	if (!c->db || !c->key) {
		free(c->db);
		free(c->key);
		return -ENOMEM;
	}
	list->n++;
	return 0;
}

static int record_change(struct mg_txn *t, const char *db, const char *key, const char *op)
{
	return record(&t->changes, db, key, op);
}

int state_put(struct mg_txn *t, const char *db, const char *key, json_t *value)
{
	MDB_dbi dbi;
	int rc = check_key(key);

	if (rc)
		return rc;
	if (!json_is_object(value))
		return -EINVAL;
	if ((rc = db_handle(t, db, 1, &dbi)))
		return rc;
	if (!json_object_get(value, "v"))
		json_object_set_new(value, "v", json_integer(1));
	/* most records fit the stack: no allocation, no growing buffer */
	char small[2048], *text = small;
	size_t len = json_dumpb(value, small, sizeof(small), JSON_COMPACT);
	if (len > sizeof(small)) {
		text = json_dumps(value, JSON_COMPACT);
		len = text ? strlen(text) : 0;
	}
	if (!len) {
		if (text != small)
			free(text);
		return -ENOMEM;
	}
	MDB_val k = {strlen(key), (void *)key}, v = {len, text};
	rc = lmdb_errno(mdb_put(t->txn, dbi, &k, &v, 0));
	if (text != small)
		free(text);
	return rc ? rc : record_change(t, db, key, "put");
}

int state_put_text(struct mg_txn *t, const char *db, const char *key, const char *text, size_t len)
{
	MDB_dbi dbi;
	int rc = check_key(key);
	json_t *value = rc ? NULL : json_loadb(text, len, 0, NULL);
	int is_object = json_is_object(value);

	json_decref(value);
	if (rc)
		return rc;
	if (!is_object)
		return -EILSEQ;
	if ((rc = db_handle(t, db, 1, &dbi)))
		return rc;
	MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)text};
	rc = lmdb_errno(mdb_put(t->txn, dbi, &k, &v, 0));
	return rc ? rc : record_change(t, db, key, "put");
}

int state_del(struct mg_txn *t, const char *db, const char *key)
{
	MDB_dbi dbi;
	int rc = check_key(key);

	if (rc || (rc = db_handle(t, db, 1, &dbi)))
		return rc;
	MDB_val k = {strlen(key), (void *)key};
	if ((rc = lmdb_errno(mdb_del(t->txn, dbi, &k, NULL))))
		return rc;
	return record_change(t, db, key, "del");
}

int state_foreach(struct mg_txn *t, const char *db, const char *prefix,
                  int (*fn)(const char *key, json_t *value, void *arg), void *arg)
{
	MDB_dbi dbi;
	MDB_cursor *cur;
	size_t plen = prefix ? strlen(prefix) : 0;
	int rc = db_handle(t, db, 0, &dbi);

	if (rc == -ENOENT)
		return 0; /* never written: empty */
	if (rc || (rc = lmdb_errno(mdb_cursor_open(t->txn, dbi, &cur))))
		return rc;
	MDB_val k = {plen, (void *)prefix}, v;
	int op = plen ? MDB_SET_RANGE : MDB_FIRST;
	char keybuf[MAX_KEY + 32];
	while (!(rc = mdb_cursor_get(cur, &k, &v, op))) {
		op = MDB_NEXT;
		if (k.mv_size < plen || (plen && memcmp(k.mv_data, prefix, plen)))
			break;
		if (k.mv_size >= sizeof(keybuf))
			continue;
		memcpy(keybuf, k.mv_data, k.mv_size);
		keybuf[k.mv_size] = '\0';
		json_t *value = json_loadb(v.mv_data, v.mv_size, 0, NULL);
		if (!value)
			continue; /* not ours to judge: skip what does not parse */
		int stop = fn(keybuf, value, arg);
		json_decref(value);
		if (stop) {
			mdb_cursor_close(cur);
			return stop;
		}
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : lmdb_errno(rc);
}

/* ---- the cluster's side (cluster.c) ---- */

#define META_DB "_cluster"

/* In a cluster, etcd keeps what the cluster-wide databases hold: a commit
 * of only those (or of the mirror) may lose its last transaction in a
 * system crash, and the watch brings it back (its revision goes with it).
 * So LMDB flushes the data but not the meta page (MDB_NOMETASYNC keeps
 * the file consistent), and a commit of the node's own data is made
 * durable by a flush of its own (node_local_written). */
void state_set_cluster(struct mg_state *state, const struct state_cluster_hooks *hooks, void *arg)
{
	state->cluster = hooks;
	state->cluster_arg = arg;
	mdb_env_set_flags(state->env, MDB_NOMETASYNC, hooks != NULL);
	if (!hooks)
		mdb_env_sync(state->env, 1);
}

int state_create_db(struct mg_state *state, const char *db)
{
	int rc = 0;
	pthread_mutex_lock(&state->lock);
	struct db_entry *e = find_db(state, db);
	if (!e && !(e = add_db(state, db)))
		rc = -ENOSPC;
	else if (!e->open && (rc = open_handle(state, e, 1)))
		state->ndbs--;
	pthread_mutex_unlock(&state->lock);
	return rc;
}

int state_mark_cluster(struct mg_state *state, const char *db)
{
	int rc = state_create_db(state, db);
	if (rc)
		return rc;
	pthread_mutex_lock(&state->lock);
	find_db(state, db)->cluster = 1;
	pthread_mutex_unlock(&state->lock);
	return 0;
}

int state_is_cluster(struct mg_state *state, const char *db)
{
	pthread_mutex_lock(&state->lock);
	struct db_entry *e = find_db(state, db);
	int cluster = e && e->cluster;
	pthread_mutex_unlock(&state->lock);
	return cluster;
}

size_t state_cluster_dbs(struct mg_state *state, char names[][64], size_t max)
{
	size_t n = 0;
	pthread_mutex_lock(&state->lock);
	for (size_t i = 0; i < state->ndbs && n < max; i++)
		if (state->dbs[i].cluster)
			memcpy(names[n++], state->dbs[i].name, sizeof(names[0]));
	pthread_mutex_unlock(&state->lock);
	return n;
}

static int by_db_and_key(const void *a, const void *b)
{
	const struct change *x = *(const struct change *const *)a;
	const struct change *y = *(const struct change *const *)b;
	int c = strcmp(x->db, y->db);
	return c ? c : strcmp(x->key, y->key);
}

int state_txn_touched(struct mg_txn *t,
                      int (*fn)(const char *db, const char *key, int written, void *arg), void *arg)
{
	size_t n = t->changes.n + t->reads.n;
	struct change **all = malloc((n ? n : 1) * sizeof(*all));
	if (!all)
		return -ENOMEM;
	size_t m = 0;
	for (size_t i = 0; i < t->changes.n; i++)
		if (state_is_cluster(t->state, t->changes.items[i].db))
			all[m++] = &t->changes.items[i];
	for (size_t i = 0; i < t->reads.n; i++)
		all[m++] = &t->reads.items[i];
	qsort(all, m, sizeof(*all), by_db_and_key);
	int rc = 0;
	for (size_t i = 0; i < m && !rc;) {
		int written = 0;
		size_t j = i;
		for (; j < m && !by_db_and_key(&all[i], &all[j]); j++)
			written |= all[j]->op[0] != 'g'; /* "put" or "del", not "get" */
		rc = fn(all[i]->db, all[i]->key, written, arg);
		i = j;
	}
	free(all);
	return rc;
}

int state_get_text(struct mg_txn *t, const char *db, const char *key, const char **text,
                   size_t *len)
{
	MDB_dbi dbi;
	MDB_val k = {strlen(key), (void *)key}, v;
	int rc = check_key(key);
	if (rc || (rc = db_handle(t, db, 0, &dbi)) ||
	    (rc = lmdb_errno(mdb_get(t->txn, dbi, &k, &v))))
		return rc;
	*text = v.mv_data;
	*len = v.mv_size;
	return 0;
}

/* The cluster's bookkeeping (revisions) in a database of the core's,
 * written by any write transaction and never announced. */
static int meta_handle(struct mg_txn *t, MDB_dbi *dbi)
{
	int rc = 0;
	struct mg_state *state = t->state;
	pthread_mutex_lock(&state->lock);
	struct db_entry *e = find_db(state, META_DB);
	if (!e || !e->open)
		rc = -ENOENT; /* state_create_db(META_DB) runs before any transaction */
	else
		*dbi = e->dbi;
	pthread_mutex_unlock(&state->lock);
	return rc;
}

int state_meta_get(struct mg_txn *t, const char *key, int64_t *value)
{
	MDB_dbi dbi;
	MDB_val k = {strlen(key), (void *)key}, v;
	int rc = meta_handle(t, &dbi);
	*value = 0;
	if (rc || (rc = lmdb_errno(mdb_get(t->txn, dbi, &k, &v))))
		return rc;
	if (v.mv_size != sizeof(*value))
		return -EILSEQ;
	memcpy(value, v.mv_data, sizeof(*value));
	return 0;
}

int state_meta_put(struct mg_txn *t, const char *key, int64_t value)
{
	MDB_dbi dbi;
	MDB_val k = {strlen(key), (void *)key}, v = {sizeof(value), &value};
	int rc = meta_handle(t, &dbi);
	if (!rc && (!k.mv_size || k.mv_size > MAX_KEY + 80))
		rc = -EINVAL;
	return rc ? rc : lmdb_errno(mdb_put(t->txn, dbi, &k, &v, 0));
}

int state_meta_del(struct mg_txn *t, const char *key)
{
	MDB_dbi dbi;
	MDB_val k = {strlen(key), (void *)key};
	int rc = meta_handle(t, &dbi);
	if (!rc)
		rc = lmdb_errno(mdb_del(t->txn, dbi, &k, NULL));
	return rc == -ENOENT ? 0 : rc;
}

/* ---- checks of the database file ---- */

/* LMDB keeps its free list in database 0 (FREE_DBI): each record is an
 * array of page numbers, its first element their count. */
#define FREE_DBI 0

static int damaged(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int damaged(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/* Free-list records must name pages inside the file: a write would
 * otherwise reuse a page that is not there or not free. */
static int check_free_record(const MDB_val *v, size_t last_pgno, char *why, size_t whylen)
{
	const size_t *ids = v->mv_data;
	if (v->mv_size < sizeof(size_t) || v->mv_size != (ids[0] + 1) * sizeof(size_t))
		return damaged(why, whylen, "its free list holds a malformed record");
	for (size_t i = 1; i <= ids[0]; i++)
		if (ids[i] < 2 || ids[i] > last_pgno)
			return damaged(why, whylen,
			               "its free list names page %zu, outside the file", ids[i]);
	return 0;
}

/* Reads every record of one database in key order, touching every page of
 * every value, and compares what it found with what LMDB recorded. */
static int walk_db(MDB_txn *txn, MDB_dbi dbi, const char *name, size_t last_pgno, size_t *records,
                   char *why, size_t whylen)
{
	MDB_stat st;
	MDB_cursor *cur;
	MDB_val k, v, prev = {0, NULL};
	volatile unsigned char touched = 0;
	size_t n = 0;
	int rc = mdb_stat(txn, dbi, &st);

	if (rc || (rc = mdb_cursor_open(txn, dbi, &cur)))
		return damaged(why, whylen, "database %s: %s", name, mdb_strerror(rc));
	for (int op = MDB_FIRST; !(rc = mdb_cursor_get(cur, &k, &v, op)); op = MDB_NEXT) {
		if (n && mdb_cmp(txn, dbi, &prev, &k) >= 0) {
			mdb_cursor_close(cur);
			return damaged(why, whylen, "database %s: keys out of order", name);
		}
		for (size_t i = 0; i < v.mv_size; i += 1024)
			touched ^= ((const unsigned char *)v.mv_data)[i];
		if (dbi == FREE_DBI && check_free_record(&v, last_pgno, why, whylen)) {
			mdb_cursor_close(cur);
			return -EBADMSG;
		}
		prev = k;
		n++;
	}
	(void)touched; /* only there so that the reads above happen */
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return damaged(why, whylen, "database %s: %s", name, mdb_strerror(rc));
	if (n != st.ms_entries)
		return damaged(why, whylen, "database %s: %zu records found, %zu recorded", name, n,
		               (size_t)st.ms_entries);
	*records += n;
	return 0;
}

/* The walk proper, in the child: the meta pages (mdb_env_open), the
 * file's length against the last page in use, the free list, the main
 * database and every named database in it. */
static int walk_file(const char *file, off_t size, struct state_file_report *report, char *why,
                     size_t whylen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_envinfo info;
	MDB_stat st;
	MDB_dbi main_db;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t internal_records = 0;
	int rc;

	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, MAX_DBS)) ||
	    (rc = mdb_env_open(env, file, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0600)))
		return damaged(why, whylen, "LMDB cannot open it: %s", mdb_strerror(rc));
	mdb_env_info(env, &info);
	mdb_env_stat(env, &st);
	uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	if (used > (uint64_t)size)
		return damaged(why, whylen, "it is truncated: %lld bytes, its pages need %llu",
		               (long long)size, (unsigned long long)used);
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &main_db)))
		return damaged(why, whylen, "LMDB cannot read it: %s", mdb_strerror(rc));
	if ((rc = walk_db(txn, FREE_DBI, "(free pages)", info.me_last_pgno, &internal_records, why,
	                  whylen)) ||
	    (rc = walk_db(txn, main_db, "(main)", info.me_last_pgno, &internal_records, why,
	                  whylen)))
		return rc;
	if ((rc = mdb_cursor_open(txn, main_db, &cur)))
		return damaged(why, whylen, "LMDB cannot read it: %s", mdb_strerror(rc));
	for (int op = MDB_FIRST; !mdb_cursor_get(cur, &k, &v, op); op = MDB_NEXT) {
		char name[64];
		MDB_dbi dbi;
		if (k.mv_size >= sizeof(name))
			continue;
		memcpy(name, k.mv_data, k.mv_size);
		name[k.mv_size] = '\0';
		if (mdb_dbi_open(txn, name, 0, &dbi))
			continue; /* a plain key, not a database */
		if ((rc =
		         walk_db(txn, dbi, name, info.me_last_pgno, &report->records, why, whylen)))
			return rc;
		report->dbs++;
	}
	return 0; /* the child exits: LMDB's handles go with it */
}

/* What the child hands back through its pipe. */
struct check_result {
	int rc;
	struct state_file_report report;
	char why[400];
};

int state_file_check(const char *file, struct state_file_report *report, char *why, size_t whylen)
{
	struct check_result out = {0};
	struct stat st;
	int fds[2], status;

	memset(report, 0, sizeof(*report));
	if (stat(file, &st))
		return damaged(why, whylen, "cannot read it: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return damaged(why, whylen, "it is not a regular file");
	if (st.st_size == 0)
		return damaged(why, whylen, "it is empty (0 bytes)");
	if (pipe2(fds, O_CLOEXEC))
		return damaged(why, whylen, "cannot check it: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return damaged(why, whylen, "cannot check it: %s", strerror(errno));
	}
	if (pid == 0) {
		sigset_t all;
		sigfillset(&all);
		sigprocmask(SIG_UNBLOCK, &all, NULL);
		signal(SIGALRM, SIG_DFL);
		alarm(CHECK_TIMEOUT_S);
		/* LMDB's assertions on damaged pages would only repeat `why` */
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, STDERR_FILENO);
		out.rc = walk_file(file, st.st_size, &out.report, out.why, sizeof(out.why));
		_exit(write(fds[1], &out, sizeof(out)) == sizeof(out) ? 0 : 1);
	}
	close(fds[1]);
	ssize_t n;
	while ((n = read(fds[0], &out, sizeof(out))) < 0 && errno == EINTR)
		;
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n != sizeof(out)) {
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
			return damaged(why, whylen, "reading it took over %d s", CHECK_TIMEOUT_S);
		if (WIFSIGNALED(status))
			return damaged(why, whylen, "reading it failed with signal %d (%s)",
			               WTERMSIG(status), strsignal(WTERMSIG(status)));
		return damaged(why, whylen, "its check did not finish");
	}
	snprintf(why, whylen, "%s", out.why);
	*report = out.report;
	return out.rc;
}

/* ---- backup and restore ---- */

int state_backup(struct mg_state *state, const char *path, size_t *bytes, char *err, size_t errlen)
{
	char tmp[4200];
	struct stat st;
	int rc;

	if (path[0] != '/') {
		snprintf(err, errlen, "the backup path must be absolute, not '%s'", path);
		return -EINVAL;
	}
	if (!lstat(path, &st)) {
		snprintf(err, errlen, "%s exists: a backup never overwrites a file", path);
		return -EEXIST;
	}
	snprintf(tmp, sizeof(tmp), "%s.partial", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return rc;
	}
	rc = mdb_env_copyfd2(state->env, fd, MDB_CP_COMPACT);
	if (rc)
		snprintf(err, errlen, "cannot copy the database: %s", mdb_strerror(rc));
	else if (fsync(fd) || fstat(fd, &st))
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(rc = errno));
	close(fd);
	/* no replace: a file that appeared meanwhile is not clobbered */
	if (!rc && renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE))
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path,
		         strerror(rc = errno));
	if (rc) {
		unlink(tmp);
		return lmdb_errno(rc);
	}
	*bytes = (size_t)st.st_size;
	return 0;
}

static int copy_file(const char *from, const char *to, char *err, size_t errlen)
{
	char buf[1 << 16];
	ssize_t n = 0;
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	int rc = 0;

	if (in < 0 || out < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open %s: %s", in < 0 ? from : to, strerror(errno));
	}
	while (!rc && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			n = -1;
	if (!rc && (n < 0 || fsync(out))) {
		rc = -errno;
		snprintf(err, errlen, "cannot copy %s to %s: %s", from, to, strerror(errno));
	}
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

static void sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

int state_restore(const char *dir, const char *backup, char *kept, size_t keptlen, char *err,
                  size_t errlen)
{
	char data[4200], tmp[4200], lock[4200], why[400];
	struct state_file_report report;
	int rc;

	kept[0] = '\0';
	snprintf(data, sizeof(data), "%s/data.mdb", dir);
	snprintf(tmp, sizeof(tmp), "%s/data.mdb.restoring", dir);
	snprintf(lock, sizeof(lock), "%s/lock.mdb", dir);
	/* the copy is what gets checked: it is what will be used */
	if ((rc = copy_file(backup, tmp, err, errlen)))
		goto fail;
	if ((rc = state_file_check(tmp, &report, why, sizeof(why)))) {
		snprintf(err, errlen, "%s is not a usable state database: %s", backup, why);
		goto fail;
	}
	if (!report.dbs) {
		snprintf(err, errlen, "%s holds no databases: not a backup of a gateway", backup);
		rc = -EINVAL;
		goto fail;
	}
	if (!access(data, F_OK)) {
		snprintf(kept, keptlen, "%s.before-restore.%lld", data, (long long)time(NULL));
		if (link(data, kept)) {
			rc = -errno;
			snprintf(err, errlen, "cannot keep the old database as %s: %s", kept,
			         strerror(errno));
			kept[0] = '\0';
			goto fail;
		}
	}
	if (rename(tmp, data)) {
		rc = -errno;
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, data, strerror(errno));
		goto fail;
	}
	/* the readers' table of the old file means nothing for the new one */
	unlink(lock);
	sync_dir(dir);
	return 0;
fail:
	unlink(tmp);
	return rc;
}
