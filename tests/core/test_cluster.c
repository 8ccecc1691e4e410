/* The state layer in a cluster, against a real etcd (cluster_test.sh
 * starts one and names it in $ETCD_ENDPOINTS): two "nodes" in this
 * process, each its own LMDB, one prefix. Commits go through etcd and
 * compare what they read; each node's mirror follows the other's writes
 * and announces them as remote; a lost race is -ESTALE with the winner's
 * value already mirrored; a dead etcd is -EHOSTUNREACH at once; a node
 * that ran alone imports its data into an empty prefix, once. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster.h"
#include "metrics.h"
#include "state.h"

#define OWNER "probe"
#define DB    "devices"

struct node {
	char dir[64];
	struct mg_state *state;
	struct cluster *cluster;
	int remote_events, local_events;
	char last[256];
};

struct fixture {
	char prefix[64];
	struct node a, b;
};

static void on_commit(const char *db, const char *key, const char *op, int remote, void *arg)
{
	struct node *n = arg;
	if (remote)
		n->remote_events++;
	else
		n->local_events++;
	snprintf(n->last, sizeof(n->last), "%s/%s/%s", db, key, op);
}

static json_t *settings(const char *prefix, const char *endpoints)
{
	json_t *etcd = json_array();
	char *list = strdup(endpoints), *save = NULL;
	for (char *e = strtok_r(list, ",", &save); e; e = strtok_r(NULL, ",", &save))
		json_array_append_new(etcd, json_string(e));
	free(list);
	return json_pack("{s:s, s:o, s:s, s:i}", "node", "test", "etcd", etcd, "prefix", prefix,
	                 "timeout_ms", 1000);
}

static void node_open_state(struct node *n)
{
	char err[256];
	if (!n->dir[0]) {
		snprintf(n->dir, sizeof(n->dir), "/tmp/mgcluster.XXXXXX");
		assert_non_null(mkdtemp(n->dir));
	}
	n->state = state_open(n->dir, 64 << 20, err, sizeof(err));
	assert_non_null(n->state);
	state_on_commit(n->state, on_commit, n);
	assert_int_equal(state_claim(n->state, DB, OWNER), 0);
	assert_int_equal(state_mark_cluster(n->state, DB), 0);
}

static int node_join(struct node *n, const char *prefix, const char *endpoints)
{
	char err[256];
	json_t *s = settings(prefix, endpoints);
	int rc = cluster_open(n->state, s, n->dir, NULL, 0, &n->cluster, err, sizeof(err));
	json_decref(s);
	return rc;
}

static void node_close(struct node *n)
{
	cluster_close(n->cluster);
	n->cluster = NULL;
	state_close(n->state);
	n->state = NULL;
}

static const char *endpoints(void)
{
	const char *e = getenv("ETCD_ENDPOINTS");
	if (!e)
		fail_msg("ETCD_ENDPOINTS is not set: run through cluster_test.sh");
	return e;
}

static int setup(void **ctx)
{
	static int round;
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->prefix, sizeof(f->prefix), "/t%d-%d/", (int)getpid(), ++round);
	node_open_state(&f->a);
	node_open_state(&f->b);
	assert_int_equal(node_join(&f->a, f->prefix, endpoints()), 0);
	assert_int_equal(node_join(&f->b, f->prefix, endpoints()), 0);
	*ctx = f;
	return 0;
}

static void node_remove(struct node *n)
{
	char cmd[128];
	if (n->state)
		node_close(n);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", n->dir);
	assert_int_equal(system(cmd), 0);
}

static int teardown(void **ctx)
{
	struct fixture *f = *ctx;
	node_remove(&f->a);
	node_remove(&f->b);
	free(f);
	return 0;
}

static int put(struct node *n, const char *key, int value)
{
	struct mg_txn *t;
	assert_int_equal(state_begin(n->state, OWNER, 0, &t), 0);
	json_t *v = json_pack("{s:i}", "n", value);
	int rc = state_put(t, DB, key, v);
	json_decref(v);
	if (rc) {
		state_abort(t);
		return rc;
	}
	return state_commit(t);
}

/* -1 when absent */
static int get(struct node *n, const char *key)
{
	struct mg_txn *t;
	json_t *v = NULL;
	assert_int_equal(state_begin(n->state, NULL, 1, &t), 0);
	int rc = state_get(t, DB, key, &v);
	state_abort(t);
	int value = rc ? -1 : (int)json_integer_value(json_object_get(v, "n"));
	json_decref(v);
	return value;
}

