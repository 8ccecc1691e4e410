/* The multiwan plugin: probes every uplink each interval_ms (one ICMP
 * socket per link, watched on the plugin's loop), keeps each link's table
 * and rule, moves the main default route to the best healthy link, writes
 * what devices are told (the node's endpoints, best first) to its
 * database and publishes wan.up / wan.down. docs/multiwan.md has the
 * whole story. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"
#include "multiwan.h"

/* A WireGuard port when the wireguard plugin has not published its own. */
#define MW_DEFAULT_WG_PORT 51820

struct mw_link {
	char name[IF_NAMESIZE + 16], ifname[IF_NAMESIZE];
	char gateway[INET_ADDRSTRLEN], check[INET_ADDRSTRLEN];
	char endpoint[80]; /* configured, or "" (address:port) */
	int priority;
	unsigned table;
	char address[INET_ADDRSTRLEN]; /* "" until the interface has one */
	bool routed;                   /* its table and rule are in place */
	int fd;                        /* its probe socket, or -1 */
	uint16_t id, seq;
	bool waiting; /* the probe seq has had no answer yet */
	uint64_t sent_ms;
	long rtt_ms; /* of the last answer, -1 none */
	struct mw_health health;
	enum mw_state announced; /* the state wan.* last told */
	uint64_t changed_ms;     /* last change of state, 0 never */
	char last_error[160];
};

struct mw {
	const struct mw_system *sys;
	void *sys_arg;
	struct mw_link links[MW_LINKS_MAX];
	size_t n;
	int interval_ms, rise, fall;
	bool failback;
	uint64_t hold_ms;
	unsigned rule_priority;
	int active; /* index of the link with the default route, -1 none yet */
	int timer;
	json_t *written; /* the record as last written */
	uint64_t moves;  /* of the default route from one link to another (metrics) */
};

static json_int_t setting_int(json_t *config, const char *name)
{
	return json_integer_value(json_object_get(config, name));
}

/* ---- the record devices are told ---- */

static unsigned wireguard_port(mg_ctx *ctx)
{
	json_t *server = NULL;
	mg_txn *txn;
	json_int_t port = 0;
	if (!mg_txn_begin(ctx, MG_TXN_READ, &txn)) {
		mg_state_get(ctx, txn, "wg", "server", &server);
		mg_txn_abort(ctx, txn);
	}
	port = json_integer_value(json_object_get(server, "listen_port"));
	json_decref(server);
	return port > 0 && port < 65536 ? (unsigned)port : MW_DEFAULT_WG_PORT;
}

static void candidates(const struct mw *self, struct mw_candidate *c)
{
	for (size_t i = 0; i < self->n; i++) {
		const struct mw_link *l = &self->links[i];
		c[i] = (struct mw_candidate){.up = l->health.state == MW_UP,
		                             .priority = l->priority,
		                             .up_since = l->health.since_ms};
	}
}

/* {"active": NAME|null, "endpoints": [best first]} */
static json_t *record(mg_ctx *ctx)
{
	struct mw *self = ctx->self;
	struct mw_candidate c[MW_LINKS_MAX];
	size_t order[MW_LINKS_MAX];
	unsigned port = wireguard_port(ctx);
	json_t *endpoints = json_array();
	candidates(self, c);
	mw_endpoint_order(c, self->n, self->active, order);
	for (size_t k = 0; k < self->n; k++) {
		const struct mw_link *l = &self->links[order[k]];
		char text[96];
		if (*l->endpoint)
			snprintf(text, sizeof(text), "%s", l->endpoint);
		else if (*l->address)
			snprintf(text, sizeof(text), "%s:%u", l->address, port);
		else
			continue; /* no address yet: nowhere to send to */
		json_array_append_new(endpoints, json_string(text));
	}
	return json_pack("{s:i, s:s?, s:o}", "v", 1, "active",
	                 self->active >= 0 ? self->links[self->active].name : NULL, "endpoints",
	                 endpoints);
}

/* The record, written when it changed. The wan.* events come after it, so
 * a reader of the event finds the new endpoints in the database. */
