/* lib/etcd against a real etcd, started by etcd_test.sh, which passes the
 * endpoints in the environment and runs one group at a time:
 *   single         one member: ETCD_ENDPOINTS, and ETCD_DEAD (a port nobody
 *                  listens on)
 *   cluster-up     three members, all running
 *   cluster-down   two of them killed at ETCD_KILLED_AT (ms, realtime)
 *   cluster-again  the two restarted */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "etcd.h"
#include "etcd_parse.h"

#define MAX_ENDPOINTS 4

static char endpoint_text[1024];
static const char *endpoints[MAX_ENDPOINTS];
static size_t n_endpoints;

static int64_t now_ms(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void load_endpoints(void)
{
	const char *env = getenv("ETCD_ENDPOINTS");
	if (!env) {
		fprintf(stderr, "ETCD_ENDPOINTS is not set: run me through etcd_test.sh\n");
		exit(1);
	}
	snprintf(endpoint_text, sizeof(endpoint_text), "%s", env);
	for (char *save, *s = strtok_r(endpoint_text, ",", &save); s && n_endpoints < MAX_ENDPOINTS;
	     s = strtok_r(NULL, ",", &save))
		endpoints[n_endpoints++] = s;
}

static struct etcd *open_with(const char *const *urls, size_t n, int timeout_ms)
{
	struct etcd_config config = {.endpoints = urls, .n_endpoints = n, .timeout_ms = timeout_ms};
	struct etcd *etcd = NULL;
	char err[256];
	int rc = etcd_open(&config, &etcd, err, sizeof(err));
	if (rc)
		fprintf(stderr, "etcd_open: %s\n", err);
	assert_int_equal(rc, 0);
	return etcd;
}

static struct etcd *open_all(void)
{
	return open_with(endpoints, n_endpoints, 2000);
}

static int64_t put(struct etcd *etcd, const char *key, const char *value)
{
	struct etcd_op op = {ETCD_OP_PUT, key, value, strlen(value), 0, NULL};
	struct etcd_txn_result result;
	int rc = etcd_txn(etcd, NULL, 0, &op, 1, &result);
	if (rc)
		fprintf(stderr, "put: %s\n", etcd_last_error(etcd));
	assert_int_equal(rc, 0);
	assert_true(result.succeeded);
	return result.revision;
}

static void del(struct etcd *etcd, const char *key)
{
	struct etcd_op op = {.type = ETCD_OP_DELETE, .key = key};
	struct etcd_txn_result result;
	assert_int_equal(etcd_txn(etcd, NULL, 0, &op, 1, &result), 0);
	assert_true(result.succeeded);
}

/* The key's kv, or n = 0. */
static void get(struct etcd *etcd, const char *key, struct etcd_range *out)
{
	int rc = etcd_range(etcd, key, NULL, 0, 0, out);
	if (rc)
		fprintf(stderr, "range: %s\n", etcd_last_error(etcd));
	assert_int_equal(rc, 0);
}

/* ---- single member ---- */

static void test_put_range(void **state)
{
	(void)state;
	struct etcd *etcd = open_all();
	struct etcd_range r;
	int64_t rev_a = put(etcd, "/t/range/a", "1");
	put(etcd, "/t/range/b", "{\"v\":2}");
	int64_t rev_c = put(etcd, "/t/range/c", "");

	get(etcd, "/t/range/b", &r);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.kvs[0].key, "/t/range/b");
	assert_string_equal(r.kvs[0].value, "{\"v\":2}");
	assert_int_equal(r.kvs[0].value_len, 7);
	assert_int_equal(r.kvs[0].create_revision, rev_a + 1);
	assert_int_equal(r.kvs[0].mod_revision, rev_a + 1);
	assert_int_equal(r.kvs[0].version, 1);
	assert_true(r.revision >= rev_c);
	etcd_range_free(&r);

	get(etcd, "/t/range/none", &r);
	assert_int_equal(r.n, 0);
	assert_int_equal(r.count, 0);
	etcd_range_free(&r);

	/* the prefix: every key, in order; an empty value is "" */
	char end[32];
	etcd_prefix_end("/t/range/", end);
	assert_int_equal(etcd_range(etcd, "/t/range/", end, 0, 0, &r), 0);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.count, 3);
	assert_false(r.more);
	assert_string_equal(r.kvs[0].key, "/t/range/a");
	assert_string_equal(r.kvs[2].key, "/t/range/c");
	assert_string_equal(r.kvs[2].value, "");
	assert_int_equal(r.kvs[2].value_len, 0);
	etcd_range_free(&r);

	/* a limit cuts it short, and says so */
	assert_int_equal(etcd_range(etcd, "/t/range/", end, 0, 2, &r), 0);
	assert_int_equal(r.n, 2);
	assert_true(r.more);
	assert_int_equal(r.count, 3);
	assert_string_equal(r.kvs[1].key, "/t/range/b");
	etcd_range_free(&r);

	/* an older revision still has the older value */
	put(etcd, "/t/range/a", "changed");
	assert_int_equal(etcd_range(etcd, "/t/range/a", NULL, rev_a, 0, &r), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.kvs[0].value, "1");
	assert_int_equal(r.revision > rev_a, 1);
	etcd_range_free(&r);
	get(etcd, "/t/range/a", &r);
	assert_string_equal(r.kvs[0].value, "changed");
	assert_int_equal(r.kvs[0].version, 2);
	etcd_range_free(&r);
	assert_string_equal(etcd_last_error(etcd), "");
	etcd_close(etcd);
}

