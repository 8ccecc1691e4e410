/* meshgate: the device client. Arguments and the order of the steps; each
 * step lives in its own file (api_client, reply, config_file, tunnel,
 * export). Every failure ends with one line on stderr and an exit code of
 * its class (err.h, docs/client.md). */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "api_client.h"
#include "config_file.h"
#include "err.h"
#include "resolver.h"
#include "export.h"
#include "follow.h"
#include "reply.h"
#include "tls_pin.h"
#include "tunnel.h"
#include "wg.h"

#define DEFAULT_CONFIG_DIR "/etc/meshgate"
#define DEFAULT_STATE_DIR  "/run/meshgate"
#define DEFAULT_IFNAME     "mg0"
#define DEFAULT_TIMEOUT_S  15
#define API_TIMEOUT_S      30
#define SYNC_TIMEOUT_S     10 /* a sync's request: through the tunnel, to the gateway */
#define UP_SYNC_TIMEOUT_S  5  /* the sync right after a reconnect: best effort */
#define DEFAULT_INTERVAL_S 30
#define CODE_MAX           128
#define CA_MAX             (256 * 1024)

enum command { CMD_UP, CMD_DOWN, CMD_STATUS, CMD_SYNC, CMD_WATCH };

struct args {
	enum command cmd;
	const char *server, *ca, *pin, *ifname, *config_dir, *state_dir, *name, *export_path;
	const char *backend, *code;
	int timeout_s, interval_s;
	bool qr, json, forget;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int report(const struct cl_err *err)
{
	fprintf(stderr, "meshgate: %s\n", err->msg);
	return err->exit_code;
}

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: meshgate up --server https://HOST[:PORT] [--ca FILE | --pin SHA256]\n"
	        "                   [--interface NAME] [--timeout SEC] [--name NAME] CODE\n"
	        "       meshgate up --server URL [--ca FILE | --pin SHA256] --export FILE [--qr] "
	        "CODE\n"
	        "       meshgate up [--interface NAME] [--timeout SEC]   (again, from the saved "
	        "config)\n"
	        "       meshgate down [--interface NAME] [--forget]\n"
	        "       meshgate status [--interface NAME] [--json]\n"
	        "       meshgate sync [--interface NAME]   (follow the networks of the device's "
	        "role, once)\n"
	        "       meshgate watch [--interface NAME] [--interval SEC]   (the same, every SEC "
	        "s, default 30)\n"
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
	        "            9 tunnel failed (no handshake), 10 no such tunnel\n");
}

static int usage_error(const char *fmt, const char *what)
{
	fprintf(stderr, "meshgate: ");
	fprintf(stderr, fmt, what);
	fprintf(stderr, " (see meshgate --help)\n");
	return CL_EXIT_USAGE;
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

static bool code_valid(const char *code)
{
	size_t n = strlen(code);
	if (n == 0 || n > CODE_MAX)
		return false;
	for (const char *s = code; *s; s++)
		if (*s <= 0x20 || *s >= 0x7f)
			return false;
	return true;
}

/* The API takes up to 253 bytes of UTF-8 without control characters. */
static bool name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 253)
		return false;
	for (const unsigned char *s = (const unsigned char *)name; *s; s++)
		if (*s < 0x20 || *s == 0x7f)
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
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Which command takes which option; the rest are usage errors. */
static const char *option_name(int id)
{
	for (const struct option *o = options; o->name; o++)
		if (o->val == id)
			return o->name;
	return "?";
}

static bool option_allowed(enum command cmd, int id)
{
	switch (id) {
	case OPT_SERVER:
	case OPT_CA:
	case OPT_PIN:
	case OPT_TIMEOUT:
	case OPT_NAME:
	case OPT_EXPORT:
	case OPT_QR:
		return cmd == CMD_UP;
	case OPT_JSON:
		return cmd == CMD_STATUS;
	case OPT_FORGET:
		return cmd == CMD_DOWN;
	case OPT_INTERVAL:
		return cmd == CMD_WATCH;
	default:
		return true;
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

static int set_option(struct args *a, int id, const char *arg)
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
	case OPT_TIMEOUT:
		if (parse_seconds(arg, 3600, &a->timeout_s))
			return usage_error("--timeout must be 1..3600 seconds, not %s", arg);
		break;
	case OPT_INTERVAL:
		if (parse_seconds(arg, 86400, &a->interval_s))
			return usage_error("--interval must be 1..86400 seconds, not %s", arg);
		break;
	default:
		return CL_EXIT_USAGE;
	}
	return 0;
}