static void write_record(mg_ctx *ctx)
{
	struct mw *self = ctx->self;
	json_t *now = record(ctx);
	mg_txn *txn;
	if (!now || json_equal(now, self->written)) {
		json_decref(now);
		return;
	}
	int rc = mg_txn_begin(ctx, 0, &txn);
	if (!rc && (rc = mg_state_put(ctx, txn, MW_DB, MW_KEY, now)))
		mg_txn_abort(ctx, txn);
	else if (!rc)
		rc = mg_txn_commit(ctx, txn);
	if (rc) {
		mg_error_log(ctx, "cannot write the endpoints devices are told: %s", strerror(-rc));
		json_decref(now);
		return; /* tried again at the next change */
	}
	json_decref(self->written);
	self->written = now;
}

/* ---- the system ---- */

/* The link's address, its table and rule, its probe socket: what is
 * missing is tried again each interval (an interface may come later). */
static void on_probe_readable(mg_ctx *ctx, int fd, int events, void *arg);

static void prepare_link(mg_ctx *ctx, struct mw_link *l)
{
	struct mw *self = ctx->self;
	char err[256] = "";
	int rc = 0;
	if (!*l->address && (rc = self->sys->address(self->sys_arg, l->ifname, l->address))) {
		l->address[0] = '\0';
		snprintf(err, sizeof(err), "%s has no IPv4 address (%s)", l->ifname, strerror(-rc));
	}
	if (!rc && !l->routed) {
		rc = self->sys->link_routes(self->sys_arg, true, l->table, self->rule_priority,
		                            l->ifname, l->gateway, l->address);
		if (rc)
			snprintf(err, sizeof(err),
			         "cannot set table %u (default via %s dev %s) and rule from %s: %s",
			         l->table, l->gateway, l->ifname, l->address, strerror(-rc));
		l->routed = !rc;
	}
	if (!rc && l->fd < 0) {
		int fd =
		    self->sys->probe_open(self->sys_arg, l->ifname, l->address, err, sizeof(err));
		if (fd >= 0 && (rc = mg_fd_watch(ctx, fd, MG_FD_READ, on_probe_readable, l))) {
			self->sys->probe_close(self->sys_arg, fd);
			snprintf(err, sizeof(err), "cannot watch the probe socket: %s",
			         strerror(-rc));
			fd = -1;
		}
		rc = fd < 0 ? -1 : 0;
		l->fd = fd;
	}
	if (rc && strcmp(err, l->last_error))
		mg_warn(ctx, "link %s: %s (tried again every %d ms)", l->name, err,
		        self->interval_ms);
	else if (!rc && *l->last_error)
		mg_info(ctx, "link %s: ready (%s via %s, table %u)", l->name, l->address,
		        l->gateway, l->table);
	snprintf(l->last_error, sizeof(l->last_error), "%s", rc ? err : "");
}

static void move_default_route(mg_ctx *ctx, int to)
{
	struct mw *self = ctx->self;
	struct mw_link *l = &self->links[to];
	const char *from = self->active >= 0 ? self->links[self->active].name : NULL;
	int rc = self->sys->default_route(self->sys_arg, l->ifname, l->gateway);
	if (rc) {
		mg_error_log(ctx, "cannot move the default route to %s (via %s dev %s): %s",
		             l->name, l->gateway, l->ifname, strerror(-rc));
		return; /* tried again at the next interval */
	}
	if (from) {
		self->moves++;
		mg_warn(ctx, "the default route moved from %s to %s (via %s dev %s)", from, l->name,
		        l->gateway, l->ifname);
	} else
		mg_info(ctx, "the default route is on %s (via %s dev %s)", l->name, l->gateway,
		        l->ifname);
	self->active = to;
}

/* ---- the probes ---- */

static void on_probe_readable(mg_ctx *ctx, int fd, int events, void *arg)
{
	struct mw *self = ctx->self;
	struct mw_link *l = arg;
	uint16_t seq;
	(void)events;
	while (self->sys->probe_read(self->sys_arg, fd, l->id, &seq) == 1) {
		if (!l->waiting || seq != l->seq)
			continue; /* late: that probe counted as lost already */
		l->waiting = false;
		l->rtt_ms = (long)(mg_now_ms(ctx) - l->sent_ms);
		mw_health_result(&l->health, true, self->rise, self->fall, mg_now_ms(ctx));
	}
}

