/* The failover plugin: runs keepalived with a config made from ours and
 * from the mesh's nodes (VRRPv3, unicast between the nodes' mesh
 * addresses), made again and reloaded when the nodes change; reads its
 * notify fifo; writes this node's record (failover_self, then the
 * cluster-wide failover) and publishes vip.master / vip.backup /
 * vip.fault on each change. docs/failover.md has the whole story. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "failover.h"
#include "metrics.h"

/* A record the cluster refused (no quorum) is written again this often. */
#define FO_RETRY_MS 1000
/* keepalived that exited by itself is started again, at most this often. */
#define FO_RESTART_MS 1000
/* The longest notify line kept (keepalived's are ~40 bytes). */
#define FO_LINE_MAX 256

struct fo {
	const struct fo_system *sys;
	void *sys_arg;
	const char *node;
	int priority, advert_ms, router_id;
	bool preempt;
	bool has_mesh_vip; /* mesh_vip set; else the mesh subnet's last address */
	struct fo_vip mesh_vip, public_vip;
	char dir[PATH_MAX], conf[PATH_MAX + 32], fifo[PATH_MAX + 32], heartbeat[PATH_MAX + 32];
	char check_program[PATH_MAX];
	int fifo_read, fifo_write; /* ours, so that keepalived's restarts are no EOF */
	char line[FO_LINE_MAX];
	size_t line_len;
	bool line_too_long;
	pid_t pid;           /* keepalived, or 0 */
	char *applied;       /* the config keepalived has, or NULL */
	uint64_t started_ms; /* when it was last started */
	char waiting[256];   /* why keepalived does not run yet, as last logged */
	enum fo_state state;
	bool state_known;
	json_t *record; /* this node's record as it is now (also in failover_self) */
	bool unwritten; /* this node's record is not in the cluster yet */
	bool started;   /* the fifo is open: keepalived may run (events come from init on) */
	int heartbeat_timer, retry_timer;
	uint64_t changes_to[FO_STOPPED + 1]; /* state changes into each state (metrics) */
};

static const char *setting(mg_ctx *ctx, const char *name)
{
	return json_string_value(json_object_get(mg_config(ctx), name));
}

static int setting_int(mg_ctx *ctx, const char *name)
{
	return (int)json_integer_value(json_object_get(mg_config(ctx), name));
}

/* ---- this node's record ---- */

static json_t *record_of(mg_ctx *ctx, enum fo_state state)
{
	struct fo *self = ctx->self;
	return json_pack("{s:s, s:s, s:I, s:i}", "node", self->node, "state", fo_state_name(state),
	                 "since_ms", (json_int_t)mg_now_ms(ctx), "priority", self->priority);
}

static int put_one(mg_ctx *ctx, const char *db, const char *key, json_t *value)
{
	mg_txn *txn;
	int rc = mg_txn_begin(ctx, 0, &txn);
	if (rc)
		return rc;
	if ((rc = mg_state_put(ctx, txn, db, key, value))) {
		mg_txn_abort(ctx, txn);
		return rc;
	}
	return mg_txn_commit(ctx, txn);
}

/* This node's record into the cluster's failover database. Only this
 * node writes its key and nothing is read: a commit may be refused (no
 * quorum), hardly ever be stale; both are tried again from the timer. */
static int publish_record(mg_ctx *ctx)
{
	struct fo *self = ctx->self;
	return put_one(ctx, FO_DB, self->node, self->record);
}

static void retry_publish(mg_ctx *ctx, void *arg)
{
	struct fo *self = ctx->self;
	(void)arg;
	if (publish_record(ctx))
		return; /* the next turn */
	mg_info(ctx, "this node's failover record reached the cluster");
	self->unwritten = false;
	mg_timer_del(ctx, self->retry_timer);
	self->retry_timer = 0;
}

