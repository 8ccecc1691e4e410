/* The nodes of the mesh: each command is one request to the mesh plugin
 * (docs/mesh.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus_client.h"
#include "ctl.h"

/* "5s ago", "3m ago", "never" */
static void format_age(json_t *node, char *out, size_t len)
{
	json_t *t = json_object_get(node, "last_handshake");
	if (json_is_true(json_object_get(node, "self"))) {
		snprintf(out, len, "-");
		return;
	}
	if (!json_is_integer(t)) {
		snprintf(out, len, "never");
		return;
	}
	long long age = (long long)time(NULL) - (long long)json_integer_value(t);
	if (age < 120)
		snprintf(out, len, "%llds ago", age < 0 ? 0 : age);
	else if (age < 7200)
		snprintf(out, len, "%lldm ago", age / 60);
	else
		snprintf(out, len, "%lldh ago", age / 3600);
}

/* Each node gains "active": it is the one the failover plugin's records
 * name (docs/failover.md); all false where that plugin does not run. */
static void mark_active(struct ctl *ctl, json_t *nodes)
{
	json_t *status = NULL, *n;
	size_t i;
	const char *active = NULL;
	if (!mg_bus_client_request(ctl->bus, "failover.status", NULL, ctl->timeout_ms, &status))
		active = json_string_value(json_object_get(status, "active"));
	json_array_foreach(nodes, i, n)
	{
		const char *name = json_string_value(json_object_get(n, "name"));
		json_object_set_new(n, "active",
		                    json_boolean(active && name && !strcmp(active, name)));
	}
	json_decref(status);
}

static int node_list(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply, *n, *s;
	size_t i, j;
	int json = ctl->json;
	(void)argv;
	if (argc)
		return ctl_fail("usage: meshgatectl node list [--json]");
	ctl->json = 0; /* printed below, with "active" */
	int rc = ctl_call(ctl, "mesh.node.list", NULL, &reply);
	ctl->json = json;
	if (rc)
		return 1;
	mark_active(ctl, json_object_get(reply, "nodes"));
	if (json) {
		char *text = json_dumps(reply, JSON_INDENT(2));
		printf("%s\n", text);
		free(text);
	} else {
		printf("%-20s %-15s %-22s %-9s %-10s %-6s %s\n", "NAME", "MESH ADDRESS", "ENDPOINT",
		       "REACHABLE", "HANDSHAKE", "ACTIVE", "SUBNETS");
		json_array_foreach(json_object_get(reply, "nodes"), i, n)
		{
			char name[64], age[32];
			snprintf(name, sizeof(name), "%s%s", ctl_str(n, "name"),
			         json_is_true(json_object_get(n, "self")) ? " (self)" : "");
			format_age(n, age, sizeof(age));
			printf("%-20s %-15s %-22s %-9s %-10s %-6s", name,
			       ctl_str(n, "mesh_address"), ctl_str(n, "endpoint"),
			       json_is_true(json_object_get(n, "reachable")) ? "yes" : "no", age,
			       json_is_true(json_object_get(n, "active")) ? "yes" : "-");
			json_array_foreach(json_object_get(n, "subnets"), j, s)
			{
				printf("%s%s", j ? "," : " ", json_string_value(s));
			}
			printf("\n");
		}
	}
	json_decref(reply);
	return 0;
}

static int node_del(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply;
	if (argc != 1)
		return ctl_fail("usage: meshgatectl node del NAME");
	json_t *request = json_pack("{s:s}", "name", argv[0]);
	int rc = ctl_call(ctl, "mesh.node.del", request, &reply);
	json_decref(request);
	if (rc)
		return 1;
	if (!ctl->json)
		printf("node %s deleted: every node drops its tunnel to it\n", argv[0]);
	json_decref(reply);
	return 0;
}

const struct ctl_command ctl_node_commands[] = {
    {"node list", "node list [--json]", node_list},
    {"node del", "node del NAME", node_del},
    {NULL, NULL, NULL},
};
