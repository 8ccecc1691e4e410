/* The firewall plugin through the mock core, against the real iptables,
 * ipset and netlink of a network namespace this process makes for itself:
 * start and stop leave exactly what they should (a stop keeps the policy
 * by default, on_stop = "flush" and firewall.flush remove it), device
 * changes move set membership, routes and ports at runtime, reload, and
 * convergence from whatever an earlier run left, the rules following
 * route changes; and the fill of a role
 * set through netlink: all of 10,000 members, a refused member leaving the
 * set as it was, and packets the set admits never refused meanwhile. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fw.h"
#include "spawn.h"
#include "mg_mock.h"
#include "nl.h"

extern const struct mg_plugin mg_plugin_descriptor; /* the firewall's, linked in */

#define ADMIN_NET "172.19.0.0/16"

/* ---- the system, as the tests read it ---- */

static char *run(const char *cmd)
{
	char *argv[] = {"sh", "-c", (char *)cmd, NULL}, *out = NULL, err[512];
	if (mg_spawn_check(argv, NULL, 0, &out, err, sizeof(err)))
		fail_msg("%s: %s", cmd, err);
	return out;
}

/* iptables-save of the filter table without comments and counters. */
static char *save(void)
{
	return run("iptables-save -t filter | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'");
}

static int count(const char *text, const char *what)
{
	int n = 0;
	for (const char *c = text; (c = strstr(c, what)); c += strlen(what))
		n++;
	return n;
}

static char **sets(void)
{
	struct fw_nl *nl;
	char **names;
	assert_int_equal(fw_nl_open(&nl), 0);
	assert_int_equal(fw_nl_set_list(nl, FW_PREFIX, &names), 0);
	fw_nl_close(nl);
	return names;
}

static size_t n_sets(void)
{
	char **v = sets();
	size_t n = 0;
	while (v[n])
		n++;
	fw_strv_free(v);
	return n;
}

static int in_set(const char *set, const char *ip)
{
	struct fw_nl *nl;
	struct fw_prefix p;
	assert_int_equal(fw_prefix_parse(&p, ip, 0), 0);
	assert_int_equal(fw_nl_open(&nl), 0);
	int rc = fw_nl_set_test(nl, set, p.addr);
	fw_nl_close(nl);
	return rc;
}

/* Nothing of ours is left in the namespace. */
static void assert_clean(void)
{
	char *s = save();
	if (strstr(s, "MESHGATE"))
		fail_msg("left behind:\n%s", s);
	free(s);
	assert_int_equal(n_sets(), 0);
}

/* ---- the mock ---- */

static json_t *J(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	if (!j)
		fail_msg("bad test JSON '%s': %s", text, jerr.text);
	return j;
}

static void server(struct mg_mock *m, const char *iface)
{
	char text[256];
	snprintf(text, sizeof(text),
	         "{\"interface\": \"%s\", \"address\": \"10.0.0.1/24\", \"listen_port\": 51820}",
	         iface);
	json_t *s = J(text);
	assert_int_equal(mg_mock_state_put(m, "wireguard", "wg", "server", s), 0);
	json_decref(s);
}

/* A mock with stub wireguard (wg/server written) and preauth (devices),
 * the firewall added with `config` (JSON text, may be NULL) and, when
 * start, started. */
static struct mg_mock *fw_mock(const char *dir, const char *config, int start)
{
	char err[512];
	static const char *const wg_owns[] = {"wg", NULL}, *const pa_owns[] = {"devices", NULL};
	struct mg_mock *m = mg_mock_new(dir, err, sizeof(err));
	if (!m)
		fail_msg("%s", err);
	if (!getenv("MG_MOCK_LOG"))
		mg_mock_log_level(m, MG_LOG_WARN);
	assert_int_equal(mg_mock_add_stub(m, "wireguard", wg_owns), 0);
	assert_int_equal(mg_mock_add_stub(m, "preauth", pa_owns), 0);
	assert_int_equal(mg_mock_start(m, err, sizeof(err)), 0);
	server(m, "wgt0");
	json_t *c = config ? J(config) : NULL;
	if (mg_mock_add(m, &mg_plugin_descriptor, c, err, sizeof(err)))
		fail_msg("%s", err);
	json_decref(c);
	if (start && mg_mock_start(m, err, sizeof(err)))
		fail_msg("%s", err);
	return m;
}

#define POLICY                                                                             \
	"\"roles\": {\"developer\": [\"vpn\"], \"admin\": [\"vpn\", \"" ADMIN_NET "\"]}, " \
	"\"vpn_only_ports\": [\"8080/tcp\"], \"resync_interval\": 0"
/* Most tests check that a stop leaves nothing: they stop with "flush". */
#define CONFIG      "{" POLICY ", \"on_stop\": \"flush\"}"
#define CONFIG_KEEP "{" POLICY "}" /* on_stop: the default, "keep" */

