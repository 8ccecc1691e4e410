/* The failover plugin's pure parts (VIP syntax, keepalived's config, the
 * notify lines, the active node) and the plugin on the mock core over a
 * fake system that records what it is asked: keepalived started once this
 * node has its mesh address, reloaded when a node joins, notify lines
 * through the real fifo turned into records and vip.* events, a record
 * the cluster refused written again, bad settings refused, "stopped" on
 * stop. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "failover.h"
#include "metrics.h"
#include "mg_mock.h"

extern const struct mg_plugin mg_plugin_descriptor; /* the failover's, linked in */

/* ---- the pure parts ---- */

static void test_vip_parse(void **state)
{
	struct fo_vip v;
	char err[256];
	(void)state;
	assert_int_equal(fo_vip_parse("198.18.0.100/24", 32, &v, err, sizeof(err)), 0);
	assert_string_equal(v.address, "198.18.0.100");
	assert_int_equal(v.len, 24);
	assert_int_equal(fo_vip_parse("10.99.0.254", 32, &v, err, sizeof(err)), 0);
	assert_int_equal(v.len, 32);
	const char *bad[] = {"",
	                     "/24",
	                     "10.0.0.1/",
	                     "10.0.0.1/33",
	                     "10.0.0.1/0",
	                     "10.0.0.1/2x",
	                     "10.0.0",
	                     "::1/128",
	                     "0.0.0.0/8",
	                     "127.0.0.1/8",
	                     "224.0.0.18/32",
	                     "10.0.0.1/24 ",
	                     "300.1.1.1/24"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(fo_vip_parse(bad[i], 32, &v, err, sizeof(err)), -EINVAL);
		assert_true(err[0] != '\0');
	}
}

static void test_last_host_and_ifname(void **state)
{
	char out[INET_ADDRSTRLEN];
	(void)state;
	assert_int_equal(fo_last_host("10.99.0.2", 24, out), 0);
	assert_string_equal(out, "10.99.0.254");
	assert_int_equal(fo_last_host("10.98.0.1", 16, out), 0);
	assert_string_equal(out, "10.98.255.254");
	assert_int_equal(fo_last_host("10.99.0.1", 31, out), -EINVAL);
	assert_true(fo_ifname_valid("eth0"));
	assert_true(fo_ifname_valid("mg1234m1"));
	assert_false(fo_ifname_valid(""));
	assert_false(fo_ifname_valid("a/b"));
	assert_false(fo_ifname_valid("eth0:1"));
	assert_false(fo_ifname_valid("eth 0"));
	assert_false(fo_ifname_valid("sixteen_chars_xx"));
}

