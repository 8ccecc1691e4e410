/* The mesh plugin on the mock core over a fake data plane that records
 * what the plugin asks of the system: the node's record and its address
 * (allocated once, kept across restarts, a taken one skipped), one other
 * node's remote put/del changing exactly its peer and routes, the
 * services mesh.node.list and mesh.node.del; the mesh key's timed switch,
 * this node's (published, switched at its time, recorded) and another
 * node's (its peer replaced in one set margin ms after its time). */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mesh.h"
#include "mg_mock.h"

extern const struct mg_plugin mg_plugin_descriptor; /* the mesh's, linked in */

/* What the fake data plane was asked, one line a call. */
struct fake {
	json_t *calls;
	json_t *peers; /* public key -> allowed IPs, as the interface would have them */
	char public_key[WG_KEY_B64_LEN]; /* the interface's, from its private key */
	bool readable; /* read gives the peers (no handshake yet), else no device */
};

static struct fake fake;

static void record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void record(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	json_array_append_new(fake.calls, json_string(line));
}

static json_t *allowed_ips(const struct wg_peer *p)
{
	json_t *ips = json_array();
	for (size_t i = 0; i < p->n_allowed_ips; i++) {
		char a[INET_ADDRSTRLEN], text[64];
		inet_ntop(AF_INET, &p->allowed_ips[i].ip4, a, sizeof(a));
		snprintf(text, sizeof(text), "%s/%u", a, p->allowed_ips[i].cidr);
		json_array_append_new(ips, json_string(text));
	}
	return ips;
}

static int f_up(void *arg, const char *ifname, const wg_key key, int port, char *err, size_t errlen)
{
	wg_key pub;
	(void)arg, (void)err, (void)errlen;
	wg_key_public_from_private(pub, key);
	wg_key_to_base64(fake.public_key, pub);
	record("up %s %d", ifname, port);
	return 0;
}
static int f_key(void *arg, const char *ifname, const wg_key key, char *err, size_t errlen)
{
	wg_key pub;
	(void)arg, (void)err, (void)errlen;
	wg_key_public_from_private(pub, key);
	wg_key_to_base64(fake.public_key, pub);
	record("key %s %s", ifname, fake.public_key);
	return 0;
}
static int f_peer_replace(void *arg, const char *ifname, const wg_key old,
                          const struct wg_peer *peer, char *err, size_t errlen)
{
	char was[WG_KEY_B64_LEN], key[WG_KEY_B64_LEN];
	(void)arg, (void)ifname, (void)err, (void)errlen;
	wg_key_to_base64(was, old);
	wg_key_to_base64(key, peer->public_key);
	json_object_del(fake.peers, was);
	json_object_set_new(fake.peers, key, allowed_ips(peer));
	record("replace %s by %s keepalive %u", was, key, peer->persistent_keepalive);
	return 0;
}
static int f_address(void *arg, const char *ifname, const char *prefix, char *err, size_t errlen)
{
	(void)arg, (void)err, (void)errlen;
	record("address %s %s", ifname, prefix);
	return 0;
}
static int f_reconcile(void *arg, const char *ifname, const struct wg_peer *peers, size_t n,
                       char *err, size_t errlen)
{
	(void)arg, (void)ifname, (void)err, (void)errlen;
	json_object_clear(fake.peers);
	for (size_t i = 0; i < n; i++) {
		char key[WG_KEY_B64_LEN];
		wg_key_to_base64(key, peers[i].public_key);
		json_object_set_new(fake.peers, key, allowed_ips(&peers[i]));
	}
	record("reconcile %zu", n);
	return 0;
}
static int f_peer_set(void *arg, const char *ifname, const struct wg_peer *peer, char *err,
                      size_t errlen)
{
	char key[WG_KEY_B64_LEN];
	(void)arg, (void)ifname, (void)err, (void)errlen;
	wg_key_to_base64(key, peer->public_key);
	json_object_set_new(fake.peers, key, allowed_ips(peer));
	record("set %s keepalive %u", key, peer->persistent_keepalive);
	return 0;
}
static int f_peer_remove(void *arg, const char *ifname, const wg_key k, char *err, size_t errlen)
{
	char key[WG_KEY_B64_LEN];
	(void)arg, (void)ifname, (void)err, (void)errlen;
	wg_key_to_base64(key, k);
	json_object_del(fake.peers, key);
	record("remove %s", key);
	return 0;
}
static int f_route(void *arg, const char *ifname, const char *subnet, bool add, char *err,
                   size_t errlen)
{
	(void)arg, (void)err, (void)errlen;
	record("route %s %s %s", add ? "add" : "del", subnet, ifname);
	return 0;
}
static int f_nat(void *arg, const char *ifname, const char *vpn, const char *address, char *err,
                 size_t errlen)
{
	(void)arg, (void)err, (void)errlen;
	record("nat %s %s %s", ifname, vpn ? vpn : "-", address ? address : "-");
	return 0;
}
static int f_read(void *arg, const char *ifname, struct wg_device **dev, char *err, size_t errlen)
{
	const char *key;
	json_t *ips;
	(void)arg, (void)ifname, (void)err, (void)errlen;
	*dev = NULL; /* no handshakes */
	if (!fake.readable)
		return 0;
	*dev = calloc(1, sizeof(**dev));
	(*dev)->peers = calloc(json_object_size(fake.peers) + 1, sizeof(struct wg_peer));
	json_object_foreach(fake.peers, key, ips)
	{
		wg_key_from_base64((*dev)->peers[(*dev)->n_peers++].public_key, key);
	}
	return 0;
}
static void f_down(void *arg, const char *ifname)
{
	(void)arg;
	record("down %s", ifname);
}

