/* The firewall's figures, each against the plain way measured in the same
 * run and namespace, in interleaved rounds (who goes first alternates):
 *
 * - the whole policy for 10,000 devices applied from state (ours: the
 *   devices read, one ipset restore, one iptables-restore) against one
 *   iptables-restore of the equivalent linear policy (30,000 rules);
 * - of that, the role sets refilled as at a restart (ours: through
 *   netlink, a few messages of thousands of members, each set swapped in)
 *   against one `ipset restore` of the same sets, swapped in alike;
 * - one device's change end to end: from preauth's state write, through
 *   the event, the plugin (state read, netlink) and, for a removal, the
 *   walk of the conntrack table, until the kernel's set has it; against
 *   one `iptables-restore --noflush` of the device's 3 linear rules (the
 *   30,000 loaded) and against one `ipset add` / `ipset del` process;
 * - a route added at runtime (no plain equivalent: printed alone).
 *
 * Prints figures, never fails on time.
 *
 *   bench_fw                 the figures, in a network namespace of its own
 *   bench_fw hold VPN_IF     loads the 10,000-device policy in the current
 *                            namespace with VPN_IF as the VPN interface,
 *                            prints "ready", removes it at a line on stdin
 *                            (the throughput script's datapath)
 *
 * The model is BASELINES.md's: device i (1..10000) = 10.100.(i>>8).(i&255),
 * role r = i%4, which reaches 10.200.r.0/24 and 10.201.r.0/24. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fw.h"
#include "spawn.h"
#include "mg_mock.h"
#include "rounds.h"

extern const struct mg_plugin mg_plugin_descriptor; /* the firewall's */

#define DEVICES 10000
#define ROUNDS  5
#define CHANGES 40 /* device changes of each kind per round (their median) */
#define LINEAR  3  /* linear restores of each kind per round (their median) */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what, const char *err)
{
	fprintf(stderr, "bench_fw: %s: %s\n", what, err);
	exit(1);
}

static void sh(const char *cmd)
{
	char *argv[] = {"sh", "-c", (char *)cmd, NULL}, err[512];
	if (mg_spawn_check(argv, NULL, 0, NULL, err, sizeof(err)))
		die(cmd, err);
}

static json_t *device_json(int i, const char *state)
{
	char id[32], address[32], role[8], user[16];
	snprintf(id, sizeof(id), "dev%05d", i);
	snprintf(address, sizeof(address), "10.100.%d.%d/32", i >> 8, i & 255);
	snprintf(role, sizeof(role), "r%d", i % 4);
	snprintf(user, sizeof(user), "u%05d", i);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", id, "user", user, "name", user,
	                 "role", role, "address", address, "state", state);
}

/* The stub owners' records: wg/server and the devices, one transaction. */
static void fill_state(struct mg_mock *m, const char *vpn_if)
{
	mg_ctx *pa = mg_mock_ctx(m, "preauth");
	mg_txn *txn;
	json_t *server = json_pack("{s:s, s:s, s:i}", "interface", vpn_if, "address",
	                           "10.100.0.1/16", "listen_port", 51820);
	if (mg_mock_state_put(m, "wireguard", "wg", "server", server))
		die("state", "wg/server");
	json_decref(server);
	if (mg_txn_begin(pa, 0, &txn))
		die("state", "txn");
	for (int i = 1; i <= DEVICES; i++) {
		char id[32];
		json_t *d = device_json(i, "active");
		snprintf(id, sizeof(id), "dev%05d", i);
		if (mg_state_put(pa, txn, "devices", id, d))
			die("state", "put");
		json_decref(d);
	}
	if (mg_txn_commit(pa, txn))
		die("state", "commit");
}

/* on_stop = "flush": each run starts from nothing, and `hold` leaves
 * nothing when it ends */
static const char config[] =
    "{\"roles\": {\"r0\": [\"10.200.0.0/24\", \"10.201.0.0/24\"], "
    "\"r1\": [\"10.200.1.0/24\", \"10.201.1.0/24\"], "
    "\"r2\": [\"10.200.2.0/24\", \"10.201.2.0/24\"], "
    "\"r3\": [\"10.200.3.0/24\", \"10.201.3.0/24\"]}, \"resync_interval\": 0, "
    "\"public_interface\": \"eth0\", \"on_stop\": \"flush\"}";

