/* Durable commits per second through meshgate's state layer, against a
 * bare LMDB loop doing the same work in the same run (the baseline of
 * shared/BASELINES.md §6: ~5,000 commits/s with one put each, ~100,000
 * puts/s in transactions of 100), round after round, ours and bare
 * interleaved. Prints figures; never fails on time. Wall clock on a shared
 * machine is noisy: bench/core/callgrind.sh gives instructions per put. */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rounds.h"
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

static void ignore(const char *db, const char *key, const char *op, int remote, void *arg)
{
	(void)db, (void)key, (void)op, (void)remote;
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
	int rounds = argc > 3 ? atoi(argv[3]) : 5;
	struct figure bare1 = {.name = "1 put/txn, durable: bare LMDB", .unit = "commits/s"},
	              ours1 = {.name = "1 put/txn, durable: ours", .unit = "commits/s"},
	              p99_1 = {.name = "1 put/txn, durable: ours p99", .unit = "ms"},
	              bare100 = {.name = "100 puts/txn, durable: bare LMDB", .unit = "puts/s"},
	              ours100 = {.name = "100 puts/txn, durable: ours", .unit = "puts/s"},
	              p99_100 = {.name = "100 puts/txn, durable: ours p99 per txn", .unit = "ms"};
	memset(value_text, 'x', 256);
	if (rounds < 1 || rounds > MAX_ROUNDS)
		rounds = 5;

	for (int r = 0; r < rounds; r++) {
		/* who goes first alternates: neither always gets the fresher disk */
		if (r % 2 == 0)
			bare1.v[r] = bare_lmdb(single, 1);
		ours1.v[r] = ours(single, 1, &p99_1.v[r]);
		if (r % 2 == 1)
			bare1.v[r] = bare_lmdb(single, 1);
		if (r % 2 == 0)
			bare100.v[r] = bare_lmdb(batches, 100);
		ours100.v[r] = ours(batches, 100, &p99_100.v[r]);
		if (r % 2 == 1)
			bare100.v[r] = bare_lmdb(batches, 100);
		bare1.n = ours1.n = p99_1.n = bare100.n = ours100.n = p99_100.n = r + 1;
	}
	printf("bench_state: %d rounds, %d single commits and %d transactions of 100 each\n",
	       rounds, single, batches);
	figure_print(&bare1);
	figure_print(&ours1);
	figure_print(&p99_1);
	ratio_print("1 put/txn: ours / bare LMDB", &ours1, &bare1);
	figure_print(&bare100);
	figure_print(&ours100);
	figure_print(&p99_100);
	ratio_print("100 puts/txn: ours / bare LMDB", &ours100, &bare100);
	table_row("state, durable commits, 1 put/txn", &ours1, "bare LMDB", &bare1);
	table_row("state, puts in txns of 100", &ours100, "bare LMDB", &bare100);
	return 0;
}
