/* Loading plugins: check each descriptor, resolve dependencies, start in
 * dependency order, stop in reverse (models: nginx's module signature
 * check, strongSwan's plugin_loader). Every refusal names the file and the
 * reason. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actor.h"
#include "config.h"
#include "core.h"
#include "host.h"

const char *plugin_status_name(enum plugin_status status)
{
	static const char *const names[] = {
	    [PLUGIN_LOADED] = "loaded",    [PLUGIN_REFUSED] = "refused",
	    [PLUGIN_INIT] = "initialised", [PLUGIN_STARTING] = "starting",
	    [PLUGIN_RUNNING] = "running",  [PLUGIN_FAILED] = "failed",
	    [PLUGIN_STOPPED] = "stopped",
	};
	return names[status];
}

static void refuse(struct core *core, struct plugin *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refuse(struct core *core, struct plugin *p, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&core->plugins_lock);
	va_start(ap, fmt);
	vsnprintf(p->error, sizeof(p->error), fmt, ap);
	va_end(ap);
	p->status = PLUGIN_REFUSED;
	pthread_mutex_unlock(&core->plugins_lock);
	core_log(MG_LOG_ERROR, "loader", "refused %s: %s", p->path, p->error);
}

/* The descriptor's checks (host.c), before anything of the plugin runs. */
static int check_descriptor(struct core *core, struct plugin *p)
{
	char why[512];
	if (!host_check_descriptor(p->desc, why, sizeof(why)))
		return 0;
	refuse(core, p, "%s", why);
	return -1;
}

static struct plugin *find_plugin(struct core *core, const char *name, struct plugin *except)
{
	for (size_t i = 0; i < core->nplugins; i++) {
		struct plugin *p = core->plugins[i];
		if (p != except && p->status != PLUGIN_REFUSED && !strcmp(p->name, name))
			return p;
	}
	return NULL;
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !strcmp(s + n - m, suffix);
}

static int load_one(struct core *core, const char *path)
{
	struct plugin *p = calloc(1, sizeof(*p));
	struct plugin **list = realloc(core->plugins, (core->nplugins + 1) * sizeof(*list));
	if (!p || !list) {
		free(p);
		return -ENOMEM;
	}
	core->plugins = list;
	core->plugins[core->nplugins++] = p;
	p->core = core;
	p->path = strdup(path);
	p->ctx.size = sizeof(p->ctx);
	p->ctx.api = &core_api;
	p->status = PLUGIN_LOADED;
	/* named after its file until its descriptor says otherwise */
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (!strncmp(base, "meshgate-", 9) && has_suffix(base, ".so"))
		snprintf(p->name, sizeof(p->name), "%.*s", (int)(strlen(base) - 12), base + 9);

	p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!p->dl) {
		refuse(core, p, "cannot load: %s", dlerror());
		return 0;
	}
	p->desc = dlsym(p->dl, MG_PLUGIN_SYMBOL);
	if (!p->desc) {
		refuse(core, p, "missing symbol %s (not a meshgate plugin?)", MG_PLUGIN_SYMBOL);
		return 0;
	}
	if (check_descriptor(core, p))
		return 0;
	snprintf(p->name, sizeof(p->name), "%s", p->desc->name);
	struct plugin *twin = find_plugin(core, p->name, p);
	if (twin) {
		refuse(core, p, "duplicate plugin name '%s' (also in %s)", p->name, twin->path);
		return 0;
	}
	snprintf(p->routing_id, sizeof(p->routing_id), "plugin/%s", p->name);
	return 0;
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every meshgate-*.so of the directory, sorted, for a config without
 * `plugins`. */
static json_t *names_in_dir(const char *dir)
{
	json_t *names = json_array();
	char *found[256];
	size_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)) && n < 256)
		if (!strncmp(e->d_name, "meshgate-", 9) && has_suffix(e->d_name, ".so"))
			found[n++] = strndup(e->d_name + 9, strlen(e->d_name) - 12);
	if (d)
		closedir(d);
	qsort(found, n, sizeof(found[0]), compare_strings);
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(names, json_string(found[i]));
		free(found[i]);
	}
	return names;
}