static const struct mesh_dataplane fake_dp = {
    .up = f_up,
    .address = f_address,
    .peers_reconcile = f_reconcile,
    .peer_set = f_peer_set,
    .peer_remove = f_peer_remove,
    .peer_replace = f_peer_replace,
    .key = f_key,
    .route = f_route,
    .nat = f_nat,
    .read = f_read,
    .down = f_down,
};

static int fake_init(mg_ctx *ctx)
{
	return mesh_init_with(ctx, &fake_dp, &fake);
}

/* ---- fixture ---- */

struct fixture {
	struct mg_mock *mock;
	char dir[64], state[96], seal[96];
	const char *node; /* this node's name */
	struct mg_plugin desc;
};

static const char *B_KEY = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY=";
static const char *B_KEY2 = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

static json_t *config(void)
{
	return json_pack("{s:s, s:s, s:[s], s:s}", "endpoint", "198.18.0.1:51821", "subnet",
	                 "10.99.0.0/24", "subnets", "172.19.0.0/24", "interface", "mgmesh0");
}

static int open_mock(struct fixture *f, json_t *cfg)
{
	char err[256];
	f->mock = mg_mock_new(f->state, err, sizeof(err));
	assert_non_null(f->mock);
	mg_mock_set_node_name(f->mock, f->node);
	/* the mesh key comes from the secret service: the local keystore */
	json_t *keystore = json_pack("{s:s}", "seal_key_file", f->seal);
	int rc = mg_mock_load(f->mock, KEYSTORE_SO, keystore, err, sizeof(err));
	json_decref(keystore);
	if (!rc)
		rc = mg_mock_add(f->mock, &f->desc, cfg, err, sizeof(err));
	json_decref(cfg);
	if (!rc)
		rc = mg_mock_start(f->mock, err, sizeof(err));
	return rc;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/mesh-test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
	snprintf(f->seal, sizeof(f->seal), "%s/seal.key", f->dir);
	f->desc = mg_plugin_descriptor;
	f->desc.init = fake_init;
	f->node = "gw1";
	fake.calls = json_array();
	fake.peers = json_object();
	assert_int_equal(open_mock(f, config()), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	mg_mock_free(f->mock);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	json_decref(fake.calls);
	json_decref(fake.peers);
	free(f);
	return 0;
}

static size_t calls_starting(const char *prefix)
{
	size_t n = 0, i;
	json_t *c;
	json_array_foreach(fake.calls, i, c) n +=
	    !strncmp(json_string_value(c), prefix, strlen(prefix));
	return n;
}

static int has_call(const char *line)
{
	size_t i;
	json_t *c;
	json_array_foreach(fake.calls, i, c) if (!strcmp(json_string_value(c), line)) return 1;
	return 0;
}

static json_t *get(struct fixture *f, const char *db, const char *key)
{
	json_t *v = NULL;
	return mg_mock_state_get(f->mock, db, key, &v) ? NULL : v;
}

static json_t *node_b(const char *key, const char *subnet)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:i, s:[s]}", "name", "gw2", "public_key", key,
	                 "mesh_address", "10.99.0.7", "endpoint", "198.18.0.2:51821", "listen_port",
	                 51821, "subnets", subnet);
}

/* ---- tests ---- */

