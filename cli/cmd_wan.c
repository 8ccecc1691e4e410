/* The gateway's uplinks: one request to the multiwan plugin
 * (docs/multiwan.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

/* "4s ago", "3m ago", "-" (never changed since the plugin started) */
static void format_change(json_t *link, char *out, size_t len)
{
	json_t *at = json_object_get(link, "last_change_ms");
	if (!json_is_integer(at)) {
		snprintf(out, len, "-");
		return;
	}
	long long age = ((long long)time(NULL) * 1000 - (long long)json_integer_value(at)) / 1000;
	if (age < 0)
		age = 0;
	if (age < 120)
		snprintf(out, len, "%llds ago", age);
	else if (age < 7200)
		snprintf(out, len, "%lldm ago", age / 60);
	else
		snprintf(out, len, "%lldh ago", age / 3600);
}

static int wan_list(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply, *link;
	size_t i;
	(void)argv;
	if (argc)
		return ctl_fail("usage: meshgatectl wan list [--json]");
	if (ctl_call(ctl, "multiwan.list", NULL, &reply))
		return 1;
	if (!ctl->json) {
		printf("%-12s %-10s %-15s %-15s %-4s %-5s %-6s %-7s %s\n", "LINK", "INTERFACE",
		       "ADDRESS", "GATEWAY", "PRIO", "STATE", "ACTIVE", "RTT", "CHANGED");
		json_array_foreach(json_object_get(reply, "links"), i, link)
		{
			char rtt[16] = "-", changed[32];
			json_t *ms = json_object_get(link, "rtt_ms");
			if (json_is_integer(ms))
				snprintf(rtt, sizeof(rtt), "%lldms",
				         (long long)json_integer_value(ms));
			format_change(link, changed, sizeof(changed));
			printf("%-12s %-10s %-15s %-15s %-4lld %-5s %-6s %-7s %s\n",
			       ctl_str(link, "link"), ctl_str(link, "interface"),
			       ctl_str(link, "address"), ctl_str(link, "gateway"),
			       (long long)json_integer_value(json_object_get(link, "priority")),
			       ctl_str(link, "state"),
			       json_is_true(json_object_get(link, "active")) ? "yes" : "-", rtt,
			       changed);
		}
	}
	json_decref(reply);
	return 0;
}

const struct ctl_command ctl_wan_commands[] = {
    {"wan list", "wan list [--json]", wan_list},
    {NULL, NULL, NULL},
};
