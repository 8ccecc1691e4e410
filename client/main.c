/* meshgate: the device client. The command line and the dispatch; each
 * command lives in its own file (cmd_*.c, cmd.h), the steps they take in
 * theirs (enroll, api_client, reply, config_file, tunnel, follow, export).
 * Every failure ends with one line on stderr and an exit code of its class
 * (err.h, docs/client.md). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "cmd.h"
#include "config_file.h"

#define DEFAULT_CONFIG_DIR "/etc/meshgate"
#define DEFAULT_STATE_DIR  "/run/meshgate"
#define DEFAULT_IFNAME     "mg0"
#define DEFAULT_TIMEOUT_S  15
#define DEFAULT_INTERVAL_S 30

/* Every command; a new one adds its entry here. */
static const struct cl_command *const commands[] = {
    &cl_cmd_up,    &cl_cmd_down,  &cl_cmd_status,     &cl_cmd_sync,
    &cl_cmd_watch, &cl_cmd_agent, &cl_cmd_rotate_key,
};

volatile sig_atomic_t cl_interrupted;

static void on_signal(int sig)
{
	(void)sig;
	cl_interrupted = 1;
}

int cl_report(const struct cl_err *err)
{
	fprintf(stderr, "meshgate: %s\n", err->msg);
	return err->exit_code;
}

int cl_usage_error(const char *fmt, const char *what)
{
	fprintf(stderr, "meshgate: ");
	fprintf(stderr, fmt, what);
	fprintf(stderr, " (see meshgate --help)\n");
	return CL_EXIT_USAGE;
}

int cl_need_root(const char *doing, struct cl_err *err)
{
	if (geteuid() != 0)
		return cl_fail(err, CL_EXIT_FAILURE, "%s needs root (CAP_NET_ADMIN)", doing);
	return 0;
}

int cl_need_enrolled(const struct cl_args *a, char *path, size_t size, struct cl_err *err)
{
	cl_profile_path(a->config_dir, a->ifname, path, size);
	if (access(path, F_OK))
		return cl_fail(err, CL_EXIT_NOT_FOUND,
		               "%s is not enrolled (no %s): meshgate up --server URL CODE",
		               a->ifname, path);
	return 0;
}

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: meshgate up --server https://HOST[:PORT] [--ca FILE | --pin SHA256]\n"
	    "                   [--interface NAME] [--timeout SEC] [--name NAME] [--no-agent] "
	    "[--mtu N] CODE\n"
	    "       meshgate up --server URL [--ca FILE | --pin SHA256] --export FILE [--qr] "
	    "CODE\n"
	    "       meshgate up --server URL [--ca FILE | --pin SHA256] --login   (log in at "
	    "your company's\n"
	    "                   identity provider instead of a code: open the address shown, "
	    "enter its code)\n"
	    "       meshgate up [--interface NAME] [--timeout SEC] [--no-agent]   (again, from "
	    "the saved "
	    "config)\n"
	    "       up also takes --full-tunnel (everything through the gateway) and "
	    "--kill-switch (nothing\n"
	    "       leaves outside the tunnel while it is down); both are kept in the saved "
	    "config\n"
	    "       meshgate down [--interface NAME] [--forget]\n"
	    "       meshgate status [--interface NAME] [--json]\n"
	    "       meshgate sync [--interface NAME]   (follow the networks of the device's "
	    "role, once)\n"
	    "       meshgate watch [--interface NAME] [--interval SEC]   (the same, every SEC "
	    "s, default 30)\n"
	    "       meshgate agent [--interface NAME] [--mtu N]   (what `up` leaves running, in "
	    "the foreground)\n"
	    "       meshgate rotate-key [--interface NAME]   (a new key pair for the device, "
	    "hitless)\n"
	    "       meshgate --help | --version\n"
	    "common options: --config-dir DIR (default " DEFAULT_CONFIG_DIR
	    ", env MESHGATE_CONFIG_DIR)\n"
	    "                --state-dir DIR (default " DEFAULT_STATE_DIR
	    ", env MESHGATE_STATE_DIR)\n"
	    "                --backend auto|kernel|userspace (env MESHGATE_WG_BACKEND)\n"
	    "exit codes: 0 ok, 1 local failure, 2 usage, 3 server not trusted, 4 server "
	    "unreachable or failing,\n"
	    "            5 unknown or rejected code, 6 code used, 7 code expired or revoked, 8 "
	    "rate limited,\n"
	    "            9 tunnel failed (no handshake), 10 no such tunnel, 11 access ended, 12 "
	    "login refused\n");
}

