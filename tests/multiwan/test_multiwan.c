/* The multiwan plugin's pure parts (rise / fall, the active link, the
 * endpoints' order) and the plugin on the mock core over a fake system
 * whose probe sockets are socket pairs the test answers through: links
 * found up, a link that stops answering loses the default route after
 * `fall` probes, comes back after `rise`, takes the route back only after
 * the failback hold (or never, without failback); the record devices are
 * told, wan.up / wan.down, multiwan.list; bad settings refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "mg_mock.h"
#include "metrics.h"
#include "multiwan.h"

extern const struct mg_plugin mg_plugin_descriptor; /* multiwan's, linked in */

/* ---- the pure parts ---- */

static void test_rise_fall(void **state)
{
	struct mw_health h = {0};
	(void)state;
	/* unknown: up at the first answer, "up since the start" */
	assert_true(mw_health_result(&h, true, 5, 3, 1000));
	assert_int_equal(h.state, MW_UP);
	assert_int_equal(h.since_ms, 0);
	assert_false(mw_health_result(&h, false, 5, 3, 1200));
	assert_false(mw_health_result(&h, false, 5, 3, 1400));
	assert_true(mw_health_result(&h, false, 5, 3, 1600));
	assert_int_equal(h.state, MW_DOWN);
	assert_int_equal(h.since_ms, 1600);
	/* four answers, a loss: the run starts again */
	for (int i = 0; i < 4; i++)
		assert_false(mw_health_result(&h, true, 5, 3, 2000));
	assert_false(mw_health_result(&h, false, 5, 3, 2000));
	for (int i = 0; i < 4; i++)
		assert_false(mw_health_result(&h, true, 5, 3, 3000));
	assert_true(mw_health_result(&h, true, 5, 3, 3200));
	assert_int_equal(h.state, MW_UP);
	assert_int_equal(h.since_ms, 3200);
	/* an unknown link that never answers is down after fall */
	struct mw_health u = {0};
	assert_false(mw_health_result(&u, false, 5, 3, 0));
	assert_false(mw_health_result(&u, false, 5, 3, 0));
	assert_true(mw_health_result(&u, false, 5, 3, 0));
	assert_int_equal(u.state, MW_DOWN);
}

static void test_choose(void **state)
{
	(void)state;
	struct mw_candidate c[3] = {{false, 1, 0}, {true, 2, 0}, {true, 2, 0}};
	assert_int_equal(mw_choose(c, 3, -1, true, 3000, 10000), 1); /* equal: the first */
	c[0].up = true;
	c[0].up_since = 9000;
	/* the better link came back 1 s ago: held */
	assert_int_equal(mw_choose(c, 3, 1, true, 3000, 10000), 1);
	assert_int_equal(mw_choose(c, 3, 1, true, 3000, 12000), 0);
	/* no failback: stays while its link is up, moves when it fails */
	assert_int_equal(mw_choose(c, 3, 1, false, 3000, 99000), 1);
	c[1].up = false;
	assert_int_equal(mw_choose(c, 3, 1, false, 3000, 99000), 0);
	/* the active link failed: the best up one at once, no hold */
	assert_int_equal(mw_choose(c, 3, 1, true, 3000, 9001), 0);
	/* nothing up: the route stays where it is */
	struct mw_candidate none[2] = {{false, 1, 0}, {false, 2, 0}};
	assert_int_equal(mw_choose(none, 2, 1, true, 0, 0), 1);
	assert_int_equal(mw_choose(none, 2, -1, true, 0, 0), -1);
}

static void test_endpoint_order(void **state)
{
	(void)state;
	struct mw_candidate c[4] = {{false, 1, 0}, {true, 3, 0}, {true, 2, 0}, {false, 0, 0}};
	size_t order[4];
	mw_endpoint_order(c, 4, 1, order);
	/* the active one, the other up one, then the down ones by priority */
	assert_int_equal(order[0], 1);
	assert_int_equal(order[1], 2);
	assert_int_equal(order[2], 3);
	assert_int_equal(order[3], 0);
	mw_endpoint_order(c, 4, -1, order);
	assert_int_equal(order[0], 2);
	assert_int_equal(order[1], 1);
	assert_int_equal(order[2], 3);
	assert_int_equal(order[3], 0);
}

/* ---- the fake system ---- */