static void set_defaults(struct args *a)
{
	const char *env;
	a->ifname = DEFAULT_IFNAME;
	a->timeout_s = DEFAULT_TIMEOUT_S;
	a->interval_s = DEFAULT_INTERVAL_S;
	a->config_dir = (env = getenv("MESHGATE_CONFIG_DIR")) && *env ? env : DEFAULT_CONFIG_DIR;
	a->state_dir = (env = getenv("MESHGATE_STATE_DIR")) && *env ? env : DEFAULT_STATE_DIR;
	a->backend = (env = getenv("MESHGATE_WG_BACKEND")) && *env ? env : "auto";
}

static int check_args(struct args *a, int argc, char **argv)
{
	if (optind < argc && a->cmd == CMD_UP)
		a->code = argv[optind++];
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!ifname_valid(a->ifname))
		return usage_error("bad interface name '%s' (1-15 of A-Z a-z 0-9 . _ -)",
		                   a->ifname);
	if (strcmp(a->backend, "auto") && strcmp(a->backend, "kernel") &&
	    strcmp(a->backend, "userspace"))
		return usage_error("--backend must be auto, kernel or userspace, not %s",
		                   a->backend);
	if (a->cmd != CMD_UP)
		return 0;
	if (a->ca && a->pin)
		return usage_error("%s", "give --ca or --pin, not both");
	if (a->qr && !a->export_path)
		return usage_error("%s", "--qr needs --export FILE");
	if (a->name && !name_valid(a->name))
		return usage_error("%s",
		                   "--name must be 1-253 characters without control characters");
	if (a->code && !code_valid(a->code))
		return usage_error("%s", "the code must be 1-128 printable characters");
	if (a->code && !a->server)
		return usage_error("%s", "up CODE needs --server https://HOST:PORT");
	if (!a->code && (a->server || a->ca || a->pin || a->export_path || a->name))
		return usage_error("%s", "missing CODE");
	return 0;
}

/* Returns 0 to go on, or the exit code (also for --help and --version). */
static int parse_args(int argc, char **argv, struct args *a, bool *done)
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
	if (!strcmp(argv[1], "up"))
		a->cmd = CMD_UP;
	else if (!strcmp(argv[1], "down"))
		a->cmd = CMD_DOWN;
	else if (!strcmp(argv[1], "status"))
		a->cmd = CMD_STATUS;
	else if (!strcmp(argv[1], "sync"))
		a->cmd = CMD_SYNC;
	else if (!strcmp(argv[1], "watch"))
		a->cmd = CMD_WATCH;
	else
		return usage_error("unknown command '%s'", argv[1]);

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
			return usage_error("unknown option '%s'", argv[optind - 1]);
		if (id == ':')
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		if (!option_allowed(a->cmd, id))
			return usage_error("--%s does not apply to this command", option_name(id));
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

/* ---- up ---- */

struct up_ctx {
	const struct args *a;
	struct cl_tunnel_opts tun;
	char config_path[4096], ca_copy_path[4096];
	struct cl_api *api;
	uint8_t private_key[CL_KEY_LEN], public_key[CL_KEY_LEN];
	struct cl_redeem_reply reply;
	struct cl_profile profile;
	bool registered;
	struct cl_err err;
};

/* Everything that can be checked without the server is checked before the
 * code is spent, so a local problem never costs the user their code. */
static int up_preflight(struct up_ctx *c)
{
	const struct args *a = c->a;
	if (a->export_path) {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s", a->export_path);
		const char *d = dirname(dir);
		if (access(d, W_OK))
			return cl_fail(&c->err, CL_EXIT_FAILURE, "cannot write into %s: %s", d,
			               strerror(errno));
		return 0;
	}
	if (geteuid() != 0)
		return cl_fail(&c->err, CL_EXIT_FAILURE,
		               "bringing a tunnel up needs root (CAP_NET_ADMIN)");
	if (access(c->config_path, F_OK) == 0)
		return cl_fail(&c->err, CL_EXIT_FAILURE,
		               "%s exists: %s is enrolled already (meshgate up --interface %s "
		               "reconnects; meshgate down --forget removes it)",
		               c->config_path, a->ifname, a->ifname);
	if (cl_make_dir(a->config_dir, &c->err) || cl_make_dir(a->state_dir, &c->err))
		return -1;
	return cl_tunnel_check(&c->tun, &c->err);
}

