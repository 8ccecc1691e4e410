/* meshgate, the device client: one file a command (cmd_*.c), each an entry
 * that main.c dispatches to, as meshgatectl does (cli/ctl.h). main.c parses
 * the options every command shares; a command names the ones it takes
 * besides and checks its own. */
#ifndef MESHGATE_CLIENT_CMD_H
#define MESHGATE_CLIENT_CMD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* The options only some commands take; the rest (--interface,
 * --config-dir, --state-dir, --backend, --help, --version) every one. */
enum cl_option {
	CL_OPT_SERVER = 1 << 0,
	CL_OPT_CA = 1 << 1,
	CL_OPT_PIN = 1 << 2,
	CL_OPT_TIMEOUT = 1 << 3,
	CL_OPT_NAME = 1 << 4,
	CL_OPT_EXPORT = 1 << 5,
	CL_OPT_QR = 1 << 6,
	CL_OPT_JSON = 1 << 7,
	CL_OPT_FORGET = 1 << 8,
	CL_OPT_INTERVAL = 1 << 9,
	CL_OPT_NO_AGENT = 1 << 10,
	CL_OPT_FULL_TUNNEL = 1 << 11,
	CL_OPT_KILL_SWITCH = 1 << 12,
	CL_OPT_MTU = 1 << 13,
	CL_OPT_LOGIN = 1 << 14,
};

struct cl_command;

/* The command line, parsed. */
struct cl_args {
	const struct cl_command *cmd;
	const char *server, *ca, *pin, *ifname, *config_dir, *state_dir, *name, *export_path;
	const char *backend, *code;
	int timeout_s, interval_s;
	int mtu; /* --mtu: the tunnel's, fixed (no path MTU discovery); 0 none */
	bool qr, json, forget, no_agent, full_tunnel, kill_switch;
	bool login; /* up --login: the identity provider instead of a code */
};

struct cl_command {
	const char *name; /* "up" */
	unsigned options; /* the enum cl_option it takes */
	bool takes_code;  /* one operand: CODE */
	/* Its own checks of the arguments, after the common ones (NULL: none);
	 * 0, or the usage error's exit code, the message printed. */
	int (*check)(const struct cl_args *a);
	/* Returns the exit code. */
	int (*run)(const struct cl_args *a);
};

extern const struct cl_command cl_cmd_up, cl_cmd_down, cl_cmd_status, cl_cmd_sync, cl_cmd_watch,
    cl_cmd_agent, cl_cmd_rotate_key;

/* Set by SIGINT and SIGTERM: the command stops what it waits for. */
extern volatile sig_atomic_t cl_interrupted;

/* Prints "meshgate: MESSAGE" on stderr and returns the failure's exit code. */
int cl_report(const struct cl_err *err);
/* Prints "meshgate: " fmt (with what) " (see meshgate --help)" on stderr and
 * returns the usage exit code. */
int cl_usage_error(const char *fmt, const char *what);

/* Fails (CL_EXIT_FAILURE) unless this process is root: "DOING needs root". */
int cl_need_root(const char *doing, struct cl_err *err);
/* The saved config of an enrolled interface, in path; fails with
 * CL_EXIT_NOT_FOUND when the interface is not enrolled. */
int cl_need_enrolled(const struct cl_args *a, char *path, size_t size, struct cl_err *err);

#endif
