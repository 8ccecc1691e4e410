#include "cluster.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "etcd.h"
#include "cluster_key.h"
#include "metrics.h"

#define META_DB       "_cluster"
#define META_REVISION "revision" /* the watch has applied everything up to it */
/* "rev:DB/KEY": the mod revision of the key the mirror holds; negative:
 * the key was deleted at that revision (a tombstone, see mirror_apply) */
#define META_KEY_PREFIX "rev:"
#define MAX_ENDPOINTS   16
#define MAX_CLUSTER_DBS 64
#define HEALTH_EVERY_MS 300
#define RETRY_AFTER_MS  300
#define RANGE_PAGE      1000
/* etcd's default --max-txn-ops is 128: an import goes in chunks below it */
#define IMPORT_CHUNK 100
/* The watch's echo of this node's own writes changes nothing in the
 * mirror: its revision is written with the next real change, or after
 * this many revisions (a restart then re-reads at most these, which
 * change nothing either). */
#define REVISION_PERSIST_EVERY 1000

/* What one thread keeps: its etcd handle, and the keys its last commit
 * compared (refreshed after a conflict). */
struct thread_side {
	struct etcd *etcd;
	char **compared;
	size_t n_compared, cap;
};

/* What core.metrics tells of etcd: written by the threads that commit,
 * the watch and the health check, read by the broker's. */
struct etcd_figures {
	pthread_mutex_t lock;
	struct metrics_histogram txn_seconds; /* every commit sent to etcd */
	uint64_t txn_failures;                /* not answered, or refused */
	uint64_t conflicts;                   /* answered: another node's write won */
	uint64_t health_failures, watch_breaks;
};

/* Seconds of a commit: a few ms on a LAN, up to the request deadline. */
static const double txn_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,   0.25,   0.5,   1,    2.5};

struct cluster {
	struct mg_state *state;
	char node[128];
	char prefix[256];
	char prefix_end[256];
	char *endpoints[MAX_ENDPOINTS];
	size_t n_endpoints;
	struct etcd_config config;
	/* cluster.cert and cluster.key as libcurl reads them: anonymous files
	 * in memory (memfd), "/proc/self/fd/N"; -1 when not set */
	int cert_fd, key_fd;
	char cert_path[64], key_path[64];
	pthread_key_t thread_key;