static void test_notify_parse(void **state)
{
	enum fo_state s;
	int prio = -1;
	(void)state;
	const char *ok = "INSTANCE \"meshgate\" MASTER 100";
	assert_int_equal(fo_notify_parse(ok, strlen(ok), &s, &prio), 0);
	assert_int_equal(s, FO_MASTER);
	assert_int_equal(prio, 100);
	const char *stop = "INSTANCE \"meshgate\" STOP 0";
	assert_int_equal(fo_notify_parse(stop, strlen(stop), &s, &prio), 0);
	assert_int_equal(s, FO_STOPPED);
	const char *fault = "INSTANCE \"meshgate\" FAULT 254";
	assert_int_equal(fo_notify_parse(fault, strlen(fault), &s, &prio), 0);
	assert_int_equal(s, FO_FAULT);
	assert_int_equal(prio, 254);
	/* well-formed, of no interest */
	const char *other[] = {"INSTANCE \"other\" MASTER 100", "GROUP \"meshgate\" MASTER",
	                       "INSTANCE \"meshgate\" MASTER_RX_LOWER_PRI 100",
	                       "INSTANCE \"meshgate\" DELETED 100"};
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		assert_int_equal(fo_notify_parse(other[i], strlen(other[i]), &s, &prio), -ENOENT);
	const char *bad[] = {"",
	                     "INSTANCE",
	                     "INSTANCE meshgate MASTER 100",
	                     "INSTANCE \"meshgate\" MASTER 100 extra",
	                     "INSTANCE \"meshgate\" MASTER 1000",
	                     "INSTANCE \"meshgate\" MASTER -1",
	                     "INSTANCE \"meshgate\" MASTER 10x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(fo_notify_parse(bad[i], strlen(bad[i]), &s, &prio), -EINVAL);
	/* only len bytes are read: the line is not NUL-terminated in the fifo */
	const char buf[] = "INSTANCE \"meshgate\" BACKUP 100INSTANCE";
	assert_int_equal(fo_notify_parse(buf, strlen(buf) - 8, &s, &prio), 0);
	assert_int_equal(s, FO_BACKUP);
}

static void test_render(void **state)
{
	(void)state;
	struct fo_keepalived k = {
	    .node = "gw1",
	    .mesh_if = "mgmesh0",
	    .src_ip = "10.99.0.1",
	    .peers = json_pack("[s, s]", "10.99.0.2", "10.99.0.3"),
	    .router_id = 51,
	    .priority = 150,
	    .advert_ms = 100,
	    .mesh_vip = {"10.99.0.254", 32},
	    .public_if = "eth0",
	    .public_vip = {"198.18.0.100", 24},
	    .wg_if = "wg0",
	    .notify_fifo = "/var/lib/meshgate/failover/notify.fifo",
	    .check = "/usr/lib/meshgate/plugins/meshgate-failover-check /hb 1500 wg0",
	};
	char *text = fo_render_keepalived(&k);
	assert_non_null(text);
	const char *want[] = {
	    "router_id gw1\n",
	    "enable_script_security\n",
	    "script_user root\n",
	    "notify_fifo /var/lib/meshgate/failover/notify.fifo\n",
	    "script \"/usr/lib/meshgate/plugins/meshgate-failover-check /hb 1500 wg0\"\n",
	    "version 3\n",
	    "state BACKUP\n",
	    "interface mgmesh0\n",
	    "virtual_router_id 51\n",
	    "priority 150\n",
	    "advert_int 0.10\n",
	    "nopreempt\n",
	    "unicast_src_ip 10.99.0.1\n",
	    "\t\t10.99.0.2\n\t\t10.99.0.3\n",
	    "10.99.0.254/32 dev mgmesh0\n",
	    "198.18.0.100/24 dev eth0\n",
	    "track_interface {\n\t\twg0\n"};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(text, want[i]))
			fail_msg("no '%s' in:\n%s", want[i], text);
	free(text);
	/* preempt, a slow advert, no public VIP, no WireGuard to track */
	k.preempt = true;
	k.advert_ms = 1250;
	k.public_if = NULL;
	k.wg_if = NULL;
	text = fo_render_keepalived(&k);
	assert_non_null(strstr(text, "advert_int 1.25\n"));
	assert_null(strstr(text, "nopreempt"));
	assert_null(strstr(text, "dev eth0"));
	assert_null(strstr(text, "track_interface"));
	free(text);
	json_decref(k.peers);
}

static void test_active(void **state)
{
	(void)state;
	json_t *r =
	    json_pack("{s:{s:s, s:I}, s:{s:s, s:I}, s:{s:s, s:I}}", "gw1", "state", "master",
	              "since_ms", (json_int_t)1000, "gw2", "state", "backup", "since_ms",
	              (json_int_t)3000, "gw3", "state", "master", "since_ms", (json_int_t)2000);
	assert_string_equal(fo_active(r), "gw3"); /* the newest of two masters */
	json_object_set_new(json_object_get(r, "gw3"), "state", json_string("stopped"));
	assert_string_equal(fo_active(r), "gw1");
	json_object_set_new(json_object_get(r, "gw1"), "state", json_string("fault"));
	assert_null(fo_active(r));
	json_decref(r);
}