/* A mock over `dir` with the stubs, and the firewall when with_fw (not
 * started). */
static struct mg_mock *mock(const char *dir, int with_fw)
{
	char err[512];
	static const char *const wg_owns[] = {"wg", NULL}, *const pa_owns[] = {"devices", NULL};
	struct mg_mock *m = mg_mock_new(dir, err, sizeof(err));
	if (!m)
		die("mock", err);
	mg_mock_log_level(m, MG_LOG_WARN);
	json_t *c = json_loads(config, 0, NULL);
	if (mg_mock_add_stub(m, "wireguard", wg_owns) || mg_mock_add_stub(m, "preauth", pa_owns) ||
	    (with_fw && mg_mock_add(m, &mg_plugin_descriptor, c, err, sizeof(err))))
		die("mock", err);
	json_decref(c);
	return m;
}

static void start(struct mg_mock *m)
{
	char err[512];
	if (mg_mock_start(m, err, sizeof(err)))
		die("start", err);
}

static double plugin_apply_ms(struct mg_mock *m)
{
	json_t *st;
	mg_mock_request(m, "firewall.status", NULL, &st);
	double ms = json_real_value(json_object_get(st, "last_apply_ms"));
	json_decref(st);
	return ms;
}

/* The median of n values (sorted in place). */
static double median_of(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), figure_cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double run_argv_ms(char *const argv[], const char *input, size_t len)
{
	char err[512];
	double t0 = now_ms();
	if (mg_spawn_check(argv, input, len, NULL, err, sizeof(err)))
		die(argv[0], err);
	return now_ms() - t0;
}

/* ---- the whole policy ---- */

/* Ours from nothing: the plugin started over state with 10,000 devices
 * (it reads them, fills the sets, writes the rules), then stopped, which
 * removes everything (on_stop = "flush", not timed). */
static double ours_full(const char *dir, double *plugin_ms)
{
	struct mg_mock *m = mock(dir, 1);
	double t0 = now_ms();
	start(m);
	double t = now_ms() - t0;
	*plugin_ms = plugin_apply_ms(m);
	mg_mock_stop(m);
	mg_mock_free(m);
	return t;
}

/* Devices from..to as linear rules, 3 each: "-A" appends, "-D" deletes. */
static double linear_restore(char op, int from, int to)
{
	struct fw_buf b = {0};
	fw_buf_printf(&b, "*filter\n");
	for (int i = from; i <= to; i++) {
		int r = i % 4;
		fw_buf_printf(&b, "-%c FORWARD -s 10.100.%d.%d/32 -d 10.200.%d.0/24 -j ACCEPT\n",
		              op, i >> 8, i & 255, r);
		fw_buf_printf(&b,
		              "-%c FORWARD -s 10.100.%d.%d/32 -d 10.201.%d.0/24 -p tcp --dport 443 "
		              "-j ACCEPT\n",
		              op, i >> 8, i & 255, r);
		fw_buf_printf(&b,
		              "-%c FORWARD -s 10.100.%d.%d/32 -d 10.201.%d.0/24 -p udp --dport 53 "
		              "-j ACCEPT\n",
		              op, i >> 8, i & 255, r);
	}
	fw_buf_printf(&b, "COMMIT\n");
	if (b.oom)
		die("linear rules", "out of memory");
	char *argv[] = {"iptables-restore", "-w", "5", "--noflush", NULL};
	double t = run_argv_ms(argv, b.data, b.len);
	fw_buf_free(&b);
	return t;
}

/* The plain way from nothing: one iptables-restore of the 30,000 rules,
 * then FORWARD flushed (not timed). */
static double linear_full(void)
{
	double t = linear_restore('A', 1, DEVICES);
	sh("iptables -F FORWARD");
	return t;
}

/* ---- the role sets ---- */

/* The policy's 4 role sets with their 2,500 members each, as the plugin
 * fills them from state. */
struct role_sets {
	struct fw_role roles[4];
	uint32_t members[4][DEVICES / 4];
	struct fw_policy p;
};

