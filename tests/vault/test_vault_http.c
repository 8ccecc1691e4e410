/* The vault plugin's HTTP client (plugins/vault/vault_http.c) against the
 * Vault stand-in (vault_standin.py, NOT Vault; run by vault_http.sh with a
 * token TTL of 4 s): AppRole login, renew-self, KV v2 read and
 * check-and-set write (a stale CAS refused, the newer version read back,
 * never overwritten), an expired token refused and a new login, TLS
 * refused against another CA, a secret_id file readable by others
 * refused, and Vault gone: no answer, said so.
 * env: STANDIN_DIR (certificates, secret_id), STANDIN_PORT, STANDIN_PID. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vault.h"

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void conf_for(struct vault_conf *c, const char *ca)
{
	const char *dir = getenv("STANDIN_DIR");
	memset(c, 0, sizeof(*c));
	snprintf(c->address, sizeof(c->address), "https://127.0.0.1:%s", getenv("STANDIN_PORT"));
	snprintf(c->ca, sizeof(c->ca), "%s/%s", dir, ca);
	snprintf(c->role_id, sizeof(c->role_id), "meshgate-test-role");
	snprintf(c->secret_id_file, sizeof(c->secret_id_file), "%s/secret_id", dir);
	snprintf(c->mount, sizeof(c->mount), "secret");
	snprintf(c->path, sizeof(c->path), "meshgate");
}

static void client(struct vault_client *c, const char *ca)
{
	struct vault_conf conf;
	char err[512];
	conf_for(&conf, ca);
	assert_int_equal(vault_client_init(c, &conf, err, sizeof(err)), 0);
}

static void test_login_kv_and_cas(void **state)
{
	struct vault_client c;
	char err[512];
	json_t *data = NULL;
	long long version = 0;
	(void)state;
	client(&c, "ca.pem");
	assert_int_equal(vault_health(&c, err, sizeof(err)), 0);
	assert_int_equal(vault_ensure_token(&c, now_ms(), err, sizeof(err)), 0);
	assert_true(c.token[0]);
	/* the stand-in's TTL is 4 s, renewable: renewal due after 2/3 of it */
	assert_true(c.token_expires_ms > now_ms() && c.token_expires_ms <= now_ms() + 4000);
	assert_true(c.token_renew_ms < c.token_expires_ms);

	assert_int_equal(vault_kv_read(&c, "gw1/wireguard/wg0", &data, &version, err, sizeof(err)),
	                 -ENOENT);
	json_t *ours = json_pack("{s:i, s:s}", "version", 1, "key", "first");
	assert_int_equal(
	    vault_kv_write(&c, "gw1/wireguard/wg0", ours, 0, &version, err, sizeof(err)), 0);
	assert_int_equal(version, 1);
	/* another writer's version 2 lands; our stale CAS (1 again) is refused */
	json_t *theirs = json_pack("{s:i, s:s}", "version", 2, "key", "second");
	assert_int_equal(
	    vault_kv_write(&c, "gw1/wireguard/wg0", theirs, 1, &version, err, sizeof(err)), 0);
	assert_int_equal(
	    vault_kv_write(&c, "gw1/wireguard/wg0", ours, 1, &version, err, sizeof(err)), -ESTALE);
	assert_non_null(strstr(err, "check-and-set"));
	assert_int_equal(vault_kv_read(&c, "gw1/wireguard/wg0", &data, &version, err, sizeof(err)),
	                 0);
	assert_int_equal(version, 2);
	assert_string_equal(json_string_value(json_object_get(data, "key")), "second");
	json_decref(data);
	json_decref(ours);
	json_decref(theirs);

	/* renew-self before expiry: a later expiry */
	uint64_t before = c.token_expires_ms;
	usleep(3000 * 1000);
	assert_int_equal(vault_ensure_token(&c, now_ms(), err, sizeof(err)), 0);
	assert_true(c.token_expires_ms > before);
	vault_client_free(&c);
}

static void test_expired_token_is_refused_then_logs_in_again(void **state)
{
	struct vault_client c;
	char err[512], token[512];
	json_t *data = NULL;
	long long version;
	(void)state;
	client(&c, "ca.pem");
	assert_int_equal(vault_login(&c, now_ms(), err, sizeof(err)), 0);
	snprintf(token, sizeof(token), "%s", c.token);
	usleep(4300 * 1000); /* past the stand-in's TTL */
	assert_int_equal(vault_kv_read(&c, "gw1/none", &data, &version, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "permission denied"));
	assert_int_equal(vault_renew(&c, now_ms(), err, sizeof(err)), -EACCES);
	/* past its expiry the next use logs in again: a new token */
	assert_int_equal(vault_ensure_token(&c, now_ms(), err, sizeof(err)), 0);
	assert_string_not_equal(c.token, token);
	assert_int_equal(vault_kv_read(&c, "gw1/none", &data, &version, err, sizeof(err)), -ENOENT);
	vault_client_free(&c);
}

static void test_tls_and_credentials_are_checked(void **state)
{
	struct vault_client c;
	struct vault_conf conf;
	char err[512], path[600];
	(void)state;
	client(&c, "other-ca.pem"); /* Vault's certificate is not of this CA */
	assert_int_equal(vault_health(&c, err, sizeof(err)), -EHOSTUNREACH);
	assert_int_equal(vault_login(&c, now_ms(), err, sizeof(err)), -EHOSTUNREACH);
	vault_client_free(&c);

	conf_for(&conf, "ca.pem");
	snprintf(conf.address, sizeof(conf.address), "http://127.0.0.1:%s", getenv("STANDIN_PORT"));
	assert_int_equal(vault_client_init(&c, &conf, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "https"));

	client(&c, "ca.pem");
	snprintf(path, sizeof(path), "%s/secret_id", getenv("STANDIN_DIR"));
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(vault_login(&c, now_ms(), err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "readable by others"));
	assert_int_equal(chmod(path, 0600), 0);
	vault_client_free(&c);
}

/* Last: the stand-in goes away. */
static void test_vault_gone(void **state)
{
	struct vault_client c;
	char err[512];
	json_t *data = NULL;
	long long version;
	(void)state;
	client(&c, "ca.pem");
	assert_int_equal(vault_login(&c, now_ms(), err, sizeof(err)), 0);
	assert_int_equal(kill((pid_t)atoi(getenv("STANDIN_PID")), SIGTERM), 0);
	usleep(300 * 1000);
	assert_int_equal(vault_kv_read(&c, "gw1/x", &data, &version, err, sizeof(err)),
	                 -EHOSTUNREACH);
	assert_false(c.reachable);
	assert_int_equal(vault_health(&c, err, sizeof(err)), -EHOSTUNREACH);
	vault_client_free(&c);
}

int main(void)
{
	if (!getenv("STANDIN_DIR") || !getenv("STANDIN_PORT") || !getenv("STANDIN_PID")) {
		fprintf(stderr, "run through vault_http.sh\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_login_kv_and_cas),
	    cmocka_unit_test(test_expired_token_is_refused_then_logs_in_again),
	    cmocka_unit_test(test_tls_and_credentials_are_checked),
	    cmocka_unit_test(test_vault_gone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