static void registers_with_one_address(void **state)
{
	struct fixture *f = *state;
	json_t *me = get(f, MESH_DB_NODES, "gw1");
	assert_non_null(me);
	assert_string_equal(json_string_value(json_object_get(me, "name")), "gw1");
	assert_string_equal(json_string_value(json_object_get(me, "mesh_address")), "10.99.0.1");
	assert_string_equal(json_string_value(json_object_get(me, "endpoint")), "198.18.0.1:51821");
	assert_string_equal(json_string_value(json_array_get(json_object_get(me, "subnets"), 0)),
	                    "172.19.0.0/24");
	assert_int_equal(strlen(json_string_value(json_object_get(me, "public_key"))), 44);
	json_t *claim = get(f, MESH_DB_ADDRESSES, "10.99.0.1");
	assert_non_null(claim);
	assert_string_equal(json_string_value(json_object_get(claim, "node")), "gw1");
	assert_int_equal(mg_mock_state_count(f->mock, MESH_DB_ADDRESSES, NULL), 1);
	assert_true(has_call("up mgmesh0 51821"));
	assert_true(has_call("address mgmesh0 10.99.0.1/24"));
	assert_true(has_call("reconcile 0"));
	assert_true(has_call("nat mgmesh0 - 10.99.0.1"));

	/* a restart keeps the key and the address, and writes nothing */
	char key[64];
	snprintf(key, sizeof(key), "%s", json_string_value(json_object_get(me, "public_key")));
	json_decref(me);
	json_decref(claim);
	mg_mock_free(f->mock);
	assert_int_equal(open_mock(f, config()), 0);
	assert_int_equal(mg_mock_event_count(f->mock, "state."), 0);
	me = get(f, MESH_DB_NODES, "gw1");
	assert_string_equal(json_string_value(json_object_get(me, "public_key")), key);
	assert_string_equal(json_string_value(json_object_get(me, "mesh_address")), "10.99.0.1");
	json_decref(me);

	/* new site subnets: the record changes, the address stays */
	mg_mock_free(f->mock);
	json_t *cfg = config();
	json_object_set_new(cfg, "subnets", json_pack("[s, s]", "172.19.0.0/24", "172.19.1.0/24"));
	assert_int_equal(open_mock(f, cfg), 0);
	me = get(f, MESH_DB_NODES, "gw1");
	assert_int_equal(json_array_size(json_object_get(me, "subnets")), 2);
	assert_string_equal(json_string_value(json_object_get(me, "mesh_address")), "10.99.0.1");
	assert_int_equal(mg_mock_state_count(f->mock, MESH_DB_ADDRESSES, NULL), 1);
	json_decref(me);
}

static void skips_a_taken_address(void **state)
{
	struct fixture *f = *state;
	/* gw1 holds 10.99.0.1, gw0 10.99.0.2: a new node gw3 gets 10.99.0.3 */
	json_t *claim = json_pack("{s:s}", "node", "gw0");
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_ADDRESSES, "10.99.0.2", claim), 0);
	json_decref(claim);
	mg_mock_free(f->mock);
	f->node = "gw3";
	assert_int_equal(open_mock(f, config()), 0);
	json_t *me = get(f, MESH_DB_NODES, "gw3");
	assert_string_equal(json_string_value(json_object_get(me, "mesh_address")), "10.99.0.3");
	json_decref(me);
	claim = get(f, MESH_DB_ADDRESSES, "10.99.0.2");
	assert_string_equal(json_string_value(json_object_get(claim, "node")), "gw0");
	json_decref(claim);
	claim = get(f, MESH_DB_ADDRESSES, "10.99.0.3");
	assert_string_equal(json_string_value(json_object_get(claim, "node")), "gw3");
	json_decref(claim);
	/* and the other node, gw1, is its peer */
	assert_true(has_call("reconcile 1"));
}

static void remote_put_and_del_change_one_peer(void **state)
{
	struct fixture *f = *state;
	json_array_clear(fake.calls);
	json_t *b = node_b(B_KEY, "172.20.0.0/24");
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw2", b), 0);
	json_decref(b);
	/* exactly one peer set, its route added, no full reconcile */
	assert_int_equal(json_array_size(fake.calls), 2);
	char line[128];
	snprintf(line, sizeof(line), "set %s keepalive %d", B_KEY, MESH_KEEPALIVE_S);
	assert_true(has_call(line));
	assert_true(has_call("route add 172.20.0.0/24 mgmesh0"));
	json_t *ips = json_object_get(fake.peers, B_KEY);
	assert_int_equal(json_array_size(ips), 2);
	assert_string_equal(json_string_value(json_array_get(ips, 0)), "10.99.0.7/32");
	assert_string_equal(json_string_value(json_array_get(ips, 1)), "172.20.0.0/24");

	/* another subnet and a new key: the old peer and route go */
	json_array_clear(fake.calls);
	b = node_b(B_KEY2, "172.21.0.0/24");
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw2", b), 0);
	json_decref(b);
	snprintf(line, sizeof(line), "remove %s", B_KEY);
	assert_true(has_call(line));
	assert_true(has_call("route del 172.20.0.0/24 mgmesh0"));
	assert_true(has_call("route add 172.21.0.0/24 mgmesh0"));
	assert_int_equal(calls_starting("set "), 1);
	assert_int_equal(json_object_size(fake.peers), 1);
	assert_non_null(json_object_get(fake.peers, B_KEY2));

	/* deleted: its peer and route go, nothing else */
	json_array_clear(fake.calls);
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw2", NULL), 0);
	assert_int_equal(json_array_size(fake.calls), 2);
	snprintf(line, sizeof(line), "remove %s", B_KEY2);
	assert_true(has_call(line));
	assert_true(has_call("route del 172.21.0.0/24 mgmesh0"));
	assert_int_equal(json_object_size(fake.peers), 0);
}

