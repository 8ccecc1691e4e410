/* The firewall plugin: deny by default what comes from the VPN, open per
 * role exactly the networks the role may reach.
 *
 * The desired policy is computed from the config and state (wg/server,
 * the devices, our own routes and ports) and reconciled: the rules of our
 * own chains in one iptables-restore, each role set filled through
 * netlink (a few messages of thousands of members, then swapped in), and
 * then each device's change as one set membership change through
 * netlink. The effective policy per role is published in the
 * `policy` database for the client side.
 *
 * A stop keeps what is applied (firewall.on_stop = "keep"): a clean stop
 * leaves the gateway as closed as a crash does, and the next start adopts
 * the rules. Removing them is an explicit act: on_stop = "flush", or the
 * firewall.flush service. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <meshgate/meshgate.h>

#include "fw.h"
#include "metrics.h"
#include "spawn.h"
#include "fw_config.h"
#include "nl.h"

#define DB_POLICY  "policy"
#define DB_ROUTES  "routes"
#define DB_PORTS   "ports"
#define RETRY_MS   1000
#define ERROR_SIZE 512
/* How often a change is tried when its commit loses races to other nodes
 * of a cluster (-ESTALE) before it is answered "conflict". */
#define FW_COMMIT_TRIES 5
/* A route change renders the rules again this long after the first news
 * of it: a node joining the mesh adds several routes at once. */
#define ROUTES_SETTLE_MS 100

struct fw {
	struct fw_cfg cfg;
	struct fw_nl *nl;
	struct fw_routes *routes; /* news of route changes */
	int routes_watched, routes_timer;
	struct fw_members *members; /* active devices, as the sets hold them */
	char vpn_if[IF_NAMESIZE];
	struct fw_prefix vpn_net;
	char **sets; /* the role sets that exist now (NULL-terminated) */
	char *rules; /* the rules as last applied, to skip applying the same */
	int resync_timer, retry_timer, forget_timer;
	uint32_t *forget; /* addresses whose connections are to be forgotten */
	size_t n_forget;
	double last_apply_ms;
	uint64_t applied_at_ms;
	char last_error[ERROR_SIZE];
	int flushed; /* by firewall.flush: nothing applied until a reload or a restart */
	/* how long the policy took to apply, a full one and a rules-only one */
	struct metrics_histogram apply_full, apply_rules;
	uint64_t apply_failures;
};

/* Seconds an apply of the policy takes: milliseconds for the rules, up
 * to seconds for a full one at 10,000 devices. */
static const double apply_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_APPLY_BOUNDS (sizeof(apply_bounds) / sizeof(apply_bounds[0]))

#define FLUSHED_TEXT                                                                         \
	"the firewall was flushed (meshgatectl firewall flush): the change is saved, and a " \
	"reload or a restart of meshgated applies the policy again"

