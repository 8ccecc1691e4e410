/* The api plugin's certificates, checked with GnuTLS: the CA, the server
 * certificate's names, the chain, reuse, re-issue and the fingerprint; the
 * private keys in the secret service (a stand-in here, test_keys.h), never
 * in a file, and the key files of an earlier version moved there. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "api.h"
#include "test_keys.h"

#define DAY 86400
/* the real clock: GnuTLS's own checks below use it */
static time_t NOW;

struct fixture {
	char dir[64];
	json_t *names;
	json_t *store; /* the secret service's keys */
	struct api_keys keys;
	struct api_tls_params params;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/mg-api-cert.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->names = json_pack("[s, s, s]", "vpn.example.com", "203.0.113.1", "2001:db8::7");
	f->store = json_object();
	f->keys = test_keys(f->store);
	f->params = (struct api_tls_params){.dir = f->dir,
	                                    .keys = &f->keys,
	                                    .names = f->names,
	                                    .now = NOW,
	                                    .ca_days = 3650,
	                                    .server_days = 365,
	                                    .renew_days = 30};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd))
		return -1;
	json_decref(f->names);
	json_decref(f->store);
	free(f);
	return 0;
}

static void path_of(struct fixture *f, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", f->dir, name);
}

static gnutls_x509_crt_t load_crt(struct fixture *f, const char *name)
{
	char path[256];
	gnutls_datum_t d;
	gnutls_x509_crt_t crt;
	path_of(f, name, path, sizeof(path));
	assert_int_equal(gnutls_load_file(path, &d), 0);
	assert_int_equal(gnutls_x509_crt_init(&crt), 0);
	assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
	gnutls_free(d.data);
	return crt;
}

static unsigned mode_of(struct fixture *f, const char *name)
{
	char path[256];
	struct stat st;
	path_of(f, name, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 0777;
}

static int file_exists(struct fixture *f, const char *name)
{
	char path[256];
	path_of(f, name, path, sizeof(path));
	return access(path, F_OK) == 0;
}

/* Writes the key `name` of the store into `file` of the state dir, as an
 * earlier version kept it (0600). */
static void key_to_file(struct fixture *f, const char *name, const char *file)
{
	char path[256];
	path_of(f, file, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	const char *pem = json_string_value(json_object_get(f->store, name));
	assert_non_null(pem);
	assert_int_equal(write(fd, pem, strlen(pem)), (ssize_t)strlen(pem));
	close(fd);
}

/* hex SHA-256 over the DER, computed here independently of cert.c */
static void der_sha256_hex(gnutls_x509_crt_t crt, char out[65])
{
	gnutls_datum_t der;
	unsigned char digest[32];
	assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der), 0);
	assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, digest), 0);
	gnutls_free(der.data);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", digest[i]);
}

static int prepare(struct fixture *f, struct api_tls *tls)
{
	char why[512] = "";
	int rc = api_tls_prepare(&f->params, tls, why, sizeof(why));
	if (rc)
		print_message("api_tls_prepare: %s\n", why);
	return rc;
}