static void role_sets_init(struct role_sets *s)
{
	memset(s, 0, sizeof(*s));
	for (int r = 0; r < 4; r++) {
		snprintf(s->roles[r].name, sizeof(s->roles[r].name), "r%d", r);
		fw_set_name(s->roles[r].set, s->roles[r].name);
		s->roles[r].members = s->members[r];
	}
	for (int i = 1; i <= DEVICES; i++) {
		struct fw_role *role = &s->roles[i % 4];
		role->members[role->n_members++] = (10u << 24) | (100u << 16) | (uint32_t)i;
	}
	s->p.roles = s->roles;
	s->p.n_roles = 4;
}

/* Not timed: each set has exactly its members (two probes and a stranger). */
static void role_sets_check(struct fw_nl *nl, const struct role_sets *s)
{
	for (int r = 0; r < 4; r++) {
		const struct fw_role *role = &s->roles[r];
		if (fw_nl_set_test(nl, role->set, role->members[0]) != 1 ||
		    fw_nl_set_test(nl, role->set, role->members[role->n_members - 1]) != 1 ||
		    fw_nl_set_test(nl, role->set, (10u << 24) | (99u << 16) | 1) != 0)
			die(role->set, "does not hold its members");
	}
}

static double ours_sets(struct fw_nl *nl, const struct role_sets *s)
{
	double t0 = now_ms();
	for (int r = 0; r < 4; r++) {
		size_t refused;
		int rc = fw_nl_set_replace(nl, s->roles[r].set, s->roles[r].members,
		                           s->roles[r].n_members, &refused);
		if (rc)
			die(s->roles[r].set, fw_nl_strerror(rc));
	}
	double t = now_ms() - t0;
	role_sets_check(nl, s);
	return t;
}

/* The same sets from `ipset restore` text made beforehand (the plain way
 * has its file ready: its making is not counted). */
static double plain_sets(struct fw_nl *nl, const struct role_sets *s, const struct fw_buf *text)
{
	char *argv[] = {"ipset", "restore", NULL};
	double t = run_argv_ms(argv, text->data, text->len);
	role_sets_check(nl, s);
	return t;
}

/* ---- one device ---- */

/* Device i's change end to end: preauth's state write, the event, the
 * plugin's handling, the conntrack walk that follows on its loop; then
 * checked (not timed): the kernel's set has the device or not. */
static double change(struct mg_mock *m, struct fw_nl *nl, int i, const char *state)
{
	char id[32], set[FW_SETNAME_MAX];
	json_t *d = device_json(i, state), *ev;
	snprintf(id, sizeof(id), "dev%05d", i);
	ev = json_pack("{s:s}", "id", id);
	double t0 = now_ms();
	if (mg_mock_state_put(m, "preauth", "devices", id, d))
		die("state", "put");
	mg_mock_publish(m, "device.changed", ev);
	mg_mock_advance(m, 1);
	double t = now_ms() - t0;
	json_decref(d);
	json_decref(ev);
	mg_mock_events_clear(m);
	fw_set_name(set, i % 4 == 0 ? "r0" : i % 4 == 1 ? "r1" : i % 4 == 2 ? "r2" : "r3");
	uint32_t addr = (10u << 24) | (100u << 16) | (uint32_t)i;
	if (fw_nl_set_test(nl, set, addr) != !strcmp(state, "active"))
		die(state, "the kernel's set does not show the change");
	return t;
}

static double ipset_process(const char *op, int i)
{
	char addr[32];
	snprintf(addr, sizeof(addr), "10.100.%d.%d", i >> 8, i & 255);
	char *argv[] = {"ipset", (char *)op, "bench-plain", addr, NULL};
	return run_argv_ms(argv, NULL, 0);
}

struct change_figures {
	struct figure onboard, disable, linear_add, linear_del, ipset_add, ipset_del;
};

/* One round: CHANGES new devices onboarded (pending -> active) then
 * disabled by ours, and the plain ways, who goes first alternating. The
 * linear policy is loaded: a device's rules are removed from the middle
 * of the list and put back at its end. */
