/* The gateways devices are told and the probe responder (plugins/api
 * nodes.c, responder.c; lib/probe): the pure parts, then the plugin in the
 * mock core answering real UDP probes on the loopback. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <mg_mock.h>

#include "api.h"
#include "test_keys.h"
#include "probe.h"

static const char *plugin_path;

#define KEY1 "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define KEY2 "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="

/* ---- pure parts ---- */

static void probe_round_trip_and_malformed(void **state)
{
	(void)state;
	uint8_t req[PROBE_REQUEST_LEN], out[PROBE_ANSWER_MAX];
	uint64_t nonce = 0;
	probe_request_encode(0x0102030405060708ull, req);
	assert_int_equal(probe_request_decode(req, sizeof(req), &nonce), 0);
	assert_true(nonce == 0x0102030405060708ull);
	assert_int_equal(probe_request_decode(req, sizeof(req) - 1, &nonce), -EINVAL);
	req[5] = 1;
	assert_int_equal(probe_request_decode(req, sizeof(req), &nonce), -EINVAL);

	struct probe_answer a = {.nonce = 7, .epoch = 0xfedcba9876543210ull}, b;
	snprintf(a.node, sizeof(a.node), "gw1");
	snprintf(a.active, sizeof(a.active), "gw2");
	int n = probe_answer_encode(&a, out);
	assert_int_equal(n, 24 + 3 + 3);
	assert_int_equal(probe_answer_decode(out, (size_t)n, &b), 0);
	assert_true(b.nonce == 7 && b.epoch == a.epoch);
	assert_string_equal(b.node, "gw1");
	assert_string_equal(b.active, "gw2");
	/* a byte more or less, a name length that lies, a control character */
	assert_int_equal(probe_answer_decode(out, (size_t)n + 1, &b), -EINVAL);
	assert_int_equal(probe_answer_decode(out, (size_t)n - 1, &b), -EINVAL);
	out[6] = 0;
	assert_int_equal(probe_answer_decode(out, (size_t)n, &b), -EINVAL);
	out[6] = 3;
	out[25] = '\n';
	assert_int_equal(probe_answer_decode(out, (size_t)n, &b), -EINVAL);
	assert_string_equal(b.node, ""); /* nothing of a bad answer is kept */
	/* no name: nothing to send */
	a.node[0] = '\0';
	assert_int_equal(probe_answer_encode(&a, out), -EINVAL);
}

static void active_is_the_newest_master(void **state)
{
	(void)state;
	char active[64];
	json_t *failover = json_object();
	assert_int_equal(api_active_node(failover, active, sizeof(active)), -ENOENT);
	assert_string_equal(active, "");
	json_object_set_new(
	    failover, "gw1",
	    json_pack("{s:s, s:I}", "state", "master", "since_ms", (json_int_t)100));
	json_object_set_new(
	    failover, "gw2",
	    json_pack("{s:s, s:I}", "state", "backup", "since_ms", (json_int_t)300));
	assert_int_equal(api_active_node(failover, active, sizeof(active)), 0);
	assert_string_equal(active, "gw1");
	json_object_set_new(
	    failover, "gw3",
	    json_pack("{s:s, s:I}", "state", "master", "since_ms", (json_int_t)200));
	assert_int_equal(api_active_node(failover, active, sizeof(active)), 0);
	assert_string_equal(active, "gw3");
	json_object_set_new(failover, "gw3", json_pack("{s:s}", "state", "stopped"));
	assert_int_equal(api_active_node(failover, active, sizeof(active)), 0);
	assert_string_equal(active, "gw1");
	json_decref(failover);
}