static void test_first_start_makes_ca_and_server(void **state)
{
	struct fixture *f = *state;
	struct api_tls tls;
	char fp[65];
	assert_int_equal(prepare(f, &tls), 0);
	assert_true(tls.made_ca);
	assert_true(tls.made_server);
	/* the keys are in the service, not in files */
	assert_non_null(json_object_get(f->store, API_CA_KEY_SECRET));
	assert_non_null(json_object_get(f->store, API_SERVER_KEY_SECRET));
	assert_false(file_exists(f, API_CA_KEY_FILE));
	assert_false(file_exists(f, API_SERVER_KEY_FILE));
	assert_string_equal(tls.moved, "");
	assert_int_equal(mode_of(f, API_CA_CERT_FILE), 0644);

	gnutls_x509_crt_t ca = load_crt(f, API_CA_CERT_FILE);
	gnutls_x509_crt_t server = load_crt(f, API_SERVER_CERT_FILE);

	/* the fingerprint: 64 lower-case hex digits of SHA-256 over the DER */
	der_sha256_hex(ca, fp);
	assert_string_equal(tls.ca_fingerprint, fp);
	assert_int_equal(strspn(tls.ca_fingerprint, "0123456789abcdef"), 64);
	der_sha256_hex(server, fp);
	assert_string_equal(tls.cert_fingerprint, fp);

	/* the CA: CA:TRUE, can sign, ~10 years */
	unsigned critical = 0;
	assert_int_equal(gnutls_x509_crt_get_basic_constraints(ca, &critical, NULL, NULL), 1);
	assert_true(critical);
	unsigned usage = 0;
	assert_int_equal(gnutls_x509_crt_get_key_usage(ca, &usage, &critical), 0);
	assert_true(usage & GNUTLS_KEY_KEY_CERT_SIGN);
	assert_true(gnutls_x509_crt_get_expiration_time(ca) >= NOW + 3650 * (time_t)DAY - 60);
	assert_true(gnutls_x509_crt_get_activation_time(ca) <= NOW);
	assert_int_equal(gnutls_x509_crt_get_pk_algorithm(ca, NULL), GNUTLS_PK_ECDSA);

	/* the server: not a CA, for TLS servers, signed by the CA */
	assert_int_equal(gnutls_x509_crt_get_basic_constraints(server, NULL, NULL, NULL), 0);
	char oid[128];
	size_t oidlen = sizeof(oid);
	assert_int_equal(gnutls_x509_crt_get_key_purpose_oid(server, 0, oid, &oidlen, NULL), 0);
	assert_string_equal(oid, GNUTLS_KP_TLS_WWW_SERVER);
	unsigned status = 99;
	assert_int_equal(gnutls_x509_crt_verify(server, &ca, 1, 0, &status), 0);
	assert_int_equal(status, 0);
	assert_true(gnutls_x509_crt_get_expiration_time(server) >= NOW + 365 * (time_t)DAY - 60);
	assert_true(gnutls_x509_crt_get_expiration_time(server) <= NOW + 366 * (time_t)DAY);

	gnutls_x509_crt_deinit(ca);
	gnutls_x509_crt_deinit(server);
	api_tls_clear(&tls);
}

static void test_server_names(void **state)
{
	struct fixture *f = *state;
	struct api_tls tls;
	assert_int_equal(prepare(f, &tls), 0);
	gnutls_x509_crt_t server = load_crt(f, API_SERVER_CERT_FILE);

	int dns = 0, ip4 = 0, ip6 = 0;
	for (unsigned seq = 0;; seq++) {
		unsigned char buf[256];
		size_t size = sizeof(buf);
		int type = gnutls_x509_crt_get_subject_alt_name(server, seq, buf, &size, NULL);
		if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		assert_true(type >= 0);
		if (type == GNUTLS_SAN_DNSNAME) {
			assert_memory_equal(buf, "vpn.example.com", 15);
			dns++;
		} else if (type == GNUTLS_SAN_IPADDRESS && size == 4) {
			unsigned char want[4];
			inet_pton(AF_INET, "203.0.113.1", want);
			assert_memory_equal(buf, want, 4);
			ip4++;
		} else if (type == GNUTLS_SAN_IPADDRESS && size == 16) {
			unsigned char want[16];
			inet_pton(AF_INET6, "2001:db8::7", want);
			assert_memory_equal(buf, want, 16);
			ip6++;
		} else {
			fail_msg("unexpected subjectAltName of type %d", type);
		}
	}
	assert_int_equal(dns, 1);
	assert_int_equal(ip4, 1);
	assert_int_equal(ip6, 1);
	assert_true(gnutls_x509_crt_check_hostname(server, "vpn.example.com"));
	assert_true(gnutls_x509_crt_check_hostname(server, "203.0.113.1"));
	assert_false(gnutls_x509_crt_check_hostname(server, "other.example.com"));
	assert_int_equal(json_array_size(tls.names), 3);

	gnutls_x509_crt_deinit(server);
	api_tls_clear(&tls);
}

