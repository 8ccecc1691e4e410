/* The server key at rest: sealed under a key kept out of the state dir,
 * an old key beside the sealed file moved out without losing the server
 * key, and a missing sealing key never replaced by a new one. */
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

#include "seal.h"

struct fixture {
	char top[64];       /* a temp dir standing for /var/lib */
	char state[128];    /* TOP/meshgate */
	char wg_dir[160];   /* TOP/meshgate/wireguard */
	char key_path[160]; /* TOP/meshgate-seal.key */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];
	snprintf(f->top, sizeof(f->top), "/tmp/mgseal.XXXXXX");
	assert_non_null(mkdtemp(f->top));
	snprintf(f->state, sizeof(f->state), "%s/meshgate", f->top);
	snprintf(f->wg_dir, sizeof(f->wg_dir), "%s/wireguard", f->state);
	assert_int_equal(mkdir(f->state, 0700), 0);
	unsetenv("CREDENTIALS_DIRECTORY");
	assert_int_equal(
	    seal_key_path("", f->state, f->key_path, sizeof(f->key_path), err, sizeof(err)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->top);
	assert_int_equal(system(cmd), 0);
	unsetenv("CREDENTIALS_DIRECTORY");
	free(f);
	return 0;
}

static int load(struct fixture *f, const char *key_path, wg_key key, int *created, char *moved,
                char *err)
{
	return sealed_key_load_or_create(f->wg_dir, "wg0", key_path, key, created, moved, 4200, err,
	                                 256);
}

static void test_default_key_is_beside_the_state_dir(void **state)
{
	struct fixture *f = *state;
	char expect[160], moved[4200], err[256], inside[200];
	wg_key first, again;
	int created;
	struct stat st;
	snprintf(expect, sizeof(expect), "%s/meshgate-seal.key", f->top);
	assert_string_equal(f->key_path, expect);

	assert_int_equal(load(f, f->key_path, first, &created, moved, err), 0);
	assert_true(created);
	assert_int_equal(stat(f->key_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(inside, sizeof(inside), "%s/seal.key", f->wg_dir);
	assert_int_equal(access(inside, F_OK), -1); /* nothing next to the sealed file */

	assert_int_equal(load(f, f->key_path, again, &created, moved, err), 0);
	assert_false(created);
	assert_memory_equal(first, again, sizeof(wg_key));
}

static void test_old_key_moves_out_keeping_the_server_key(void **state)
{
	struct fixture *f = *state;
	char old[200], moved[4200], err[256];
	wg_key before, after;
	int created;
	/* the layout of earlier versions: the key beside what it seals */
	snprintf(old, sizeof(old), "%s/seal.key", f->wg_dir);
	assert_int_equal(load(f, old, before, &created, moved, err), 0);
	assert_int_equal(access(old, F_OK), 0);

	assert_int_equal(load(f, f->key_path, after, &created, moved, err), 0);
	assert_false(created);
	assert_memory_equal(before, after, sizeof(wg_key));
	assert_string_equal(moved, old);
	assert_int_equal(access(old, F_OK), -1);
	assert_int_equal(access(f->key_path, F_OK), 0);
	/* and from its new place it keeps opening the same key */
	assert_int_equal(load(f, f->key_path, after, &created, moved, err), 0);
	assert_memory_equal(before, after, sizeof(wg_key));
	assert_string_equal(moved, "");
}

static void test_missing_sealing_key_is_not_replaced(void **state)
{
	struct fixture *f = *state;
	char moved[4200], err[256];
	wg_key key;
	int created;
	assert_int_equal(load(f, f->key_path, key, &created, moved, err), 0);
	assert_int_equal(unlink(f->key_path), 0);
	assert_int_equal(load(f, f->key_path, key, &created, moved, err), -ENOENT);
	assert_non_null(strstr(err, "its sealing key"));
	assert_int_equal(access(f->key_path, F_OK), -1);
}

static void test_key_path_choices(void **state)
{
	struct fixture *f = *state;
	char path[200], err[256], cred_dir[128], cred[200], inside[200];

	/* inside the state dir, however spelt: refused */
	snprintf(inside, sizeof(inside), "%s/../meshgate/wireguard/seal.key", f->state);
	assert_int_equal(seal_key_path(inside, f->state, path, sizeof(path), err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "is inside the state dir"));
	assert_int_equal(seal_key_path("seal.key", f->state, path, sizeof(path), err, sizeof(err)),
	                 -EINVAL);

	/* a relative state dir gives a relative key beside it */
	char cwd[256];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(f->top), 0);
	assert_int_equal(seal_key_path("", "meshgate", path, sizeof(path), err, sizeof(err)), 0);
	assert_string_equal(path, "meshgate-seal.key");
	assert_int_equal(chdir(cwd), 0);

	/* a configured file outside: taken as is */
	snprintf(cred, sizeof(cred), "%s/etc/seal.key", f->top);
	assert_int_equal(seal_key_path(cred, f->state, path, sizeof(path), err, sizeof(err)), 0);
	assert_string_equal(path, cred);

	/* systemd's credential, when the service has one */
	snprintf(cred_dir, sizeof(cred_dir), "%s/credentials", f->top);
	assert_int_equal(mkdir(cred_dir, 0700), 0);
	setenv("CREDENTIALS_DIRECTORY", cred_dir, 1);
	assert_int_equal(seal_key_path("", f->state, path, sizeof(path), err, sizeof(err)), 0);
	assert_string_equal(path, f->key_path); /* none there yet */
	snprintf(cred, sizeof(cred), "%s/%s", cred_dir, SEAL_CREDENTIAL);
	FILE *file = fopen(cred, "w");
	fclose(file);
	assert_int_equal(seal_key_path("", f->state, path, sizeof(path), err, sizeof(err)), 0);
	assert_string_equal(path, cred);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_default_key_is_beside_the_state_dir, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_old_key_moves_out_keeping_the_server_key, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_missing_sealing_key_is_not_replaced, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_key_path_choices, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
