/* Commands about meshgated itself: status, state backup, cluster import,
 * call. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

static int status(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply;
	(void)argv;
	if (argc)
		return ctl_fail("status takes no arguments");
	if (ctl_call(ctl, "core.status", NULL, &reply))
		return 1;
	if (!ctl->json) {
		size_t i;
		json_t *p;
		json_t *ready = json_object_get(reply, "ready");
		printf("meshgated %s  state %s  socket %s\n",
		       json_string_value(json_object_get(reply, "version")),
		       json_string_value(json_object_get(reply, "state_dir")),
		       json_string_value(json_object_get(reply, "socket")));
		if (json_is_true(ready))
			printf("ready %lld ms after it began\n",
			       (long long)json_integer_value(json_object_get(reply, "ready_ms")));
		else if (ready)
			printf("not ready: plugins are still starting\n");
		json_t *cluster = json_object_get(reply, "cluster");
		if (cluster)
			printf("cluster node %s, prefix %s: %s, mirror at revision %lld%s\n",
			       ctl_str(cluster, "node"), ctl_str(cluster, "prefix"),
			       json_is_true(json_object_get(cluster, "writable"))
			           ? "etcd takes writes"
			           : "etcd cannot take writes (no quorum or unreachable)",
			       (long long)json_integer_value(json_object_get(cluster, "revision")),
			       json_is_true(json_object_get(cluster, "import_pending"))
			           ? "; this node's data waits for `meshgatectl cluster import`"
			           : "");
		printf("%-16s %-10s %-12s %-10s %s\n", "PLUGIN", "VERSION", "STATE", "READY",
		       "NOTE");
		json_array_foreach(json_object_get(reply, "plugins"), i, p)
		{
			const char *error = json_string_value(json_object_get(p, "error"));
			json_t *at = json_object_get(p, "ready_ms");
			char when[32] = "-";
			if (at)
				snprintf(when, sizeof(when), "%lld ms",
				         (long long)json_integer_value(at));
			printf("%-16s %-10s %-12s %-10s %s\n",
			       json_string_value(json_object_get(p, "name")),
			       json_string_value(json_object_get(p, "version")),
			       json_string_value(json_object_get(p, "state")), when,
			       error ? error : "");
		}
	}
	json_decref(reply);
	return 0;
}

/* meshgated writes the copy itself (it holds the database), so a
 * relative path is made absolute here, where it means something. */
static int state_backup(struct ctl *ctl, int argc, char **argv)
{
	char path[PATH_MAX], cwd[PATH_MAX];
	json_t *reply;
	if (argc != 1)
		return ctl_fail("usage: meshgatectl state backup FILE");
	if (argv[0][0] == '/')
		snprintf(path, sizeof(path), "%s", argv[0]);
	else if (getcwd(cwd, sizeof(cwd)))
		snprintf(path, sizeof(path), "%s/%s", cwd, argv[0]);
	else
		return ctl_fail("cannot tell the current directory: give an absolute path");
	json_t *request = json_pack("{s:s}", "path", path);
	int rc = ctl_call(ctl, "core.state.backup", request, &reply);
	json_decref(request);
	if (rc)
		return 1;
	if (!ctl->json)
		printf("backup written to %s (%lld bytes); restore it with "
		       "`meshgated --restore %s` while meshgated is stopped\n",
		       path, (long long)json_integer_value(json_object_get(reply, "bytes")), path);
	json_decref(reply);
	return 0;
}

/* A node that ran alone copies its data into the (empty) cluster, once. */
static int cluster_import(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply;
	(void)argv;
	if (argc)
		return ctl_fail("usage: meshgatectl cluster import");
	if (ctl_call(ctl, "core.cluster.import", NULL, &reply))
		return 1;
	if (!ctl->json)
		printf("imported %lld records into the cluster\n",
		       (long long)json_integer_value(json_object_get(reply, "imported")));
	json_decref(reply);
	return 0;
}

/* Any service, any JSON: for operators' scripts and debugging. */
static int call(struct ctl *ctl, int argc, char **argv)
{
	json_error_t jerr;
	json_t *request = NULL, *reply;
	if (argc < 1 || argc > 2)
		return ctl_fail("usage: meshgatectl call SERVICE [JSON]");
	if (argc == 2 && !(request = json_loads(argv[1], 0, &jerr)))
		return ctl_fail("bad JSON: %s", jerr.text);
	int rc = ctl_call(ctl, argv[0], request, &reply);
	json_decref(request);
	if (rc)
		return 1;
	if (!ctl->json) {
		char *text = json_dumps(reply, JSON_INDENT(2));
		printf("%s\n", text);
		free(text);
	}
	json_decref(reply);
	return 0;
}

const struct ctl_command ctl_core_commands[] = {
    {"status", "status", status},
    {"state backup", "state backup FILE", state_backup},
    {"cluster import", "cluster import", cluster_import},
    {"call", "call SERVICE [JSON]", call},
    {NULL, NULL, NULL},
};