/* A link whose state changed since the last event: wan.up or wan.down. */
static void announce(mg_ctx *ctx, struct mw_link *l)
{
	struct mw *self = ctx->self;
	const char *state = mw_state_name(l->health.state);
	char topic[16];
	l->announced = l->health.state;
	l->changed_ms = mg_now_ms(ctx);
	snprintf(topic, sizeof(topic), "wan.%s", state);
	json_t *event =
	    json_pack("{s:i, s:s, s:s, s:s, s:i, s:s?}", "v", 1, "link", l->name, "interface",
	              l->ifname, "address", l->address, "priority", l->priority, "active",
	              self->active >= 0 ? self->links[self->active].name : NULL);
	if (l->health.state == MW_UP)
		mg_info(ctx, "link %s is up", l->name);
	else
		mg_warn(ctx, "link %s is down", l->name);
	mg_publish(ctx, topic, event);
	json_decref(event);
}

/* Each interval: the unanswered probe of each link is lost, the active link
 * chosen again, the record written, the changes announced, new probes. */
static void tick(mg_ctx *ctx, void *arg)
{
	struct mw *self = ctx->self;
	struct mw_candidate c[MW_LINKS_MAX];
	uint64_t now = mg_now_ms(ctx);
	(void)arg;
	for (size_t i = 0; i < self->n; i++) {
		struct mw_link *l = &self->links[i];
		if (l->waiting) {
			l->waiting = false;
			mw_health_result(&l->health, false, self->rise, self->fall, now);
		}
	}
	candidates(self, c);
	int best = mw_choose(c, self->n, self->active, self->failback, self->hold_ms, now);
	if (best >= 0 && best != self->active)
		move_default_route(ctx, best);
	write_record(ctx);
	for (size_t i = 0; i < self->n; i++)
		if (self->links[i].health.state != self->links[i].announced)
			announce(ctx, &self->links[i]);
	for (size_t i = 0; i < self->n; i++) {
		struct mw_link *l = &self->links[i];
		prepare_link(ctx, l);
		l->seq++;
		l->sent_ms = now;
		/* a probe that cannot leave (no route, no socket) is a lost one */
		l->waiting = true;
		if (l->fd >= 0)
			self->sys->probe_send(self->sys_arg, l->fd, l->check, l->id, l->seq);
	}
}

/* ---- multiwan.list ---- */

static json_t *list(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct mw *self = ctx->self;
	json_t *bad, *links = json_array();
	(void)service;
	(void)arg;
	if ((bad = mg_request_check(ctx, request, fields))) {
		json_decref(links);
		return bad;
	}
	for (size_t i = 0; i < self->n; i++) {
		const struct mw_link *l = &self->links[i];
		json_t *link = json_pack(
		    "{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:b}", "link", l->name, "interface",
		    l->ifname, "address", l->address, "gateway", l->gateway, "check", l->check,
		    "priority", l->priority, "table", (int)l->table, "state",
		    mw_state_name(l->health.state), "active", (int)i == self->active);
		json_object_set_new(link, "rtt_ms",
		                    l->rtt_ms >= 0 && l->health.state == MW_UP
		                        ? json_integer(l->rtt_ms)
		                        : json_null());
		json_object_set_new(link, "last_change_ms",
		                    l->changed_ms ? json_integer((json_int_t)l->changed_ms)
		                                  : json_null());
		json_array_append_new(links, link);
	}
	json_t *endpoints = json_object_get(self->written, "endpoints");
	return json_pack("{s:o, s:s?, s:O?}", "links", links, "active",
	                 self->active >= 0 ? self->links[self->active].name : NULL, "endpoints",
	                 endpoints);
}

/* multiwan.metrics: each link's state and round trip, the active one, and
 * how often the default route moved. */
