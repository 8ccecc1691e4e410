/* The api plugin's addresses and names: listen, the wireguard endpoint's
 * host, and the names a certificate may carry. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"

static void listen_ok(const char *listen, int family, const char *ip, unsigned port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char why[256] = "", text[INET6_ADDRSTRLEN];
	if (api_parse_listen(listen, &ss, &len, why, sizeof(why)))
		fail_msg("\"%s\" refused: %s", listen, why);
	assert_int_equal(ss.ss_family, family);
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		assert_int_equal(len, sizeof(*in));
		assert_int_equal(ntohs(in->sin_port), port);
		inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		assert_int_equal(len, sizeof(*in6));
		assert_int_equal(ntohs(in6->sin6_port), port);
		inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
	}
	assert_string_equal(text, ip);
}

static void listen_bad(const char *listen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char why[256] = "";
	if (!api_parse_listen(listen, &ss, &len, why, sizeof(why)))
		fail_msg("\"%s\" accepted", listen ? listen : "(null)");
	assert_true(strlen(why) > 0);
}

static void test_listen(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	(void)state;
	listen_ok("0.0.0.0:8443", AF_INET, "0.0.0.0", 8443);
	listen_ok("127.0.0.1:1", AF_INET, "127.0.0.1", 1);
	listen_ok("[::]:8443", AF_INET6, "::", 8443);
	listen_ok("[2001:db8::1]:65535", AF_INET6, "2001:db8::1", 65535);
	listen_bad(NULL);
	listen_bad("");
	listen_bad("8443");
	listen_bad(":8443");
	listen_bad("127.0.0.1");
	listen_bad("127.0.0.1:");
	listen_bad("127.0.0.1:0");
	listen_bad("127.0.0.1:65536");
	listen_bad("127.0.0.1:84x3");
	listen_bad("127.0.0.1:-1");
	listen_bad("localhost:8443");
	listen_bad("::1:8443");
	listen_bad("[::1]8443");
	listen_bad("[::1");
	listen_bad("[1.2.3.4]:80");
	listen_bad("[]:80");

	assert_int_equal(api_parse_listen("0.0.0.0:1", &ss, &len, NULL, 0), 0);
	assert_true(api_addr_is_any(&ss));
	assert_int_equal(api_parse_listen("[::]:1", &ss, &len, NULL, 0), 0);
	assert_true(api_addr_is_any(&ss));
	assert_int_equal(api_parse_listen("10.0.0.1:1", &ss, &len, NULL, 0), 0);
	assert_false(api_addr_is_any(&ss));
	assert_int_equal(api_parse_listen("[::1]:1", &ss, &len, NULL, 0), 0);
	assert_false(api_addr_is_any(&ss));
}

static void host_is(const char *endpoint, const char *want)
{
	char host[256];
	int rc = api_endpoint_host(endpoint, host, sizeof(host));
	if (!want) {
		assert_int_equal(rc, -EINVAL);
		return;
	}
	assert_int_equal(rc, 0);
	assert_string_equal(host, want);
}

static void test_endpoint_host(void **state)
{
	char tiny[4];
	(void)state;
	host_is("vpn.example.com:51820", "vpn.example.com");
	host_is("203.0.113.1:51820", "203.0.113.1");
	host_is("[2001:db8::1]:51820", "2001:db8::1");
	host_is("vpn.example.com", "vpn.example.com");
	host_is("2001:db8::1", "2001:db8::1");
	host_is("", NULL);
	host_is(NULL, NULL);
	host_is(":51820", NULL);
	host_is("[2001:db8::1", NULL);
	assert_int_equal(api_endpoint_host("long.example.com:1", tiny, sizeof(tiny)), -EINVAL);
}

static void test_name_kind(void **state)
{
	unsigned char ip[16];
	size_t iplen = 0;
	char long_label[80], long_name[300];
	(void)state;
	assert_int_equal(api_name_kind("vpn.example.com", ip, &iplen), API_NAME_DNS);
	assert_int_equal(api_name_kind("localhost", NULL, NULL), API_NAME_DNS);
	assert_int_equal(api_name_kind("*.example.com", NULL, NULL), API_NAME_DNS);
	assert_int_equal(api_name_kind("xn--bcher-kva.example", NULL, NULL), API_NAME_DNS);
	assert_int_equal(api_name_kind("203.0.113.1", ip, &iplen), API_NAME_IP);
	assert_int_equal(iplen, 4);
	assert_int_equal(ip[0], 203);
	assert_int_equal(api_name_kind("2001:db8::7", ip, &iplen), API_NAME_IP);
	assert_int_equal(iplen, 16);
	assert_int_equal(ip[15], 7);

	const char *bad[] = {"",   "bad_name.com", "-a.example", "a-.example",          "a..b",
	                     ".a", "a.",           "1.2.3",      "1.2.3.4.5",           "*",
	                     "*.", "a.*.b",        "a b",        "vpn.example.com:443", "[::1]",
	                     NULL};
	for (size_t i = 0; bad[i]; i++)
		if (api_name_kind(bad[i], NULL, NULL) != -EINVAL)
			fail_msg("\"%s\" accepted as a name", bad[i]);
	assert_int_equal(api_name_kind(NULL, NULL, NULL), -EINVAL);

	memset(long_label, 'a', 63);
	strcpy(long_label + 63, ".com");
	assert_int_equal(api_name_kind(long_label, NULL, NULL), API_NAME_DNS);
	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".com");
	assert_int_equal(api_name_kind(long_label, NULL, NULL), -EINVAL);
	memset(long_name, 0, sizeof(long_name));
	for (int i = 0; i < 260; i++)
		long_name[i] = i % 10 == 9 ? '.' : 'a';
	assert_int_equal(api_name_kind(long_name, NULL, NULL), -EINVAL);
}

static void test_canonical(void **state)
{
	char out[256], tiny[4];
	(void)state;
	assert_int_equal(api_name_canonical("VPN.Example.COM", out, sizeof(out)), 0);
	assert_string_equal(out, "vpn.example.com");
	assert_int_equal(api_name_canonical("2001:DB8:0:0::1", out, sizeof(out)), 0);
	assert_string_equal(out, "2001:db8::1");
	assert_int_equal(api_name_canonical("bad_name", out, sizeof(out)), -EINVAL);
	assert_int_equal(api_name_canonical("example.com", tiny, sizeof(tiny)), -ENOSPC);
}

static void test_names_check(void **state)
{
	char why[256];
	(void)state;
	json_t *good = json_pack("[s, s, s]", "vpn.example.com", "203.0.113.1", "::1");
	json_t *empty = json_array();
	json_t *mixed = json_pack("[s, i]", "vpn.example.com", 5);
	json_t *typo = json_pack("[s, s]", "vpn.example.com", "bad name");
	assert_int_equal(api_names_check(good, why, sizeof(why)), 0);
	assert_int_equal(api_names_check(empty, why, sizeof(why)), -EINVAL);
	assert_int_equal(api_names_check(NULL, why, sizeof(why)), -EINVAL);
	assert_int_equal(api_names_check(mixed, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "names[1]"));
	assert_int_equal(api_names_check(typo, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "bad name"));
	json_decref(good);
	json_decref(empty);
	json_decref(mixed);
	json_decref(typo);
}

static void names_are(json_t *names, const char *want)
{
	char *text = json_dumps(names, JSON_COMPACT);
	assert_string_equal(text, want);
	free(text);
	json_decref(names);
}

static void test_default_names(void **state)
{
	(void)state;
	json_t *wg =
	    json_pack("{s:s, s:i}", "endpoint", "vpn.example.com:51820", "listen_port", 51820);
	names_are(api_default_names(wg, "0.0.0.0:8443"), "[\"vpn.example.com\"]");
	json_object_set_new(wg, "endpoint", json_string("[2001:db8::9]:51820"));
	names_are(api_default_names(wg, "0.0.0.0:8443"), "[\"2001:db8::9\"]");
	json_object_set_new(wg, "endpoint", json_string("bad name:51820"));
	names_are(api_default_names(wg, "10.1.2.3:8443"), "[\"10.1.2.3\"]");
	json_object_del(wg, "endpoint");
	names_are(api_default_names(wg, "[fd00::1]:8443"), "[\"fd00::1\"]");
	json_decref(wg);
	names_are(api_default_names(NULL, "0.0.0.0:8443"), "[\"localhost\",\"127.0.0.1\",\"::1\"]");
	names_are(api_default_names(NULL, "[::]:8443"), "[\"localhost\",\"127.0.0.1\",\"::1\"]");
	names_are(api_default_names(NULL, NULL), "[\"localhost\",\"127.0.0.1\",\"::1\"]");
}

static void gateway_is(const char *address, int rc, const char *want)
{
	char host[64] = "";
	json_t *wg = address ? json_pack("{s:s}", "address", address) : json_object();
	assert_int_equal(api_vpn_gateway(wg, host, sizeof(host)), rc);
	if (!rc)
		assert_string_equal(host, want);
	json_decref(wg);
}

static void test_vpn_gateway(void **state)
{
	(void)state;
	gateway_is("10.0.0.1/24", 0, "10.0.0.1");
	gateway_is("10.0.0.1", 0, "10.0.0.1");
	gateway_is("FD00:0::1/64", 0, "fd00::1");
	gateway_is(NULL, -ENOENT, "");
	gateway_is("10.0.0.1/", -EINVAL, "");
	gateway_is("10.0.0.1/2x", -EINVAL, "");
	gateway_is("vpn.example.com/24", -EINVAL, "");
	gateway_is("/24", -EINVAL, "");
	assert_int_equal(api_vpn_gateway(NULL, (char[8]){0}, 8), -ENOENT);
}

static void test_cert_names(void **state)
{
	(void)state;
	json_t *wg =
	    json_pack("{s:s, s:s}", "endpoint", "vpn.example.com:51820", "address", "10.0.0.1/24");
	/* derived names get the VPN gateway address */
	names_are(api_cert_names(NULL, wg, "0.0.0.0:8443"), "[\"vpn.example.com\",\"10.0.0.1\"]");
	/* configured names too, and only once however it is written */
	json_t *configured = json_pack("[s, s]", "198.18.0.1", "gw.example.com");
	names_are(api_cert_names(configured, wg, "0.0.0.0:8443"),
	          "[\"198.18.0.1\",\"gw.example.com\",\"10.0.0.1\"]");
	json_array_append_new(configured, json_string("10.0.0.1"));
	names_are(api_cert_names(configured, wg, "0.0.0.0:8443"),
	          "[\"198.18.0.1\",\"gw.example.com\",\"10.0.0.1\"]");
	/* the configured array itself is left alone */
	assert_int_equal(json_array_size(configured), 3);
	json_decref(configured);
	/* without an address, the names are as before */
	json_object_del(wg, "address");
	names_are(api_cert_names(NULL, wg, "0.0.0.0:8443"), "[\"vpn.example.com\"]");
	json_decref(wg);
	names_are(api_cert_names(NULL, NULL, "0.0.0.0:8443"),
	          "[\"localhost\",\"127.0.0.1\",\"::1\"]");
}

