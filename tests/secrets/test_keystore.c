/* The keystore plugin (the secret service's local back end) on the mock
 * core: a key made on first use and the same one after a restart; a key
 * sealed by an earlier version taken over, not made anew (a node upgraded
 * keeps its public keys); rotate making the next version without touching
 * the one in use; put with check-and-set; bad names refused with nothing
 * written; no key in the state database or in any file but its sealed
 * 0600 one. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "mg_mock.h"
#include "seal.h"
#include "wg.h"

extern const struct mg_plugin mg_plugin_descriptor; /* the keystore's, linked in */

struct fixture {
	char top[64], state[96], seal[96];
	struct mg_mock *mock;
};

static void open_mock_scheduled(struct fixture *f, const char *schedule)
{
	char err[256];
	f->mock = mg_mock_new(f->state, err, sizeof(err));
	assert_non_null(f->mock);
	json_t *cfg = json_pack("{s:s, s:s, s:s}", "seal_key_file", f->seal, "grace", "10m",
	                        "schedule", schedule);
	assert_int_equal(mg_mock_add(f->mock, &mg_plugin_descriptor, cfg, err, sizeof(err)), 0);
	json_decref(cfg);
	assert_int_equal(mg_mock_start(f->mock, err, sizeof(err)), 0);
}

static void open_mock(struct fixture *f)
{
	open_mock_scheduled(f, "");
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->top, sizeof(f->top), "/tmp/keystore-test.XXXXXX");
	assert_non_null(mkdtemp(f->top));
	snprintf(f->state, sizeof(f->state), "%s/state", f->top);
	snprintf(f->seal, sizeof(f->seal), "%s/etc/seal.key", f->top);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	if (f->mock)
		mg_mock_free(f->mock);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->top);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static json_t *call(struct fixture *f, const char *service, json_t *req, int expect_rc)
{
	json_t *reply = NULL;
	assert_int_equal(mg_mock_request(f->mock, service, req, &reply), expect_rc);
	json_decref(req);
	return reply;
}

static const char *str(json_t *o, const char *name)
{
	return json_string_value(json_object_get(o, name));
}

static long long num(json_t *o, const char *name)
{
	return json_integer_value(json_object_get(o, name));
}

/* Whether `needle` (len bytes) is in any file under `dir` other than the
 * sealed ones; and every file there is 0600 (or a directory 0700). */
static int found_outside_sealed(const char *dir, const void *needle, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;
	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[512];
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		assert_int_equal(stat(path, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			found |= found_outside_sealed(path, needle, len);
			continue;
		}
		if (strstr(e->d_name, ".sealed"))
			assert_int_equal(st.st_mode & 0777, 0600);
		FILE *fp = fopen(path, "rb");
		assert_non_null(fp);
		char *buf = malloc((size_t)st.st_size + 1);
		size_t n = fread(buf, 1, (size_t)st.st_size, fp);
		fclose(fp);
		for (size_t i = 0; i + len <= n && !found; i++)
			found = !memcmp(buf + i, needle, len);
		free(buf);
	}
	closedir(d);
	return found;
}

