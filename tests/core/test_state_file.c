/* The state database as a file: meshgated refuses one that is empty,
 * truncated or damaged (and writes nothing to it), refuses a state dir
 * others may write, and `meshgatectl state backup` + `meshgated
 * --restore` bring back every acknowledged write. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "state.h"

#define PROBE_CONFIG "plugins = [\"probe\"];\n"

static void assert_contains(const char *haystack, const char *needle)
{
	if (!strstr(haystack, needle))
		fail_msg("expected to find \"%s\" in:\n%s", needle, haystack);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void state_path(struct daemon *d, const char *name, char *path, size_t len)
{
	snprintf(path, len, "%s/state/%s", d->dir, name);
}

/* Writes n records into the probe's database directly, as a gateway with
 * n devices would have them, and closes it again. */
static void populate(const char *dir, int n)
{
	char err[256];
	struct mg_txn *t;
	mkdir(dir, 0700);
	struct mg_state *s = state_open(dir, 256 << 20, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(state_claim(s, "probe", "probe"), 0);
	assert_int_equal(state_begin(s, "probe", 0, &t), 0);
	for (int i = 0; i < n; i++) {
		char key[32];
		snprintf(key, sizeof(key), "device-%06d", i);
		json_t *v = json_pack("{s:s, s:s, s:s, s:i}", "public_key",
		                      "q0JxGbnCkG1nzjvYzJSE5u1Q3Fk0AeLZhdrhHqkmgHg=", "state",
		                      "active", "address", "10.0.0.2/32", "n", i);
		assert_int_equal(state_put(t, "probe", key, v), 0);
		json_decref(v);
	}
	assert_int_equal(state_commit(t), 0);
	state_close(s);
}

static char *file_bytes(const char *path, size_t *len)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	char *buf = malloc((size_t)st.st_size + 1);
	int fd = open(path, O_RDONLY);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* The daemon must refuse to start, say why and what to do, and leave the
 * file as it found it. */
static void assert_refused_unchanged(struct daemon *d, const char *reason)
{
	char file[512];
	size_t before_len, after_len;
	state_path(d, "data.mdb", file, sizeof(file));
	char *before = file_bytes(file, &before_len);
	assert_int_not_equal(daemon_start(d), 0);
	char *log = slurp(d->log);
	assert_contains(log, "data.mdb: database is empty or damaged (");
	assert_contains(log, reason);
	assert_contains(log, "meshgated --restore BACKUP");
	assert_contains(log, "meshgatectl state backup");
	free(log);
	char *after = file_bytes(file, &after_len);
	assert_int_equal(before_len, after_len);
	assert_memory_equal(before, after, before_len);
	free(before);
	free(after);
}

static int run_restore(struct daemon *d, const char *backup, char *out, size_t outlen)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "'%s' --config '%s' --restore '%s' 2>&1", MESHGATED, d->config,
	         backup);
	FILE *p = popen(cmd, "r");
	size_t n = fread(out, 1, outlen - 1, p);
	out[n] = '\0';
	int status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int ctl_backup(struct daemon *d, const char *path, char *out, size_t outlen)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "'%s' --socket '%s' state backup '%s' 2>&1", MESHGATECTL,
	         d->socket, path);
	FILE *p = popen(cmd, "r");
	size_t n = fread(out, 1, outlen - 1, p);
	out[n] = '\0';
	int status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A request's status alone. */
static int call(struct daemon *d, const char *service, const char *json)
{
	json_t *reply = NULL;
	int rc = daemon_call(d, service, json, 5000, &reply);
	json_decref(reply);
	return rc;
}

static int has_key(struct daemon *d, const char *key)
{
	char req[128];
	snprintf(req, sizeof(req), "{\"key\": \"%s\"}", key);
	return call(d, "probe.get", req) == 0;
}

/* ---- the startup check ---- */

static void test_fresh_install_starts(void **state)
{
	struct daemon *d = *state;
	daemon_setup(d, PROBE_CONFIG);
	assert_int_equal(daemon_start(d), 0);
	char *log = slurp(d->log);
	assert_contains(log, "a new gateway, starting with empty state");
	free(log);
	assert_int_equal(call(d, "probe.put", "{\"key\": \"a\", \"value\": {}}"), 0);
	daemon_kill(d, SIGTERM);
	/* a restart on the same state dir is checked and keeps the data */
	assert_int_equal(daemon_start(d), 0);
	char *again = slurp(d->log);
	assert_contains(again, "data.mdb checked: 1 databases, 1 records");
	free(again);
	assert_true(has_key(d, "a"));
}