static void device(struct mg_mock *m, const char *id, const char *user, const char *role,
                   const char *address, const char *state)
{
	char text[512];
	snprintf(text, sizeof(text),
	         "{\"id\": \"%s\", \"user\": \"%s\", \"role\": \"%s\", \"address\": \"%s\", "
	         "\"state\": \"%s\", \"public_key\": null}",
	         id, user, role, address, state);
	json_t *d = J(text);
	assert_int_equal(mg_mock_state_put(m, "preauth", "devices", id, d), 0);
	json_decref(d);
	json_t *ev = json_pack("{s:s, s:s, s:s}", "id", id, "role", role, "state", state);
	assert_int_equal(mg_mock_publish(m, "device.changed", ev), 0);
	json_decref(ev);
}

static json_t *call(struct mg_mock *m, const char *service, const char *request, int *rc)
{
	json_t *req = J(request), *reply;
	int r = mg_mock_request(m, service, req, &reply);
	json_decref(req);
	if (rc)
		*rc = r;
	return reply;
}

static const char *err_of(json_t *reply)
{
	const char *e = mg_reply_error(reply);
	return e ? e : "";
}

static json_t *policy(struct mg_mock *m, const char *role)
{
	json_t *p = NULL;
	mg_mock_state_get(m, "policy", role, &p);
	return p;
}

static int policy_has(struct mg_mock *m, const char *role, const char *subnet)
{
	json_t *p = policy(m, role), *s;
	size_t i;
	int found = 0;
	json_array_foreach(json_object_get(p, "subnets"), i, s) found |=
	    !strcmp(json_string_value(s), subnet);
	json_decref(p);
	return found;
}

/* ---- tests ---- */

static void test_start_stop(void **unused)
{
	(void)unused;
	assert_clean();
	struct mg_mock *m = fw_mock(NULL, CONFIG, 1);
	char *s = save();
	assert_int_equal(count(s, "-A INPUT -j MESHGATE-INPUT\n"), 1);
	assert_int_equal(count(s, "-A FORWARD -j MESHGATE-FORWARD\n"), 1);
	assert_non_null(strstr(s, "-A MESHGATE-INPUT -i wgt0 -j MESHGATE-IN-VPN"));
	/* the admin network lies behind fwadm (routing table); VPN-only ports are
	 * closed on the default route's interface */
	assert_non_null(strstr(s, "-A MESHGATE-FROM-VPN -d 172.19.0.0/16 -o fwadm -m set "
	                          "--match-set MESHGATE-admin src -j ACCEPT"));
	assert_non_null(strstr(s, "-A MESHGATE-INPUT -i fwpub -p tcp -m multiport --dports 8080 "
	                          "-j DROP"));
	assert_non_null(strstr(s, "-A MESHGATE-FROM-VPN -j DROP"));
	free(s);
	assert_int_equal(n_sets(), 2);
	assert_true(policy_has(m, "admin", ADMIN_NET));
	assert_true(policy_has(m, "admin", "10.0.0.0/24"));
	assert_true(policy_has(m, "developer", "10.0.0.0/24"));
	assert_false(policy_has(m, "developer", ADMIN_NET));

	json_t *st = call(m, "firewall.status", "{}", NULL);
	assert_string_equal(json_string_value(json_object_get(st, "vpn_interface")), "wgt0");
	assert_string_equal(json_string_value(json_object_get(st, "public_interface")), "fwpub");
	assert_null(json_object_get(st, "last_error"));
	json_decref(st);

	mg_mock_stop(m);
	assert_clean();
	mg_mock_free(m);
}

