/* Every node's CA for devices (plugins/api/nodes.c): this node's record in
 * api_nodes, the api_cas told to devices, and the plugin keeping its record
 * in the mock core while other nodes' records come and go. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <mg_mock.h>

#include "api.h"
#include "test_keys.h"

static const char *plugin_path;

/* A CA of its own (and a server certificate) in a fresh folder. */
static void make_tls(struct api_tls *tls, json_t *names)
{
	char dir[64], why[256];
	snprintf(dir, sizeof(dir), "/tmp/mg-api-nodes.XXXXXX");
	assert_non_null(mkdtemp(dir));
	json_t *store = json_object();
	struct api_keys keys = test_keys(store);
	struct api_tls_params params = {.dir = dir,
	                                .keys = &keys,
	                                .names = names,
	                                .now = time(NULL),
	                                .ca_days = 3650,
	                                .server_days = 365,
	                                .renew_days = 30};
	assert_int_equal(api_tls_prepare(&params, tls, why, sizeof(why)), 0);
	json_decref(store);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static json_t *one_name(void)
{
	return json_pack("[s]", "localhost");
}

static void record_names_the_ca_and_the_urls(void **state)
{
	(void)state;
	struct api_tls tls;
	json_t *names = json_pack("[s, s, s, s]", "vpn.example.com", "203.0.113.1", "2001:db8::7",
	                          "*.example.org");
	make_tls(&tls, names);
	json_t *r = api_node_record("gw1", &tls, "0.0.0.0:8443", "https://10.0.0.1:8443");
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "node")), "gw1");
	assert_string_equal(json_string_value(json_object_get(r, "ca")), tls.ca_pem);
	assert_string_equal(json_string_value(json_object_get(r, "ca_fingerprint")),
	                    tls.ca_fingerprint);
	/* the certificate's names, sorted; no URL for a wildcard */
	json_t *want = json_pack("[s, s, s]", "https://[2001:db8::7]:8443",
	                         "https://203.0.113.1:8443", "https://vpn.example.com:8443");
	assert_true(json_equal(json_object_get(r, "urls"), want));
	assert_string_equal(json_string_value(json_object_get(r, "vpn_api")),
	                    "https://10.0.0.1:8443");
	json_decref(want);
	json_decref(r);

	/* no VPN side: no vpn_api */
	r = api_node_record("gw1", &tls, "0.0.0.0:8443", "");
	assert_null(json_object_get(r, "vpn_api"));
	json_decref(r);

	/* an operator's chain without its CA: nothing to give devices */
	free(tls.ca_pem);
	tls.ca_pem = NULL;
	assert_null(api_node_record("gw1", &tls, "0.0.0.0:8443", NULL));
	api_tls_clear(&tls);
	json_decref(names);
}

static void cas_are_own_first_each_once(void **state)
{
	(void)state;
	struct api_tls a, b;
	json_t *names = one_name();
	make_tls(&a, names);
	make_tls(&b, names);
	json_t *records =
	    json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{}, s:{s:i}}", "a-copy", "ca", a.ca_pem, "gw2",
	              "ca", b.ca_pem, "junk", "ca", "-----BEGIN CERTIFICATE-----\nnot one\n",
	              "empty", "number", "ca", 7);
	json_t *cas = api_cas_collect(a.ca_pem, records);
	json_t *want = json_pack("[s, s]", a.ca_pem, b.ca_pem);
	assert_true(json_equal(cas, want));
	json_decref(cas);
	json_decref(want);

	/* without a CA of its own, the others' still */
	cas = api_cas_collect(NULL, records);
	want = json_pack("[s, s]", a.ca_pem, b.ca_pem);
	assert_true(json_equal(cas, want));
	json_decref(cas);
	json_decref(want);
	json_decref(records);
	api_tls_clear(&a);
	api_tls_clear(&b);
	json_decref(names);
}

static void cas_are_capped(void **state)
{
	(void)state;
	json_t *names = one_name(), *records = json_object();
	for (int i = 0; i < API_CAS_MAX + 3; i++) {
		struct api_tls t;
		char node[16];
		make_tls(&t, names);
		snprintf(node, sizeof(node), "gw%02d", i);
		json_object_set_new(records, node, json_pack("{s:s}", "ca", t.ca_pem));
		api_tls_clear(&t);
	}
	json_t *cas = api_cas_collect(NULL, records);
	assert_int_equal(json_array_size(cas), API_CAS_MAX);
	json_decref(cas);
	json_decref(records);
	json_decref(names);
}