/* ---- the plugin on the mock core ---- */

struct fake {
	json_t *calls;
	int started, reloads, stops;
	bool exited;
	const char *mesh_address; /* the one address an interface has */
	char conf[4096];
};

static struct fake fake;

static void record_call(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void record_call(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	json_array_append_new(fake.calls, json_string(line));
}

static int f_start(void *arg, const char *program, const char *conf, const char *dir, pid_t *pid,
                   char *err, size_t errlen)
{
	(void)arg, (void)dir, (void)err, (void)errlen;
	record_call("start %s", program);
	snprintf(fake.conf, sizeof(fake.conf), "%s", conf);
	fake.started++;
	fake.exited = false;
	*pid = 4242;
	return 0;
}
static int f_reload(void *arg, pid_t pid)
{
	(void)arg;
	record_call("reload %d", (int)pid);
	fake.reloads++;
	return 0;
}
static int f_exited(void *arg, pid_t pid)
{
	(void)arg, (void)pid;
	return fake.exited;
}
static void f_stop(void *arg, pid_t pid)
{
	(void)arg;
	record_call("stop %d", (int)pid);
	fake.stops++;
}
static int f_find_address(void *arg, const char *address, char ifname[IF_NAMESIZE], unsigned *len)
{
	(void)arg;
	if (!fake.mesh_address || strcmp(address, fake.mesh_address))
		return -ENOENT;
	snprintf(ifname, IF_NAMESIZE, "mgmesh0");
	*len = 24;
	return 0;
}

static const struct fo_system fake_system = {f_start, f_reload, f_exited, f_stop, f_find_address};

static int fake_init(mg_ctx *ctx)
{
	return fo_init_with(ctx, &fake_system, NULL);
}

struct env {
	struct mg_mock *mock;
	char dir[64];
	struct mg_plugin desc;
};

static const char *const mesh_dbs[] = {"nodes", "mesh_addresses", NULL};

static struct env *env_new(json_t *config, int *rc)
{
	struct env *e = calloc(1, sizeof(*e));
	char err[512];
	snprintf(e->dir, sizeof(e->dir), "/tmp/test_failover.XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	e->mock = mg_mock_new(e->dir, err, sizeof(err));
	assert_non_null(e->mock);
	mg_mock_set_node_name(e->mock, "gw1");
	e->desc = mg_plugin_descriptor;
	e->desc.init = fake_init;
	assert_int_equal(mg_mock_add_stub(e->mock, "mesh", mesh_dbs), 0);
	assert_int_equal(mg_mock_add(e->mock, &e->desc, config, err, sizeof(err)), 0);
	json_decref(config);
	*rc = mg_mock_start(e->mock, err, sizeof(err));
	return e;
}

static void env_free(struct env *e)
{
	char cmd[128];
	mg_mock_free(e->mock);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	assert_int_equal(system(cmd), 0);
	free(e);
}

static void node_put(struct env *e, const char *name, const char *address, bool remote)
{
	json_t *r = json_pack("{s:s, s:s}", "name", name, "mesh_address", address);
	if (remote)
		assert_int_equal(mg_mock_state_remote(e->mock, "nodes", name, r), 0);
	else
		assert_int_equal(mg_mock_state_put(e->mock, "mesh", "nodes", name, r), 0);
	json_decref(r);
}

/* Writes lines into the plugin's fifo as keepalived does, then lets the
 * plugin read them. */
static void notify(struct env *e, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/failover/notify.fifo", e->dir);
	int fd = open(path, O_WRONLY | O_NONBLOCK);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	json_t *reg = mg_mock_registrations(e->mock, "failover");
	json_t *fds = json_object_get(reg, "fds");
	assert_int_equal(json_array_size(fds), 1);
	mg_mock_fire_fd(e->mock, (int)json_integer_value(json_array_get(fds, 0)), MG_FD_READ);
	json_decref(reg);
}

static const char *db_state(struct env *e, const char *db, const char *key)
{
	static char state[32];
	json_t *v = NULL;
	if (mg_mock_state_get(e->mock, db, key, &v))
		return "";
	snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(v, "state")));
	json_decref(v);
	return state;
}