static int wait_value(struct node *n, const char *key, int want)
{
	for (int i = 0; i < 200; i++) {
		if (get(n, key) == want)
			return 0;
		usleep(10 * 1000);
	}
	return -1;
}

static void test_a_write_reaches_the_other_node(void **ctx)
{
	struct fixture *f = *ctx;
	assert_int_equal(put(&f->a, "d1", 7), 0);
	assert_int_equal(f->a.local_events, 1);
	assert_int_equal(get(&f->a, "d1"), 7);
	assert_int_equal(wait_value(&f->b, "d1", 7), 0);
	assert_true(f->b.remote_events >= 1);
	assert_string_equal(f->b.last, DB "/d1/put");
	/* the writer does not hear its own change again from the watch */
	usleep(200 * 1000);
	assert_int_equal(f->a.remote_events, 0);

	/* a delete travels as well */
	struct mg_txn *t;
	assert_int_equal(state_begin(f->a.state, OWNER, 0, &t), 0);
	assert_int_equal(state_del(t, DB, "d1"), 0);
	assert_int_equal(state_commit(t), 0);
	assert_int_equal(wait_value(&f->b, "d1", -1), 0);
	assert_string_equal(f->b.last, DB "/d1/del");

	/* a key deleted here is made again at once, before the watch has
	 * passed the delete: absent is what the mirror compares, not the
	 * delete's revision */
	assert_int_equal(put(&f->a, "again", 1), 0);
	assert_int_equal(state_begin(f->a.state, OWNER, 0, &t), 0);
	assert_int_equal(state_del(t, DB, "again"), 0);
	assert_int_equal(state_commit(t), 0);
	assert_int_equal(put(&f->a, "again", 2), 0);
	assert_int_equal(wait_value(&f->b, "again", 2), 0);
}

/* Two nodes race on one key: b reads, a commits a change of it, then b
 * commits: b loses, and its mirror holds a's value at once. */
static void test_a_read_changed_meanwhile_is_stale(void **ctx)
{
	struct fixture *f = *ctx;
	assert_int_equal(put(&f->a, "ip/10.0.0.2", 0), 0);
	assert_int_equal(wait_value(&f->b, "ip/10.0.0.2", 0), 0);

	struct mg_txn *tb;
	json_t *v;
	/* b reads inside its write transaction (LMDB holds b's writer lock,
	 * so b's mirror cannot apply a's change meanwhile: the read is
	 * certainly stale at commit) */
	assert_int_equal(state_begin(f->b.state, OWNER, 0, &tb), 0);
	assert_int_equal(state_get(tb, DB, "ip/10.0.0.2", &v), 0);
	json_decref(v);
	assert_int_equal(put(&f->a, "ip/10.0.0.2", 5), 0);
	assert_int_equal(state_put(tb, DB, "ip/10.0.0.2", v = json_pack("{s:i}", "n", 6)), 0);
	json_decref(v);
	assert_int_equal(state_commit(tb), -ESTALE);
	assert_int_equal(get(&f->b, "ip/10.0.0.2"), 5);

	/* a key the other created meanwhile, written blind: stale as well */
	assert_int_equal(state_begin(f->b.state, OWNER, 0, &tb), 0);
	assert_int_equal(put(&f->a, "ip/10.0.0.3", 1), 0);
	assert_int_equal(state_put(tb, DB, "ip/10.0.0.3", v = json_pack("{s:i}", "n", 2)), 0);
	json_decref(v);
	assert_int_equal(state_commit(tb), -ESTALE);
	assert_int_equal(get(&f->b, "ip/10.0.0.3"), 1);

	/* and the retry, reading fresh, wins */
	assert_int_equal(put(&f->b, "ip/10.0.0.3", 3), 0);
	assert_int_equal(wait_value(&f->a, "ip/10.0.0.3", 3), 0);
}