static json_t *metrics(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct mw *self = ctx->self;
	json_t *bad;
	(void)service;
	(void)arg;
	if ((bad = mg_request_check(ctx, request, fields)))
		return bad;
	json_t *families = json_array();
	json_t *up = metrics_family(families, "meshgate_wan_link_up", "gauge",
	                            "1 while the uplink answers its health checks, 0 when it is "
	                            "down or not known yet");
	json_t *active = metrics_family(families, "meshgate_wan_link_active", "gauge",
	                                "1 for the uplink that has the default route");
	json_t *rtt = metrics_family(families, "meshgate_wan_link_rtt_seconds", "gauge",
	                             "Round trip of the last health check of an uplink that is up");
	for (size_t i = 0; i < self->n; i++) {
		const struct mw_link *l = &self->links[i];
		metrics_sample(up, json_pack("{s:s, s:s}", "link", l->name, "interface", l->ifname),
		               l->health.state == MW_UP);
		metrics_sample(active, json_pack("{s:s}", "link", l->name), (int)i == self->active);
		if (l->rtt_ms >= 0 && l->health.state == MW_UP)
			metrics_sample(rtt, json_pack("{s:s}", "link", l->name), l->rtt_ms / 1e3);
	}
	metrics_sample(metrics_family(families, "meshgate_wan_route_moves_total", "counter",
	                              "Moves of the default route from one uplink to another"),
	               NULL, (double)self->moves);
	return metrics_reply(families);
}

/* ---- settings ---- */

static bool ipv4(const char *text)
{
	struct in_addr a;
	return text && inet_pton(AF_INET, text, &a) == 1;
}

static bool ifname_valid(const char *name)
{
	size_t len = name ? strlen(name) : 0;
	return len > 0 && len < IF_NAMESIZE && !strpbrk(name, "/: \t");
}

static int read_link(mg_ctx *ctx, struct mw *self, size_t i, json_t *conf, unsigned table_base)
{
	struct mw_link *l = &self->links[i];
	const char *ifname = json_string_value(json_object_get(conf, "interface"));
	const char *gateway = json_string_value(json_object_get(conf, "gateway"));
	const char *check = json_string_value(json_object_get(conf, "check"));
	const char *name = json_string_value(json_object_get(conf, "name"));
	const char *endpoint = json_string_value(json_object_get(conf, "endpoint"));
	json_int_t priority = setting_int(conf, "priority");
	if (!ifname_valid(ifname)) {
		mg_error_log(ctx,
		             "multiwan.links[%zu].interface '%s' is not an interface name (1 to %d "
		             "characters, no '/', ':' or blank)",
		             i, ifname ? ifname : "", IF_NAMESIZE - 1);
		return -EINVAL;
	}
	if (!ipv4(gateway)) {
		mg_error_log(ctx, "multiwan.links[%zu].gateway '%s' is not an IPv4 address", i,
		             gateway ? gateway : "");
		return -EINVAL;
	}
	if (!*check)
		check = gateway; /* the next hop answers: the link itself is up */
	if (!ipv4(check)) {
		mg_error_log(ctx, "multiwan.links[%zu].check '%s' is not an IPv4 address", i,
		             check);
		return -EINVAL;
	}
	if (priority < 0 || priority > 1000) {
		mg_error_log(ctx, "multiwan.links[%zu].priority %lld is not 0 to 1000", i,
		             (long long)priority);
		return -EINVAL;
	}
	if (strlen(endpoint) >= sizeof(l->endpoint) || strpbrk(endpoint, " \t\"") ||
	    (*endpoint && !strchr(endpoint, ':'))) {
		mg_error_log(ctx, "multiwan.links[%zu].endpoint '%s' is not HOST:PORT", i,
		             endpoint);
		return -EINVAL;
	}
	if (!*name)
		name = ifname;
	if (strlen(name) >= sizeof(l->name) || strpbrk(name, " \t\"")) {
		mg_error_log(ctx,
		             "multiwan.links[%zu].name '%s' is not a short name without blanks", i,
		             name);
		return -EINVAL;
	}
	for (size_t j = 0; j < i; j++)
		if (!strcmp(self->links[j].name, name) || !strcmp(self->links[j].ifname, ifname)) {
			mg_error_log(ctx, "multiwan.links[%zu]: link %s (%s) is listed twice", i,
			             name, ifname);
			return -EINVAL;
		}
	snprintf(l->name, sizeof(l->name), "%s", name);
	snprintf(l->ifname, sizeof(l->ifname), "%s", ifname);
	snprintf(l->gateway, sizeof(l->gateway), "%s", gateway);
	snprintf(l->check, sizeof(l->check), "%s", check);
	snprintf(l->endpoint, sizeof(l->endpoint), "%s", endpoint);
	l->priority = (int)priority;
	l->table = table_base + (unsigned)i;
	l->fd = -1;
	l->rtt_ms = -1;
	/* echo ids of their own, so two links (or two gateways in one
	 * namespace) never take each other's answers */
	l->id = (uint16_t)(getpid() * MW_LINKS_MAX + (int)i);
	return 0;
}