static bool ifname_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n >= 16 || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (const char *s = name; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

enum opt_id {
	OPT_SERVER = 256,
	OPT_CA,
	OPT_PIN,
	OPT_CONFIG_DIR,
	OPT_STATE_DIR,
	OPT_TIMEOUT,
	OPT_NAME,
	OPT_EXPORT,
	OPT_QR,
	OPT_BACKEND,
	OPT_JSON,
	OPT_FORGET,
	OPT_INTERVAL,
	OPT_NO_AGENT,
	OPT_FULL_TUNNEL,
	OPT_KILL_SWITCH,
	OPT_MTU,
	OPT_LOGIN,
};

static const struct option options[] = {
    {"server", required_argument, NULL, OPT_SERVER},
    {"ca", required_argument, NULL, OPT_CA},
    {"pin", required_argument, NULL, OPT_PIN},
    {"interface", required_argument, NULL, 'i'},
    {"config-dir", required_argument, NULL, OPT_CONFIG_DIR},
    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"name", required_argument, NULL, OPT_NAME},
    {"export", required_argument, NULL, OPT_EXPORT},
    {"qr", no_argument, NULL, OPT_QR},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"json", no_argument, NULL, OPT_JSON},
    {"forget", no_argument, NULL, OPT_FORGET},
    {"interval", required_argument, NULL, OPT_INTERVAL},
    {"no-agent", no_argument, NULL, OPT_NO_AGENT},
    {"full-tunnel", no_argument, NULL, OPT_FULL_TUNNEL},
    {"kill-switch", no_argument, NULL, OPT_KILL_SWITCH},
    {"mtu", required_argument, NULL, OPT_MTU},
    {"login", no_argument, NULL, OPT_LOGIN},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static const char *option_name(int id)
{
	for (const struct option *o = options; o->name; o++)
		if (o->val == id)
			return o->name;
	return "?";
}

/* Which command takes which option (struct cl_command's options); the
 * rest are usage errors. */
static bool option_allowed(const struct cl_command *cmd, int id)
{
	switch (id) {
	case OPT_SERVER:
		return cmd->options & CL_OPT_SERVER;
	case OPT_CA:
		return cmd->options & CL_OPT_CA;
	case OPT_PIN:
		return cmd->options & CL_OPT_PIN;
	case OPT_TIMEOUT:
		return cmd->options & CL_OPT_TIMEOUT;
	case OPT_NAME:
		return cmd->options & CL_OPT_NAME;
	case OPT_EXPORT:
		return cmd->options & CL_OPT_EXPORT;
	case OPT_QR:
		return cmd->options & CL_OPT_QR;
	case OPT_JSON:
		return cmd->options & CL_OPT_JSON;
	case OPT_FORGET:
		return cmd->options & CL_OPT_FORGET;
	case OPT_INTERVAL:
		return cmd->options & CL_OPT_INTERVAL;
	case OPT_NO_AGENT:
		return cmd->options & CL_OPT_NO_AGENT;
	case OPT_FULL_TUNNEL:
		return cmd->options & CL_OPT_FULL_TUNNEL;
	case OPT_KILL_SWITCH:
		return cmd->options & CL_OPT_KILL_SWITCH;
	case OPT_MTU:
		return cmd->options & CL_OPT_MTU;
	case OPT_LOGIN:
		return cmd->options & CL_OPT_LOGIN;
	default:
		return true; /* every command's */
	}
}