int loader_load_all(struct core *core, const char *plugin_dir, json_t *names, char *err,
                    size_t errlen)
{
	json_t *list = names ? json_incref(names) : names_in_dir(plugin_dir);
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
	{
		const char *name = json_string_value(v);
		char path[4096];
		if (!name || !name[0] || strchr(name, '/')) {
			snprintf(err, errlen, "invalid plugin name in 'plugins'");
			json_decref(list);
			return -EINVAL;
		}
		snprintf(path, sizeof(path), "%s/meshgate-%s.so", plugin_dir, name);
		int rc = load_one(core, path);
		if (rc) {
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
			json_decref(list);
			return rc;
		}
	}
	json_decref(list);
	return 0;
}

static struct plugin *provider(struct core *core, const char *what)
{
	for (size_t i = 0; i < core->nplugins; i++) {
		struct plugin *p = core->plugins[i];
		if (p->status != PLUGIN_REFUSED && host_provides(p->name, p->desc, what))
			return p;
	}
	return NULL;
}

/* The back ends of the secret service (the `secrets` setting) and the
 * plugin of each: exactly one of them serves secret.*. */
static const struct {
	const char *backend, *plugin;
} secret_backends[] = {{"local", "keystore"}, {"vault", "vault"}};

static void drop_plugin(struct core *core, size_t i)
{
	struct plugin *p = core->plugins[i];
	if (p->dl)
		dlclose(p->dl);
	free(p->path);
	free(p);
	memmove(&core->plugins[i], &core->plugins[i + 1],
	        (core->nplugins - i - 1) * sizeof(*core->plugins));
	core->nplugins--;
}

static int depends_on(const struct plugin *p, const char *what)
{
	for (const char *const *dep = p->desc ? p->desc->depends : NULL; dep && *dep; dep++)
		if (!strcmp(*dep, what))
			return 1;
	return 0;
}

int loader_pick_secrets(struct core *core, const char *plugin_dir, const char *backend, int listed,
                        int core_needs, char *err, size_t errlen)
{
	const char *use = NULL;
	for (size_t i = 0; i < sizeof(secret_backends) / sizeof(secret_backends[0]); i++)
		if (!strcmp(backend, secret_backends[i].backend))
			use = secret_backends[i].plugin;
	if (!use) {
		snprintf(err, errlen, "secrets must be \"local\" or \"vault\", not '%s'", backend);
		return -EINVAL;
	}
	for (size_t i = 0; i < core->nplugins;) {
		const char *name = core->plugins[i]->name;
		int other = 0;
		for (size_t b = 0; b < sizeof(secret_backends) / sizeof(secret_backends[0]); b++)
			other |= !strcmp(name, secret_backends[b].plugin) && strcmp(name, use);
		if (other && listed) {
			snprintf(err, errlen,
			         "'plugins' lists %s, but secrets = \"%s\" is served by %s: list "
			         "one of them",
			         name, backend, use);
			return -EINVAL;
		}
		if (other)
			drop_plugin(core, i);
		else
			i++;
	}
	int needed = core_needs;
	for (size_t i = 0; i < core->nplugins; i++)
		needed |= core->plugins[i]->status != PLUGIN_REFUSED &&
		          depends_on(core->plugins[i], "secrets");
	if (!needed || provider(core, "secrets") || find_plugin(core, use, NULL))
		return 0;
	char path[4096];
	snprintf(path, sizeof(path), "%s/meshgate-%s.so", plugin_dir, use);
	int rc = load_one(core, path);
	if (rc)
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
	return rc;
}

/* Refuses what the dependency graph refuses (host.c) and puts the rest in
 * start order, the refused last: they are listed by status, never
 * started. */