static int up_redeem(struct up_ctx *c)
{
	char host[256] = "", *body = NULL;
	size_t len = 0;
	const char *name = c->a->name;
	if (!name) {
		gethostname(host, sizeof(host) - 1);
		name = *host ? host : "device";
	}
	json_t *req = json_pack("{s:s, s:s}", "code", c->a->code, "name", name);
	int rc = req ? cl_api_post(c->api, "redeem", "/api/v1/redeem", req, &body, &len, &c->err)
	             : cl_fail(&c->err, CL_EXIT_FAILURE, "out of memory");
	json_decref(req);
	if (rc == 0)
		rc = cl_redeem_reply_decode(body, len, &c->reply, &c->err);
	if (body) {
		sodium_memzero(body, len);
		free(body);
	}
	return rc;
}

static int up_register(struct up_ctx *c)
{
	char pub[WG_KEY_B64_LEN], addr[CL_PREFIX_STRLEN], *body = NULL;
	size_t len = 0;
	wg_key_to_base64(pub, c->public_key);
	cl_prefix_format(&c->reply.address, addr, sizeof(addr));
	json_t *id = c->reply.device_id_is_int ? json_integer(atoll(c->reply.device_id))
	                                       : json_string(c->reply.device_id);
	json_t *req = json_pack("{s:o, s:s, s:s, s:s}", "device_id", id, "register_token",
	                        c->reply.register_token, "public_key", pub, "address", addr);
	int rc =
	    req ? cl_api_post(c->api, "register", "/api/v1/register", req, &body, &len, &c->err)
	        : cl_fail(&c->err, CL_EXIT_FAILURE, "out of memory");
	json_decref(req);
	free(body);
	c->registered = rc == 0;
	return rc;
}

static int up_export(struct up_ctx *c)
{
	if (cl_export_write(c->a->export_path, &c->profile, &c->err))
		return -1;
	if (up_register(c)) {
		unlink(c->a->export_path);
		return -1;
	}
	if (c->a->qr) {
		char *text = cl_profile_render(&c->profile, false);
		int rc = text ? cl_qr_print(stdout, text, &c->err)
		              : cl_fail(&c->err, CL_EXIT_FAILURE, "cannot render the config");
		cl_profile_text_free(text);
		if (rc)
			return rc;
	}
	printf("meshgate: wrote %s (device %s, address ", c->a->export_path, c->profile.device_id);
	char addr[CL_PREFIX_STRLEN];
	cl_prefix_format(&c->profile.address, addr, sizeof(addr));
	printf("%s); import it into a WireGuard app\n", addr);
	return 0;
}

static int up_connect(struct up_ctx *c, bool enrolling)
{
	long waited_ms = 0;
	char addr[CL_PREFIX_STRLEN], endpoint[CL_ENDPOINT_STRLEN];

	if (cl_tunnel_up(&c->tun, &c->profile, &c->err))
		return -1;
	if (interrupted || (enrolling && up_register(c))) {
		cl_fail(&c->err, CL_EXIT_TUNNEL, "interrupted");
		cl_tunnel_down(&c->tun, true, NULL);
		return -1;
	}
	if (cl_tunnel_wait_handshake(&c->tun, &c->profile, c->a->timeout_s, &interrupted,
	                             &waited_ms, &c->err)) {
		cl_tunnel_down(&c->tun, true, NULL);
		return -1;
	}
	cl_prefix_format(&c->profile.address, addr, sizeof(addr));
	cl_endpoint_format(&c->profile.endpoint, endpoint, sizeof(endpoint));
	printf("meshgate: %s is up: %s, server %s, handshake after %.1f s\n", c->a->ifname, addr,
	       endpoint, (double)waited_ms / 1000.0);
	cl_resolver_apply(c->a->ifname, &c->profile);
	return 0;
}

/* CONFIG_DIR/IFNAME.ca.pem: the copy of --ca that `meshgate sync` trusts. */
static void ca_copy_path(const struct args *a, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s.ca.pem", a->config_dir, a->ifname);
}

