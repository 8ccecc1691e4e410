/* Durable commits per second through meshgate's state layer, against a
 * bare LMDB loop doing the same work in the same run (the baseline of
 * shared/BASELINES.md §6: ~5,000 commits/s with one put each, ~100,000
 * puts/s in transactions of 100). Prints figures; never fails on time. */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fresh_dir(char *dir, size_t len)
{
	snprintf(dir, len, "/var/tmp/mgbench.XXXXXX");
	if (!mkdtemp(dir))
		abort();
}

static void remove_dir(const char *dir)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", dir);
}

static char value_text[257];

/* puts/s through bare LMDB: the same 256-byte values, env flags 0. */
static double bare_lmdb(int txns, int per_txn)
{
	char dir[64];
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn;
	fresh_dir(dir, sizeof(dir));
	mdb_env_create(&env);
	mdb_env_set_maxdbs(env, 4);
	mdb_env_set_mapsize(env, 1UL << 30);
	mdb_env_open(env, dir, 0, 0600);
	mdb_txn_begin(env, NULL, 0, &txn);
	mdb_dbi_open(txn, "devices", MDB_CREATE, &dbi);
	mdb_txn_commit(txn);
	double t0 = now();
	for (int t = 0; t < txns; t++) {
		mdb_txn_begin(env, NULL, 0, &txn);
		for (int i = 0; i < per_txn; i++) {
			char key[32];
			snprintf(key, sizeof(key), "d%08d", t * per_txn + i);
			MDB_val k = {strlen(key), key}, v = {256, value_text};
			mdb_put(txn, dbi, &k, &v, 0);
		}
		mdb_txn_commit(txn);
	}
	double took = now() - t0;
	mdb_env_close(env);
	remove_dir(dir);
	return txns * per_txn / took;
}

static void ignore(const char *db, const char *key, const char *op, void *arg)
{
	(void)db, (void)key, (void)op;
	(*(long *)arg)++;
}

/* puts/s through state_*: JSON values, ownership checks, change records. */
static double ours(int txns, int per_txn, double *p99_ms)
{
	char dir[64], err[256];
	long announced = 0;
	fresh_dir(dir, sizeof(dir));
	struct mg_state *s = state_open(dir, 1UL << 30, err, sizeof(err));
	state_on_commit(s, ignore, &announced);
	state_claim(s, "devices", "bench");
	double *lat = calloc((size_t)txns, sizeof(*lat));
	json_t *value = json_pack("{s:s}", "blob", value_text + 16); /* ~256 bytes as JSON */
	double t0 = now();
	for (int t = 0; t < txns; t++) {
		struct mg_txn *txn;
		double s0 = now();
		state_begin(s, "bench", 0, &txn);
		for (int i = 0; i < per_txn; i++) {
			char key[32];
			snprintf(key, sizeof(key), "d%08d", t * per_txn + i);
			state_put(txn, "devices", key, value);
		}
		state_commit(txn);
		lat[t] = (now() - s0) * 1000;
	}
	double took = now() - t0;
	for (int i = 1; i < txns; i++) /* insertion sort is fine for a few thousand */
		for (int j = i; j > 0 && lat[j] < lat[j - 1]; j--) {
			double x = lat[j];
			lat[j] = lat[j - 1];
			lat[j - 1] = x;
		}
	*p99_ms = lat[(int)(txns * 0.99)];
	free(lat);
	json_decref(value);
	state_close(s);
	remove_dir(dir);
	return txns * per_txn / took;
}

int main(int argc, char **argv)
{
	int single = argc > 1 ? atoi(argv[1]) : 3000;
	int batches = argc > 2 ? atoi(argv[2]) : 1000;
	double p99;
	memset(value_text, 'x', 256);

	double bare1 = bare_lmdb(single, 1);
	double ours1 = ours(single, 1, &p99);
	printf("state: 1 put/txn, durable: ours %.0f commits/s (p99 %.3f ms), bare LMDB %.0f "
	       "commits/s, ratio %.2f\n",
	       ours1, p99, bare1, ours1 / bare1);
	double bare100 = bare_lmdb(batches, 100);
	double ours100 = ours(batches, 100, &p99);
	printf("state: 100 puts/txn, durable: ours %.0f puts/s (p99 %.3f ms per txn), bare LMDB "
	       "%.0f puts/s, ratio %.2f\n",
	       ours100, p99, bare100, ours100 / bare100);
	return 0;
}
