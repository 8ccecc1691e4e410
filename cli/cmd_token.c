/* meshgatectl token add/list/revoke and audit: the admin API's tokens and
 * the record of changes (the api plugin's; docs/api.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

/* A time of the audit or a token as "2026-12-02 10:47:03Z"; "-" for 0. */
static const char *time_text(json_int_t seconds, char *out, size_t len)
{
	time_t t = (time_t)seconds;
	struct tm tm;
	if (!seconds || !gmtime_r(&t, &tm) || !strftime(out, len, "%Y-%m-%d %H:%M:%SZ", &tm))
		snprintf(out, len, "-");
	return out;
}

static int token_add(struct ctl *ctl, int argc, char **argv)
{
	const char *role = ctl_take_option(&argc, argv, "--role");
	const char *expires = ctl_take_option(&argc, argv, "--expires");
	json_t *reply;
	if (argc != 1 || !role)
		return ctl_fail("usage: meshgatectl token add NAME --role admin|operator|viewer "
		                "[--expires 30d]");
	json_t *request = json_pack("{s:s, s:s}", "name", argv[0], "role", role);
	if (expires)
		json_object_set_new(request, "expires", json_string(expires));
	int rc = ctl_call(ctl, "api.token.add", request, &reply);
	json_decref(request);
	if (rc)
		return 1;
	if (!ctl->json) {
		char until[32];
		printf("%s\n", ctl_str(reply, "token"));
		fprintf(stderr,
		        "token '%s' (%s, expires %s): shown this once, only its hash is kept\n",
		        ctl_str(reply, "name"), ctl_str(reply, "role"),
		        json_integer_value(json_object_get(reply, "expires_at"))
		            ? time_text(json_integer_value(json_object_get(reply, "expires_at")),
		                        until, sizeof(until))
		            : "never");
	}
	json_decref(reply);
	return 0;
}

static int token_list(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply, *t;
	size_t i;
	(void)argv;
	if (argc)
		return ctl_fail("usage: meshgatectl token list");
	if (ctl_call(ctl, "api.token.list", NULL, &reply))
		return 1;
	if (!ctl->json) {
		printf("%-24s %-9s %-21s %s\n", "NAME", "ROLE", "CREATED", "EXPIRES");
		json_array_foreach(json_object_get(reply, "tokens"), i, t)
		{
			char created[32], expires[32];
			json_int_t until = json_integer_value(json_object_get(t, "expires_at"));
			printf("%-24s %-9s %-21s %s%s\n", ctl_str(t, "name"), ctl_str(t, "role"),
			       time_text(json_integer_value(json_object_get(t, "created_at")),
			                 created, sizeof(created)),
			       until ? time_text(until, expires, sizeof(expires)) : "never",
			       json_is_true(json_object_get(t, "expired")) ? " (expired)" : "");
		}
	}
	json_decref(reply);
	return 0;
}

static int token_revoke(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply;
	if (argc != 1)
		return ctl_fail("usage: meshgatectl token revoke NAME");
	json_t *request = json_pack("{s:s}", "name", argv[0]);
	int rc = ctl_call(ctl, "api.token.revoke", request, &reply);
	json_decref(request);
	if (rc)
		return 1;
	if (!ctl->json)
		printf("token '%s' revoked\n", argv[0]);
	json_decref(reply);
	return 0;
}

static int audit(struct ctl *ctl, int argc, char **argv)
{
	const char *limit = ctl_take_option(&argc, argv, "--limit");
	json_t *reply, *e, *request = json_object();
	size_t i;
	if (argc)
		return ctl_fail("usage: meshgatectl audit [--limit N]");
	if (limit)
		json_object_set_new(request, "limit", json_integer(atoll(limit)));
	int rc = ctl_call(ctl, "api.audit.list", request, &reply);
	json_decref(request);
	if (rc)
		return 1;
	if (!ctl->json) {
		printf("%-21s %-28s %-26s %-16s %s\n", "WHEN", "WHO", "SERVICE", "RESULT",
		       "REQUEST");
		json_array_foreach(json_object_get(reply, "entries"), i, e)
		{
			char when[32];
			char *members = json_dumps(json_object_get(e, "request"), JSON_COMPACT);
			printf("%-21s %-28s %-26s %-16s %s\n",
			       time_text(json_integer_value(json_object_get(e, "at")) / 1000, when,
			                 sizeof(when)),
			       ctl_str(e, "who"), ctl_str(e, "service"), ctl_str(e, "result"),
			       members ? members : "{}");
			free(members);
		}
	}
	json_decref(reply);
	return 0;
}

const struct ctl_command ctl_token_commands[] = {
    {"token add", "token add NAME --role admin|operator|viewer [--expires 30d]", token_add},
    {"token list", "token list", token_list},
    {"token revoke", "token revoke NAME", token_revoke},
    {"audit", "audit [--limit N]   (the newest changes first)", audit},
    {NULL, NULL, NULL},
};