/* A nested transaction's reads guard the parent's commit (group commit). */
static void test_nested_reads_are_compared(void **ctx)
{
	struct fixture *f = *ctx;
	assert_int_equal(put(&f->a, "n1", 0), 0);
	assert_int_equal(wait_value(&f->b, "n1", 0), 0);
	struct mg_txn *parent, *child;
	json_t *v;
	assert_int_equal(state_begin(f->b.state, OWNER, 0, &parent), 0);
	assert_int_equal(state_begin_nested(parent, &child), 0);
	assert_int_equal(state_get(child, DB, "n1", &v), 0);
	json_decref(v);
	assert_int_equal(state_put(child, DB, "other", v = json_pack("{s:i}", "n", 1)), 0);
	json_decref(v);
	assert_int_equal(state_commit(child), 0);
	assert_int_equal(put(&f->a, "n1", 9), 0);
	assert_int_equal(state_commit(parent), -ESTALE);
	assert_int_equal(get(&f->b, "other"), -1);
}

static void test_without_etcd_writes_fail_at_once(void **ctx)
{
	struct fixture *f = *ctx;
	struct node c = {0};
	assert_int_equal(put(&f->a, "kept", 4), 0);
	node_open_state(&c);
	/* nothing listens on port 9 of loopback */
	assert_int_equal(node_join(&c, f->prefix, "http://127.0.0.1:9"), 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(put(&c, "x", 1), -EHOSTUNREACH);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 500);
	assert_int_equal(get(&c, "x"), -1);
	/* the node's own databases are written as ever */
	struct mg_txn *t;
	json_t *v = json_pack("{s:i}", "n", 1);
	assert_int_equal(state_claim(c.state, "local", OWNER), 0);
	assert_int_equal(state_begin(c.state, OWNER, 0, &t), 0);
	assert_int_equal(state_put(t, "local", "k", v), 0);
	assert_int_equal(state_commit(t), 0);
	json_decref(v);
	node_remove(&c);
}

/* A figure of core.metrics' etcd families (lib/metrics). */
static double figure(struct cluster *c, const char *family, const char *label, const char *value)
{
	json_t *families = cluster_metrics(c);
	double found = metrics_lookup(families, family, label, value);
	json_decref(families);
	return found;
}

/* core.metrics' etcd figures: commits timed, a lost race counted as a
 * conflict, a node without etcd counting failed health checks. */
static void test_etcd_figures(void **ctx)
{
	struct fixture *f = *ctx;
	struct node c = {0};
	assert_true(figure(f->a.cluster, "meshgate_etcd_txn_seconds", NULL, NULL) == 0);
	assert_int_equal(put(&f->a, "f1", 1), 0);
	assert_int_equal(put(&f->a, "f2", 2), 0);
	assert_true(figure(f->a.cluster, "meshgate_etcd_txn_seconds", NULL, NULL) == 2);
	assert_true(figure(f->a.cluster, "meshgate_etcd_errors_total", "op", "txn") == 0);
	assert_true(figure(f->a.cluster, "meshgate_etcd_writable", NULL, NULL) == 1);
	assert_true(figure(f->a.cluster, "meshgate_etcd_revision", NULL, NULL) > 0);

	/* b commits over a value a changed meanwhile: a conflict, not an error */
	assert_int_equal(wait_value(&f->b, "f1", 1), 0);
	struct mg_txn *tb;
	json_t *v;
	assert_int_equal(state_begin(f->b.state, OWNER, 0, &tb), 0);
	assert_int_equal(state_get(tb, DB, "f1", &v), 0);
	json_decref(v);
	assert_int_equal(put(&f->a, "f1", 5), 0);
	assert_int_equal(state_put(tb, DB, "f1", v = json_pack("{s:i}", "n", 6)), 0);
	json_decref(v);
	assert_int_equal(state_commit(tb), -ESTALE);
	assert_true(figure(f->b.cluster, "meshgate_etcd_conflicts_total", NULL, NULL) == 1);
	assert_true(figure(f->b.cluster, "meshgate_etcd_errors_total", "op", "txn") == 0);

	/* nothing listens on port 9 of loopback: the health checks fail */
	node_open_state(&c);
	assert_int_equal(node_join(&c, f->prefix, "http://127.0.0.1:9"), 0);
	for (int i = 0;
	     i < 50 && figure(c.cluster, "meshgate_etcd_errors_total", "op", "health") < 1; i++)
		usleep(100 * 1000);
	assert_true(figure(c.cluster, "meshgate_etcd_errors_total", "op", "health") >= 1);
	assert_true(figure(c.cluster, "meshgate_etcd_writable", NULL, NULL) == 0);
	node_remove(&c);
}