struct fake_link {
	char ifname[IF_NAMESIZE], address[INET_ADDRSTRLEN];
	int fd, peer; /* the plugin's end, the test's */
	uint16_t id, seq;
	int sent;
	bool routed;
};

struct fake {
	struct fake_link links[2];
	char default_if[IF_NAMESIZE];
	int default_moves;
};

static struct fake_link *by_if(struct fake *f, const char *ifname)
{
	for (int i = 0; i < 2; i++)
		if (!strcmp(f->links[i].ifname, ifname))
			return &f->links[i];
	return NULL;
}

static struct fake_link *by_fd(struct fake *f, int fd)
{
	for (int i = 0; i < 2; i++)
		if (f->links[i].fd == fd)
			return &f->links[i];
	return NULL;
}

static int fake_address(void *arg, const char *ifname, char out[INET_ADDRSTRLEN])
{
	struct fake_link *l = by_if(arg, ifname);
	if (!l || !*l->address)
		return -ENOENT;
	snprintf(out, INET_ADDRSTRLEN, "%s", l->address);
	return 0;
}

static int fake_probe_open(void *arg, const char *ifname, const char *address, char *err,
                           size_t errlen)
{
	struct fake_link *l = by_if(arg, ifname);
	int sv[2];
	(void)address;
	if (!l || socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv)) {
		snprintf(err, errlen, "no such link");
		return -ENODEV;
	}
	l->fd = sv[0];
	l->peer = sv[1];
	return sv[0];
}

static int fake_probe_send(void *arg, int fd, const char *check, uint16_t id, uint16_t seq)
{
	struct fake_link *l = by_fd(arg, fd);
	(void)check;
	l->id = id;
	l->seq = seq;
	l->sent++;
	return 0;
}

static int fake_probe_read(void *arg, int fd, uint16_t id, uint16_t *seq)
{
	uint16_t msg[2];
	(void)arg;
	while (read(fd, msg, sizeof(msg)) == sizeof(msg))
		if (msg[0] == id) {
			*seq = msg[1];
			return 1;
		}
	return 0;
}

static void fake_probe_close(void *arg, int fd)
{
	struct fake_link *l = by_fd(arg, fd);
	close(fd);
	close(l->peer);
	l->fd = l->peer = -1;
}

static int fake_link_routes(void *arg, bool on, unsigned table, unsigned rule_priority,
                            const char *ifname, const char *gateway, const char *address)
{
	(void)table;
	(void)rule_priority;
	(void)gateway;
	(void)address;
	by_if(arg, ifname)->routed = on;
	return 0;
}

static int fake_default_route(void *arg, const char *ifname, const char *gateway)
{
	struct fake *f = arg;
	(void)gateway;
	snprintf(f->default_if, sizeof(f->default_if), "%s", ifname);
	f->default_moves++;
	return 0;
}

static const struct mw_system fake_system = {
    .address = fake_address,
    .probe_open = fake_probe_open,
    .probe_send = fake_probe_send,
    .probe_read = fake_probe_read,
    .probe_close = fake_probe_close,
    .link_routes = fake_link_routes,
    .default_route = fake_default_route,
};

/* ---- the plugin on the mock core ---- */

struct env {
	struct mg_mock *mock;
	struct fake fake;
	struct mg_plugin desc;
};

static struct env *current_env; /* the descriptor's init takes no argument */

static int init_with_fake(mg_ctx *ctx)
{
	return mw_init_with(ctx, &fake_system, &current_env->fake);
}

static json_t *two_links(bool failback)
{
	return json_pack("{s:[{s:s, s:s, s:s, s:i}, {s:s, s:s, s:i, s:s}], s:b}", "links",
	                 "interface", "wan1", "gateway", "198.18.1.254", "check", "198.18.0.1",
	                 "priority", 1, "interface", "wan2", "gateway", "198.18.2.254", "priority",
	                 2, "name", "backup", "failback", failback);
}

/* The plugin started with link `missing` (or -1) without its address. */
static int start_without(struct env *e, int missing, json_t *config, char *err, size_t errlen)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->fake.links[0].ifname, IF_NAMESIZE, "wan1");
	snprintf(e->fake.links[0].address, INET_ADDRSTRLEN, "198.18.1.1");
	snprintf(e->fake.links[1].ifname, IF_NAMESIZE, "wan2");
	snprintf(e->fake.links[1].address, INET_ADDRSTRLEN, "198.18.2.1");
	e->fake.links[0].fd = e->fake.links[1].fd = -1;
	if (missing >= 0)
		e->fake.links[missing].address[0] = '\0';
	current_env = e;
	e->desc = mg_plugin_descriptor;
	e->desc.init = init_with_fake;
	e->mock = mg_mock_new(NULL, err, errlen);
	assert_non_null(e->mock);
	int rc = mg_mock_add(e->mock, &e->desc, config, err, errlen);
	json_decref(config);
	return rc ? rc : mg_mock_start(e->mock, err, errlen);
}

