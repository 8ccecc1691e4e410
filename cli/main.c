#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "bus_client.h"
#include "ctl.h"

#define DEFAULT_SOCKET   "/run/meshgate/meshgate.sock"
#define AUDIT_TIMEOUT_MS 2000

/* Every command table; a new group of commands adds its table here. */
static const struct ctl_command *const tables[] = {
    ctl_core_commands, ctl_preauth_commands, ctl_dns_commands, ctl_firewall_commands,
    ctl_node_commands, ctl_wan_commands,     ctl_key_commands, ctl_token_commands,
};

int ctl_fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "meshgatectl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return 1;
}

const char *ctl_take_option(int *argc, char **argv, const char *name)
{
	for (int i = 0; i + 1 < *argc; i++)
		if (!strcmp(argv[i], name)) {
			const char *value = argv[i + 1];
			memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 2) * sizeof(*argv));
			*argc -= 2;
			return value;
		}
	return NULL;
}

const char *ctl_str(json_t *obj, const char *name)
{
	const char *s = json_string_value(json_object_get(obj, name));
	return s && s[0] ? s : "-";
}

int ctl_usage(const struct ctl_command *cmd)
{
	fprintf(stderr, "usage: meshgatectl [--socket PATH] [--json] %s\n", cmd->usage);
	return 2;
}

/* Tells the audit (the api plugin's, docs/api.md) what was asked and how
 * it went; it keeps the changes and drops the reads. Of the reply only an
 * error goes: a success may carry a secret (a new code, a token). Without
 * the api plugin there is no audit, and the command is not refused for it. */
static void audit(struct ctl *ctl, const char *service, json_t *request, json_t *reply, int rc)
{
	json_t *answer = NULL;
	if (!strncmp(service, "api.audit.", 10))
		return;
	json_t *note =
	    json_pack("{s:s, s:O?, s:o}", "service", service, "request", request, "reply",
	              rc ? json_pack("{s:O?, s:O?}", "error", json_object_get(reply, "error"),
	                             "message", json_object_get(reply, "message"))
	                 : json_object());
	if (note)
		mg_bus_client_request(ctl->bus, "api.audit.add", note, AUDIT_TIMEOUT_MS, &answer);
	json_decref(answer);
	json_decref(note);
}

int ctl_call(struct ctl *ctl, const char *service, json_t *request, json_t **reply)
{
	int rc = mg_bus_client_request(ctl->bus, service, request, ctl->timeout_ms, reply);
	if (rc != -ETIMEDOUT)
		audit(ctl, service, request, *reply, rc);
	if (rc == -ETIMEDOUT)
		ctl_fail("no answer from meshgated within %d ms (is it running?)", ctl->timeout_ms);
	else if (rc)
		ctl_fail("%s", json_string_value(json_object_get(*reply, "message")));
	if (ctl->json) {
		char *text = json_dumps(*reply, JSON_INDENT(2));
		printf("%s\n", text);
		free(text);
	}
	if (rc) {
		json_decref(*reply);
		*reply = NULL;
	}
	return rc ? 1 : 0;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: meshgatectl [--socket PATH] [--json] [--timeout MS] COMMAND ...\n"
	             "commands:\n");
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct ctl_command *c = tables[t]; c->name; c++)
			fprintf(out, "  %s\n", c->usage);
}

/* The longest command whose words start argv: "user add" before "user". */
static const struct ctl_command *find_command(int argc, char **argv, int *words)
{
	const struct ctl_command *best = NULL;
	int best_words = 0;
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct ctl_command *c = tables[t]; c->name; c++) {
			char name[64];
			int n = 0, match = 1;
			snprintf(name, sizeof(name), "%s", c->name);
			for (char *w = strtok(name, " "); w; w = strtok(NULL, " "), n++)
				if (n >= argc || strcmp(argv[n], w))
					match = 0;
			if (match && n > best_words) {
				best = c;
				best_words = n;
			}
		}
	*words = best_words;
	return best;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct ctl ctl = {.timeout_ms = 10000};
	const char *socket_path =
	    getenv("MESHGATE_SOCKET") ? getenv("MESHGATE_SOCKET") : DEFAULT_SOCKET;
	int opt, words;

	/* "+": options stop at the command, so its own flags reach it. */
	while ((opt = getopt_long(argc, argv, "+s:jt:h", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			socket_path = optarg;
			break;
		case 'j':
			ctl.json = 1;
			break;
		case 't':
			ctl.timeout_ms = atoi(optarg);
			if (ctl.timeout_ms <= 0)
				return ctl_fail("--timeout must be a positive number of ms") + 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	/* --json is also accepted after the command words */
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "--json")) {
			ctl.json = 1;
			memmove(&argv[i], &argv[i + 1], (size_t)(argc - i - 1) * sizeof(*argv));
			argc--;
			i--;
		}
	const struct ctl_command *cmd = find_command(argc, argv, &words);
	if (!cmd) {
		if (argc)
			ctl_fail("unknown command '%s' (see meshgatectl --help)", argv[0]);
		else
			usage(stderr);
		return 2;
	}

	char endpoint[4200], err[512];
	if (access(socket_path, F_OK))
		return ctl_fail("cannot reach meshgated at %s: %s", socket_path, strerror(errno));
	snprintf(endpoint, sizeof(endpoint), "ipc://%s", socket_path);
	void *zctx = zmq_ctx_new();
	ctl.bus = mg_bus_client_new(zctx, endpoint, err, sizeof(err));
	if (!ctl.bus) {
		zmq_ctx_term(zctx);
		return ctl_fail("%s", err);
	}
	int status = cmd->run(&ctl, argc - words, argv + words);
	mg_bus_client_free(ctl.bus);
	zmq_ctx_term(zctx);
	return status;
}