static void gateways_list_nodes_with_a_wireguard_side(void **state)
{
	(void)state;
	json_t *records =
	    json_pack("{s:{s:s, s:s}, s:{s:s}, s:{s:s, s:s}}", "gw1", "wg_public_key", KEY1,
	              "wg_endpoint", "198.18.0.1:51820", "old", "ca", "x", "gw2", "wg_public_key",
	              KEY2, "wg_endpoint", "198.18.0.2:51820");
	json_t *g = api_gateways(records, "gw2");
	json_t *want =
	    json_pack("[{s:s, s:s, s:s, s:b}, {s:s, s:s, s:s, s:b}]", "name", "gw1", "public_key",
	              KEY1, "endpoint", "198.18.0.1:51820", "active", 0, "name", "gw2",
	              "public_key", KEY2, "endpoint", "198.18.0.2:51820", "active", 1);
	assert_true(json_equal(g, want));
	json_decref(g);
	g = api_gateways(records, NULL); /* no failover plugin: none active */
	json_object_set_new(json_array_get(want, 1), "active", json_false());
	assert_true(json_equal(g, want));
	json_decref(g);
	json_decref(want);
	json_decref(records);

	json_t *common = json_pack("{s:s}", "dns", "10.0.0.1");
	json_t *p1 = json_pack("{s:[s]}", "subnets", "10.20.0.0/24");
	json_t *p2 = json_pack("{s:[s]}", "subnets", "10.30.0.0/24");
	uint64_t e1 = api_config_epoch(common, p1);
	assert_true(e1 != 0);
	assert_true(e1 == api_config_epoch(common, p1));
	assert_true(e1 != api_config_epoch(common, p2));
	assert_true(e1 != api_config_epoch(common, NULL));
	json_decref(common);
	json_decref(p1);
	json_decref(p2);
}

/* The MTU a device tells in its probe, and the size probes of path MTU
 * discovery: an answer exactly as long as its probe; malformed ones refused. */
static void probe_mtu_and_size_probes(void **state)
{
	(void)state;
	uint8_t req[PROBE_REQUEST_LEN], buf[1500];
	uint64_t nonce = 0;
	unsigned mtu = 0;
	probe_request_encode_mtu(9, 1232, req);
	assert_int_equal(probe_request_decode_mtu(req, sizeof(req), &nonce, &mtu), 0);
	assert_true(nonce == 9 && mtu == 1232);
	probe_request_encode_mtu(9, 100, req); /* below PROBE_MTU_MIN */
	assert_int_equal(probe_request_decode_mtu(req, sizeof(req), &nonce, &mtu), -EINVAL);

	enum pmtu_probe_type type;
	assert_int_equal(pmtu_probe_encode(PMTU_PROBE, 77, 1272, buf), 0);
	assert_int_equal(pmtu_probe_decode(buf, 1272, &type, &nonce), 0);
	assert_true(type == PMTU_PROBE && nonce == 77);
	assert_int_equal(pmtu_probe_decode(buf, 1271, &type, &nonce), -EINVAL); /* length field */
	buf[600] = 1;
	assert_int_equal(pmtu_probe_decode(buf, 1272, &type, &nonce), -EINVAL); /* padding */
	assert_int_equal(pmtu_probe_encode(PMTU_ANSWER, 1, PMTU_PROBE_MIN - 1, buf), -EINVAL);
	assert_int_equal(pmtu_probe_encode(PMTU_ANSWER, 1, PMTU_PROBE_MAX + 1, buf), -EINVAL);
}

/* ---- the plugin in the mock core ---- */

static unsigned free_port(int type)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr = {htonl(INADDR_LOOPBACK)}};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, type, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/* The one descriptor the plugin watches: the responder's socket. */
static int watched_fd(struct mg_mock *m)
{
	int found = -1;
	for (int fd = 3; fd < 1024; fd++)
		if (mg_mock_fd_events(m, fd) > 0) {
			assert_int_equal(found, -1);
			found = fd;
		}
	return found;
}

/* A device's socket on address `from` (loopback), connected to the probe. */
static int device_socket(const char *from, unsigned port)
{
	struct sockaddr_in me = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	inet_pton(AF_INET, from, &me.sin_addr);
	inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
	to.sin_port = htons((uint16_t)port);
	assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
	return fd;
}

/* Sends a probe from `fd`, lets the plugin read it: 0 with the answer,
 * -1 when none came. */
static int probe(struct mg_mock *m, int fd, struct probe_answer *a)
{
	uint8_t req[PROBE_REQUEST_LEN], buf[512];
	probe_request_encode(42, req);
	assert_int_equal(send(fd, req, sizeof(req), 0), (ssize_t)sizeof(req));
	usleep(2000);
	mg_mock_fire_fd(m, watched_fd(m), 1 /* MG_FD_READ */);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 100) != 1)
		return -1;
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	assert_true(n > 0);
	assert_int_equal(probe_answer_decode(buf, (size_t)n, a), 0);
	assert_true(a->nonce == 42);
	return 0;
}