/* What MHD serves: the server certificate then the CA, and its key. */
static void test_chain_and_key(void **state)
{
	struct fixture *f = *state;
	struct api_tls tls;
	gnutls_x509_crt_t *chain;
	unsigned n = 0;
	assert_int_equal(prepare(f, &tls), 0);
	gnutls_datum_t d = {(unsigned char *)tls.chain_pem, (unsigned)strlen(tls.chain_pem)};
	assert_true(gnutls_x509_crt_list_import2(&chain, &n, &d, GNUTLS_X509_FMT_PEM, 0) >= 0);
	assert_int_equal(n, 2);
	char fp[65];
	der_sha256_hex(chain[0], fp);
	assert_string_equal(fp, tls.cert_fingerprint);
	der_sha256_hex(chain[1], fp);
	assert_string_equal(fp, tls.ca_fingerprint);

	gnutls_certificate_credentials_t creds;
	gnutls_datum_t key = {(unsigned char *)tls.key_pem, (unsigned)strlen(tls.key_pem)};
	assert_int_equal(gnutls_certificate_allocate_credentials(&creds), 0);
	assert_true(gnutls_certificate_set_x509_key_mem(creds, &d, &key, GNUTLS_X509_FMT_PEM) >= 0);
	gnutls_certificate_free_credentials(creds);

	/* the pin is base64 of SHA-256 over the SPKI (curl --pinnedpubkey) */
	assert_int_equal(strlen(tls.pubkey_pin), 44);
	assert_int_equal(tls.pubkey_pin[43], '=');

	char fp2[65];
	assert_int_equal(api_pem_fingerprint(tls.chain_pem, fp2), 0);
	assert_string_equal(fp2, tls.cert_fingerprint);
	assert_int_equal(api_pem_fingerprint("not a pem", fp2), -EINVAL);

	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crt_deinit(chain[i]);
	gnutls_free(chain);
	api_tls_clear(&tls);
}

static void test_reuse(void **state)
{
	struct fixture *f = *state;
	struct api_tls a, b;
	assert_int_equal(prepare(f, &a), 0);
	/* same names written otherwise: same set, nothing to re-issue */
	json_decref(f->names);
	f->names = json_pack("[s, s, s, s]", "2001:DB8:0::7", "VPN.example.com", "203.0.113.1",
	                     "vpn.example.com");
	f->params.names = f->names;
	f->params.now = NOW + 100 * DAY;
	assert_int_equal(prepare(f, &b), 0);
	assert_false(b.made_ca);
	assert_false(b.made_server);
	assert_string_equal(a.ca_fingerprint, b.ca_fingerprint);
	assert_string_equal(a.cert_fingerprint, b.cert_fingerprint);
	assert_string_equal(a.chain_pem, b.chain_pem);
	assert_string_equal(a.key_pem, b.key_pem);
	api_tls_clear(&a);
	api_tls_clear(&b);
}

static void test_names_change_reissues(void **state)
{
	struct fixture *f = *state;
	struct api_tls a, b;
	assert_int_equal(prepare(f, &a), 0);
	json_array_append_new(f->names, json_string("vpn2.example.com"));
	assert_int_equal(prepare(f, &b), 0);
	assert_false(b.made_ca);
	assert_true(b.made_server);
	assert_string_equal(a.ca_fingerprint, b.ca_fingerprint);
	assert_string_not_equal(a.cert_fingerprint, b.cert_fingerprint);
	/* the key stays, so public-key pins survive a re-issue */
	assert_string_equal(a.pubkey_pin, b.pubkey_pin);
	gnutls_x509_crt_t server = load_crt(f, API_SERVER_CERT_FILE);
	assert_true(gnutls_x509_crt_check_hostname(server, "vpn2.example.com"));
	gnutls_x509_crt_deinit(server);
	api_tls_clear(&a);
	api_tls_clear(&b);
}