	pthread_t watcher, health;
	int threads_started;
	volatile int stop;
	atomic_int writable;
	atomic_int import_pending; /* joined with data of its own, the cluster empty */
	atomic_llong revision;
	int64_t stored_revision; /* META_REVISION as LMDB holds it (watch thread) */
	int need_resync;         /* the watch reads everything first (the first read failed) */
	struct etcd_figures figures;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* A commit sent to etcd (not one refused before: too big, no quorum). */
static void count_txn(struct cluster *c, int rc, int succeeded, uint64_t us)
{
	if (rc == -E2BIG)
		return;
	pthread_mutex_lock(&c->figures.lock);
	metrics_observe(&c->figures.txn_seconds, (double)us / 1e6);
	if (rc)
		c->figures.txn_failures++;
	else if (!succeeded)
		c->figures.conflicts++;
	pthread_mutex_unlock(&c->figures.lock);
}

static void count_failure(struct cluster *c, uint64_t *counter)
{
	pthread_mutex_lock(&c->figures.lock);
	(*counter)++;
	pthread_mutex_unlock(&c->figures.lock);
}

/* Sleeps `ms`, but returns early once the cluster is closing. */
static void nap(struct cluster *c, unsigned ms)
{
	for (unsigned slept = 0; slept < ms && !c->stop; slept += 50)
		usleep(50 * 1000);
}

/* ---- keys: PREFIX DB "/" KEY ---- */

static int etcd_key(const struct cluster *c, const char *db, const char *key, char *out, size_t len)
{
	int n = snprintf(out, len, "%s%s/%s", c->prefix, db, key);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Splits an etcd key into db and key; -EINVAL for the core's own ('_')
 * and for what is not ours. */
static int split_key(const struct cluster *c, const char *full, char db[64], const char **key)
{
	size_t plen = strlen(c->prefix);
	if (strncmp(full, c->prefix, plen))
		return -EINVAL;
	const char *rest = full + plen, *slash = strchr(rest, '/');
	if (!slash || slash == rest || (size_t)(slash - rest) >= 64 || rest[0] == '_' || !slash[1])
		return -EINVAL;
	memcpy(db, rest, (size_t)(slash - rest));
	db[slash - rest] = '\0';
	*key = slash + 1;
	return 0;
}

static void meta_key(const char *db, const char *key, char *out, size_t len)
{
	snprintf(out, len, META_KEY_PREFIX "%s/%s", db, key);
}

/* ---- this thread's etcd handle ---- */

static void thread_side_free(void *arg)
{
	struct thread_side *t = arg;
	if (!t)
		return;
	etcd_close(t->etcd);
	for (size_t i = 0; i < t->n_compared; i++)
		free(t->compared[i]);
	free(t->compared);
	free(t);
}

static struct thread_side *thread_side(struct cluster *c)
{
	struct thread_side *t = pthread_getspecific(c->thread_key);
	if (t)
		return t;
	char err[256];
	if (!(t = calloc(1, sizeof(*t))))
		return NULL;
	if (etcd_open(&c->config, &t->etcd, err, sizeof(err))) {
		core_log(MG_LOG_ERROR, "cluster", "%s", err);
		free(t);
		return NULL;
	}
	pthread_setspecific(c->thread_key, t);
	return t;
}

static void forget_compared(struct thread_side *t)
{
	for (size_t i = 0; i < t->n_compared; i++)
		free(t->compared[i]);
	t->n_compared = 0;
}

static int remember_compared(struct thread_side *t, const char *key)
{
	if (t->n_compared == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **k = realloc(t->compared, cap * sizeof(*k));
		if (!k)
			return -ENOMEM;
		t->compared = k;
		t->cap = cap;
	}
	if (!(t->compared[t->n_compared] = strdup(key)))
		return -ENOMEM;
	t->n_compared++;
	return 0;
}

/* ---- a commit: one etcd transaction ---- */

struct commit_plan {
	struct cluster *cluster;
	struct mg_txn *txn;
	struct thread_side *side;
	struct etcd_compare *compares;
	struct etcd_op *ops;
	char **keys; /* the etcd keys, owned here */
	char **metas;
	size_t n_compares, n_ops, n_keys, cap;
};

static void plan_free(struct commit_plan *p)
{
	for (size_t i = 0; i < p->n_keys; i++) {
		free(p->keys[i]);
		free(p->metas[i]);
	}
	free(p->keys);
	free(p->metas);
	free(p->compares);
	free(p->ops);
}

static int plan_grow(struct commit_plan *p)
{
	if (p->n_keys < p->cap)
		return 0;
	size_t cap = p->cap ? p->cap * 2 : 16;
	char **keys = realloc(p->keys, cap * sizeof(*keys));
	if (keys)
		p->keys = keys;
	char **metas = realloc(p->metas, cap * sizeof(*metas));
	if (metas)
		p->metas = metas;
	struct etcd_compare *cmp = realloc(p->compares, cap * sizeof(*cmp));
	if (cmp)
		p->compares = cmp;
	struct etcd_op *ops = realloc(p->ops, cap * sizeof(*ops));
	if (ops)
		p->ops = ops;
	if (!keys || !metas || !cmp || !ops)
		return -ENOMEM;
	p->cap = cap;
	return 0;
}

/* Each key the transaction touched: compared with the mirror's revision;
 * each key it wrote: put (its value now) or deleted. */
static int plan_key(const char *db, const char *key, int written, void *arg)
{
	struct commit_plan *p = arg;
	char full[1024], meta[1024];
	int64_t revision;
	int rc = plan_grow(p);
	if (rc || (rc = etcd_key(p->cluster, db, key, full, sizeof(full))))
		return rc;
	meta_key(db, key, meta, sizeof(meta));
	if ((rc = state_meta_get(p->txn, meta, &revision)) && rc != -ENOENT)
		return rc;
	/* a key the mirror holds no revision of, or a tombstone of, has none
	 * in etcd either, as far as this node knows: it must still be absent */
	const char *text;
	size_t len;
	int exists = state_get_text(p->txn, db, key, &text, &len) == 0;
	if (!(p->keys[p->n_keys] = strdup(full)) || !(p->metas[p->n_keys] = strdup(meta))) {
		free(p->keys[p->n_keys]);
		return -ENOMEM;
	}
	const char *k = p->keys[p->n_keys++];
	p->compares[p->n_compares++] =
	    (struct etcd_compare){.key = k, .mod_revision = revision > 0 ? revision : 0};
	if ((rc = remember_compared(p->side, k)))
		return rc;
	if (written)
		p->ops[p->n_ops++] = exists ? (struct etcd_op){.type = ETCD_OP_PUT,
		                                               .key = k,
		                                               .value = text,
		                                               .value_len = len}
		                            : (struct etcd_op){.type = ETCD_OP_DELETE, .key = k};
	return 0;
}

static int cluster_commit(struct mg_txn *txn, void *arg)
{
	struct cluster *c = arg;
	struct thread_side *side = thread_side(c);
	if (!side)
		return -EHOSTUNREACH;
	forget_compared(side);
	struct commit_plan p = {.cluster = c, .txn = txn, .side = side};
	int rc = state_txn_touched(txn, plan_key, &p);
	struct etcd_txn_result result = {0};
	if (!rc && !p.n_ops) {
		/* nothing shared written (the node's own databases, or reads
		 * only): LMDB alone, whatever etcd's state */
		plan_free(&p);
		return 0;
	}
	if (!rc && atomic_load(&c->import_pending)) {
		core_log(MG_LOG_WARN, "cluster",
		         "write refused: this node's data is not in the cluster yet "
		         "(meshgatectl cluster import)");
		rc = -EHOSTUNREACH;
	} else if (!rc && !atomic_load(&c->writable)) {
		core_log(MG_LOG_DEBUG, "cluster", "write refused: etcd cannot take writes now");
		rc = -EHOSTUNREACH;
	}
	if (rc) {
		plan_free(&p);
		forget_compared(side); /* not a lost race: nothing to refresh */
		return rc;
	}
	uint64_t t0 = now_us();
	rc = etcd_txn(side->etcd, p.compares, p.n_compares, p.ops, p.n_ops, &result);
	count_txn(c, rc, result.succeeded, now_us() - t0);
	if (rc == -EHOSTUNREACH || rc == -ETIMEDOUT) {
		core_log(MG_LOG_WARN, "cluster", "write failed: %s", etcd_last_error(side->etcd));
		atomic_store(&c->writable, 0);
		rc = -EHOSTUNREACH;
	} else if (rc == -E2BIG) {
		/* refused before it was sent: the caller may split it */
		core_log(MG_LOG_DEBUG, "cluster",
		         "write refused: more keys in one transaction than cluster.max_txn_ops");
	} else if (rc) {
		core_log(MG_LOG_ERROR, "cluster", "write failed: %s", etcd_last_error(side->etcd));
	} else if (!result.succeeded) {
		rc = -ESTALE;
	} else {
		core_log(MG_LOG_DEBUG, "cluster",
		         "committed at revision %lld: %zu keys compared, %zu written",
		         (long long)result.revision, p.n_compares, p.n_ops);
		/* the mirror now holds what etcd holds, at the txn's revision
		 * (ops were planned in the order of the keys) */
		for (size_t i = 0, o = 0; i < p.n_keys && !rc; i++) {
			/* a delete leaves a tombstone until the watch passes it
			 * (mirror_apply) */
			if (o < p.n_ops && p.ops[o].key == p.keys[i]) {
				rc =
				    state_meta_put(txn, p.metas[i],
				                   p.ops[o].type == ETCD_OP_PUT ? result.revision
				                                                : -result.revision);
				o++;
			}
		}
		if (!rc)
			forget_compared(side);
	}
	plan_free(&p);
	return rc;
}

/* ---- the mirror ---- */

/* Applies one key as etcd holds it (value NULL: deleted at `revision`)
 * if the mirror's is older; sets *changed. `in_order`: from the watch or
 * a full read, which see a key's changes in revision order, so a delete
 * needs no trace; a refresh after a conflict runs ahead of the watch, and
 * its delete keeps the revision (a tombstone), so that the watch's older
 * events of the key do not bring it back. A tombstone goes when the watch
 * passes the delete it stands for. */
static int mirror_apply(struct mg_txn *txn, const char *db, const char *key, const char *value,
                        size_t len, int64_t revision, int in_order, int *changed)
{
	char meta[1024];
	int64_t held;
	meta_key(db, key, meta, sizeof(meta));
	int rc = state_meta_get(txn, meta, &held);
	*changed = 0;
	if (rc && rc != -ENOENT)
		return rc;
	if (!rc && (held < 0 ? -held : held) >= revision) {
		/* this node wrote it, or saw it already */
		if (!value && held == -revision && in_order)
			return state_meta_del(txn, meta); /* the watch passed this tombstone */
		return 0;
	}
	if (value) {
		rc = state_put_text(txn, db, key, value, len);
		if (rc == -EILSEQ) {
			core_log(MG_LOG_WARN, "cluster",
			         "%s/%s in etcd is not a JSON object: skipped", db, key);
			return 0;
		}
		if (!rc)
			rc = state_meta_put(txn, meta, revision);
		*changed = !rc;
		return rc;
	}
	rc = state_del(txn, db, key);
	*changed = !rc;
	if (rc && rc != -ENOENT)
		return rc;
	return in_order ? state_meta_del(txn, meta) : state_meta_put(txn, meta, -revision);
}

/* Creates the databases of `kvs` that this node has not seen yet
 * (before the mirror transaction: LMDB cannot inside one). */
static void create_dbs(struct cluster *c, const struct etcd_kv *const *kvs, size_t n)
{
	char db[64], last[64] = "";
	const char *key;
	for (size_t i = 0; i < n; i++)
		if (!split_key(c, kvs[i]->key, db, &key) && strcmp(db, last)) {
			state_create_db(c->state, db);
			memcpy(last, db, sizeof(last));
		}
}

static void watch_progress(struct cluster *c, int64_t revision)
{
	if (revision > atomic_load(&c->revision))
		atomic_store(&c->revision, revision);
}

static int on_watch_events(const struct etcd_event *events, size_t n, int64_t revision, void *arg)
{
	struct cluster *c = arg;
	struct mg_txn *txn;
	if (!n) {
		watch_progress(c, revision);
		return 0;
	}
	const struct etcd_kv **kvs = malloc(n * sizeof(*kvs));
	if (!kvs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		kvs[i] = &events[i].kv;
	create_dbs(c, kvs, n);
	free(kvs);
	int rc = state_begin_mirror(c->state, &txn);
	if (rc)
		return rc;
	size_t applied = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		char db[64];
		const char *key;
		int changed;
		const struct etcd_kv *kv = &events[i].kv;
		if (split_key(c, kv->key, db, &key))
			continue;
		int put = events[i].type == ETCD_OP_PUT;
		rc = mirror_apply(txn, db, key, put ? kv->value : NULL, put ? kv->value_len : 0,
		                  kv->mod_revision, 1, &changed);
		applied += changed;
	}
	if (!rc && !applied && revision - c->stored_revision < REVISION_PERSIST_EVERY) {
		/* only this node's own writes: no commit (and no fsync) */
		state_abort(txn);
		watch_progress(c, revision);
		return 0;
	}
	if (!rc)
		rc = state_meta_put(txn, META_REVISION, revision);
	if (rc) {
		state_abort(txn);
		core_log(MG_LOG_ERROR, "cluster", "cannot apply changes at revision %lld: %s",
		         (long long)revision, strerror(-rc));
		return rc;
	}
	rc = state_commit(txn);
	if (!rc) {
		c->stored_revision = revision;
		watch_progress(c, revision);
	}
	return rc;
}

/* ---- reading everything: at start, and when etcd compacted past us ---- */

struct snapshot {
	struct etcd_range *pages;
	size_t n_pages;
	const struct etcd_kv **kvs; /* every key, in etcd's (byte) order */
	size_t n;
	int64_t revision;
};

static void snapshot_free(struct snapshot *s)
{
	for (size_t i = 0; i < s->n_pages; i++)
		etcd_range_free(&s->pages[i]);
	free(s->pages);
	free(s->kvs);
}

static int snapshot_add_page(struct snapshot *s, struct etcd_range *page, const char *skip)
{
	struct etcd_range *pages = realloc(s->pages, (s->n_pages + 1) * sizeof(*pages));
	if (!pages) {
		etcd_range_free(page);
		return -ENOMEM;
	}
	s->pages = pages;
	s->pages[s->n_pages++] = *page;
	const struct etcd_kv **kvs = realloc(s->kvs, (s->n + page->n) * sizeof(*kvs));
	if (!kvs)
		return -ENOMEM;
	s->kvs = kvs;
	for (size_t i = 0; i < page->n; i++)
		if (!skip || strcmp(page->kvs[i].key, skip))
			s->kvs[s->n++] = &page->kvs[i];
	return 0;
}

/* Every key under the prefix, at one revision, a page at a time. A page
 * goes on from the last key of the one before, which it repeats (the key
 * just after it, last + "\0", is not a C string): dropped. */
static int snapshot_read(struct cluster *c, struct etcd *etcd, struct snapshot *s)
{
	char from[1024], skip[1024];
	int rc, has_skip = 0;
	snprintf(from, sizeof(from), "%s", c->prefix);
	memset(s, 0, sizeof(*s));
	for (;;) {
		struct etcd_range page;
		if ((rc = etcd_range(etcd, from, c->prefix_end, s->revision, RANGE_PAGE, &page)))
			return rc;
		if (!s->revision)
			s->revision = page.revision;
		int more = page.more && page.n > (size_t)has_skip;
		if (more && strlen(page.kvs[page.n - 1].key) >= sizeof(from)) {
			etcd_range_free(&page);
			return -ENAMETOOLONG;
		}
		if (more)
			snprintf(from, sizeof(from), "%s", page.kvs[page.n - 1].key);
		if ((rc = snapshot_add_page(s, &page, has_skip ? skip : NULL)))
			return rc;
		if (!more)
			return 0;
		memcpy(skip, from, sizeof(skip));
		has_skip = 1;
	}
}

struct local_keys {
	char **keys;
	size_t n, cap;
};

static int collect_key(const char *key, json_t *value, void *arg)
{
	(void)value;
	struct local_keys *l = arg;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		char **k = realloc(l->keys, cap * sizeof(*k));
		if (!k)
			return -ENOMEM;
		l->keys = k;
		l->cap = cap;
	}
	return (l->keys[l->n++] = strdup(key)) ? 0 : -ENOMEM;
}

static int by_text(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Deletes the keys of the cluster databases that etcd no longer holds.
 * `present`: the etcd keys, sorted. */
static int drop_missing(struct cluster *c, struct mg_txn *txn, char **present, size_t n_present,
                        size_t *dropped, size_t *local)
{
	char names[MAX_CLUSTER_DBS][64];
	size_t n_dbs = state_cluster_dbs(c->state, names, MAX_CLUSTER_DBS);
	int rc = 0;
	for (size_t d = 0; d < n_dbs && !rc; d++) {
		struct local_keys l = {0};
		rc = state_foreach(txn, names[d], NULL, collect_key, &l);
		for (size_t i = 0; i < l.n && !rc; i++) {
			char full[1024], meta[1024];
			(*local)++;
			if (etcd_key(c, names[d], l.keys[i], full, sizeof(full)))
				continue;
			const char *k = full;
			if (bsearch(&k, present, n_present, sizeof(*present), by_text))
				continue;
			if (atomic_load(&c->import_pending))
				continue; /* kept for the import */
			meta_key(names[d], l.keys[i], meta, sizeof(meta));
			if (!(rc = state_del(txn, names[d], l.keys[i])))
				rc = state_meta_del(txn, meta);
			(*dropped)++;
		}
		for (size_t i = 0; i < l.n; i++)
			free(l.keys[i]);
		free(l.keys);
	}
	return rc;
}

/* Makes the mirror what etcd holds now. */
static int resync(struct cluster *c, struct etcd *etcd)
{
	struct snapshot s;
	struct mg_txn *txn;
	int64_t synced = 0;
	int rc = snapshot_read(c, etcd, &s);
	if (rc) {
		snapshot_free(&s);
		return rc;
	}
	create_dbs(c, s.kvs, s.n);
	char **present = malloc((s.n ? s.n : 1) * sizeof(*present));
	if (!present) {
		snapshot_free(&s);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s.n; i++)
		present[i] = s.kvs[i]->key;
	qsort(present, s.n, sizeof(*present), by_text);

	size_t applied = 0, dropped = 0, local = 0;
	if (!(rc = state_begin_mirror(c->state, &txn))) {
		state_meta_get(txn, META_REVISION, &synced);
		for (size_t i = 0; i < s.n && !rc; i++) {
			char db[64];
			const char *key;
			int changed;
			if (split_key(c, s.kvs[i]->key, db, &key))
				continue;
			rc = mirror_apply(txn, db, key, s.kvs[i]->value, s.kvs[i]->value_len,
			                  s.kvs[i]->mod_revision, 1, &changed);
			applied += changed;
		}
		/* a node that ran alone and joins an empty cluster keeps its data
		 * until it is imported */
		if (!rc && !synced && !s.n) {
			size_t none = 0;
			atomic_store(&c->import_pending, 1);
			rc = drop_missing(c, txn, present, 0, &none, &local);
			if (!local)
				atomic_store(&c->import_pending, 0);
		} else if (!rc) {
			rc = drop_missing(c, txn, present, s.n, &dropped, &local);
		}
		if (!rc)
			rc = state_meta_put(txn, META_REVISION, s.revision);
		if (rc)
			state_abort(txn);
		else
			rc = state_commit(txn);
	}
	free(present);
	snapshot_free(&s);
	if (rc)
		return rc;
	atomic_store(&c->revision, s.revision);
	c->stored_revision = s.revision;
	core_log(MG_LOG_INFO, "cluster",
	         "mirror at revision %lld: %zu keys in etcd, %zu updated, %zu dropped",
	         (long long)s.revision, s.n, applied, dropped);
	if (atomic_load(&c->import_pending))
		core_log(MG_LOG_WARN, "cluster",
		         "the cluster is empty and this node holds %zu records: writes wait for "
		         "`meshgatectl cluster import`",
		         local);
	return 0;
}

/* After a lost race: the keys the commit compared, read from etcd and
 * applied, so that the retry reads what won. */
static void cluster_after_conflict(void *arg)
{
	struct cluster *c = arg;
	struct thread_side *side = pthread_getspecific(c->thread_key);
	if (!side || !side->n_compared)
		return;
	struct etcd_range *ranges = calloc(side->n_compared, sizeof(*ranges));
	if (!ranges)
		return;
	int rc = 0;
	size_t got = 0;
	for (; got < side->n_compared && !rc; got++)
		rc = etcd_range(side->etcd, side->compared[got], NULL, 0, 1, &ranges[got]);
	if (rc)
		got--;
	struct mg_txn *txn;
	if (!rc && !(rc = state_begin_mirror(c->state, &txn))) {
		for (size_t i = 0; i < got && !rc; i++) {
			char db[64];
			const char *key;
			int changed;
			if (split_key(c, side->compared[i], db, &key))
				continue;
			const struct etcd_kv *kv = ranges[i].n ? &ranges[i].kvs[0] : NULL;
			rc = mirror_apply(txn, db, key, kv ? kv->value : NULL,
			                  kv ? kv->value_len : 0,
			                  kv ? kv->mod_revision : ranges[i].revision, 0, &changed);
			if (changed)
				core_log(MG_LOG_DEBUG, "cluster", "lost a race on %s/%s", db, key);
		}
		if (rc)
			state_abort(txn);
		else
			rc = state_commit(txn);
	}
	for (size_t i = 0; i < got; i++)
		etcd_range_free(&ranges[i]);
	free(ranges);
	forget_compared(side);
	if (rc)
		core_log(MG_LOG_WARN, "cluster", "cannot refresh after a conflict: %s",
		         strerror(-rc));
}

static const struct state_cluster_hooks hooks = {
    .commit = cluster_commit,
    .after_conflict = cluster_after_conflict,
};

/* ---- threads: the watch, the health check ---- */

static void *watch_main(void *arg)
{
	struct cluster *c = arg;
	struct etcd *etcd;
	char err[256];
	int need_resync = c->need_resync;
	if (etcd_open(&c->config, &etcd, err, sizeof(err))) {
		core_log(MG_LOG_ERROR, "cluster", "watch: %s", err);
		return NULL;
	}
	while (!c->stop) {
		int rc = 0;
		if (need_resync && (rc = resync(c, etcd)) == 0)
			need_resync = 0;
		if (!rc)
			rc = etcd_watch(etcd, c->prefix, atomic_load(&c->revision) + 1,
			                on_watch_events, c, &c->stop);
		if (c->stop)
			break;
		count_failure(c, &c->figures.watch_breaks);
		if (rc == -ERANGE) {
			core_log(MG_LOG_INFO, "cluster",
			         "etcd compacted past revision %lld: reading all",
			         (long long)atomic_load(&c->revision));
			need_resync = 1;
			continue;
		}
		nap(c, RETRY_AFTER_MS);
	}
	etcd_close(etcd);
	return NULL;
}

static void *health_main(void *arg)
{
	struct cluster *c = arg;
	struct etcd *etcd;
	char err[256];
	if (etcd_open(&c->config, &etcd, err, sizeof(err))) {
		core_log(MG_LOG_ERROR, "cluster", "health: %s", err);
		return NULL;
	}
	while (!c->stop) {
		int ok = etcd_health(etcd) == 0;
		if (!ok)
			count_failure(c, &c->figures.health_failures);
		if (ok != atomic_exchange(&c->writable, ok))
			core_log(ok ? MG_LOG_INFO : MG_LOG_WARN, "cluster", "%s%s",
			         ok ? "etcd takes writes again"
			            : "etcd cannot take writes (no quorum or unreachable): writes "
			              "fail, the data plane goes on from the mirror: ",
			         ok ? "" : etcd_last_error(etcd));
		nap(c, HEALTH_EVERY_MS);
	}
	etcd_close(etcd);
	return NULL;
}

/* ---- open, close, status ---- */

int cluster_settings_check(json_t *settings, char *err, size_t errlen)
{
	const char *node = json_string_value(json_object_get(settings, "node"));
	const char *prefix = json_string_value(json_object_get(settings, "prefix"));
	json_t *etcd = json_object_get(settings, "etcd");
	if (!node || !*node || strlen(node) >= sizeof(((struct cluster *)0)->node)) {
		snprintf(err, errlen, "cluster.node must be given (this node's name)");
		return -EINVAL;
	}
	if (!json_array_size(etcd) || json_array_size(etcd) > MAX_ENDPOINTS) {
		snprintf(err, errlen, "cluster.etcd must list 1 to %d etcd client URLs",
		         MAX_ENDPOINTS);
		return -EINVAL;
	}
	json_t *max_ops = json_object_get(settings, "max_txn_ops");
	if (max_ops && (json_integer_value(max_ops) < 16 || json_integer_value(max_ops) > 100000)) {
		snprintf(err, errlen,
		         "cluster.max_txn_ops must be 16..100000 (etcd's --max-txn-ops)");
		return -EINVAL;
	}
	if (!prefix || prefix[0] != '/' || prefix[strlen(prefix) - 1] != '/' ||
	    strlen(prefix) >= sizeof(((struct cluster *)0)->prefix) - 1) {
		snprintf(err, errlen, "cluster.prefix must begin and end with '/', not '%s'",
		         prefix ? prefix : "");
		return -EINVAL;
	}
	return 0;
}

/* `len` bytes of `data` in an anonymous file in memory (memfd): its fd,
 * and the path libcurl opens it by for each connection. The key reaches
 * libcurl this way because this libcurl's TLS (GnuTLS) takes a client key
 * from a file only, not from memory (CURLOPT_SSLKEY_BLOB). */
static int memory_file(const char *name, const char *data, size_t len, char *path, size_t pathlen,
                       char *err, size_t errlen)
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	size_t off = 0;
	while (fd >= 0 && off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n <= 0) {
			close(fd);
			fd = -1;
			break;
		}
		off += (size_t)n;
	}
	if (fd < 0) {
		snprintf(err, errlen, "cannot hold %s in memory: %s", name, strerror(errno));
		return -errno;
	}
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

/* cluster.cert and cluster.key, held in memory for every connection to
 * etcd. The key comes from the secret service (cluster_key.h); the
 * certificate, public, stays the operator's file. Both are read at start,
 * so that a renewed pair is used together, from the next start on. */
static int client_credentials(struct cluster *c, json_t *settings, const char *key_pem,
                              size_t key_len, char *err, size_t errlen)
{
	const char *cert = json_string_value(json_object_get(settings, "cert"));
	char *cert_pem = NULL;
	size_t cert_len = 0;
	int rc = 0;
	if (!key_pem)
		return 0;
	if (cert && (rc = cluster_pem_read(cert, &cert_pem, &cert_len, err, errlen)))
		return rc;
	if (cert_pem)
		rc = c->cert_fd = memory_file("etcd-client-cert", cert_pem, cert_len, c->cert_path,
		                              sizeof(c->cert_path), err, errlen);
	if (rc >= 0)
		rc = c->key_fd = memory_file("etcd-client-key", key_pem, key_len, c->key_path,
		                             sizeof(c->key_path), err, errlen);
	free(cert_pem);
	return rc < 0 ? rc : 0;
}

static int configure(struct cluster *c, json_t *settings, char *err, size_t errlen)
{
	const char *node = json_string_value(json_object_get(settings, "node"));
	const char *prefix = json_string_value(json_object_get(settings, "prefix"));
	json_t *etcd = json_object_get(settings, "etcd");
	int rc = cluster_settings_check(settings, err, errlen);
	if (rc)
		return rc;
	snprintf(c->node, sizeof(c->node), "%s", node);
	snprintf(c->prefix, sizeof(c->prefix), "%s", prefix);
	etcd_prefix_end(c->prefix, c->prefix_end);
	size_t i;
	json_t *url;
	json_array_foreach(etcd, i, url)
	{
		if (!(c->endpoints[c->n_endpoints++] = strdup(json_string_value(url))))
			return -ENOMEM;
	}
	c->config = (struct etcd_config){
	    .endpoints = (const char *const *)c->endpoints,
	    .n_endpoints = c->n_endpoints,
	    .ca_file = json_string_value(json_object_get(settings, "ca")),
	    /* the client's certificate and key in memory (client_credentials) */
	    .cert_file = c->cert_fd >= 0 ? c->cert_path
	                                 : json_string_value(json_object_get(settings, "cert")),
	    .key_file = c->key_fd >= 0 ? c->key_path : NULL,
	    .timeout_ms = (int)json_integer_value(json_object_get(settings, "timeout_ms")),
	    .max_txn_ops = (size_t)json_integer_value(json_object_get(settings, "max_txn_ops")),
	};
	return 0;
}

static int count_one(const char *key, json_t *value, void *arg)
{
	(void)key, (void)value;
	++*(size_t *)arg;
	return 0;
}

/* A node that ran alone and now joins a cluster that has data: its own
 * records are about to be replaced by the cluster's. A copy first. */
static void keep_a_copy(struct cluster *c, const char *state_dir)
{
	char names[MAX_CLUSTER_DBS][64], path[4096], err[512];
	size_t n_dbs = state_cluster_dbs(c->state, names, MAX_CLUSTER_DBS), records = 0, bytes;
	struct mg_txn *txn;
	if (state_begin(c->state, NULL, 1, &txn))
		return;
	for (size_t d = 0; d < n_dbs; d++)
		state_foreach(txn, names[d], NULL, count_one, &records);
	state_abort(txn);
	if (!records)
		return;
	snprintf(path, sizeof(path), "%s/before-cluster-%lld.mdb", state_dir,
	         (long long)time(NULL));
	if (state_backup(c->state, path, &bytes, err, sizeof(err)))
		core_log(MG_LOG_WARN, "cluster",
		         "cannot keep a copy of the state before joining: %s", err);
	else
		core_log(MG_LOG_INFO, "cluster",
		         "first start in the cluster with %zu records of this node's own: a copy "
		         "is in %s",
		         records, path);
}

int cluster_open(struct mg_state *state, json_t *settings, const char *state_dir,
                 const char *key_pem, size_t key_len, struct cluster **out, char *err,
                 size_t errlen)
{
	struct cluster *c = calloc(1, sizeof(*c));
	struct etcd *etcd = NULL;
	int rc;
	*err = '\0';
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->state = state;
	c->cert_fd = c->key_fd = -1;
	pthread_mutex_init(&c->figures.lock, NULL);
	metrics_histogram_init(&c->figures.txn_seconds, txn_bounds,
	                       sizeof(txn_bounds) / sizeof(txn_bounds[0]));
	if ((rc = client_credentials(c, settings, key_pem, key_len, err, errlen)) ||
	    (rc = configure(c, settings, err, errlen)) ||
	    (rc = -pthread_key_create(&c->thread_key, thread_side_free))) {
		if (!*err)
			snprintf(err, errlen, "cannot set up the cluster: %s", strerror(-rc));
		cluster_close(c);
		return rc;
	}
	if ((rc = state_create_db(state, META_DB)) ||
	    (rc = etcd_open(&c->config, &etcd, err, errlen))) {
		if (!*err)
			snprintf(err, errlen, "cannot set up the cluster: %s", strerror(-rc));
		pthread_key_delete(c->thread_key);
		cluster_close(c);
		return rc;
	}
	struct mg_txn *txn;
	int64_t revision = 0;
	if (!state_begin(state, NULL, 1, &txn)) {
		state_meta_get(txn, META_REVISION, &revision);
		state_abort(txn);
	}
	atomic_store(&c->revision, revision);
	c->stored_revision = revision;
	uint64_t start = now_ms();
	atomic_store(&c->writable, etcd_health(etcd) == 0);
	if (!atomic_load(&c->writable))
		core_log(MG_LOG_WARN, "cluster", "etcd cannot take writes now: %s",
		         etcd_last_error(etcd));
	if (!revision)
		keep_a_copy(c, state_dir);
	/* without etcd now, the node serves from its mirror and catches up
	 * when etcd answers (the watch then reads what it missed) */
	if ((c->need_resync = (rc = resync(c, etcd)) != 0))
		core_log(MG_LOG_WARN, "cluster",
		         "etcd (%s) does not answer: %s; serving from the mirror at revision %lld",
		         c->endpoints[0], etcd_last_error(etcd), (long long)revision);
	else
		core_log(MG_LOG_INFO, "cluster", "node %s joined %s at %s in %llu ms", c->node,
		         c->prefix, c->endpoints[0], (unsigned long long)(now_ms() - start));
	etcd_close(etcd);
	state_set_cluster(state, &hooks, c);
	int watching = !pthread_create(&c->watcher, NULL, watch_main, c);
	if (watching)
		core_name_thread(c->watcher, "etcd-watch");
	if (!watching || pthread_create(&c->health, NULL, health_main, c)) {
		c->stop = 1;
		if (watching)
			pthread_join(c->watcher, NULL);
		snprintf(err, errlen, "cannot start the cluster's threads");
		state_set_cluster(state, NULL, NULL);
		pthread_key_delete(c->thread_key);
		cluster_close(c);
		return -EAGAIN;
	}
	core_name_thread(c->health, "etcd-health");
	c->threads_started = 1;
	*out = c;
	return 0;
}

/* At a clean stop: where the watch is, so that the next start does not
 * re-read the echoes of this node's own writes. */
static void persist_revision(struct cluster *c)
{
	struct mg_txn *txn;
	int64_t revision = atomic_load(&c->revision);
	if (revision <= c->stored_revision || state_begin_mirror(c->state, &txn))
		return;
	if (state_meta_put(txn, META_REVISION, revision))
		state_abort(txn);
	else
		state_commit(txn);
}

void cluster_close(struct cluster *c)
{
	if (!c)
		return;
	c->stop = 1;
	if (c->threads_started) {
		pthread_join(c->watcher, NULL);
		pthread_join(c->health, NULL);
		persist_revision(c);
		state_set_cluster(c->state, NULL, NULL);
		thread_side_free(pthread_getspecific(c->thread_key));
		pthread_key_delete(c->thread_key);
	}
	for (size_t i = 0; i < c->n_endpoints; i++)
		free(c->endpoints[i]);
	if (c->cert_fd >= 0)
		close(c->cert_fd);
	if (c->key_fd >= 0)
		close(c->key_fd);
	pthread_mutex_destroy(&c->figures.lock);
	free(c);
}

json_t *cluster_metrics(struct cluster *c)
{
	json_t *families = json_array();
	pthread_mutex_lock(&c->figures.lock);
	struct etcd_figures f = c->figures;
	pthread_mutex_unlock(&c->figures.lock);
	metrics_histogram_sample(metrics_family(families, "meshgate_etcd_txn_seconds", "histogram",
	                                        "Seconds each commit to etcd took, answered or "
	                                        "not"),
	                         NULL, &f.txn_seconds);
	json_t *errors = metrics_family(
	    families, "meshgate_etcd_errors_total", "counter",
	    "Failures talking to etcd: txn (a commit not answered or refused), health (a check "
	    "that found no quorum or no member), watch (the watch broke and started again)");
	metrics_sample(errors, json_pack("{s:s}", "op", "txn"), (double)f.txn_failures);
	metrics_sample(errors, json_pack("{s:s}", "op", "health"), (double)f.health_failures);
	metrics_sample(errors, json_pack("{s:s}", "op", "watch"), (double)f.watch_breaks);
	metrics_sample(
	    metrics_family(families, "meshgate_etcd_conflicts_total", "counter",
	                   "Commits that lost a race to another node's write (run again)"),
	    NULL, (double)f.conflicts);
	metrics_sample(metrics_family(families, "meshgate_etcd_writable", "gauge",
	                              "1 while etcd takes writes (a member answers and knows a "
	                              "leader), as the last health check found"),
	               NULL, atomic_load(&c->writable));
	metrics_sample(metrics_family(families, "meshgate_etcd_revision", "gauge",
	                              "The etcd revision this node's mirror has reached"),
	               NULL, (double)atomic_load(&c->revision));
	return families;
}

json_t *cluster_status(struct cluster *c)
{
	json_t *endpoints = json_array();
	for (size_t i = 0; i < c->n_endpoints; i++)
		json_array_append_new(endpoints, json_string(c->endpoints[i]));
	return json_pack("{s:s, s:o, s:s, s:b, s:I, s:b}", "node", c->node, "etcd", endpoints,
	                 "prefix", c->prefix, "writable", atomic_load(&c->writable), "revision",
	                 (json_int_t)atomic_load(&c->revision), "import_pending",
	                 atomic_load(&c->import_pending));
}

/* ---- import: a node that ran alone joins an empty cluster ---- */

struct import {
	struct cluster *cluster;
	struct etcd *etcd;
	struct mg_txn *txn;
	const char *db;
	struct etcd_op ops[IMPORT_CHUNK + 1];
	char *keys[IMPORT_CHUNK];
	char *metas[IMPORT_CHUNK];
	char *values[IMPORT_CHUNK];
	size_t n, total;
	char marker[300];
	char marker_value[256];
	int64_t marker_revision; /* 0 before the first chunk */
	char *err;
	size_t errlen;
};

static void import_clear(struct import *im)
{
	for (size_t i = 0; i < im->n; i++) {
		free(im->keys[i]);
		free(im->metas[i]);
		free(im->values[i]);
	}
	im->n = 0;
}

/* One chunk: the first compares that the prefix is empty, the next ones
 * that the marker is still the one this import wrote. */
static int import_flush(struct import *im)
{
	char *err = im->err;
	size_t errlen = im->errlen;
	struct cluster *c = im->cluster;
	struct etcd_compare cmp =
	    im->marker_revision
	        ? (struct etcd_compare){.key = im->marker, .mod_revision = im->marker_revision}
	        : (struct etcd_compare){.key = c->prefix, .range_end = c->prefix_end};
	struct etcd_txn_result result;
	im->ops[im->n] = (struct etcd_op){.type = ETCD_OP_PUT,
	                                  .key = im->marker,
	                                  .value = im->marker_value,
	                                  .value_len = strlen(im->marker_value)};
	int rc = etcd_txn(im->etcd, &cmp, 1, im->ops, im->n + 1, &result);
	if (rc) {
		snprintf(err, errlen, "etcd: %s", etcd_last_error(im->etcd));
		return rc == -ETIMEDOUT ? -EHOSTUNREACH : rc;
	}
	if (!result.succeeded) {
		snprintf(err, errlen,
		         im->marker_revision ? "another node wrote the cluster during the import"
		                             : "the cluster prefix %s holds data already: import "
		                               "refused",
		         c->prefix);
		return -EEXIST;
	}
	im->marker_revision = result.revision;
	for (size_t i = 0; i < im->n && !rc; i++)
		rc = state_meta_put(im->txn, im->metas[i], result.revision);
	im->total += im->n;
	import_clear(im);
	return rc;
}

static int import_key(const char *key, json_t *value, void *arg)
{
	struct import *im = arg;
	char full[1024], meta[1024];
	(void)value;
	const char *text;
	size_t len;
	if (etcd_key(im->cluster, im->db, key, full, sizeof(full)) ||
	    state_get_text(im->txn, im->db, key, &text, &len))
		return 0;
	meta_key(im->db, key, meta, sizeof(meta));
	im->keys[im->n] = strdup(full);
	im->metas[im->n] = strdup(meta);
	/* a copy: the chunk's meta writes may move pages of this transaction */
	im->values[im->n] = strndup(text, len);
	if (!im->keys[im->n] || !im->metas[im->n] || !im->values[im->n]) {
		im->n++;
		return -ENOMEM;
	}
	im->ops[im->n] = (struct etcd_op){.type = ETCD_OP_PUT,
	                                  .key = im->keys[im->n],
	                                  .value = im->values[im->n],
	                                  .value_len = len};
	im->n++;
	return im->n == IMPORT_CHUNK ? import_flush(im) : 0;
}

int cluster_import(struct cluster *c, size_t *keys, char *err, size_t errlen)
{
	struct import im = {.cluster = c, .err = err, .errlen = errlen};
	char names[MAX_CLUSTER_DBS][64];
	size_t n_dbs = state_cluster_dbs(c->state, names, MAX_CLUSTER_DBS);
	int rc;
	*keys = 0;
	*err = '\0';
	snprintf(im.marker, sizeof(im.marker), "%s_import", c->prefix);
	snprintf(im.marker_value, sizeof(im.marker_value), "{\"node\":\"%s\"}", c->node);
	if ((rc = etcd_open(&c->config, &im.etcd, err, errlen)))
		return rc;
	/* a mirror transaction: its meta writes note each key's revision, so
	 * that the watch does not announce the imported keys again */
	if ((rc = state_begin_mirror(c->state, &im.txn))) {
		etcd_close(im.etcd);
		snprintf(err, errlen, "cannot read the state: %s", strerror(-rc));
		return rc;
	}
	for (size_t d = 0; d < n_dbs && !rc; d++) {
		im.db = names[d];
		rc = state_foreach(im.txn, im.db, NULL, import_key, &im);
	}
	/* the last chunk; with nothing at all, the marker alone claims the prefix */
	if (!rc && (im.n || !im.marker_revision))
		rc = import_flush(&im);
	import_clear(&im);
	if (rc)
		state_abort(im.txn);
	else if ((rc = state_commit(im.txn)))
		snprintf(err, errlen, "cannot note the import in the mirror: %s", strerror(-rc));
	etcd_close(im.etcd);
	if (rc && !*err)
		snprintf(err, errlen, "%s", strerror(-rc));
	if (!rc) {
		atomic_store(&c->import_pending, 0);
		*keys = im.total;
		core_log(MG_LOG_INFO, "cluster", "imported %zu records into %s", im.total,
		         c->prefix);
	}
	return rc;
}