static void test_a_lone_node_imports_once(void **ctx)
{
	struct fixture *f = *ctx;
	struct node c = {0};
	char prefix[96], err[256];
	size_t keys;
	snprintf(prefix, sizeof(prefix), "%simport/", f->prefix);
	/* c ran alone: data of its own */
	node_open_state(&c);
	for (int i = 0; i < 150; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k%03d", i);
		assert_int_equal(put(&c, key, i), 0);
	}
	node_close(&c);
	node_open_state(&c);
	assert_int_equal(node_join(&c, prefix, endpoints()), 0);
	assert_int_equal(get(&c, "k007"), 7);               /* kept for the import */
	assert_int_equal(put(&c, "new", 1), -EHOSTUNREACH); /* until it is done */
	assert_int_equal(cluster_import(c.cluster, &keys, err, sizeof(err)), 0);
	assert_int_equal(keys, 150);
	assert_int_equal(put(&c, "new", 1), 0);
	/* a second import is refused: the prefix holds data */
	assert_int_equal(cluster_import(c.cluster, &keys, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "holds data"));

	/* another node joining sees all of it */
	struct node d = {0};
	node_open_state(&d);
	assert_int_equal(node_join(&d, prefix, endpoints()), 0);
	assert_int_equal(get(&d, "k149"), 149);
	assert_int_equal(get(&d, "new"), 1);
	node_remove(&d);
	node_remove(&c);
}

/* A node that was down catches up at start, deletes included. */
static void test_a_node_catches_up_at_start(void **ctx)
{
	struct fixture *f = *ctx;
	assert_int_equal(put(&f->a, "gone", 1), 0);
	assert_int_equal(wait_value(&f->b, "gone", 1), 0);
	node_close(&f->b);
	struct mg_txn *t;
	assert_int_equal(state_begin(f->a.state, OWNER, 0, &t), 0);
	assert_int_equal(state_del(t, DB, "gone"), 0);
	assert_int_equal(state_commit(t), 0);
	for (int i = 0; i < 1200; i++) { /* more than a page of etcd's answer */
		char key[32];
		snprintf(key, sizeof(key), "many%04d", i);
		assert_int_equal(put(&f->a, key, i), 0);
	}
	node_open_state(&f->b);
	assert_int_equal(node_join(&f->b, f->prefix, endpoints()), 0);
	assert_int_equal(get(&f->b, "gone"), -1);
	assert_int_equal(get(&f->b, "many0000"), 0);
	assert_int_equal(get(&f->b, "many1199"), 1199);
}

/* The group's rules, as --check-config applies them. */
static void test_settings_are_checked(void **ctx)
{
	(void)ctx;
	char err[256];
	json_t *s = settings("/meshgate/", "http://127.0.0.1:2379");
	assert_int_equal(cluster_settings_check(s, err, sizeof(err)), 0);
	json_object_del(s, "node");
	assert_int_equal(cluster_settings_check(s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cluster.node"));
	json_decref(s);
	s = settings("meshgate", "http://127.0.0.1:2379");
	assert_int_equal(cluster_settings_check(s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cluster.prefix"));
	json_object_set_new(s, "prefix", json_string("/m/"));
	json_object_set_new(s, "etcd", json_array());
	assert_int_equal(cluster_settings_check(s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cluster.etcd"));
	json_decref(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_settings_are_checked),
	    cmocka_unit_test_setup_teardown(test_a_write_reaches_the_other_node, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_read_changed_meanwhile_is_stale, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_nested_reads_are_compared, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_without_etcd_writes_fail_at_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_etcd_figures, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_lone_node_imports_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_node_catches_up_at_start, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