static void a_restart_reconciles_every_node(void **state)
{
	struct fixture *f = *state;
	json_t *b = node_b(B_KEY, "172.20.0.0/24");
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw2", b), 0);
	json_decref(b);
	mg_mock_free(f->mock);
	json_array_clear(fake.calls);
	json_object_clear(fake.peers);
	assert_int_equal(open_mock(f, config()), 0);
	assert_true(has_call("reconcile 1"));
	assert_true(has_call("route add 172.20.0.0/24 mgmesh0"));
	assert_non_null(json_object_get(fake.peers, B_KEY));
	assert_int_equal(calls_starting("set "), 0);
}

static void node_del_service(void **state)
{
	struct fixture *f = *state;
	json_t *reply, *b = node_b(B_KEY, "172.20.0.0/24");
	json_t *claim = json_pack("{s:s}", "node", "gw2");
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw2", b), 0);
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_ADDRESSES, "10.99.0.7", claim), 0);
	json_decref(b);
	json_decref(claim);

	json_t *req = json_pack("{s:s}", "name", "gw1");
	assert_int_equal(mg_mock_request(f->mock, "mesh.node.del", req, &reply), -EREMOTEIO);
	assert_string_equal(mg_reply_error(reply), "forbidden");
	json_decref(reply);
	json_decref(req);
	assert_int_equal(mg_mock_state_count(f->mock, MESH_DB_NODES, NULL), 2);

	req = json_pack("{s:s}", "name", "gw9");
	assert_int_equal(mg_mock_request(f->mock, "mesh.node.del", req, &reply), -EREMOTEIO);
	assert_string_equal(mg_reply_error(reply), "not_found");
	json_decref(reply);
	json_decref(req);

	req = json_pack("{s:i}", "name", 3);
	assert_int_equal(mg_mock_request(f->mock, "mesh.node.del", req, &reply), -EREMOTEIO);
	assert_string_equal(mg_reply_error(reply), "bad_request");
	json_decref(reply);
	json_decref(req);

	json_array_clear(fake.calls);
	req = json_pack("{s:s}", "name", "gw2");
	assert_int_equal(mg_mock_request(f->mock, "mesh.node.del", req, &reply), 0);
	json_decref(reply);
	json_decref(req);
	assert_int_equal(mg_mock_state_count(f->mock, MESH_DB_NODES, NULL), 1);
	assert_int_equal(mg_mock_state_count(f->mock, MESH_DB_ADDRESSES, NULL), 1);
	assert_null(get(f, MESH_DB_ADDRESSES, "10.99.0.7"));
	/* the local deletion's event takes the peer away here too */
	char line[128];
	snprintf(line, sizeof(line), "remove %s", B_KEY);
	assert_true(has_call(line));
}

static void node_list_service(void **state)
{
	struct fixture *f = *state;
	json_t *reply, *b = node_b(B_KEY, "172.20.0.0/24");
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw2", b), 0);
	json_decref(b);
	assert_int_equal(mg_mock_request(f->mock, "mesh.node.list", NULL, &reply), 0);
	json_t *nodes = json_object_get(reply, "nodes");
	assert_int_equal(json_array_size(nodes), 2);
	json_t *me = json_array_get(nodes, 0), *other = json_array_get(nodes, 1);
	assert_string_equal(json_string_value(json_object_get(me, "name")), "gw1");
	assert_true(json_is_true(json_object_get(me, "self")));
	assert_true(json_is_true(json_object_get(me, "reachable")));
	static const char *const contract[] = {"name",       "mesh_address", "endpoint",
	                                       "public_key", "reachable",    "last_handshake",
	                                       "subnets",    "self"};
	for (size_t i = 0; i < sizeof(contract) / sizeof(contract[0]); i++)
		assert_non_null(json_object_get(other, contract[i]));
	assert_string_equal(json_string_value(json_object_get(other, "name")), "gw2");
	assert_true(json_is_false(json_object_get(other, "self")));
	assert_true(json_is_false(json_object_get(other, "reachable"))); /* no handshake */
	json_decref(reply);
}