static int read_settings(mg_ctx *ctx, struct mw *self)
{
	json_t *config = mg_config(ctx), *links = json_object_get(config, "links"), *conf;
	size_t i;
	json_int_t table_base = setting_int(config, "table_base");
	json_int_t rule_priority = setting_int(config, "rule_priority");
	self->interval_ms = (int)setting_int(config, "interval_ms");
	self->rise = (int)setting_int(config, "rise");
	self->fall = (int)setting_int(config, "fall");
	self->failback = json_is_true(json_object_get(config, "failback"));
	json_int_t hold = setting_int(config, "failback_hold_ms");
	if (json_array_size(links) > MW_LINKS_MAX) {
		mg_error_log(ctx, "multiwan.links: %zu links; at most %d are handled",
		             json_array_size(links), MW_LINKS_MAX);
		return -EINVAL;
	}
	if (self->interval_ms < 20 || self->interval_ms > 60000) {
		mg_error_log(ctx, "multiwan.interval_ms %d is not 20 to 60000", self->interval_ms);
		return -EINVAL;
	}
	if (self->rise < 1 || self->rise > 100 || self->fall < 1 || self->fall > 100) {
		mg_error_log(ctx, "multiwan.rise (%d) and multiwan.fall (%d) must be 1 to 100",
		             self->rise, self->fall);
		return -EINVAL;
	}
	if (hold < 0 || hold > 3600000) {
		mg_error_log(ctx, "multiwan.failback_hold_ms %lld is not 0 to 3600000",
		             (long long)hold);
		return -EINVAL;
	}
	if (table_base < 1 || table_base + MW_LINKS_MAX > 252) {
		mg_error_log(ctx,
		             "multiwan.table_base %lld is not 1 to %d (a table per link "
		             "after it, below the kernel's own 253 to 255)",
		             (long long)table_base, 252 - MW_LINKS_MAX);
		return -EINVAL;
	}
	if (rule_priority < 1 || rule_priority > 32765) {
		mg_error_log(ctx,
		             "multiwan.rule_priority %lld is not 1 to 32765 (before the main "
		             "table's rule)",
		             (long long)rule_priority);
		return -EINVAL;
	}
	self->hold_ms = (uint64_t)hold;
	self->rule_priority = (unsigned)rule_priority;
	json_array_foreach(links, i, conf)
	{
		int rc = read_link(ctx, self, i, conf, (unsigned)table_base);
		if (rc)
			return rc;
	}
	self->n = json_array_size(links);
	return 0;
}

/* ---- lifecycle ---- */

static void mw_free(mg_ctx *ctx)
{
	struct mw *self = ctx->self;
	if (!self)
		return;
	json_decref(self->written);
	free(self);
	ctx->self = NULL;
}

int mw_init_with(mg_ctx *ctx, const struct mw_system *sys, void *sys_arg)
{
	struct mw *self = calloc(1, sizeof(*self));
	if (!self)
		return -ENOMEM;
	ctx->self = self;
	self->sys = sys;
	self->sys_arg = sys_arg;
	self->active = -1;
	int rc = read_settings(ctx, self);
	if (!rc)
		rc = mg_service_add(ctx, "multiwan.list", list, NULL);
	if (!rc)
		rc = mg_service_add(ctx, "multiwan.metrics", metrics, NULL);
	if (rc)
		mw_free(ctx);
	return rc;
}

static int mw_init(mg_ctx *ctx)
{
	return mw_init_with(ctx, &mw_system_real, NULL);
}

/* The links' tables and sockets, the first probes; the default route
 * moves once the probes have said which links are up. */
