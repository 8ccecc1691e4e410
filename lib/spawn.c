/*
 * fork + execve rather than posix_spawn: the child must also ask for
 * PR_SET_PDEATHSIG (no posix_spawn attribute does), and every step it takes
 * (reset each disposition, unblock, wire 0-2, close the rest, exec) is then
 * written out here in one place instead of depending on what a given libc's
 * posix_spawn flags cover. Everything that allocates (PATH lookup, pipes) is
 * done before fork: the caller is usually a thread of a threaded daemon, and
 * its child may only make async-signal-safe calls until execve.
 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define DEFAULT_PATH  "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define STOP_POLL_MS  10
#define KILL_WAIT_MS  5000 /* SIGKILL cannot be refused; this bounds a D-state child */
#define STDERR_IN_MSG 400  /* bytes of a failed command's stderr quoted in its error */

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int find_program(const char *name, char *out, size_t outlen)
{
	const char *path = getenv("PATH");

	if (strchr(name, '/'))
		return snprintf(out, outlen, "%s", name) < (int)outlen && !access(out, X_OK)
		           ? 0
		           : -ENOENT;
	if (!path)
		path = DEFAULT_PATH;
	while (*path) {
		size_t dirlen = strcspn(path, ":");
		int n = snprintf(out, outlen, "%.*s/%s", (int)dirlen, path, name);

		if (dirlen && n > 0 && (size_t)n < outlen && !access(out, X_OK))
			return 0;
		path += dirlen + (path[dirlen] == ':');
	}
	return -ENOENT;
}

/* Closes every descriptor from `from` up, but `keep`. */
static void close_from(int from, int keep, int open_max)
{
	if ((keep <= from || !close_range((unsigned)from, (unsigned)keep - 1, 0)) &&
	    !close_range((unsigned)(keep < from ? from : keep + 1), ~0u, 0))
		return;
	for (int fd = from; fd < open_max; fd++) /* a kernel before 5.9 */
		if (fd != keep)
			close(fd);
}

/* wire[i] becomes descriptor i (wire[i] == i: kept as it is). Failing to
 * exec, it writes errno on `report` (close-on-exec: EOF means it ran). */
static _Noreturn void exec_child(const char *program, char *const argv[], char *const envp[],
                                 const int wire[3], int report, const struct mg_spawn *s,
                                 pid_t parent, int open_max)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t none;
	int moved[3] = {-1, -1, -1}, e;

	/* dispositions first, so that nothing unblocked below runs our handlers;
	 * SIG_IGN survives execve, and SIGKILL/SIGSTOP just refuse */
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (s->new_session && setsid() < 0)
		goto failed;
	if (s->die_with_parent) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent) /* the parent died before prctl */
			_exit(127);
	}
	/* out of 0-2 first, so that one dup2 cannot overwrite another's source */
	for (int i = 0; i < 3; i++)
		if (wire[i] != i && (moved[i] = fcntl(wire[i], F_DUPFD, 3)) < 0)
			goto failed;
	for (int i = 0; i < 3; i++)
		if (wire[i] != i && dup2(moved[i], i) < 0)
			goto failed;
	close_from(3, report, open_max);
	execve(program, argv, envp);
failed:
	e = errno;
	/* nothing more to do if even this fails: the parent then sees EOF and
	 * the status 127, as from a shell */
	if (write(report, &e, sizeof(e)) != sizeof(e))
		_exit(127);
	_exit(127);
}

