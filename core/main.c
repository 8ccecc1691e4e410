/* meshgated: reads the config, opens state, runs the bus, loads plugins,
 * and waits for signals. Everything about VPNs lives in plugins. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "broker.h"
#include "config.h"
#include "cluster.h"
#include "cluster_key.h"
#include "core.h"
#include "metrics.h"
#include "request_check.h"

#define INPROC_BUS "inproc://meshgate-bus"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: meshgated [--config FILE] [--check-config] [--version]\n"
	        "                 [--config-doc[=FORMAT]] [--restore BACKUP]\n"
	        "  --config FILE     read FILE (libconfig syntax); without it: defaults\n"
	        "  --check-config    validate the config and the plugins, then exit\n"
	        "  --config-doc[=md|man|sample]\n"
	        "                    print the settings reference (Markdown, the roff of\n"
	        "                    meshgated.conf(5), or a config file with every\n"
	        "                    setting commented out at its default) and exit\n"
	        "  --restore BACKUP  install BACKUP (from `meshgatectl state backup`) as\n"
	        "                    the state database, then exit; meshgated must be stopped\n"
	        "  --version         print the version and exit\n");
}

static const char *setting(struct core *core, const char *name)
{
	return json_string_value(json_object_get(core->settings, name));
}

/* core.state.backup {path}: a consistent copy of the live database,
 * written by meshgated to an absolute path that does not exist yet. */
static json_t *state_backup_service(struct core *core, json_t *request)
{
	static const struct mg_field fields[] = {{"path", MG_FIELD_STRING, 1, 1, 4095}, {0}};
	json_t *bad = request_check(request, fields);
	if (bad)
		return bad;
	const char *path = json_string_value(json_object_get(request, "path"));
	char err[512];
	size_t bytes;
	int rc = state_backup(core->state, path, &bytes, err, sizeof(err));
	if (rc) {
		core_log(MG_LOG_WARN, "core", "state backup refused: %s", err);
		return rc == -EINVAL || rc == -EEXIST ? mg_field_error("path", "%s", err)
		                                      : mg_error("internal", "%s", err);
	}
	core_log(MG_LOG_INFO, "core", "state backup written to %s (%zu bytes)", path, bytes);
	return json_pack("{s:s, s:I}", "path", path, "bytes", (json_int_t)bytes);
}

/* core.cluster.import: this node's data into an empty cluster. */
static json_t *cluster_import_service(struct core *core)
{
	char err[512];
	size_t keys;
	if (!core->cluster)
		return mg_error("bad_request",
		                "this node is not in a cluster (no cluster setting)");
	int rc = cluster_import(core->cluster, &keys, err, sizeof(err));
	if (rc == -EEXIST)
		return mg_error("conflict", "%s", err);
	if (rc == -EHOSTUNREACH)
		return mg_error("unavailable", "%s", err);
	if (rc)
		return mg_error("internal", "%s", err);
	return json_pack("{s:I}", "imported", (json_int_t)keys);
}

/* core.metrics: the node, its readiness, each plugin's state, and etcd's
 * figures in a cluster (docs/metrics.md). */
static json_t *metrics_service(struct core *core)
{
	json_t *families = json_array(), *status = loader_status(core), *plugin;
	size_t i;
	metrics_sample(metrics_family(families, "meshgate_info", "gauge",
	                              "1, with this node's name and meshgated's version"),
	               json_pack("{s:s, s:s}", "node", core->node_name, "version", MG_VERSION), 1);
	metrics_sample(metrics_family(families, "meshgate_ready", "gauge",
	                              "1 once every plugin has started and reconciled"),
	               NULL, json_is_true(json_object_get(status, "ready")));
	metrics_sample(metrics_family(families, "meshgate_uptime_seconds", "gauge",
	                              "Seconds since meshgated began"),
	               NULL, (double)core_uptime_ms() / 1e3);
	json_t *running = metrics_family(families, "meshgate_plugin_running", "gauge",
	                                 "1 for a plugin that runs, 0 for one loaded that does not "
	                                 "(refused, failed, stopped)");
	json_array_foreach(json_object_get(status, "plugins"), i, plugin)
	{
		const char *state = json_string_value(json_object_get(plugin, "state"));
		metrics_sample(running,
		               json_pack("{s:O}", "plugin", json_object_get(plugin, "name")),
		               state && !strcmp(state, "running"));
	}
	json_decref(status);
	if (core->cluster) {
		json_t *etcd = cluster_metrics(core->cluster);
		json_array_extend(families, etcd);
		json_decref(etcd);
	}
	return metrics_reply(families);
}