static char *read_small_file(const char *path, size_t max, struct cl_err *err)
{
	FILE *f = fopen(path, "re");
	char *text = f ? calloc(1, max + 2) : NULL; /* room for one byte too many */
	size_t n = text ? fread(text, 1, max + 1, f) : 0;
	int failed = !f || !text || ferror(f);
	int saved = errno;
	if (f)
		fclose(f);
	if (failed || n > max || strlen(text) != n) {
		free(text);
		cl_fail(err, CL_EXIT_FAILURE, "cannot read %s: %s", path,
		        failed ? strerror(saved) : "too large, or not a PEM file");
		return NULL;
	}
	return text;
}

/* The trust of this enrolment, kept for `meshgate sync` (which reaches the
 * gateway through the tunnel later): the pin, in its canonical form, or a
 * copy of the CA file next to the config. Neither: the system's store. */
static int save_trust(struct up_ctx *c)
{
	const struct args *a = c->a;
	struct cl_pin pin;
	if (a->pin && cl_pin_parse(a->pin, &pin) == 0)
		cl_pin_format(&pin, c->profile.pin, sizeof(c->profile.pin));
	if (a->pin || !a->ca)
		return 0;
	char *text = read_small_file(a->ca, CA_MAX, &c->err);
	if (!text)
		return -1;
	ca_copy_path(a, c->ca_copy_path, sizeof(c->ca_copy_path));
	int rc = cl_write_private_file(c->ca_copy_path, text, &c->err);
	free(text);
	if (rc) {
		c->ca_copy_path[0] = '\0';
		return -1;
	}
	snprintf(c->profile.ca_file, sizeof(c->profile.ca_file), "%s.ca.pem", a->ifname);
	return 0;
}

static void drop_saved(struct up_ctx *c)
{
	unlink(c->config_path);
	if (*c->ca_copy_path)
		unlink(c->ca_copy_path);
}

/* After `up`: a reconnect from a saved config follows the networks at
 * once (they may have changed while it was down); then the hint. */
static void after_up(struct up_ctx *c, bool reconnected)
{
	if (!*c->profile.vpn_api)
		return; /* a gateway without the device config: nothing to follow */
	if (reconnected) {
		struct cl_follow_opts o = {c->tun, c->config_path, UP_SYNC_TIMEOUT_S, &interrupted};
		struct cl_follow_result res;
		struct cl_err err = {0};
		if (cl_follow_sync(&o, &res, &err))
			fprintf(stderr, "meshgate: warning: the networks were not refreshed: %s\n",
			        err.msg);
		else
			cl_follow_print(stdout, c->a->ifname, &res, false);
	}
	printf("meshgate: to follow the networks the gateway gives this device as they change, "
	       "run: meshgate watch --interface %s\n",
	       c->a->ifname);
}

/* The first connection of a device: redeem, save, connect, register. */
static int up_enroll(struct up_ctx *c)
{
	struct cl_api_options opt = {.server_url = c->a->server,
	                             .ca_file = c->a->ca,
	                             .pin = c->a->pin,
	                             .timeout_s = API_TIMEOUT_S};
	if (up_preflight(c))
		return -1;
	if (wg_key_generate_private(c->private_key) ||
	    wg_key_public_from_private(c->public_key, c->private_key))
		return cl_fail(&c->err, CL_EXIT_FAILURE, "cannot generate a key pair");
	if (cl_api_open(&c->api, &opt, &c->err) || up_redeem(c))
		return -1;
	cl_profile_from_reply(&c->profile, c->a->server, &c->reply, c->private_key);
	if (c->a->export_path)
		return up_export(c);

	if (save_trust(c))
		return -1;
	if (cl_profile_save(c->config_path, &c->profile, &c->err)) {
		drop_saved(c);
		return -1;
	}
	int rc = up_connect(c, true);
	/* Before the server knows the key the config is worthless: drop it. A
	 * registered device keeps it, so `meshgate up` can retry later. */
	if (rc && !c->registered)
		drop_saved(c);
	else if (rc)
		snprintf(c->err.msg + strlen(c->err.msg), sizeof(c->err.msg) - strlen(c->err.msg),
		         "; tunnel removed, retry with: meshgate up --interface %s", c->a->ifname);
	else
		after_up(c, false);
	return rc;
}