/* Starts program with wire[] as its 0-2; the caller closes its copies. */
static int start(const struct mg_spawn *s, const int wire[3], pid_t *pid, char *err, size_t errlen)
{
	const char *name = s->argv[0];
	char program[4096];
	int report[2], e = 0, open_max = (int)sysconf(_SC_OPEN_MAX);
	pid_t parent = getpid(), child;
	ssize_t n;

	if (find_program(name, program, sizeof(program)))
		return fail(err, errlen, -ENOENT, "cannot run %s: not found%s", name,
		            strchr(name, '/') ? " or not executable" : " in PATH");
	if (pipe2(report, O_CLOEXEC))
		return fail(err, errlen, -errno, "cannot run %s: pipe: %s", name, strerror(errno));
	child = fork();
	if (child == 0)
		exec_child(program, s->argv, s->envp ? s->envp : environ, wire, report[1], s,
		           parent, open_max < 0 ? 1024 : open_max);
	e = errno;
	close(report[1]);
	if (child < 0) {
		close(report[0]);
		return fail(err, errlen, -e, "cannot run %s: fork: %s", name, strerror(e));
	}
	while ((n = read(report[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	close(report[0]);
	if (n == (ssize_t)sizeof(e)) {
		while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
			;
		return fail(err, errlen, -e, "cannot run %s: %s", name, strerror(e));
	}
	*pid = child;
	return 0;
}

int mg_spawn_start(const struct mg_spawn *s, pid_t *pid, char *err, size_t errlen)
{
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC), ret;
	int wire[3] = {devnull, STDOUT_FILENO, STDERR_FILENO};

	*pid = 0;
	if (devnull < 0)
		return fail(err, errlen, -errno, "cannot run %s: /dev/null: %s", s->argv[0],
		            strerror(errno));
	ret = start(s, wire, pid, err, errlen);
	close(devnull);
	return ret;
}

int mg_spawn_exited(pid_t pid, int *status)
{
	int st;
	pid_t done;

	while ((done = waitpid(pid, &st, WNOHANG)) < 0 && errno == EINTR)
		;
	if (done < 0)
		return -errno;
	if (done == 0)
		return 0;
	if (status)
		*status = st;
	return 1;
}

/* Our child is reaped; any other process (not ours, or SIGCHLD ignored) is
 * polled with kill(pid, 0) until it is gone. */
static bool wait_gone(pid_t pid, int timeout_ms, int *status)
{
	long deadline = now_ms() + timeout_ms;

	for (;;) {
		int ret = mg_spawn_exited(pid, status);

		if (ret == 1 || (ret == -ECHILD && kill(pid, 0) < 0 && errno == ESRCH))
			return true;
		if (now_ms() >= deadline)
			return false;
		sleep_ms(STOP_POLL_MS);
	}
}

int mg_spawn_stop(pid_t pid, int timeout_ms, int *status)
{
	if (status)
		*status = -1;
	if (pid <= 0 || (kill(pid, SIGTERM) < 0 && errno == ESRCH))
		return -ESRCH;
	if (!wait_gone(pid, timeout_ms, status)) {
		kill(pid, SIGKILL);
		wait_gone(pid, KILL_WAIT_MS, status);
	}
	return 0;
}

struct sink {
	char *data;
	size_t len, cap, max;
	bool truncated;
};

/* 1: more to come, 0: end of file, or -errno. Beyond max, bytes are dropped. */
static int sink_read(int fd, struct sink *s)
{
	char chunk[16384];
	ssize_t n = read(fd, chunk, sizeof(chunk));
	size_t keep;

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : -errno;
	if (n == 0)
		return 0;
	keep = s->max - s->len < (size_t)n ? s->max - s->len : (size_t)n;
	s->truncated |= keep < (size_t)n;
	if (s->len + keep + 1 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8192;
		char *d;

		while (cap < s->len + keep + 1)
			cap *= 2;
		d = realloc(s->data, cap);
		if (!d)
			return -ENOMEM;
		s->data = d;
		s->cap = cap;
	}
	memcpy(s->data + s->len, chunk, keep);
	s->len += keep;
	s->data[s->len] = '\0';
	return 1;
}

/* Writes the input and reads both outputs until the child closes them or the
 * deadline passes (-ETIMEDOUT). Closes the three descriptors. */
static int pump(int in, int out, int errfd, const struct mg_spawn *s, long deadline, struct sink *o,
                struct sink *e)
{
	size_t off = 0;
	int rc = 0;

	while (out >= 0 || errfd >= 0) {
		struct pollfd p[3] = {{in, POLLOUT, 0}, {out, POLLIN, 0}, {errfd, POLLIN, 0}};
		long left = deadline - now_ms();

		if (left <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		if (poll(p, 3, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (in >= 0 && p[0].revents) {
			ssize_t n = write(in, s->input + off, s->input_len - off);

			if (n < 0 && errno != EINTR && errno != EAGAIN)
				close_fd(&in); /* EPIPE: it stopped reading; its status tells */
			else if (n > 0 && (off += (size_t)n) == s->input_len)
				close_fd(&in);
		}
		for (int i = 1; i < 3; i++) {
			int *fd = i == 1 ? &out : &errfd;
			int r;

			if (*fd < 0 || !p[i].revents)
				continue;
			r = sink_read(*fd, i == 1 ? o : e);
			if (r <= 0)
				close_fd(fd);
			if (r < 0 && !rc)
				rc = r;
		}
	}
	close_fd(&in);
	close_fd(&out);
	close_fd(&errfd);
	return rc;
}

/* The pump with SIGPIPE blocked in this thread, so that a child that dies
 * before reading all its input cannot kill us; one we caused is dropped. */
static int pump_without_sigpipe(int in, int out, int errfd, const struct mg_spawn *s, long deadline,
                                struct sink *o, struct sink *e)
{
	struct timespec zero = {0, 0};
	sigset_t pipe_set, old;
	int rc;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	rc = pump(in, out, errfd, s, deadline, o, e);
	if (!sigismember(&old, SIGPIPE))
		while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
			;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

int mg_spawn_run(const struct mg_spawn *s, struct mg_spawn_result *r, char *err, size_t errlen)
{
	int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1}, rc;
	size_t max = s->max_output ? s->max_output : MG_SPAWN_MAX_OUTPUT;
	struct sink o = {.max = max}, e = {.max = max};
	const char *name = s->argv[0];
	long deadline;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	r->timeout_ms = s->timeout_ms > 0 ? s->timeout_ms : MG_SPAWN_TIMEOUT_MS;
	if (s->input_len ? pipe2(pin, O_CLOEXEC)
	                 : (pin[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = fail(err, errlen, -errno, "cannot run %s: %s", name, strerror(errno));
		goto out;
	}
	if (pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC)) {
		rc = fail(err, errlen, -errno, "cannot run %s: pipe: %s", name, strerror(errno));
		goto out;
	}
	deadline = now_ms() + r->timeout_ms;
	rc = start(s, (int[3]){pin[0], pout[1], perr[1]}, &pid, err, errlen);
	close_fd(&pin[0]);
	close_fd(&pout[1]);
	close_fd(&perr[1]);
	if (rc)
		goto out;
	if (pin[1] >= 0)
		fcntl(pin[1], F_SETFL, O_NONBLOCK);
	rc = pump_without_sigpipe(pin[1], pout[0], perr[0], s, deadline, &o, &e);
	pin[1] = pout[0] = perr[0] = -1;
	if (rc == -ETIMEDOUT) {
		rc = 0; /* it ran; r->timed_out says how it ended */
		/* the deadline may find it gone, a grandchild holding its pipes */
		if (mg_spawn_exited(pid, &r->status) != 1) {
			r->timed_out = true;
			mg_spawn_stop(pid, MG_SPAWN_GRACE_MS, &r->status);
		}
	} else {
		/* after an I/O error it must not outlive this call either */
		if (rc)
			kill(pid, SIGKILL);
		while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
			;
		if (rc)
			fail(err, errlen, rc, "talking to %s: %s", name, strerror(-rc));
	}
	if (!rc && (!o.data || !e.data)) {
		char *empty_out = o.data ? o.data : calloc(1, 1);
		char *empty_err = e.data ? e.data : calloc(1, 1);

		o.data = empty_out;
		e.data = empty_err;
		if (!o.data || !e.data)
			rc = fail(err, errlen, -ENOMEM, "%s: out of memory", name);
	}
out:
	for (int i = 0; i < 2; i++) {
		close_fd(&pin[i]);
		close_fd(&pout[i]);
		close_fd(&perr[i]);
	}
	if (rc) {
		free(o.data);
		free(e.data);
		return rc;
	}
	r->out = o.data;
	r->out_len = o.len;
	r->out_truncated = o.truncated;
	r->err = e.data;
	r->err_len = e.len;
	r->err_truncated = e.truncated;
	return 0;
}

bool mg_spawn_succeeded(const struct mg_spawn_result *r)
{
	return !r->timed_out && WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

void mg_spawn_describe(const char *name, const struct mg_spawn_result *r, char *buf, size_t len)
{
	size_t n = r->err_len;

	/* its last line break and spaces say nothing */
	while (n && (r->err[n - 1] == '\n' || r->err[n - 1] == ' '))
		n--;
	if (r->timed_out)
		snprintf(buf, len, "%s did not finish within %d ms", name, r->timeout_ms);
	else if (WIFSIGNALED(r->status))
		snprintf(buf, len, "%s was killed by signal %d", name, WTERMSIG(r->status));
	else if (WEXITSTATUS(r->status))
		snprintf(buf, len, "%s exited with %d: %.*s", name, WEXITSTATUS(r->status),
		         (int)(n > STDERR_IN_MSG ? STDERR_IN_MSG : n), r->err ? r->err : "");
	else
		snprintf(buf, len, "%s succeeded", name);
}

void mg_spawn_result_free(struct mg_spawn_result *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

int mg_spawn_check(char *const argv[], const char *input, size_t len, char **output, char *err,
                   size_t errlen)
{
	struct mg_spawn s = {.argv = argv, .input = input, .input_len = len};
	struct mg_spawn_result r;
	int rc = mg_spawn_run(&s, &r, err, errlen);

	if (rc)
		return rc;
	if (!mg_spawn_succeeded(&r)) {
		mg_spawn_describe(argv[0], &r, err, errlen);
		rc = -EIO;
	} else if (output && r.out_truncated) {
		snprintf(err, errlen, "%s: more than %u bytes of output", argv[0],
		         MG_SPAWN_MAX_OUTPUT);
		rc = -E2BIG;
	} else if (output) {
		*output = r.out;
		r.out = NULL;
	}
	mg_spawn_result_free(&r);
	return rc;
}
