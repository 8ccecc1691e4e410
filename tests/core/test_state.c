/* The state layer on its own: owners, versions, prefixes, commit events. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "state.h"

struct fixture {
	char dir[64];
	struct mg_state *state;
	int events;
	char last[128];
};

static void on_commit(const char *db, const char *key, const char *op, int remote, void *arg)
{
	(void)remote;
	struct fixture *f = arg;
	f->events++;
	snprintf(f->last, sizeof(f->last), "%s/%s/%s", db, key, op);
}

static int setup(void **ctx)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];
	snprintf(f->dir, sizeof(f->dir), "/tmp/mgstate.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->state = state_open(f->dir, 64 << 20, err, sizeof(err));
	assert_non_null(f->state);
	state_on_commit(f->state, on_commit, f);
	*ctx = f;
	return 0;
}

static int teardown(void **ctx)
{
	struct fixture *f = *ctx;
	char cmd[128];
	state_close(f->state);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void put_one(struct mg_state *s, const char *owner, const char *key, int n, int expect)
{
	struct mg_txn *t;
	assert_int_equal(state_begin(s, owner, 0, &t), 0);
	json_t *v = json_pack("{s:i}", "n", n);
	int rc = state_put(t, "users", key, v);
	json_decref(v);
	assert_int_equal(rc, expect);
	if (rc)
		state_abort(t);
	else
		assert_int_equal(state_commit(t), 0);
}

static void test_owner_writes_others_read(void **ctx)
{
	struct fixture *f = *ctx;
	struct mg_txn *t;
	json_t *v;
	assert_int_equal(state_claim(f->state, "users", "preauth"), 0);
	assert_int_equal(state_claim(f->state, "users", "intruder"), -EEXIST);
	put_one(f->state, "preauth", "alice", 1, 0);
	put_one(f->state, "intruder", "alice", 2, -EPERM);
	assert_int_equal(f->events, 1);
	assert_string_equal(f->last, "users/alice/put");

	assert_int_equal(state_begin(f->state, NULL, 1, &t), 0);
	assert_int_equal(state_get(t, "users", "alice", &v), 0);
	assert_int_equal(json_integer_value(json_object_get(v, "n")), 1);
	assert_int_equal(json_integer_value(json_object_get(v, "v")), 1); /* version stamped */
	json_decref(v);
	assert_int_equal(state_get(t, "users", "bob", &v), -ENOENT);
	assert_int_equal(state_get(t, "never_written", "x", &v), -ENOENT);
	state_abort(t);
}

static int count(const char *key, json_t *value, void *arg)
{
	(void)key;
	(void)value;
	(*(int *)arg)++;
	return 0;
}

static void test_prefix_walk_and_abort(void **ctx)
{
	struct fixture *f = *ctx;
	struct mg_txn *t;
	int n = 0;
	assert_int_equal(state_claim(f->state, "users", "preauth"), 0);
	put_one(f->state, "preauth", "dev-1", 1, 0);
	put_one(f->state, "preauth", "dev-2", 2, 0);
	put_one(f->state, "preauth", "user-1", 3, 0);
	/* an aborted write is not seen and not announced */
	int events = f->events;
	assert_int_equal(state_begin(f->state, "preauth", 0, &t), 0);
	json_t *v = json_object();
	assert_int_equal(state_put(t, "users", "dev-3", v), 0);
	json_decref(v);
	state_abort(t);
	assert_int_equal(f->events, events);

	assert_int_equal(state_begin(f->state, NULL, 1, &t), 0);
	assert_int_equal(state_foreach(t, "users", "dev-", count, &n), 0);
	assert_int_equal(n, 2);
	n = 0;
	assert_int_equal(state_foreach(t, "users", NULL, count, &n), 0);
	assert_int_equal(n, 3);
	state_abort(t);
}

static void test_bad_input_changes_nothing(void **ctx)
{
	struct fixture *f = *ctx;
	struct mg_txn *t;
	char key[600];
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	assert_int_equal(state_claim(f->state, "users", "preauth"), 0);
	assert_int_equal(state_begin(f->state, "preauth", 0, &t), 0);
	json_t *arr = json_array(), *obj = json_object();
	assert_int_equal(state_put(t, "users", "x", arr), -EINVAL); /* not an object */
	assert_int_equal(state_put(t, "users", key, obj), -EINVAL); /* key too long */
	assert_int_equal(state_put(t, "users", "", obj), -EINVAL);
	json_decref(arr);
	json_decref(obj);
	assert_int_equal(state_commit(t), 0);
	assert_int_equal(f->events, 0);
}

