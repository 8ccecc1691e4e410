/* A gateway node with several uplinks, on the device's side: "endpoints"
 * decoded (checked, the best first, each once), kept in the saved config,
 * and the agent's choices (client/wan.c): the node's next uplink when the
 * one in use is silent, the new best one after a re-sync. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_file.h"
#include "reply.h"
#include "wan.h"

#define KEY "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="

static int decode_gateways(const char *gateways, struct cl_redeem_reply *r, struct cl_err *err)
{
	char text[2048];
	snprintf(text, sizeof(text),
	         "{\"device_id\": \"dev-7\", \"address\": \"10.0.0.2/32\", \"server_public_key\": "
	         "\"" KEY "\", \"endpoint\": \"198.18.1.1:51820\", \"allowed_ips\": "
	         "[\"10.0.0.0/24\"], \"register_token\": \"t\", \"gateways\": %s}",
	         gateways);
	memset(err, 0, sizeof(*err));
	return cl_redeem_reply_decode(text, strlen(text), r, err);
}

static void format(const struct cl_endpoint *e, char *buf)
{
	cl_endpoint_format(e, buf, CL_ENDPOINT_STRLEN);
}

static void decodes_endpoints(void **state)
{
	(void)state;
	struct cl_redeem_reply *r = calloc(1, sizeof(*r));
	struct cl_err err;
	char text[CL_ENDPOINT_STRLEN];
	assert_int_equal(
	    decode_gateways("[{\"name\": \"gw\", \"public_key\": \"" KEY
	                    "\", \"endpoint\": \"198.18.2.1:51820\", \"active\": true, "
	                    "\"endpoints\": [\"198.18.2.1:51820\", \"198.18.1.1:51820\", "
	                    "\"198.18.1.1:51820\"]}, {\"name\": \"old\", \"public_key\": \"" KEY
	                    "\", \"endpoint\": \"198.18.3.1:51820\"}]",
	                    r, &err),
	    0);
	const struct cl_gateway *g = &r->nodes.gateways[0];
	assert_int_equal(g->n_endpoints, 2); /* the repeated one once */
	format(&g->endpoints[0], text);
	assert_string_equal(text, "198.18.2.1:51820");
	format(&g->endpoints[1], text);
	assert_string_equal(text, "198.18.1.1:51820");
	/* a node of an older gateway: its one endpoint */
	assert_int_equal(r->nodes.gateways[1].n_endpoints, 1);
	format(&r->nodes.gateways[1].endpoints[0], text);
	assert_string_equal(text, "198.18.3.1:51820");

	const char *bad[] = {
	    "[{\"name\": \"gw\", \"public_key\": \"" KEY
	    "\", \"endpoint\": \"198.18.2.1:51820\", \"endpoints\": \"198.18.1.1:51820\"}]",
	    "[{\"name\": \"gw\", \"public_key\": \"" KEY
	    "\", \"endpoint\": \"198.18.2.1:51820\", \"endpoints\": [\"198.18.1.1\"]}]",
	    "[{\"name\": \"gw\", \"public_key\": \"" KEY
	    "\", \"endpoint\": \"198.18.2.1:51820\", \"endpoints\": [7]}]",
	    "[{\"name\": \"gw\", \"public_key\": \"" KEY
	    "\", \"endpoint\": \"198.18.2.1:51820\", \"endpoints\": [\"a:1\", \"b:1\", \"c:1\", "
	    "\"d:1\", \"e:1\", \"f:1\", \"g:1\", \"h:1\", \"i:1\"]}]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(decode_gateways(bad[i], r, &err), -1);
		assert_non_null(strstr(err.msg, "gateways"));
	}
	free(r);
}

/* A key switch under way (docs/rotation.md): the next key and the time
 * to the switch are read; half of them, or a bad one, is a malformed
 * reply. */
#define KEY2 "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
static void decodes_the_next_key(void **state)
{
	(void)state;
	struct cl_redeem_reply *r = calloc(1, sizeof(*r));
	struct cl_err err;
	assert_int_equal(decode_gateways("[{\"name\": \"gw\", \"public_key\": \"" KEY
	                                 "\", \"endpoint\": \"198.18.2.1:51820\", "
	                                 "\"next_public_key\": \"" KEY2 "\", "
	                                 "\"switch_in_ms\": 4900}, "
	                                 "{\"name\": \"gw2\", \"public_key\": \"" KEY
	                                 "\", \"endpoint\": \"198.18.3.1:51820\"}]",
	                                 r, &err),
	                 0);
	const struct cl_gateway *g = &r->nodes.gateways[0];
	assert_true(g->has_next);
	assert_int_equal(g->next_public_key[0], 2);
	assert_int_equal(g->switch_in_ms, 4900);
	assert_false(r->nodes.gateways[1].has_next);

	const char *bad[] = {
	    "[{\"name\": \"gw\", \"public_key\": \"" KEY
	    "\", \"endpoint\": \"198.18.2.1:51820\", \"next_public_key\": \"" KEY2 "\"}]",
	    "[{\"name\": \"gw\", \"public_key\": \"" KEY
	    "\", \"endpoint\": \"198.18.2.1:51820\", \"switch_in_ms\": 100}]",
	    "[{\"name\": \"gw\", \"public_key\": \"" KEY
	    "\", \"endpoint\": \"198.18.2.1:51820\", \"next_public_key\": \"AAAA\", "
	    "\"switch_in_ms\": 100}]",
	    "[{\"name\": \"gw\", \"public_key\": \"" KEY
	    "\", \"endpoint\": \"198.18.2.1:51820\", \"next_public_key\": \"" KEY2 "\", "
	    "\"switch_in_ms\": -5}]",
	    "[{\"name\": \"gw\", \"public_key\": \"" KEY
	    "\", \"endpoint\": \"198.18.2.1:51820\", \"next_public_key\": \"" KEY2 "\", "
	    "\"switch_in_ms\": \"5s\"}]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(decode_gateways(bad[i], r, &err), -1);
		assert_true(strstr(err.msg, "next_public_key") || strstr(err.msg, "switch_in_ms"));
	}
	free(r);
}