int loader_sort(struct core *core, char *err, size_t errlen)
{
	size_t n = core->nplugins;
	struct host_node *nodes = calloc(n + 1, sizeof(*nodes));
	if (!nodes)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct plugin *p = core->plugins[i];
		nodes[i] = (struct host_node){p->name, p->desc, p->status == PLUGIN_REFUSED, ""};
	}
	int rc = host_sort(nodes, n, (void **)core->plugins, err, errlen);
	for (size_t i = 0; rc != -ENOMEM && i < n; i++) {
		struct plugin *p = core->plugins[i];
		if (nodes[i].refused && p->status != PLUGIN_REFUSED)
			refuse(core, p, "%s", nodes[i].why);
	}
	free(nodes);
	return rc;
}

/* The top level of the config: the core's settings plus one group per
 * loaded plugin, validated in one pass so that errors name the line. */
static struct mg_setting *full_schema(struct core *core)
{
	size_t ncore = 0;
	while (mg_core_settings[ncore].name)
		ncore++;
	struct mg_setting *schema = calloc(ncore + core->nplugins + 1, sizeof(*schema));
	if (!schema)
		return NULL;
	memcpy(schema, mg_core_settings, ncore * sizeof(*schema));
	size_t n = ncore;
	for (size_t i = 0; i < core->nplugins; i++) {
		struct plugin *p = core->plugins[i];
		if (!p->name[0])
			continue;
		static const struct mg_setting none[] = {{0}};
		schema[n++] = (struct mg_setting){
		    p->name,
		    MG_SETTING_GROUP,
		    NULL,
		    NULL,
		    p->status == PLUGIN_REFUSED ? NULL
		                                : (p->desc->settings ? p->desc->settings : none),
		    0};
	}
	return schema;
}

static json_t *validate_all(struct core *core, const config_setting_t *root, char *err,
                            size_t errlen)
{
	struct mg_setting *schema = full_schema(core);
	if (!schema) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	json_t *all = mg_config_section(root, schema, "", err, errlen);
	free(schema);
	return all;
}

int loader_configure(struct core *core, const config_setting_t *root, char *err, size_t errlen)
{
	json_t *all = validate_all(core, root, err, errlen);
	if (!all)
		return -EINVAL;
	for (size_t i = 0; i < core->nplugins; i++) {
		struct plugin *p = core->plugins[i];
		if (p->name[0])
			p->config = json_incref(json_object_get(all, p->name));
	}
	json_decref(all);
	return 0;
}

static int owns(const struct mg_plugin *desc, const char *db)
{
	for (const char *const *o = desc->owns; o && *o; o++)
		if (!strcmp(*o, db))
			return 1;
	return 0;
}

int loader_mark_cluster_dbs(struct core *core, char *err, size_t errlen)
{
	for (size_t i = 0; i < core->nplugins; i++) {
		const struct mg_plugin *desc = core->plugins[i]->desc;
		if (core->plugins[i]->status == PLUGIN_REFUSED || desc->abi_minor < 4)
			continue; /* before ABI 1.4 the slot was reserved: NULL */
		for (const char *const *db = desc->cluster; db && *db; db++) {
			int rc = owns(desc, *db) ? state_mark_cluster(core->state, *db) : -EPERM;
			if (rc) {
				snprintf(err, errlen,
				         "%s: cannot share database '%s' in the cluster: %s",
				         core->plugins[i]->name, *db,
				         rc == -EPERM ? "the plugin does not own it"
				                      : strerror(-rc));
				return rc;
			}
		}
	}
	return 0;
}

static void set_status(struct core *core, struct plugin *p, enum plugin_status status,
                       const char *error)
{
	pthread_mutex_lock(&core->plugins_lock);
	p->status = status;
	if (error)
		snprintf(p->error, sizeof(p->error), "%s", error);
	pthread_mutex_unlock(&core->plugins_lock);
}

/* The databases a plugin declares it writes become its own. */
static int claim_databases(struct core *core, struct plugin *p, char *err, size_t errlen)
{
	for (const char *const *db = p->desc->owns; db && *db; db++) {
		int rc = state_claim(core->state, *db, p->name);
		if (rc) {
			snprintf(err, errlen, "cannot own state database '%s': %s", *db,
			         rc == -EEXIST ? "another plugin owns it" : strerror(-rc));
			state_release(core->state, p->name);
			return rc;
		}
	}
	return 0;
}