static int start(struct env *e, json_t *config, char *err, size_t errlen)
{
	return start_without(e, -1, config, err, errlen);
}

/* The test's side of a link: answers its last probe. */
static void answer(struct env *e, int link)
{
	struct fake_link *l = &e->fake.links[link];
	uint16_t msg[2] = {l->id, l->seq};
	assert_int_equal(write(l->peer, msg, sizeof(msg)), sizeof(msg));
	assert_int_equal(mg_mock_fire_fd(e->mock, l->fd, 1), 0);
}

/* One interval: each link in `up` answers its probe, then the timer. */
static void interval(struct env *e, bool wan1, bool wan2)
{
	if (wan1)
		answer(e, 0);
	if (wan2)
		answer(e, 1);
	mg_mock_advance(e->mock, 200);
}

static json_t *record(struct env *e)
{
	json_t *value = NULL;
	assert_int_equal(mg_mock_state_get(e->mock, MW_DB, MW_KEY, &value), 0);
	return value;
}

static const char *endpoint(json_t *rec, size_t i)
{
	return json_string_value(json_array_get(json_object_get(rec, "endpoints"), i));
}

/* The last wan.* event: its topic into topic, its payload (borrowed). */
static json_t *last_wan_event(struct env *e, const char **topic)
{
	json_t *events = mg_mock_events(e->mock), *ev, *found = NULL;
	size_t i;
	json_array_foreach(events, i, ev)
	{
		const char *t = json_string_value(json_object_get(ev, "topic"));
		if (!strncmp(t, "wan.", 4)) {
			found = json_object_get(ev, "payload");
			*topic = t;
		}
	}
	return found;
}