/* The policy with the arrays it points to. */
struct built {
	struct fw_policy p;
	struct fw_role *roles;
	size_t n_roles;
	struct fw_port *vpn_only;
	size_t n_vpn_only;
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- reading state ---- */

static int read_server(mg_ctx *ctx, mg_txn *txn, char *err, size_t errlen)
{
	struct fw *self = ctx->self;
	json_t *server = NULL;
	int rc = mg_state_get(ctx, txn, "wg", "server", &server);
	const char *iface = json_string_value(json_object_get(server, "interface"));
	const char *address = json_string_value(json_object_get(server, "address"));
	if (rc || !fw_ifname_valid(iface) || !address ||
	    fw_prefix_parse(&self->vpn_net, address, 1)) {
		snprintf(err, errlen,
		         rc ? "no wg/server record (is the wireguard plugin running?)"
		            : "wg/server has no usable interface and address");
		json_decref(server);
		return rc ? rc : -EINVAL;
	}
	snprintf(self->vpn_if, sizeof(self->vpn_if), "%s", iface);
	json_decref(server);
	return 0;
}

struct device_walk {
	struct fw_members *members;
	int rc;
};

static int collect_device(const char *key, json_t *device, void *arg)
{
	struct device_walk *w = arg;
	struct fw_member m;
	if (fw_member_from_device(&m, key, device))
		return 0;
	return fw_members_put(w->members, &m);
}

static int read_devices(mg_ctx *ctx, mg_txn *txn, struct fw_members *into)
{
	struct device_walk w = {into, 0};
	int rc = mg_state_foreach(ctx, txn, "devices", NULL, collect_device, &w);
	return rc == -ENOENT ? 0 : rc;
}

/* ---- the desired policy ---- */

static struct fw_role *role_find(struct built *b, const char *name)
{
	for (size_t i = 0; i < b->n_roles; i++)
		if (!strcmp(b->roles[i].name, name))
			return &b->roles[i];
	return NULL;
}

static int role_add(struct built *b, const char *name)
{
	if (role_find(b, name))
		return 0;
	struct fw_role *grown = realloc(b->roles, (b->n_roles + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	b->roles = grown;
	struct fw_role *r = &b->roles[b->n_roles++];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	fw_set_name(r->set, name);
	return 0;
}

/* The interface a subnet lies behind, from the routing table ("" when no
 * route covers it: the rules then match the subnet alone). */
static void lookup_iface(const struct fw_prefix *prefix, char iface[IF_NAMESIZE])
{
	char text[FW_PREFIX_TEXT];
	struct nl_route_match m;
	fw_prefix_format(text, prefix);
	iface[0] = '\0';
	if (!nl_route_lookup(text, &m))
		snprintf(iface, IF_NAMESIZE, "%s", m.ifname);
}

static int net_add(struct fw_role *r, const struct fw_prefix *prefix, const char *via, int runtime)
{
	for (size_t i = 0; i < r->n_nets; i++)
		if (r->nets[i].prefix.addr == prefix->addr && r->nets[i].prefix.len == prefix->len)
			return 0;
	struct fw_net *grown = realloc(r->nets, (r->n_nets + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	r->nets = grown;
	struct fw_net *n = &r->nets[r->n_nets++];
	memset(n, 0, sizeof(*n));
	n->prefix = *prefix;
	n->runtime = runtime;
	if (via && via[0])
		snprintf(n->iface, sizeof(n->iface), "%s", via);
	else
		lookup_iface(prefix, n->iface);
	return 0;
}

struct route_walk {
	struct built *b;
	int rc;
};

static int collect_route(const char *key, json_t *route, void *arg)
{
	struct route_walk *w = arg;
	struct fw_prefix prefix;
	const char *via = json_string_value(json_object_get(route, "via"));
	size_t i;
	json_t *role;
	if (fw_prefix_parse(&prefix, key, 0))
		return 0;
	json_array_foreach(json_object_get(route, "roles"), i, role)
	{
		const char *name = json_string_value(role);
		if (!fw_role_valid(name))
			continue;
		int rc = role_add(w->b, name);
		if (!rc)
			rc = net_add(role_find(w->b, name), &prefix, via, 1);
		if (rc)
			return rc;
	}
	return 0;
}

static int collect_port(const char *key, json_t *value, void *arg)
{
	struct built *b = arg;
	struct fw_port p;
	(void)value;
	if (!fw_port_parse(&p, key) && fw_ports_add(&b->vpn_only, &b->n_vpn_only, p) < 0)
		return -ENOMEM;
	return 0;
}

static int compare_role(const void *a, const void *b)
{
	return strcmp(((const struct fw_role *)a)->name, ((const struct fw_role *)b)->name);
}

struct member_walk {
	struct built *b;
	int rc;
};

static int place_member(const struct fw_member *m, void *arg)
{
	struct built *b = arg;
	struct fw_role key, *r;
	snprintf(key.name, sizeof(key.name), "%s", m->role);
	r = bsearch(&key, b->roles, b->n_roles, sizeof(*b->roles), compare_role);
	if (!r)
		return 0;
	uint32_t *grown = realloc(r->members, (r->n_members + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	r->members = grown;
	r->members[r->n_members++] = m->addr;
	return 0;
}

static void built_free(struct built *b)
{
	for (size_t i = 0; i < b->n_roles; i++) {
		free(b->roles[i].nets);
		free(b->roles[i].members);
	}
	free(b->roles);
	free(b->vpn_only);
	memset(b, 0, sizeof(*b));
}

/* The roles with a full tunnel, told or allowed: their own set even when
 * they reach no subnet, for the masquerade and the internet rule. */
static int mark_full_tunnel(struct built *b, const struct fw_cfg *c)
{
	const struct fw_role_names *lists[] = {&c->internet_roles, &c->full_tunnel_roles};
	for (size_t l = 0; l < 2; l++)
		for (size_t i = 0; i < lists[l]->n; i++) {
			int rc = role_add(b, lists[l]->names[i]);
			if (rc)
				return rc;
			struct fw_role *r = role_find(b, lists[l]->names[i]);
			r->internet = 1;
			r->full_tunnel |= l == 1;
		}
	return 0;
}

/* Config + routes + ports + the member index -> the policy. The caller
 * read wg/server in the same transaction. */
static int build(mg_ctx *ctx, mg_txn *txn, int with_members, struct built *b)
{
	struct fw *self = ctx->self;
	const struct fw_cfg *c = &self->cfg;
	int rc = 0;
	memset(b, 0, sizeof(*b));
	for (size_t i = 0; !rc && i < c->n_roles; i++) {
		rc = role_add(b, c->roles[i].name);
		struct fw_role *r = role_find(b, c->roles[i].name);
		for (size_t j = 0; !rc && j < c->roles[i].n_nets; j++) {
			const struct fw_cfg_net *n = &c->roles[i].nets[j];
			rc = n->vpn ? net_add(r, &self->vpn_net, self->vpn_if, 0)
			            : net_add(r, &n->prefix, n->via, 0);
		}
	}
	struct route_walk w = {b, 0};
	if (!rc)
		rc = mg_state_foreach(ctx, txn, DB_ROUTES, NULL, collect_route, &w);
	for (size_t i = 0; (!rc || rc == -ENOENT) && i < c->n_vpn_only; i++)
		rc = fw_ports_add(&b->vpn_only, &b->n_vpn_only, c->vpn_only[i]) < 0 ? -ENOMEM : 0;
	if (!rc || rc == -ENOENT)
		rc = mg_state_foreach(ctx, txn, DB_PORTS, NULL, collect_port, b);
	if (rc && rc != -ENOENT) {
		built_free(b);
		return rc;
	}
	if (!rc || rc == -ENOENT)
		rc = mark_full_tunnel(b, c);
	if (rc && rc != -ENOENT) {
		built_free(b);
		return rc;
	}
	qsort(b->roles, b->n_roles, sizeof(*b->roles), compare_role);
	if (with_members && (rc = fw_members_each(self->members, place_member, b))) {
		built_free(b);
		return rc;
	}
	struct fw_policy *p = &b->p;
	snprintf(p->vpn_if, sizeof(p->vpn_if), "%s", self->vpn_if);
	if (c->public_if[0]) {
		snprintf(p->public_if, sizeof(p->public_if), "%s", c->public_if);
	} else {
		struct fw_prefix any = {0, 0};
		lookup_iface(&any, p->public_if);
		if (!strcmp(p->public_if, self->vpn_if))
			p->public_if[0] = '\0';
	}
	p->host_ping = c->host_ping;
	p->mss_clamp = c->mss_clamp;
	p->host_ports = c->host_ports;
	p->n_host_ports = c->n_host_ports;
	p->vpn_only = b->vpn_only;
	p->n_vpn_only = b->n_vpn_only;
	p->roles = b->roles;
	p->n_roles = b->n_roles;
	return 0;
}

/* ---- publishing the effective policy ---- */

static json_t *subnets_json(const struct fw_role *r)
{
	json_t *a = json_array();
	for (size_t i = 0; i < r->n_nets; i++) {
		char text[FW_PREFIX_TEXT];
		fw_prefix_format(text, &r->nets[i].prefix);
		json_array_append_new(a, json_string(text));
	}
	return a;
}

static int collect_key(const char *key, json_t *value, void *arg)
{
	(void)value;
	return json_array_append_new(arg, json_string(key)) ? -ENOMEM : 0;
}

/* policy/<role> = {"role", "subnets", "full_tunnel"?: true}, written
 * only where it changed;
 * records of roles that are gone are removed. */
static int write_policy_once(mg_ctx *ctx, const struct fw_policy *p)
{
	mg_txn *txn;
	int rc = mg_txn_begin(ctx, 0, &txn), changed = 0;
	if (rc)
		return rc;
	json_t *keys = json_array(), *key;
	size_t i;
	rc = mg_state_foreach(ctx, txn, DB_POLICY, NULL, collect_key, keys);
	if (rc == -ENOENT)
		rc = 0;
	json_array_foreach(keys, i, key)
	{
		int keep = 0;
		for (size_t r = 0; r < p->n_roles; r++)
			keep |= !strcmp(p->roles[r].name, json_string_value(key));
		if (!keep && !rc &&
		    !(rc = mg_state_del(ctx, txn, DB_POLICY, json_string_value(key))))
			changed = 1;
	}
	json_decref(keys);
	for (size_t r = 0; !rc && r < p->n_roles; r++) {
		json_t *old = NULL, *subnets = subnets_json(&p->roles[r]);
		mg_state_get(ctx, txn, DB_POLICY, p->roles[r].name, &old);
		int full = p->roles[r].full_tunnel;
		if (!old || !json_equal(json_object_get(old, "subnets"), subnets) ||
		    json_is_true(json_object_get(old, "full_tunnel")) != full) {
			json_t *record =
			    json_pack("{s:s, s:O}", "role", p->roles[r].name, "subnets", subnets);
			if (full)
				json_object_set_new(record, "full_tunnel", json_true());
			rc = mg_state_put(ctx, txn, DB_POLICY, p->roles[r].name, record);
			json_decref(record);
			changed = 1;
		}
		json_decref(old);
		json_decref(subnets);
	}
	if (rc || !changed) {
		mg_txn_abort(ctx, txn);
		return rc;
	}
	return mg_txn_commit(ctx, txn);
}

/* In a cluster every node writes the same records from the same config:
 * a commit that lost a race to another node's (-ESTALE) is tried again on
 * the caught-up mirror, where it mostly finds nothing left to write. The
 * records are not what this node enforces: without quorum (-EHOSTUNREACH)
 * the rules stay applied and the records follow at the next reconcile. */
static int write_policy(mg_ctx *ctx, const struct fw_policy *p)
{
	int rc = write_policy_once(ctx, p);
	for (int tries = 1; rc == -ESTALE && tries < FW_COMMIT_TRIES; tries++)
		rc = write_policy_once(ctx, p);
	if (rc == -EHOSTUNREACH) {
		mg_log_limited(ctx, MG_LOG_WARN, "policy no quorum",
		               "the policy records wait for the cluster's quorum (the rules are "
		               "applied)");
		rc = 0;
	}
	return rc;
}

/* ---- applying ---- */

static int has_set(char **sets, const char *name)
{
	for (size_t i = 0; sets && sets[i]; i++)
		if (!strcmp(sets[i], name))
			return 1;
	return 0;
}

static int run_restore(struct fw *self, const char *text, size_t len, char *err, size_t errlen)
{
	char *argv[] = {self->cfg.iptables_restore, "-w", "5", "--noflush", NULL};
	return mg_spawn_check(argv, text, len, NULL, err, errlen);
}

/* The role's set made to hold exactly its members, in one step. */
static int fill_set(struct fw *self, const struct fw_role *role, char *err, size_t errlen)
{
	size_t refused;
	int rc = fw_nl_set_replace(self->nl, role->set, role->members, role->n_members, &refused);
	if (rc && refused < role->n_members) {
		char member[FW_PREFIX_TEXT];
		fw_prefix_format(member, &(struct fw_prefix){role->members[refused], 32});
		snprintf(err, errlen,
		         "cannot fill the set %s of role %s: the kernel refused member %s: %s (the "
		         "set keeps its members)",
		         role->set, role->name, member, fw_nl_strerror(rc));
	} else if (rc) {
		snprintf(err, errlen, "cannot fill the set %s of role %s: %s", role->set,
		         role->name, fw_nl_strerror(rc));
	}
	return rc;
}

static int read_existing(struct fw *self, struct fw_existing *e, char *err, size_t errlen)
{
	/* every table: ours are in filter and nat */
	char *argv[] = {self->cfg.iptables_save, NULL}, *out = NULL;
	int rc = mg_spawn_check(argv, NULL, 0, &out, err, errlen);
	if (!rc && (rc = fw_existing_parse(e, out)))
		snprintf(err, errlen, "out of memory");
	free(out);
	return rc;
}

/* Sets of ours that the policy no longer has, after the rules stopped
 * using them. `have` NULL: ask the kernel. */
static void destroy_stale_sets(mg_ctx *ctx, const struct fw_policy *p, char **have)
{
	struct fw *self = ctx->self;
	char **listed = NULL;
	if (!have && fw_nl_set_list(self->nl, FW_PREFIX, &listed) == 0)
		have = listed;
	for (size_t i = 0; have && have[i]; i++) {
		int wanted = 0;
		for (size_t r = 0; r < p->n_roles; r++)
			wanted |= !strcmp(p->roles[r].set, have[i]);
		int rc = wanted ? 0 : fw_nl_set_destroy(self->nl, have[i]);
		if (rc && rc != -ENOENT)
			mg_warn(ctx, "cannot destroy set %s: %s", have[i], strerror(-rc));
	}
	fw_strv_free(listed);
}

static char **set_names(const struct fw_policy *p)
{
	char **v = calloc(p->n_roles + 1, sizeof(*v));
	for (size_t r = 0; v && r < p->n_roles; r++)
		if (!(v[r] = strdup(p->roles[r].set))) {
			fw_strv_free(v);
			return NULL;
		}
	return v;
}

/* Removes every hook, chain and set of ours, whoever left them. */
static int teardown(mg_ctx *ctx, char *err, size_t errlen)
{
	struct fw *self = ctx->self;
	struct fw_existing existing;
	struct fw_buf text = {0};
	struct fw_policy none = {0};
	int rc = read_existing(self, &existing, err, errlen);
	if (rc)
		return rc;
	if (existing.n_hooks || existing.n_chains || existing.n_nat_hooks || existing.nat_chain) {
		rc = fw_render_teardown(&text, &existing);
		if (!rc)
			rc = run_restore(self, text.data, text.len, err, errlen);
	}
	fw_existing_free(&existing);
	fw_buf_free(&text);
	destroy_stale_sets(ctx, &none, NULL);
	return rc;
}

/* Old members whose address or role changed, or that are gone. */
struct forget {
	const struct fw_members *fresh;
	uint32_t *addrs;
	size_t n;
	int rc;
};

static int find_forgotten(const struct fw_member *old, void *arg)
{
	struct forget *f = arg;
	const struct fw_member *now = fw_members_get(f->fresh, old->id);
	if (now && now->addr == old->addr && !strcmp(now->role, old->role))
		return 0;
	uint32_t *grown = realloc(f->addrs, (f->n + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	f->addrs = grown;
	f->addrs[f->n++] = old->addr;
	return 0;
}

static void retry_later(mg_ctx *ctx);

/* Brings the system to the policy. full: everything from state (the
 * devices too), the sets refilled and the hooks checked against
 * iptables-save, as at start; otherwise the rules are applied when their
 * text changed, and only new roles' sets are made. */
static int reconcile(mg_ctx *ctx, int full)
{
	struct fw *self = ctx->self;
	char err[ERROR_SIZE] = "";
	struct built b = {0};
	struct fw_existing existing = {0};
	struct fw_buf rules = {0}, canon = {0};
	struct forget forget = {0};
	struct fw_members *fresh = NULL;
	mg_txn *txn;
	double t0 = now_ms();
	if (self->flushed)
		return -ECANCELED; /* not an error to retry: the operator's choice */
	int rc = mg_txn_begin(ctx, MG_TXN_READ, &txn);
	if (rc) {
		snprintf(err, sizeof(err), "cannot read state: %s", strerror(-rc));
		goto out;
	}
	rc = read_server(ctx, txn, err, sizeof(err));
	if (!rc && full) {
		if (!(fresh = fw_members_new()))
			rc = -ENOMEM;
		else if ((rc = read_devices(ctx, txn, fresh)))
			snprintf(err, sizeof(err), "cannot read the devices: %s", strerror(-rc));
	}
	if (!rc && fresh) {
		forget.fresh = fresh;
		fw_members_each(self->members, find_forgotten, &forget);
		fw_members_free(self->members);
		self->members = fresh;
		fresh = NULL;
	}
	if (!rc && (rc = build(ctx, txn, 1, &b)))
		snprintf(err, sizeof(err), "cannot build the policy: %s", strerror(-rc));
	mg_txn_abort(ctx, txn);
	if (rc)
		goto out;
	if (!b.p.public_if[0] && (self->cfg.internet_roles.n || self->cfg.full_tunnel_roles.n))
		mg_log_limited(ctx, MG_LOG_WARN, "full tunnel no public interface",
		               "no public interface (firewall.public_interface, or a default "
		               "route): the full tunnel's roles reach no internet");

	/* sets first: the rules name them */
	for (size_t r = 0; !rc && r < b.n_roles; r++)
		if (full || !has_set(self->sets, b.roles[r].set))
			rc = fill_set(self, &b.roles[r], err, sizeof(err));
	if (rc)
		goto out;

	/* the rules as they are once applied (the hooks there once each):
	 * what is compared with the last applied text */
	char in[] = "-A INPUT -j " FW_CHAIN_IN, fwd[] = "-A FORWARD -j " FW_CHAIN_FWD;
	char *hooks[] = {in, fwd};
	int masquerades = fw_policy_masquerades(&b.p);
	struct fw_existing hooked = {hooks, 2, NULL, 0, (size_t)masquerades, masquerades};
	if ((rc = fw_render_rules(&canon, &b.p, &hooked)))
		goto out;
	/* the masquerade's hook comes or goes only with iptables-save's word */
	int masqueraded = self->rules && strstr(self->rules, "\n*nat\n");
	if (full || masquerades != masqueraded) {
		if ((rc = read_existing(self, &existing, err, sizeof(err))) ||
		    (rc = fw_render_rules(&rules, &b.p, &existing)) ||
		    (rc = run_restore(self, rules.data, rules.len, err, sizeof(err))))
			goto out;
	} else if (!self->rules || strcmp(self->rules, canon.data)) {
		if ((rc = run_restore(self, canon.data, canon.len, err, sizeof(err))))
			goto out;
	}
	free(self->rules);
	self->rules = canon.data;
	canon.data = NULL;

	destroy_stale_sets(ctx, &b.p, full ? NULL : self->sets);
	char **names = set_names(&b.p);
	if (names) {
		fw_strv_free(self->sets);
		self->sets = names;
	}
	fw_nl_ct_forget(self->nl, forget.addrs, forget.n);
	if ((rc = write_policy(ctx, &b.p)))
		snprintf(err, sizeof(err), "cannot write the policy records: %s", strerror(-rc));
	self->last_apply_ms = now_ms() - t0;
	self->applied_at_ms = mg_now_ms(ctx);
	metrics_observe(full ? &self->apply_full : &self->apply_rules, self->last_apply_ms / 1e3);
out:
	if (rc && rc != -ENOMEM && !err[0])
		snprintf(err, sizeof(err), "%s", strerror(-rc));
	if (rc == -ENOMEM && !err[0])
		snprintf(err, sizeof(err), "out of memory");
	if (rc) {
		self->apply_failures++;
		mg_error_log(ctx, "cannot apply the policy: %s", err);
		snprintf(self->last_error, sizeof(self->last_error), "%s", err);
		retry_later(ctx);
	} else {
		self->last_error[0] = '\0';
		mg_debug(ctx, "policy applied (%s) in %.1f ms: %zu roles, %zu devices",
		         full ? "full" : "rules", self->last_apply_ms, b.n_roles,
		         fw_members_count(self->members));
	}
	fw_members_free(fresh);
	free(forget.addrs);
	fw_buf_free(&rules);
	fw_buf_free(&canon);
	fw_existing_free(&existing);
	built_free(&b);
	return rc;
}

static void resync(mg_ctx *ctx, void *arg)
{
	(void)arg;
	reconcile(ctx, 1);
}

static void retry(mg_ctx *ctx, void *arg)
{
	struct fw *self = ctx->self;
	(void)arg;
	self->retry_timer = 0;
	reconcile(ctx, 1);
}

/* After a failure: everything again in a second (once, however many
 * failures until then). */
static void retry_later(mg_ctx *ctx)
{
	struct fw *self = ctx->self;
	if (self->retry_timer <= 0)
		self->retry_timer = mg_timer_add(ctx, RETRY_MS, 0, retry, NULL);
}

/* The interface behind each subnet is the routing table's, looked up at
 * each rendering: when a route comes or goes (the mesh plugin routing
 * another node's site over the mesh, a link going down) the rules are
 * rendered again, once the burst of news is over, and applied if their
 * text changed. Without this a subnet bound to the default route's
 * interface at start would stay dropped on its new path until the next
 * resync. */
static void routes_settled(mg_ctx *ctx, void *arg)
{
	struct fw *self = ctx->self;
	(void)arg;
	self->routes_timer = 0;
	reconcile(ctx, 0);
}

static void on_routes_changed(mg_ctx *ctx, int fd, int events, void *arg)
{
	struct fw *self = ctx->self;
	(void)fd;
	(void)events;
	(void)arg;
	int rc = fw_routes_drain(self->routes);
	if (rc < 0)
		mg_warn(ctx, "cannot read route changes: %s", strerror(-rc));
	if (rc && self->routes_timer <= 0)
		self->routes_timer = mg_timer_add(ctx, ROUTES_SETTLE_MS, 0, routes_settled, NULL);
}

/* ---- one device at a time ---- */

static int set_of(struct fw *self, const char *role, char set[FW_SETNAME_MAX])
{
	fw_set_name(set, role);
	return has_set(self->sets, set);
}

static void forget_now(mg_ctx *ctx, void *arg)
{
	struct fw *self = ctx->self;
	(void)arg;
	self->forget_timer = 0;
	int rc = fw_nl_ct_forget(self->nl, self->forget, self->n_forget);
	if (rc < 0)
		mg_warn(ctx, "cannot forget the connections of %zu devices: %s", self->n_forget,
		        strerror(-rc));
	self->n_forget = 0;
}

/* The connections of addr are forgotten right after the event: the set
 * change, which is what new flows see, is not delayed by the walk of the
 * conntrack table, and a burst of changes costs one walk. */
static void forget_soon(mg_ctx *ctx, uint32_t addr)
{
	struct fw *self = ctx->self;
	uint32_t *grown = realloc(self->forget, (self->n_forget + 1) * sizeof(*grown));
	if (!grown)
		return;
	self->forget = grown;
	self->forget[self->n_forget++] = addr;
	if (self->forget_timer <= 0)
		self->forget_timer = mg_timer_add(ctx, 1, 0, forget_now, NULL);
}

/* Moves one device's membership from what the index says to `want`
 * (NULL: in no set): the new membership first, so that a flow the new
 * role also allows never sees a gap, then the old one out and its
 * connections forgotten, so that the rules judge its next packet. */
static void member_apply(mg_ctx *ctx, const char *id, const struct fw_member *want)
{
	struct fw *self = ctx->self;
	const struct fw_member *have_p = fw_members_get(self->members, id);
	int had = have_p != NULL;
	struct fw_member have = had ? *have_p : (struct fw_member){0};
	char set[FW_SETNAME_MAX];
	int rc = 0;
	if (had && want && have.addr == want->addr && !strcmp(have.role, want->role)) {
		fw_members_put(self->members, want); /* the user may have changed */
		return;
	}
	if (want) {
		if (fw_members_put(self->members, want))
			rc = -ENOMEM;
		else if (set_of(self, want->role, set))
			rc = fw_nl_set_add(self->nl, set, want->addr);
	} else {
		fw_members_del(self->members, id);
	}
	/* it differs in address or role: the old membership goes */
	if (!rc && had) {
		if (set_of(self, have.role, set))
			rc = fw_nl_set_del(self->nl, set, have.addr);
		if (!rc)
			forget_soon(ctx, have.addr);
	}
	if (rc) {
		mg_warn(ctx, "device %s: cannot change its set membership: %s (retrying in full)",
		        id, strerror(-rc));
		retry_later(ctx);
	}
}

static void device_reconcile(mg_ctx *ctx, const char *id)
{
	json_t *device = NULL;
	mg_txn *txn;
	struct fw_member want;
	if (mg_txn_begin(ctx, MG_TXN_READ, &txn)) {
		retry_later(ctx);
		return;
	}
	mg_state_get(ctx, txn, "devices", id, &device);
	mg_txn_abort(ctx, txn);
	member_apply(ctx, id, fw_member_from_device(&want, id, device) ? NULL : &want);
	json_decref(device);
}

/* device.changed: the device is read from state, the truth. */
static void on_device_changed(mg_ctx *ctx, const char *topic, json_t *event, void *arg)
{
	const char *id = json_string_value(json_object_get(event, "id"));
	(void)topic;
	(void)arg;
	if (id && strlen(id) < sizeof(((struct fw_member *)0)->id))
		device_reconcile(ctx, id);
}

struct user_walk {
	const char *user;
	json_t *ids;
};

static int devices_of(const struct fw_member *m, void *arg)
{
	struct user_walk *w = arg;
	if (!strcmp(m->user, w->user))
		json_array_append_new(w->ids, json_string(m->id));
	return 0;
}

/* user.changed: the user's devices in the sets are read again (a role
 * change or a deletion; preauth announces each device too). */
static void on_user_changed(mg_ctx *ctx, const char *topic, json_t *event, void *arg)
{
	struct fw *self = ctx->self;
	struct user_walk w = {json_string_value(json_object_get(event, "name")), json_array()};
	size_t i;
	json_t *id;
	(void)topic;
	(void)arg;
	if (w.user)
		fw_members_each(self->members, devices_of, &w);
	json_array_foreach(w.ids, i, id) device_reconcile(ctx, json_string_value(id));
	json_decref(w.ids);
}

/* state.wg: the VPN interface or subnet may have changed. */
static void on_wg_changed(mg_ctx *ctx, const char *topic, json_t *event, void *arg)
{
	(void)topic;
	(void)event;
	(void)arg;
	reconcile(ctx, 0);
}

/* state.routes, state.ports: another node of the cluster added or removed
 * a route or a VPN-only port (our own changes are applied by the service
 * that made them). The rules are rendered again from state, as after our
 * own change: only if their text changed are they applied, and a new
 * role's set is made. The `policy` records are our output, not an input:
 * written the same by every node with the same config, their remote
 * changes need nothing here. */
static void on_remote_change(mg_ctx *ctx, const char *topic, json_t *event, void *arg)
{
	(void)arg;
	if (!json_is_true(json_object_get(event, "remote")))
		return;
	mg_info(ctx, "%s %s changed by another node", topic + strlen("state."),
	        json_string_value(json_object_get(event, "key")));
	reconcile(ctx, 0);
}

/* ---- services ---- */

/* More roles on one route is a typo, not a policy. */
#define ROUTE_ROLES_MAX 64

static json_t *bad_subnet(const char *text)
{
	struct fw_prefix loose;
	char fixed[FW_PREFIX_TEXT];
	if (text && !fw_prefix_parse(&loose, text, 1)) {
		fw_prefix_format(fixed, &loose);
		return mg_field_error("subnet", "'%s' has host bits set: did you mean %s?", text,
		                      fixed);
	}
	return mg_field_error("subnet", "'subnet' must be an IPv4 subnet like \"172.20.0.0/24\"");
}

/* Commits one put or del (-ENOENT: nothing to delete) of our own
 * databases. A commit that lost a race to another node of a cluster
 * (-ESTALE; the mirror has caught up) is tried again from a fresh
 * transaction. */
static int write_one(mg_ctx *ctx, const char *db, const char *key, json_t *value)
{
	int rc = -ESTALE;
	for (int tries = 0; rc == -ESTALE && tries < FW_COMMIT_TRIES; tries++) {
		mg_txn *txn;
		if ((rc = mg_txn_begin(ctx, 0, &txn)))
			return rc;
		rc = value ? mg_state_put(ctx, txn, db, key, value)
		           : mg_state_del(ctx, txn, db, key);
		if (rc)
			mg_txn_abort(ctx, txn);
		else
			rc = mg_txn_commit(ctx, txn);
	}
	return rc;
}

/* The reply to a failed write_one. */
static json_t *save_error(const char *what, int rc)
{
	if (rc == -EHOSTUNREACH)
		return mg_error("unavailable",
		                "cannot save the %s: the cluster cannot take a write now (no etcd "
		                "quorum)",
		                what);
	if (rc == -ESTALE)
		return mg_error(
		    "conflict",
		    "cannot save the %s: other gateways of the cluster kept changing it; "
		    "try again",
		    what);
	return mg_error("internal", "cannot save the %s: %s", what, strerror(-rc));
}

/* Whether the key exists in one of our databases. */
static int exists(mg_ctx *ctx, const char *db, const char *key)
{
	mg_txn *txn;
	json_t *v = NULL;
	if (mg_txn_begin(ctx, MG_TXN_READ, &txn))
		return 0;
	int rc = mg_state_get(ctx, txn, db, key, &v);
	mg_txn_abort(ctx, txn);
	json_decref(v);
	return rc == 0;
}

/* The reply of a change: the record, and whether the system follows. */
static json_t *applied(mg_ctx *ctx, json_t *reply, double t0)
{
	struct fw *self = ctx->self;
	int rc = reconcile(ctx, 0);
	json_object_set_new(reply, "applied", json_boolean(!rc));
	json_object_set_new(reply, "apply_ms", json_real(now_ms() - t0));
	if (self->flushed)
		json_object_set_new(reply, "flushed", json_true());
	if (rc)
		json_object_set_new(reply, "apply_error",
		                    json_string(self->flushed ? FLUSHED_TEXT : self->last_error));
	return reply;
}

static json_t *route_add(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {
	    {"subnet", MG_FIELD_STRING, 1, 1, 64},
	    {"via", MG_FIELD_STRING, 0, 1, IF_NAMESIZE - 1},
	    {"roles", MG_FIELD_STRINGS, 1, 1, ROUTE_ROLES_MAX},
	    {0},
	};
	const char *subnet = json_string_value(json_object_get(request, "subnet"));
	const char *via = json_string_value(json_object_get(request, "via"));
	json_t *roles = json_object_get(request, "roles"), *role, *error;
	struct fw_prefix prefix;
	char key[FW_PREFIX_TEXT];
	double t0 = now_ms();
	size_t i;
	(void)service;
	(void)arg;
	if ((error = mg_request_check(ctx, request, fields)))
		return error;
	if (!subnet || fw_prefix_parse(&prefix, subnet, 0))
		return bad_subnet(subnet);
	if (via && !fw_ifname_valid(via))
		return mg_field_error("via", "'via' must be an interface name");
	if (via && nl_link_index(via) < 0)
		return mg_field_error("via", "no interface '%s' on the gateway", via);
	json_t *unique = json_array();
	json_array_foreach(roles, i, role)
	{
		if (!fw_role_valid(json_string_value(role))) {
			json_decref(unique);
			return mg_field_error("roles",
			                      "'%s' is not a role name (1-32 of a-z 0-9 -)",
			                      json_string_value(role));
		}
		size_t j;
		json_t *u;
		int dup = 0;
		json_array_foreach(unique, j, u) dup |= json_equal(u, role);
		if (!dup)
			json_array_append(unique, role);
	}
	fw_prefix_format(key, &prefix);
	char iface[IF_NAMESIZE];
	if (via)
		snprintf(iface, sizeof(iface), "%s", via);
	else
		lookup_iface(&prefix, iface);
	if (!iface[0]) {
		json_decref(unique);
		return mg_field_error("via",
		                      "no route to %s on the gateway: name its interface "
		                      "('via')",
		                      key);
	}
	json_t *record = json_pack("{s:s, s:o, s:I}", "subnet", key, "roles", unique, "created_at",
	                           (json_int_t)(mg_now_ms(ctx) / 1000));
	if (via)
		json_object_set_new(record, "via", json_string(via));
	int rc = write_one(ctx, DB_ROUTES, key, record);
	if (rc) {
		json_decref(record);
		return save_error("route", rc);
	}
	mg_info(ctx, "route %s via %s added", key, iface);
	json_object_set_new(record, "interface", json_string(iface));
	return applied(ctx, record, t0);
}

static json_t *route_del(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{"subnet", MG_FIELD_STRING, 1, 1, 64}, {0}};
	const char *subnet = json_string_value(json_object_get(request, "subnet"));
	struct fw_prefix prefix;
	char key[FW_PREFIX_TEXT];
	json_t *error;
	double t0 = now_ms();
	(void)service;
	(void)arg;
	if ((error = mg_request_check(ctx, request, fields)))
		return error;
	if (!subnet || fw_prefix_parse(&prefix, subnet, 0))
		return bad_subnet(subnet);
	fw_prefix_format(key, &prefix);
	/* -ENOENT too when another node removed it meanwhile */
	int rc = exists(ctx, DB_ROUTES, key) ? write_one(ctx, DB_ROUTES, key, NULL) : -ENOENT;
	if (rc == -ENOENT)
		return mg_error("not_found",
		                "no route %s was added at runtime (the config's roles are changed "
		                "in the config)",
		                key);
	if (rc)
		return save_error("route", rc);
	mg_info(ctx, "route %s removed", key);
	return applied(ctx, json_pack("{s:s, s:b}", "subnet", key, "deleted", 1), t0);
}

/* Every network of the policy with the roles that reach it. */
static json_t *route_list(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct built b;
	mg_txn *txn;
	json_t *error, *routes;
	(void)service;
	(void)arg;
	if ((error = mg_request_check(ctx, request, fields)))
		return error;
	if (mg_txn_begin(ctx, MG_TXN_READ, &txn))
		return mg_error("internal", "cannot read state");
	int rc = build(ctx, txn, 0, &b);
	mg_txn_abort(ctx, txn);
	if (rc)
		return mg_error("internal", "cannot build the policy: %s", strerror(-rc));
	routes = json_object();
	for (size_t r = 0; r < b.n_roles; r++)
		for (size_t i = 0; i < b.roles[r].n_nets; i++) {
			const struct fw_net *n = &b.roles[r].nets[i];
			char key[FW_PREFIX_TEXT];
			fw_prefix_format(key, &n->prefix);
			json_t *e = json_object_get(routes, key);
			if (!e) {
				e = json_pack("{s:s, s:s, s:[], s:s}", "subnet", key, "interface",
				              n->iface, "roles", "source",
				              n->runtime ? "runtime" : "config");
				json_object_set_new(routes, key, e);
			}
			json_array_append_new(json_object_get(e, "roles"),
			                      json_string(b.roles[r].name));
			if (n->runtime)
				json_object_set_new(e, "source", json_string("runtime"));
		}
	built_free(&b);
	json_t *list = json_array(), *e;
	const char *key;
	json_object_foreach(routes, key, e) json_array_append(list, e);
	json_decref(routes);
	return json_pack("{s:o}", "routes", list);
}

static json_t *port_change(mg_ctx *ctx, json_t *request, int add)
{
	static const struct mg_field fields[] = {{"port", MG_FIELD_STRING, 1, 1, 16}, {0}};
	struct fw_port port;
	const char *text = json_string_value(json_object_get(request, "port"));
	char key[16];
	json_t *error;
	double t0 = now_ms();
	if ((error = mg_request_check(ctx, request, fields)))
		return error;
	if (!text || fw_port_parse(&port, text))
		return mg_field_error("port", "'port' must be like \"8080/tcp\" or \"53/udp\"");
	fw_port_format(key, &port);
	json_t *record = add ? json_pack("{s:s, s:I}", "port", key, "created_at",
	                                 (json_int_t)(mg_now_ms(ctx) / 1000))
	                     : NULL;
	/* -ENOENT too when another node removed it meanwhile */
	int rc =
	    add || exists(ctx, DB_PORTS, key) ? write_one(ctx, DB_PORTS, key, record) : -ENOENT;
	json_decref(record);
	if (rc == -ENOENT)
		return mg_error("not_found",
		                "no VPN-only port %s was added at runtime (those of "
		                "firewall.vpn_only_ports are changed in the config)",
		                key);
	if (rc)
		return save_error("port", rc);
	mg_info(ctx, "VPN-only port %s %s", key, add ? "added" : "removed");
	return applied(ctx,
	               add ? json_pack("{s:s}", "port", key)
	                   : json_pack("{s:s, s:b}", "port", key, "deleted", 1),
	               t0);
}

static json_t *port_add(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	(void)service;
	(void)arg;
	return port_change(ctx, request, 1);
}

static json_t *port_del(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	(void)service;
	(void)arg;
	return port_change(ctx, request, 0);
}

static json_t *ports_json(const struct fw_port *ports, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		char text[16];
		fw_port_format(text, &ports[i]);
		json_array_append_new(a, json_string(text));
	}
	return a;
}

static json_t *port_list(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct fw *self = ctx->self;
	struct built b;
	mg_txn *txn;
	json_t *error;
	(void)service;
	(void)arg;
	if ((error = mg_request_check(ctx, request, fields)))
		return error;
	if (mg_txn_begin(ctx, MG_TXN_READ, &txn))
		return mg_error("internal", "cannot read state");
	int rc = build(ctx, txn, 0, &b);
	mg_txn_abort(ctx, txn);
	if (rc)
		return mg_error("internal", "cannot build the policy: %s", strerror(-rc));
	json_t *list = json_array();
	for (size_t i = 0; i < b.n_vpn_only; i++) {
		char text[16];
		int config = 0;
		fw_port_format(text, &b.vpn_only[i]);
		for (size_t j = 0; j < self->cfg.n_vpn_only; j++)
			config |= self->cfg.vpn_only[j].port == b.vpn_only[i].port &&
			          self->cfg.vpn_only[j].proto == b.vpn_only[i].proto;
		json_array_append_new(list, json_pack("{s:s, s:s}", "port", text, "source",
		                                      config ? "config" : "runtime"));
	}
	json_t *reply = json_pack("{s:o, s:o, s:s}", "vpn_only", list, "vpn_host",
	                          ports_json(self->cfg.host_ports, self->cfg.n_host_ports),
	                          "public_interface", b.p.public_if[0] ? b.p.public_if : "");
	built_free(&b);
	return reply;
}

static json_t *status(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct fw *self = ctx->self;
	struct built b;
	mg_txn *txn;
	char vpn_net[FW_PREFIX_TEXT];
	json_t *error;
	(void)service;
	(void)arg;
	if ((error = mg_request_check(ctx, request, fields)))
		return error;
	if (mg_txn_begin(ctx, MG_TXN_READ, &txn))
		return mg_error("internal", "cannot read state");
	int rc = build(ctx, txn, 1, &b);
	mg_txn_abort(ctx, txn);
	if (rc)
		return mg_error("internal", "cannot build the policy: %s", strerror(-rc));
	json_t *roles = json_object();
	for (size_t r = 0; r < b.n_roles; r++)
		json_object_set_new(roles, b.roles[r].name,
		                    json_pack("{s:s, s:o, s:I}", "set", b.roles[r].set, "subnets",
		                              subnets_json(&b.roles[r]), "devices",
		                              (json_int_t)b.roles[r].n_members));
	fw_prefix_format(vpn_net, &self->vpn_net);
	json_t *reply =
	    json_pack("{s:s, s:s, s:s, s:o, s:I, s:f, s:I}", "vpn_interface", self->vpn_if,
	              "vpn_subnet", vpn_net, "public_interface", b.p.public_if, "roles", roles,
	              "devices", (json_int_t)fw_members_count(self->members), "last_apply_ms",
	              self->last_apply_ms, "applied_at", (json_int_t)(self->applied_at_ms / 1000));
	json_object_set_new(reply, "flushed", json_boolean(self->flushed));
	json_object_set_new(reply, "on_stop",
	                    json_string(self->cfg.flush_on_stop ? "flush" : "keep"));
	/* not "error": that would make the reply an error reply */
	if (self->last_error[0])
		json_object_set_new(reply, "last_error", json_string(self->last_error));
	built_free(&b);
	return reply;
}

/* firewall.metrics: how long applying the policy takes, and how often it
 * failed. */
static json_t *metrics(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct fw *self = ctx->self;
	json_t *error;
	(void)service;
	(void)arg;
	if ((error = mg_request_check(ctx, request, fields)))
		return error;
	json_t *families = json_array();
	json_t *apply = metrics_family(
	    families, "meshgate_firewall_apply_seconds", "histogram",
	    "Seconds each apply of the policy took: full (sets filled, rules read back and "
	    "written) or rules (the rules alone)");
	metrics_histogram_sample(apply, json_pack("{s:s}", "kind", "full"), &self->apply_full);
	metrics_histogram_sample(apply, json_pack("{s:s}", "kind", "rules"), &self->apply_rules);
	metrics_sample(metrics_family(families, "meshgate_firewall_apply_failures_total", "counter",
	                              "Applies of the policy that failed (retried)"),
	               NULL, (double)self->apply_failures);
	metrics_sample(metrics_family(families, "meshgate_firewall_members", "gauge",
	                              "Active devices in the role sets"),
	               NULL, (double)fw_members_count(self->members));
	return metrics_reply(families);
}

/* Every rule and set of ours removed now, and nothing applied again until
 * a reload or a restart (changes are still saved): the explicit way to
 * open what a stop keeps closed. */
static json_t *flush(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct fw *self = ctx->self;
	char err[ERROR_SIZE];
	json_t *error;
	(void)service;
	(void)arg;
	if ((error = mg_request_check(ctx, request, fields)))
		return error;
	if (teardown(ctx, err, sizeof(err)))
		return mg_error("internal", "cannot remove the firewall's rules: %s", err);
	self->flushed = 1;
	free(self->rules);
	self->rules = NULL;
	fw_strv_free(self->sets);
	self->sets = NULL;
	if (self->retry_timer > 0)
		mg_timer_del(ctx, self->retry_timer);
	self->retry_timer = 0;
	mg_warn(ctx, "flushed: chains, hooks and sets removed; nothing from the VPN is filtered "
	             "and VPN-only ports are open on the public side until a reload or a restart");
	return json_pack("{s:b}", "flushed", 1);
}

/* ---- lifecycle ---- */

static void fw_free(mg_ctx *ctx)
{
	struct fw *self = ctx->self;
	if (!self)
		return;
	fw_cfg_free(&self->cfg);
	fw_nl_close(self->nl);
	fw_routes_close(self->routes);
	fw_members_free(self->members);
	fw_strv_free(self->sets);
	free(self->rules);
	free(self->forget);
	free(self);
	ctx->self = NULL;
}

static int fw_init(mg_ctx *ctx)
{
	struct fw *self = calloc(1, sizeof(*self));
	char err[ERROR_SIZE];
	int rc;
	if (!self)
		return -ENOMEM;
	ctx->self = self;
	metrics_histogram_init(&self->apply_full, apply_bounds, N_APPLY_BOUNDS);
	metrics_histogram_init(&self->apply_rules, apply_bounds, N_APPLY_BOUNDS);
	if ((rc = fw_cfg_parse(&self->cfg, mg_config(ctx), err, sizeof(err)))) {
		mg_error_log(ctx, "%s", err);
		goto fail;
	}
	if (!(self->members = fw_members_new())) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = fw_nl_open(&self->nl))) {
		mg_error_log(ctx, "cannot open a netfilter netlink socket: %s", strerror(-rc));
		goto fail;
	}
	/* before the first rendering: no route change after it goes unheard */
	if ((rc = fw_routes_open(&self->routes))) {
		mg_error_log(ctx, "cannot open a socket for route changes: %s", strerror(-rc));
		goto fail;
	}
	static const struct {
		const char *name;
		mg_service_fn fn;
	} services[] = {
	    {"firewall.route.add", route_add},   {"firewall.route.del", route_del},
	    {"firewall.route.list", route_list}, {"firewall.port.add", port_add},
	    {"firewall.port.del", port_del},     {"firewall.port.list", port_list},
	    {"firewall.status", status},         {"firewall.flush", flush},
	    {"firewall.metrics", metrics},
	};
	for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++)
		if ((rc = mg_service_add(ctx, services[i].name, services[i].fn, NULL)))
			goto fail;
	if ((rc = mg_subscribe(ctx, "device.changed", on_device_changed, NULL)) ||
	    (rc = mg_subscribe(ctx, "user.changed", on_user_changed, NULL)) ||
	    (rc = mg_subscribe(ctx, "state.wg", on_wg_changed, NULL)) ||
	    (rc = mg_subscribe(ctx, "state." DB_ROUTES, on_remote_change, NULL)) ||
	    (rc = mg_subscribe(ctx, "state." DB_PORTS, on_remote_change, NULL)))
		goto fail;
	return 0;
fail:
	fw_free(ctx);
	return rc;
}

static int fw_start(mg_ctx *ctx)
{
	struct fw *self = ctx->self;
	int rc = mg_fd_watch(ctx, fw_routes_fd(self->routes), MG_FD_READ, on_routes_changed, NULL);
	if (rc)
		mg_error_log(ctx, "cannot watch route changes: %s", strerror(-rc));
	else
		self->routes_watched = 1;
	if (!rc)
		rc = reconcile(ctx, 1);
	if (rc) {
		/* as a stop: what an earlier run kept stays unless told otherwise */
		char err[ERROR_SIZE];
		if (self->cfg.flush_on_stop && teardown(ctx, err, sizeof(err)))
			mg_warn(ctx, "cannot remove what was applied: %s", err);
		return rc;
	}
	mg_ready(ctx); /* the policy is applied */
	if (self->cfg.resync_interval > 0)
		self->resync_timer =
		    mg_timer_add(ctx, (unsigned)self->cfg.resync_interval * 1000, 1, resync, NULL);
	mg_info(ctx, "policy applied in %.1f ms: %zu devices in their role sets, VPN %s",
	        self->last_apply_ms, fw_members_count(self->members), self->vpn_if);
	return 0;
}

static int fw_reload(mg_ctx *ctx)
{
	struct fw *self = ctx->self;
	struct fw_cfg cfg;
	char err[ERROR_SIZE];
	int rc = fw_cfg_parse(&cfg, mg_config(ctx), err, sizeof(err));
	if (rc) {
		mg_error_log(ctx, "%s (the running config stays)", err);
		return rc;
	}
	int interval = self->cfg.resync_interval;
	fw_cfg_free(&self->cfg);
	self->cfg = cfg;
	if (interval != cfg.resync_interval) {
		if (self->resync_timer > 0)
			mg_timer_del(ctx, self->resync_timer);
		self->resync_timer =
		    cfg.resync_interval > 0
		        ? mg_timer_add(ctx, (unsigned)cfg.resync_interval * 1000, 1, resync, NULL)
		        : 0;
	}
	/* after a flush: everything again, the sets with their devices */
	int full = self->flushed;
	self->flushed = 0;
	reconcile(ctx, full);
	return 0;
}

static void fw_stop(mg_ctx *ctx)
{
	struct fw *self = ctx->self;
	char err[ERROR_SIZE];
	if (!self)
		return;
	if (self->routes_watched)
		mg_fd_unwatch(ctx, fw_routes_fd(self->routes));
	if (self->flushed)
		mg_info(ctx, "nothing to keep or remove: flushed before the stop");
	else if (!self->cfg.flush_on_stop)
		mg_info(ctx,
		        "chains, hooks and sets kept: the policy stays in force while stopped "
		        "(firewall.on_stop = \"flush\" or `meshgatectl firewall flush` removes "
		        "them)");
	else if (teardown(ctx, err, sizeof(err)))
		mg_warn(ctx, "cannot remove the firewall's rules: %s", err);
	else
		mg_info(ctx, "chains, hooks and sets removed (firewall.on_stop = \"flush\")");
	fw_free(ctx);
}

static const struct mg_setting fw_role_item[] = {
    {"", MG_SETTING_STRINGS, NULL,
     "Subnets the role may reach: \"vpn\" (the VPN subnet of wireguard.address, followed "
     "when it changes), \"172.19.0.0/16\" (its interface "
     "from the routing table) or \"172.19.0.0/16 via eth2\".",
     NULL, 0},
    {0},
};

static const struct mg_setting fw_settings[] = {
    {"public_interface", MG_SETTING_STRING, "\"\"",
     "The gateway's public interface, where VPN-only ports are dropped. Empty: the interface of "
     "the default route.",
     NULL, 0},
    {"roles", MG_SETTING_MAP, "{ admin = [\"vpn\"]; developer = [\"vpn\"]; }",
     "Per role, the subnets its devices may reach (both ways); roles not named reach nothing.",
     fw_role_item, 0},
    {"internet_roles", MG_SETTING_STRINGS, "[]",
     "Roles whose devices may send all their traffic through the gateway when they ask "
     "(`meshgate up --full-tunnel`): allowed out of the public interface and masqueraded "
     "there. Other roles reach only their subnets.",
     NULL, 0},
    {"full_tunnel_roles", MG_SETTING_STRINGS, "[]",
     "Roles whose devices are told to send all their traffic through the gateway (a full "
     "tunnel: 0.0.0.0/0 among their networks); as internet_roles on the gateway.",
     NULL, 0},
    {"vpn_only_ports", MG_SETTING_STRINGS, "[]",
     "Ports of the gateway open from the VPN and dropped on the public interface "
     "(\"8080/tcp\"); more are added at runtime with `meshgatectl port add`.",
     NULL, 0},
    {"vpn_host_ports", MG_SETTING_STRINGS, "[\"8443/tcp\", \"53/udp\", \"53/tcp\", \"51830/udp\"]",
     "Ports of the gateway itself that VPN clients may reach (the API, DNS, the API's probe "
     "responder); every other port "
     "of the gateway is closed to them.",
     NULL, 0},
    {"vpn_host_ping", MG_SETTING_BOOL, "true", "Whether VPN clients may ping the gateway.", NULL,
     0},
    {"mss_clamp", MG_SETTING_BOOL, "true",
     "Whether TCP SYNs forwarded into and out of the VPN get their MSS clamped to the route's "
     "MTU (TCPMSS --clamp-mss-to-pmtu): a device's path MTU, as its agent tells the api "
     "plugin, becomes a route of its own (docs/firewall.md).",
     NULL, 0},
    {"resync_interval", MG_SETTING_INT, "60",
     "Seconds between full re-applies of the policy from state, which repair any drift (0: "
     "never).",
     NULL, 0},
    {"on_stop", MG_SETTING_STRING, "\"keep\"",
     "What a stop does to the rules: \"keep\" (the policy as last applied stays in force, as "
     "after a crash, and the next start adopts it) or \"flush\" (every chain, hook and set "
     "removed: nothing filtered, VPN-only ports open, until the next start).",
     NULL, 0},
    {"iptables_restore", MG_SETTING_STRING, "\"iptables-restore\"",
     "The iptables-restore program (e.g. iptables-legacy-restore).", NULL, 0},
    {"iptables_save", MG_SETTING_STRING, "\"iptables-save\"",
     "The iptables-save program, matching iptables_restore.", NULL, 0},
    {"ipset", MG_SETTING_STRING, "\"ipset\"",
     "Not used any more (the role sets are filled through netlink); accepted so that configs "
     "that set it still load.",
     NULL, 0},
    {0},
};

static const char *const fw_owns[] = {DB_POLICY, DB_ROUTES, DB_PORTS, NULL};
/* every node of a cluster enforces the same routes and ports */
static const char *const fw_cluster[] = {DB_POLICY, DB_ROUTES, DB_PORTS, NULL};
static const char *const fw_depends[] = {"wireguard", NULL};

MG_PLUGIN(.name = "firewall", .version = "0.1.0",
          .description = "deny by default from the VPN, open per role (iptables + ipset)",
          .depends = fw_depends, .owns = fw_owns, .cluster = fw_cluster, .settings = fw_settings,
          .init = fw_init, .start = fw_start, .reload = fw_reload, .stop = fw_stop);