static void test_made_on_first_use_and_kept(void **state)
{
	struct fixture *f = *state;
	open_mock(f);
	json_t *a = call(f, "secret.get", json_pack("{s:s}", "name", "wireguard/wg0"), 0);
	assert_true(json_is_true(json_object_get(a, "created")));
	assert_int_equal(num(a, "version"), 1);
	assert_string_equal(str(a, "backend"), "local");
	wg_key key;
	assert_int_equal(wg_key_from_base64(key, str(a, "key")), 0);

	/* the sealed file and its sealing key, both root's alone */
	char path[256];
	struct stat st;
	snprintf(path, sizeof(path), "%s/wireguard/wg0.sealed", f->state);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(f->seal, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* the same key after a restart */
	mg_mock_free(f->mock);
	open_mock(f);
	json_t *b = call(f, "secret.get", json_pack("{s:s}", "name", "wireguard/wg0"), 0);
	assert_false(json_is_true(json_object_get(b, "created")));
	assert_string_equal(str(a, "key"), str(b, "key"));
	assert_int_equal(num(b, "version"), 1);

	/* nowhere but sealed: not the base64, not the raw bytes */
	assert_false(found_outside_sealed(f->state, str(a, "key"), strlen(str(a, "key"))));
	assert_false(found_outside_sealed(f->state, key, sizeof(key)));
	json_decref(a);
	json_decref(b);
}

/* What the wireguard plugin of an earlier version left: its key sealed in
 * STATE/wireguard/wg0.sealed, the sealing key beside the state dir. */
static void test_sealed_key_of_an_earlier_version_is_taken_over(void **state)
{
	struct fixture *f = *state;
	char dir[160], moved[4200], err[256];
	wg_key old;
	int created;
	assert_int_equal(mkdir(f->state, 0700), 0);
	snprintf(dir, sizeof(dir), "%s/wireguard", f->state);
	assert_int_equal(sealed_key_load_or_create(dir, "wg0", f->seal, old, &created, moved,
	                                           sizeof(moved), err, sizeof(err)),
	                 0);
	assert_true(created);

	open_mock(f);
	json_t *r = call(f, "secret.get", json_pack("{s:s}", "name", "wireguard/wg0"), 0);
	wg_key got;
	assert_int_equal(wg_key_from_base64(got, str(r, "key")), 0);
	assert_memory_equal(got, old, sizeof(old)); /* the same public key follows */
	assert_false(json_is_true(json_object_get(r, "created")));
	assert_int_equal(num(r, "version"), 1);
	json_decref(r);
}

static void test_rotate_makes_the_next_version_only(void **state)
{
	struct fixture *f = *state;
	open_mock(f);
	json_t *r =
	    call(f, "secret.rotate", json_pack("{s:s}", "name", "mesh/mgmesh0"), -EREMOTEIO);
	assert_string_equal(str(r, "error"), "not_found"); /* nothing to rotate yet */
	json_decref(r);

	json_t *a = call(f, "secret.get", json_pack("{s:s}", "name", "mesh/mgmesh0"), 0);
	r = call(f, "secret.rotate", json_pack("{s:s}", "name", "mesh/mgmesh0"), 0);
	assert_true(json_is_true(json_object_get(r, "made")));
	assert_int_equal(num(json_object_get(r, "next"), "version"), 2);
	char *answer = json_dumps(r, 0);
	assert_null(strstr(answer, "\"key\"")); /* the answer holds no key */
	free(answer);
	json_decref(r);
	r = call(f, "secret.rotate", json_pack("{s:s}", "name", "mesh/mgmesh0"), 0);
	assert_false(json_is_true(json_object_get(r, "made"))); /* one pending is enough */
	json_decref(r);

	/* in use: still version 1; the next one is there, another key */
	json_t *b = call(f, "secret.get", json_pack("{s:s}", "name", "mesh/mgmesh0"), 0);
	assert_int_equal(num(b, "version"), 1);
	assert_string_equal(str(a, "key"), str(b, "key"));
	json_t *next = json_object_get(b, "next");
	assert_int_equal(num(next, "version"), 2);
	assert_string_not_equal(str(next, "key"), str(a, "key"));

	json_t *s = call(f, "secret.status", NULL, 0);
	char *text = json_dumps(s, 0);
	assert_null(strstr(text, str(a, "key")));
	assert_null(strstr(text, str(next, "key")));
	assert_non_null(strstr(text, "\"mesh/mgmesh0\""));
	free(text);
	json_decref(s);
	json_decref(a);
	json_decref(b);
}

/* The entry of `name` in secret.status (a new reference). */
static json_t *status_of(struct fixture *f, const char *name)
{
	json_t *s = call(f, "secret.status", NULL, 0), *k, *found = NULL;
	size_t i;
	json_array_foreach(json_object_get(s, "keys"), i, k)
	{
		if (!strcmp(str(k, "name"), name))
			found = json_incref(k);
	}
	json_decref(s);
	assert_non_null(found);
	return found;
}

static void test_schedule_rotates_when_due(void **state)
{
	struct fixture *f = *state;
	open_mock_scheduled(f, "1h");
	json_t *a = call(f, "secret.get", json_pack("{s:s}", "name", "mesh/mgmesh0"), 0);
	uint64_t created = (uint64_t)num(a, "created_ms");
	json_t *k = status_of(f, "mesh/mgmesh0");
	assert_int_equal(num(k, "next_rotation_ms"), created + 3600 * 1000);
	json_decref(k);

	/* not a millisecond early */
	mg_mock_advance(f->mock, created + 3600 * 1000 - 1 - mg_mock_now(f->mock));
	k = status_of(f, "mesh/mgmesh0");
	assert_null(json_object_get(k, "next"));
	json_decref(k);
	mg_mock_advance(f->mock, 1);
	k = status_of(f, "mesh/mgmesh0");
	assert_int_equal(num(json_object_get(k, "next"), "version"), 2);
	assert_int_equal(num(json_object_get(k, "next"), "created_ms"), created + 3600 * 1000);
	/* the next version waits for its owner's switch: no rotation due */
	assert_null(json_object_get(k, "next_rotation_ms"));
	assert_int_equal(num(k, "version"), 1);
	json_decref(k);
	mg_mock_advance(f->mock, 3 * 3600 * 1000);
	k = status_of(f, "mesh/mgmesh0");
	assert_int_equal(num(json_object_get(k, "next"), "version"), 2); /* not rotated again */
	json_decref(k);
	json_decref(a);
}

static void test_previous_goes_when_its_grace_is_over(void **state)
{
	struct fixture *f = *state;
	char path[256];
	open_mock(f); /* no schedule: the previous version goes all the same */
	json_decref(call(f, "secret.get", json_pack("{s:s}", "name", "mesh/mgmesh0"), 0));
	json_decref(call(f, "secret.rotate", json_pack("{s:s}", "name", "mesh/mgmesh0"), 0));
	json_decref(call(f, "secret.promote",
	                 json_pack("{s:s, s:i}", "name", "mesh/mgmesh0", "version", 2), 0));
	snprintf(path, sizeof(path), "%s/mesh/mgmesh0.previous.sealed", f->state);
	assert_int_equal(access(path, F_OK), 0);
	json_t *k = status_of(f, "mesh/mgmesh0");
	uint64_t until = (uint64_t)num(json_object_get(k, "previous"), "until_ms");
	assert_int_equal(until, mg_mock_now(f->mock) + 10 * 60 * 1000);
	json_decref(k);

	/* nobody reads the key: the timer drops it, not a millisecond early */
	mg_mock_advance(f->mock, until - 1 - mg_mock_now(f->mock));
	k = status_of(f, "mesh/mgmesh0");
	assert_non_null(json_object_get(k, "previous"));
	json_decref(k);
	mg_mock_advance(f->mock, 1);
	k = status_of(f, "mesh/mgmesh0");
	assert_null(json_object_get(k, "previous"));
	assert_int_equal(num(k, "version"), 2);
	json_decref(k);
	assert_int_not_equal(access(path, F_OK), 0);
}

static void test_schedule_off_by_default_and_checked(void **state)
{
	struct fixture *f = *state;
	char err[256];
	open_mock(f);
	json_t *a = call(f, "secret.get", json_pack("{s:s}", "name", "mesh/mgmesh0"), 0);
	json_t *k = status_of(f, "mesh/mgmesh0");
	assert_null(json_object_get(k, "next_rotation_ms"));
	json_decref(k);
	mg_mock_advance(f->mock, 400ULL * 86400 * 1000);
	k = status_of(f, "mesh/mgmesh0");
	assert_null(json_object_get(k, "next"));
	json_decref(k);
	json_decref(a);
	mg_mock_free(f->mock);

	/* a schedule that is not a duration: refused, nothing runs */
	f->mock = mg_mock_new(f->state, err, sizeof(err));
	json_t *cfg = json_pack("{s:s, s:s}", "seal_key_file", f->seal, "schedule", "daily");
	assert_int_equal(mg_mock_add(f->mock, &mg_plugin_descriptor, cfg, err, sizeof(err)), 0);
	json_decref(cfg);
	assert_int_not_equal(mg_mock_start(f->mock, err, sizeof(err)), 0);
}

static void test_put_checks_and_sets(void **state)
{
	struct fixture *f = *state;
	open_mock(f);
	const char *pem = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg=="; /* any bytes */
	json_t *r =
	    call(f, "secret.put",
	         json_pack("{s:s, s:s, s:i}", "name", "api/tls", "key", pem, "cas", 1), -EREMOTEIO);
	assert_string_equal(str(r, "error"), "conflict"); /* there is no version 1 */
	json_decref(r);
	r = call(f, "secret.put", json_pack("{s:s, s:s}", "name", "api/tls", "key", pem), 0);
	assert_int_equal(num(r, "version"), 1);
	json_decref(r);
	r = call(f, "secret.put", json_pack("{s:s, s:s}", "name", "api/tls", "key", "QUJD"),
	         -EREMOTEIO);
	assert_string_equal(str(r, "error"), "conflict"); /* a stale writer: refused */
	json_decref(r);
	r = call(f, "secret.put",
	         json_pack("{s:s, s:s, s:i}", "name", "api/tls", "key", "QUJD", "cas", 1), 0);
	assert_int_equal(num(r, "version"), 2);
	json_decref(r);
	r = call(f, "secret.get", json_pack("{s:s, s:b}", "name", "api/tls", "create", 0), 0);
	assert_string_equal(str(r, "key"), "QUJD");
	assert_string_equal(str(json_object_get(r, "previous"), "key"), pem);
	json_decref(r);

	/* past the grace period the previous version is gone */
	mg_mock_advance(f->mock, 11 * 60 * 1000);
	r = call(f, "secret.get", json_pack("{s:s}", "name", "api/tls"), 0);
	assert_null(json_object_get(r, "previous"));
	json_decref(r);
	char path[256];
	snprintf(path, sizeof(path), "%s/api/tls.previous.sealed", f->state);
	assert_int_equal(access(path, F_OK), -1);
}

/* A secret that is no WireGuard key (a TLS key's PEM, type "opaque"):
 * never made by a get, never rotated, by request or by the schedule; a
 * put of type "wireguard" must be a WireGuard key. */
static void test_opaque_never_made_nor_rotated(void **state)
{
	struct fixture *f = *state;
	open_mock_scheduled(f, "1h");
	const char *pem = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg==";
	json_t *r = call(f, "secret.get",
	                 json_pack("{s:s, s:b}", "name", "api/server", "create", 0), -EREMOTEIO);
	assert_string_equal(str(r, "error"), "not_found");
	json_decref(r);
	r = call(f, "secret.put",
	         json_pack("{s:s, s:s, s:s}", "name", "api/server", "key", pem, "type", "opaque"),
	         0);
	assert_string_equal(str(r, "type"), "opaque");
	assert_null(json_object_get(r, "key"));
	json_decref(r);

	r = call(f, "secret.rotate", json_pack("{s:s}", "name", "api/server"), -EREMOTEIO);
	assert_string_equal(str(r, "error"), "invalid");
	assert_non_null(strstr(str(r, "message"), "not a WireGuard key"));
	json_decref(r);
	json_t *k = status_of(f, "api/server");
	assert_null(json_object_get(k, "next"));
	assert_null(json_object_get(k, "next_rotation_ms")); /* the schedule passes it by */
	json_decref(k);
	mg_mock_advance(f->mock, 3 * 3600 * 1000);
	r = call(f, "secret.get", json_pack("{s:s}", "name", "api/server"), 0);
	assert_int_equal(num(r, "version"), 1);
	assert_null(json_object_get(r, "next"));
	assert_string_equal(str(r, "key"), pem);
	json_decref(r);
	char path[256];
	snprintf(path, sizeof(path), "%s/api/server.next.sealed", f->state);
	assert_int_equal(access(path, F_OK), -1);

	/* bad types and WireGuard keys of the wrong size: refused, nothing changed */
	r = call(f, "secret.put",
	         json_pack("{s:s, s:s, s:s}", "name", "x/y", "key", pem, "type", "pem"),
	         -EREMOTEIO);
	assert_string_equal(str(r, "error"), "bad_request");
	json_decref(r);
	r = call(f, "secret.put",
	         json_pack("{s:s, s:s, s:s}", "name", "x/y", "key", pem, "type", "wireguard"),
	         -EREMOTEIO);
	assert_string_equal(str(r, "error"), "bad_request");
	json_decref(r);
	snprintf(path, sizeof(path), "%s/x/y.sealed", f->state);
	assert_int_equal(access(path, F_OK), -1);
}

static json_t *promote(struct fixture *f, const char *name, long long version, int expect_rc)
{
	return call(f, "secret.promote",
	            json_pack("{s:s, s:I}", "name", name, "version", (json_int_t)version),
	            expect_rc);
}

/* The rotation's last step: the next version becomes the key in use, the
 * replaced one stays as previous for the grace period, then goes; a wrong
 * version is refused with nothing changed; the same version again is ok. */
static void test_promote_puts_the_next_version_in_use(void **state)
{
	struct fixture *f = *state;
	open_mock(f);
	json_t *r = promote(f, "wireguard/wg0", 2, -EREMOTEIO);
	assert_string_equal(str(r, "error"), "not_found");
	json_decref(r);
	json_t *v1 = call(f, "secret.get", json_pack("{s:s}", "name", "wireguard/wg0"), 0);
	r = promote(f, "wireguard/wg0", 2, -EREMOTEIO); /* no next yet */
	assert_string_equal(str(r, "error"), "conflict");
	json_decref(r);

	mg_mock_events_clear(f->mock);
	json_decref(call(f, "secret.rotate", json_pack("{s:s}", "name", "wireguard/wg0"), 0));
	assert_int_equal(mg_mock_event_count(f->mock, "secret.next"), 1);
	json_t *events = mg_mock_events(f->mock), *event = NULL;
	for (size_t i = 0; i < json_array_size(events) && !event; i++)
		if (!strcmp(str(json_array_get(events, i), "topic"), "secret.next"))
			event = json_array_get(events, i);
	assert_non_null(event);
	assert_string_equal(str(json_object_get(event, "payload"), "name"), "wireguard/wg0");
	assert_int_equal(num(json_object_get(event, "payload"), "version"), 2);
	json_t *pending = call(f, "secret.get", json_pack("{s:s}", "name", "wireguard/wg0"), 0);
	const char *next_key = str(json_object_get(pending, "next"), "key");

	r = promote(f, "wireguard/wg0", 3, -EREMOTEIO); /* not the pending one */
	assert_string_equal(str(r, "error"), "conflict");
	json_decref(r);
	assert_int_equal(mg_mock_event_count(f->mock, "secret.promoted"), 0);
	r = call(f, "secret.get", json_pack("{s:s}", "name", "wireguard/wg0"), 0);
	assert_int_equal(num(r, "version"), 1); /* refused: nothing changed */
	assert_string_equal(str(r, "key"), str(v1, "key"));
	json_decref(r);

	long long promoted_at = (long long)mg_mock_now(f->mock);
	r = promote(f, "wireguard/wg0", 2, 0);
	assert_true(json_is_true(json_object_get(r, "promoted")));
	assert_int_equal(num(r, "version"), 2);
	char *answer = json_dumps(r, 0);
	assert_null(strstr(answer, "\"key\"")); /* the answer holds no key */
	free(answer);
	json_decref(r);
	assert_int_equal(mg_mock_event_count(f->mock, "secret.promoted"), 1);

	/* after a restart (the record is on disk): version 2 in use, 1 kept */
	mg_mock_free(f->mock);
	open_mock(f);
	r = call(f, "secret.get", json_pack("{s:s}", "name", "wireguard/wg0"), 0);
	assert_int_equal(num(r, "version"), 2);
	assert_string_equal(str(r, "key"), next_key);
	assert_null(json_object_get(r, "next"));
	json_t *previous = json_object_get(r, "previous");
	assert_int_equal(num(previous, "version"), 1);
	assert_string_equal(str(previous, "key"), str(v1, "key"));
	assert_int_equal(num(previous, "until_ms"), promoted_at + 600000);
	json_decref(r);
	char path[256];
	snprintf(path, sizeof(path), "%s/wireguard/wg0.next.sealed", f->state);
	assert_int_equal(access(path, F_OK), -1);

	/* the same version again (an owner restarted mid-rotation): ok, no change */
	mg_mock_events_clear(f->mock);
	r = promote(f, "wireguard/wg0", 2, 0);
	assert_false(json_is_true(json_object_get(r, "promoted")));
	assert_int_equal(num(r, "version"), 2);
	json_decref(r);
	assert_int_equal(mg_mock_event_count(f->mock, "secret.promoted"), 0);
	r = promote(f, "wireguard/wg0", 1, -EREMOTEIO); /* back to the old one: no */
	assert_string_equal(str(r, "error"), "conflict");
	json_decref(r);

	/* within the grace period the previous version stays; past it, it goes */
	mg_mock_advance(f->mock, 9 * 60 * 1000);
	r = call(f, "secret.get", json_pack("{s:s}", "name", "wireguard/wg0"), 0);
	assert_int_equal(num(json_object_get(r, "previous"), "version"), 1);
	json_decref(r);
	mg_mock_advance(f->mock, 2 * 60 * 1000);
	r = call(f, "secret.get", json_pack("{s:s}", "name", "wireguard/wg0"), 0);
	assert_null(json_object_get(r, "previous"));
	assert_int_equal(num(r, "version"), 2);
	json_decref(r);
	snprintf(path, sizeof(path), "%s/wireguard/wg0.previous.sealed", f->state);
	assert_int_equal(access(path, F_OK), -1);

	/* bad requests: refused */
	r = call(f, "secret.promote", json_pack("{s:s}", "name", "wireguard/wg0"), -EREMOTEIO);
	assert_string_equal(str(r, "error"), "bad_request");
	json_decref(r);
	r = promote(f, "wireguard", 3, -EREMOTEIO);
	assert_string_equal(str(r, "error"), "bad_request");
	json_decref(r);
	json_decref(v1);
	json_decref(pending);
}

static void test_bad_requests_change_nothing(void **state)
{
	struct fixture *f = *state;
	open_mock(f);
	const char *bad[] = {"wg0", "../etc/x", "wireguard/../../x", "a/b/c", "a/", "/b", "a/b.c"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *r = call(f, "secret.get", json_pack("{s:s}", "name", bad[i]), -EREMOTEIO);
		assert_string_equal(str(r, "error"), "bad_request");
		json_decref(r);
	}
	json_t *r =
	    call(f, "secret.get", json_pack("{s:s, s:b}", "name", "x/y", "create", 0), -EREMOTEIO);
	assert_string_equal(str(r, "error"), "not_found");
	json_decref(r);
	r = call(f, "secret.put", json_pack("{s:s, s:s}", "name", "x/y", "key", "not base64!"),
	         -EREMOTEIO);
	assert_string_equal(str(r, "error"), "bad_request");
	json_decref(r);
	assert_int_equal(mg_mock_state_count(f->mock, "secrets", NULL), 0);
	char path[256];
	snprintf(path, sizeof(path), "%s/x/y.sealed", f->state);
	assert_int_equal(access(path, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_made_on_first_use_and_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sealed_key_of_an_earlier_version_is_taken_over,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotate_makes_the_next_version_only, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_schedule_rotates_when_due, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_previous_goes_when_its_grace_is_over, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_schedule_off_by_default_and_checked, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_put_checks_and_sets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_opaque_never_made_nor_rotated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_promote_puts_the_next_version_in_use, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_bad_requests_change_nothing, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