/* Ends the plugin's actor (its stop runs if its init succeeded) and
 * marks it failed with `why`. */
static void fail_because(struct core *core, struct plugin *p, const char *why)
{
	core_log(MG_LOG_ERROR, "loader", "%s: %s", p->name, why);
	actor_terminate(p);
	state_release(core->state, p->name);
	set_status(core, p, PLUGIN_FAILED, why);
}

static void fail(struct core *core, struct plugin *p, const char *what, int rc)
{
	char msg[512];
	snprintf(msg, sizeof(msg), "%s failed: %s", what, strerror(rc < 0 ? -rc : rc));
	fail_because(core, p, msg);
}

/* Whether what p depends on has passed the phase p waits for: every
 * dependency initialised (`running` 0) or started (1). 1 yes, 0 not yet,
 * -1 never: one failed (why says which). */
static int dependencies_done(struct core *core, struct plugin *p, int running, char *why,
                             size_t len)
{
	int done = 1;
	for (const char *const *dep = p->desc->depends; dep && *dep; dep++) {
		struct plugin *q = provider(core, *dep);
		enum plugin_status s = q ? q->status : PLUGIN_FAILED;
		if (s == PLUGIN_FAILED || s == PLUGIN_REFUSED || s == PLUGIN_STOPPED) {
			snprintf(why, len, "dependency '%s' is not running", *dep);
			return -1;
		}
		if (running ? s != PLUGIN_RUNNING : s == PLUGIN_LOADED)
			done = 0;
	}
	return done;
}

uint64_t core_uptime_ms(void)
{
	static uint64_t birth; /* main's first call, before any thread */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	if (!birth)
		birth = now - 1; /* so that no time of the daemon is 0, "not yet" */
	return now - birth;
}

static void release_startup_memory(struct core *core);

void loader_mark_ready(struct plugin *p)
{
	pthread_mutex_lock(&p->core->plugins_lock);
	int first = !p->ready_ms;
	if (first)
		p->ready_ms = core_uptime_ms();
	pthread_mutex_unlock(&p->core->plugins_lock);
	if (first && p->start_ms)
		core_log(MG_LOG_INFO, "loader", "%s ready (%llu ms after its start began)", p->name,
		         (unsigned long long)(p->ready_ms - p->start_ms));
	else if (first)
		core_log(MG_LOG_INFO, "loader", "%s ready before its start", p->name);
	if (first)
		release_startup_memory(p->core);
}

/* Before its init: the plugin's databases and its thread. */
static int prepare(struct core *core, struct plugin *p)
{
	char err[512];
	int rc = claim_databases(core, p, err, sizeof(err));
	if (rc) {
		set_status(core, p, PLUGIN_FAILED, err);
		return rc;
	}
	if ((rc = actor_spawn(p)))
		fail(core, p, "spawn", rc);
	return rc;
}

/* Runs one phase, INIT (`start` 0) or START, on every plugin as soon as
 * its dependencies have passed it: all that may go at a time go together,
 * each on its own thread (one at a time when `serial`). A plugin whose
 * dependency failed fails too. After a failure with stop_on_error nothing
 * more is sent; what is under way is waited for. */