static void responder_answers_devices_only(void **state)
{
	(void)state;
	char err[512], listen[32];
	struct probe_answer a, b;
	static const char *const wg[] = {"wg", NULL}, *const devices[] = {"devices", NULL},
	                         *const policy[] = {"policy", NULL},
	                         *const failover[] = {"failover", NULL};
	struct mg_mock *m = mg_mock_new(NULL, err, sizeof(err));
	assert_non_null(m);
	mg_mock_set_node_name(m, "gw1");
	char seal[600];
	mock_add_keystore(m, seal, sizeof(seal));
	assert_int_equal(mg_mock_add_stub(m, "wireguard", wg), 0);
	assert_int_equal(mg_mock_add_stub(m, "preauth", devices), 0);
	assert_int_equal(mg_mock_add_stub(m, "firewall", policy), 0);
	assert_int_equal(mg_mock_add_stub(m, "failover", failover), 0);
	unsigned port = free_port(SOCK_DGRAM);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", free_port(SOCK_STREAM));
	/* the tunnel's responder alone: no size probes (pmtu_port 0) */
	json_t *cfg = json_pack("{s:s, s:[s], s:i, s:i}", "listen", listen, "names", "localhost",
	                        "probe_port", (int)port, "pmtu_port", 0);
	if (mg_mock_load(m, plugin_path, cfg, err, sizeof(err)) ||
	    mg_mock_start(m, err, sizeof(err)))
		fail_msg("%s", err);
	json_decref(cfg);
	assert_int_equal(watched_fd(m), -1); /* no gateway address yet: no probes */

	/* the "tunnel" is the loopback here: the gateway address 127.0.0.1 on lo */
	json_t *server =
	    json_pack("{s:s, s:s, s:s, s:s}", "public_key", KEY1, "endpoint", "198.51.100.1:51820",
	              "address", "127.0.0.1/8", "interface", "lo");
	assert_int_equal(mg_mock_state_put(m, "wireguard", "wg", "server", server), 0);
	json_decref(server);
	assert_true(watched_fd(m) >= 0);
	json_t *record = NULL;
	assert_int_equal(mg_mock_state_get(m, API_NODES_DB, "gw1", &record), 0);
	assert_string_equal(json_string_value(json_object_get(record, "wg_public_key")), KEY1);
	assert_string_equal(json_string_value(json_object_get(record, "wg_endpoint")),
	                    "198.51.100.1:51820");
	json_decref(record);

	/* not a device (yet): no answer */
	int dev = device_socket("127.0.0.2", port);
	assert_int_equal(probe(m, dev, &a), -1);
	/* devices as preauth announces them (device.changed, the record's
	 * members that matter) */
	json_t *device = json_pack("{s:s, s:s, s:s, s:s}", "id", "d1", "address", "127.0.0.2/32",
	                           "role", "dev", "state", "pending");
	assert_int_equal(mg_mock_publish(m, "device.changed", device), 0);
	assert_int_equal(probe(m, dev, &a), -1); /* pending: no tunnel yet */
	json_object_set_new(device, "state", json_string("active"));
	assert_int_equal(mg_mock_publish(m, "device.changed", device), 0);
	assert_int_equal(probe(m, dev, &a), 0);
	assert_string_equal(a.node, "gw1");
	assert_string_equal(a.active, "");
	assert_true(a.epoch != 0);

	/* a probe that is not one: dropped, nothing answered */
	assert_int_equal(send(dev, "MGP1", 4, 0), 4);
	usleep(2000);
	mg_mock_fire_fd(m, watched_fd(m), 1);
	struct pollfd p = {.fd = dev, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 50), 0);

	/* the role's networks change: another epoch; the same again: the same */
	json_t *pol = json_pack("{s:[s]}", "subnets", "10.20.0.0/24");
	assert_int_equal(mg_mock_state_put(m, "firewall", "policy", "dev", pol), 0);
	assert_int_equal(probe(m, dev, &b), 0);
	assert_true(b.epoch != a.epoch);
	a = b;
	assert_int_equal(probe(m, dev, &b), 0);
	assert_true(b.epoch == a.epoch);
	/* another role's policy: not this device's epoch */
	assert_int_equal(mg_mock_state_put(m, "firewall", "policy", "other", pol), 0);
	assert_int_equal(probe(m, dev, &b), 0);
	assert_true(b.epoch == a.epoch);
	json_decref(pol);

	/* a new node: another epoch (devices learn the gateway) */
	json_t *gw2 = json_pack("{s:s, s:s, s:s}", "node", "gw2", "wg_public_key", KEY2,
	                        "wg_endpoint", "198.51.100.2:51820");
	assert_int_equal(mg_mock_state_remote(m, API_NODES_DB, "gw2", gw2), 0);
	json_decref(gw2);
	assert_int_equal(probe(m, dev, &b), 0);
	assert_true(b.epoch != a.epoch);
	a = b;

	/* gw2 becomes the active node: the answer says so; the epoch stays */
	json_t *master = json_pack("{s:s, s:s, s:I, s:i}", "node", "gw2", "state", "master",
	                           "since_ms", (json_int_t)1000, "priority", 100);
	assert_int_equal(mg_mock_state_remote(m, API_FAILOVER_DB, "gw2", master), 0);
	json_decref(master);
	assert_int_equal(probe(m, dev, &b), 0);
	assert_string_equal(b.node, "gw1");
	assert_string_equal(b.active, "gw2");
	assert_true(b.epoch == a.epoch);

	/* the operator asks this device to rotate its key: its epoch alone
	 * changes, once; its rotation done: another change */
	int other = device_socket("127.0.0.3", port);
	json_t *peer = json_pack("{s:s, s:s, s:s, s:s}", "id", "d2", "address", "127.0.0.3/32",
	                         "role", "dev", "state", "active");
	assert_int_equal(mg_mock_publish(m, "device.changed", peer), 0);
	struct probe_answer o1, o2;
	assert_int_equal(probe(m, other, &o1), 0);
	assert_true(o1.epoch == a.epoch); /* the role's */
	json_object_set_new(device, "rotate_requested", json_integer(1));
	assert_int_equal(mg_mock_publish(m, "device.changed", device), 0);
	assert_int_equal(probe(m, dev, &b), 0);
	assert_true(b.epoch != a.epoch);
	assert_int_equal(probe(m, other, &o2), 0);
	assert_true(o2.epoch == o1.epoch);
	struct probe_answer requested = b;
	assert_int_equal(probe(m, dev, &b), 0);
	assert_true(b.epoch == requested.epoch);
	json_object_set_new(device, "rotated", json_integer(1));
	assert_int_equal(mg_mock_publish(m, "device.changed", device), 0);
	assert_int_equal(probe(m, dev, &b), 0);
	assert_true(b.epoch != requested.epoch && b.epoch != a.epoch);
	close(other);
	json_decref(peer);

	/* the device is deleted (on another node): no more answers */
	json_object_set_new(device, "state", json_string("deleted"));
	assert_int_equal(mg_mock_publish(m, "device.changed", device), 0);
	assert_int_equal(probe(m, dev, &b), -1);
	close(dev);
	json_decref(device);
	mg_mock_free(m);
	unlink(seal);
}

