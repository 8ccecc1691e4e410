/* Users, codes and devices: each command is one request to the preauth
 * plugin (docs/preauth.md has the shapes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

static void format_time(json_t *seconds, char *out, size_t len)
{
	time_t t = (time_t)json_integer_value(seconds);
	struct tm tm;
	if (!json_is_integer(seconds) || !gmtime_r(&t, &tm))
		snprintf(out, len, "-");
	else
		strftime(out, len, "%Y-%m-%d %H:%M:%SZ", &tm);
}

/* Sends and, unless --json, prints `text` filled from the reply. */
static int simple(struct ctl *ctl, const char *service, json_t *request, const char *done)
{
	json_t *reply;
	int rc = ctl_call(ctl, service, request, &reply);
	json_decref(request);
	if (rc)
		return 1;
	if (!ctl->json && done)
		printf("%s\n", done);
	json_decref(reply);
	return 0;
}

/* The end of a user's access: a time, or "unlimited". */
static void format_access(json_t *until, char *out, size_t len)
{
	if (json_is_integer(until))
		format_time(until, out, len);
	else
		snprintf(out, len, "unlimited");
}

static void print_code(json_t *reply)
{
	char expires[64], access[64];
	format_time(json_object_get(reply, "expires_at"), expires, sizeof(expires));
	format_access(json_object_get(reply, "access_until"), access, sizeof(access));
	printf("user %s (%s)\ncode %s\nexpires %s\naccess %s\n\nOn the device: meshgate up "
	       "--server https://GATEWAY:PORT --ca ca.pem %s\n",
	       ctl_str(reply, "user"), ctl_str(reply, "role"), ctl_str(reply, "code"), expires,
	       access, ctl_str(reply, "code"));
}

/* user add and code add: both ask for a code and print it (request taken). */
static int request_code(struct ctl *ctl, const char *service, json_t *request, const char *expires)
{
	json_t *reply;
	if (expires)
		json_object_set_new(request, "expires", json_string(expires));
	int rc = ctl_call(ctl, service, request, &reply);
	json_decref(request);
	if (rc)
		return 1;
	if (!ctl->json)
		print_code(reply);
	json_decref(reply);
	return 0;
}

static int user_add(struct ctl *ctl, int argc, char **argv)
{
	const char *role = ctl_take_option(&argc, argv, "--role");
	const char *expires = ctl_take_option(&argc, argv, "--expires");
	const char *until = ctl_take_option(&argc, argv, "--access-until");
	if (argc != 1 || !role)
		return ctl_fail("usage: meshgatectl user add NAME --role ROLE [--expires 24h] "
		                "[--access-until TIME]");
	json_t *request = json_pack("{s:s, s:s}", "name", argv[0], "role", role);
	if (until) /* checked by preauth: RFC 3339, in the future */
		json_object_set_new(request, "access_until", json_string(until));
	return request_code(ctl, "preauth.user.add", request, expires);
}

static int code_add(struct ctl *ctl, int argc, char **argv)
{
	const char *expires = ctl_take_option(&argc, argv, "--expires");
	if (argc != 1)
		return ctl_fail("usage: meshgatectl code add USER [--expires 24h]");
	return request_code(ctl, "preauth.code.add", json_pack("{s:s}", "user", argv[0]), expires);
}

static int user_list(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply, *u;
	size_t i;
	(void)argv;
	if (argc)
		return ctl_fail("usage: meshgatectl user list");
	if (ctl_call(ctl, "preauth.user.list", NULL, &reply))
		return 1;
	if (!ctl->json) {
		printf("%-24s %-12s %-8s %-21s %s\n", "USER", "ROLE", "DEVICES", "CREATED",
		       "ACCESS UNTIL");
		json_array_foreach(json_object_get(reply, "users"), i, u)
		{
			char created[64], access[64];
			format_time(json_object_get(u, "created_at"), created, sizeof(created));
			format_access(json_object_get(u, "access_until"), access, sizeof(access));
			printf("%-24s %-12s %-8lld %-21s %s%s\n", ctl_str(u, "name"),
			       ctl_str(u, "role"),
			       (long long)json_integer_value(json_object_get(u, "devices")),
			       created, access,
			       !strcmp(ctl_str(u, "access"), "expired") ? " (ended)" : "");
		}
	}
	json_decref(reply);
	return 0;
}

static int user_del(struct ctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return ctl_fail("usage: meshgatectl user del NAME");
	return simple(ctl, "preauth.user.del", json_pack("{s:s}", "name", argv[0]), "deleted");
}