static void change_round(struct mg_mock *m, struct fw_nl *nl, int round, struct change_figures *f)
{
	double on[CHANGES], off[CHANGES], add[LINEAR], del[LINEAR], padd[CHANGES], pdel[CHANGES];
	for (int turn = 0; turn < 2; turn++) {
		if (turn == round % 2) {
			for (int k = 0; k < CHANGES; k++) {
				int i = DEVICES + 1 + round * CHANGES + k;
				change(m, nl, i, "pending");
				on[k] = change(m, nl, i, "active");
			}
			for (int k = 0; k < CHANGES; k++)
				off[k] =
				    change(m, nl, DEVICES + 1 + round * CHANGES + k, "disabled");
		} else {
			for (int k = 0; k < LINEAR; k++) {
				int i = DEVICES / 2 + round * LINEAR + k;
				del[k] = linear_restore('D', i, i);
				add[k] = linear_restore('A', i, i);
			}
			for (int k = 0; k < CHANGES; k++) {
				padd[k] = ipset_process("add", DEVICES + 1 + k);
				pdel[k] = ipset_process("del", DEVICES + 1 + k);
			}
		}
	}
	f->onboard.v[round] = median_of(on, CHANGES);
	f->disable.v[round] = median_of(off, CHANGES);
	f->linear_add.v[round] = median_of(add, LINEAR);
	f->linear_del.v[round] = median_of(del, LINEAR);
	f->ipset_add.v[round] = median_of(padd, CHANGES);
	f->ipset_del.v[round] = median_of(pdel, CHANGES);
}