static void test_renewal(void **state)
{
	struct fixture *f = *state;
	struct api_tls a, b, c;
	assert_int_equal(prepare(f, &a), 0);
	f->params.now = NOW + 334 * DAY; /* 31 days left */
	assert_int_equal(prepare(f, &b), 0);
	assert_false(b.made_server);
	f->params.now = NOW + 336 * DAY; /* 29 days left */
	assert_int_equal(prepare(f, &c), 0);
	assert_true(c.made_server);
	assert_false(c.made_ca);
	assert_true(c.not_after > a.not_after);
	api_tls_clear(&a);
	api_tls_clear(&b);
	api_tls_clear(&c);
}

static void test_missing_ca_key(void **state)
{
	struct fixture *f = *state;
	struct api_tls a, b;
	char path[256], why[512] = "";
	assert_int_equal(prepare(f, &a), 0);
	(void)path;
	assert_int_equal(json_object_del(f->store, API_CA_KEY_SECRET), 0);
	/* nothing to issue: still fine */
	assert_int_equal(prepare(f, &b), 0);
	assert_string_equal(a.ca_fingerprint, b.ca_fingerprint);
	api_tls_clear(&b);
	/* something to issue: a clear error, and the CA is not replaced */
	json_array_append_new(f->names, json_string("new.example.com"));
	assert_int_equal(api_tls_prepare(&f->params, &b, why, sizeof(why)), -ENOKEY);
	assert_non_null(strstr(why, API_CA_KEY_FILE));
	assert_null(b.chain_pem);
	gnutls_x509_crt_t ca = load_crt(f, API_CA_CERT_FILE);
	char fp[65];
	der_sha256_hex(ca, fp);
	assert_string_equal(fp, a.ca_fingerprint);
	gnutls_x509_crt_deinit(ca);
	api_tls_clear(&a);
}

static void test_broken_ca_is_not_replaced(void **state)
{
	struct fixture *f = *state;
	struct api_tls tls;
	char path[256], why[512] = "";
	path_of(f, API_CA_CERT_FILE, path, sizeof(path));
	FILE *fp = fopen(path, "w");
	fputs("garbage\n", fp);
	fclose(fp);
	assert_int_equal(api_tls_prepare(&f->params, &tls, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "ca.pem"));
	fp = fopen(path, "r");
	char line[32] = "";
	assert_non_null(fgets(line, sizeof(line), fp));
	fclose(fp);
	assert_string_equal(line, "garbage\n");
}