static void test_txn_compare(void **state)
{
	(void)state;
	struct etcd *etcd = open_all();
	struct etcd_txn_result result;
	struct etcd_range r;
	int64_t rev = put(etcd, "/t/txn/k", "first");

	struct etcd_compare same = {"/t/txn/k", rev, NULL};
	struct etcd_op write = {ETCD_OP_PUT, "/t/txn/k", "second", 6, 0, NULL};
	assert_int_equal(etcd_txn(etcd, &same, 1, &write, 1, &result), 0);
	assert_true(result.succeeded);
	assert_int_equal(result.revision, rev + 1);

	/* the key moved on: the same compare fails, nothing is written */
	struct etcd_op third = {ETCD_OP_PUT, "/t/txn/k", "third", 5, 0, NULL};
	assert_int_equal(etcd_txn(etcd, &same, 1, &third, 1, &result), 0);
	assert_false(result.succeeded);
	assert_int_equal(result.revision, rev + 1);
	get(etcd, "/t/txn/k", &r);
	assert_string_equal(r.kvs[0].value, "second");
	etcd_range_free(&r);

	/* mod_revision 0: the key must not exist */
	struct etcd_compare absent = {"/t/txn/new", 0, NULL};
	struct etcd_op create = {ETCD_OP_PUT, "/t/txn/new", "x", 1, 0, NULL};
	assert_int_equal(etcd_txn(etcd, &absent, 1, &create, 1, &result), 0);
	assert_true(result.succeeded);
	assert_int_equal(etcd_txn(etcd, &absent, 1, &create, 1, &result), 0);
	assert_false(result.succeeded);

	/* several compares and ops: all or nothing */
	struct etcd_compare both[] = {{"/t/txn/new", result.revision, NULL},
	                              {"/t/txn/k", rev, NULL}};
	struct etcd_op two[] = {{ETCD_OP_DELETE, "/t/txn/new", NULL, 0, 0, NULL},
	                        {ETCD_OP_PUT, "/t/txn/other", "y", 1, 0, NULL}};
	assert_int_equal(etcd_txn(etcd, both, 2, two, 2, &result), 0);
	assert_false(result.succeeded);
	get(etcd, "/t/txn/new", &r);
	assert_int_equal(r.n, 1);
	etcd_range_free(&r);
	get(etcd, "/t/txn/other", &r);
	assert_int_equal(r.n, 0);
	etcd_range_free(&r);
	etcd_close(etcd);
}