/* ---- the plugin in the mock core ---- */

static unsigned free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr = {htonl(INADDR_LOOPBACK)}};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char *text = calloc(1, 16384);
	size_t n = fread(text, 1, 16383, f);
	fclose(f);
	text[n] = '\0';
	return text;
}

/* api.info's api_cas: the fingerprints of what devices are told. */
static json_t *told(struct mg_mock *m)
{
	json_t *reply = NULL;
	assert_int_equal(mg_mock_request(m, "api.info", NULL, &reply), 0);
	assert_string_equal(json_string_value(json_object_get(reply, "node")), "gw1");
	json_t *cas = json_incref(json_object_get(reply, "api_cas"));
	json_decref(reply);
	return cas;
}

static void fingerprint_of(const char *pem, char out[API_FINGERPRINT_LEN + 1])
{
	assert_int_equal(api_pem_fingerprint(pem, out), 0);
}

static void plugin_publishes_its_ca_and_follows_the_others(void **state)
{
	(void)state;
	char err[512], listen[32], path[512], own[API_FINGERPRINT_LEN + 1],
	    other[API_FINGERPRINT_LEN + 1];
	struct mg_mock *m = mg_mock_new(NULL, err, sizeof(err));
	assert_non_null(m);
	mg_mock_set_node_name(m, "gw1");
	char seal[600];
	mock_add_keystore(m, seal, sizeof(seal));
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", free_port());
	json_t *cfg = json_pack("{s:s, s:[s]}", "listen", listen, "names", "localhost");
	if (mg_mock_load(m, plugin_path, cfg, err, sizeof(err)) ||
	    mg_mock_start(m, err, sizeof(err)))
		fail_msg("%s", err);
	json_decref(cfg);

	/* this node's record holds the CA of ca.pem, under the node's name */
	snprintf(path, sizeof(path), "%s/%s", mg_mock_state_dir(m), API_CA_CERT_FILE);
	char *ca = slurp(path);
	fingerprint_of(ca, own);
	json_t *record = NULL;
	assert_int_equal(mg_mock_state_get(m, API_NODES_DB, "gw1", &record), 0);
	assert_string_equal(json_string_value(json_object_get(record, "ca")), ca);
	assert_string_equal(json_string_value(json_object_get(record, "ca_fingerprint")), own);
	json_decref(record);
	json_t *cas = told(m);
	json_t *want = json_pack("[s]", own);
	assert_true(json_equal(cas, want));
	json_decref(cas);
	json_decref(want);

	/* another node publishes its CA: devices are told both, ours first */
	struct api_tls b;
	json_t *names = one_name();
	make_tls(&b, names);
	fingerprint_of(b.ca_pem, other);
	json_t *gw2 = json_pack("{s:s, s:s}", "node", "gw2", "ca", b.ca_pem);
	assert_int_equal(mg_mock_state_remote(m, API_NODES_DB, "gw2", gw2), 0);
	json_decref(gw2);
	cas = told(m);
	want = json_pack("[s, s]", own, other);
	assert_true(json_equal(cas, want));
	json_decref(cas);
	json_decref(want);

	/* our record deleted elsewhere: written back */
	assert_int_equal(mg_mock_state_remote(m, API_NODES_DB, "gw1", NULL), 0);
	assert_int_equal(mg_mock_state_get(m, API_NODES_DB, "gw1", &record), 0);
	assert_string_equal(json_string_value(json_object_get(record, "ca")), ca);
	json_decref(record);

	/* the other node leaves: only ours again */
	assert_int_equal(mg_mock_state_remote(m, API_NODES_DB, "gw2", NULL), 0);
	cas = told(m);
	want = json_pack("[s]", own);
	assert_true(json_equal(cas, want));
	json_decref(cas);
	json_decref(want);

	free(ca);
	api_tls_clear(&b);
	json_decref(names);
	mg_mock_free(m);
	unlink(seal);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s meshgate-api.so\n", argv[0]);
		return 2;
	}
	plugin_path = argv[1];
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(record_names_the_ca_and_the_urls),
	    cmocka_unit_test(cas_are_own_first_each_once),
	    cmocka_unit_test(cas_are_capped),
	    cmocka_unit_test(plugin_publishes_its_ca_and_follows_the_others),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