static int user_set_role(struct ctl *ctl, int argc, char **argv)
{
	if (argc != 2)
		return ctl_fail("usage: meshgatectl user set-role NAME ROLE");
	return simple(ctl, "preauth.user.set_role",
	              json_pack("{s:s, s:s}", "name", argv[0], "role", argv[1]), "role changed");
}

static int user_set_access(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply;
	char access[64];
	if (argc != 2)
		return ctl_fail("usage: meshgatectl user set-access NAME TIME|never");
	json_t *request = json_pack("{s:s, s:s}", "name", argv[0], "until", argv[1]);
	int rc = ctl_call(ctl, "preauth.user.set_access", request, &reply);
	json_decref(request);
	if (rc)
		return 1;
	if (!ctl->json) {
		format_access(json_object_get(reply, "access_until"), access, sizeof(access));
		printf("access of %s: %s%s (%lld devices %s)\n", ctl_str(reply, "name"), access,
		       !strcmp(ctl_str(reply, "access"), "expired") ? ", ended" : "",
		       (long long)json_integer_value(json_object_get(reply, "devices")),
		       !strcmp(ctl_str(reply, "access"), "expired") ? "expired" : "active again");
	}
	json_decref(reply);
	return 0;
}

static int code_revoke(struct ctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return ctl_fail("usage: meshgatectl code revoke CODE");
	return simple(ctl, "preauth.code.revoke", json_pack("{s:s}", "code", argv[0]), "revoked");
}

static int device_list(struct ctl *ctl, int argc, char **argv)
{
	const char *user = ctl_take_option(&argc, argv, "--user");
	const char *q = ctl_take_option(&argc, argv, "--search");
	const char *limit = ctl_take_option(&argc, argv, "--limit");
	const char *after = ctl_take_option(&argc, argv, "--after");
	json_t *reply, *d, *request = json_object();
	size_t i;
	if (argc)
		return ctl_fail("usage: meshgatectl device list [--user NAME] [--search TEXT] "
		                "[--limit N] [--after ID]");
	if (user)
		json_object_set_new(request, "user", json_string(user));
	if (q)
		json_object_set_new(request, "q", json_string(q));
	if (limit)
		json_object_set_new(request, "limit", json_integer(atoll(limit)));
	if (after)
		json_object_set_new(request, "after", json_string(after));
	int rc = ctl_call(ctl, "preauth.device.list", request, &reply);
	json_decref(request);
	if (rc)
		return 1;
	if (!ctl->json) {
		printf("%-20s %-16s %-24s %-18s %-9s %s\n", "ID", "USER", "NAME", "ADDRESS",
		       "STATE", "PUBLIC KEY");
		json_array_foreach(json_object_get(reply, "devices"), i, d)
		{
			printf("%-20s %-16s %-24s %-18s %-9s %s\n", ctl_str(d, "id"),
			       ctl_str(d, "user"), ctl_str(d, "name"), ctl_str(d, "address"),
			       ctl_str(d, "state"), ctl_str(d, "public_key"));
		}
		if (json_object_get(reply, "next"))
			printf("more: --after %s\n", ctl_str(reply, "next"));
	}
	json_decref(reply);
	return 0;
}

static int device_action(struct ctl *ctl, int argc, char **argv, const char *service,
                         const char *done)
{
	if (argc != 1)
		return ctl_fail("usage: meshgatectl device disable|enable|del ID");
	return simple(ctl, service, json_pack("{s:s}", "id", argv[0]), done);
}

static int device_disable(struct ctl *ctl, int argc, char **argv)
{
	return device_action(ctl, argc, argv, "preauth.device.disable", "disabled");
}

static int device_enable(struct ctl *ctl, int argc, char **argv)
{
	return device_action(ctl, argc, argv, "preauth.device.enable", "enabled");
}

static int device_del(struct ctl *ctl, int argc, char **argv)
{
	return device_action(ctl, argc, argv, "preauth.device.del", "deleted");
}

const struct ctl_command ctl_preauth_commands[] = {
    {"user add", "user add NAME --role ROLE [--expires 24h] [--access-until TIME]", user_add},
    {"user list", "user list", user_list},
    {"user del", "user del NAME", user_del},
    {"user set-role", "user set-role NAME ROLE", user_set_role},
    {"user set-access",
     "user set-access NAME TIME|never   (TIME: RFC 3339, e.g. 2026-12-31T18:00Z or +01:00)",
     user_set_access},
    {"code add", "code add USER [--expires 24h]", code_add},
    {"code revoke", "code revoke CODE", code_revoke},
    {"device list", "device list [--user NAME] [--search TEXT] [--limit N] [--after ID]",
     device_list},
    {"device disable", "device disable ID", device_disable},
    {"device enable", "device enable ID", device_enable},
    {"device del", "device del ID", device_del},
    {NULL, NULL, NULL},
};