static void saved_config_keeps_them(void **state)
{
	(void)state;
	struct cl_redeem_reply *r = calloc(1, sizeof(*r));
	struct cl_profile *p = calloc(1, sizeof(*p)), *back = calloc(1, sizeof(*back));
	struct cl_err err = {0};
	char path[] = "/tmp/meshgate-test-wan.XXXXXX", text[CL_ENDPOINT_STRLEN];
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(decode_gateways("[{\"name\": \"gw\", \"public_key\": \"" KEY
	                                 "\", \"endpoint\": \"198.18.1.1:51820\", \"endpoints\": "
	                                 "[\"198.18.1.1:51820\", \"198.18.2.1:51820\"]}]",
	                                 r, &err),
	                 0);
	memset(p->private_key, 7, sizeof(p->private_key));
	p->address = r->address;
	memcpy(p->server_public_key, r->server_public_key, CL_KEY_LEN);
	p->endpoint = r->endpoint;
	p->allowed_ips[0] = r->allowed_ips[0];
	p->n_allowed_ips = 1;
	p->nodes = r->nodes;
	assert_int_equal(cl_profile_save(path, p, &err), 0);
	assert_int_equal(cl_profile_load(path, back, &err), 0);
	unlink(path);
	assert_int_equal(back->nodes.n_gateways, 1);
	assert_int_equal(back->nodes.gateways[0].n_endpoints, 2);
	format(&back->nodes.gateways[0].endpoints[1], text);
	assert_string_equal(text, "198.18.2.1:51820");
	free(r);
	free(p);
	free(back);
}

static struct cl_gateway gateway(const char *const *endpoints, size_t n)
{
	struct cl_gateway g;
	memset(&g, 0, sizeof(g));
	snprintf(g.name, sizeof(g.name), "gw");
	for (size_t i = 0; i < n; i++)
		assert_int_equal(cl_endpoint_parse(endpoints[i], &g.endpoints[i]), 0);
	g.n_endpoints = n;
	g.endpoint = g.endpoints[0];
	return g;
}

static void falls_back_to_the_next_uplink(void **state)
{
	(void)state;
	const char *three[] = {"198.18.1.1:51820", "198.18.2.1:51820", "198.18.3.1:51820"};
	struct cl_gateway g = gateway(three, 3);
	struct cl_endpoint in_use = g.endpoints[0];
	unsigned tried = 0;
	char text[CL_ENDPOINT_STRLEN];
	const struct cl_endpoint *next = cl_wan_fallback(&g, &in_use, &tried, true);
	format(next, text);
	assert_string_equal(text, "198.18.2.1:51820");
	in_use = *next;
	next = cl_wan_fallback(&g, &in_use, &tried, true);
	format(next, text);
	assert_string_equal(text, "198.18.3.1:51820");
	in_use = *next;
	/* every one tried: another node's turn */
	assert_null(cl_wan_fallback(&g, &in_use, &tried, true));
	/* alone: round again, from the best */
	next = cl_wan_fallback(&g, &in_use, &tried, false);
	format(next, text);
	assert_string_equal(text, "198.18.1.1:51820");
	/* a node of one endpoint has no fallback */
	struct cl_gateway one = gateway(three, 1);
	tried = 0;
	assert_null(cl_wan_fallback(&one, &one.endpoint, &tried, false));
}

static void follows_a_new_best_uplink(void **state)
{
	(void)state;
	const char *a[] = {"198.18.1.1:51820", "198.18.2.1:51820"};
	const char *b[] = {"198.18.2.1:51820", "198.18.1.1:51820"};
	struct cl_gateway before = gateway(a, 2), after = gateway(b, 2);
	char text[CL_ENDPOINT_STRLEN];
	/* the gateway moved to wan2, the device is still on wan1: follow */
	const struct cl_endpoint *best = cl_wan_follow(&before, &after, &before.endpoints[0]);
	format(best, text);
	assert_string_equal(text, "198.18.2.1:51820");
	/* already there (it fell back by itself) */
	assert_null(cl_wan_follow(&before, &after, &after.endpoints[0]));
	/* the gateway's view did not change: the device's own choice stays */
	assert_null(cl_wan_follow(&before, &before, &before.endpoints[1]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(decodes_endpoints),
	    cmocka_unit_test(decodes_the_next_key),
	    cmocka_unit_test(saved_config_keeps_them),
	    cmocka_unit_test(falls_back_to_the_next_uplink),
	    cmocka_unit_test(follows_a_new_best_uplink),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