static void evicted_node_stays_out(void **state)
{
	struct fixture *f = *state;
	unsigned warnings = mg_mock_log_count(f->mock, MG_LOG_WARN);
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw1", NULL), 0);
	assert_int_equal(mg_mock_log_count(f->mock, MG_LOG_WARN), warnings + 1);
	mg_mock_advance(f->mock, 60000);
	assert_null(get(f, MESH_DB_NODES, "gw1"));
}

/* Two nodes that route one site are said, each time one of them changes:
 * against this node's own subnets and against the other nodes'. */
static void overlapping_sites_are_told(void **state)
{
	struct fixture *f = *state;
	unsigned warnings = mg_mock_log_count(f->mock, MG_LOG_WARN);
	json_t *b = node_b(B_KEY, "172.20.0.0/24");
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw2", b), 0);
	json_decref(b);
	assert_int_equal(mg_mock_log_count(f->mock, MG_LOG_WARN), warnings);
	/* gw4 claims a /16 over gw2's /24 */
	json_t *d = node_b(B_KEY2, "172.20.0.0/16");
	json_object_set_new(d, "name", json_string("gw4"));
	json_object_set_new(d, "mesh_address", json_string("10.99.0.8"));
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw4", d), 0);
	assert_int_equal(mg_mock_log_count(f->mock, MG_LOG_WARN), warnings + 1);
	/* then also this node's own 172.19.0.0/24 */
	json_object_set_new(d, "subnets", json_pack("[s, s]", "172.20.0.0/16", "172.19.0.128/25"));
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw4", d), 0);
	assert_int_equal(mg_mock_log_count(f->mock, MG_LOG_WARN), warnings + 3);
	json_decref(d);
}