static void test_failover_and_failback(void **state)
{
	struct env e;
	char err[512];
	const char *topic = NULL;
	(void)state;
	assert_int_equal(start(&e, two_links(true), err, sizeof(err)), 0);
	assert_true(e.fake.links[0].routed && e.fake.links[1].routed);
	assert_int_equal(e.fake.links[0].sent, 1);
	/* before any answer: every endpoint by priority, no route moved */
	json_t *rec = record(&e);
	assert_string_equal(endpoint(rec, 0), "198.18.1.1:51820");
	assert_string_equal(endpoint(rec, 1), "198.18.2.1:51820");
	json_decref(rec);
	assert_int_equal(e.fake.default_moves, 0);

	interval(&e, true, true);
	assert_string_equal(e.fake.default_if, "wan1");
	assert_int_equal(mg_mock_event_count(e.mock, "wan.up"), 2);

	/* wan1 goes silent: down after 3 lost probes, the route on wan2 */
	mg_mock_events_clear(e.mock);
	interval(&e, false, true);
	interval(&e, false, true);
	assert_string_equal(e.fake.default_if, "wan1");
	interval(&e, false, true);
	assert_string_equal(e.fake.default_if, "wan2");
	json_t *ev = last_wan_event(&e, &topic);
	assert_string_equal(topic, "wan.down");
	assert_string_equal(json_string_value(json_object_get(ev, "link")), "wan1");
	assert_string_equal(json_string_value(json_object_get(ev, "interface")), "wan1");
	assert_string_equal(json_string_value(json_object_get(ev, "address")), "198.18.1.1");
	assert_string_equal(json_string_value(json_object_get(ev, "active")), "backup");
	rec = record(&e);
	assert_string_equal(json_string_value(json_object_get(rec, "active")), "backup");
	assert_string_equal(endpoint(rec, 0), "198.18.2.1:51820");
	assert_string_equal(endpoint(rec, 1), "198.18.1.1:51820");
	json_decref(rec);

	/* wan1 answers again: up after 5, the route back only after the hold */
	mg_mock_events_clear(e.mock);
	for (int i = 0; i < 4; i++)
		interval(&e, true, true);
	assert_int_equal(mg_mock_event_count(e.mock, "wan.up"), 0);
	interval(&e, true, true);
	ev = last_wan_event(&e, &topic);
	assert_string_equal(topic, "wan.up");
	assert_string_equal(json_string_value(json_object_get(ev, "active")), "backup");
	assert_string_equal(e.fake.default_if, "wan2");
	for (int i = 0; i < 13; i++) /* 2.8 s of the 3 s hold */
		interval(&e, true, true);
	assert_string_equal(e.fake.default_if, "wan2");
	interval(&e, true, true);
	interval(&e, true, true);
	assert_string_equal(e.fake.default_if, "wan1");
	rec = record(&e);
	assert_string_equal(endpoint(rec, 0), "198.18.1.1:51820");
	json_decref(rec);

	json_t *reply = NULL;
	assert_int_equal(mg_mock_request(e.mock, "multiwan.list", NULL, &reply), 0);
	json_t *links = json_object_get(reply, "links");
	assert_int_equal(json_array_size(links), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(links, 0), "state")),
	                    "up");
	assert_true(json_is_true(json_object_get(json_array_get(links, 0), "active")));
	assert_false(json_is_true(json_object_get(json_array_get(links, 1), "active")));
	assert_string_equal(json_string_value(json_object_get(json_array_get(links, 1), "link")),
	                    "backup");
	assert_true(json_is_integer(json_object_get(json_array_get(links, 0), "rtt_ms")));
	assert_true(json_is_integer(json_object_get(json_array_get(links, 0), "last_change_ms")));
	assert_string_equal(json_string_value(json_object_get(reply, "active")), "wan1");
	json_decref(reply);
	/* it takes no arguments */
	json_t *bad = json_pack("{s:i}", "x", 1);
	assert_int_not_equal(mg_mock_request(e.mock, "multiwan.list", bad, &reply), 0);
	json_decref(reply);
	json_decref(bad);

	/* multiwan.metrics says the same: both up, wan1 active, the route moved
	 * twice (to backup and back; its first placement is no move) */
	assert_int_equal(mg_mock_request(e.mock, "multiwan.metrics", NULL, &reply), 0);
	json_t *families = json_object_get(reply, "families");
	assert_true(metrics_lookup(families, "meshgate_wan_link_up", "link", "wan1") == 1);
	assert_true(metrics_lookup(families, "meshgate_wan_link_up", "link", "backup") == 1);
	assert_true(metrics_lookup(families, "meshgate_wan_link_active", "link", "wan1") == 1);
	assert_true(metrics_lookup(families, "meshgate_wan_link_active", "link", "backup") == 0);
	assert_true(metrics_lookup(families, "meshgate_wan_link_rtt_seconds", "link", "wan1") >= 0);
	assert_true(metrics_lookup(families, "meshgate_wan_route_moves_total", NULL, NULL) == 2);
	json_decref(reply);

	mg_mock_stop(e.mock);
	assert_false(e.fake.links[0].routed || e.fake.links[1].routed);
	mg_mock_free(e.mock);
}

static void test_no_failback(void **state)
{
	struct env e;
	char err[512];
	(void)state;
	assert_int_equal(start(&e, two_links(false), err, sizeof(err)), 0);
	interval(&e, true, true);
	for (int i = 0; i < 3; i++)
		interval(&e, false, true);
	assert_string_equal(e.fake.default_if, "wan2");
	for (int i = 0; i < 50; i++) /* 10 s of a healthy wan1 */
		interval(&e, true, true);
	assert_string_equal(e.fake.default_if, "wan2");
	/* until wan2 fails */
	for (int i = 0; i < 3; i++)
		interval(&e, true, false);
	assert_string_equal(e.fake.default_if, "wan1");
	mg_mock_free(e.mock);
}

/* An interface without its address yet: no socket, no table, its probes
 * lost; it joins once the address is there. */