static void test_devices(void **unused)
{
	(void)unused;
	char dir[] = "/tmp/fwtest.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct mg_mock *m = fw_mock(dir, CONFIG, 1);
	device(m, "d1", "alice", "developer", "10.0.0.2/32", "pending");
	assert_int_equal(in_set("MESHGATE-developer", "10.0.0.2"), 0);
	device(m, "d1", "alice", "developer", "10.0.0.2/32", "active");
	assert_int_equal(in_set("MESHGATE-developer", "10.0.0.2"), 1);
	assert_int_equal(in_set("MESHGATE-admin", "10.0.0.2"), 0);
	device(m, "d2", "bob", "admin", "10.0.0.3/32", "active");
	assert_int_equal(in_set("MESHGATE-admin", "10.0.0.3"), 1);

	/* a role change moves the device from one set to the other */
	device(m, "d1", "alice", "admin", "10.0.0.2/32", "active");
	assert_int_equal(in_set("MESHGATE-developer", "10.0.0.2"), 0);
	assert_int_equal(in_set("MESHGATE-admin", "10.0.0.2"), 1);

	/* user.changed alone is enough: the devices are read from state */
	json_t *d = J("{\"id\": \"d1\", \"user\": \"alice\", \"role\": \"developer\", "
	              "\"address\": \"10.0.0.2/32\", \"state\": \"active\"}");
	assert_int_equal(mg_mock_state_put(m, "preauth", "devices", "d1", d), 0);
	json_decref(d);
	json_t *ev = J("{\"name\": \"alice\", \"role\": \"developer\", \"state\": \"active\"}");
	mg_mock_publish(m, "user.changed", ev);
	json_decref(ev);
	assert_int_equal(in_set("MESHGATE-developer", "10.0.0.2"), 1);
	assert_int_equal(in_set("MESHGATE-admin", "10.0.0.2"), 0);

	/* the event's payload is not trusted: state says disabled */
	d = J("{\"id\": \"d1\", \"user\": \"alice\", \"role\": \"developer\", \"address\": "
	      "\"10.0.0.2/32\", \"state\": \"disabled\"}");
	assert_int_equal(mg_mock_state_put(m, "preauth", "devices", "d1", d), 0);
	json_decref(d);
	ev = J("{\"id\": \"d1\", \"state\": \"active\"}");
	mg_mock_publish(m, "device.changed", ev);
	json_decref(ev);
	assert_int_equal(in_set("MESHGATE-developer", "10.0.0.2"), 0);

	/* a role no policy names: in no set, and nothing breaks */
	device(m, "d3", "carol", "guest", "10.0.0.4/32", "active");
	assert_int_equal(n_sets(), 2);
	/* deleted: gone from state, announced */
	mg_txn *txn;
	mg_ctx *pa = mg_mock_ctx(m, "preauth");
	assert_int_equal(mg_txn_begin(pa, 0, &txn), 0);
	assert_int_equal(mg_state_del(pa, txn, "devices", "d2"), 0);
	assert_int_equal(mg_txn_commit(pa, txn), 0);
	ev = J("{\"id\": \"d2\", \"state\": \"deleted\"}");
	mg_mock_publish(m, "device.changed", ev);
	json_decref(ev);
	assert_int_equal(in_set("MESHGATE-admin", "10.0.0.3"), 0);

	json_t *st = call(m, "firewall.status", "{}", NULL);
	assert_int_equal(json_integer_value(json_object_get(st, "devices")), 1); /* d3 */
	json_decref(st);

	/* changes made while the firewall is down are found at the next start */
	mg_mock_stop(m);
	assert_clean();
	mg_mock_free(m);
	m = fw_mock(dir, CONFIG, 0);
	device(m, "d4", "dave", "admin", "10.0.0.5/32", "active");
	device(m, "d1", "alice", "developer", "10.0.0.2/32", "active");
	char err[512];
	assert_int_equal(mg_mock_start(m, err, sizeof(err)), 0);
	assert_int_equal(in_set("MESHGATE-admin", "10.0.0.5"), 1);
	assert_int_equal(in_set("MESHGATE-developer", "10.0.0.2"), 1);
	assert_int_equal(in_set("MESHGATE-admin", "10.0.0.3"), 0);
	mg_mock_stop(m);
	assert_clean();
	mg_mock_free(m);
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	free(run(cmd));
}