static void setup_fake(void)
{
	json_decref(fake.calls);
	memset(&fake, 0, sizeof(fake));
	fake.calls = json_array();
}

static void test_plugin_lifecycle(void **state)
{
	int rc;
	(void)state;
	setup_fake();
	fake.mesh_address = "10.99.0.1";
	struct env *e = env_new(json_pack("{s:i}", "priority", 120), &rc);
	assert_int_equal(rc, 0);
	/* no mesh record yet: keepalived waits */
	assert_int_equal(fake.started, 0);
	node_put(e, "gw1", "10.99.0.1", false);
	assert_int_equal(fake.started, 1);
	char *conf = NULL;
	FILE *f = fopen(fake.conf, "r");
	assert_non_null(f);
	conf = calloc(1, 8192);
	assert_true(fread(conf, 1, 8191, f) > 0);
	fclose(f);
	assert_non_null(strstr(conf, "priority 120\n"));
	assert_non_null(strstr(conf, "10.99.0.254/32 dev mgmesh0")); /* the default mesh VIP */
	assert_null(strstr(conf, "\t\t10.99.0.2\n"));                /* no peer yet */
	free(conf);

	/* another node joins (a remote change): a reload, once */
	node_put(e, "gw2", "10.99.0.2", true);
	assert_int_equal(fake.reloads, 1);
	node_put(e, "gw2", "10.99.0.2", true);
	assert_int_equal(fake.reloads, 1);

	/* keepalived says master: both records, the event */
	mg_mock_events_clear(e->mock);
	notify(e, "INSTANCE \"meshgate\" BACKUP 120\nINSTANCE \"meshgate\" MAS");
	assert_string_equal(db_state(e, FO_DB, "gw1"), "backup");
	notify(e, "TER 120\n");
	assert_string_equal(db_state(e, FO_DB, "gw1"), "master");
	assert_string_equal(db_state(e, FO_DB_SELF, FO_SELF_KEY), "master");
	assert_int_equal(mg_mock_event_count(e->mock, "vip.master"), 1);
	assert_int_equal(mg_mock_event_count(e->mock, "vip.backup"), 1);
	json_t *reply = NULL;
	assert_int_equal(mg_mock_request(e->mock, "failover.status", NULL, &reply), 0);
	assert_string_equal(json_string_value(json_object_get(reply, "active")), "gw1");
	json_decref(reply);

	/* garbage is logged and changes nothing */
	notify(e, "nonsense\nINSTANCE \"other\" FAULT 1\n");
	assert_string_equal(db_state(e, FO_DB, "gw1"), "master");
	assert_int_equal(mg_mock_event_count(e->mock, "vip.fault"), 0);

	/* the cluster refuses the fault record (the mock fails the local
	 * commit too, which the core would not): the cluster gets it from the
	 * retry */
	mg_mock_fail_commits(e->mock, -EHOSTUNREACH, 2);
	notify(e, "INSTANCE \"meshgate\" FAULT 120\n");
	assert_string_equal(db_state(e, FO_DB, "gw1"), "master");
	assert_int_equal(mg_mock_event_count(e->mock, "vip.fault"), 1);
	mg_mock_advance(e->mock, 1000);
	assert_string_equal(db_state(e, FO_DB, "gw1"), "fault");

	/* stop: keepalived first, then "stopped" */
	mg_mock_stop(e->mock);
	assert_int_equal(fake.stops, 1);
	assert_string_equal(db_state(e, FO_DB, "gw1"), "stopped");
	env_free(e);
}