static void run_phase(struct core *core, int start, int stop_on_error, int serial,
                      const char *in_wave, int *failures)
{
	size_t n = core->nplugins, nbusy = 0;
	struct plugin **busy = calloc(n + 1, sizeof(*busy));
	char *sent = calloc(n + 1, 1), err[512];
	if (!busy || !sent) {
		core_log(MG_LOG_ERROR, "loader", "out of memory: no plugin %s",
		         start ? "started" : "initialised");
		(*failures)++;
		free(busy);
		free(sent);
		return;
	}
	for (;;) {
		for (size_t i = 0; i < n && !(*failures && stop_on_error) && !(serial && nbusy);
		     i++) {
			struct plugin *p = core->plugins[i];
			if (sent[i] || p->status != (start ? PLUGIN_INIT : PLUGIN_LOADED) ||
			    (in_wave && !in_wave[i]))
				continue;
			int deps = dependencies_done(core, p, start, err, sizeof(err));
			if (deps < 0) {
				if (start)
					fail_because(core, p, err);
				else
					set_status(core, p, PLUGIN_FAILED, err);
				(*failures)++;
			}
			if (deps <= 0)
				continue;
			if (!start && prepare(core, p)) {
				(*failures)++;
				continue;
			}
			if (start) {
				pthread_mutex_lock(&core->plugins_lock);
				p->status = PLUGIN_STARTING;
				p->start_ms = core_uptime_ms();
				pthread_mutex_unlock(&core->plugins_lock);
			}
			sent[i] = 1;
			actor_send(p, start ? "START" : "INIT");
			busy[nbusy++] = p;
		}
		if (!nbusy)
			break;
		int rc;
		size_t done = actor_wait_any(busy, nbusy, &rc);
		struct plugin *p = busy[done];
		busy[done] = busy[--nbusy];
		if (rc) {
			fail(core, p, start ? "start" : "init", rc);
			(*failures)++;
		} else if (start) {
			set_status(core, p, PLUGIN_RUNNING, "");
			core_log(MG_LOG_INFO, "loader", "started %s %s", p->name, p->desc->version);
		} else {
			set_status(core, p, PLUGIN_INIT, "");
		}
	}
	free(busy);
	free(sent);
}

/* Puts p and what it depends on, all the way down, in the wave. */
static void add_to_wave(struct core *core, struct plugin *p, char *in_wave)
{
	for (size_t i = 0; i < core->nplugins; i++) {
		if (core->plugins[i] != p || in_wave[i])
			continue;
		in_wave[i] = 1;
		for (const char *const *dep = p->desc->depends; dep && *dep; dep++) {
			struct plugin *q = provider(core, *dep);
			if (q)
				add_to_wave(core, q, in_wave);
		}
	}
}

int loader_init_first(struct core *core, const char *feature, int serial)
{
	struct plugin *p = provider(core, feature);
	char *in_wave = calloc(core->nplugins + 1, 1);
	int failures = 0;
	if (!p || !in_wave) {
		free(in_wave);
		return p ? -ENOMEM : -ENOENT;
	}
	add_to_wave(core, p, in_wave);
	run_phase(core, 0, 1, serial, in_wave, &failures);
	free(in_wave);
	return failures ? -1 : 0;
}

int loader_start_all(struct core *core, int stop_on_error, int serial)
{
	int failures = 0;
	for (size_t i = 0; i < core->nplugins; i++)
		failures += core->plugins[i]->status == PLUGIN_REFUSED;
	if (!failures || !stop_on_error)
		run_phase(core, 0, stop_on_error, serial, NULL, &failures);
	if (!failures || !stop_on_error)
		run_phase(core, 1, stop_on_error, serial, NULL, &failures);
	pthread_mutex_lock(&core->plugins_lock);
	core->started = 1;
	pthread_mutex_unlock(&core->plugins_lock);
	release_startup_memory(core);
	return failures ? -1 : 0;
}

void loader_reload_all(struct core *core, const config_setting_t *root)
{
	char err[1024];
	json_t *all = validate_all(core, root, err, sizeof(err));
	if (!all) {
		core_log(MG_LOG_ERROR, "config", "reload refused, keeping the running config: %s",
		         err);
		return;
	}
	for (size_t i = 0; i < core->nplugins; i++) {
		struct plugin *p = core->plugins[i];
		if (p->status != PLUGIN_RUNNING)
			continue;
		p->next_config = json_incref(json_object_get(all, p->name));
		int rc = actor_call(p, "RELOAD");
		if (rc)
			core_log(MG_LOG_ERROR, "loader", "%s refused the new config: %s", p->name,
			         strerror(-rc));
	}
	json_decref(all);
}