static void test_empty_prefix_compare(void **state)
{
	(void)state;
	struct etcd *etcd = open_all();
	struct etcd_txn_result result;
	char end[32];
	etcd_prefix_end("/t/empty/", end);
	struct etcd_compare empty = {"/t/empty/", 0, end};
	struct etcd_op claim = {ETCD_OP_PUT, "/t/empty/first", "1", 1, 0, NULL};
	struct etcd_op again = {ETCD_OP_PUT, "/t/empty/second", "2", 1, 0, NULL};

	/* a key beside the prefix does not count */
	put(etcd, "/t/empty", "beside");
	put(etcd, "/t/empty0", "beside");
	assert_int_equal(etcd_txn(etcd, &empty, 1, &claim, 1, &result), 0);
	assert_true(result.succeeded);
	/* now the prefix holds a key: the compare fails */
	assert_int_equal(etcd_txn(etcd, &empty, 1, &again, 1, &result), 0);
	assert_false(result.succeeded);
	struct etcd_range r;
	get(etcd, "/t/empty/second", &r);
	assert_int_equal(r.n, 0);
	etcd_range_free(&r);
	/* and holds again once the prefix is emptied */
	struct etcd_op clear = {ETCD_OP_DELETE, "/t/empty/", NULL, 0, 0, end};
	assert_int_equal(etcd_txn(etcd, NULL, 0, &clear, 1, &result), 0);
	assert_int_equal(etcd_txn(etcd, &empty, 1, &again, 1, &result), 0);
	assert_true(result.succeeded);
	etcd_close(etcd);
}

static void test_too_many_ops(void **state)
{
	(void)state;
	struct etcd *etcd = open_all();
	struct etcd_txn_result result;
	struct etcd_op ops[129];
	struct etcd_compare compares[129];
	char keys[129][32];
	for (int i = 0; i < 129; i++) {
		snprintf(keys[i], sizeof(keys[i]), "/t/big/%03d", i);
		ops[i] = (struct etcd_op){ETCD_OP_PUT, keys[i], "v", 1, 0, NULL};
		compares[i] = (struct etcd_compare){keys[i], 0, NULL};
	}
	assert_int_equal(etcd_txn(etcd, NULL, 0, ops, 129, &result), -E2BIG);
	assert_non_null(strstr(etcd_last_error(etcd), "128"));
	assert_int_equal(etcd_txn(etcd, compares, 129, ops, 1, &result), -E2BIG);
	struct etcd_range r;
	char end[32];
	etcd_prefix_end("/t/big/", end);
	assert_int_equal(etcd_range(etcd, "/t/big/", end, 0, 0, &r), 0);
	assert_int_equal(r.n, 0);
	etcd_range_free(&r);
	/* etcd's own limit is what the default says: 128 pass */
	assert_int_equal(etcd_txn(etcd, compares, 128, ops, 128, &result), 0);
	assert_true(result.succeeded);
	etcd_close(etcd);

	/* a smaller limit of a configured etcd */
	struct etcd_config config = {
	    .endpoints = endpoints, .n_endpoints = n_endpoints, .max_txn_ops = 2};
	char err[256];
	assert_int_equal(etcd_open(&config, &etcd, err, sizeof(err)), 0);
	assert_int_equal(etcd_txn(etcd, NULL, 0, ops, 3, &result), -E2BIG);
	etcd_close(etcd);
}

/* ---- watch ---- */

struct seen {
	enum etcd_op_type type[16];
	char key[16][32];
	char value[16][32];
	int64_t mod_revision[16];
	int n;
	int64_t revision; /* the last revision fn was told */
	int want;         /* events until the watch is stopped */
	volatile int *stop;
	int return_after; /* non-zero: return 42 after this many events */
	int calls;
};

static int collect(const struct etcd_event *events, size_t n, int64_t revision, void *arg)
{
	struct seen *seen = arg;
	seen->calls++;
	for (size_t i = 0; i < n && seen->n < 16; i++, seen->n++) {
		seen->type[seen->n] = events[i].type;
		snprintf(seen->key[seen->n], sizeof(seen->key[0]), "%s", events[i].kv.key);
		snprintf(seen->value[seen->n], sizeof(seen->value[0]), "%s", events[i].kv.value);
		seen->mod_revision[seen->n] = events[i].kv.mod_revision;
	}
	if (n)
		assert_int_equal(revision, events[n - 1].kv.mod_revision);
	assert_true(revision >= seen->revision);
	seen->revision = revision;
	if (seen->return_after && seen->n >= seen->return_after)
		return 42;
	if (seen->n >= seen->want)
		*seen->stop = 1;
	return 0;
}

struct writer {
	int delay_ms;
	volatile int *stop; /* set instead of writing, when non-NULL */
};

/* Writes two keys after a while, from its own handle, while the watch
 * runs; or only sets the stop flag. */