static void test_new_ca_reissues_server(void **state)
{
	struct fixture *f = *state;
	struct api_tls a, b;
	char path[256];
	assert_int_equal(prepare(f, &a), 0);
	path_of(f, API_CA_CERT_FILE, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(prepare(f, &b), 0);
	assert_true(b.made_ca);
	assert_true(b.made_server); /* the old one is not the new CA's */
	assert_string_not_equal(a.ca_fingerprint, b.ca_fingerprint);
	gnutls_x509_crt_t ca = load_crt(f, API_CA_CERT_FILE);
	gnutls_x509_crt_t server = load_crt(f, API_SERVER_CERT_FILE);
	unsigned status = 99;
	assert_int_equal(gnutls_x509_crt_verify(server, &ca, 1, 0, &status), 0);
	assert_int_equal(status, 0);
	gnutls_x509_crt_deinit(ca);
	gnutls_x509_crt_deinit(server);
	api_tls_clear(&a);
	api_tls_clear(&b);
}

static void test_bad_names_refused(void **state)
{
	struct fixture *f = *state;
	struct api_tls tls;
	char why[512] = "";
	json_t *names = json_pack("[s]", "not a name");
	f->params.names = names;
	assert_int_equal(api_tls_prepare(&f->params, &tls, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "not a name"));
	char path[256];
	path_of(f, API_CA_CERT_FILE, path, sizeof(path));
	assert_int_equal(access(path, F_OK), -1); /* nothing written */
	json_decref(names);
}

static void test_configured_cert(void **state)
{
	struct fixture *f = *state;
	struct api_tls made, loaded;
	char cert[256], key[256], cakey[256], why[512] = "";
	assert_int_equal(prepare(f, &made), 0);
	/* an operator's key files: here the generated ones, written out */
	key_to_file(f, API_SERVER_KEY_SECRET, API_SERVER_KEY_FILE);
	key_to_file(f, API_CA_KEY_SECRET, API_CA_KEY_FILE);
	path_of(f, API_SERVER_CERT_FILE, cert, sizeof(cert));
	path_of(f, API_SERVER_KEY_FILE, key, sizeof(key));
	path_of(f, API_CA_KEY_FILE, cakey, sizeof(cakey));

	assert_int_equal(api_tls_load(cert, key, NOW, &loaded, why, sizeof(why)), 0);
	assert_string_equal(loaded.cert_fingerprint, made.cert_fingerprint);
	assert_string_equal(loaded.pubkey_pin, made.pubkey_pin);
	assert_string_equal(loaded.ca_fingerprint, ""); /* the file has no CA */
	assert_string_equal(loaded.warning, "");
	api_tls_clear(&loaded);

	/* a chain file with the CA: the CA's fingerprint is known */
	char chain[256];
	path_of(f, "chain.pem", chain, sizeof(chain));
	FILE *fp = fopen(chain, "w");
	fputs(made.chain_pem, fp);
	fclose(fp);
	assert_int_equal(api_tls_load(chain, key, NOW, &loaded, why, sizeof(why)), 0);
	assert_string_equal(loaded.ca_fingerprint, made.ca_fingerprint);
	api_tls_clear(&loaded);

	assert_int_equal(api_tls_load(cert, cakey, NOW, &loaded, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "does not belong"));
	assert_int_equal(api_tls_load("/nonexistent.pem", key, NOW, &loaded, why, sizeof(why)),
	                 -ENOENT);
	assert_int_equal(api_tls_load(key, key, NOW, &loaded, why, sizeof(why)), -EINVAL);

	/* expired and world-readable keys are worth a warning */
	assert_int_equal(api_tls_load(cert, key, NOW + 400 * DAY, &loaded, why, sizeof(why)), 0);
	assert_non_null(strstr(loaded.warning, "expired"));
	api_tls_clear(&loaded);
	assert_int_equal(chmod(key, 0644), 0);
	assert_int_equal(api_tls_load(cert, key, NOW, &loaded, why, sizeof(why)), 0);
	assert_non_null(strstr(loaded.warning, "readable"));
	api_tls_clear(&loaded);
	api_tls_clear(&made);
}

/* A gateway of an earlier version: its keys in ca.key and api-server.key.
 * They move into the service, the files go, and nothing else changes: the
 * same CA, certificate and public key (clients' pins hold). */
static void test_key_files_moved_into_the_service(void **state)
{
	struct fixture *f = *state;
	struct api_tls a, b, c;
	char want[512];
	assert_int_equal(prepare(f, &a), 0);
	key_to_file(f, API_CA_KEY_SECRET, API_CA_KEY_FILE);
	key_to_file(f, API_SERVER_KEY_SECRET, API_SERVER_KEY_FILE);
	json_t *before = json_deep_copy(f->store);
	json_object_clear(f->store); /* the service has never heard of them */

	assert_int_equal(prepare(f, &b), 0);
	assert_false(b.made_ca);
	assert_false(b.made_server);
	assert_string_equal(b.ca_fingerprint, a.ca_fingerprint);
	assert_string_equal(b.cert_fingerprint, a.cert_fingerprint);
	assert_string_equal(b.pubkey_pin, a.pubkey_pin);
	assert_true(json_equal(f->store, before));
	assert_false(file_exists(f, API_CA_KEY_FILE));
	assert_false(file_exists(f, API_SERVER_KEY_FILE));
	snprintf(want, sizeof(want), "%s/%s -> %s, %s/%s -> %s", f->dir, API_CA_KEY_FILE,
	         API_CA_KEY_SECRET, f->dir, API_SERVER_KEY_FILE, API_SERVER_KEY_SECRET);
	assert_string_equal(b.moved, want);

	/* once: the next start has nothing to move */
	assert_int_equal(prepare(f, &c), 0);
	assert_string_equal(c.moved, "");
	assert_string_equal(c.pubkey_pin, a.pubkey_pin);

	/* a file left by a crash after the move: the service's key wins, the
	 * file goes */
	key_to_file(f, API_SERVER_KEY_SECRET, API_SERVER_KEY_FILE);
	api_tls_clear(&c);
	assert_int_equal(prepare(f, &c), 0);
	assert_false(file_exists(f, API_SERVER_KEY_FILE));
	assert_non_null(strstr(c.moved, API_SERVER_KEY_FILE));
	assert_string_equal(c.pubkey_pin, a.pubkey_pin);
	json_decref(before);
	api_tls_clear(&a);
	api_tls_clear(&b);
	api_tls_clear(&c);
}

/* A key file that is no key: a clear error, the file kept, nothing stored. */
static void test_broken_key_file_not_moved(void **state)
{
	struct fixture *f = *state;
	struct api_tls a, b;
	char path[256], why[512] = "";
	assert_int_equal(prepare(f, &a), 0);
	json_object_del(f->store, API_SERVER_KEY_SECRET);
	path_of(f, API_SERVER_KEY_FILE, path, sizeof(path));
	FILE *fp = fopen(path, "w");
	fputs("garbage\n", fp);
	fclose(fp);
	assert_int_equal(api_tls_prepare(&f->params, &b, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, API_SERVER_KEY_FILE));
	assert_non_null(strstr(why, "not a private key"));
	assert_true(file_exists(f, API_SERVER_KEY_FILE));
	assert_null(json_object_get(f->store, API_SERVER_KEY_SECRET));
	api_tls_clear(&a);
}

/* A service that does not answer: an error, no key made or moved. */
static int load_unavailable(void *arg, const char *name, char **pem, char *why, size_t whylen)
{
	(void)arg, (void)pem;
	snprintf(why, whylen, "secret.get %s: Vault does not answer", name);
	return -EHOSTUNREACH;
}

static void test_service_unavailable(void **state)
{
	struct fixture *f = *state;
	struct api_tls a, b;
	char why[512] = "";
	assert_int_equal(prepare(f, &a), 0);
	json_t *before = json_deep_copy(f->store);
	f->keys.load = load_unavailable;
	assert_int_equal(api_tls_prepare(&f->params, &b, why, sizeof(why)), -EHOSTUNREACH);
	assert_non_null(strstr(why, "does not answer"));
	assert_null(b.chain_pem);
	assert_true(json_equal(f->store, before));
	assert_false(file_exists(f, API_CA_KEY_FILE));
	assert_false(file_exists(f, API_SERVER_KEY_FILE));
	json_decref(before);
	api_tls_clear(&a);
}

int main(void)
{
	NOW = time(NULL);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_first_start_makes_ca_and_server, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chain_and_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reuse, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_names_change_reissues, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_renewal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_ca_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_broken_ca_is_not_replaced, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_new_ca_reissues_server, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_names_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_configured_cert, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_files_moved_into_the_service, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_broken_key_file_not_moved, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_service_unavailable, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