static void test_keepalived_restarted(void **state)
{
	int rc;
	(void)state;
	setup_fake();
	fake.mesh_address = "10.99.0.1";
	struct env *e = env_new(json_object(), &rc);
	assert_int_equal(rc, 0);
	node_put(e, "gw1", "10.99.0.1", false);
	assert_int_equal(fake.started, 1);
	fake.exited = true;
	mg_mock_advance(e->mock, 1000);
	assert_int_equal(fake.started, 2);
	assert_string_equal(db_state(e, FO_DB, "gw1"), "stopped");
	env_free(e);
}

/* A figure of a metrics reply (lib/metrics). */
static double sample_of(json_t *reply, const char *family, const char *label, const char *value)
{
	return metrics_lookup(json_object_get(reply, "families"), family, label, value);
}

/* failover.metrics: the state now, and the changes into each state. */
static void test_metrics(void **state)
{
	int rc;
	json_t *reply = NULL;
	(void)state;
	setup_fake();
	fake.mesh_address = "10.99.0.1";
	struct env *e = env_new(json_object(), &rc);
	assert_int_equal(rc, 0);
	node_put(e, "gw1", "10.99.0.1", false);
	assert_int_equal(mg_mock_request(e->mock, "failover.metrics", NULL, &reply), 0);
	assert_true(sample_of(reply, "meshgate_failover_state", "state", "master") == 0);
	json_decref(reply);
	notify(e, "INSTANCE \"meshgate\" BACKUP 100\nINSTANCE \"meshgate\" MASTER 100\n");
	notify(e, "INSTANCE \"meshgate\" MASTER 100\n"); /* the same state: no change */
	assert_int_equal(mg_mock_request(e->mock, "failover.metrics", NULL, &reply), 0);
	assert_true(sample_of(reply, "meshgate_failover_state", "state", "master") == 1);
	assert_true(sample_of(reply, "meshgate_failover_state", "state", "backup") == 0);
	assert_true(sample_of(reply, "meshgate_failover_changes_total", "state", "master") == 1);
	assert_true(sample_of(reply, "meshgate_failover_changes_total", "state", "backup") == 1);
	assert_true(sample_of(reply, "meshgate_failover_changes_total", "state", "fault") == 0);
	json_decref(reply);
	/* a request with members is refused like every service's */
	json_t *bad = json_pack("{s:i}", "x", 1);
	assert_int_not_equal(mg_mock_request(e->mock, "failover.metrics", bad, &reply), 0);
	json_decref(bad);
	json_decref(reply);
	env_free(e);
}

static void test_bad_settings(void **state)
{
	(void)state;
	json_t *bad[] = {
	    json_pack("{s:i}", "priority", 0),
	    json_pack("{s:i}", "priority", 255),
	    json_pack("{s:i}", "advert_ms", 5),
	    json_pack("{s:i}", "advert_ms", 105),
	    json_pack("{s:i}", "advert_ms", 50000),
	    json_pack("{s:i}", "virtual_router_id", 256),
	    json_pack("{s:s}", "mesh_vip", "10.99.0/24"),
	    json_pack("{s:s}", "public_vip", "198.18.0.100/24"),
	    json_pack("{s:s, s:s}", "public_vip", "198.18.0.100/40", "public_interface", "eth0"),
	    json_pack("{s:s, s:s}", "public_vip", "198.18.0.100/24", "public_interface", "a/b"),
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc;
		setup_fake();
		struct env *e = env_new(bad[i], &rc);
		assert_int_not_equal(rc, 0);
		assert_int_equal(fake.started, 0);
		env_free(e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vip_parse),
	    cmocka_unit_test(test_last_host_and_ifname),
	    cmocka_unit_test(test_notify_parse),
	    cmocka_unit_test(test_render),
	    cmocka_unit_test(test_active),
	    cmocka_unit_test(test_plugin_lifecycle),
	    cmocka_unit_test(test_keepalived_restarted),
	    cmocka_unit_test(test_metrics),
	    cmocka_unit_test(test_bad_settings),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	json_decref(fake.calls);
	return rc;
}
