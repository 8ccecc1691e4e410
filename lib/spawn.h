/*
 * spawn: the one way meshgate runs another program.
 *
 * Whatever the calling thread has blocked or ignored (the core blocks
 * SIGTERM and SIGHUP in every plugin thread, and ignores SIGPIPE), the child
 * starts with an empty signal mask and every signal at its default action,
 * and with no descriptor of ours but 0, 1 and 2: a child that cannot be
 * stopped with SIGTERM, or that holds our sockets and databases open, is a
 * bug. Two modes:
 *
 *   mg_spawn_run    runs a command to its end: optional stdin data, stdout
 *                   and stderr captured (bounded), a deadline after which it
 *                   is stopped (SIGTERM, then SIGKILL), reaped, its exit
 *                   status reported (iptables-restore, ipset, resolvectl);
 *   mg_spawn_start  starts a long-lived child and returns its pid, stdin on
 *                   /dev/null and stdout/stderr shared with ours; the caller
 *                   stops it with mg_spawn_stop (wireguard-go, keepalived).
 *
 * Functions return 0 or a negative errno; when given an error buffer they
 * write a sentence naming the program into it.
 */
#ifndef MESHGATE_SPAWN_H
#define MESHGATE_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Used when a field below is left at 0. */
#define MG_SPAWN_TIMEOUT_MS 30000
#define MG_SPAWN_MAX_OUTPUT (16u << 20)
/* How long a child stopped with SIGTERM has before SIGKILL. */
#define MG_SPAWN_GRACE_MS 1000

struct mg_spawn {
	/* argv[0] is looked up in PATH unless it contains a '/'. */
	char *const *argv;
	/* NULL: the caller's environment. */
	char *const *envp;
	/* mg_spawn_run: input_len bytes written to the child's stdin, which is
	 * then closed; none (input_len 0): stdin is /dev/null. */
	const char *input;
	size_t input_len;
	/* mg_spawn_run: the deadline from the start, in ms. */
	int timeout_ms;
	/* mg_spawn_run: bytes kept of stdout and of stderr each; the rest is
	 * read (so that the child never blocks) and dropped. */
	size_t max_output;
	/* mg_spawn_start: SIGTERM to the child when the thread that started it
	 * exits (prctl PR_SET_PDEATHSIG: the thread, not the process). */
	bool die_with_parent;
	/* mg_spawn_start: the child leads a session of its own (setsid), so that
	 * signals to our process group or terminal do not reach it: for a daemon
	 * meant to outlive us. */
	bool new_session;
};

struct mg_spawn_result {
	int status;     /* as waitpid gives it */
	bool timed_out; /* the deadline passed: the child was stopped */
	int timeout_ms; /* the deadline it had */
	/* NUL-terminated, never NULL after mg_spawn_run returned 0 */
	char *out, *err;
	size_t out_len, err_len;
	bool out_truncated, err_truncated;
};

/* Runs s->argv to its end. 0 once the child ran and was reaped, whatever its
 * status (see mg_spawn_succeeded); a negative errno if it could not be
 * started or talked to, with nothing left behind. */
int mg_spawn_run(const struct mg_spawn *s, struct mg_spawn_result *r, char *err, size_t errlen);

/* Exited with status 0, within its deadline. */
bool mg_spawn_succeeded(const struct mg_spawn_result *r);

/* "NAME exited with 2: <its stderr, trimmed>", "NAME was killed by signal 9",
 * "NAME did not finish within 5000 ms", or "NAME succeeded". */
void mg_spawn_describe(const char *name, const struct mg_spawn_result *r, char *buf, size_t len);

void mg_spawn_result_free(struct mg_spawn_result *r);

/* The common case: runs argv with `input` (len bytes, may be NULL) on its
 * stdin; 0 when it succeeded, with its stdout in *output (malloc'd, when
 * output is not NULL; -E2BIG if it was cut at MG_SPAWN_MAX_OUTPUT), else
 * a negative errno with why in err (-EIO: it ran and failed, its stderr
 * said). */
int mg_spawn_check(char *const argv[], const char *input, size_t len, char **output, char *err,
                   size_t errlen);

/* Starts s->argv and leaves it running (input, timeout and max_output are
 * not used). *pid is the child's. */
int mg_spawn_start(const struct mg_spawn *s, pid_t *pid, char *err, size_t errlen);

/* 1 (and *status, if given) once the child has exited and is reaped, 0 while
 * it runs, a negative errno if pid is not our child. */
int mg_spawn_exited(pid_t pid, int *status);

/* SIGTERM, up to timeout_ms for it to exit, then SIGKILL; reaped. A pid that
 * is not our child (not waitable) is watched until it is gone. *status (if
 * given) is its wait status, or -1 when it was not ours to reap. 0, or
 * -ESRCH if there was no such process. */
int mg_spawn_stop(pid_t pid, int timeout_ms, int *status);

#endif