/* A device enrolled before: bring the saved config up again. */
static int up_again(struct up_ctx *c)
{
	if (geteuid() != 0)
		return cl_fail(&c->err, CL_EXIT_FAILURE,
		               "bringing a tunnel up needs root (CAP_NET_ADMIN)");
	if (access(c->config_path, F_OK))
		return cl_fail(&c->err, CL_EXIT_NOT_FOUND,
		               "%s is not enrolled (no %s): meshgate up --server URL CODE",
		               c->a->ifname, c->config_path);
	if (cl_profile_load(c->config_path, &c->profile, &c->err) ||
	    cl_make_dir(c->a->state_dir, &c->err) || cl_tunnel_check(&c->tun, &c->err))
		return -1;
	if (up_connect(c, false))
		return -1;
	after_up(c, true);
	return 0;
}

static int cmd_up(const struct args *a)
{
	struct up_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return CL_EXIT_FAILURE;
	c->a = a;
	c->tun = (struct cl_tunnel_opts){a->ifname, a->state_dir, a->backend};
	cl_profile_path(a->config_dir, a->ifname, c->config_path, sizeof(c->config_path));
	int rc = a->code ? up_enroll(c) : up_again(c);
	rc = rc ? report(&c->err) : 0;
	cl_api_close(c->api);
	sodium_memzero(c, sizeof(*c));
	free(c);
	return rc;
}

/* ---- down ---- */

static int cmd_down(const struct args *a)
{
	struct cl_tunnel_opts tun = {a->ifname, a->state_dir, a->backend};
	struct cl_err err = {0};
	char path[4096];

	cl_profile_path(a->config_dir, a->ifname, path, sizeof(path));
	bool enrolled = access(path, F_OK) == 0;
	if (cl_tunnel_down(&tun, a->forget && enrolled, &err))
		return report(&err);
	cl_resolver_remove(a->ifname);
	if (a->forget && enrolled && unlink(path))
		return cl_fail(&err, CL_EXIT_FAILURE, "cannot remove %s: %s", path,
		               strerror(errno)),
		       report(&err);
	if (a->forget) {
		ca_copy_path(a, path, sizeof(path));
		unlink(path); /* the CA copy of the enrolment, if any */
	}
	printf("meshgate: %s is down%s\n", a->ifname,
	       a->forget && enrolled ? " and its config removed" : "");
	return 0;
}

/* ---- status ---- */

static void print_size(const char *label, uint64_t bytes)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 4)
		v /= 1024, u++;
	printf(u ? "%.2f %s %s" : "%.0f %s %s", v, units[u], label);
}

static void status_text(const struct args *a, const struct cl_profile *p, bool enrolled,
                        const struct cl_tunnel_status *st)
{
	char addr[CL_PREFIX_STRLEN], endpoint[CL_ENDPOINT_STRLEN], key[WG_KEY_B64_LEN];
	printf("interface: %s\n  state: %s\n", a->ifname, st->up ? "up" : "down");
	if (st->up) {
		printf("  backend: %s", st->backend);
		if (st->pid)
			printf(" (wireguard-go pid %ld)", (long)st->pid);
		wg_key_to_base64(key, st->public_key);
		printf("\n  public key: %s\n", key);
	}
	if (enrolled) {
		cl_prefix_format(&p->address, addr, sizeof(addr));
		printf("  address: %s\n", addr);
		if (*p->server_url)
			printf("  server: %s (device %s)\n", p->server_url, p->device_id);
	}
	if (st->have_peer && *st->endpoint)
		printf("  endpoint: %s\n", st->endpoint);
	else if (enrolled && cl_endpoint_format(&p->endpoint, endpoint, sizeof(endpoint)) == 0)
		printf("  endpoint: %s\n", endpoint);
	if (!st->up)
		return;
	if (st->last_handshake) {
		long ago = (long)(time(NULL) - st->last_handshake);
		printf("  last handshake: %ld seconds ago\n", ago < 0 ? 0 : ago);
	} else {
		printf("  last handshake: never\n");
	}
	printf("  transfer: ");
	print_size("received", st->rx_bytes);
	printf(", ");
	print_size("sent\n", st->tx_bytes);
}