static void bad_settings_are_refused(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[][2] = {
	    {"subnet", "10.99.0.1/24"}, {"subnet", "10.99.0.0/31"},
	    {"subnet", "fd00::/64"},    {"endpoint", "gateway:1"},
	    {"subnets", "172.19.0.0"},  {"interface", "a-name-too-long-x"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mg_mock_free(f->mock);
		json_t *cfg = config();
		if (!strcmp(bad[i][0], "subnets"))
			json_object_set_new(cfg, "subnets", json_pack("[s]", bad[i][1]));
		else
			json_object_set_new(cfg, bad[i][0], json_string(bad[i][1]));
		assert_int_not_equal(open_mock(f, cfg), 0);
		assert_int_equal(mg_mock_state_count(f->mock, MESH_DB_NODES, NULL), 1);
	}
}

static void record_helpers(void **state)
{
	struct mesh_subnet s;
	char err[128], out[INET_ADDRSTRLEN];
	(void)state;
	assert_int_equal(mesh_subnet_parse("10.99.0.0/30", &s, err, sizeof(err)), 0);
	assert_int_equal(mesh_subnet_hosts(&s), 2);
	assert_int_equal(mesh_subnet_host(&s, 1, out), 0);
	assert_string_equal(out, "10.99.0.2");
	assert_int_equal(mesh_subnet_host(&s, 2, out), -ERANGE);
	const char *theirs = NULL;
	json_t *a = json_pack("[s, s]", "172.19.0.0/24", "10.1.0.0/16");
	json_t *b = json_pack("[s, s]", "172.20.0.0/24", "10.1.200.0/24");
	assert_string_equal(mesh_subnets_overlap(a, b, &theirs), "10.1.0.0/16");
	assert_string_equal(theirs, "10.1.200.0/24");
	json_array_remove(b, 1);
	assert_null(mesh_subnets_overlap(a, b, &theirs));
	assert_null(mesh_subnets_overlap(a, NULL, &theirs));
	json_decref(a);
	json_decref(b);
	assert_true(mesh_subnet_has_host(&s, "10.99.0.1"));
	assert_false(mesh_subnet_has_host(&s, "10.99.0.3")); /* broadcast */
	assert_false(mesh_subnet_has_host(&s, "10.99.0.0"));
	assert_false(mesh_subnet_has_host(&s, "10.98.0.1"));
	char *text = mesh_render_nat("mgmesh0", "10.0.0.1/24", "10.99.0.1", 0);
	assert_non_null(strstr(text, "-A MG-MESH-SNAT -s 10.0.0.1/24 -o mgmesh0 -j SNAT "
	                             "--to-source 10.99.0.1\n"));
	assert_non_null(strstr(text, "-I POSTROUTING 1 -j MG-MESH-SNAT\n"));
	free(text);
	text = mesh_render_nat("mgmesh0", NULL, "10.99.0.1", 3);
	assert_null(strstr(text, "SNAT --to-source"));
	assert_null(strstr(text, "-I POSTROUTING"));
	assert_non_null(strstr(text, "-D POSTROUTING -j MG-MESH-SNAT\n-D POSTROUTING"));
	free(text);
}

/* ---- the mesh key's switch ---- */

static const char *field(json_t *o, const char *name)
{
	return json_string_value(json_object_get(o, name));
}

/* secret.get of this node's mesh key, through the keystore */
static json_t *mesh_secret(struct fixture *f)
{
	json_t *req = json_pack("{s:s}", "name", "mesh/mgmesh0"), *reply = NULL;
	assert_int_equal(mg_mock_request(f->mock, "secret.get", req, &reply), 0);
	json_decref(req);
	return reply;
}

static void public_of(const char *private_b64, char out[WG_KEY_B64_LEN])
{
	wg_key k, pub;
	assert_int_equal(wg_key_from_base64(k, private_b64), 0);
	wg_key_public_from_private(pub, k);
	wg_key_to_base64(out, pub);
}

/* secret.rotate as `meshgatectl key rotate --mesh` asks it: the next
 * version's public key */
static void rotate(struct fixture *f, char next_pub[WG_KEY_B64_LEN])
{
	json_t *req = json_pack("{s:s}", "name", "mesh/mgmesh0"), *reply = NULL;
	assert_int_equal(mg_mock_request(f->mock, "secret.rotate", req, &reply), 0);
	json_decref(req);
	json_decref(reply);
	json_t *secret = mesh_secret(f);
	public_of(field(json_object_get(secret, "next"), "key"), next_pub);
	json_decref(secret);
}

static void switches_its_key_at_the_published_time(void **state)
{
	struct fixture *f = *state;
	char old_pub[WG_KEY_B64_LEN], next_pub[WG_KEY_B64_LEN], line[160];
	snprintf(old_pub, sizeof(old_pub), "%s", fake.public_key);
	json_array_clear(fake.calls);
	uint64_t asked = mg_mock_now(f->mock);
	rotate(f, next_pub);

	/* published at once with the time of the switch: now + lead (5 s) */
	json_t *me = get(f, MESH_DB_NODES, "gw1");
	assert_string_equal(field(me, "public_key"), old_pub);
	assert_string_equal(field(me, MESH_NEXT_KEY), next_pub);
	assert_int_equal(json_integer_value(json_object_get(me, MESH_SWITCH_AT)), asked + 5000);
	json_decref(me);
	assert_int_equal(calls_starting("key "), 0);

	/* not a millisecond early */
	mg_mock_advance(f->mock, 4999);
	assert_int_equal(calls_starting("key "), 0);
	assert_string_equal(fake.public_key, old_pub);
	mg_mock_advance(f->mock, 1);
	snprintf(line, sizeof(line), "key mgmesh0 %s", next_pub);
	assert_true(has_call(line));
	assert_int_equal(json_array_size(fake.calls), 1); /* no peer touched */
	assert_string_equal(fake.public_key, next_pub);

	/* the record shows the new key alone; the service has it in use */
	me = get(f, MESH_DB_NODES, "gw1");
	assert_string_equal(field(me, "public_key"), next_pub);
	assert_null(json_object_get(me, MESH_NEXT_KEY));
	assert_null(json_object_get(me, MESH_SWITCH_AT));
	json_decref(me);
	json_t *secret = mesh_secret(f);
	assert_int_equal(json_integer_value(json_object_get(secret, "version")), 2);
	assert_null(json_object_get(secret, "next"));
	char in_use[WG_KEY_B64_LEN];
	public_of(field(secret, "key"), in_use);
	assert_string_equal(in_use, next_pub);
	json_decref(secret);

	/* a restart runs the new key and writes nothing */
	mg_mock_free(f->mock);
	assert_int_equal(open_mock(f, config()), 0);
	assert_string_equal(fake.public_key, next_pub);
	assert_int_equal(mg_mock_event_count(f->mock, "state."), 0);
}

static void a_restart_keeps_the_published_time(void **state)
{
	struct fixture *f = *state;
	char next_pub[WG_KEY_B64_LEN];
	rotate(f, next_pub);
	json_t *me = get(f, MESH_DB_NODES, "gw1");
	uint64_t at = (uint64_t)json_integer_value(json_object_get(me, MESH_SWITCH_AT));
	json_decref(me);

	/* meshgated restarts 2 s before the switch: the other nodes follow at
	 * the time they read, so the switch keeps it */
	mg_mock_free(f->mock);
	assert_int_equal(open_mock(f, config()), 0);
	assert_int_equal(mg_mock_event_count(f->mock, "state."), 0);
	me = get(f, MESH_DB_NODES, "gw1");
	assert_int_equal(json_integer_value(json_object_get(me, MESH_SWITCH_AT)), at);
	json_decref(me);
	json_array_clear(fake.calls);
	mg_mock_advance(f->mock, at - mg_mock_now(f->mock) - 1);
	assert_int_equal(calls_starting("key "), 0);
	mg_mock_advance(f->mock, 1);
	assert_int_equal(calls_starting("key "), 1);
	assert_string_equal(fake.public_key, next_pub);
}

/* The two ends of a pair keep alive a second apart: gw1 (this node) at
 * MESH_KEEPALIVE_S to gw2, one more to gw0, whose name sorts first. */
static void keepalives_of_a_pair_differ(void **state)
{
	struct fixture *f = *state;
	char line[128];
	json_t *a = node_b(B_KEY2, "172.21.0.0/24");
	json_object_set_new(a, "name", json_string("gw0"));
	json_object_set_new(a, "mesh_address", json_string("10.99.0.8"));
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw0", a), 0);
	json_decref(a);
	snprintf(line, sizeof(line), "set %s keepalive %d", B_KEY2, MESH_KEEPALIVE_S + 1);
	assert_true(has_call(line));
	json_t *b = node_b(B_KEY, "172.20.0.0/24");
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw2", b), 0);
	json_decref(b);
	snprintf(line, sizeof(line), "set %s keepalive %d", B_KEY, MESH_KEEPALIVE_S);
	assert_true(has_call(line));
}

/* gw2, a peer with B_KEY, announces B_KEY2 for 1 s from now: its record
 * as this node read it (a new reference). */
static json_t *gw2_announces_its_next_key(struct fixture *f)
{
	json_t *b = node_b(B_KEY, "172.20.0.0/24");
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw2", b), 0);
	uint64_t at = mg_mock_now(f->mock) + 1000;
	json_object_set_new(b, MESH_NEXT_KEY, json_string(B_KEY2));
	json_object_set_new(b, MESH_SWITCH_AT, json_integer((json_int_t)at));
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw2", b), 0);
	return b;
}

static void follows_another_nodes_switch_in_one_set(void **state)
{
	struct fixture *f = *state;
	char line[200];
	json_t *b = gw2_announces_its_next_key(f);
	json_array_clear(fake.calls);
	/* followed 50 ms (the margin) after gw2's switch, not before */
	mg_mock_advance(f->mock, 1049);
	assert_int_equal(json_array_size(fake.calls), 0);
	assert_non_null(json_object_get(fake.peers, B_KEY));
	mg_mock_advance(f->mock, 1);
	snprintf(line, sizeof(line), "replace %s by %s keepalive %d", B_KEY, B_KEY2,
	         MESH_KEEPALIVE_S);
	assert_true(has_call(line));
	assert_int_equal(json_array_size(fake.calls), 1); /* one set, no route touched */
	assert_int_equal(json_object_size(fake.peers), 1);
	json_t *ips = json_object_get(fake.peers, B_KEY2);
	assert_int_equal(json_array_size(ips), 2);
	assert_string_equal(json_string_value(json_array_get(ips, 0)), "10.99.0.7/32");
	assert_string_equal(json_string_value(json_array_get(ips, 1)), "172.20.0.0/24");

	/* gw2's record then shows the new key alone: nothing removed */
	json_array_clear(fake.calls);
	json_t *done = node_b(B_KEY2, "172.20.0.0/24");
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw2", done), 0);
	json_decref(done);
	assert_int_equal(calls_starting("remove "), 0);
	assert_int_equal(calls_starting("replace "), 0);
	assert_int_equal(json_object_size(fake.peers), 1);
	assert_non_null(json_object_get(fake.peers, B_KEY2));
	json_decref(b);
}

/* gw2's record shows its switch before this node's time to follow (its
 * write arrives a few ms after its switch): followed at its time + margin
 * all the same, never sooner (a sooner handshake crosses gw2's own). */
static void a_switch_told_early_is_followed_at_the_margin(void **state)
{
	struct fixture *f = *state;
	char line[200];
	json_decref(gw2_announces_its_next_key(f));
	mg_mock_advance(f->mock, 1005); /* gw2 switched at its time; its record now */
	json_array_clear(fake.calls);
	json_t *done = node_b(B_KEY2, "172.20.0.0/24");
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw2", done), 0);
	json_decref(done);
	assert_int_equal(json_array_size(fake.calls), 0);
	assert_non_null(json_object_get(fake.peers, B_KEY));
	mg_mock_advance(f->mock, 44);
	assert_int_equal(json_array_size(fake.calls), 0);
	mg_mock_advance(f->mock, 1);
	snprintf(line, sizeof(line), "replace %s by %s keepalive %d", B_KEY, B_KEY2,
	         MESH_KEEPALIVE_S);
	assert_true(has_call(line));
	assert_int_equal(json_object_size(fake.peers), 1);
	assert_non_null(json_object_get(fake.peers, B_KEY2));
}

static void a_late_switch_gets_a_handshake_again(void **state)
{
	struct fixture *f = *state;
	char line[200];
	json_t *b = gw2_announces_its_next_key(f);
	mg_mock_advance(f->mock, 1050); /* followed on time */
	json_array_clear(fake.calls);

	/* gw2 switched late: its record confirms it once this node's
	 * handshake was dropped; the new peer (no handshake) is set anew */
	fake.readable = true;
	json_t *done = node_b(B_KEY2, "172.20.0.0/24");
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw2", done), 0);
	snprintf(line, sizeof(line), "replace %s by %s keepalive %d", B_KEY2, B_KEY2,
	         MESH_KEEPALIVE_S);
	assert_true(has_call(line));
	assert_int_equal(calls_starting("replace "), 1);
	assert_int_equal(json_object_size(fake.peers), 1);

	/* the record written again (another change): no second time */
	json_array_clear(fake.calls);
	json_object_set_new(done, "endpoint", json_string("198.18.0.2:51822"));
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw2", done), 0);
	assert_int_equal(calls_starting("replace "), 0);
	fake.readable = false;
	json_decref(done);
	json_decref(b);
}

static void a_switch_read_late_is_followed_at_once(void **state)
{
	struct fixture *f = *state;
	char line[200];
	json_t *b = node_b(B_KEY, "172.20.0.0/24");
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw2", b), 0);
	json_array_clear(fake.calls);
	/* the record reaches this node 2 s after gw2's switch */
	json_object_set_new(b, MESH_NEXT_KEY, json_string(B_KEY2));
	json_object_set_new(b, MESH_SWITCH_AT,
	                    json_integer((json_int_t)mg_mock_now(f->mock) - 2000));
	assert_int_equal(mg_mock_state_remote(f->mock, MESH_DB_NODES, "gw2", b), 0);
	snprintf(line, sizeof(line), "replace %s by %s keepalive %d", B_KEY, B_KEY2,
	         MESH_KEEPALIVE_S);
	assert_true(has_call(line));
	assert_int_equal(json_object_size(fake.peers), 1);

	/* a restart meanwhile: the reconcile takes the key gw2 has now */
	json_decref(b);
	mg_mock_free(f->mock);
	assert_int_equal(open_mock(f, config()), 0);
	assert_int_equal(json_object_size(fake.peers), 1);
	assert_non_null(json_object_get(fake.peers, B_KEY2));
}

static void bad_switch_settings_are_refused(void **state)
{
	struct fixture *f = *state;
	mg_mock_free(f->mock);
	json_t *cfg = config();
	json_object_set_new(cfg, "key_switch_lead", json_string("soon"));
	assert_int_not_equal(open_mock(f, cfg), 0);
	mg_mock_free(f->mock);
	cfg = config();
	json_object_set_new(cfg, "key_switch_margin_ms", json_integer(-1));
	assert_int_not_equal(open_mock(f, cfg), 0);
	mg_mock_free(f->mock);
	assert_int_equal(open_mock(f, config()), 0); /* for the teardown */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(registers_with_one_address, setup, teardown),
	    cmocka_unit_test_setup_teardown(skips_a_taken_address, setup, teardown),
	    cmocka_unit_test_setup_teardown(remote_put_and_del_change_one_peer, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_restart_reconciles_every_node, setup, teardown),
	    cmocka_unit_test_setup_teardown(node_del_service, setup, teardown),
	    cmocka_unit_test_setup_teardown(node_list_service, setup, teardown),
	    cmocka_unit_test_setup_teardown(evicted_node_stays_out, setup, teardown),
	    cmocka_unit_test_setup_teardown(overlapping_sites_are_told, setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_settings_are_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(switches_its_key_at_the_published_time, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(a_restart_keeps_the_published_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(follows_another_nodes_switch_in_one_set, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(a_switch_told_early_is_followed_at_the_margin, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(keepalives_of_a_pair_differ, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_late_switch_gets_a_handshake_again, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_switch_read_late_is_followed_at_once, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(bad_switch_settings_are_refused, setup, teardown),
	    cmocka_unit_test(record_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