static void *write_later(void *arg)
{
	struct writer *w = arg;
	usleep(w->delay_ms * 1000);
	if (w->stop) {
		*w->stop = 1;
		return NULL;
	}
	struct etcd *etcd = open_all();
	put(etcd, "/t/watch/live1", "L1");
	put(etcd, "/t/watch/live2", "L2");
	etcd_close(etcd);
	return NULL;
}

static void test_watch(void **state)
{
	(void)state;
	struct etcd *etcd = open_all();
	struct etcd *watcher = open_all();
	int64_t start = put(etcd, "/t/watch/a", "A");
	put(etcd, "/t/watch/b", "B");
	del(etcd, "/t/watch/a");
	put(etcd, "/t/other", "not watched");

	volatile int stop = 0;
	struct seen seen = {.want = 5, .stop = &stop};
	struct writer w = {.delay_ms = 300};
	pthread_t t;
	pthread_create(&t, NULL, write_later, &w);
	int rc = etcd_watch(watcher, "/t/watch/", start, collect, &seen, &stop);
	pthread_join(t, NULL);
	assert_int_equal(rc, 0);
	assert_int_equal(seen.n, 5);
	assert_int_equal(seen.type[0], ETCD_OP_PUT);
	assert_string_equal(seen.key[0], "/t/watch/a");
	assert_string_equal(seen.value[0], "A");
	assert_int_equal(seen.mod_revision[0], start);
	assert_string_equal(seen.key[1], "/t/watch/b");
	assert_int_equal(seen.type[2], ETCD_OP_DELETE);
	assert_string_equal(seen.key[2], "/t/watch/a");
	assert_int_equal(seen.mod_revision[2], start + 2);
	assert_string_equal(seen.key[3], "/t/watch/live1");
	assert_string_equal(seen.value[4], "L2");
	for (int i = 1; i < 5; i++)
		assert_true(seen.mod_revision[i] > seen.mod_revision[i - 1]);

	/* nothing happens: *stop alone ends it, soon */
	stop = 0;
	struct seen idle = {.want = 100, .stop = &stop};
	struct writer stopper = {.delay_ms = 200, .stop = &stop};
	int64_t t0 = now_ms(CLOCK_MONOTONIC);
	pthread_create(&t, NULL, write_later, &stopper);
	rc = etcd_watch(watcher, "/t/watch/", seen.mod_revision[4] + 1, collect, &idle, &stop);
	pthread_join(t, NULL);
	int64_t took = now_ms(CLOCK_MONOTONIC) - t0;
	assert_int_equal(rc, 0);
	assert_int_equal(idle.n, 0);
	assert_true(took >= 200 && took < 600);

	/* fn's non-zero ends it, and is what the watch returns */
	stop = 0;
	struct seen picky = {.want = 100, .stop = &stop, .return_after = 1};
	rc = etcd_watch(watcher, "/t/watch/", start, collect, &picky, &stop);
	assert_int_equal(rc, 42);
	assert_int_equal(picky.calls, 1);
	etcd_close(watcher);
	etcd_close(etcd);
}

/* The test compacts with a request of its own: the client has no call
 * for it (the cluster layer never compacts). */
static size_t ignore_bytes(char *data, size_t size, size_t nmemb, void *arg)
{
	(void)data;
	(void)arg;
	return size * nmemb;
}

static void compact(const char *endpoint, int64_t revision)
{
	char url[512], body[64];
	snprintf(url, sizeof(url), "%s/v3/kv/compaction", endpoint);
	snprintf(body, sizeof(body), "{\"revision\":\"%" PRId64 "\",\"physical\":true}", revision);
	CURL *c = curl_easy_init();
	assert_non_null(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ignore_bytes);
	long status = 0;
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	assert_int_equal(status, 200);
	curl_easy_cleanup(c);
}