static int hold(const char *vpn_if)
{
	char dir[] = "/tmp/bench_fw.XXXXXX", line[16];
	if (!mkdtemp(dir))
		die("mkdtemp", strerror(errno));
	struct mg_mock *m = mock(dir, 0);
	start(m);
	fill_state(m, vpn_if);
	mg_mock_free(m);
	m = mock(dir, 1);
	start(m);
	printf("ready: 10,000 devices, policy applied in %.1f ms\n", plugin_apply_ms(m));
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		line[0] = '\0';
	mg_mock_stop(m);
	mg_mock_free(m);
	snprintf(line, sizeof(line), "%s", "");
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	sh(cmd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "hold"))
		return hold(argv[2]);
	if (argc != 1) {
		fprintf(stderr, "usage: bench_fw | bench_fw hold VPN_IF\n");
		return 2;
	}
	if (unshare(CLONE_NEWNET))
		die("unshare (run as root)", strerror(errno));
	sh("ip link set lo up && ip link add bfw0 type veth peer name bfw1 && "
	   "ip addr add 10.100.0.1/16 dev bfw0 && ip link set bfw0 up && ip link set bfw1 up");

	char dir[] = "/tmp/bench_fw.XXXXXX";
	if (!mkdtemp(dir))
		die("mkdtemp", strerror(errno));
	struct mg_mock *m = mock(dir, 0);
	start(m);
	fill_state(m, "bfw0");
	mg_mock_free(m);

	printf("firewall policy for %d devices (4 roles, 2 subnets each), in a network namespace; "
	       "%d rounds, ours and the plain way interleaved\n\n",
	       DEVICES, ROUNDS);
	struct figure full = {"ours: whole policy from state", "ms", {0}, ROUNDS},
	              plugin = {"  of which the plugin's own apply", "ms", {0}, ROUNDS},
	              linear = {"one iptables-restore of 30,000 linear rules", "ms", {0}, ROUNDS};
	for (int round = 0; round < ROUNDS; round++) {
		if (round % 2) {
			linear.v[round] = linear_full();
			full.v[round] = ours_full(dir, &plugin.v[round]);
		} else {
			full.v[round] = ours_full(dir, &plugin.v[round]);
			linear.v[round] = linear_full();
		}
	}
	figure_print(&full);
	figure_print(&plugin);
	figure_print(&linear);
	ratio_print("ours / the linear restore", &full, &linear);

	/* the role sets alone, refilled over live sets as at a restart */
	static struct role_sets rs;
	struct fw_buf rs_text = {0};
	struct fw_nl *nl;
	role_sets_init(&rs);
	if (fw_render_sets(&rs_text, &rs.p, NULL) || fw_nl_open(&nl))
		die("role sets", "out of memory or no netlink");
	struct figure fill = {"ours: the 4 role sets refilled (netlink)", "ms", {0}, ROUNDS},
	              restore = {"one `ipset restore` of the same sets", "ms", {0}, ROUNDS};
	ours_sets(nl, &rs); /* the live sets, as a restart finds them */
	for (int round = 0; round < ROUNDS; round++) {
		if (round % 2) {
			restore.v[round] = plain_sets(nl, &rs, &rs_text);
			fill.v[round] = ours_sets(nl, &rs);
		} else {
			fill.v[round] = ours_sets(nl, &rs);
			restore.v[round] = plain_sets(nl, &rs, &rs_text);
		}
	}
	for (int r = 0; r < 4; r++)
		fw_nl_set_destroy(nl, rs.roles[r].set);
	fw_buf_free(&rs_text);
	figure_print(&fill);
	figure_print(&restore);
	ratio_print("ours / ipset restore", &fill, &restore);

	/* ours running and the linear policy loaded, for the changes */
	m = mock(dir, 1);
	start(m);
	linear_restore('A', 1, DEVICES);
	sh("ipset create bench-plain hash:ip");

	struct figure route = {"ours: a route added at runtime", "ms", {0}, ROUNDS};
	for (int round = 0; round < ROUNDS; round++) {
		json_t *req = json_pack("{s:s, s:s, s:[s]}", "subnet", "10.100.0.0/16", "via",
		                        "bfw0", "roles", round % 2 ? "r1" : "r2"),
		       *reply;
		double t0 = now_ms();
		mg_mock_request(m, "firewall.route.add", req, &reply);
		route.v[round] = now_ms() - t0;
		if (!json_is_true(json_object_get(reply, "applied")))
			die("route.add", json_dumps(reply, 0));
		json_decref(req);
		json_decref(reply);
	}
	figure_print(&route);

	struct change_figures c = {
	    .onboard = {"ours: one device onboarded, end to end", "ms", {0}, ROUNDS},
	    .disable = {"ours: one device disabled, end to end", "ms", {0}, ROUNDS},
	    .linear_add = {"iptables-restore of a device's 3 rules", "ms", {0}, ROUNDS},
	    .linear_del = {"iptables-restore deleting its 3 rules", "ms", {0}, ROUNDS},
	    .ipset_add = {"one `ipset add` process", "ms", {0}, ROUNDS},
	    .ipset_del = {"one `ipset del` process", "ms", {0}, ROUNDS},
	};
	for (int round = 0; round < ROUNDS; round++)
		change_round(m, nl, round, &c);
	printf("\none device's change, end to end (state write, event, plugin, kernel, and for a "
	       "removal the conntrack walk), median of %d per round; the linear rules with 30,000 "
	       "loaded:\n",
	       CHANGES);
	figure_print(&c.onboard);
	figure_print(&c.disable);
	figure_print(&c.linear_add);
	figure_print(&c.linear_del);
	figure_print(&c.ipset_add);
	figure_print(&c.ipset_del);
	printf("(the event goes through the mock core's bus, which serializes it as the real bus "
	       "does but has no ZeroMQ hop: bench_bus measures that)\n\n");

	fw_nl_close(nl);
	mg_mock_stop(m);
	mg_mock_free(m);

	table_row("firewall: whole policy, 10k devices", &full, "one iptables-restore of 30k rules",
	          &linear);
	table_row("firewall: role sets of 10k devices refilled", &fill,
	          "one ipset restore of the same sets", &restore);
	table_row("firewall: one device onboarded, end to end", &c.onboard,
	          "iptables-restore of its 3 rules", &c.linear_add);
	table_row("firewall: one device onboarded, end to end", &c.onboard, "ipset add process",
	          &c.ipset_add);
	table_row("firewall: one device disabled, end to end with conntrack walk", &c.disable,
	          "iptables-restore deleting its 3 rules", &c.linear_del);
	table_row("firewall: one device disabled, end to end with conntrack walk", &c.disable,
	          "ipset del process", &c.ipset_del);
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	sh(cmd);
	return 0;
}
