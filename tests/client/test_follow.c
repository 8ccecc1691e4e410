/* Following the networks (meshgate sync/watch), its pure parts: the
 * difference of two prefix lists, the routes a list needs, the device
 * config reply and the API's address inside the tunnel, and what the saved
 * config keeps for a later sync (that address and the trust of the
 * enrolment). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config_file.h"
#include "netaddr.h"
#include "reply.h"
#include "tls_pin.h"

#define SERVER_KEY  "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
#define PRIVATE_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

/* "a, b, c" into prefixes (host bits cleared, as the decoders do). */
static size_t prefixes(const char *text, struct cl_prefix *out)
{
	char buf[1024], *save = NULL;
	size_t n = 0;
	snprintf(buf, sizeof(buf), "%s", text);
	for (char *item = strtok_r(buf, ", ", &save); item; item = strtok_r(NULL, ", ", &save)) {
		if (cl_prefix_parse(item, false, &out[n]))
			fail_msg("bad prefix in the test: %s", item);
		cl_prefix_mask(&out[n++]);
	}
	return n;
}

static void list_is(const struct cl_prefix *list, size_t n, const char *want)
{
	char got[1024] = "", text[CL_PREFIX_STRLEN];
	for (size_t i = 0; i < n; i++) {
		cl_prefix_format(&list[i], text, sizeof(text));
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? ", " : "", text);
	}
	assert_string_equal(got, want);
}

static void minus_is(const char *a, const char *b, const char *want)
{
	struct cl_prefix pa[16], pb[16], out[16];
	size_t na = prefixes(a, pa), nb = prefixes(b, pb);
	list_is(out, cl_prefix_minus(pa, na, pb, nb, out), want);
}

static void test_prefix_diff(void **state)
{
	(void)state;
	/* a role change: one network added */
	minus_is("10.0.0.0/24, 10.20.0.0/24", "10.0.0.0/24", "10.20.0.0/24");
	minus_is("10.0.0.0/24", "10.0.0.0/24, 10.20.0.0/24", "");
	/* a route withdrawn, another added */
	minus_is("10.0.0.0/24, 10.21.0.0/24", "10.0.0.0/24, 10.30.0.0/24", "10.21.0.0/24");
	/* the order does not matter, nor host bits */
	minus_is("10.20.0.0/24, 10.0.0.0/24", "10.0.0.0/24, 10.20.0.9/24", "");
	/* the length does: a wider network is another one */
	minus_is("10.20.0.0/16", "10.20.0.0/24", "10.20.0.0/16");
	minus_is("10.20.0.0/24", "10.20.0.0/16", "10.20.0.0/24");
	/* families never match each other */
	minus_is("::/0", "0.0.0.0/0", "::/0");
	minus_is("fd00::/64, 10.0.0.0/8", "fd00::1/64", "10.0.0.0/8");
	/* each once */
	minus_is("10.1.0.0/16, 10.1.0.0/16, 10.2.0.0/16", "", "10.1.0.0/16, 10.2.0.0/16");
	minus_is("", "10.1.0.0/16", "");
	struct cl_prefix a, b;
	prefixes("10.0.0.0/24", &a);
	prefixes("10.0.0.0/25", &b);
	assert_false(cl_prefix_equal(&a, &b));
	assert_true(cl_prefix_equal(&a, &a));
}

static void routes_are(const char *address, const char *allowed, const char *want)
{
	struct cl_prefix addr, list[16], out[32];
	assert_int_equal(cl_prefix_parse(address, true, &addr), 0);
	size_t n = prefixes(allowed, list);
	list_is(out, cl_routes_for(&addr, list, n, out), want);
}

static void test_routes_for(void **state)
{
	(void)state;
	routes_are("10.0.0.2/32", "10.0.0.0/24, 10.20.0.0/24", "10.0.0.0/24, 10.20.0.0/24");
	/* what the address's own prefix routes needs no route */
	routes_are("10.0.0.2/24", "10.0.0.0/24, 10.20.0.0/24", "10.20.0.0/24");
	routes_are("10.0.0.2/24", "10.0.0.128/25", "");
	/* a full tunnel: two halves */
	routes_are("10.0.0.2/32", "0.0.0.0/0", "0.0.0.0/1, 128.0.0.0/1");
	routes_are("fd00::2/128", "::/0, fd00::/64", "::/1, 8000::/1, fd00::/64");
	/* so a change of networks is a difference of route lists */
	struct cl_prefix addr, before[4], after[4], rb[8], ra[8], out[8];
	assert_int_equal(cl_prefix_parse("10.0.0.2/32", true, &addr), 0);
	size_t nb = cl_routes_for(&addr, before, prefixes("10.0.0.0/24, 10.30.0.0/24", before), rb);
	size_t na = cl_routes_for(&addr, after, prefixes("10.0.0.0/24, 0.0.0.0/0", after), ra);
	list_is(out, cl_prefix_minus(ra, na, rb, nb, out), "0.0.0.0/1, 128.0.0.0/1");
	list_is(out, cl_prefix_minus(rb, nb, ra, na, out), "10.30.0.0/24");
}