/* A state of this node: its records, then (but for "stopped") the event. */
static void set_state(mg_ctx *ctx, enum fo_state state)
{
	struct fo *self = ctx->self;
	json_t *record = record_of(ctx, state);
	if (!record) {
		mg_error_log(ctx, "out of memory: this node's state %s not recorded",
		             fo_state_name(state));
		return;
	}
	json_decref(self->record);
	self->record = record;
	if (!self->state_known || self->state != state)
		self->changes_to[state]++;
	self->state = state;
	self->state_known = true;
	int rc = put_one(ctx, FO_DB_SELF, FO_SELF_KEY, record);
	if (rc)
		mg_error_log(ctx, "cannot record this node's state %s locally: %s",
		             fo_state_name(state), strerror(-rc));
	if ((rc = publish_record(ctx)) && !self->retry_timer) {
		mg_warn(ctx,
		        "cannot write this node's failover record to the cluster (%s): tried "
		        "again every %d ms",
		        rc == -EHOSTUNREACH ? "no etcd quorum" : strerror(-rc), FO_RETRY_MS);
		self->unwritten = true;
		self->retry_timer = mg_timer_add(ctx, FO_RETRY_MS, 1, retry_publish, NULL);
	}
	if (state == FO_STOPPED)
		return;
	char topic[32];
	snprintf(topic, sizeof(topic), "vip.%s", fo_state_name(state));
	json_t *event = json_pack("{s:s, s:s}", "node", self->node, "state", fo_state_name(state));
	mg_publish(ctx, topic, event);
	json_decref(event);
}

/* ---- keepalived's notify fifo ---- */

static void on_line(mg_ctx *ctx, const char *line, size_t len)
{
	enum fo_state state;
	int priority;
	int rc = fo_notify_parse(line, len, &state, &priority);
	if (rc == -EINVAL)
		mg_warn(ctx, "keepalived's notify fifo: not understood: %.*s",
		        (int)(len > 120 ? 120 : len), line);
	if (rc)
		return;
	mg_info(ctx, "keepalived: this node is %s (priority %d)", fo_state_name(state), priority);
	set_state(ctx, state);
}

static void on_fifo(mg_ctx *ctx, int fd, int events, void *arg)
{
	struct fo *self = ctx->self;
	char buf[1024];
	ssize_t n;
	(void)events;
	(void)arg;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (self->line_len < sizeof(self->line))
					self->line[self->line_len++] = buf[i];
				else
					self->line_too_long = true;
				continue;
			}
			if (self->line_too_long)
				mg_warn(ctx,
				        "keepalived's notify fifo: a line of more than %d "
				        "bytes dropped",
				        FO_LINE_MAX);
			else
				on_line(ctx, self->line, self->line_len);
			self->line_len = 0;
			self->line_too_long = false;
		}
	}
}