/* A node with several uplinks (the multiwan record): every endpoint, the
 * best one as "endpoint"; a malformed list is left out. */
static void gateways_carry_every_uplink(void **state)
{
	(void)state;
	json_t *wg = json_pack("{s:s, s:s}", "public_key", KEY1, "endpoint", "198.18.1.1:51820");
	json_t *wan = json_pack("{s:[s, s]}", "endpoints", "198.18.2.1:51820", "198.18.1.1:51820");
	json_t *record = json_object();
	api_node_record_add_wg(record, wg, wan);
	assert_string_equal(json_string_value(json_object_get(record, "wg_endpoint")),
	                    "198.18.2.1:51820");
	json_t *records = json_pack("{s:O}", "gw1", record);
	json_t *g = api_gateways(records, "gw1");
	json_t *want = json_pack("[{s:s, s:s, s:s, s:b, s:[s, s]}]", "name", "gw1", "public_key",
	                         KEY1, "endpoint", "198.18.2.1:51820", "active", 1, "endpoints",
	                         "198.18.2.1:51820", "198.18.1.1:51820");
	assert_true(json_equal(g, want));
	json_decref(g);
	json_decref(want);
	json_decref(records);
	json_decref(record);
	json_decref(wan);
	/* not a list of strings: the plain endpoint */
	wan = json_pack("{s:[i]}", "endpoints", 7);
	record = json_object();
	api_node_record_add_wg(record, wg, wan);
	assert_string_equal(json_string_value(json_object_get(record, "wg_endpoint")),
	                    "198.18.1.1:51820");
	assert_null(json_object_get(record, "wg_endpoints"));
	json_decref(record);
	json_decref(wan);
	json_decref(wg);
}