static void test_watch_compacted(void **state)
{
	(void)state;
	struct etcd *etcd = open_all();
	int64_t old = put(etcd, "/t/compact/k", "1");
	put(etcd, "/t/compact/k", "2");
	int64_t now = put(etcd, "/t/compact/k", "3");
	compact(endpoints[0], now);

	volatile int stop = 0;
	struct seen seen = {.want = 100, .stop = &stop};
	assert_int_equal(etcd_watch(etcd, "/t/compact/", old, collect, &seen, &stop), -ERANGE);
	assert_int_equal(seen.n, 0);
	assert_non_null(strstr(etcd_last_error(etcd), "compacted"));
	struct etcd_range r;
	assert_int_equal(etcd_range(etcd, "/t/compact/k", NULL, old, 0, &r), -ERANGE);
	/* from the compacted revision on, all is there */
	stop = 0;
	seen.want = 1;
	assert_int_equal(etcd_watch(etcd, "/t/compact/", now, collect, &seen, &stop), 0);
	assert_string_equal(seen.value[0], "3");
	etcd_close(etcd);
}

/* ---- leases, failover, bad input ---- */

static void test_lease(void **state)
{
	(void)state;
	struct etcd *etcd = open_all();
	int64_t id;
	int ttl;
	struct etcd_range r;
	struct etcd_txn_result result;
	assert_int_equal(etcd_lease_grant(etcd, 30, &id), 0);
	assert_true(id != 0);
	struct etcd_op op = {ETCD_OP_PUT, "/t/lease/alive", "1", 1, id, NULL};
	assert_int_equal(etcd_txn(etcd, NULL, 0, &op, 1, &result), 0);
	get(etcd, "/t/lease/alive", &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.kvs[0].lease, id);
	etcd_range_free(&r);

	assert_int_equal(etcd_lease_keepalive(etcd, id, &ttl), 0);
	assert_true(ttl > 0 && ttl <= 30);
	assert_int_equal(etcd_lease_revoke(etcd, id), 0);
	get(etcd, "/t/lease/alive", &r);
	assert_int_equal(r.n, 0);
	etcd_range_free(&r);
	assert_int_equal(etcd_lease_keepalive(etcd, id, &ttl), 0);
	assert_int_equal(ttl, 0);
	assert_int_equal(etcd_lease_revoke(etcd, id), 0);

	/* a put with a lease that is gone writes nothing */
	assert_int_not_equal(etcd_txn(etcd, NULL, 0, &op, 1, &result), 0);
	assert_int_equal(etcd_lease_grant(etcd, 0, &id), -EINVAL);
	etcd_close(etcd);
}

static void test_failover(void **state)
{
	(void)state;
	const char *dead = getenv("ETCD_DEAD");
	assert_non_null(dead);
	const char *both[] = {dead, endpoints[0]};
	struct etcd *etcd = open_with(both, 2, 2000);
	struct etcd_range r;
	int64_t t0 = now_ms(CLOCK_MONOTONIC);
	put(etcd, "/t/failover", "1");
	get(etcd, "/t/failover", &r);
	assert_int_equal(r.n, 1);
	etcd_range_free(&r);
	int rc = etcd_health(etcd);
	if (rc)
		fprintf(stderr, "health: %s\n", etcd_last_error(etcd));
	assert_int_equal(rc, 0);
	assert_true(now_ms(CLOCK_MONOTONIC) - t0 < 2000);
	etcd_close(etcd);

	/* nobody: a clear error, at once */
	const char *none[] = {dead};
	etcd = open_with(none, 1, 2000);
	t0 = now_ms(CLOCK_MONOTONIC);
	assert_int_equal(etcd_range(etcd, "/t/failover", NULL, 0, 0, &r), -EHOSTUNREACH);
	assert_true(now_ms(CLOCK_MONOTONIC) - t0 < 1000);
	assert_non_null(strstr(etcd_last_error(etcd), dead));
	assert_int_equal(etcd_health(etcd), -EHOSTUNREACH);
	etcd_close(etcd);
}

