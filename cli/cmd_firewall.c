/* Routes, VPN-only ports, the firewall's status and its flush: each
 * command is one request to the firewall plugin (docs/firewall.md has the
 * shapes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* "a, b" of a JSON array of strings */
static void join(json_t *array, char *out, size_t len)
{
	size_t i, used = 0;
	json_t *v;
	out[0] = '\0';
	json_array_foreach(array, i, v)
	{
		int n = snprintf(out + used, len - used, "%s%s", i ? "," : "",
		                 json_string_value(v) ? json_string_value(v) : "?");
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
}

/* Sends; unless --json prints `done` and whether the system followed. */
static int change(struct ctl *ctl, const char *service, json_t *request, const char *done)
{
	json_t *reply;
	int rc = ctl_call(ctl, service, request, &reply);
	json_decref(request);
	if (rc)
		return 1;
	int applied = json_is_true(json_object_get(reply, "applied"));
	if (!ctl->json) {
		if (applied)
			printf("%s (applied in %.1f ms)\n", done,
			       json_real_value(json_object_get(reply, "apply_ms")));
		else if (json_is_true(json_object_get(reply, "flushed")))
			printf("%s, but not applied: %s\n", done, ctl_str(reply, "apply_error"));
		else
			printf("%s, but not applied yet: %s (retried every second)\n", done,
			       ctl_str(reply, "apply_error"));
	}
	json_decref(reply);
	return applied ? 0 : 1;
}

static int route_add(struct ctl *ctl, int argc, char **argv)
{
	const char *via = ctl_take_option(&argc, argv, "--via");
	const char *roles = ctl_take_option(&argc, argv, "--roles");
	char done[256];
	if (argc != 1 || !roles)
		return ctl_fail("usage: meshgatectl route add SUBNET [--via IFACE] --roles R1,R2");
	json_t *list = json_array();
	char *copy = strdup(roles), *save = NULL;
	for (char *r = strtok_r(copy, ",", &save); r; r = strtok_r(NULL, ",", &save))
		json_array_append_new(list, json_string(r));
	free(copy);
	json_t *request = json_pack("{s:s, s:o}", "subnet", argv[0], "roles", list);
	if (via)
		json_object_set_new(request, "via", json_string(via));
	snprintf(done, sizeof(done), "route %s added for %s", argv[0], roles);
	return change(ctl, "firewall.route.add", request, done);
}

static int route_del(struct ctl *ctl, int argc, char **argv)
{
	char done[128];
	if (argc != 1)
		return ctl_fail("usage: meshgatectl route del SUBNET");
	snprintf(done, sizeof(done), "route %s removed", argv[0]);
	return change(ctl, "firewall.route.del", json_pack("{s:s}", "subnet", argv[0]), done);
}

static int route_list(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply, *r;
	size_t i;
	(void)argv;
	if (argc)
		return ctl_fail("usage: meshgatectl route list");
	if (ctl_call(ctl, "firewall.route.list", NULL, &reply))
		return 1;
	if (!ctl->json) {
		printf("%-20s %-16s %-8s %s\n", "SUBNET", "INTERFACE", "SOURCE", "ROLES");
		json_array_foreach(json_object_get(reply, "routes"), i, r)
		{
			char roles[512];
			join(json_object_get(r, "roles"), roles, sizeof(roles));
			printf("%-20s %-16s %-8s %s\n", ctl_str(r, "subnet"),
			       ctl_str(r, "interface"), ctl_str(r, "source"), roles);
		}
	}
	json_decref(reply);
	return 0;
}

static int port_add(struct ctl *ctl, int argc, char **argv)
{
	char done[128];
	if (argc != 1)
		return ctl_fail("usage: meshgatectl port add PORT/PROTO (e.g. 8080/tcp)");
	snprintf(done, sizeof(done), "port %s open from the VPN only", argv[0]);
	return change(ctl, "firewall.port.add", json_pack("{s:s}", "port", argv[0]), done);
}

static int port_del(struct ctl *ctl, int argc, char **argv)
{
	char done[128];
	if (argc != 1)
		return ctl_fail("usage: meshgatectl port del PORT/PROTO");
	snprintf(done, sizeof(done), "port %s removed", argv[0]);
	return change(ctl, "firewall.port.del", json_pack("{s:s}", "port", argv[0]), done);
}

static int port_list(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply, *p;
	size_t i;
	(void)argv;
	if (argc)
		return ctl_fail("usage: meshgatectl port list");
	if (ctl_call(ctl, "firewall.port.list", NULL, &reply))
		return 1;
	if (!ctl->json) {
		char host[512];
		join(json_object_get(reply, "vpn_host"), host, sizeof(host));
		printf("VPN-only ports (dropped on %s):\n", ctl_str(reply, "public_interface"));
		json_array_foreach(json_object_get(reply, "vpn_only"), i, p)
		    printf("  %-12s %s\n", ctl_str(p, "port"), ctl_str(p, "source"));
		printf("gateway ports open to VPN clients: %s\n", host);
	}
	json_decref(reply);
	return 0;
}

static int status(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply, *r;
	const char *name;
	(void)argv;
	if (argc)
		return ctl_fail("usage: meshgatectl firewall status");
	if (ctl_call(ctl, "firewall.status", NULL, &reply))
		return 1;
	if (!ctl->json) {
		printf("VPN %s (%s), public side %s, %lld devices in role sets, last apply "
		       "%.1f ms\n",
		       ctl_str(reply, "vpn_interface"), ctl_str(reply, "vpn_subnet"),
		       ctl_str(reply, "public_interface"),
		       (long long)json_integer_value(json_object_get(reply, "devices")),
		       json_real_value(json_object_get(reply, "last_apply_ms")));
		printf("on stop: %s\n", !strcmp(ctl_str(reply, "on_stop"), "flush")
		                            ? "flush (every rule and set removed)"
		                            : "keep (the policy stays in force)");
		if (json_is_true(json_object_get(reply, "flushed")))
			printf(
			    "FLUSHED: no rule applied (meshgatectl firewall flush) until a reload "
			    "or a restart of meshgated\n");
		if (json_object_get(reply, "last_error"))
			printf("last error: %s\n", ctl_str(reply, "last_error"));
		printf("%-16s %-24s %-8s %s\n", "ROLE", "SET", "DEVICES", "SUBNETS");
		json_object_foreach(json_object_get(reply, "roles"), name, r)
		{
			char subnets[1024];
			join(json_object_get(r, "subnets"), subnets, sizeof(subnets));
			printf("%-16s %-24s %-8lld %s\n", name, ctl_str(r, "set"),
			       (long long)json_integer_value(json_object_get(r, "devices")),
			       subnets);
		}
	}
	json_decref(reply);
	return 0;
}

/* The one way to remove every rule and set of ours while meshgated runs
 * (a stop keeps them, unless firewall.on_stop = "flush"). */
static int flush(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply;
	(void)argv;
	if (argc)
		return ctl_fail("usage: meshgatectl firewall flush");
	if (ctl_call(ctl, "firewall.flush", NULL, &reply))
		return 1;
	if (!ctl->json)
		printf(
		    "flushed: every MESHGATE chain, hook and set removed; nothing from the VPN is "
		    "filtered and VPN-only ports are open on the public side until meshgated is "
		    "reloaded or restarted\n");
	json_decref(reply);
	return 0;
}

const struct ctl_command ctl_firewall_commands[] = {
    {"route add", "route add SUBNET [--via IFACE] --roles R1,R2", route_add},
    {"route del", "route del SUBNET", route_del},
    {"route list", "route list", route_list},
    {"port add", "port add PORT/PROTO", port_add},
    {"port del", "port del PORT/PROTO", port_del},
    {"port list", "port list", port_list},
    {"firewall status", "firewall status", status},
    {"firewall flush", "firewall flush", flush},
    {NULL, NULL, NULL},
};