static void status_json(const struct args *a, const struct cl_profile *p, bool enrolled,
                        const struct cl_tunnel_status *st)
{
	char addr[CL_PREFIX_STRLEN], endpoint[CL_ENDPOINT_STRLEN], key[WG_KEY_B64_LEN];
	json_t *o = json_pack("{s:s, s:b}", "interface", a->ifname, "up", st->up);
	if (st->up) {
		wg_key_to_base64(key, st->public_key);
		json_object_set_new(o, "backend", json_string(st->backend));
		json_object_set_new(o, "pid", st->pid ? json_integer(st->pid) : json_null());
		json_object_set_new(o, "public_key", json_string(key));
		json_object_set_new(o, "last_handshake",
		                    st->last_handshake ? json_integer(st->last_handshake)
		                                       : json_null());
		json_object_set_new(o, "rx_bytes", json_integer((json_int_t)st->rx_bytes));
		json_object_set_new(o, "tx_bytes", json_integer((json_int_t)st->tx_bytes));
	}
	if (enrolled) {
		cl_prefix_format(&p->address, addr, sizeof(addr));
		json_object_set_new(o, "address", json_string(addr));
		json_object_set_new(o, "server",
		                    *p->server_url ? json_string(p->server_url) : json_null());
		json_object_set_new(o, "device_id", json_string(p->device_id));
		cl_endpoint_format(&p->endpoint, endpoint, sizeof(endpoint));
	}
	if (st->have_peer && *st->endpoint)
		json_object_set_new(o, "endpoint", json_string(st->endpoint));
	else if (enrolled)
		json_object_set_new(o, "endpoint", json_string(endpoint));
	char *text = json_dumps(o, JSON_INDENT(2));
	printf("%s\n", text);
	free(text);
	json_decref(o);
}

static int cmd_status(const struct args *a)
{
	struct cl_tunnel_opts tun = {a->ifname, a->state_dir, a->backend};
	struct cl_tunnel_status st;
	struct cl_profile p;
	struct cl_err err = {0};
	char path[4096];

	cl_profile_path(a->config_dir, a->ifname, path, sizeof(path));
	bool enrolled = access(path, F_OK) == 0;
	if (enrolled && cl_profile_load(path, &p, &err))
		return report(&err);
	if (cl_tunnel_status(&tun, enrolled ? &p : NULL, &st, &err))
		return report(&err);
	if (!enrolled && !st.up)
		return cl_fail(&err, CL_EXIT_NOT_FOUND, "%s is neither up nor enrolled here",
		               a->ifname),
		       report(&err);
	if (a->json)
		status_json(a, &p, enrolled, &st);
	else
		status_text(a, &p, enrolled, &st);
	sodium_memzero(&p, sizeof(p));
	return st.up ? 0 : CL_EXIT_NOT_FOUND;
}

/* ---- sync, watch ---- */

static int follow_check(const struct args *a, char *path, size_t size, struct cl_err *err)
{
	if (geteuid() != 0)
		return cl_fail(err, CL_EXIT_FAILURE,
		               "changing the tunnel's routes needs root (CAP_NET_ADMIN)");
	cl_profile_path(a->config_dir, a->ifname, path, size);
	if (access(path, F_OK))
		return cl_fail(err, CL_EXIT_NOT_FOUND,
		               "%s is not enrolled (no %s): meshgate up --server URL CODE",
		               a->ifname, path);
	return 0;
}

static int cmd_sync(const struct args *a)
{
	char path[4096];
	struct cl_err err = {0};
	struct cl_follow_result *res = calloc(1, sizeof(*res));
	int rc = 0;
	if (!res)
		return CL_EXIT_FAILURE;
	struct cl_follow_opts o = {
	    {a->ifname, a->state_dir, a->backend}, path, SYNC_TIMEOUT_S, &interrupted};
	if (follow_check(a, path, sizeof(path), &err) || cl_follow_sync(&o, res, &err))
		rc = report(&err);
	else
		cl_follow_print(stdout, a->ifname, res, true);
	free(res);
	return rc;
}

static int cmd_watch(const struct args *a)
{
	char path[4096];
	struct cl_err err = {0};
	struct cl_follow_opts o = {
	    {a->ifname, a->state_dir, a->backend}, path, SYNC_TIMEOUT_S, &interrupted};
	if (follow_check(a, path, sizeof(path), &err))
		return report(&err);
	return cl_follow_watch(&o, a->interval_s);
}

int main(int argc, char **argv)
{
	struct args a;
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
	switch (a.cmd) {
	case CMD_UP:
		rc = cmd_up(&a);
		break;
	case CMD_DOWN:
		rc = cmd_down(&a);
		break;
	case CMD_STATUS:
		rc = cmd_status(&a);
		break;
	case CMD_SYNC:
		rc = cmd_sync(&a);
		break;
	case CMD_WATCH:
		rc = cmd_watch(&a);
		break;
	}
	curl_global_cleanup();
	return rc;
}