void loader_stop_all(struct core *core)
{
	pthread_mutex_lock(&core->plugins_lock);
	core->started = 0; /* not ready any more */
	pthread_mutex_unlock(&core->plugins_lock);
	for (size_t i = core->nplugins; i-- > 0;) {
		struct plugin *p = core->plugins[i];
		if (!p->actor)
			continue;
		actor_terminate(p);
		state_release(core->state, p->name);
		set_status(core, p, PLUGIN_STOPPED, NULL);
		core_log(MG_LOG_INFO, "loader", "stopped %s", p->name);
	}
}

void loader_unload_all(struct core *core)
{
	for (size_t i = 0; i < core->nplugins; i++) {
		struct plugin *p = core->plugins[i];
		if (p->dl)
			dlclose(p->dl);
		json_decref(p->config);
		json_decref(p->next_config);
		free(p->path);
		free(p);
	}
	free(core->plugins);
	core->plugins = NULL;
	core->nplugins = 0;
}

/* A plugin counts for readiness while it is to run: a refused or failed
 * one never will (core.status says why), and plugin_errors = "continue"
 * chose to run without it. */
static int counts_for_readiness(const struct plugin *p)
{
	return p->status == PLUGIN_LOADED || p->status == PLUGIN_INIT ||
	       p->status == PLUGIN_STARTING || p->status == PLUGIN_RUNNING;
}

static int is_ready(const struct plugin *p)
{
	return p->status == PLUGIN_RUNNING && p->ready_ms;
}

/* Every plugin that counts is ready: /api/v1/health's "ready". */
static int all_ready_locked(struct core *core)
{
	for (size_t i = 0; i < core->nplugins; i++)
		if (!is_ready(core->plugins[i]) && counts_for_readiness(core->plugins[i]))
			return 0;
	return core->started;
}

/* Once every plugin has read what it needed at start-up (often the whole
 * of its databases): note when meshgated became ready, give the heap it
 * freed back to the system, and drop the database pages the start-up read
 * from our RSS (they stay in the page cache and fault back in when read
 * again). Called as each plugin becomes ready and once every start has
 * returned: the last of those finds them all ready. */
static void release_startup_memory(struct core *core)
{
	pthread_mutex_lock(&core->plugins_lock);
	int now = !core->startup_memory_released && all_ready_locked(core);
	if (now) {
		core->startup_memory_released = 1;
		core->ready_ms = core_uptime_ms();
	}
	pthread_mutex_unlock(&core->plugins_lock);
	if (!now)
		return;
	state_release_pages(core->state);
	malloc_trim(0);
}

json_t *loader_status(struct core *core)
{
	json_t *list = json_array();
	pthread_mutex_lock(&core->plugins_lock);
	for (size_t i = 0; i < core->nplugins; i++) {
		struct plugin *p = core->plugins[i];
		json_t *entry =
		    json_pack("{s:s, s:s, s:s, s:s}", "name", p->name[0] ? p->name : "?", "version",
		              p->desc && p->desc->version ? p->desc->version : "", "state",
		              plugin_status_name(p->status), "path", p->path);
		if (p->error[0])
			json_object_set_new(entry, "error", json_string(p->error));
		int plugin_ready = is_ready(p);
		json_object_set_new(entry, "ready", json_boolean(plugin_ready));
		if (p->start_ms)
			json_object_set_new(entry, "start_ms",
			                    json_integer((json_int_t)p->start_ms));
		if (plugin_ready)
			json_object_set_new(entry, "ready_ms",
			                    json_integer((json_int_t)p->ready_ms));
		json_array_append_new(list, entry);
	}
	int ready = all_ready_locked(core);
	uint64_t ready_ms = core->ready_ms;
	pthread_mutex_unlock(&core->plugins_lock);
	json_t *status = json_pack("{s:b, s:o}", "ready", ready, "plugins", list);
	if (ready)
		json_object_set_new(status, "ready_ms", json_integer((json_int_t)ready_ms));
	return status;
}