static void test_bad_input(void **state)
{
	(void)state;
	struct etcd *etcd = NULL;
	char err[256];
	struct etcd_config config = {0};
	assert_int_equal(etcd_open(&config, &etcd, err, sizeof(err)), -EINVAL);
	assert_null(etcd);
	const char *ftp[] = {"ftp://127.0.0.1:1"};
	config = (struct etcd_config){.endpoints = ftp, .n_endpoints = 1};
	assert_int_equal(etcd_open(&config, &etcd, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "endpoint 1"));
	const char *secret[] = {"http://root:hunter2@127.0.0.1:1"};
	config.endpoints = secret;
	assert_int_equal(etcd_open(&config, &etcd, err, sizeof(err)), -EINVAL);
	assert_null(strstr(err, "hunter2"));

	etcd = open_all();
	struct etcd_range r;
	struct etcd_txn_result result;
	assert_int_equal(etcd_range(etcd, "", NULL, 0, 0, &r), -EINVAL);
	struct etcd_op odd = {.type = 7, .key = "/t/odd"};
	assert_int_equal(etcd_txn(etcd, NULL, 0, &odd, 1, &result), -EINVAL);
	assert_string_not_equal(etcd_last_error(etcd), "");
	/* a future revision is etcd's refusal, mapped */
	assert_int_equal(etcd_range(etcd, "/t/x", NULL, INT64_C(1) << 40, 0, &r), -ERANGE);
	etcd_close(etcd);

	char end[16];
	etcd_prefix_end("/a/", end);
	assert_string_equal(end, "/a0");
	etcd_prefix_end("a\xff\xff", end);
	assert_string_equal(end, "b");
	etcd_prefix_end("\xff", end);
	assert_string_equal(end, "");
}

/* ---- three members ---- */

static void test_cluster_up(void **state)
{
	(void)state;
	struct etcd *etcd = open_all();
	assert_int_equal(n_endpoints, 3);
	assert_int_equal(etcd_health(etcd), 0);
	put(etcd, "/t/cluster/up", "1");
	etcd_close(etcd);
}

static void test_cluster_down(void **state)
{
	(void)state;
	const char *killed_at = getenv("ETCD_KILLED_AT");
	assert_non_null(killed_at);
	int64_t killed = strtoll(killed_at, NULL, 10);
	/* the member left is the last endpoint; the others do not answer */
	struct etcd *etcd = open_all();
	int rc;
	while ((rc = etcd_health(etcd)) == 0 && now_ms(CLOCK_REALTIME) - killed < 5000)
		usleep(50 * 1000);
	int64_t noticed = now_ms(CLOCK_REALTIME) - killed;
	fprintf(stderr, "no quorum noticed %" PRId64 " ms after the kill: %s\n", noticed,
	        etcd_last_error(etcd));
	assert_int_equal(rc, -EHOSTUNREACH);
	assert_true(noticed < 2500);

	/* a write fails within its deadline and a second */
	const int timeout_ms = 1500;
	etcd_close(etcd);
	etcd = open_with(endpoints, n_endpoints, timeout_ms);
	struct etcd_op op = {ETCD_OP_PUT, "/t/cluster/lost", "1", 1, 0, NULL};
	struct etcd_txn_result result;
	int64_t t0 = now_ms(CLOCK_MONOTONIC);
	rc = etcd_txn(etcd, NULL, 0, &op, 1, &result);
	int64_t took = now_ms(CLOCK_MONOTONIC) - t0;
	fprintf(stderr, "txn without quorum: %d after %" PRId64 " ms: %s\n", rc, took,
	        etcd_last_error(etcd));
	assert_true(rc == -EHOSTUNREACH || rc == -ETIMEDOUT);
	assert_true(took < timeout_ms + 1000);
	etcd_close(etcd);
}

static void test_cluster_again(void **state)
{
	(void)state;
	struct etcd *etcd = open_all();
	int64_t t0 = now_ms(CLOCK_MONOTONIC);
	while (etcd_health(etcd) != 0 && now_ms(CLOCK_MONOTONIC) - t0 < 10000)
		usleep(100 * 1000);
	assert_int_equal(etcd_health(etcd), 0);
	struct etcd_range r;
	get(etcd, "/t/cluster/lost", &r);
	assert_int_equal(r.n, 0); /* the write without quorum never happened */
	etcd_range_free(&r);
	get(etcd, "/t/cluster/up", &r);
	assert_int_equal(r.n, 1);
	etcd_range_free(&r);
	put(etcd, "/t/cluster/again", "1");
	etcd_close(etcd);
}

/* ---- the watch stream, without etcd ---- */

struct deliveries {
	int calls;
	size_t events;
	int64_t revision;
};

static int count_delivery(const struct etcd_event *events, size_t n, int64_t revision, void *arg)
{
	struct deliveries *d = arg;
	(void)events;
	d->calls++;
	d->events += n;
	d->revision = revision;
	return 0;
}