static json_t *core_service(const char *service, json_t *request, void *arg)
{
	static const struct mg_field no_fields[] = {{0}};
	struct core *core = arg;
	if (!strcmp(service, "core.state.backup"))
		return state_backup_service(core, request);
	/* these take nothing: checked as every plugin's services are */
	json_t *bad = strcmp(service, "core.ping") && strcmp(service, "core.status") &&
	                      strcmp(service, "core.cluster.import") &&
	                      strcmp(service, "core.metrics")
	                  ? NULL
	                  : request_check(request, no_fields);
	if (bad)
		return bad;
	if (!strcmp(service, "core.ping"))
		return json_pack("{s:b}", "pong", 1);
	if (!strcmp(service, "core.cluster.import"))
		return cluster_import_service(core);
	if (!strcmp(service, "core.metrics"))
		return metrics_service(core);
	if (!strcmp(service, "core.status")) {
		json_t *status = loader_status(core);
		json_object_update_new(
		    status, json_pack("{s:s, s:s, s:s, s:I}", "version", MG_VERSION, "state_dir",
		                      setting(core, "state_dir"), "socket", setting(core, "socket"),
		                      "uptime_ms", (json_int_t)core_uptime_ms()));
		json_object_set_new(status, "node", json_string(core->node_name));
		if (core->cluster)
			json_object_set_new(status, "cluster", cluster_status(core->cluster));
		return status;
	}
	return NULL;
}

/* mkdir -p for the socket's directory. */
static int make_parent_dirs(const char *path)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(dir, 0755) && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	return mkdir(dir, 0750) && errno != EEXIST ? -errno : 0;
}

/* Like sshd's StrictModes: a state dir that someone else may write (or
 * owns) lets them replace the database or the keys in it. */
static int check_state_dir_owner(const char *dir, char *err, size_t errlen)
{
	struct stat st;
	if (stat(dir, &st)) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "state dir %s is not a directory", dir);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen,
		         "state dir %s is owned by uid %u, not by meshgated's uid %u: refusing it "
		         "(chown it)",
		         dir, (unsigned)st.st_uid, (unsigned)geteuid());
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, errlen,
		         "state dir %s has mode %04o: others may write it; refusing it "
		         "(chmod 700 %s)",
		         dir, (unsigned)(st.st_mode & 07777), dir);
		return -1;
	}
	return 0;
}

/* One meshgated per state dir: a second one would fight over the
 * interfaces and rules the first one reconciles. */
