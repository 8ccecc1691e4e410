/* meshgatectl: the admin's command line. Each command is one entry of a
 * table; a command turns its arguments into one bus request and prints
 * the reply, as text or (--json) as the reply's JSON. */
#ifndef MG_CTL_H
#define MG_CTL_H

#include <jansson.h>

struct ctl {
	struct mg_bus_client *bus;
	int json;       /* --json */
	int timeout_ms; /* --timeout */
};

struct ctl_command {
	const char *name; /* "status", "user add" */
	const char *usage;
	/* argv[0] is the first argument after the command's words. Returns the
	 * exit status. */
	int (*run)(struct ctl *ctl, int argc, char **argv);
};

/* Sends the request (and tells the audit: a change is recorded as made by
 * "meshgatectl (local root)"); on error prints "meshgatectl: MESSAGE" and returns
 * non-zero, else prints the reply when --json and returns 0 with *reply. */
int ctl_call(struct ctl *ctl, const char *service, json_t *request, json_t **reply);
/* Prints a one-line error on stderr and returns 1 (bad usage: 2). */
int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ctl_usage(const struct ctl_command *cmd);
/* Takes "NAME VALUE" out of argv (anywhere after the command); VALUE or NULL. */
const char *ctl_take_option(int *argc, char **argv, const char *name);
/* A string member of a reply for a table cell: "-" when absent or empty. */
const char *ctl_str(json_t *obj, const char *name);

extern const struct ctl_command ctl_core_commands[];
extern const struct ctl_command ctl_preauth_commands[];
extern const struct ctl_command ctl_dns_commands[];
extern const struct ctl_command ctl_firewall_commands[];
extern const struct ctl_command ctl_node_commands[];
extern const struct ctl_command ctl_wan_commands[];
extern const struct ctl_command ctl_key_commands[];
extern const struct ctl_command ctl_token_commands[];

#endif