static int mw_start(mg_ctx *ctx)
{
	struct mw *self = ctx->self;
	if (!self->n) {
		/* zero config: a single uplink is the system's business; nothing
		 * is probed and no route is touched */
		mg_info(ctx, "no uplinks in multiwan.links: idle");
		mg_ready(ctx);
		return 0;
	}
	for (size_t i = 0; i < self->n; i++)
		prepare_link(ctx, &self->links[i]);
	tick(ctx, NULL); /* the record: every endpoint by priority, until the probes tell */
	int id = mg_timer_add(ctx, (uint64_t)self->interval_ms, 1, tick, NULL);
	if (id < 0)
		return id;
	self->timer = id;
	mg_ready(ctx);
	return 0;
}

/* The sockets, tables and rules go; the default route stays where it is
 * (a gateway that stops multiwan keeps its way out). */
static void mw_stop(mg_ctx *ctx)
{
	struct mw *self = ctx->self;
	if (!self)
		return;
	if (self->timer > 0)
		mg_timer_del(ctx, self->timer);
	for (size_t i = 0; i < self->n; i++) {
		struct mw_link *l = &self->links[i];
		if (l->fd >= 0) {
			mg_fd_unwatch(ctx, l->fd);
			self->sys->probe_close(self->sys_arg, l->fd);
		}
		if (l->routed)
			self->sys->link_routes(self->sys_arg, false, l->table, self->rule_priority,
			                       l->ifname, l->gateway, l->address);
	}
	mw_free(ctx);
}

static const struct mg_setting mw_link_settings[] = {
    {"interface", MG_SETTING_STRING, NULL,
     "The uplink's interface (its first IPv4 address is the link's).", NULL, 1},
    {"gateway", MG_SETTING_STRING, NULL, "The uplink's next hop (IPv4): the default route via it.",
     NULL, 1},
    {"check", MG_SETTING_STRING, "\"\"",
     "The IPv4 address pinged out of this link (ICMP echo from the link's address, bound to "
     "its interface). Empty: the gateway. Pick one beyond the provider's router, so that a "
     "cut further up counts.",
     NULL, 0},
    {"priority", MG_SETTING_INT, "1",
     "0 to 1000; the healthy link of the lowest priority carries the default route (equal: "
     "the one listed first).",
     NULL, 0},
    {"name", MG_SETTING_STRING, "\"\"",
     "The link's name in events and `wan list`. Empty: the interface.", NULL, 0},
    {"endpoint", MG_SETTING_STRING, "\"\"",
     "\"HOST:PORT\" devices reach WireGuard at over this link, for a link behind the "
     "gateway's own NAT. Empty: the link's address and wireguard.listen_port.",
     NULL, 0},
    {0},
};

static const struct mg_setting mw_settings[] = {
    {"links", MG_SETTING_LIST, "()",
     "The uplinks, up to 8 (none: the plugin idles and touches no route): ( { interface = "
     "\"wan1\"; gateway = \"198.18.1.254\"; check = "
     "\"198.18.0.1\"; priority = 1; }, ... ).",
     mw_link_settings, 0},
    {"interval_ms", MG_SETTING_INT, "200",
     "A probe per link this often (20 to 60000); one unanswered by the next is lost.", NULL, 0},
    {"fall", MG_SETTING_INT, "3", "Probes lost in a row before an up link is down (1 to 100).",
     NULL, 0},
    {"rise", MG_SETTING_INT, "5", "Answers in a row before a down link is up (1 to 100).", NULL, 0},
    {"failback", MG_SETTING_BOOL, "true",
     "true: the default route goes back to a better link once it has been up for "
     "failback_hold_ms; false: it stays until its link fails.",
     NULL, 0},
    {"failback_hold_ms", MG_SETTING_INT, "3000",
     "How long a better link must stay up before the route goes back to it (0 to "
     "3600000): a flapping link does not bounce the route.",
     NULL, 0},
    {"table_base", MG_SETTING_INT, "200",
     "Routing table of the first link; the next links take the next numbers.", NULL, 0},
    {"rule_priority", MG_SETTING_INT, "1000",
     "Priority of the rules `from LINK-ADDRESS lookup LINK-TABLE` (1 to 32765).", NULL, 0},
    {0},
};

static const char *const mw_dbs[] = {MW_DB, NULL};

MG_PLUGIN(.name = "multiwan", .version = "0.1.0",
          .description = "uplink health checks, the default route on the best one, devices "
                         "told every endpoint",
          .owns = mw_dbs, .settings = mw_settings, .init = mw_init, .start = mw_start,
          .stop = mw_stop);