static void test_vpn_api(void **state)
{
	(void)state;
	struct cl_endpoint e;
	assert_int_equal(cl_vpn_api_parse("https://10.0.0.1:8443", &e), 0);
	assert_string_equal(e.host, "10.0.0.1");
	assert_int_equal(e.port, 8443);
	assert_int_equal(cl_vpn_api_parse("https://[fd00::1]:443", &e), 0);
	assert_string_equal(e.host, "fd00::1");
	const char *bad[] = {"http://10.0.0.1:8443",
	                     "https://vpn.example.com:8443", /* a name would be resolved */
	                     "https://10.0.0.1",
	                     "https://10.0.0.1:8443/",
	                     "https://10.0.0.1:8443/api",
	                     "https://10.0.0.1:0",
	                     "https://fd00::1:443",
	                     "https://user@10.0.0.1:8443",
	                     "10.0.0.1:8443",
	                     ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cl_vpn_api_parse(bad[i], &e) == 0)
			fail_msg("accepted \"%s\"", bad[i]);
	assert_int_not_equal(cl_vpn_api_parse(NULL, &e), 0);
}

static void test_config_reply(void **state)
{
	(void)state;
	struct cl_config_reply r;
	struct cl_err err = {0};
	const char *good = "{\"device_id\": \"3f9c0a7be21d4c55\", \"state\": \"active\", "
	                   "\"role\": \"admin\", \"address\": \"10.0.0.2/32\", "
	                   "\"allowed_ips\": [\"10.0.0.0/24\", \"10.20.0.7/24\"], "
	                   "\"dns\": [\"10.0.0.1\"], \"vpn_api\": \"https://10.0.0.1:8443\", "
	                   "\"newer\": {\"fields\": true}}";
	assert_int_equal(cl_config_reply_decode(good, strlen(good), &r, &err), 0);
	assert_string_equal(r.device_id, "3f9c0a7be21d4c55");
	assert_string_equal(r.state, "active");
	assert_string_equal(r.role, "admin");
	list_is(r.allowed_ips, r.n_allowed_ips, "10.0.0.0/24, 10.20.0.0/24");
	assert_int_equal(r.n_dns, 1);
	assert_string_equal(r.dns[0], "10.0.0.1");
	assert_string_equal(r.vpn_api, "https://10.0.0.1:8443");

	const char *minimal = "{\"device_id\": 7, \"state\": \"active\", "
	                      "\"allowed_ips\": [\"10.0.0.0/24\"]}";
	assert_int_equal(cl_config_reply_decode(minimal, strlen(minimal), &r, &err), 0);
	assert_string_equal(r.device_id, "7");
	assert_string_equal(r.role, "");
	assert_string_equal(r.vpn_api, "");
	assert_int_equal(r.n_dns, 0);
	assert_false(r.rotate);
	const char *rotate = "{\"device_id\": 7, \"state\": \"active\", "
	                     "\"allowed_ips\": [\"10.0.0.0/24\"], \"rotate\": true}";
	assert_int_equal(cl_config_reply_decode(rotate, strlen(rotate), &r, &err), 0);
	assert_true(r.rotate);

	static const struct {
		const char *body, *field;
	} bad[] = {
	    {"[]", "body"},
	    {"{\"device_id\": \"x\"", "body"},
	    {"{\"state\": \"active\", \"allowed_ips\": [\"10.0.0.0/24\"]}", "device_id"},
	    {"{\"device_id\": \"x\", \"allowed_ips\": [\"10.0.0.0/24\"]}", "state"},
	    {"{\"device_id\": \"x\", \"state\": \"act\\u001bive\", \"allowed_ips\": "
	     "[\"10.0.0.0/24\"]}",
	     "state"},
	    {"{\"device_id\": \"x\", \"state\": \"active\", \"role\": \"a b\", \"allowed_ips\": "
	     "[\"10.0.0.0/24\"]}",
	     "role"},
	    {"{\"device_id\": \"x\", \"state\": \"active\", \"allowed_ips\": []}", "allowed_ips"},
	    {"{\"device_id\": \"x\", \"state\": \"active\", \"allowed_ips\": [\"10.0.0.0/33\"]}",
	     "allowed_ips"},
	    {"{\"device_id\": \"x\", \"state\": \"active\", \"allowed_ips\": [\"10.0.0.0/24\"], "
	     "\"dns\": 5}",
	     "dns"},
	    {"{\"device_id\": \"x\", \"state\": \"active\", \"allowed_ips\": [\"10.0.0.0/24\"], "
	     "\"vpn_api\": \"https://evil.example:443\"}",
	     "vpn_api"},
	    {"{\"device_id\": \"x\", \"device_id\": \"y\", \"state\": \"active\", "
	     "\"allowed_ips\": [\"10.0.0.0/24\"]}",
	     "body"},
	    {"{\"device_id\": \"x\", \"state\": \"active\", \"allowed_ips\": [\"10.0.0.0/24\"], "
	     "\"rotate\": \"yes\"}",
	     "rotate"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		if (cl_config_reply_decode(bad[i].body, strlen(bad[i].body), &r, &err) == 0)
			fail_msg("accepted %s", bad[i].body);
		assert_int_equal(err.exit_code, 4);
		if (!strstr(err.msg, bad[i].field))
			fail_msg("%s: message \"%s\" does not name %s", bad[i].body, err.msg,
			         bad[i].field);
	}
}

static const char redeem_json[] = "{\"device_id\": \"dev-7\", \"address\": \"10.0.0.2/32\","
                                  " \"server_public_key\": \"" SERVER_KEY "\","
                                  " \"endpoint\": \"198.51.100.1:51820\","
                                  " \"allowed_ips\": [\"10.0.0.0/24\"],"
                                  " \"keepalive\": 25, \"register_token\": \"tok\","
                                  " \"vpn_api\": \"https://10.0.0.1:8443\"}";

static void test_saved_for_sync(void **state)
{
	(void)state;
	struct cl_redeem_reply r;
	struct cl_profile p, back;
	struct cl_err err = {0};
	uint8_t key[32];
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	assert_int_equal(cl_redeem_reply_decode(redeem_json, strlen(redeem_json), &r, &err), 0);
	assert_string_equal(r.vpn_api, "https://10.0.0.1:8443");
	cl_profile_from_reply(&p, "https://gw.example:8443", &r, key);
	assert_string_equal(p.vpn_api, "https://10.0.0.1:8443");

	/* a pin, or a CA file: kept as comments that wg-quick ignores */
	struct cl_pin pin;
	assert_int_equal(
	    cl_pin_parse("C7:DB:98:0D:39:59:FE:00:89:F7:C3:FC:6C:23:D5:91:CB:A0:E2:26:C8:4C:B4:3E:"
	                 "B1:AB:0A:04:B5:4C:17:B5",
	                 &pin),
	    0);
	cl_pin_format(&pin, p.pin, sizeof(p.pin));
	assert_string_equal(p.pin,
	                    "c7db980d3959fe0089f7c3fc6c23d591cba0e226c84cb43eb1ab0a04b54c17b5");
	char *text = cl_profile_render(&p, true);
	assert_non_null(strstr(text, "# MeshgateVpnApi = https://10.0.0.1:8443\n"));
	assert_non_null(strstr(text, "# MeshgatePin = c7db980d"));
	assert_null(strstr(text, "MeshgateCA"));
	assert_int_equal(cl_profile_parse(text, &back, &err), 0);
	assert_string_equal(back.vpn_api, p.vpn_api);
	assert_string_equal(back.pin, p.pin);
	assert_string_equal(back.ca_file, "");
	cl_profile_text_free(text);

	p.pin[0] = '\0';
	snprintf(p.ca_file, sizeof(p.ca_file), "mg0.ca.pem");
	text = cl_profile_render(&p, true);
	assert_non_null(strstr(text, "# MeshgateCA = mg0.ca.pem\n"));
	assert_int_equal(cl_profile_parse(text, &back, &err), 0);
	assert_string_equal(back.ca_file, "mg0.ca.pem");
	assert_string_equal(back.pin, "");
	cl_profile_text_free(text);
	/* none of it in a config for the official apps */
	text = cl_profile_render(&p, false);
	assert_null(strstr(text, "Meshgate"));
	cl_profile_text_free(text);

	/* an SPKI pin round-trips too */
	assert_int_equal(cl_pin_parse("sha256//8Cgdk6i2hmSM5moghrjQERq0N1CqC9Ufw4wSNrQDjPM=", &pin),
	                 0);
	cl_pin_format(&pin, p.pin, sizeof(p.pin));
	assert_string_equal(p.pin, "sha256//8Cgdk6i2hmSM5moghrjQERq0N1CqC9Ufw4wSNrQDjPM=");

	/* a damaged address of the API is an error, not silently dropped */
	const char *damaged =
	    "# MeshgateVpnApi = https://gw.example:8443\n[Interface]\nPrivateKey = " PRIVATE_B64
	    "\nAddress = 10.0.0.2/32\n[Peer]\nPublicKey = " SERVER_KEY
	    "\nEndpoint = 198.51.100.1:51820\nAllowedIPs = 10.0.0.0/24\n";
	assert_int_not_equal(cl_profile_parse(damaged, &back, &err), 0);
	assert_non_null(strstr(err.msg, "line 1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prefix_diff),    cmocka_unit_test(test_routes_for),
	    cmocka_unit_test(test_vpn_api),        cmocka_unit_test(test_config_reply),
	    cmocka_unit_test(test_saved_for_sync),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