static void test_routes_ports(void **unused)
{
	(void)unused;
	struct mg_mock *m = fw_mock(NULL, CONFIG, 1);
	int rc;
	device(m, "d1", "alice", "developer", "10.0.0.2/32", "active");

	/* a new network for two roles, its interface named */
	json_t *r = call(m, "firewall.route.add",
	                 "{\"subnet\": \"172.20.0.0/24\", \"via\": \"fwadm\", \"roles\": "
	                 "[\"developer\", \"admin\", \"developer\"]}",
	                 &rc);
	assert_int_equal(rc, 0);
	assert_true(json_is_true(json_object_get(r, "applied")));
	assert_int_equal(json_array_size(json_object_get(r, "roles")), 2);
	json_decref(r);
	char *s = save();
	assert_non_null(strstr(s, "-A MESHGATE-FROM-VPN -d 172.20.0.0/24 -o fwadm -m set "
	                          "--match-set MESHGATE-developer src -j ACCEPT"));
	assert_non_null(strstr(s, "-A MESHGATE-TO-VPN -s 172.20.0.0/24 -i fwadm -m set "
	                          "--match-set MESHGATE-developer dst -j ACCEPT"));
	free(s);
	assert_true(policy_has(m, "developer", "172.20.0.0/24"));
	assert_true(policy_has(m, "admin", "172.20.0.0/24"));
	/* the device keeps its membership across a rules change */
	assert_int_equal(in_set("MESHGATE-developer", "10.0.0.2"), 1);

	/* a route for a new role makes its set, with the devices it has */
	device(m, "d2", "ops1", "ops", "10.0.0.3/32", "active");
	r = call(m, "firewall.route.add", "{\"subnet\": \"172.19.4.0/24\", \"roles\": [\"ops\"]}",
	         &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(json_string_value(json_object_get(r, "interface")), "fwadm");
	json_decref(r);
	assert_int_equal(in_set("MESHGATE-ops", "10.0.0.3"), 1);
	assert_int_equal(n_sets(), 3);

	r = call(m, "firewall.route.list", "{}", &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(json_array_size(json_object_get(r, "routes")), 4);
	json_decref(r);

	/* bad requests change nothing */
	static const struct {
		const char *req, *code, *says;
	} bad[] = {
	    {"{\"subnet\": \"172.20.1.5/24\", \"roles\": [\"admin\"]}", "bad_request",
	     "did you mean 172.20.1.0/24"},
	    {"{\"subnet\": \"172.20.1.0/24\", \"roles\": []}", "bad_request", "roles"},
	    {"{\"subnet\": \"172.20.1.0/24\", \"roles\": [\"Admin\"]}", "bad_request", "'Admin'"},
	    {"{\"subnet\": \"172.20.1.0/24\", \"roles\": [\"admin\"], \"vai\": \"x\"}",
	     "bad_request", "'vai'"},
	    {"{\"subnet\": \"172.20.1.0/24\", \"roles\": [\"admin\"], \"via\": \"nope0\"}",
	     "bad_request", "nope0"},
	    {"{\"subnet\": 5, \"roles\": [\"admin\"]}", "bad_request", "subnet"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = call(m, "firewall.route.add", bad[i].req, &rc);
		assert_int_equal(rc, -EREMOTEIO);
		assert_string_equal(err_of(r), bad[i].code);
		const char *msg = json_string_value(json_object_get(r, "message"));
		if (!strstr(msg, bad[i].says))
			fail_msg("case %zu: '%s' lacks '%s'", i, msg, bad[i].says);
		json_decref(r);
	}
	assert_int_equal(mg_mock_state_count(m, "routes", NULL), 2);

	/* withdrawn: the rules and the policy records follow, the set of a role
	 * nothing names any more goes */
	r = call(m, "firewall.route.del", "{\"subnet\": \"172.20.0.0/24\"}", &rc);
	assert_int_equal(rc, 0);
	json_decref(r);
	r = call(m, "firewall.route.del", "{\"subnet\": \"172.19.4.0/24\"}", &rc);
	assert_int_equal(rc, 0);
	json_decref(r);
	s = save();
	assert_null(strstr(s, "172.20.0.0/24"));
	free(s);
	assert_false(policy_has(m, "developer", "172.20.0.0/24"));
	assert_null(policy(m, "ops"));
	assert_int_equal(n_sets(), 2);
	r = call(m, "firewall.route.del", "{\"subnet\": \"" ADMIN_NET "\"}", &rc);
	assert_string_equal(err_of(r), "not_found"); /* the config's */
	json_decref(r);

	/* VPN-only ports */
	r = call(m, "firewall.port.add", "{\"port\": \"9090/udp\"}", &rc);
	assert_int_equal(rc, 0);
	json_decref(r);
	s = save();
	assert_non_null(strstr(s, "-A MESHGATE-INPUT -i fwpub -p udp -m multiport --dports 9090 "
	                          "-j DROP"));
	assert_non_null(strstr(s, "-A MESHGATE-IN-VPN -p udp -m multiport --dports 9090 -j "
	                          "ACCEPT"));
	free(s);
	r = call(m, "firewall.port.list", "{}", &rc);
	assert_int_equal(json_array_size(json_object_get(r, "vpn_only")), 2);
	json_decref(r);
	r = call(m, "firewall.port.add", "{\"port\": \"9090\"}", &rc);
	assert_string_equal(err_of(r), "bad_request");
	json_decref(r);
	r = call(m, "firewall.port.del", "{\"port\": \"8080/tcp\"}", &rc);
	assert_string_equal(err_of(r), "not_found"); /* the config's */
	json_decref(r);
	r = call(m, "firewall.port.del", "{\"port\": \"9090/udp\"}", &rc);
	assert_int_equal(rc, 0);
	json_decref(r);
	s = save();
	assert_null(strstr(s, "9090"));
	free(s);

	mg_mock_stop(m);
	assert_clean();
	mg_mock_free(m);
}

/* In a cluster: routes and ports another node added or removed are
 * applied here as our own are; writes that lose races are tried again,
 * and without quorum they are refused with nothing changed. */
static void test_cluster(void **unused)
{
	(void)unused;
	struct mg_mock *m = fw_mock(NULL, CONFIG, 1);
	int rc;
	device(m, "d1", "alice", "developer", "10.0.0.2/32", "active");

	json_t *route =
	    J("{\"subnet\": \"172.20.0.0/24\", \"via\": \"fwadm\", \"roles\": [\"developer\"]}");
	assert_int_equal(mg_mock_state_remote(m, "routes", "172.20.0.0/24", route), 0);
	json_decref(route);
	char *s = save();
	assert_non_null(strstr(s, "-A MESHGATE-FROM-VPN -d 172.20.0.0/24 -o fwadm -m set "
	                          "--match-set MESHGATE-developer src -j ACCEPT"));
	free(s);
	assert_true(policy_has(m, "developer", "172.20.0.0/24"));
	assert_int_equal(in_set("MESHGATE-developer", "10.0.0.2"), 1);

	json_t *port = J("{\"port\": \"9090/udp\"}");
	assert_int_equal(mg_mock_state_remote(m, "ports", "9090/udp", port), 0);
	json_decref(port);
	s = save();
	assert_non_null(strstr(s, "-A MESHGATE-INPUT -i fwpub -p udp -m multiport --dports 9090 "
	                          "-j DROP"));
	free(s);

	assert_int_equal(mg_mock_state_remote(m, "routes", "172.20.0.0/24", NULL), 0);
	assert_int_equal(mg_mock_state_remote(m, "ports", "9090/udp", NULL), 0);
	s = save();
	assert_null(strstr(s, "172.20.0.0/24"));
	assert_null(strstr(s, "9090"));
	free(s);
	assert_false(policy_has(m, "developer", "172.20.0.0/24"));

	/* no quorum: "unavailable", nothing saved, nothing applied */
	mg_mock_fail_commits(m, -EHOSTUNREACH, 1);
	json_t *r = call(m, "firewall.route.add",
	                 "{\"subnet\": \"172.20.0.0/24\", \"via\": \"fwadm\", \"roles\": "
	                 "[\"developer\"]}",
	                 &rc);
	assert_string_equal(err_of(r), "unavailable");
	json_decref(r);
	assert_int_equal(mg_mock_state_count(m, "routes", NULL), 0);
	s = save();
	assert_null(strstr(s, "172.20.0.0/24"));
	free(s);

	/* lost races: tried again, then given up as "conflict" */
	mg_mock_fail_commits(m, -ESTALE, 2);
	r = call(m, "firewall.port.add", "{\"port\": \"9090/udp\"}", &rc);
	assert_int_equal(rc, 0);
	json_decref(r);
	assert_int_equal(mg_mock_state_count(m, "ports", NULL), 1);
	mg_mock_fail_commits(m, -ESTALE, 1000);
	r = call(m, "firewall.port.del", "{\"port\": \"9090/udp\"}", &rc);
	assert_string_equal(err_of(r), "conflict");
	json_decref(r);
	mg_mock_fail_commits(m, 0, 0);
	assert_int_equal(mg_mock_state_count(m, "ports", NULL), 1);

	mg_mock_stop(m);
	assert_clean();
	mg_mock_free(m);
}

/* Whatever an earlier run left (a crash, an older layout, a duplicate
 * hook, a stale set) is brought to exactly the policy; a second start
 * gives the same rules, byte for byte. */
/* The firewall's one watched fd: its news of route changes. */
static int routes_fd(struct mg_mock *m)
{
	json_t *r = mg_mock_registrations(m, "firewall");
	json_t *fds = json_object_get(r, "fds");
	assert_int_equal(json_array_size(fds), 1);
	int fd = (int)json_integer_value(json_array_get(fds, 0));
	json_decref(r);
	return fd;
}

static json_int_t timers(struct mg_mock *m)
{
	json_t *r = mg_mock_registrations(m, "firewall");
	json_int_t n = json_integer_value(json_object_get(r, "timers"));
	json_decref(r);
	return n;
}

#define SITE_RULE(iface)                                                                        \
	"-A MESHGATE-FROM-VPN -d 172.30.2.0/24 -o " iface " -m set --match-set MESHGATE-admin " \
	"src -j ACCEPT"

/* A role's subnet behind the default route at start that gets a route of
 * its own later (the mesh plugin routing another node's site over the
 * mesh) and loses it again: the rules follow the routing table at once,
 * not at the next resync (there is none here). */
static void test_routes_followed(void **unused)
{
	(void)unused;
	assert_clean();
	struct mg_mock *m = fw_mock(NULL,
	                            "{\"roles\": {\"admin\": [\"vpn\", \"172.30.2.0/24\"]}, "
	                            "\"resync_interval\": 0, \"on_stop\": \"flush\"}",
	                            1);
	char *s = save();
	assert_non_null(strstr(s, SITE_RULE("fwpub")));
	free(s);
	int fd = routes_fd(m);

	/* no news: nothing scheduled */
	json_int_t idle = timers(m);
	assert_int_equal(mg_mock_fire_fd(m, fd, MG_FD_READ), 0);
	assert_int_equal(timers(m), idle);

	free(run("ip link add fwmesh type veth peer name fwmesh-p && ip link set fwmesh-p up && "
	         "ip link set fwmesh up && ip route add 172.30.2.0/24 dev fwmesh"));
	assert_int_equal(mg_mock_fire_fd(m, fd, MG_FD_READ), 0);
	assert_int_equal(timers(m), idle + 1); /* the burst's one rendering */
	s = save();
	assert_non_null(strstr(s, SITE_RULE("fwpub"))); /* not before the burst is over */
	free(s);
	mg_mock_advance(m, 100);
	assert_int_equal(timers(m), idle);
	s = save();
	assert_non_null(strstr(s, SITE_RULE("fwmesh")));
	assert_null(strstr(s, SITE_RULE("fwpub")));
	free(s);

	free(run("ip route del 172.30.2.0/24 dev fwmesh"));
	assert_int_equal(mg_mock_fire_fd(m, fd, MG_FD_READ), 0);
	mg_mock_advance(m, 100);
	s = save();
	assert_non_null(strstr(s, SITE_RULE("fwpub")));
	assert_null(strstr(s, SITE_RULE("fwmesh")));
	free(s);

	mg_mock_stop(m);
	assert_clean();
	mg_mock_free(m);
	free(run("ip link del fwmesh"));
}

static void test_converge(void **unused)
{
	(void)unused;
	free(run("iptables -N MESHGATE-INPUT && iptables -A INPUT -j MESHGATE-INPUT && "
	         "iptables -A INPUT -j MESHGATE-INPUT && iptables -N MESHGATE-OLD && "
	         "iptables -A MESHGATE-OLD -j ACCEPT && iptables -A OUTPUT -j MESHGATE-OLD && "
	         "iptables -A INPUT -p tcp --dport 22 -j ACCEPT && "
	         "ipset create MESHGATE-gone hash:ip && ipset create other hash:ip"));
	struct mg_mock *m = fw_mock(NULL, CONFIG, 1);
	char *first = save();
	assert_int_equal(count(first, "-A INPUT -j MESHGATE-INPUT\n"), 1);
	assert_null(strstr(first, "MESHGATE-OLD"));
	/* the host's own rules and sets stay */
	assert_non_null(strstr(first, "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"));
	assert_int_equal(n_sets(), 2);
	/* our hook is first, before the host's rules */
	if (!strstr(first, " \n-A INPUT -j MESHGATE-INPUT\n-A INPUT -p tcp"))
		fail_msg("not first:\n%s", first);

	/* kill -9: nothing removed; the next start converges to the same */
	struct mg_mock *m2 = fw_mock(NULL, CONFIG, 1);
	char *second = save();
	assert_string_equal(first, second);
	free(second);
	mg_mock_stop(m2);
	mg_mock_free(m2);
	mg_mock_stop(m);
	mg_mock_free(m);
	char *s = save();
	assert_non_null(strstr(s, "--dport 22 -j ACCEPT"));
	free(s);
	assert_clean();
	free(run("iptables -D INPUT -p tcp --dport 22 -j ACCEPT && ipset list -n | grep -qx other "
	         "&& ipset destroy other"));
	free(first);
}

static void test_reload(void **unused)
{
	(void)unused;
	struct mg_mock *m = fw_mock(NULL, CONFIG, 1);
	char err[512];
	device(m, "d1", "alice", "ops", "10.0.0.2/32", "active");
	json_t *bad = J("{\"roles\": {\"ops\": [\"10.1.0.0/8\"]}}");
	assert_int_not_equal(mg_mock_reload(m, "firewall", bad, err, sizeof(err)), 0);
	json_decref(bad);
	assert_int_equal(n_sets(), 2);
	json_t *good = J("{\"roles\": {\"ops\": [\"vpn\", \"172.19.0.0/16 via fwadm\"]}, "
	                 "\"resync_interval\": 0, \"on_stop\": \"flush\"}");
	assert_int_equal(mg_mock_reload(m, "firewall", good, err, sizeof(err)), 0);
	json_decref(good);
	char **v = sets();
	assert_string_equal(v[0], "MESHGATE-ops");
	assert_null(v[1]);
	fw_strv_free(v);
	assert_int_equal(in_set("MESHGATE-ops", "10.0.0.2"), 1);
	assert_true(policy_has(m, "ops", ADMIN_NET));
	assert_null(policy(m, "admin"));
	char *s = save();
	assert_null(strstr(s, "8080")); /* no VPN-only ports any more */
	free(s);
	mg_mock_stop(m);
	assert_clean();
	mg_mock_free(m);
}

/* A start without wg/server (the default config): refused, with an error
 * logged. */
static void start_refused(void)
{
	char err[512];
	static const char *const wg_owns[] = {"wg", NULL};
	struct mg_mock *m = mg_mock_new(NULL, err, sizeof(err));
	mg_mock_log_level(m, MG_LOG_ERROR + 0);
	assert_int_equal(mg_mock_add_stub(m, "wireguard", wg_owns), 0);
	assert_int_equal(mg_mock_add(m, &mg_plugin_descriptor, NULL, err, sizeof(err)), 0);
	assert_int_not_equal(mg_mock_start(m, err, sizeof(err)), 0);
	assert_true(mg_mock_log_count(m, MG_LOG_ERROR) > 0);
	mg_mock_free(m);
}

/* Without wg/server the firewall cannot know what to protect: it refuses
 * to start, says why, and leaves nothing. */
static void test_no_server(void **unused)
{
	(void)unused;
	start_refused();
	assert_clean();
}

/* A stop keeps the policy as applied (on_stop = "keep", the default): the
 * same rules, the sets with their devices, as a crash leaves them; a
 * refused start leaves them too; the next start adopts them. The
 * firewall.flush service removes everything while the plugin runs, and
 * nothing comes back by itself (a change, a device) until a reload. */
static void test_stop_keeps(void **unused)
{
	(void)unused;
	char dir[] = "/tmp/fwtest.XXXXXX", err[512];
	int rc;
	assert_non_null(mkdtemp(dir));
	struct mg_mock *m = fw_mock(dir, CONFIG_KEEP, 1);
	device(m, "d1", "alice", "developer", "10.0.0.2/32", "active");
	char *applied = save();
	mg_mock_stop(m);
	mg_mock_free(m);
	char *s = save();
	assert_string_equal(s, applied);
	free(s);
	assert_int_equal(n_sets(), 2);
	assert_int_equal(in_set("MESHGATE-developer", "10.0.0.2"), 1);

	start_refused();
	s = save();
	assert_string_equal(s, applied);
	free(s);
	assert_int_equal(in_set("MESHGATE-developer", "10.0.0.2"), 1);

	/* adopted: the same rules, byte for byte, one hook each */
	m = fw_mock(dir, CONFIG_KEEP, 1);
	s = save();
	assert_string_equal(s, applied);
	assert_int_equal(count(s, "-A INPUT -j MESHGATE-INPUT\n"), 1);
	assert_int_equal(count(s, "-A FORWARD -j MESHGATE-FORWARD\n"), 1);
	free(s);
	assert_int_equal(n_sets(), 2);
	assert_int_equal(in_set("MESHGATE-developer", "10.0.0.2"), 1);

	/* a bad flush changes nothing */
	json_t *r = call(m, "firewall.flush", "{\"now\": true}", &rc);
	assert_int_equal(rc, -EREMOTEIO);
	assert_string_equal(err_of(r), "bad_request");
	json_decref(r);
	s = save();
	assert_string_equal(s, applied);
	free(s);

	r = call(m, "firewall.flush", "{}", &rc);
	assert_int_equal(rc, 0);
	assert_true(json_is_true(json_object_get(r, "flushed")));
	json_decref(r);
	assert_clean();
	r = call(m, "firewall.status", "{}", NULL);
	assert_true(json_is_true(json_object_get(r, "flushed")));
	json_decref(r);

	/* flushed: a change is saved and says why it is not applied; a device
	 * changes no set */
	r = call(m, "firewall.port.add", "{\"port\": \"9090/udp\"}", &rc);
	assert_int_equal(rc, 0);
	assert_false(json_is_true(json_object_get(r, "applied")));
	assert_non_null(strstr(json_string_value(json_object_get(r, "apply_error")), "flush"));
	json_decref(r);
	device(m, "d2", "bob", "admin", "10.0.0.3/32", "active");
	assert_clean();

	/* a reload applies everything again, the change and the devices too */
	json_t *c = J(CONFIG_KEEP);
	assert_int_equal(mg_mock_reload(m, "firewall", c, err, sizeof(err)), 0);
	json_decref(c);
	s = save();
	assert_int_equal(count(s, "-A INPUT -j MESHGATE-INPUT\n"), 1);
	assert_non_null(strstr(s, "--dports 9090 -j DROP"));
	free(s);
	assert_int_equal(in_set("MESHGATE-developer", "10.0.0.2"), 1);
	assert_int_equal(in_set("MESHGATE-admin", "10.0.0.3"), 1);
	r = call(m, "firewall.status", "{}", NULL);
	assert_false(json_is_true(json_object_get(r, "flushed")));
	json_decref(r);

	/* flushed, then stopped: nothing to keep */
	json_decref(call(m, "firewall.flush", "{}", &rc));
	assert_int_equal(rc, 0);
	mg_mock_stop(m);
	assert_clean();
	mg_mock_free(m);
	free(applied);
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	free(run(cmd));
}

/* ---- the fill of a role set (fw_nl_set_replace) ---- */

#define FILL_SET "MESHGATE-fill"
#define FILL_N   10000

/* 10.1.0.1 and on, `shift` further: FILL_N addresses, none 0.0.0.0. */
static uint32_t *fill_addrs(uint32_t shift)
{
	uint32_t *a = malloc(FILL_N * sizeof(*a));
	assert_non_null(a);
	for (uint32_t i = 0; i < FILL_N; i++)
		a[i] = (10u << 24 | 1u << 16) + 1 + shift + i;
	return a;
}

/* "Number of entries: N" of `ipset list -t`: what the kernel holds. */
static long set_entries(const char *set)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "ipset list -t %s | sed -n 's/^Number of entries: //p'", set);
	char *out = run(cmd);
	long n = strtol(out, NULL, 10);
	free(out);
	return n;
}

static int addr_in(struct fw_nl *nl, const char *set, uint32_t addr)
{
	return fw_nl_set_test(nl, set, addr);
}

static void test_set_replace(void **unused)
{
	(void)unused;
	struct fw_nl *nl;
	size_t refused;
	uint32_t *old = fill_addrs(0), *fresh = fill_addrs(FILL_N);
	assert_int_equal(fw_nl_open(&nl), 0);

	/* from nothing: the set is made, all 10,000 land, the swap set is gone */
	assert_int_equal(fw_nl_set_replace(nl, FILL_SET, old, FILL_N, &refused), 0);
	assert_int_equal(set_entries(FILL_SET), FILL_N);
	assert_int_equal(addr_in(nl, FILL_SET, old[0]), 1);
	assert_int_equal(addr_in(nl, FILL_SET, old[FILL_N - 1]), 1);
	assert_int_equal(addr_in(nl, FW_SET_SWAP, old[0]), -ENOENT);

	/* again with other members: exactly those (the old ones went) */
	assert_int_equal(fw_nl_set_replace(nl, FILL_SET, fresh, FILL_N, &refused), 0);
	assert_int_equal(set_entries(FILL_SET), FILL_N);
	assert_int_equal(addr_in(nl, FILL_SET, old[0]), 0);
	assert_int_equal(addr_in(nl, FILL_SET, fresh[FILL_N - 1]), 1);

	/* a member the kernel refuses (0.0.0.0, in the third batch): that one is
	 * named, the set keeps what it had, nothing is left behind */
	old[7777] = 0;
	int rc = fw_nl_set_replace(nl, FILL_SET, old, FILL_N, &refused);
	assert_true(rc < 0);
	assert_int_equal(refused, 7777);
	assert_non_null(strstr(fw_nl_strerror(rc), "0.0.0.0"));
	assert_int_equal(set_entries(FILL_SET), FILL_N);
	assert_int_equal(addr_in(nl, FILL_SET, fresh[0]), 1);
	assert_int_equal(addr_in(nl, FILL_SET, old[1]), 0);
	assert_int_equal(addr_in(nl, FW_SET_SWAP, old[0]), -ENOENT);

	/* no set for a name ipset cannot take, nor for the swap set itself */
	assert_int_equal(fw_nl_set_replace(nl, "MESHGATE-a-name-far-too-long-for-ipset", fresh,
	                                   FILL_N, &refused),
	                 -EINVAL);
	assert_int_equal(fw_nl_set_replace(nl, FW_SET_SWAP, fresh, FILL_N, &refused), -EINVAL);
	assert_int_equal(addr_in(nl, FW_SET_SWAP, old[0]), -ENOENT);

	/* empty is a fill too */
	assert_int_equal(fw_nl_set_replace(nl, FILL_SET, NULL, 0, &refused), 0);
	assert_int_equal(set_entries(FILL_SET), 0);
	assert_int_equal(fw_nl_set_destroy(nl, FILL_SET), 0);
	fw_nl_close(nl);
	free(old);
	free(fresh);
	assert_clean();
}

/* Sends UDP to 127.0.0.2 (which only the set lets out) until told to
 * stop, counting the packets sent and the ones the rules refused. */
struct sender {
	volatile int stop;
	long sent, refused;
};

static void *send_loop(void *arg)
{
	struct sender *s = arg;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
	to.sin_addr.s_addr = htonl(0x7f000002);
	while (fd >= 0 && !s->stop) {
		if (sendto(fd, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)) == 1)
			s->sent++;
		else if (errno == EPERM)
			s->refused++;
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void sender_run(struct sender *s, pthread_t *t)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(pthread_create(t, NULL, send_loop, s), 0);
	while (s->sent < 100 && !s->refused)
		usleep(1000);
}

static void sender_stop(struct sender *s, pthread_t t)
{
	s->stop = 1;
	assert_int_equal(pthread_join(t, NULL), 0);
}

/* While the set is refilled again and again, a flow it admits is never
 * refused: no moment with the set empty or partly filled. (The same
 * sender sees a flush of the set, which shows it would see a gap.) */
static void test_replace_keeps_traffic(void **unused)
{
	(void)unused;
	struct fw_nl *nl;
	struct sender s;
	pthread_t t;
	size_t refused;
	uint32_t *addrs = fill_addrs(0);
	addrs[FILL_N / 2] = 0x7f000002;
	assert_int_equal(fw_nl_open(&nl), 0);
	assert_int_equal(fw_nl_set_replace(nl, FILL_SET, addrs, FILL_N, &refused), 0);
	free(run("iptables -A OUTPUT -d 127.0.0.2 -p udp --dport 9 -m set ! --match-set " FILL_SET
	         " dst -j DROP"));

	sender_run(&s, &t);
	for (int i = 0; i < 20; i++)
		assert_int_equal(fw_nl_set_replace(nl, FILL_SET, addrs, FILL_N, &refused), 0);
	sender_stop(&s, t);
	print_message("%ld packets sent during 20 fills of %d members, %ld refused\n", s.sent,
	              FILL_N, s.refused);
	assert_true(s.sent > 100);
	assert_int_equal(s.refused, 0);

	/* the control: emptied for a moment, the sender sees it */
	sender_run(&s, &t);
	free(run("ipset flush " FILL_SET " && sleep 0.05 && ipset add " FILL_SET " 127.0.0.2"));
	sender_stop(&s, t);
	assert_true(s.refused > 0);

	free(run("iptables -D OUTPUT -d 127.0.0.2 -p udp --dport 9 -m set ! --match-set " FILL_SET
	         " dst -j DROP"));
	assert_int_equal(fw_nl_set_destroy(nl, FILL_SET), 0);
	fw_nl_close(nl);
	free(addrs);
	assert_clean();
}

int main(void)
{
	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "SKIP: needs root for a network namespace (%s)\n", strerror(errno));
		return 77;
	}
	/* the namespace: lo, an admin network, a public side with the default
	 * route (veth pairs: this kernel may have no dummy links) */
	if (system("ip link set lo up && "
	           "ip link add fwadm type veth peer name fwadm-p && ip link set fwadm-p up && "
	           "ip addr add 172.19.0.1/16 dev fwadm && ip link set fwadm up && "
	           "ip link add fwpub type veth peer name fwpub-p && ip link set fwpub-p up && "
	           "ip addr add 198.18.0.1/24 dev fwpub && ip link set fwpub up && "
	           "ip route add default via 198.18.0.254")) {
		fprintf(stderr, "cannot set up the test namespace\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_start_stop),      cmocka_unit_test(test_devices),
	    cmocka_unit_test(test_routes_ports),    cmocka_unit_test(test_cluster),
	    cmocka_unit_test(test_converge),        cmocka_unit_test(test_reload),
	    cmocka_unit_test(test_no_server),       cmocka_unit_test(test_stop_keeps),
	    cmocka_unit_test(test_set_replace),     cmocka_unit_test(test_replace_keeps_traffic),
	    cmocka_unit_test(test_routes_followed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