static void test_zero_length_database_refused(void **state)
{
	struct daemon *d = *state;
	char file[512];
	daemon_setup(d, PROBE_CONFIG);
	state_path(d, "", file, sizeof(file));
	populate(file, 10);
	state_path(d, "data.mdb", file, sizeof(file));
	assert_int_equal(truncate(file, 0), 0);
	assert_refused_unchanged(d, "it is empty (0 bytes)");
}

static void test_truncated_database_refused(void **state)
{
	struct daemon *d = *state;
	char file[512];
	struct stat st;
	daemon_setup(d, PROBE_CONFIG);
	state_path(d, "", file, sizeof(file));
	populate(file, 2000);
	state_path(d, "data.mdb", file, sizeof(file));
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(truncate(file, st.st_size / 2), 0);
	assert_refused_unchanged(d, "it is truncated");
}

static void test_garbage_page_refused(void **state)
{
	struct daemon *d = *state;
	char file[512];
	unsigned char garbage[4096];
	struct stat st;
	daemon_setup(d, PROBE_CONFIG);
	state_path(d, "", file, sizeof(file));
	populate(file, 2000);
	state_path(d, "data.mdb", file, sizeof(file));
	assert_int_equal(stat(file, &st), 0);
	srand(10);
	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (unsigned char)rand();
	/* a page amid the records (the first pages may be free ones) */
	int fd = open(file, O_WRONLY);
	off_t page = st.st_size / 4096 / 2;
	assert_int_equal(pwrite(fd, garbage, sizeof(garbage), page * 4096), sizeof(garbage));
	close(fd);
	assert_refused_unchanged(d, "");
}

/* What the check costs at 10,000 devices: printed, and bounded loosely so
 * that a check that reads far more than it should is caught. */
static void test_check_cost_at_10k_devices(void **state)
{
	struct daemon *d = *state;
	char file[512], why[400];
	struct state_file_report report;
	daemon_setup(d, PROBE_CONFIG);
	state_path(d, "", file, sizeof(file));
	populate(file, 10000);
	state_path(d, "data.mdb", file, sizeof(file));
	uint64_t start = now_ms();
	assert_int_equal(state_file_check(file, &report, why, sizeof(why)), 0);
	uint64_t took = now_ms() - start;
	printf("# startup check of %zu records: %llu ms\n", report.records,
	       (unsigned long long)took);
	assert_int_equal(report.records, 10000);
	assert_int_equal(report.dbs, 1);
	assert_true(took < 5000);
}

/* ---- the state dir's owner and mode ---- */

static void test_state_dir_others_may_write_refused(void **state)
{
	struct daemon *d = *state;
	char dir[512];
	daemon_setup(d, PROBE_CONFIG);
	state_path(d, "", dir, sizeof(dir));
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_not_equal(daemon_start(d), 0);
	char *log = slurp(d->log);
	assert_contains(log, "has mode 0777: others may write it; refusing it (chmod 700 ");
	free(log);

	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(chown(dir, 65534, 65534), 0);
	assert_int_not_equal(daemon_start(d), 0);
	log = slurp(d->log);
	assert_contains(log, "is owned by uid 65534, not by meshgated's uid 0: refusing it");
	free(log);

	assert_int_equal(chown(dir, 0, 0), 0);
	assert_int_equal(daemon_start(d), 0);
}

/* ---- backup and restore ---- */

struct writer {
	struct daemon *d;
	volatile int stop;
	volatile int acked; /* keys 0..acked-1 are acknowledged */
	int failed;
};