static int fifo_open(mg_ctx *ctx)
{
	struct fo *self = ctx->self;
	unlink(self->fifo); /* one left by a crash, or a file in its place */
	if (mkfifo(self->fifo, 0600)) {
		mg_error_log(ctx, "cannot make the notify fifo %s: %s", self->fifo,
		             strerror(errno));
		return -errno;
	}
	self->fifo_read = open(self->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	self->fifo_write = open(self->fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (self->fifo_read < 0 || self->fifo_write < 0) {
		mg_error_log(ctx, "cannot open the notify fifo %s: %s", self->fifo,
		             strerror(errno));
		return -EIO;
	}
	return mg_fd_watch(ctx, self->fifo_read, MG_FD_READ, on_fifo, NULL);
}

static void fifo_close(mg_ctx *ctx)
{
	struct fo *self = ctx->self;
	if (self->fifo_read >= 0) {
		mg_fd_unwatch(ctx, self->fifo_read);
		close(self->fifo_read);
	}
	if (self->fifo_write >= 0)
		close(self->fifo_write);
	self->fifo_read = self->fifo_write = -1;
	unlink(self->fifo);
}

/* ---- keepalived's config ---- */

/* The devices' WireGuard interface, as the wireguard plugin published it
 * (a new string), or NULL when it does not run here. */
static char *wireguard_interface(mg_ctx *ctx)
{
	json_t *server = NULL;
	mg_txn *txn;
	char *name = NULL;
	if (!mg_txn_begin(ctx, MG_TXN_READ, &txn)) {
		mg_state_get(ctx, txn, "wg", "server", &server);
		mg_txn_abort(ctx, txn);
	}
	const char *ifname = json_string_value(json_object_get(server, "interface"));
	if (ifname && fo_ifname_valid(ifname))
		name = strdup(ifname);
	json_decref(server);
	return name;
}

/* Logs why keepalived cannot run yet, once per reason. */
static void wait_for(mg_ctx *ctx, const char *why)
{
	struct fo *self = ctx->self;
	if (strcmp(self->waiting, why))
		mg_warn(ctx, "keepalived not started yet: %s", why);
	snprintf(self->waiting, sizeof(self->waiting), "%s", why);
}

/* keepalived's config from the nodes as they are now: a new string, or
 * NULL with the reason logged (this node has no mesh address yet...). */
static char *render(mg_ctx *ctx)
{
	struct fo *self = ctx->self;
	json_t *nodes = mg_state_collect(ctx, FO_DB_NODES, NULL), *record;
	const char *name;
	char mesh_if[IF_NAMESIZE], why[256], check[3 * PATH_MAX];
	unsigned len;
	char *text = NULL, *wg_if = NULL;
	struct fo_keepalived k = {
	    .node = self->node,
	    .mesh_if = mesh_if,
	    .router_id = self->router_id,
	    .priority = self->priority,
	    .advert_ms = self->advert_ms,
	    .preempt = self->preempt,
	    .mesh_vip = self->mesh_vip,
	    .public_if = setting(ctx, "public_interface"),
	    .public_vip = self->public_vip,
	    .notify_fifo = self->fifo,
	    .check = check,
	    .peers = json_array(),
	};
	k.src_ip =
	    json_string_value(json_object_get(json_object_get(nodes, self->node), "mesh_address"));
	if (!nodes || !k.peers) {
		wait_for(ctx, "cannot read the mesh's nodes");
		goto out;
	}
	if (!k.src_ip) {
		wait_for(ctx, "this node has no mesh address yet (is the mesh plugin running?)");
		goto out;
	}
	if (self->sys->find_address(self->sys_arg, k.src_ip, mesh_if, &len)) {
		snprintf(why, sizeof(why), "no interface has this node's mesh address %s yet",
		         k.src_ip);
		wait_for(ctx, why);
		goto out;
	}
	if (!self->has_mesh_vip) {
		fo_last_host(k.src_ip, len, k.mesh_vip.address);
		k.mesh_vip.len = 32;
	}
	json_object_foreach(nodes, name, record)
	{
		const char *address = json_string_value(json_object_get(record, "mesh_address"));
		if (strcmp(name, self->node) && address)
			json_array_append_new(k.peers, json_string(address));
	}
	k.wg_if = wg_if = wireguard_interface(ctx);
	snprintf(check, sizeof(check), "%s %s %d%s%s", self->check_program, self->heartbeat,
	         FO_HEARTBEAT_STALE_MS, wg_if ? " " : "", wg_if ? wg_if : "");
	text = fo_render_keepalived(&k);
	self->waiting[0] = '\0';
out:
	free(wg_if);
	json_decref(k.peers);
	json_decref(nodes);
	return text;
}

/* The config file, written whole before keepalived reads it, 0600. */
static int write_conf(mg_ctx *ctx, const char *text)
{
	struct fo *self = ctx->self;
	char tmp[sizeof(self->conf) + 8];
	snprintf(tmp, sizeof(tmp), "%s.new", self->conf);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t len = strlen(text);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) ||
	    rename(tmp, self->conf)) {
		int e = errno;
		mg_error_log(ctx, "cannot write %s: %s", self->conf, strerror(e));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		return -e;
	}
	close(fd);
	return 0;
}

/* keepalived runs with the config of the nodes as they are: started, or
 * told to reload (SIGHUP) when its config changed. */
static void reconcile(mg_ctx *ctx)
{
	struct fo *self = ctx->self;
	char err[512];
	if (!self->started)
		return;
	char *text = render(ctx);
	if (!text)
		return;
	if (self->pid && self->applied && !strcmp(text, self->applied)) {
		free(text);
		return;
	}
	if (write_conf(ctx, text)) {
		free(text);
		return;
	}
	if (self->pid) {
		int rc = self->sys->reload(self->sys_arg, self->pid);
		if (rc)
			mg_warn(ctx, "cannot reload keepalived (pid %d): %s", (int)self->pid,
			        strerror(-rc));
		else
			mg_info(ctx, "keepalived (pid %d) reloads its config: the nodes changed",
			        (int)self->pid);
	} else {
		self->started_ms = mg_now_ms(ctx);
		if (self->sys->start(self->sys_arg, setting(ctx, "keepalived"), self->conf,
		                     self->dir, &self->pid, err, sizeof(err))) {
			mg_error_log(ctx, "%s", err);
			self->pid = 0;
			free(text);
			return;
		}
		mg_info(ctx, "keepalived started (pid %d, %s)", (int)self->pid, self->conf);
	}
	free(self->applied);
	self->applied = text;
}