static void test_ip_in_prefix(void **state)
{
	(void)state;
	assert_int_equal(api_ip_in_prefix("10.0.0.2", "10.0.0.1/24"), 1);
	assert_int_equal(api_ip_in_prefix("10.0.0.255", "10.0.0.1/24"), 1);
	assert_int_equal(api_ip_in_prefix("10.0.1.2", "10.0.0.1/24"), 0);
	assert_int_equal(api_ip_in_prefix("198.18.0.2", "10.0.0.1/24"), 0);
	assert_int_equal(api_ip_in_prefix("10.0.0.7", "10.0.0.7/32"), 1);
	assert_int_equal(api_ip_in_prefix("10.0.0.8", "10.0.0.7/32"), 0);
	assert_int_equal(api_ip_in_prefix("1.2.3.4", "0.0.0.0/0"), 1);
	assert_int_equal(api_ip_in_prefix("::ffff:10.0.0.2", "10.0.0.1/24"), 1);
	assert_int_equal(api_ip_in_prefix("fd00::5", "fd00::1/64"), 1);
	assert_int_equal(api_ip_in_prefix("fd01::5", "fd00::1/64"), 0);
	assert_int_equal(api_ip_in_prefix("fd00::5", "10.0.0.1/24"), 0);
	assert_int_equal(api_ip_in_prefix("10.0.0.2", "fd00::1/64"), 0);
	assert_int_equal(api_ip_in_prefix("10.0.0.2", "10.0.0.1"), -EINVAL);
	assert_int_equal(api_ip_in_prefix("10.0.0.2", "10.0.0.1/33"), -EINVAL);
	assert_int_equal(api_ip_in_prefix("10.0.0.2", "10.0.0.1/-1"), -EINVAL);
	assert_int_equal(api_ip_in_prefix("unknown", "10.0.0.1/24"), -EINVAL);
	assert_int_equal(api_ip_in_prefix(NULL, "10.0.0.1/24"), -EINVAL);
	assert_int_equal(api_ip_in_prefix("10.0.0.2", NULL), -EINVAL);
}