static void test_link_without_address(void **state)
{
	struct env e;
	char err[512];
	(void)state;
	assert_int_equal(start(&e, two_links(true), err, sizeof(err)), 0);
	/* start() gave both addresses: take wan2's away in a fresh run */
	mg_mock_free(e.mock);
	assert_int_equal(start_without(&e, 1, two_links(true), err, sizeof(err)), 0);
	assert_false(e.fake.links[1].routed);
	assert_int_equal(e.fake.links[1].fd, -1);
	for (int i = 0; i < 3; i++)
		interval(&e, true, false);
	json_t *rec = record(&e);
	assert_int_equal(json_array_size(json_object_get(rec, "endpoints")), 1);
	assert_string_equal(endpoint(rec, 0), "198.18.1.1:51820");
	json_decref(rec);
	snprintf(e.fake.links[1].address, INET_ADDRSTRLEN, "198.18.2.1");
	mg_mock_advance(e.mock, 200); /* the address found, the first probe sent */
	assert_true(e.fake.links[1].routed);
	for (int i = 0; i < 5; i++)
		interval(&e, true, true);
	rec = record(&e);
	assert_string_equal(endpoint(rec, 1), "198.18.2.1:51820");
	json_decref(rec);
	mg_mock_free(e.mock);
}

/* Zero config (the packages' meshgated.conf): no uplinks, the plugin
 * starts, lists nothing and touches no route. */
static void test_no_links_idles(void **state)
{
	struct env e;
	char err[512] = "";
	json_t *reply = NULL;
	(void)state;
	assert_int_equal(start(&e, json_pack("{s:[]}", "links"), err, sizeof(err)), 0);
	assert_int_equal(mg_mock_request(e.mock, "multiwan.list", NULL, &reply), 0);
	assert_int_equal(json_array_size(json_object_get(reply, "links")), 0);
	json_decref(reply);
	assert_int_equal(e.fake.default_moves, 0);
	assert_false(e.fake.links[0].routed);
	assert_int_equal(e.fake.links[0].fd, -1);
	assert_int_equal(mg_mock_state_count(e.mock, MW_DB, NULL), 0);
	mg_mock_free(e.mock);
}

static void test_bad_settings(void **state)
{
	(void)state;
	const char *bad[] = {
	    "{\"links\": [{\"interface\": \"wan1\"}]}",
	    "{\"links\": [{\"interface\": \"wan1\", \"gateway\": \"nope\"}]}",
	    "{\"links\": [{\"interface\": \"wan/1\", \"gateway\": \"10.0.0.1\"}]}",
	    "{\"links\": [{\"interface\": \"wan1\", \"gateway\": \"10.0.0.1\", \"check\": \"x\"}]}",
	    "{\"links\": [{\"interface\": \"wan1\", \"gateway\": \"10.0.0.1\", \"priority\": -1}]}",
	    "{\"links\": [{\"interface\": \"wan1\", \"gateway\": \"10.0.0.1\", \"endpoint\": "
	    "\"1.2.3.4\"}]}",
	    "{\"links\": [{\"interface\": \"wan1\", \"gateway\": \"10.0.0.1\"}, {\"interface\": "
	    "\"wan1\", \"gateway\": \"10.0.1.1\"}]}",
	    "{\"links\": [{\"interface\": \"wan1\", \"gateway\": \"10.0.0.1\", \"nope\": 1}]}",
	    "{\"links\": [{\"interface\": \"wan1\", \"gateway\": \"10.0.0.1\"}], \"interval_ms\": "
	    "5}",
	    "{\"links\": [{\"interface\": \"wan1\", \"gateway\": \"10.0.0.1\"}], \"rise\": 0}",
	    "{\"links\": [{\"interface\": \"wan1\", \"gateway\": \"10.0.0.1\"}], \"table_base\": "
	    "250}",
	    "{\"links\": [{\"interface\": \"wan1\", \"gateway\": \"10.0.0.1\"}], "
	    "\"failback_hold_ms\": -1}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct env e;
		char err[512] = "";
		json_t *config = json_loads(bad[i], 0, NULL);
		assert_non_null(config);
		int rc = start(&e, config, err, sizeof(err));
		if (!rc)
			fail_msg("accepted: %s", bad[i]);
		assert_true(err[0] != '\0');
		/* nothing was touched */
		assert_int_equal(e.fake.default_moves, 0);
		assert_false(e.fake.links[0].routed);
		assert_int_equal(mg_mock_state_count(e.mock, MW_DB, NULL), 0);
		mg_mock_free(e.mock);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rise_fall),      cmocka_unit_test(test_choose),
	    cmocka_unit_test(test_endpoint_order), cmocka_unit_test(test_failover_and_failback),
	    cmocka_unit_test(test_no_failback),    cmocka_unit_test(test_link_without_address),
	    cmocka_unit_test(test_no_links_idles), cmocka_unit_test(test_bad_settings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