/* A database written before a restart is readable from a transaction that
 * began before anybody touched it (LMDB only lets a transaction use the
 * handles open when it began). */
static void test_reopen_reads_in_older_transaction(void **ctx)
{
	struct fixture *f = *ctx;
	struct mg_txn *t;
	json_t *v;
	char err[256];
	assert_int_equal(state_claim(f->state, "users", "preauth"), 0);
	put_one(f->state, "preauth", "alice", 5, 0);
	state_close(f->state);
	f->state = state_open(f->dir, 64 << 20, err, sizeof(err));
	assert_non_null(f->state);
	assert_int_equal(state_begin(f->state, NULL, 1, &t), 0);
	assert_int_equal(state_get(t, "users", "alice", &v), 0);
	assert_int_equal(json_integer_value(json_object_get(v, "n")), 5);
	json_decref(v);
	state_abort(t);
}

/* A nested transaction: committed, its writes join the parent's and are
 * announced when the parent commits; aborted, they vanish alone. */
/* KiB of data.mdb resident in this process (smaps), 0 when not mapped. */
static long mapped_db_kib(void)
{
	FILE *smaps = fopen("/proc/self/smaps", "r");
	char line[512];
	long kib = 0, rss;
	int in_db = 0;
	assert_non_null(smaps);
	while (fgets(line, sizeof(line), smaps)) {
		if (strchr(line, '-') && strchr(line, '/') && strstr(line, " "))
			in_db = strstr(line, "/data.mdb") != NULL;
		if (in_db && sscanf(line, "Rss: %ld kB", &rss) == 1)
			kib += rss;
	}
	fclose(smaps);
	return kib;
}

/* A walk over every record maps the file; releasing the pages drops them
 * from our RSS and the records read back the same. */
static void test_release_pages_keeps_the_data(void **ctx)
{
	struct fixture *f = *ctx;
	struct mg_txn *t;
	char key[32], big[2048];
	int n = 0;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(state_claim(f->state, "users", "preauth"), 0);
	assert_int_equal(state_begin(f->state, "preauth", 0, &t), 0);
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "u%04d", i);
		json_t *v = json_pack("{s:s}", "pad", big);
		assert_int_equal(state_put(t, "users", key, v), 0);
		json_decref(v);
	}
	assert_int_equal(state_commit(t), 0);
	assert_int_equal(state_begin(f->state, NULL, 1, &t), 0);
	assert_int_equal(state_foreach(t, "users", "", count, &n), 0);
	state_abort(t);
	assert_int_equal(n, 2000);
	long before = mapped_db_kib();
	assert_true(before > 2000); /* 2000 records of 2 KB were read */

	state_release_pages(f->state);
	/* most of it goes (all of it in a normal build; an ASan build was seen
	 * keeping about a fifth resident) */
	assert_true(mapped_db_kib() < before / 2);
	n = 0;
	assert_int_equal(state_begin(f->state, NULL, 1, &t), 0);
	assert_int_equal(state_foreach(t, "users", "", count, &n), 0);
	state_abort(t);
	assert_int_equal(n, 2000);
}

static void test_nested_transactions(void **ctx)
{
	struct fixture *f = *ctx;
	struct mg_txn *parent, *child;
	json_t *v = json_object();
	assert_int_equal(state_claim(f->state, "users", "preauth"), 0);
	assert_int_equal(state_begin(f->state, "preauth", 0, &parent), 0);
	assert_int_equal(state_begin_nested(parent, &child), 0);
	assert_int_equal(state_put(child, "users", "kept", v), 0);
	assert_int_equal(state_commit(child), 0);
	assert_int_equal(f->events, 0); /* not durable yet */
	assert_int_equal(state_begin_nested(parent, &child), 0);
	assert_int_equal(state_put(child, "users", "undone", v), 0);
	state_abort(child);
	assert_int_equal(state_commit(parent), 0);
	assert_int_equal(f->events, 1);
	assert_string_equal(f->last, "users/kept/put");
	json_decref(v);

	struct mg_txn *t;
	assert_int_equal(state_begin(f->state, NULL, 1, &t), 0);
	assert_int_equal(state_get(t, "users", "kept", &v), 0);
	json_decref(v);
	assert_int_equal(state_get(t, "users", "undone", &v), -ENOENT);
	state_abort(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_owner_writes_others_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prefix_walk_and_abort, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_input_changes_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_reads_in_older_transaction, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_nested_transactions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_release_pages_keeps_the_data, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