static int parse_seconds(const char *text, long max, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || *end || end == text || v < 1 || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

static int set_option(struct cl_args *a, int id, const char *arg)
{
	switch (id) {
	case OPT_SERVER:
		a->server = arg;
		break;
	case OPT_CA:
		a->ca = arg;
		break;
	case OPT_PIN:
		a->pin = arg;
		break;
	case 'i':
		a->ifname = arg;
		break;
	case OPT_CONFIG_DIR:
		a->config_dir = arg;
		break;
	case OPT_STATE_DIR:
		a->state_dir = arg;
		break;
	case OPT_NAME:
		a->name = arg;
		break;
	case OPT_EXPORT:
		a->export_path = arg;
		break;
	case OPT_QR:
		a->qr = true;
		break;
	case OPT_BACKEND:
		a->backend = arg;
		break;
	case OPT_JSON:
		a->json = true;
		break;
	case OPT_FORGET:
		a->forget = true;
		break;
	case OPT_NO_AGENT:
		a->no_agent = true;
		break;
	case OPT_FULL_TUNNEL:
		a->full_tunnel = true;
		break;
	case OPT_KILL_SWITCH:
		a->kill_switch = true;
		break;
	case OPT_LOGIN:
		a->login = true;
		break;
	case OPT_TIMEOUT:
		if (parse_seconds(arg, 3600, &a->timeout_s))
			return cl_usage_error("--timeout must be 1..3600 seconds, not %s", arg);
		break;
	case OPT_INTERVAL:
		if (parse_seconds(arg, 86400, &a->interval_s))
			return cl_usage_error("--interval must be 1..86400 seconds, not %s", arg);
		break;
	case OPT_MTU:
		if (parse_seconds(arg, 9000, &a->mtu) || a->mtu < 576)
			return cl_usage_error("--mtu must be 576..9000, not %s", arg);
		break;
	default:
		return CL_EXIT_USAGE;
	}
	return 0;
}

static void set_defaults(struct cl_args *a)
{
	const char *env;
	a->ifname = DEFAULT_IFNAME;
	a->timeout_s = DEFAULT_TIMEOUT_S;
	a->interval_s = DEFAULT_INTERVAL_S;
	a->config_dir = (env = getenv("MESHGATE_CONFIG_DIR")) && *env ? env : DEFAULT_CONFIG_DIR;
	a->state_dir = (env = getenv("MESHGATE_STATE_DIR")) && *env ? env : DEFAULT_STATE_DIR;
	a->backend = (env = getenv("MESHGATE_WG_BACKEND")) && *env ? env : "auto";
}

/* The checks every command shares, then the command's own. */
static int check_args(struct cl_args *a, int argc, char **argv)
{
	if (optind < argc && a->cmd->takes_code)
		a->code = argv[optind++];
	if (optind < argc)
		return cl_usage_error("unexpected argument '%s'", argv[optind]);
	if (!ifname_valid(a->ifname))
		return cl_usage_error("bad interface name '%s' (1-15 of A-Z a-z 0-9 . _ -)",
		                      a->ifname);
	if (strcmp(a->backend, "auto") && strcmp(a->backend, "kernel") &&
	    strcmp(a->backend, "userspace"))
		return cl_usage_error("--backend must be auto, kernel or userspace, not %s",
		                      a->backend);
	return a->cmd->check ? a->cmd->check(a) : 0;
}

static const struct cl_command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i]->name, name))
			return commands[i];
	return NULL;
}

/* Returns 0 to go on, or the exit code (also for --help and --version). */
static int parse_args(int argc, char **argv, struct cl_args *a, bool *done)
{
	memset(a, 0, sizeof(*a));
	set_defaults(a);
	*done = true;
	if (argc < 2)
		return usage(stderr), CL_EXIT_USAGE;
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return usage(stdout), 0;
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))
		return printf("meshgate %s\n", MESHGATE_VERSION), 0;
	if (!(a->cmd = find_command(argv[1])))
		return cl_usage_error("unknown command '%s'", argv[1]);

	argc--, argv++;
	optind = 1;
	opterr = 0;
	int id;
	while ((id = getopt_long(argc, argv, ":i:hV", options, NULL)) != -1) {
		if (id == 'h')
			return usage(stdout), 0;
		if (id == 'V')
			return printf("meshgate %s\n", MESHGATE_VERSION), 0;
		if (id == '?')
			return cl_usage_error("unknown option '%s'", argv[optind - 1]);
		if (id == ':')
			return cl_usage_error("option '%s' needs a value", argv[optind - 1]);
		if (!option_allowed(a->cmd, id))
			return cl_usage_error("--%s does not apply to this command",
			                      option_name(id));
		int rc = set_option(a, id, optarg);
		if (rc)
			return rc;
	}
	int rc = check_args(a, argc, argv);
	if (rc)
		return rc;
	*done = false;
	return 0;
}

int main(int argc, char **argv)
{
	struct cl_args a;
	bool done;
	int rc = parse_args(argc, argv, &a, &done);
	if (done)
		return rc;

	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT)) {
		fprintf(stderr, "meshgate: cannot initialise libsodium or libcurl\n");
		return CL_EXIT_FAILURE;
	}
	rc = a.cmd->run(&a);
	curl_global_cleanup();
	return rc;
}