static void on_nodes_changed(mg_ctx *ctx, const char *topic, json_t *event, void *arg)
{
	(void)topic;
	(void)event;
	(void)arg;
	reconcile(ctx);
}

static void on_wg_changed(mg_ctx *ctx, const char *topic, json_t *event, void *arg)
{
	const char *key = json_string_value(json_object_get(event, "key"));
	(void)topic;
	(void)arg;
	if (key && !strcmp(key, "server"))
		reconcile(ctx);
}

/* ---- the heartbeat, keepalived's supervision ---- */

/* The track script's heartbeat: renewed after the core answered. */
static void heartbeat(mg_ctx *ctx, void *arg)
{
	struct fo *self = ctx->self;
	json_t *reply = NULL;
	(void)arg;
	if (!mg_request(ctx, "core.ping", NULL, FO_HEARTBEAT_MS, &reply)) {
		int fd = open(self->heartbeat, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0 || futimens(fd, NULL))
			mg_log_limited(ctx, MG_LOG_WARN, "heartbeat", "cannot renew %s: %s",
			               self->heartbeat, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	json_decref(reply);
	if (self->pid && self->sys->exited(self->sys_arg, self->pid)) {
		mg_error_log(ctx, "keepalived (pid %d) exited: started again", (int)self->pid);
		self->pid = 0;
		set_state(ctx, FO_STOPPED);
	}
	if (!self->pid && mg_now_ms(ctx) - self->started_ms >= FO_RESTART_MS)
		reconcile(ctx);
}

/* ---- failover.status ---- */

static json_t *status(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct fo *self = ctx->self;
	json_t *bad, *records;
	(void)service;
	(void)arg;
	if ((bad = mg_request_check(ctx, request, fields)))
		return bad;
	if (!(records = mg_state_collect(ctx, FO_DB, NULL)))
		return mg_error("internal", "cannot read the failover records");
	const char *active = fo_active(records);
	json_t *reply = json_pack("{s:s, s:s?, s:s?, s:O, s:b}", "node", self->node, "state",
	                          self->state_known ? fo_state_name(self->state) : NULL, "active",
	                          active, "nodes", records, "keepalived", self->pid > 0);
	json_decref(records);
	return reply;
}

/* failover.metrics: this node's state and how often it changed. */
static json_t *metrics(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct fo *self = ctx->self;
	json_t *bad;
	(void)service;
	(void)arg;
	if ((bad = mg_request_check(ctx, request, fields)))
		return bad;
	json_t *families = json_array();
	json_t *state = metrics_family(families, "meshgate_failover_state", "gauge",
	                               "1 for this node's VRRP state (master is the active node), "
	                               "0 for the others");
	json_t *changes =
	    metrics_family(families, "meshgate_failover_changes_total", "counter",
	                   "Changes of this node's VRRP state, by the state changed to");
	for (enum fo_state s = FO_MASTER; s <= FO_STOPPED; s++) {
		metrics_sample(state, json_pack("{s:s}", "state", fo_state_name(s)),
		               self->state_known && self->state == s);
		metrics_sample(changes, json_pack("{s:s}", "state", fo_state_name(s)),
		               (double)self->changes_to[s]);
	}
	metrics_sample(metrics_family(families, "meshgate_failover_keepalived_running", "gauge",
	                              "1 while the keepalived this node runs is up"),
	               NULL, self->pid > 0);
	return metrics_reply(families);
}

/* ---- lifecycle ---- */

static int check_settings(mg_ctx *ctx, struct fo *self)
{
	char err[256];
	const char *mesh_vip = setting(ctx, "mesh_vip"), *public_vip = setting(ctx, "public_vip");
	const char *public_if = setting(ctx, "public_interface");
	self->priority = setting_int(ctx, "priority");
	self->advert_ms = setting_int(ctx, "advert_ms");
	self->router_id = setting_int(ctx, "virtual_router_id");
	self->preempt = json_is_true(json_object_get(mg_config(ctx), "preempt"));
	if (self->priority < 1 || self->priority > 254) {
		mg_error_log(ctx, "failover.priority %d is not 1 to 254", self->priority);
		return -EINVAL;
	}
	if (self->advert_ms < 10 || self->advert_ms > 40950 || self->advert_ms % 10) {
		mg_error_log(
		    ctx,
		    "failover.advert_ms %d is not 10 to 40950 in steps of 10 (VRRPv3 counts "
		    "centiseconds)",
		    self->advert_ms);
		return -EINVAL;
	}
	if (self->router_id < 1 || self->router_id > 255) {
		mg_error_log(ctx, "failover.virtual_router_id %d is not 1 to 255", self->router_id);
		return -EINVAL;
	}
	self->has_mesh_vip = mesh_vip[0] != '\0';
	if (self->has_mesh_vip && fo_vip_parse(mesh_vip, 32, &self->mesh_vip, err, sizeof(err))) {
		mg_error_log(ctx, "failover.mesh_vip: %s", err);
		return -EINVAL;
	}
	if (!public_vip[0] != !public_if[0]) {
		mg_error_log(ctx, "failover.public_vip and failover.public_interface go together: "
		                  "set both or neither");
		return -EINVAL;
	}
	if (public_vip[0] && fo_vip_parse(public_vip, 32, &self->public_vip, err, sizeof(err))) {
		mg_error_log(ctx, "failover.public_vip: %s", err);
		return -EINVAL;
	}
	if (public_if[0] && !fo_ifname_valid(public_if)) {
		mg_error_log(ctx,
		             "failover.public_interface '%s' is not an interface name (1 to %d "
		             "characters, no '/', ':' or blank)",
		             public_if, IF_NAMESIZE - 1);
		return -EINVAL;
	}
	if (!setting(ctx, "keepalived")[0]) {
		mg_error_log(ctx, "failover.keepalived is empty: the keepalived program to run");
		return -EINVAL;
	}
	if (!mg_node_name(ctx)[0]) {
		mg_error_log(ctx, "this core gives no node name (API version 6 needed)");
		return -ENOTSUP;
	}
	return 0;
}

/* keepalived splits a script's command line at blanks and, with script
 * security, runs it only from a path no other user can write. */
static int find_paths(mg_ctx *ctx, struct fo *self)
{
	Dl_info info;
	char so[PATH_MAX];
	snprintf(self->dir, sizeof(self->dir), "%s/failover", mg_state_dir(ctx));
	snprintf(self->conf, sizeof(self->conf), "%s/keepalived.conf", self->dir);
	snprintf(self->fifo, sizeof(self->fifo), "%s/notify.fifo", self->dir);
	snprintf(self->heartbeat, sizeof(self->heartbeat), "%s/heartbeat", self->dir);
	if (strpbrk(self->dir, " \t\"'\\")) {
		mg_error_log(ctx,
		             "the state directory %s has a blank or a quote: keepalived's track "
		             "script cannot name its heartbeat file",
		             mg_state_dir(ctx));
		return -EINVAL;
	}
	if (!dladdr((void *)fo_init_with, &info) || !info.dli_fname ||
	    !realpath(info.dli_fname, so)) {
		mg_error_log(ctx, "cannot find the plugin's own file, next to which %s is",
		             FO_CHECK_NAME);
		return -ENOENT;
	}
	char *slash = strrchr(so, '/');
	*slash = '\0';
	snprintf(self->check_program, sizeof(self->check_program), "%s/%s", so, FO_CHECK_NAME);
	if (mkdir(self->dir, 0700) && errno != EEXIST) {
		mg_error_log(ctx, "cannot make %s: %s", self->dir, strerror(errno));
		return -errno;
	}
	return 0;
}

static void fo_free(mg_ctx *ctx)
{
	struct fo *self = ctx->self;
	if (!self)
		return;
	free(self->applied);
	json_decref(self->record);
	free(self);
	ctx->self = NULL;
}

int fo_init_with(mg_ctx *ctx, const struct fo_system *sys, void *sys_arg)
{
	struct fo *self = calloc(1, sizeof(*self));
	int rc;
	if (!self)
		return -ENOMEM;
	ctx->self = self;
	self->sys = sys;
	self->sys_arg = sys_arg;
	self->node = mg_node_name(ctx);
	self->fifo_read = self->fifo_write = -1;
	rc = check_settings(ctx, self);
	if (!rc)
		rc = find_paths(ctx, self);
	if (!rc && !(rc = mg_service_add(ctx, "failover.status", status, NULL)) &&
	    !(rc = mg_service_add(ctx, "failover.metrics", metrics, NULL)) &&
	    !(rc = mg_subscribe(ctx, "state." FO_DB_NODES, on_nodes_changed, NULL)))
		rc = mg_subscribe(ctx, "state.wg", on_wg_changed, NULL);
	if (rc)
		fo_free(ctx);
	return rc;
}

static int fo_init(mg_ctx *ctx)
{
	return fo_init_with(ctx, &fo_system_real, NULL);
}

/* The fifo, the heartbeat, then keepalived as soon as this node has its
 * mesh address (now, or when its record arrives). */
static int fo_start(mg_ctx *ctx)
{
	struct fo *self = ctx->self;
	int rc = fifo_open(ctx);
	if (rc) {
		fifo_close(ctx);
		return rc;
	}
	self->started = true;
	heartbeat(ctx, NULL); /* the heartbeat file first, then keepalived */
	self->heartbeat_timer = mg_timer_add(ctx, FO_HEARTBEAT_MS, 1, heartbeat, NULL);
	mg_ready(ctx);
	return 0;
}

/* keepalived first, so that its priority-0 advert moves the VIP at once;
 * then the record says "stopped". */
static void fo_stop(mg_ctx *ctx)
{
	struct fo *self = ctx->self;
	if (!self)
		return;
	if (self->pid) {
		self->sys->stop(self->sys_arg, self->pid);
		mg_info(ctx, "keepalived (pid %d) stopped", (int)self->pid);
		self->pid = 0;
	}
	if (self->state_known || self->fifo_read >= 0)
		set_state(ctx, FO_STOPPED);
	if (self->unwritten)
		mg_warn(ctx, "this node's record \"stopped\" did not reach the cluster");
	fifo_close(ctx);
	fo_free(ctx);
}

static const struct mg_setting fo_settings[] = {
    {"priority", MG_SETTING_INT, "100",
     "VRRP priority of this node, 1 to 254: the highest becomes the active node when the nodes "
     "start together (equal ones: the highest mesh address).",
     NULL, 0},
    {"advert_ms", MG_SETTING_INT, "100",
     "Interval of the VRRP adverts in ms, 10 to 40950 in steps of 10. A backup takes over "
     "about 3.5 intervals after the last advert of a master that died.",
     NULL, 0},
    {"preempt", MG_SETTING_BOOL, "false",
     "false: a node that comes back stays backup until the active node fails (no move of the "
     "VIP by surprise); true: a node of higher priority takes the VIP back at once.",
     NULL, 0},
    {"virtual_router_id", MG_SETTING_INT, "51",
     "VRRP router id, 1 to 255, the same on every node; another cluster on the same public "
     "segment needs another.",
     NULL, 0},
    {"mesh_vip", MG_SETTING_STRING, "\"\"",
     "The VIP the active node holds on its mesh interface (\"A.B.C.D\" or \"A.B.C.D/LEN\"; "
     "empty: the last host address of the mesh subnet, as /32).",
     NULL, 0},
    {"public_vip", MG_SETTING_STRING, "\"\"",
     "The VIP the active node holds on public_interface, \"A.B.C.D/LEN\": the endpoint of "
     "exported configs where the nodes share a segment. Empty: none.",
     NULL, 0},
    {"public_interface", MG_SETTING_STRING, "\"\"",
     "The interface of public_vip (set both or neither).", NULL, 0},
    {"keepalived", MG_SETTING_STRING, "\"keepalived\"",
     "The keepalived program (looked up in PATH unless it has a '/').", NULL, 0},
    {0},
};

static const char *const fo_dbs[] = {FO_DB, FO_DB_SELF, NULL};
static const char *const fo_cluster_dbs[] = {FO_DB, NULL};
static const char *const fo_depends[] = {"mesh", NULL};

MG_PLUGIN(.name = "failover", .version = "0.1.0",
          .description = "keepalived picks the active node of the cluster", .depends = fo_depends,
          .owns = fo_dbs, .cluster = fo_cluster_dbs, .settings = fo_settings, .init = fo_init,
          .start = fo_start, .stop = fo_stop);