/* A gateway key switch under way: the next key and the node's time of the
 * switch reach the record and the gateways list, and so the config epoch;
 * each answer tells devices how long until the switch (0 once past); half
 * of it (a key without its time) reaches nothing. */
static void gateways_carry_the_next_key(void **state)
{
	(void)state;
	json_t *wg =
	    json_pack("{s:s, s:s, s:s, s:I}", "public_key", KEY1, "endpoint", "198.18.1.1:51820",
	              "next_public_key", KEY2, "switch_at_ms", (json_int_t)1000000);
	json_t *record = json_object();
	api_node_record_add_wg(record, wg, NULL);
	json_t *records = json_pack("{s:O}", "gw1", record);
	json_t *g = api_gateways(records, NULL);
	json_t *want = json_pack("[{s:s, s:s, s:s, s:b, s:s, s:I}]", "name", "gw1", "public_key",
	                         KEY1, "endpoint", "198.18.1.1:51820", "active", 0,
	                         "next_public_key", KEY2, "switch_at_ms", (json_int_t)1000000);
	assert_true(json_equal(g, want));

	/* before the rotation: the same node without a next key, another epoch */
	json_t *before_wg =
	    json_pack("{s:s, s:s}", "public_key", KEY1, "endpoint", "198.18.1.1:51820");
	json_t *before_record = json_object();
	api_node_record_add_wg(before_record, before_wg, NULL);
	json_t *before_records = json_pack("{s:O}", "gw1", before_record);
	json_t *before = api_gateways(before_records, NULL);
	json_t *common = json_pack("{s:O}", "gateways", g);
	json_t *before_common = json_pack("{s:O}", "gateways", before);
	assert_true(api_config_epoch(common, NULL) != api_config_epoch(before_common, NULL));

	/* an answer: the time left, by the node's clock; none left once past */
	json_t *answer = json_deep_copy(g);
	api_gateways_switch_in(answer, 995000);
	json_t *gw = json_array_get(answer, 0);
	assert_int_equal(json_integer_value(json_object_get(gw, "switch_in_ms")), 5000);
	assert_null(json_object_get(gw, "switch_at_ms"));
	assert_string_equal(json_string_value(json_object_get(gw, "next_public_key")), KEY2);
	json_decref(answer);
	answer = json_deep_copy(g);
	api_gateways_switch_in(answer, 1000250);
	gw = json_array_get(answer, 0);
	assert_int_equal(json_integer_value(json_object_get(gw, "switch_in_ms")), 0);
	json_decref(answer);
	answer = json_deep_copy(before);
	api_gateways_switch_in(answer, 995000); /* no switch: nothing added */
	assert_true(json_equal(answer, before));
	json_decref(answer);

	/* the key without its time: nothing to move to */
	json_object_del(wg, "switch_at_ms");
	json_t *half = json_object();
	api_node_record_add_wg(half, wg, NULL);
	assert_null(json_object_get(half, "wg_next_public_key"));
	assert_null(json_object_get(half, "wg_switch_at_ms"));

	json_decref(half);
	json_decref(common);
	json_decref(before_common);
	json_decref(before);
	json_decref(before_records);
	json_decref(before_record);
	json_decref(before_wg);
	json_decref(want);
	json_decref(g);
	json_decref(records);
	json_decref(record);
	json_decref(wg);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s meshgate-api.so\n", argv[0]);
		return 2;
	}
	plugin_path = argv[1];
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(probe_round_trip_and_malformed),
	    cmocka_unit_test(probe_mtu_and_size_probes),
	    cmocka_unit_test(active_is_the_newest_master),
	    cmocka_unit_test(gateways_list_nodes_with_a_wireguard_side),
	    cmocka_unit_test(gateways_carry_every_uplink),
	    cmocka_unit_test(gateways_carry_the_next_key),
	    cmocka_unit_test(responder_answers_devices_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