static void access_is(const char *listen, const char *gw, int vpn_listen, int rc, const char *extra,
                      const char *url)
{
	char e[80] = "x", u[96] = "x";
	assert_int_equal(api_vpn_access(listen, gw, vpn_listen, e, sizeof(e), u, sizeof(u)), rc);
	assert_string_equal(e, extra);
	assert_string_equal(u, url);
}

static void test_vpn_access(void **state)
{
	(void)state;
	/* a wildcard covers the VPN side; [::] takes IPv4 too */
	access_is("0.0.0.0:8443", "10.0.0.1", 1, 1, "", "https://10.0.0.1:8443");
	access_is("0.0.0.0:8443", "10.0.0.1", 0, 1, "", "https://10.0.0.1:8443");
	access_is("[::]:9443", "10.0.0.1", 0, 1, "", "https://10.0.0.1:9443");
	access_is("[::]:9443", "fd00::1", 0, 1, "", "https://[fd00::1]:9443");
	/* listening on the gateway address itself */
	access_is("10.0.0.1:8443", "10.0.0.1", 0, 1, "", "https://10.0.0.1:8443");
	/* a specific public address: a second listener, unless turned off */
	access_is("198.18.0.1:8443", "10.0.0.1", 1, 1, "10.0.0.1:8443", "https://10.0.0.1:8443");
	access_is("198.18.0.1:8443", "10.0.0.1", 0, 0, "", "");
	access_is("0.0.0.0:8443", "fd00::1", 1, 1, "[fd00::1]:8443", "https://[fd00::1]:8443");
	/* nothing known */
	access_is("0.0.0.0:8443", NULL, 1, 0, "", "");
	access_is("0.0.0.0:8443", "vpn.example.com", 1, 0, "", "");
	access_is("bad", "10.0.0.1", 1, 0, "", "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_listen),       cmocka_unit_test(test_endpoint_host),
	    cmocka_unit_test(test_name_kind),    cmocka_unit_test(test_canonical),
	    cmocka_unit_test(test_names_check),  cmocka_unit_test(test_default_names),
	    cmocka_unit_test(test_vpn_gateway),  cmocka_unit_test(test_cert_names),
	    cmocka_unit_test(test_ip_in_prefix), cmocka_unit_test(test_vpn_access),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