static int lock_state_dir(const char *dir, char *err, size_t errlen)
{
	char path[4096];
	if (mkdir(dir, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (check_state_dir_owner(dir, err, errlen))
		return -1;
	snprintf(path, sizeof(path), "%s/meshgated.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB)) {
		snprintf(err, errlen, "%s: %s", path,
		         errno == EWOULDBLOCK ? "another meshgated uses this state dir"
		                              : strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd; /* held until exit */
}

/* Loads the config and the plugins' descriptors; validates everything. */
static int configure(struct core *core, config_t **cfg, int all_plugins, char *err, size_t errlen)
{
	const config_setting_t *root = NULL;
	if (core->config_path) {
		*cfg = mg_config_read(core->config_path, err, errlen);
		if (!*cfg)
			return -1;
		root = config_root_setting(*cfg);
	}
	core->settings = mg_config_known(root, mg_core_settings, err, errlen);
	if (!core->settings)
		return -1;
	if (!json_object_get(core->settings, "plugin_dir"))
		json_object_set_new(core->settings, "plugin_dir",
		                    json_string(MESHGATE_PLUGIN_INSTALL_DIR));
	const char *level = setting(core, "log_level");
	const char *on_error = setting(core, "plugin_errors");
	if (core_log_level_parse(level, &core->log_level)) {
		snprintf(err, errlen, "log_level must be error, warn, info or debug, not '%s'",
		         level);
		return -1;
	}
	if (strcmp(on_error, "stop") && strcmp(on_error, "continue")) {
		snprintf(err, errlen, "plugin_errors must be \"stop\" or \"continue\", not '%s'",
		         on_error);
		return -1;
	}
	core_log_set_level(core->log_level);
	const char *node =
	    json_string_value(json_object_get(json_object_get(core->settings, "cluster"), "node"));
	if (node)
		snprintf(core->node_name, sizeof(core->node_name), "%s", node);
	else if (gethostname(core->node_name, sizeof(core->node_name) - 1))
		snprintf(core->node_name, sizeof(core->node_name), "meshgate");
	json_t *cluster = json_object_get(core->settings, "cluster");
	int in_cluster = json_object_get(cluster, "node") || json_object_get(cluster, "etcd");
	if (in_cluster && cluster_settings_check(cluster, err, errlen))
		return -1;
	json_t *listed = json_object_get(core->settings, "plugins");
	if (loader_load_all(core, setting(core, "plugin_dir"), listed, err, errlen))
		return -1;
	/* the reference documents every plugin, both back ends included */
	if (!all_plugins &&
	    loader_pick_secrets(core, setting(core, "plugin_dir"), setting(core, "secrets"),
	                        listed != NULL, in_cluster && json_object_get(cluster, "key"), err,
	                        errlen))
		return -1;
	loader_sort(core, err, errlen); /* a cycle refuses its plugins; reported below */
	return loader_configure(core, root, err, errlen) ? -1 : 0;
}

static int count_refused(struct core *core)
{
	int n = 0;
	for (size_t i = 0; i < core->nplugins; i++)
		n += core->plugins[i]->status == PLUGIN_REFUSED;
	return n;
}

static void print_config_doc(struct core *core, enum mg_doc_format format)
{
	switch (format) {
	case MG_DOC_MARKDOWN:
		printf(
		    "# Configuration reference\n\n"
		    "Generated by `meshgated --config-doc` from the settings each part declares;\n"
		    "a test checks this file against them. The file uses libconfig syntax;\n"
		    "every setting is optional unless marked, an unknown setting is an error.\n\n");
		break;
	case MG_DOC_MAN:
		printf(".TH MESHGATED.CONF 5 \"\" \"meshgate %s\" \"File Formats\"\n"
		       ".SH NAME\nmeshgated.conf \\- configuration of meshgated\n"
		       ".SH SYNOPSIS\n/etc/meshgate/meshgated.conf\n"
		       ".SH DESCRIPTION\n"
		       "The file uses libconfig syntax. Every setting is optional unless marked;\n"
		       "an unknown setting is an error. An empty file is a working gateway.\n"
		       "Check a file with \\fBmeshgated \\-\\-config\\fR \\fIFILE\\fR "
		       "\\fB\\-\\-check\\-config\\fR;\n"
		       "a running meshgated reads it again on SIGHUP.\n"
		       "This page is generated from the settings each part declares, as\n"
		       "docs/config.md is.\n"
		       ".SH SETTINGS\n",
		       MG_VERSION);
		break;
	case MG_DOC_SAMPLE:
		printf("# meshgated's configuration (libconfig syntax), read from\n"
		       "# /etc/meshgate/meshgated.conf. Every setting is shown commented out at\n"
		       "# its default: as it is, this file is a working gateway. Uncomment and\n"
		       "# change what you need (a setting inside a group needs its group's lines\n"
		       "# too), check with\n"
		       "#   meshgated --config /etc/meshgate/meshgated.conf --check-config\n"
		       "# and apply with `systemctl reload meshgated`. Reference: "
		       "meshgated.conf(5).\n");
		break;
	}
	mg_config_doc(stdout, format, "", "meshgated (top level)", mg_core_settings);
	for (size_t i = 0; i < core->nplugins; i++) {
		struct plugin *p = core->plugins[i];
		char title[256];
		if (p->status == PLUGIN_REFUSED)
			continue;
		snprintf(title, sizeof(title), "%s — %s", p->name,
		         p->desc->description ? p->desc->description : "");
		mg_config_doc(stdout, format, p->name, title, p->desc->settings);
	}
	if (format == MG_DOC_MAN)
		printf(
		    ".SH FILES\n.TP\n/etc/meshgate/meshgated.conf\nthe configuration\n"
		    ".TP\n/var/lib/meshgate\nthe node's state (state_dir)\n"
		    ".SH SEE ALSO\n.BR meshgated (8),\n.BR meshgatectl (8),\n.BR meshgate (8)\n");
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Before anything opens the database for writing: a missing data.mdb is a
 * new gateway; one that is empty, truncated or damaged is refused, since
 * LMDB would start over on an empty file (every user and device gone)
 * or fail later, after writing to it. */
static int check_state_db(const char *dir)
{
	char file[4200], why[400];
	struct state_file_report report;
	struct stat st;

	snprintf(file, sizeof(file), "%s/data.mdb", dir);
	if (stat(file, &st) && errno == ENOENT) {
		char lock[4200];
		snprintf(lock, sizeof(lock), "%s/lock.mdb", dir);
		if (!access(lock, F_OK))
			core_log(MG_LOG_WARN, "core",
			         "%s is missing although %s is there: starting with empty state",
			         file, lock);
		else
			core_log(MG_LOG_INFO, "core",
			         "no %s: a new gateway, starting with empty state", file);
		return 0;
	}
	uint64_t start = now_ms();
	if (state_file_check(file, &report, why, sizeof(why))) {
		core_log(
		    MG_LOG_ERROR, "core",
		    "%s: database is empty or damaged (%s); nothing was written to it. Restore "
		    "it with `meshgated --restore BACKUP` from a `meshgatectl state backup`",
		    file, why);
		return -1;
	}
	core_log(MG_LOG_INFO, "core", "%s checked: %zu databases, %zu records in %llu ms", file,
	         report.dbs, report.records, (unsigned long long)(now_ms() - start));
	return 0;
}

/* meshgated --restore BACKUP: with no meshgated on the state dir (its
 * lock), installs the backup as the database. */
static int restore(struct core *core, const char *backup)
{
	char err[1024], kept[4200];
	const char *dir = setting(core, "state_dir");
	int lock = lock_state_dir(dir, err, sizeof(err));
	if (lock < 0) {
		fprintf(stderr, "meshgated: cannot restore: %s\n", err);
		return 1;
	}
	int rc = state_restore(dir, backup, kept, sizeof(kept), err, sizeof(err));
	close(lock);
	if (rc) {
		fprintf(stderr, "meshgated: cannot restore: %s; %s/data.mdb is unchanged\n", err,
		        dir);
		return 1;
	}
	printf("restored %s/data.mdb from %s", dir, backup);
	if (kept[0])
		printf("; the database it replaced is kept as %s", kept);
	printf("\n");
	return 0;
}

/* The cluster's client key from the secret service: its back end is
 * initialised first, the core asks it through the ops table every plugin
 * gets (lib/secret's helpers), and the cluster opens before the other
 * plugins start, so that their writes of cluster data go to etcd. 0, or 1
 * when the node cannot join (logged). */
static int join_cluster(struct core *core, json_t *cluster, struct cluster_key_files *key_files,
                        int serial_start)
{
	struct plugin self = {.ctx = {sizeof(self.ctx), &core_api, NULL}, .core = core};
	char err[1024], *pem = NULL;
	size_t len = 0;
	int rc = 0;
	snprintf(self.name, sizeof(self.name), "core");
	if (key_files->key_file && (rc = loader_init_first(core, "secrets", serial_start)))
		snprintf(err, sizeof(err),
		         "the secret service (secrets = \"%s\") did not start: no cluster.key "
		         "to join the cluster with",
		         setting(core, "secrets"));
	if (!rc && key_files->key_file)
		rc = cluster_key_take(&self.ctx, key_files, &pem, &len, err, sizeof(err));
	if (!rc)
		rc = cluster_open(core->state, cluster, setting(core, "state_dir"), pem, len,
		                  &core->cluster, err, sizeof(err));
	if (pem)
		explicit_bzero(pem, len);
	free(pem);
	if (rc)
		core_log(MG_LOG_ERROR, "cluster", "%s", err);
	return rc ? 1 : 0;
}

static int run(struct core *core, const config_setting_t *root, config_t **cfg)
{
	char err[1024];
	int stop_on_error = !strcmp(setting(core, "plugin_errors"), "stop");
	/* for bench/startup.sh's baseline: the plugins started one by one */
	const char *serial = getenv("MESHGATED_SERIAL_START");
	int serial_start = serial && !strcmp(serial, "1");
	sigset_t signals;

	if (stop_on_error && count_refused(core)) {
		core_log(MG_LOG_ERROR, "core", "refused plugins and plugin_errors = \"stop\"");
		return 1;
	}
	int lock = lock_state_dir(setting(core, "state_dir"), err, sizeof(err));
	if (lock < 0) {
		core_log(MG_LOG_ERROR, "core", "%s", err);
		return 1;
	}
	if (check_state_db(setting(core, "state_dir"))) {
		close(lock);
		return 1;
	}
	size_t map_mb = (size_t)json_integer_value(json_object_get(core->settings, "state_map_mb"));
	core->state = state_open(setting(core, "state_dir"), map_mb << 20, err, sizeof(err));
	if (!core->state) {
		core_log(MG_LOG_ERROR, "core", "%s", err);
		return 1;
	}
	state_on_commit(core->state, core_publish_state_change, core);
	/* the group has defaults (prefix, timeout): it is set when it names
	 * a node or etcd */
	json_t *cluster = json_object_get(core->settings, "cluster");
	if (!json_object_get(cluster, "node") && !json_object_get(cluster, "etcd"))
		cluster = NULL;
	/* a key still in a file (sealed the earlier way under the keystore's
	 * sealing key) is read now: a bad one stops the start, nothing moved */
	const char *seal_key = NULL;
	if (cfg && *cfg)
		config_lookup_string(*cfg, "keystore.seal_key_file", &seal_key);
	struct cluster_key_files key_files = {0};
	if (cluster && (loader_mark_cluster_dbs(core, err, sizeof(err)) ||
	                cluster_key_files_read(cluster, setting(core, "state_dir"), seal_key,
	                                       &key_files, err, sizeof(err)))) {
		core_log(MG_LOG_ERROR, "cluster", "%s", err);
		state_close(core->state);
		close(lock);
		return 1;
	}

	/* Signals are taken by this thread alone, with sigwait; every thread
	 * started from here inherits the blocked mask. */
	sigemptyset(&signals);
	sigaddset(&signals, SIGHUP);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	core->zctx = zmq_ctx_new();
	core->inproc_endpoint = INPROC_BUS;
	const char *socket_path = setting(core, "socket");
	int rc = make_parent_dirs(socket_path);
	if (rc) {
		core_log(MG_LOG_ERROR, "core", "cannot create the directory of %s: %s", socket_path,
		         strerror(-rc));
		return 1;
	}
	core->broker =
	    broker_new(core->zctx, INPROC_BUS, socket_path, core_service, core, err, sizeof(err));
	if (!core->broker || broker_start(core->broker)) {
		core_log(MG_LOG_ERROR, "core", "%s", err);
		return 1;
	}
	core_log(MG_LOG_INFO, "core", "meshgated %s, state %s, bus %s", MG_VERSION,
	         setting(core, "state_dir"), socket_path);

	int status = cluster ? join_cluster(core, cluster, &key_files, serial_start) : 0;
	cluster_key_files_free(&key_files);
	if (!status && loader_start_all(core, stop_on_error, serial_start) && stop_on_error) {
		core_log(MG_LOG_ERROR, "core", "a plugin failed and plugin_errors = \"stop\"");
		status = 1;
	}
	if (!status)
		core_sd_ready(core->nplugins);
	/* fed at a third of systemd's WatchdogSec, so one late answer is no restart */
	unsigned watchdog_ms = core_sd_watchdog_ms() / 3;
	uint64_t fed_ms = 0;
	while (!status) {
		int sig = 0;
		if (watchdog_ms) {
			if (now_ms() - fed_ms >= watchdog_ms) {
				core_sd_watchdog_feed(core, watchdog_ms);
				fed_ms = now_ms();
			}
			struct timespec wait = {watchdog_ms / 1000,
			                        (long)(watchdog_ms % 1000) * 1000000};
			sig = sigtimedwait(&signals, NULL, &wait);
			if (sig < 0)
				continue;
		} else if (sigwait(&signals, &sig)) {
			continue;
		}
		if (sig != SIGHUP) {
			core_log(MG_LOG_INFO, "core", "signal %d: stopping", sig);
			break;
		}
		core_log(MG_LOG_INFO, "core", "SIGHUP: reloading %s",
		         core->config_path ? core->config_path : "(defaults)");
		config_t *fresh = NULL;
		if (core->config_path &&
		    !(fresh = mg_config_read(core->config_path, err, sizeof(err)))) {
			core_log(MG_LOG_ERROR, "config", "reload refused: %s", err);
			continue;
		}
		core_sd_reloading(0);
		loader_reload_all(core, fresh ? config_root_setting(fresh) : NULL);
		if (fresh) {
			mg_config_free(*cfg);
			*cfg = fresh;
		}
		core_sd_reloading(1);
	}
	core_sd_stopping();
	(void)root;
	loader_stop_all(core);
	cluster_close(core->cluster);
	core_log_flush(); /* the counts of suppressed lines are not lost with the daemon */
	core_thread_client_close();
	broker_free(core->broker);
	core->broker = NULL;
	zmq_ctx_term(core->zctx);
	state_close(core->state);
	close(lock);
	return status;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", no_argument, NULL, 'k'},
	    {"config-doc", optional_argument, NULL, 'd'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {"restore", required_argument, NULL, 'r'},
	    {0},
	};
	struct core core = {0};
	int check = 0, doc = 0, opt;
	enum mg_doc_format doc_format = MG_DOC_MARKDOWN;
	const char *restore_from = NULL;
	char err[1024];

	core_uptime_ms(); /* the daemon's times count from here */
	/* glibc gives each thread that allocates its own arena (up to 8 per
	 * CPU): with a thread per plugin, mostly idle, that is megabytes of
	 * heap half empty; two arenas keep the busy threads from contending. */
	mallopt(M_ARENA_MAX, 2);
	pthread_mutex_init(&core.plugins_lock, NULL);
	while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			core.config_path = optarg;
			break;
		case 'k':
			check = 1;
			break;
		case 'd':
			doc = 1;
			if (!optarg || !strcmp(optarg, "md"))
				doc_format = MG_DOC_MARKDOWN;
			else if (!strcmp(optarg, "man"))
				doc_format = MG_DOC_MAN;
			else if (!strcmp(optarg, "sample"))
				doc_format = MG_DOC_SAMPLE;
			else {
				fprintf(
				    stderr,
				    "meshgated: --config-doc takes md, man or sample, not '%s'\n",
				    optarg);
				return 2;
			}
			break;
		case 'r':
			restore_from = optarg;
			break;
		case 'V':
			printf("meshgated %s (plugin ABI %d.%d, %s)\n", MG_VERSION, MG_ABI_MAJOR,
			       MG_ABI_MINOR, MG_BUILD_SIGNATURE);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}

	config_t *cfg = NULL;
	int status;
	if (configure(&core, &cfg, doc, err, sizeof(err))) {
		fprintf(stderr, "meshgated: %s\n", err);
		status = 1;
	} else if (restore_from) {
		status = restore(&core, restore_from);
	} else if (doc) {
		print_config_doc(&core, doc_format);
		status = 0;
	} else if (check) {
		int refused = count_refused(&core);
		if (refused)
			fprintf(stderr, "meshgated: %d plugin(s) refused (see above)\n", refused);
		else
			printf("%s: configuration OK (%zu plugins)\n",
			       core.config_path ? core.config_path : "(defaults)", core.nplugins);
		status = refused ? 1 : 0;
	} else {
		status = run(&core, cfg ? config_root_setting(cfg) : NULL, &cfg);
	}
	loader_unload_all(&core);
	json_decref(core.settings);
	mg_config_free(cfg);
	return status;
}