static void *write_keys(void *arg)
{
	struct writer *w = arg;
	char endpoint[400], err[256], req[128];
	snprintf(endpoint, sizeof(endpoint), "ipc://%s", w->d->socket);
	struct mg_bus_client *bus = mg_bus_client_new(w->d->zctx, endpoint, err, sizeof(err));
	for (int i = 0; bus && !w->stop; i++) {
		json_t *reply = NULL;
		snprintf(req, sizeof(req), "{\"key\": \"k%06d\", \"value\": {\"i\": %d}}", i, i);
		json_t *request = json_loads(req, 0, NULL);
		int rc = mg_bus_client_request(bus, "probe.put", request, 5000, &reply);
		json_decref(request);
		json_decref(reply);
		if (rc) {
			w->failed = 1;
			break;
		}
		__atomic_store_n(&w->acked, i + 1, __ATOMIC_SEQ_CST);
	}
	mg_bus_client_free(bus);
	return NULL;
}

static void test_backup_during_writes_then_restore(void **state)
{
	struct daemon *d = *state;
	char backup[512], out[4096], file[512];
	pthread_t thread;
	daemon_setup(d, PROBE_CONFIG);
	snprintf(backup, sizeof(backup), "%s/backup.mdb", d->dir);
	assert_int_equal(daemon_start(d), 0);

	struct writer w = {.d = d};
	assert_int_equal(pthread_create(&thread, NULL, write_keys, &w), 0);
	while (__atomic_load_n(&w.acked, __ATOMIC_SEQ_CST) < 100 && !w.failed)
		usleep(1000);
	int acked_before = __atomic_load_n(&w.acked, __ATOMIC_SEQ_CST);
	assert_int_equal(ctl_backup(d, backup, out, sizeof(out)), 0);
	assert_contains(out, "backup written to ");
	usleep(200000); /* writes go on after the copy */
	w.stop = 1;
	pthread_join(thread, NULL);
	assert_false(w.failed);
	int acked_after = w.acked;
	printf("# %d keys acknowledged before the backup, %d in all\n", acked_before, acked_after);
	assert_true(acked_after > acked_before);

	struct stat st;
	assert_int_equal(stat(backup, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* never overwrites, and a path must be absolute */
	assert_int_equal(ctl_backup(d, backup, out, sizeof(out)), 1);
	assert_contains(out, "exists: a backup never overwrites a file");
	json_t *reply = NULL;
	assert_int_not_equal(
	    daemon_call(d, "core.state.backup", "{\"path\": \"relative.mdb\"}", 5000, &reply), 0);
	assert_string_equal(json_string_value(json_object_get(reply, "error")), "bad_request");
	assert_contains(json_string_value(json_object_get(reply, "message")), "must be absolute");
	json_decref(reply);

	/* not while meshgated runs */
	assert_int_equal(run_restore(d, backup, out, sizeof(out)), 1);
	assert_contains(out, "another meshgated uses this state dir");
	daemon_kill(d, SIGTERM);

	/* a bad backup changes nothing */
	char empty[512];
	snprintf(empty, sizeof(empty), "%s/empty.mdb", d->dir);
	close(open(empty, O_WRONLY | O_CREAT, 0600));
	assert_int_equal(run_restore(d, empty, out, sizeof(out)), 1);
	assert_contains(out, "is not a usable state database: it is empty (0 bytes)");
	assert_contains(out, "data.mdb is unchanged");

	/* the gateway loses its database; the backup brings it back */
	state_path(d, "data.mdb", file, sizeof(file));
	assert_int_equal(truncate(file, 0), 0);
	assert_int_not_equal(daemon_start(d), 0);
	assert_int_equal(run_restore(d, backup, out, sizeof(out)), 0);
	assert_contains(out, "the database it replaced is kept as ");
	assert_int_equal(daemon_start(d), 0);
	for (int i = 0; i < acked_before; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%06d", i);
		if (!has_key(d, key))
			fail_msg("acknowledged key %s is missing after the restore", key);
	}
	/* and it is a live database again */
	assert_int_equal(call(d, "probe.put", "{\"key\": \"new\", \"value\": {}}"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    DAEMON_TEST(test_fresh_install_starts),
	    DAEMON_TEST(test_zero_length_database_refused),
	    DAEMON_TEST(test_truncated_database_refused),
	    DAEMON_TEST(test_garbage_page_refused),
	    DAEMON_TEST(test_check_cost_at_10k_devices),
	    DAEMON_TEST(test_state_dir_others_may_write_refused),
	    DAEMON_TEST(test_backup_during_writes_then_restore),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