/* Answers that arrive in one piece reach the caller in one call (one
 * mirror commit); the answers before a bad one are delivered, the bad
 * one's events are not. */
static void test_watch_stream_bursts(void **state)
{
	(void)state;
	static const char created[] = "{\"result\":{\"header\":{\"revision\":\"5\"},"
	                              "\"created\":true}}\n";
	/* key "/t/a" (L3QvYQ==), value "1" (MQ==) */
	static const char two[] =
	    "{\"result\":{\"header\":{\"revision\":\"6\"},\"events\":[{\"kv\":{\"key\":"
	    "\"L3QvYQ==\",\"value\":\"MQ==\",\"mod_revision\":\"6\"}}]}}\n"
	    "{\"result\":{\"header\":{\"revision\":\"7\"},\"events\":[{\"type\":\"DELETE\","
	    "\"kv\":{\"key\":\"L3QvYQ==\",\"mod_revision\":\"7\"}}]}}\n"
	    "{\"result\":{\"header\":{\"revision\":\"9\"}}}\n";
	static const char bad_after_good[] =
	    "{\"result\":{\"header\":{\"revision\":\"10\"},\"events\":[{\"kv\":{\"key\":"
	    "\"L3QvYQ==\",\"value\":\"MQ==\",\"mod_revision\":\"10\"}}]}}\n"
	    "{\"result\":{\"header\":{\"revision\":\"12\"},\"events\":[{\"kv\":{\"key\":"
	    "\"L3QvYQ==\",\"value\":\"MQ==\",\"mod_revision\":\"11\"}},{\"kv\":{\"key\":"
	    "\"L3QvYQ==\",\"value\":\"MQ==\",\"mod_revision\":\"8\"}}]}}\n";
	struct deliveries d = {0};
	struct etcd_watch_stream stream;
	etcd_watch_stream_init(&stream, count_delivery, &d);
	assert_int_equal(etcd_watch_stream_feed(&stream, created, strlen(created)), 0);
	assert_int_equal(d.calls, 0);
	assert_int_equal(etcd_watch_stream_feed(&stream, two, strlen(two)), 0);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.events, 2);
	assert_int_equal(d.revision, 9); /* the progress notice's */
	assert_int_equal(etcd_watch_stream_feed(&stream, bad_after_good, strlen(bad_after_good)),
	                 -EBADMSG);
	assert_non_null(strstr(stream.err, "out of order"));
	assert_int_equal(d.calls, 2);
	assert_int_equal(d.events, 3);
	assert_int_equal(d.revision, 10);
	etcd_watch_stream_free(&stream);
}

int main(int argc, char **argv)
{
	const char *group = argc > 1 ? argv[1] : "";
	load_endpoints();
	const struct CMUnitTest single[] = {
	    cmocka_unit_test(test_put_range),
	    cmocka_unit_test(test_txn_compare),
	    cmocka_unit_test(test_empty_prefix_compare),
	    cmocka_unit_test(test_too_many_ops),
	    cmocka_unit_test(test_watch),
	    cmocka_unit_test(test_watch_compacted),
	    cmocka_unit_test(test_lease),
	    cmocka_unit_test(test_failover),
	    cmocka_unit_test(test_bad_input),
	    cmocka_unit_test(test_watch_stream_bursts),
	};
	const struct CMUnitTest up[] = {cmocka_unit_test(test_cluster_up)};
	const struct CMUnitTest down[] = {cmocka_unit_test(test_cluster_down)};
	const struct CMUnitTest again[] = {cmocka_unit_test(test_cluster_again)};
	if (strcmp(group, "single") == 0)
		return cmocka_run_group_tests_name("etcd single member", single, NULL, NULL);
	if (strcmp(group, "cluster-up") == 0)
		return cmocka_run_group_tests_name("etcd cluster up", up, NULL, NULL);
	if (strcmp(group, "cluster-down") == 0)
		return cmocka_run_group_tests_name("etcd cluster down", down, NULL, NULL);
	if (strcmp(group, "cluster-again") == 0)
		return cmocka_run_group_tests_name("etcd cluster again", again, NULL, NULL);
	fprintf(stderr, "usage: %s single|cluster-up|cluster-down|cluster-again\n", argv[0]);
	return 1;
}
